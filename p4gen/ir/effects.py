"""What a piece of code does to a packet: fields read and written, header bytes added.

Derived from the checked program and the primitive table; the IR stores one
`Effect` per table action (or per straight-line block) on each stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from p4gen.frontend import program as P
from p4gen.frontend.primitives import PRIMITIVES


@dataclass
class Effect:
    reads: set[str] = field(default_factory=set)
    writes: set[str] = field(default_factory=set)
    ip_overhead: int = 0  # bytes added inside the outermost IP packet (what an IP MTU sees)
    frame_growth: int = 0  # bytes added to the frame
    drops: bool = False
    capabilities: set[str] = field(default_factory=set)
    primitives: list[str] = field(default_factory=list)

    def merge(self, other: Effect) -> None:
        """Sequential composition: `other` runs after `self`."""
        self.reads |= other.reads - self.writes
        self.writes |= other.writes
        self.ip_overhead += other.ip_overhead
        self.frame_growth += other.frame_growth
        self.drops = self.drops or other.drops
        self.capabilities |= other.capabilities
        self.primitives += other.primitives


def expand(prog: P.Program, names: tuple[str, ...] | set[str]) -> set[str]:
    """Field keys with `hdr.*` expanded to every field of the instance and its validity."""
    out: set[str] = set()
    for n in names:
        inst, _, fld = n.partition(".")
        if fld == "*":
            if inst in prog.instances:
                out.update(prog.instance_fields(inst))
        else:
            out.add(n)
    return out


def header_bytes(prog: P.Program, instances: tuple[str, ...]) -> int:
    return sum(prog.instances[i].type.fixed_bytes for i in instances if i in prog.instances)


def primitive_effect(prog: P.Program, op: P.PrimOp) -> Effect:
    prim = PRIMITIVES[op.name]
    e = Effect(capabilities={prim.capability}, primitives=[op.name])
    e.reads = expand(prog, prim.reads)
    e.writes = expand(prog, prim.writes)
    for a in op.args:
        e.reads |= P.operand_fields(a)
    if prim.pushes:
        # A tunnel pushes a new outer L2 header and carries the old frame
        # whole: inside the new outer IP packet sit every pushed header but
        # the outer Ethernet, plus the inner Ethernet header, which together
        # equal the bytes pushed.
        e.ip_overhead = header_bytes(prog, prim.pushes)
        e.frame_growth = e.ip_overhead
    if prim.pops:
        e.ip_overhead = -header_bytes(prog, prim.pops)
        e.frame_growth = e.ip_overhead
    if op.name == "push_vlan":
        e.frame_growth = header_bytes(prog, ("vlan",))
    elif op.name == "pop_vlan":
        e.frame_growth = -header_bytes(prog, ("vlan",))
    e.drops = prim.ends_packet
    return e


def stmts_effect(prog: P.Program, nf: P.Nf, stmts: list[P.StmtT] | tuple[P.StmtT, ...]) -> Effect:
    """Effect of straight-line statements (an action body or a block of an apply)."""
    total = Effect()
    for s in stmts:
        if isinstance(s, P.AssignOp):
            e = Effect(reads=P.operand_fields(s.value), writes={s.target.key}, capabilities={"rewrite"},
                       primitives=["assign"])
        elif isinstance(s, P.PrimOp):
            e = primitive_effect(prog, s)
        elif isinstance(s, P.CallActionOp):
            e = stmts_effect(prog, nf, nf.actions[s.action].body)
            for a in s.args:
                e.reads |= P.operand_fields(a)
        else:  # tables and conditionals are lowered to stages of their own
            raise ValueError(f"not straight-line code: {s!r}")
        total.merge(e)
    return total


def action_effects(prog: P.Program, table: P.Table) -> dict[str, Effect]:
    nf = prog.nfs[table.nf]
    return {a: stmts_effect(prog, nf, nf.actions[a].body) for a in table.actions}
