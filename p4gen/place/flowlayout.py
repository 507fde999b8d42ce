"""The fused flow table's layout: what one NIC entry holds for one flow, defined once.

The per-flow offload (docs/offload-design.md) gives the NIC one more table, `p4gen.flows`,
applied first to packets that start a pipeline on the NIC. Its key is short and always fits
the NIC's key limit: the pipeline and a 32-bit hash of the flow key that the NIC computes. An
entry's action data holds

  - `slot`: the flow's cell in the counter `p4gen.flow_packets` (verified hits only);
  - `key`: a copy of the flow key (its fields concatenated), which the NIC compares with the
    packet's own, so a hash collision is a miss, never another flow's processing;
  - `sel_T` per table T of the pipeline: which action T's lookup ran for this flow (0: none
    hit, the default action ran), and that action's parameters (`T__ACTION__PARAM`).

A hit runs the pipeline's stages with every table lookup replaced by the recorded decision:
the NIC needs no match kind of those tables (the constrained NIC's range-matched ACL runs as
its `allow` or `deny`), only the capabilities of the actions. At the first stage the NIC
cannot run at all (segmentation, coalescing, a primitive it lacks) the packet goes to the
hypervisor as the static split sends it, resuming at that stage.

The flow key is every field a decision reads (p4gen.midend.flowkeys), each read as the DSL
reads it (0 when its header is invalid), plus each header's validity bit, so two packets with
the same key take the same path. The P4 emitter (p4gen.backend.emit) and the offload manager
(p4gen.control.offload) both work from `FlowLayout`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import networkx as nx

from p4gen.backend.names import p4_ident
from p4gen.frontend import program as P
from p4gen.ir.lower import stage_trees
from p4gen.midend.flowkeys import flow_key
from p4gen.midend.stages import Branch, PipelineTree, Seq, Stage
from p4gen.place import HYP, NIC, Placement
from p4gen.place.requirements import needed_capabilities

FLOW_TABLE = "p4gen.flows"
FLOW_COUNTER = "p4gen.flow_packets"
LEARN_REGISTER = "p4gen.learn"
LEARN_BUCKETS = 16384  # cells of the miss counter that decides when a flow is worth learning
# After the threshold, every RELEARN_PACKETS-th miss of a bucket is learnt again: a flow the
# table had no room for, or that left it, comes back, and the manager sees how hot it is.
RELEARN_PACKETS = 64
SELECTOR_WIDTH = 8
SLOT_WIDTH = 32
HASH_WIDTH = 32
# What the flow table replaces, so a fused action does not need it: the lookups themselves.
REPLACED = frozenset({"direct_counter", "idle_timeout"})


@dataclass(frozen=True)
class KeyField:
    name: str  # "ipv4.dst", "vlan[1].vid", "ipv4.$valid"
    instance: str
    field: str  # "$valid" for a validity bit
    index: int | None
    width: int

    @property
    def ref(self) -> P.FieldRef:
        return P.FieldRef(self.instance, self.field, self.width, self.index)


@dataclass(frozen=True)
class TableSlot:
    table: str
    nf: str
    actions: tuple[str, ...]  # selector i + 1 runs actions[i]; 0: the lookup missed
    params: tuple[tuple[str, str, int], ...]  # (action, parameter, width)

    @property
    def selector(self) -> str:
        return f"sel_{p4_ident(self.table)}"

    def param_name(self, action: str, param: str) -> str:
        return f"{p4_ident(self.table)}__{p4_ident(action)}__{p4_ident(param)}"


@dataclass(frozen=True)
class FlowLayout:
    pipeline: str
    number: int  # the pipeline's number (p4gen.crossing.numbering)
    first_stage: int  # where a packet punted for learning resumes: the pipeline's first stage
    key: tuple[KeyField, ...]
    tables: tuple[TableSlot, ...]
    handover: dict[int, str]  # stage order → the capability the NIC lacks to run it in a fused action
    problem: str | None = None  # why no flow of this pipeline is offloaded
    # The pipeline starts in the hypervisor: it runs the stages before `first_stage` (those the
    # NIC cannot run: segmentation) and, for an offloaded flow, hands the packet to the NIC there,
    # where the flow table is looked up. Such flows are learnt in the hypervisor.
    hv_first: bool = False

    @property
    def action_name(self) -> str:
        return f"p4gen.flow_{self.pipeline}"

    @property
    def key_width(self) -> int:
        return sum(k.width for k in self.key)

    def pack_key(self, values: tuple[int, ...]) -> int:
        """The key's fields as one value, the first field in the top bits (P4's `++`)."""
        out = 0
        for k, v in zip(self.key, values, strict=True):
            out = (out << k.width) | (v & ((1 << k.width) - 1))
        return out

    def action_params(self) -> list[tuple[str, int]]:
        """The flow action's parameters, in order (P4Runtime param ids are 1 + the index)."""
        return [("slot", SLOT_WIDTH), ("key", self.key_width), *self.decision_params()]

    def decision_params(self) -> list[tuple[str, int]]:
        """Per table: its selector, then every parameter of its actions."""
        out = []
        for t in self.tables:
            out.append((t.selector, SELECTOR_WIDTH))
            out += [(t.param_name(a, p), w) for a, p, w in t.params]
        return out

    def action_values(self, slot: int, key: tuple[int, ...], decisions: dict[str, tuple[str | None, dict]]
                      ) -> list[int]:
        """The action data of one flow: `decisions` maps a table to (the action its entry ran,
        that entry's arguments), or (None, {}) for a miss; tables not looked up are left 0."""
        out = [slot, self.pack_key(key)]
        for t in self.tables:
            action, args = decisions.get(t.table, (None, {}))
            out.append(0 if action is None else t.actions.index(action) + 1)
            out += [args.get(p, 0) if a == action else 0 for a, p, _w in t.params]
        return out


