"""What the NIC program contains: tables, actions, counters with names and ids.

One model feeds the P4 text (@name/@id annotations), p4gen's own P4Info and
the P4Runtime entries, so the three always agree. Ids follow P4Runtime: an
8-bit resource-type prefix and 24 bits taken from a DSL `@id(N)` or, as p4c
does for objects without one, from the Jenkins one-at-a-time hash of the
control-plane name (collisions resolved in name order by incrementing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from p4gen.backend.names import p4_ident
from p4gen.crossing import DROP_REASONS, drop_sites, pipeline_numbers
from p4gen.diagnostics import Pos
from p4gen.frontend import program as P
from p4gen.ir.lower import stage_trees
from p4gen.place import NIC, Placement
from p4gen.place.flowlayout import (
    FLOW_COUNTER,
    FLOW_TABLE,
    HASH_WIDTH,
    LEARN_BUCKETS,
    LEARN_REGISTER,
    FlowLayout,
    flow_layouts,
    fused_stages,
)

# P4Runtime resource-type prefixes (p4info.proto, P4Ids.Prefix).
PREFIX_ACTION = 0x01
PREFIX_TABLE = 0x02
PREFIX_COUNTER = 0x12
PREFIX_DIRECT_COUNTER = 0x13
PREFIX_REGISTER = 0x16



def jenkins_one_at_a_time(data: bytes) -> int:
    h = 0
    for b in data:
        h = (h + b) & 0xFFFFFFFF
        h = (h + (h << 10)) & 0xFFFFFFFF
        h ^= h >> 6
    h = (h + (h << 3)) & 0xFFFFFFFF
    h ^= h >> 11
    h = (h + (h << 15)) & 0xFFFFFFFF
    return h


@dataclass
class P4Param:
    name: str
    p4name: str
    width: int
    id: int


@dataclass
class P4Action:
    nf: str
    action: P.Action
    p4name: str
    name: str  # control-plane name
    id: int = 0
    params: list[P4Param] = field(default_factory=list)


@dataclass
class P4Key:
    name: str  # control-plane name (the DSL field)
    field: P.FieldRef
    match_kind: str
    id: int


@dataclass
class P4Counter:
    name: str
    p4name: str
    size: int
    id: int = 0
    direct_table: str | None = None  # control-plane name of the table, for direct counters


@dataclass
class P4Register:
    name: str
    p4name: str
    width: int
    size: int
    id: int = 0


@dataclass
class P4Table:
    table: P.Table
    p4name: str
    name: str
    keys: list[P4Key]
    actions: list[P4Action]
    default_action: P4Action
    id: int = 0
    direct_counter: P4Counter | None = None
    stage_id: str = ""


@dataclass
class NicModel:
    prog: P.Program
    graph: nx.DiGraph
    placement: Placement
    tables: dict[str, P4Table] = field(default_factory=dict)  # by DSL table name
    actions: dict[tuple[str, str], P4Action] = field(default_factory=dict)  # (nf, action)
    counters: dict[tuple[str, str], P4Counter] = field(default_factory=dict)  # (nf, counter)
    drop_counter: P4Counter | None = None
    drop_action: P4Action | None = None  # p4gen's own drop-with-reason action
    pipeline_index: dict[str, int] = field(default_factory=dict)
    # Per-flow offload (p4gen.place.flowlayout): the fused flow table, its actions by pipeline,
    # and the register that counts misses before a flow is learnt.
    flow_layouts: dict[str, FlowLayout] = field(default_factory=dict)
    flow_actions: dict[str, P4Action] = field(default_factory=dict)
    registers: list[P4Register] = field(default_factory=list)

    @property
    def flow_table(self) -> P4Table | None:
        return self.tables.get(FLOW_TABLE)

    def on_nic(self, stage_id: str) -> bool:
        return self.placement.assignment.get(stage_id) == NIC


def _annotation_id(annos) -> int | None:
    for a in annos:
        if a.name == "id" and a.args:
            return int(a.args[0].value)
    return None


def annotation_doc(annos) -> str | None:
    """The text of `@doc("…")`: the control plane's documentation of an entity (P4Info's
    preamble.doc.brief, as p4c makes it from `@brief`)."""
    for a in annos:
        if a.name == "doc" and a.args:
            return str(getattr(a.args[0], "value", a.args[0]))
    return None


def _assign_ids(objs: list, prefix: int, annos_of) -> None:
    """p4c's scheme: user @id first, then name hashes in name order, bumping on collision."""
    used: set[int] = set()
    for o in objs:
        uid = annos_of(o)
        if uid is not None:
            o.id = (prefix << 24) | (uid & 0xFFFFFF)
            used.add(o.id)
    for o in sorted((o for o in objs if not o.id), key=lambda o: o.name):
        low = jenkins_one_at_a_time(o.name.encode()) & 0xFFFFFF
        while ((prefix << 24) | low) in used or low == 0:
            low = (low + 1) & 0xFFFFFF
        o.id = (prefix << 24) | low
        used.add(o.id)


