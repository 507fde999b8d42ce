"""The checked program: every name resolved, every width known.

`check.check_program` produces a `Program` from syntax trees; the IR builder,
placement and back ends read only this model, never the syntax tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from p4gen.frontend.ast import Annotation, Pos

# ---------------------------------------------------------------- packet formats


@dataclass
class FieldType:
    name: str
    width: int  # bits (maximum for a varbit)
    offset: int  # bits from the start of the header; fixed fields only
    varbit_length: Operand | None = None  # length in bits, from earlier fields
    pos: Pos | None = None

    @property
    def is_varbit(self) -> bool:
        return self.varbit_length is not None


@dataclass
class HeaderType:
    name: str
    fields: list[FieldType]
    pos: Pos

    def field(self, name: str) -> FieldType | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    @property
    def fixed_bits(self) -> int:
        return sum(f.width for f in self.fields if not f.is_varbit)

    @property
    def fixed_bytes(self) -> int:
        return self.fixed_bits // 8

    @property
    def varbit(self) -> FieldType | None:
        return next((f for f in self.fields if f.is_varbit), None)


@dataclass
class Instance:
    name: str
    type: HeaderType
    stack: int | None
    pos: Pos


@dataclass(frozen=True)
class FieldRef:
    """A header or metadata field. `instance` is "meta" for metadata."""

    instance: str
    field: str
    width: int
    index: int | str | None = None  # stack element: int, "last" or "next"

    @property
    def key(self) -> str:
        """Canonical name used in read/write sets (stack indices folded)."""
        return f"{self.instance}.{self.field}"

    def __str__(self) -> str:
        if self.index is None:
            return self.key
        idx = f"[{self.index}]" if isinstance(self.index, int) else f".{self.index}"
        return f"{self.instance}{idx}.{self.field}"


def valid_key(instance: str) -> str:
    """Pseudo-field naming a header's validity bit in read/write sets."""
    return f"{instance}.$valid"


# ---------------------------------------------------------------- operands


@dataclass(frozen=True)
class ConstVal:
    value: int
    kind: str  # "int" | "ipv4" | "ipv6" | "mac"
    width: int | None  # None for plain integers (fit is checked at use)
    name: str | None = field(default=None, compare=False)  # the DSL constant it came from, if any


@dataclass(frozen=True)
class ParamRef:
    name: str
    width: int


@dataclass(frozen=True)
class CounterRef:
    nf: str
    name: str
    size: int | None


@dataclass(frozen=True)
class Arith:
    """`left op right` computed at `width` bits, wrapping (P4's unsigned arithmetic); the width
    is set by the midend's width pass (p4gen.midend.widths), 0 until then."""

    op: str
    left: Operand
    right: Operand
    width: int = 0

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1


@dataclass(frozen=True)
class HashOf:
    args: tuple[Operand, ...]


@dataclass(frozen=True)
class Select:
    """`cond ? then : orelse` (made by the midend's core operations, not written in the DSL)."""

    cond: CondT
    then: Operand
    orelse: Operand


Operand = Union[ConstVal, ParamRef, FieldRef, CounterRef, Arith, HashOf, Select]


def operand_fields(op: Operand) -> set[str]:
    """Field keys an operand reads."""
    if isinstance(op, FieldRef):
        return {op.key}
    if isinstance(op, Arith):
        return operand_fields(op.left) | operand_fields(op.right)
    if isinstance(op, HashOf):
        out: set[str] = set()
        for a in op.args:
            out |= operand_fields(a)
        return out
    if isinstance(op, Select):
        return cond_fields(op.cond) | operand_fields(op.then) | operand_fields(op.orelse)
    return set()


# ---------------------------------------------------------------- conditions


@dataclass(frozen=True)
class ValidC:
    instance: str
    index: int | str | None = None  # a stack element: 0, 1, "last"


@dataclass(frozen=True)
class HitC:
    table: str
    hit: bool