def key_fields(prog: P.Program, fields: frozenset[str]) -> tuple[list[KeyField], str | None]:
    """The flow key's fields as the NIC reads them, stack elements one by one, with each
    header's validity bit; and a problem when a field cannot be read as bits (varbit)."""
    out: dict[str, KeyField] = {}
    problem = None
    for name in sorted(fields):
        inst, _, fname = name.partition(".")
        if inst == "meta":
            if fname in prog.metadata:
                out[name] = KeyField(name, "meta", fname, None, prog.metadata[fname][0])
            continue
        if inst not in prog.instances:
            continue
        decl = prog.instances[inst]
        indices: list[int | None] = list(range(decl.stack)) if decl.stack else [None]
        for i in indices:
            label = inst if i is None else f"{inst}[{i}]"
            out.setdefault(f"{label}.$valid", KeyField(f"{label}.$valid", inst, "$valid", i, 1))
            if fname == "$valid":
                continue
            ft = decl.type.field(fname)
            if ft is None:
                continue
            if ft.is_varbit:
                problem = problem or f"decides on the variable-length field {name}"
                continue
            out[f"{label}.{fname}"] = KeyField(f"{label}.{fname}", inst, fname, i, ft.width)
    return [out[k] for k in sorted(out)], problem


def _walk(seq: Seq):
    """(stage, table applied there or None) in tree order."""
    for it in seq.items:
        if isinstance(it, Branch):
            yield it.stage, (it.hit[0] if it.hit is not None else None)
            yield from _walk(it.then)
            yield from _walk(it.orelse)
        elif isinstance(it, Stage):
            yield it, (it.table.name if it.kind == "table" and it.table is not None else None)


def fused_stages(tree: PipelineTree, lay: FlowLayout) -> list[Stage]:
    """The stages a hit runs on the NIC, as the emitter writes them: from `first_stage` on, but
    those it hands over at (their code is not there)."""
    items = tree.body.items
    at = next((i for i, it in enumerate(items)
               if (it.stage if isinstance(it, Branch) else it).order == lay.first_stage), len(items))
    return [st for st, _table in _walk(Seq(items[at:])) if st.order not in lay.handover
            and st.kind not in ("segment", "coalesce")]


def fused_needs(st: Stage) -> set[str]:
    """What the NIC must have to run a stage inside a fused action (its lookup is replaced)."""
    return needed_capabilities(st) - REPLACED


def flow_layout(prog: P.Program, tree: PipelineTree, number: int, capabilities: frozenset[str]) -> FlowLayout:
    """The flow table's layout for one pipeline on a NIC with `capabilities`."""
    key = flow_key(prog, [tree])
    fields, problem = key_fields(prog, key.fields)
    problem = problem or key.problem
    slots: list[TableSlot] = []
    handover: dict[int, str] = {}
    seen: set[str] = set()
    first = None
    for st, table in _walk(tree.body):
        first = st.order if first is None else first
        missing = sorted(fused_needs(st) - capabilities)
        if missing:
            handover[st.order] = missing[0]
        if table is None:
            continue
        if table in seen:
            problem = problem or f"applies table {table} twice"
            continue
        seen.add(table)
        nf = prog.nfs[st.nf]
        t = nf.tables[table]
        params = tuple((a, p, w) for a in t.actions for p, w in nf.actions[a].params)
        slots.append(TableSlot(table, st.nf, tuple(t.actions), params))
    if first is None:
        problem = problem or "has no stages"
    return FlowLayout(tree.pipeline.name, number, first or 0, tuple(fields), tuple(slots), handover, problem)


def flow_layouts(prog: P.Program, g: nx.DiGraph, placement: Placement, numbers: dict[str, int]
                  ) -> dict[str, FlowLayout]:
    """The flow table's layout for each pipeline where a flow could gain from it, when the NIC's
    profile reserves a flow table ([offload]); none otherwise."""
    nic = placement.problem.nic
    if nic is None or nic.offload is None:
        return {}
    out = {}
    for name, tree in stage_trees(g).items():
        lay = flow_layout(prog, tree, numbers[name], nic.capabilities)
        if placement.problem.pipelines[name][0] != NIC:
            # From the hypervisor: the table is looked up after the leading stages the NIC cannot
            # run at all (segmentation), at the first top-level stage it can.
            entry = next((it for it in tree.body.items if (it.stage if isinstance(it, Branch) else it).order
                          not in lay.handover), None)
            if entry is None:
                continue
            lay = replace(lay, first_stage=(entry.stage if isinstance(entry, Branch) else entry).order, hv_first=True)
        # Worth a table only where a flow could gain: a stage the NIC could run fused, that the
        # static split runs in the hypervisor (on a capable NIC with room, there is none).
        if any(st.kind not in ("parse", "classify", "deparse") and st.order not in lay.handover
               and st.order >= lay.first_stage and placement.assignment.get(st.id, HYP) == HYP
               for st in tree.body.stages()):
            out[name] = lay
    return out


__all__ = ["FLOW_TABLE", "FLOW_COUNTER", "LEARN_REGISTER", "LEARN_BUCKETS", "FlowLayout", "KeyField", "TableSlot",
           "flow_layout", "flow_layouts", "fused_stages", "key_fields", "fused_needs"]
