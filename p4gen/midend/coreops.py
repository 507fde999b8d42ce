"""Core operations: what every primitive means, defined once.

A primitive call (`dec_ttl()`, `push_vlan(10)`, `vxlan_encap(...)`) is expanded here
into a short list of core operations with explicit widths; the P4 emitter and the
hypervisor generator each translate core operations and know no primitive:

    Assign(target, value)     target = value, wrapping at the target's width; a field
                              of an invalid header is not written
    PushFront(stack)          P4's push_front(1), then element 0 valid and zeroed
    PopFront(stack)           P4's pop_front(1)
    Forward(port)             the packet's fate: leave by a NIC port
    Drop()                    ... discarded
    ToHypervisor(code)        ... to the hypervisor's slow path, with a code
    DropIf(cond, reason)      the packet's fate when `cond` holds: dropped, counted as `reason`
                              (a primitive's precondition: one of crossing.DROP_REASONS)
    Count(counter, index)     count the packet (and its bytes) in an indirect counter
    Encap(tunnel, args)       push a tunnel's outer headers (protocols.TunnelSpec)
    Decap(tunnel)             remove them: the inner headers take the outer names

A value is an operand of the checked program (fields, parameters, constants, `Arith`
with its width, `Select`).
"""

from __future__ import annotations

from dataclasses import dataclass

from p4gen.frontend import program as P
from p4gen.frontend.primitives import INNER_OF
from p4gen.midend.protocols import ETHERTYPE_VLAN, TUNNELS, TunnelSpec
from p4gen.midend.widths import sized


@dataclass(frozen=True)
class Assign:
    target: P.FieldRef
    value: P.Operand


@dataclass(frozen=True)
class PushFront:
    stack: str


@dataclass(frozen=True)
class PopFront:
    stack: str


@dataclass(frozen=True)
class Forward:
    port: P.Operand


@dataclass(frozen=True)
class Drop:
    pass


@dataclass(frozen=True)
class DropIf:
    cond: P.CondT
    reason: str


@dataclass(frozen=True)
class ToHypervisor:
    code: P.Operand


@dataclass(frozen=True)
class Count:
    counter: P.CounterRef
    index: P.Operand


@dataclass(frozen=True)
class Encap:
    tunnel: TunnelSpec
    args: tuple[P.Operand, ...]


@dataclass(frozen=True)
class Decap:
    tunnel: TunnelSpec


CoreOp = Assign | PushFront | PopFront | Forward | Drop | DropIf | ToHypervisor | Count | Encap | Decap

PORT_WIDTH = 9  # v1model's egress_spec
CODE_WIDTH = 8  # p4gen_t.code


def _f(inst: str, name: str, width: int, index: int | None = None) -> P.FieldRef:
    return P.FieldRef(inst, name, width, index)


def _int(value: int) -> P.ConstVal:
    return P.ConstVal(value, "int", None)


MOVABLE = frozenset(INNER_OF) | frozenset(INNER_OF.values()) | {"vlan"} | frozenset(TUNNELS)


def _unmovable(prog: P.Program) -> list[CoreOp]:
    """A tunnel moves only the standard headers (they have inner names): a packet that holds a
    header of the program's own is dropped (counted) rather than sent with it misplaced."""
    own = [P.ValidC(i, 0 if inst.stack else None) for i, inst in prog.instances.items() if i not in MOVABLE]
    return [DropIf(P.OrC(tuple(own)), "unmovable_header")] if own else []