@dataclass(frozen=True)
class CmpC:
    op: str
    left: Operand
    right: Operand


@dataclass(frozen=True)
class BoolC:
    value: bool


@dataclass(frozen=True)
class NotC:
    operand: CondT


@dataclass(frozen=True)
class AndC:
    operands: tuple[CondT, ...]


@dataclass(frozen=True)
class OrC:
    operands: tuple[CondT, ...]


CondT = Union[ValidC, HitC, CmpC, BoolC, NotC, AndC, OrC]


def cond_fields(c: CondT) -> set[str]:
    if isinstance(c, ValidC):
        return {valid_key(c.instance)}
    if isinstance(c, CmpC):
        return operand_fields(c.left) | operand_fields(c.right)
    if isinstance(c, NotC):
        return cond_fields(c.operand)
    if isinstance(c, (AndC, OrC)):
        out: set[str] = set()
        for o in c.operands:
            out |= cond_fields(o)
        return out
    return set()


# ---------------------------------------------------------------- statements


@dataclass(frozen=True)
class AssignOp:
    target: FieldRef
    value: Operand
    pos: Pos


@dataclass(frozen=True)
class PrimOp:
    name: str
    args: tuple[Operand, ...]
    pos: Pos


@dataclass(frozen=True)
class CallActionOp:
    action: str
    args: tuple[Operand, ...]
    pos: Pos


@dataclass(frozen=True)
class ApplyOp:
    table: str
    pos: Pos


@dataclass(frozen=True)
class IfOp:
    cond: CondT
    then: tuple[StmtT, ...]
    orelse: tuple[StmtT, ...]
    pos: Pos


StmtT = Union[AssignOp, PrimOp, CallActionOp, ApplyOp, IfOp]


# ---------------------------------------------------------------- nf members


@dataclass
class Action:
    name: str
    nf: str
    params: list[tuple[str, int]]
    body: list[StmtT]
    annotations: tuple[Annotation, ...]
    pos: Pos


@dataclass
class KeyField:
    field: FieldRef
    match_kind: str
    pos: Pos


@dataclass
class Table:
    name: str
    nf: str
    keys: list[KeyField]
    actions: list[str]
    default_action: str
    default_args: list[int]
    size: int
    counters: bool
    idle_timeout: bool
    annotations: tuple[Annotation, ...]
    pos: Pos

    @property
    def needs_priority(self) -> bool:
        """P4Runtime: tables with ternary, range or optional keys order entries by priority."""
        return any(k.match_kind in ("ternary", "range", "optional") for k in self.keys)


@dataclass
class Counter:
    name: str
    nf: str
    size: int | None
    pos: Pos


@dataclass
class Nf:
    name: str
    actions: dict[str, Action]
    tables: dict[str, Table]
    counters: dict[str, Counter]
    apply: list[StmtT]
    annotations: tuple[Annotation, ...]
    pos: Pos


@dataclass
class Segment:
    """TCP segmentation. `mss` None means `auto`: derived from downstream overhead."""

    name: str
    mss: int | None
    max_mss: int
    underlay_mtu: int
    annotations: tuple[Annotation, ...]
    pos: Pos


@dataclass
class Coalesce:
    name: str
    max_size: int
    annotations: tuple[Annotation, ...]
    pos: Pos


@dataclass
class Pipeline:
    name: str
    direction: str  # "vm_egress" | "vm_ingress"
    stages: list[str]
    annotations: tuple[Annotation, ...]
    pos: Pos


@dataclass
class Flow:
    name: str
    match: CondT
    pipeline: str
    pos: Pos


# ---------------------------------------------------------------- parser


@dataclass
class ParserState:
    name: str
    extracts: list[tuple[str, int | str | None]]  # (instance, None | "next")
    assigns: list[tuple[FieldRef, Operand]]
    selector: list[Operand]
    cases: list[tuple[list[KeyMatch | None], str]]  # None key = default
    pos: Pos