def build_model(prog: P.Program, g: nx.DiGraph, placement: Placement) -> NicModel:
    m = NicModel(prog, g, placement)
    m.pipeline_index = pipeline_numbers(prog)
    nic_tables: list[tuple[P.Table, str]] = []
    used_actions: set[tuple[str, str]] = set()
    for n, d in g.nodes(data=True):
        st = d["stage"]
        if placement.assignment.get(n) != NIC:
            continue
        if st.table is not None:
            nic_tables.append((st.table, n))
            used_actions |= {(st.table.nf, a) for a in st.table.actions}
        for eff_stmts in _called_actions(prog, st):
            used_actions.add(eff_stmts)

    def action(nf: str, name: str) -> P4Action:
        key = (nf, name)
        if key not in m.actions:
            act = prog.nfs[nf].actions[name]
            a = P4Action(nf, act, p4_ident(f"{nf}_{name}"), f"{nf}.{name}")
            a.params = [P4Param(pn, p4_ident(pn), w, i + 1) for i, (pn, w) in enumerate(act.params)]
            m.actions[key] = a
        return m.actions[key]

    layouts = flow_layouts(prog, g, placement, m.pipeline_index)
    for lay in layouts.values():  # fused code inlines table actions, and calls what the blocks call
        for st in fused_stages(stage_trees(g)[lay.pipeline], lay):
            used_actions |= set(_called_actions(prog, st))
            if st.table is not None:
                nf = prog.nfs[st.table.nf]
                for a in st.table.actions:
                    used_actions |= {(st.table.nf, s.action) for s in nf.actions[a].body
                                     if isinstance(s, P.CallActionOp)}
    for nf, name in sorted(used_actions):
        action(nf, name)
    for t, stage_id in sorted(nic_tables, key=lambda x: x[0].name):
        keys = [P4Key(str(k.field), k.field, k.match_kind, i + 1) for i, k in enumerate(t.keys)]
        pt = P4Table(t, p4_ident(f"{t.nf}_{t.name}"), f"{t.nf}.{t.name}", keys,
                     [action(t.nf, a) for a in t.actions], action(t.nf, t.default_action), stage_id=stage_id)
        if t.counters:
            pt.direct_counter = P4Counter(f"{t.nf}.{t.name}_counter", p4_ident(f"{t.nf}_{t.name}_counter"), 0,
                                          direct_table=pt.name)
        m.tables[t.name] = pt
    # Indirect counters used by any action or block on the NIC (fused code inlines table actions).
    fused_nfs = [(slot.nf, "") for lay in layouts.values() for slot in lay.tables]
    for (nf, _a) in [*m.actions, *fused_nfs]:
        for c in prog.nfs[nf].counters.values():
            m.counters.setdefault((nf, c.name), P4Counter(f"{nf}.{c.name}", p4_ident(f"{nf}_{c.name}"), c.size or 1))
    for n, d in g.nodes(data=True):
        st = d["stage"]
        fused = st.pipeline in layouts  # a fused action runs every block of the pipeline
        if (placement.assignment.get(n) == NIC or fused) and st.kind == "action" and st.nf is not None:
            for c in prog.nfs[st.nf].counters.values():
                m.counters.setdefault((st.nf, c.name),
                                      P4Counter(f"{st.nf}.{c.name}", p4_ident(f"{st.nf}_{c.name}"), c.size or 1))
    if layouts:
        _flow_table(m, layouts, placement)
    m.drop_counter = P4Counter("p4gen.drops", "p4gen_drops", len(DROP_REASONS) + len(drop_sites(prog)))
    drop = P.Action("drop", "p4gen", [("reason", 32)], [], (), Pos("<p4gen>", 0, 0))
    m.drop_action = P4Action("p4gen", drop, "p4gen_drop", "p4gen.drop", params=[P4Param("reason", "reason", 32, 1)])
    _assign_ids(list(m.tables.values()), PREFIX_TABLE, lambda t: _annotation_id(t.table.annotations))
    _assign_ids(list(m.registers), PREFIX_REGISTER, lambda r: None)
    _assign_ids(list(m.actions.values()) + [m.drop_action], PREFIX_ACTION,
                lambda a: _annotation_id(a.action.annotations))
    _assign_ids(list(m.counters.values()) + [m.drop_counter], PREFIX_COUNTER, lambda c: None)
    _assign_ids([t.direct_counter for t in m.tables.values() if t.direct_counter], PREFIX_DIRECT_COUNTER,
                lambda c: None)
    return m