def expand(prog: P.Program, s: P.PrimOp) -> list[CoreOp]:
    """The core operations of one primitive call (arguments already sized by the checker)."""
    a, name = s.args, s.name
    if name == "drop":
        return [Drop()]
    if name == "forward":
        return [Forward(sized(a[0], PORT_WIDTH))]
    if name == "to_hypervisor":
        return [ToHypervisor(sized(a[0], CODE_WIDTH))]
    if name == "count":
        assert isinstance(a[0], P.CounterRef)
        return [Count(a[0], a[1])]
    if name == "dec_ttl":
        ttl, hop = _f("ipv4", "ttl", 8), _f("ipv6", "hop_limit", 8)
        return [Assign(ttl, P.Arith("-", ttl, _int(1), 8)), Assign(hop, P.Arith("-", hop, _int(1), 8))]
    if name == "set_dscp":
        tc = _f("ipv6", "traffic_class", 8)
        ecn = P.Arith("&", tc, _int(0b11), 8)  # IPv6's traffic class is DSCP (6 bits) then ECN (2)
        return [Assign(_f("ipv4", "dscp", 6), sized(a[0], 6)),
                Assign(tc, P.Arith("|", ecn, P.Arith("<<", sized(a[0], 8), _int(2), 8), 8))]
    if name == "push_vlan":
        depth = prog.instances["vlan"].stack or 1  # a tag more than the stack holds: dropped, not corrupted
        return [DropIf(P.ValidC("vlan", depth - 1), "vlan_overflow"), PushFront("vlan"),
                Assign(_f("vlan", "pcp", 3, 0), sized(a[1], 3)),
                Assign(_f("vlan", "vid", 12, 0), sized(a[0], 12)),
                Assign(_f("vlan", "ether_type", 16, 0), _f("ethernet", "ether_type", 16)),
                Assign(_f("ethernet", "ether_type", 16), _int(ETHERTYPE_VLAN))]
    if name == "pop_vlan":
        inner = _f("vlan", "ether_type", 16, 0)
        etype = _f("ethernet", "ether_type", 16)
        return [Assign(etype, P.Select(P.ValidC("vlan", 0), inner, etype)), PopFront("vlan")]
    if name in ("vxlan_encap", "geneve_encap"):
        # One level of tunnel: encapsulating a packet that has one already is dropped (counted).
        tunnels = tuple(P.ValidC(t) for t in TUNNELS if t in prog.instances)
        return [DropIf(P.OrC(tunnels), "nested_tunnel"), *_unmovable(prog),
                Encap(TUNNELS[name.split("_")[0]], tuple(a))]
    if name in ("vxlan_decap", "geneve_decap"):
        tunnel = name.split("_")[0]  # decapsulating a packet without that tunnel: dropped (counted)
        return [DropIf(P.NotC(P.ValidC(tunnel)), "no_tunnel"), *_unmovable(prog), Decap(TUNNELS[tunnel])]
    raise ValueError(f"no core operations for primitive {name}")  # pragma: no cover - the checker knows them


def stmts_ops(prog: P.Program, nf: P.Nf, stmts) -> list[CoreOp]:
    """The core operations of straight-line statements (an action body, a block of an apply),
    called actions inlined (their parameters stay operands)."""
    out: list[CoreOp] = []
    for s in stmts:
        if isinstance(s, P.AssignOp):
            out.append(Assign(s.target, s.value))
        elif isinstance(s, P.PrimOp):
            out += expand(prog, s)
        elif isinstance(s, P.CallActionOp):
            out += stmts_ops(prog, nf, nf.actions[s.action].body)
    return out


def encap_cleared(prog: P.Program, spec: TunnelSpec) -> tuple[list[str], list[str]]:
    """What an encapsulation invalidates once the outer headers have moved inward: the outer
    headers it does not push again, and the variable parts (options) of every outer header."""
    invalid = [o for o in INNER_OF if o in prog.instances and o not in spec.pushes]
    varparts = [i for i in (*spec.pushes, *invalid) if i in prog.instances and prog.instances[i].type.varbit]
    return invalid, varparts


def show_operand(x: P.Operand) -> str:
    """An operand as text (for dumps and golden files): widths after `w`."""
    if isinstance(x, P.FieldRef):
        return str(x)
    if isinstance(x, P.ConstVal):
        return x.name or str(x.value)
    if isinstance(x, P.ParamRef):
        return x.name
    if isinstance(x, P.CounterRef):
        return f"{x.nf}.{x.name}"
    if isinstance(x, P.Arith):
        return f"({show_operand(x.left)} {x.op} {show_operand(x.right)})w{x.width}"
    if isinstance(x, P.Select) and isinstance(x.cond, P.ValidC):
        idx = "" if x.cond.index is None else f"[{x.cond.index}]"
        return f"({x.cond.instance}{idx}.isValid() ? {show_operand(x.then)} : {show_operand(x.orelse)})"
    return repr(x)


def show_cond(c: P.CondT) -> str:
    if isinstance(c, P.ValidC):
        return f"{c.instance}{'' if c.index is None else f'[{c.index}]'}.isValid()"
    if isinstance(c, P.NotC):
        return f"!{show_cond(c.operand)}"
    if isinstance(c, (P.OrC, P.AndC)):
        joiner = " || " if isinstance(c, P.OrC) else " && "
        return "(" + joiner.join(show_cond(o) for o in c.operands) + ")"
    return repr(c)


def show(op: CoreOp) -> str:
    """A core operation as one line of text."""
    if isinstance(op, Assign):
        return f"{op.target} = {show_operand(op.value)}"
    if isinstance(op, (PushFront, PopFront)):
        return f"{op.stack}.{'push' if isinstance(op, PushFront) else 'pop'}_front(1)"
    if isinstance(op, Forward):
        return f"fate: port {show_operand(op.port)}"
    if isinstance(op, Drop):
        return "fate: drop"
    if isinstance(op, DropIf):
        return f"fate: drop as {op.reason} if {show_cond(op.cond)}"
    if isinstance(op, ToHypervisor):
        return f"fate: to_hypervisor code {show_operand(op.code)}"
    if isinstance(op, Count):
        return f"count {show_operand(op.counter)}[{show_operand(op.index)}]"
    if isinstance(op, Encap):
        return f"encap {op.tunnel.name}({', '.join(show_operand(a) for a in op.args)})"
    return f"decap {op.tunnel.name}"
