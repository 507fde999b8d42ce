"""The placement problem, abstracted from the IR: stages, weighted edges, budgets.

Each pipeline's stages get a *visit weight*: the packet rate of the pipeline
times the probability that a packet reaches the stage, with branches split
evenly (every action of a table, both arms of an if). Drop actions do not
end the packet here: placement is planned for the traffic that passes, since
even split branches would otherwise make dropping, say, "non-IP" packets in
the hypervisor look like a saving on a quarter of all traffic. Each control
edge gets the same kind of weight; a NIC↔hypervisor
crossing on it costs `crossing_cost × weight`. Running a stage in the
hypervisor costs `cost × weight`. The pipeline's ends are anchored where the
packet enters and leaves: a vm_egress packet starts where the VM is attached
and ends on the NIC uplink; a vm_ingress packet starts on the uplink and ends
where the VM is attached.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from p4gen.diagnostics import Pos
from p4gen.frontend.program import Program
from p4gen.ir.lower import Stage
from p4gen.place.profiles import Profile
from p4gen.place.requirements import hypervisor_cost, table_entries, why_not

NIC, HYP = "nic", "hypervisor"
ANCHOR_KINDS = ("parse", "classify", "deparse")


@dataclass
class PStage:
    id: str
    kind: str
    pipeline: str
    weight: float  # packets per second reaching it (relative units without rates)
    hv_cost: float  # per packet in the hypervisor
    nic_reasons: list[str]  # why the NIC cannot run it (empty: it can)
    entries: int = 0
    is_table: bool = False
    fixed: str | None = None  # anchors: where the pipeline starts/ends
    pin: str | None = None
    pin_pos: Pos | None = None
    prefer: str | None = None
    pos: Pos | None = None

    @property
    def nic_ok(self) -> bool:
        return not self.nic_reasons


@dataclass
class PEdge:
    u: str
    v: str
    weight: float


@dataclass
class Problem:
    stages: list[PStage]
    edges: list[PEdge]
    crossing_cost: float
    preference_cost: float
    max_tables: int | None = None
    max_entries: int | None = None
    nic: Profile | None = None
    hyp: Profile | None = None
    pipelines: dict[str, tuple[str, str]] = field(default_factory=dict)  # name → (start, end) location

    def stage(self, sid: str) -> PStage:
        return self._index[sid]

    def __post_init__(self) -> None:
        self._index = {s.id: s for s in self.stages}


def _annotation(stage: Stage, name: str) -> tuple[str | None, Pos | None]:
    """The innermost @pin/@prefer (a table's own beats its nf's)."""
    found: tuple[str | None, Pos | None] = (None, None)
    for a in stage.annotations:
        if a.name == name and a.args:
            found = (str(a.args[0]), a.pos)
    return found


def pipeline_ends(direction: str, nic: Profile | None) -> tuple[str, str]:
    vm_side = NIC if nic is not None and nic.vm_attachment == "nic" else HYP
    if nic is None:
        return HYP, HYP
    return (vm_side, NIC) if direction == "vm_egress" else (NIC, vm_side)


def flow_weights(g: nx.DiGraph, pipeline: str, rate: float) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    nodes = [n for n, d in g.nodes(data=True) if d["pipeline"] == pipeline]
    sub = nx.DiGraph((u, v) for u, v, d in g.subgraph(nodes).edges(data=True) if d["control"])
    sub.add_nodes_from(nodes)
    visit = {n: 0.0 for n in nodes}
    edge_w: dict[tuple[str, str], float] = {}
    for n in nx.topological_sort(sub):
        if g.nodes[n]["kind"] == "parse":
            visit[n] = rate
        outs = [(v, lbl) for _, v, d in g.out_edges(n, data=True) for lbl in d["control"]]
        if not outs:
            continue
        share = visit[n] / len(outs)
        for v, _lbl in outs:
            edge_w[(n, v)] = edge_w.get((n, v), 0.0) + share
            visit[v] += share
    return visit, edge_w


def build_problem(g: nx.DiGraph, prog: Program, nic: Profile | None, hyp: Profile,
                  rates: dict[str, float] | None = None) -> Problem:
    """IR + profiles (+ packet rates per pipeline) → Problem."""
    rates = rates or {}
    stages: list[PStage] = []
    edges: list[PEdge] = []
    ends: dict[str, tuple[str, str]] = {}
    for pl in prog.pipelines.values():
        start, end = pipeline_ends(pl.direction, nic)
        ends[pl.name] = (start, end)
        visit, edge_w = flow_weights(g, pl.name, rates.get(pl.name, 1.0))
        for n in sorted(visit, key=lambda n: g.nodes[n]["stage"].order):
            st: Stage = g.nodes[n]["stage"]
            if st.kind in ANCHOR_KINDS:
                fixed = end if st.kind == "deparse" else start
                stages.append(PStage(n, st.kind, pl.name, visit[n], 0.0, [], fixed=fixed, pos=st.pos))
                continue
            reasons = why_not(st, nic, prog) if nic is not None else ["no NIC target given"]
            pin, pin_pos = _annotation(st, "pin")
            prefer, _ = _annotation(st, "prefer")
            stages.append(PStage(
                id=n, kind=st.kind, pipeline=pl.name, weight=visit[n], hv_cost=hypervisor_cost(st, hyp),
                nic_reasons=reasons, entries=table_entries(st), is_table=st.table is not None,
                pin=pin, pin_pos=pin_pos, prefer=prefer, pos=st.pos,
            ))
        edges += [PEdge(u, v, w) for (u, v), w in edge_w.items()]
    res = nic.resources if nic is not None else None
    max_tables, max_entries = (res.tables, res.table_entries) if res else (None, None)
    if nic is not None and nic.offload is not None:  # the flow table's, before anything else
        max_tables = max_tables - 1 if max_tables is not None else None
        max_entries = max_entries - nic.offload.flow_entries if max_entries is not None else None
    return Problem(
        stages=stages, edges=edges,
        crossing_cost=nic.crossing_cost if nic is not None else 0.0,
        preference_cost=hyp.preference_cost,
        max_tables=max_tables, max_entries=max_entries,
        nic=nic, hyp=hyp, pipelines=ends,
    )