def _flow_table(m: NicModel, layouts: dict[str, FlowLayout], placement: Placement) -> None:
    """The fused flow table and what goes with it, as model objects (P4 text and P4Info)."""
    nic = placement.problem.nic
    assert nic is not None and nic.offload is not None
    m.flow_layouts = layouts
    pos = Pos("<p4gen>", 0, 0)
    for name, lay in layouts.items():
        act = P.Action(lay.action_name.split(".", 1)[1], "p4gen", lay.action_params(), [], (), pos)
        a = P4Action("p4gen", act, p4_ident(lay.action_name.replace(".", "_")), lay.action_name)
        a.params = [P4Param(pn, pn, w, i + 1) for i, (pn, w) in enumerate(act.params)]
        m.flow_actions[name] = a
        m.actions[("p4gen", act.name)] = a
    miss = P4Action("p4gen", P.Action("flow_miss", "p4gen", [], [], (), pos), "p4gen_flow_miss", "p4gen.flow_miss")
    m.actions[("p4gen", "flow_miss")] = miss
    keys = [P.KeyField(P.FieldRef("meta", "p4gen_pipeline", 8), "exact", pos),
            P.KeyField(P.FieldRef("meta", "p4gen_flow_hash", HASH_WIDTH), "exact", pos)]
    names = [*(a.action.name for a in m.flow_actions.values()), "flow_miss"]
    table = P.Table("flows", "p4gen", keys, names, "flow_miss", [], nic.offload.flow_entries, True,
                    "idle_timeout" in nic.capabilities, (), pos)
    pt = P4Table(table, "p4gen_flows", FLOW_TABLE,
                 [P4Key(str(k.field), k.field, "exact", i + 1) for i, k in enumerate(keys)],
                 [*m.flow_actions.values(), miss], miss)
    pt.direct_counter = P4Counter(f"{FLOW_TABLE}_counter", "p4gen_flows_counter", 0, direct_table=FLOW_TABLE)
    m.tables[FLOW_TABLE] = pt
    m.counters[("p4gen", "flow_packets")] = P4Counter(FLOW_COUNTER, "p4gen_flow_packets", nic.offload.flow_entries)
    m.registers.append(P4Register(LEARN_REGISTER, "p4gen_learn", 32, LEARN_BUCKETS))


def _called_actions(prog: P.Program, st) -> list[tuple[str, str]]:
    """Actions an apply-block stage calls directly (`deny();`)."""
    return [(st.nf, s.action) for s in st.stmts if isinstance(s, P.CallActionOp)]
