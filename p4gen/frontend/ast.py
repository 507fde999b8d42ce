"""Syntax tree of a .nf file: small frozen dataclasses, one per construct.

Every node carries the `Pos` it came from so that every later pass (checks,
IR, placement, P4 emission) can point back at the DSL source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from p4gen.diagnostics import Pos

NOWHERE = Pos("<builtin>", 0, 0)


# ---------------------------------------------------------------- literals


@dataclass(frozen=True)
class IntLit:
    value: int
    text: str
    pos: Pos


@dataclass(frozen=True)
class AddrLit:
    """IPv4, IPv6 or MAC address, optionally with a /prefix length."""

    kind: str  # "ipv4" | "ipv6" | "mac"
    value: int
    width: int  # 32, 128 or 48
    prefix: int | None
    text: str
    pos: Pos


@dataclass(frozen=True)
class StrLit:
    value: str
    pos: Pos


Literal = Union[IntLit, AddrLit, StrLit]


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Path:
    """A dotted name: a constant, a parameter, `hdr.field`, `vlan[1].vid`, `vlan.last.ether_type`."""

    parts: tuple[str, ...]
    index: int | None
    pos: Pos

    def __str__(self) -> str:
        head = self.parts[0] + (f"[{self.index}]" if self.index is not None else "")
        return ".".join((head,) + self.parts[1:])


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Expr
    right: Expr
    pos: Pos


@dataclass(frozen=True)
class HashExpr:
    args: tuple[Expr, ...]
    pos: Pos


Expr = Union[IntLit, AddrLit, StrLit, Path, BinOp, HashExpr]


# ---------------------------------------------------------------- conditions


@dataclass(frozen=True)
class Valid:
    header: Path
    pos: Pos


@dataclass(frozen=True)
class ApplyHit:
    table: Path
    hit: bool
    pos: Pos


@dataclass(frozen=True)
class Compare:
    op: str
    left: Expr
    right: Expr
    pos: Pos


@dataclass(frozen=True)
class BoolConst:
    value: bool
    pos: Pos


@dataclass(frozen=True)
class Not:
    operand: Cond
    pos: Pos


@dataclass(frozen=True)
class And:
    operands: tuple[Cond, ...]
    pos: Pos


@dataclass(frozen=True)
class Or:
    operands: tuple[Cond, ...]
    pos: Pos


Cond = Union[Valid, ApplyHit, Compare, BoolConst, Not, And, Or]


# ---------------------------------------------------------------- statements


@dataclass(frozen=True)
class Assign:
    target: Path
    value: Expr
    pos: Pos


@dataclass(frozen=True)
class Call:
    """A primitive (`drop()`, `vxlan_encap(...)`) or an action of the enclosing nf."""

    name: str
    args: tuple[Expr, ...]
    pos: Pos


@dataclass(frozen=True)
class ApplyTable:
    table: Path
    pos: Pos


@dataclass(frozen=True)
class If:
    cond: Cond
    then: tuple[Stmt, ...]
    orelse: tuple[Stmt, ...]
    pos: Pos


Stmt = Union[Assign, Call, ApplyTable, If]


# ---------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Annotation:
    name: str
    args: tuple[Literal | str, ...]
    pos: Pos


@dataclass(frozen=True)
class Import:
    path: str
    pos: Pos


@dataclass(frozen=True)
class Const:
    name: str
    value: Literal
    pos: Pos


@dataclass(frozen=True)
class FieldDecl:
    name: str
    width: int  # bits; for varbit, the maximum
    varbit_length: Expr | None
    pos: Pos


@dataclass(frozen=True)
class HeaderDecl:
    name: str
    fields: tuple[FieldDecl, ...]
    annotations: tuple[Annotation, ...]
    pos: Pos


@dataclass(frozen=True)
class InstanceDecl:
    name: str
    type_name: str
    stack: int | None
    pos: Pos
    type_pos: Pos | None = None


@dataclass(frozen=True)
class PacketDecl:
    instances: tuple[InstanceDecl, ...]
    pos: Pos


@dataclass(frozen=True)
class MetaField:
    name: str
    width: int
    pos: Pos


@dataclass(frozen=True)
class MetadataDecl:
    fields: tuple[MetaField, ...]
    pos: Pos


@dataclass(frozen=True)
class Extract:
    header: Path
    pos: Pos


@dataclass(frozen=True)
class ParserAssign:
    target: Path
    value: Expr
    pos: Pos


@dataclass(frozen=True)
class Default:
    pos: Pos


@dataclass(frozen=True)
class Wildcard:
    pos: Pos


@dataclass(frozen=True)
class ConstRef:
    name: str
    pos: Pos


@dataclass(frozen=True)
class TernaryValue:
    value: Literal
    mask: Literal
    pos: Pos


@dataclass(frozen=True)
class RangeValue:
    low: Literal
    high: Literal
    pos: Pos


MatchValue = Union[IntLit, AddrLit, StrLit, TernaryValue, RangeValue, Wildcard, ConstRef]


@dataclass(frozen=True)
class SelectCase:
    keys: tuple[MatchValue | Default, ...]
    next_state: str
    pos: Pos


@dataclass(frozen=True)
class Transition:
    """`transition NAME` (no selector) or `transition select(...) {...}`."""

    selector: tuple[Expr, ...]
    cases: tuple[SelectCase, ...]
    goto: str | None
    pos: Pos


@dataclass(frozen=True)
class StateDecl:
    name: str
    body: tuple[Extract | ParserAssign, ...]
    transition: Transition
    override: bool
    pos: Pos


@dataclass(frozen=True)
class ParserDecl:
    states: tuple[StateDecl, ...]
    pos: Pos


@dataclass(frozen=True)
class Param:
    name: str
    width: int
    pos: Pos


@dataclass(frozen=True)
class ActionDecl:
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    annotations: tuple[Annotation, ...]
    pos: Pos


@dataclass(frozen=True)
class KeyElem:
    field: Path
    match_kind: str
    pos: Pos


@dataclass(frozen=True)
class TableProp:
    """One `name = value;` of a table, kept raw so the checker can report duplicates."""

    name: str
    value: object
    pos: Pos


@dataclass(frozen=True)
class ActionCall:
    name: str
    args: tuple[Expr, ...]
    pos: Pos


@dataclass(frozen=True)
class TableDecl:
    name: str
    keys: tuple[KeyElem, ...]
    actions: tuple[tuple[str, Pos], ...]
    default_action: ActionCall | None
    size: int | None
    counters: bool
    idle_timeout: bool
    annotations: tuple[Annotation, ...]
    props: tuple[TableProp, ...]
    pos: Pos


@dataclass(frozen=True)
class CounterDecl:
    name: str
    size: int | None
    annotations: tuple[Annotation, ...]
    pos: Pos


@dataclass(frozen=True)
class NfDecl:
    name: str
    actions: tuple[ActionDecl, ...]
    tables: tuple[TableDecl, ...]
    counters: tuple[CounterDecl, ...]
    apply: tuple[Stmt, ...]
    annotations: tuple[Annotation, ...]
    pos: Pos


@dataclass(frozen=True)
class StageProp:
    name: str
    value: Literal | ConstRef | str  # "auto" for `mss = auto`
    pos: Pos


@dataclass(frozen=True)
class SegmentDecl:
    name: str
    props: tuple[StageProp, ...]
    annotations: tuple[Annotation, ...]
    pos: Pos


@dataclass(frozen=True)
class CoalesceDecl:
    name: str
    props: tuple[StageProp, ...]
    annotations: tuple[Annotation, ...]
    pos: Pos


@dataclass(frozen=True)
class PipelineDecl:
    name: str
    direction: str
    direction_pos: Pos
    stages: tuple[tuple[str, Pos], ...]
    annotations: tuple[Annotation, ...]
    pos: Pos


@dataclass(frozen=True)
class FlowDecl:
    name: str
    match: Cond
    pipeline: str
    pipeline_pos: Pos
    pos: Pos


@dataclass(frozen=True)
class Entry:
    keys: tuple[MatchValue, ...]
    action: str
    args: tuple[Expr, ...]
    priority: int | None
    pos: Pos
    action_pos: Pos | None = None
    priority_pos: Pos | None = None


@dataclass(frozen=True)
class EntriesDecl:
    nf: str
    table: str
    entries: tuple[Entry, ...]
    pos: Pos
    table_pos: Pos | None = None


Decl = Union[
    Import, Const, HeaderDecl, PacketDecl, MetadataDecl, ParserDecl, NfDecl,
    SegmentDecl, CoalesceDecl, PipelineDecl, FlowDecl, EntriesDecl,
]


@dataclass(frozen=True)
class SourceFile:
    path: str
    text: str
    decls: tuple[Decl, ...] = field(default=())