# ---------------------------------------------------------------- entries


@dataclass(frozen=True)
class KeyMatch:
    """One key of an entry, normalised: what P4Runtime will be sent."""

    kind: str  # exact | lpm | ternary | range | optional
    value: int = 0
    mask: int | None = None  # ternary
    prefix_len: int | None = None  # lpm
    high: int | None = None  # range: value is the low end
    wildcard: bool = False


@dataclass
class TableEntry:
    nf: str
    table: str
    keys: list[KeyMatch]
    action: str
    args: list[int]
    priority: int | None
    pos: Pos


# ---------------------------------------------------------------- the program


@dataclass
class Program:
    files: list[str]
    headers: dict[str, HeaderType] = field(default_factory=dict)
    instances: dict[str, Instance] = field(default_factory=dict)
    metadata: dict[str, tuple[int, Pos]] = field(default_factory=dict)
    consts: dict[str, ConstVal] = field(default_factory=dict)
    parser: dict[str, ParserState] = field(default_factory=dict)
    nfs: dict[str, Nf] = field(default_factory=dict)
    segments: dict[str, Segment] = field(default_factory=dict)
    coalesces: dict[str, Coalesce] = field(default_factory=dict)
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    flows: dict[str, Flow] = field(default_factory=dict)
    entries: list[TableEntry] = field(default_factory=list)

    def table(self, nf: str, name: str) -> Table:
        return self.nfs[nf].tables[name]

    def deparse_order(self) -> list[str]:
        """Instances in an order that agrees with every parse path: a topological order of
        "the parser can extract A before B", ties broken breadth-first from `start` (siblings
        such as ipv4/ipv6 before what follows them, outer headers before inner ones), so a
        header reachable both before and after another (a user header after Ethernet or after
        an 802.1Q tag) is emitted where every path puts it. Instances no state extracts come
        last. Both the P4 deparser and the hypervisor's deparser emit headers in this order."""
        bfs: list[str] = []
        seen = {"start"}
        frontier = ["start"]
        while frontier:
            nxt: list[str] = []
            for name in frontier:
                st = self.parser.get(name)
                if st is None:
                    continue
                for inst, _ in st.extracts:
                    if inst not in bfs:
                        bfs.append(inst)
                for _keys, target in st.cases:
                    if target not in seen:
                        seen.add(target)
                        nxt.append(target)
            frontier = nxt
        before: dict[str, set[str]] = {i: set() for i in bfs}  # instance → instances that precede it

        def firsts(state: str, visiting: frozenset[str] = frozenset()) -> set[str]:
            """The instances a path entering `state` extracts first."""
            st = self.parser.get(state)
            if st is None or state in visiting:
                return set()
            if st.extracts:
                return {st.extracts[0][0]}
            out: set[str] = set()
            for _keys, target in st.cases:
                out |= firsts(target, visiting | {state})
            return out

        for st in self.parser.values():
            names = [inst for inst, _ in st.extracts]
            for a, b in zip(names, names[1:], strict=False):
                if a != b:
                    before[b].add(a)
            if names:
                for _keys, target in st.cases:
                    for b in firsts(target):
                        if b != names[-1] and b in before:
                            before[b].add(names[-1])
        order: list[str] = []
        rank = {inst: k for k, inst in enumerate(bfs)}
        pending = set(bfs)
        while pending:
            ready = [i for i in pending if not (before[i] & pending)]
            pick = min(ready or pending, key=rank.__getitem__)  # a cycle: fall back to breadth-first
            order.append(pick)
            pending.discard(pick)
        return order + [i for i in self.instances if i not in order]

    def instance_fields(self, instance: str) -> list[str]:
        """Every field key of an instance plus its validity pseudo-field."""
        inst = self.instances[instance]
        return [f"{instance}.{f.name}" for f in inst.type.fields] + [valid_key(instance)]
