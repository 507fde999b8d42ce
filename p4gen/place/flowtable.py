"""What a per-flow offload could take onto the NIC, from the static placement and the paths.

The per-flow offload (docs/offload-design.md) gives the NIC one more table: a fused flow
table whose entries each run one flow's whole path in one step. The table's match kinds do
not matter (it is exact on the flow key). What matters:

- whether the NIC can run the *actions* on a flow's path (p4gen.midend.paths): the
  constrained NIC cannot look up the ACL (a range match), but it can run its `allow`;
- how wide the flow key is against the NIC's key limit;
- how many entries the static placement leaves.

`p4gen place --explain` prints this report; the table itself is p4gen.place.flowlayout's, run
by p4gen.control.offload.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from p4gen.frontend.program import Program
from p4gen.midend.flowkeys import flow_key
from p4gen.midend.paths import CUT, Path, Step, TooManyPaths, parse_paths, pipeline_paths
from p4gen.midend.stages import build_stage_trees
from p4gen.place import Placement
from p4gen.place.profiles import Profile
from p4gen.place.requirements import effect_capabilities

TABLE_NEEDS = ("direct_counter",)  # the flow table counts each flow's packets and bytes itself


@dataclass
class PipelinePaths:
    pipeline: str
    paths: int = 0
    whole: int = 0  # every step on the NIC
    tail: int = 0  # on the NIC up to hypervisor-only stages at the end (coalescing: the VM is behind it)
    part: int = 0  # a hypervisor-only stage in the middle: on the NIC up to it
    none: int = 0  # its first step is hypervisor-only
    needs: Counter = field(default_factory=Counter)  # "'cap' at stage" → paths it stops
    key_bits: int = 0
    widest_parse_path: int = 0  # the key's bits on the parse path that has the most of its fields
    uncacheable: str | None = None  # why no flow of this pipeline is ever specialised
    too_many: str | None = None


@dataclass
class FlowTableReport:
    nic: str
    entries: int  # what a flow table could hold
    why: str  # where that number comes from
    table_gaps: list[str]  # capabilities the flow table itself needs and the NIC lacks
    key_limit: int | None
    pipelines: list[PipelinePaths]
    policy: str = ""  # when a flow goes to the table and when it leaves
    tabled: list[str] | None = None  # pipelines the build gives the flow table (None: not known here)


def step_needs(step: Step) -> set[str]:
    """What the NIC must have to run this step of a fused action."""
    kind = step.stage.kind
    if kind == "segment":
        return {"segment"} if step.choice == CUT else set()  # passed whole: a length guard
    if kind == "coalesce":
        return {"coalesce"}
    if step.effect is None:
        return set()  # a branch: fixed by the exact key
    return effect_capabilities(step.effect)


def classify(path: Path, nic: Profile) -> tuple[str, str | None]:
    """("whole" | "tail" | "part" | "none", the first missing capability and where)."""
    missing = [sorted(step_needs(s) - nic.capabilities) for s in path.steps]
    first = next((i for i, m in enumerate(missing) if m), None)
    if first is None:
        return "whole", None
    where = f"'{missing[first][0]}' at {path.steps[first].stage.id.split('/', 1)[1]}"
    if first == 0:
        return "none", where
    if all(missing[i] for i in range(first, len(missing))):
        return "tail", where
    return "part", where


def key_bits(prog: Program, fields: frozenset[str], held: frozenset[str] | None = None) -> int:
    """The flow key's width: each field's bits, a validity bit per `$valid`; with `held` (the
    headers of one parse path), only the fields a packet on that path has, and no validity."""
    bits = 0
    for f in fields:
        inst, _, name = f.partition(".")
        if held is not None and (name == "$valid" or inst != "meta" and inst not in held):
            continue
        if name == "$valid":
            bits += 1
        elif inst == "meta":
            bits += prog.metadata[name][0] if name in prog.metadata else 0
        elif inst in prog.instances:
            ft = prog.instances[inst].type.field(name)
            bits += ft.width if ft is not None else 0
    return bits


def budget(pl: Placement) -> tuple[int, str]:
    """Entries a flow table could have, and why: the profile's reservation ([offload]), or
    what the static placement leaves."""
    nic = pl.problem.nic
    assert nic is not None
    if nic.offload is not None:
        return nic.offload.flow_entries, f"reserved by {nic.name}'s [offload]: a table of its own"
    use = pl.resource_use()
    (t_used, t_max), (e_used, e_max) = use["tables"], use["table_entries"]
    if t_max is not None and t_used >= t_max:
        return 0, f"no [offload] in the profile, and no table left: {t_used}/{t_max} in use"
    room = [(e_max - e_used, f"{e_max - e_used} of {e_max} entries left")] if e_max is not None else []
    if nic.resources.max_table_size is not None:
        room.append((nic.resources.max_table_size, f"{nic.name}'s per-table limit"))
    if not room:
        return -1, "no limit"
    n, why = min(room)
    tables = f"{t_max - t_used} of {t_max} tables left" if t_max is not None else "tables unlimited"
    return max(0, n), f"no [offload] in the profile, what the static placement leaves: {tables}; {why}"


def report(prog: Program, pl: Placement, g=None) -> FlowTableReport | None:
    """The report for a placement with a NIC (None without one); with the IR graph `g`, also
    which pipelines the build gives the flow table (p4gen.place.flowlayout.flow_layouts)."""
    nic = pl.problem.nic
    if nic is None:
        return None
    entries, why = budget(pl)
    out = []
    try:
        parsed = parse_paths(prog)
    except TooManyPaths:
        parsed = []
    for name, tree in build_stage_trees(prog).items():
        row = PipelinePaths(name)
        key = flow_key(prog, [tree])
        row.key_bits, row.uncacheable = key_bits(prog, key.fields), key.problem
        row.widest_parse_path = max((key_bits(prog, key.fields, held) for held in parsed), default=row.key_bits)
        try:
            paths = pipeline_paths(tree, prog)
        except TooManyPaths as e:
            row.too_many = str(e)
            out.append(row)
            continue
        row.paths = len(paths)
        for p in paths:
            kind, where = classify(p, nic)
            setattr(row, kind, getattr(row, kind) + 1)
            if where is not None:
                row.needs[where] += 1
        out.append(row)
    gaps = [c for c in TABLE_NEEDS if c not in nic.capabilities]
    policy = ""
    if nic.offload is not None:
        idle = ("idle-timeout notifications" if "idle_timeout" in nic.capabilities
                else f"polling its counters: {nic.name} lacks 'idle_timeout'")
        policy = (f"a flow goes to the table after {nic.offload.threshold_packets} packets and leaves it after "
                  f"{nic.offload.idle_timeout_ms / 1000:g} s without one ({idle})")
    tabled = None
    if g is not None and nic.offload is not None:
        from p4gen.crossing import pipeline_numbers
        from p4gen.place.flowlayout import flow_layouts

        tabled = sorted(flow_layouts(prog, g, pl, pipeline_numbers(prog)))
    return FlowTableReport(nic.name, entries, why, gaps, nic.resources.max_key_bits, out, policy, tabled)


def to_lines(r: FlowTableReport) -> list[str]:
    """The report as `p4gen place --explain` prints it."""
    room = "unlimited" if r.entries < 0 else f"{r.entries} entries"
    lines = [f"per-flow offload on {r.nic} (the fused flow table p4gen.flows): room for {room} ({r.why})"]
    if r.policy:
        lines.append(f"  {r.policy}")
    if r.tabled is not None:
        lines.append(f"  the build gives it to {', '.join(r.tabled)}" if r.tabled else
                     "  no flow table is built: the static split already runs every stage the NIC could fuse "
                     "(pipelines that start in the hypervisor are not offloaded)")
    if r.table_gaps:
        lines.append(f"  the flow table needs {', '.join(repr(g) for g in r.table_gaps)}, which {r.nic} lacks")
    for p in r.pipelines:
        if p.too_many:
            lines.append(f"  {p.pipeline}: {p.too_many}")
            continue
        text = (f"  {p.pipeline}: {p.paths} paths; on the NIC whole {p.whole}, up to hypervisor-only stages at "
                f"the end {p.tail}, up to one in the middle {p.part}, not at all {p.none}")
        text += (f"; flow key {p.key_bits} bits, {p.widest_parse_path} on its widest parse path (the table keys "
                 f"on 40 bits: the pipeline and a 32-bit hash of it; the entry holds the key)")
        if p.uncacheable:
            text += f"; no flow is specialised: {p.uncacheable}"
        lines.append(text)
        for where, n in sorted(p.needs.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"    {n} path(s) need {where}")
    return lines


def to_json(r: FlowTableReport) -> dict:
    return {
        "nic": r.nic, "entries": r.entries, "why": r.why, "policy": r.policy, "table_gaps": r.table_gaps,
        "key_limit": r.key_limit, "tabled": r.tabled,
        "pipelines": {p.pipeline: {"paths": p.paths, "whole": p.whole, "tail": p.tail, "part": p.part,
                                   "none": p.none, "needs": dict(p.needs), "key_bits": p.key_bits,
                                   "widest_parse_path": p.widest_parse_path,
                                   "uncacheable": p.uncacheable, "too_many": p.too_many}
                      for p in r.pipelines},
    }
