"""Pass 1: lower every pipeline to stages joined by control-flow edges.

A stage is the unit that placement assigns to a target: a table apply, a
straight-line block of an apply, a branch, a segmentation or coalescing
stage, plus the parse / classify / deparse ends of each pipeline.

Control edges carry labels: `next`, `true`/`false` (branches), an action
name (table applied for its action), `ACTION/hit` or `ACTION/miss` (table
applied in `if (t.apply().hit)`). A DiGraph keeps one edge per node pair,
so the labels of parallel transitions are kept as a list on that edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from p4gen.frontend import program as P
from p4gen.frontend.ast import Pos
from p4gen.ir.effects import Effect, action_effects, expand, stmts_effect

SEGMENT_READS = ("ipv4.*", "ipv6.*", "tcp.*")
SEGMENT_WRITES = ("ipv4.total_len", "ipv4.identification", "ipv4.hdr_checksum", "ipv6.payload_len",
                  "tcp.seq_no", "tcp.flags", "tcp.checksum")


@dataclass
class Stage:
    """Payload of an IR node (also exposed as plain node attributes)."""

    id: str
    kind: str  # parse | classify | table | action | branch | segment | coalesce | deparse
    pipeline: str
    direction: str
    name: str
    nf: str | None
    pos: Pos
    order: int
    effects: dict[str, Effect] = field(default_factory=dict)  # label → effect of taking it
    key_reads: set[str] = field(default_factory=set)
    table: P.Table | None = None
    segment: P.Segment | None = None
    coalesce: P.Coalesce | None = None
    cond: P.CondT | None = None
    stmts: tuple = ()  # the statements of an action block
    annotations: tuple = ()

    @property
    def reads(self) -> set[str]:
        out = set(self.key_reads)
        for e in self.effects.values():
            out |= e.reads
        return out

    @property
    def writes(self) -> set[str]:
        out: set[str] = set()
        for e in self.effects.values():
            out |= e.writes
        return out


Exit = tuple[str, str]  # (node, label) still to be connected to what comes next


class _Lowerer:
    def __init__(self, prog: P.Program, g: nx.DiGraph):
        self.prog = prog
        self.g = g
        self.order = 0

    def add(self, stage: Stage, stmt: object | None = None) -> str:
        if stmt is not None:  # the back end walks structured code and needs each statement's stage
            self.g.graph.setdefault("stmt_stage", {})[id(stmt)] = stage.id
        stage.order = self.order
        self.order += 1
        self.g.add_node(stage.id, stage=stage, kind=stage.kind, pipeline=stage.pipeline, pos=stage.pos,
                        reads=frozenset(stage.reads), writes=frozenset(stage.writes))
        return stage.id

    def connect(self, exits: list[Exit], target: str) -> None:
        for src, label in exits:
            if self.g.has_edge(src, target):
                self.g.edges[src, target]["control"].append(label)
            else:
                self.g.add_edge(src, target, control=[label], raw=set())

    def pipeline(self, pl: P.Pipeline) -> None:
        def stage(kind: str, name: str, pos: Pos, **kw) -> Stage:
            return Stage(id=f"{pl.name}/{name}", kind=kind, pipeline=pl.name, direction=pl.direction,
                         name=name, nf=kw.pop("nf", None), pos=pos, order=0, **kw)

        entry = self.add(stage("parse", "parse", pl.pos))
        exits: list[Exit] = [(entry, "next")]
        flows = [f for f in self.prog.flows.values() if f.pipeline == pl.name]
        if flows:
            reads: set[str] = set()
            for f in flows:
                reads |= P.cond_fields(f.match)
            cls = self.add(stage("classify", "classify", flows[0].pos, key_reads=reads))
            self.connect(exits, cls)
            exits = [(cls, "next")]
        for name in pl.stages:
            if name in self.prog.segments:
                seg = self.prog.segments[name]
                eff = Effect(reads=expand(self.prog, SEGMENT_READS), writes=set(SEGMENT_WRITES),
                             capabilities={"segment"}, primitives=["segment"])
                node = self.add(stage("segment", name, seg.pos, segment=seg, effects={"next": eff},
                                      annotations=seg.annotations), seg)
                self.connect(exits, node)
                exits = [(node, "next")]
            elif name in self.prog.coalesces:
                co = self.prog.coalesces[name]
                eff = Effect(reads=expand(self.prog, SEGMENT_READS), writes=set(SEGMENT_WRITES),
                             capabilities={"coalesce"}, primitives=["coalesce"])
                node = self.add(stage("coalesce", name, co.pos, coalesce=co, effects={"next": eff},
                                      annotations=co.annotations), co)
                self.connect(exits, node)
                exits = [(node, "next")]
            else:
                nf = self.prog.nfs[name]
                self.nf_counter = 0
                exits = self.block(pl, nf, nf.apply, exits, stage)
        exit_node = self.add(stage("deparse", "deparse", pl.pos))
        self.connect(exits, exit_node)

    def block(self, pl: P.Pipeline, nf: P.Nf, stmts, exits: list[Exit], stage) -> list[Exit]:
        pending: list[P.StmtT] = []

        def flush() -> None:
            nonlocal exits, pending
            if not pending:
                return
            self.nf_counter += 1
            eff = stmts_effect(self.prog, nf, pending)
            node = self.add(stage("action", f"{nf.name}.block{self.nf_counter}", pending[0].pos, nf=nf.name,
                                  effects={"next": eff}, stmts=tuple(pending), annotations=nf.annotations),
                            pending[0])
            self.connect(exits, node)
            exits = [(node, "next")]
            pending = []

        for s in stmts:
            if isinstance(s, (P.AssignOp, P.PrimOp, P.CallActionOp)):
                pending.append(s)
                continue
            flush()
            if isinstance(s, P.ApplyOp):
                node = self.table_stage(nf, s.table, stage, s)
                self.connect(exits, node)
                exits = [(node, a) for a in nf.tables[s.table].actions]
                continue
            assert isinstance(s, P.IfOp)
            hit = hit_condition(s.cond)
            if hit is not None:
                table_name, want_hit = hit
                node = self.table_stage(nf, table_name, stage, s)
                self.connect(exits, node)
                t = nf.tables[table_name]
                hit_exits = [(node, f"{a}/hit") for a in t.actions]
                miss_exits = [(node, f"{t.default_action}/miss")]
                then_in, else_in = (hit_exits, miss_exits) if want_hit else (miss_exits, hit_exits)
            else:
                self.nf_counter += 1
                node = self.add(stage("branch", f"{nf.name}.if{self.nf_counter}", s.pos, nf=nf.name, cond=s.cond,
                                      key_reads=P.cond_fields(s.cond),
                                      effects={"true": Effect(), "false": Effect()}, annotations=nf.annotations), s)
                self.connect(exits, node)
                then_in, else_in = [(node, "true")], [(node, "false")]
            then_out = self.block(pl, nf, s.then, then_in, stage)
            else_out = self.block(pl, nf, s.orelse, else_in, stage)
            exits = then_out + else_out
        flush()
        return exits

    def table_stage(self, nf: P.Nf, table_name: str, stage, stmt: object) -> str:
        t = nf.tables[table_name]
        effects = action_effects(self.prog, t)
        st = stage("table", f"{nf.name}.{t.name}", t.pos, nf=nf.name, table=t, effects=effects,
                   key_reads={k.field.key for k in t.keys}, annotations=nf.annotations + t.annotations)
        return self.add(st, stmt)


def hit_condition(c: P.CondT) -> tuple[str, bool] | None:
    """(table, wants hit) for `if (t.apply().hit)` and its negations; None for other conditions."""
    if isinstance(c, P.HitC):
        return c.table, c.hit
    if isinstance(c, P.NotC) and isinstance(c.operand, P.HitC):
        return c.operand.table, not c.operand.hit
    return None


def lower_program(prog: P.Program) -> nx.DiGraph:
    g = nx.DiGraph(program=prog)
    low = _Lowerer(prog, g)
    for pl in prog.pipelines.values():
        low.pipeline(pl)
    return g


def arm_order_range(g: nx.DiGraph, stmts) -> tuple[int, int] | None:
    """(lowest, highest) IR order number of the stages inside a branch arm.

    Lowering numbers stages in statement order, so an arm's stages form one
    contiguous range: the NIC program and the hypervisor steer a resumed packet
    into the arm whose range holds its resume stage."""
    stmt_stage = g.graph.get("stmt_stage", {})
    orders: list[int] = []

    def walk(ss) -> None:
        for s in ss:
            sid = stmt_stage.get(id(s))
            if sid is not None:
                orders.append(g.nodes[sid]["stage"].order)
            if isinstance(s, P.IfOp):
                walk(s.then)
                walk(s.orelse)

    walk(stmts)
    return (min(orders), max(orders)) if orders else None
