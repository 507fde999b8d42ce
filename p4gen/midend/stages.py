"""Pass: the checked program as a structured stage tree, one per pipeline.

A stage is the unit that placement assigns to a target: a table apply, a
straight-line block of an apply (the grouping rule: consecutive assignments,
primitives and action calls form one stage), a branch, a segmentation or
coalescing stage, plus the parse / classify / deparse ends of each pipeline.

The tree keeps the program's structure (sequence / branch / stage, each with its
source position): the IR graph (p4gen.ir.lower), the P4 emitter and the
hypervisor generator all walk it, so they agree on stage boundaries and numbers
by construction. Stages are numbered (`order`) in statement order, so the
stages of a branch arm form one contiguous range (`Seq.order_range`): both
targets steer a packet that resumes mid-pipeline into the arm holding its
resume stage with one range test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from p4gen.frontend import program as P
from p4gen.frontend.ast import Pos
from p4gen.ir.effects import Effect, action_effects, expand, stmts_effect

SEGMENT_READS = ("ipv4.*", "ipv6.*", "tcp.*")
SEGMENT_WRITES = ("ipv4.total_len", "ipv4.identification", "ipv4.hdr_checksum", "ipv6.payload_len",
                  "tcp.seq_no", "tcp.flags", "tcp.checksum")
SIMPLE = (P.AssignOp, P.PrimOp, P.CallActionOp)


@dataclass(eq=False)
class Stage:
    """One stage: what placement assigns, what each back end emits as one guarded unit."""

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


@dataclass(eq=False)
class Branch:
    """`if (cond) then else orelse`; `stage` is a branch stage, or the table stage of
    `if (t.apply().hit)` (`hit` = (table, wants hit))."""

    stage: Stage
    then: Seq
    orelse: Seq
    hit: tuple[str, bool] | None
    pos: Pos


@dataclass(eq=False)
class Seq:
    items: list[Stage | Branch] = field(default_factory=list)

    def stages(self):
        """Every stage inside, in order."""
        for it in self.items:
            if isinstance(it, Stage):
                yield it
            else:
                yield it.stage
                yield from it.then.stages()
                yield from it.orelse.stages()

    def order_range(self) -> tuple[int, int] | None:
        """(lowest, highest) order number of the stages inside (None when empty)."""
        orders = [s.order for s in self.stages()]
        return (min(orders), max(orders)) if orders else None


@dataclass(eq=False)
class PipelineTree:
    pipeline: P.Pipeline
    parse: Stage
    classify: Stage | None
    body: Seq
    deparse: Stage

    def stages(self) -> list[Stage]:
        out = [self.parse] + ([self.classify] if self.classify else [])
        return out + list(self.body.stages()) + [self.deparse]


def hit_condition(c: P.CondT) -> tuple[str, bool] | None:
    """(table, wants hit) for `if (t.apply().hit)` and its negations; None for other conditions."""
    if isinstance(c, P.HitC):
        return c.table, c.hit
    if isinstance(c, P.NotC) and isinstance(c.operand, P.HitC):
        return c.operand.table, not c.operand.hit
    return None


class _Builder:
    def __init__(self, prog: P.Program, pl: P.Pipeline):
        self.prog, self.pl = prog, pl
        self.order = 0
        self.nf_counter = 0

    def stage(self, kind: str, name: str, pos: Pos, **kw) -> Stage:
        st = Stage(id=f"{self.pl.name}/{name}", kind=kind, pipeline=self.pl.name, direction=self.pl.direction,
                   name=name, nf=kw.pop("nf", None), pos=pos, order=self.order, **kw)
        self.order += 1
        return st

    def build(self) -> PipelineTree:
        prog, pl = self.prog, self.pl
        parse = self.stage("parse", "parse", pl.pos)
        flows = [f for f in prog.flows.values() if f.pipeline == pl.name]
        classify = None
        if flows:
            reads: set[str] = set()
            for f in flows:
                reads |= P.cond_fields(f.match)
            classify = self.stage("classify", "classify", flows[0].pos, key_reads=reads)
        body = Seq()
        for name in pl.stages:
            if name in prog.segments or name in prog.coalesces:
                seg, co = prog.segments.get(name), prog.coalesces.get(name)
                decl = seg or co
                kind = "segment" if seg else "coalesce"
                eff = Effect(reads=expand(prog, SEGMENT_READS), writes=set(SEGMENT_WRITES), capabilities={kind},
                             primitives=[kind])
                body.items.append(self.stage(kind, name, decl.pos, segment=seg, coalesce=co, effects={"next": eff},
                                             annotations=decl.annotations))
            else:
                nf = prog.nfs[name]
                self.nf_counter = 0
                body.items += self.block(nf, nf.apply).items
        deparse = self.stage("deparse", "deparse", pl.pos)
        return PipelineTree(pl, parse, classify, body, deparse)

    def block(self, nf: P.Nf, stmts) -> Seq:
        seq = Seq()
        stmts = list(stmts)
        i = 0
        while i < len(stmts):
            s = stmts[i]
            if isinstance(s, SIMPLE):  # the grouping rule
                j = i
                while j < len(stmts) and isinstance(stmts[j], SIMPLE):
                    j += 1
                group = tuple(stmts[i:j])
                self.nf_counter += 1
                seq.items.append(self.stage("action", f"{nf.name}.block{self.nf_counter}", group[0].pos, nf=nf.name,
                                            effects={"next": stmts_effect(self.prog, nf, group)}, stmts=group,
                                            annotations=nf.annotations))
                i = j
                continue
            i += 1
            if isinstance(s, P.ApplyOp):
                seq.items.append(self.table(nf, s.table))
                continue
            assert isinstance(s, P.IfOp)
            hit = hit_condition(s.cond)
            if hit is not None:
                st = self.table(nf, hit[0])
            else:
                self.nf_counter += 1
                st = self.stage("branch", f"{nf.name}.if{self.nf_counter}", s.pos, nf=nf.name, cond=s.cond,
                                key_reads=P.cond_fields(s.cond), effects={"true": Effect(), "false": Effect()},
                                annotations=nf.annotations)
            then = self.block(nf, s.then)
            orelse = self.block(nf, s.orelse)
            seq.items.append(Branch(st, then, orelse, hit, s.pos))
        return seq

    def table(self, nf: P.Nf, table_name: str) -> Stage:
        t = nf.tables[table_name]
        return self.stage("table", f"{nf.name}.{t.name}", t.pos, nf=nf.name, table=t,
                          effects=action_effects(self.prog, t), key_reads={k.field.key for k in t.keys},
                          annotations=nf.annotations + t.annotations)


def build_stage_trees(prog: P.Program) -> dict[str, PipelineTree]:
    """One tree per pipeline, stages numbered from 0 across the whole program."""
    trees: dict[str, PipelineTree] = {}
    order = 0
    for name, pl in prog.pipelines.items():
        b = _Builder(prog, pl)
        b.order = order
        trees[name] = b.build()
        order = b.order
    return trees


def dump(tree: PipelineTree) -> str:
    """The tree as indented text (for golden files and debugging): `order kind id`."""
    lines: list[str] = []

    def stage(st: Stage, ind: int) -> None:
        lines.append(f"{'    ' * ind}{st.order:3d} {st.kind} {st.id} @{st.pos.line}")

    def seq(s: Seq, ind: int) -> None:
        for it in s.items:
            if isinstance(it, Stage):
                stage(it, ind)
                continue
            stage(it.stage, ind)
            lines.append(f"{'    ' * ind}    then {it.then.order_range()}:")
            seq(it.then, ind + 2)
            if it.orelse.items:
                lines.append(f"{'    ' * ind}    else {it.orelse.order_range()}:")
                seq(it.orelse, ind + 2)

    stage(tree.parse, 0)
    if tree.classify:
        stage(tree.classify, 0)
    seq(tree.body, 0)
    stage(tree.deparse, 0)
    return "\n".join(lines) + "\n"
