"""Pass: the width every arithmetic expression is computed at, decided once.

The DSL's arithmetic is P4's: unsigned, at a fixed width, wrapping around
(`bit<8>` 255 + 1 is 0). The width comes from the context, as the P4 back end
writes it (every operand cast to it):

* an assignment or argument: the width of the field or parameter written;
* a comparison: the widest typed leaf on either side (32 when none is typed);
* a varbit length or a select key: 32 bits, as p4c's `packet.extract` takes it.

Every `Arith` node gets `width`; its operands (and constants) are truncated to
that width before the operation, and the result wraps at it. Back ends read
`Arith.width` and never decide a width of their own.
"""

from __future__ import annotations

from dataclasses import replace

from p4gen.frontend import program as P
from p4gen.frontend.primitives import COUNTER, PRIMITIVES

DEFAULT_WIDTH = 32


def leaf_width(op: P.Operand) -> int | None:
    """The width of a typed operand (field, parameter, sized literal); None for a plain integer."""
    if isinstance(op, (P.FieldRef, P.ParamRef)):
        return op.width
    if isinstance(op, P.ConstVal):
        return op.width
    if isinstance(op, (P.Arith, P.Select)):
        parts = (op.left, op.right) if isinstance(op, P.Arith) else (op.then, op.orelse)
        widths = [w for w in (leaf_width(x) for x in parts) if w]
        return max(widths) if widths else None
    return None


def sized(op: P.Operand, width: int) -> P.Operand:
    """`op` with every arithmetic node computed at `width`."""
    if isinstance(op, P.Arith):
        return P.Arith(op.op, sized(op.left, width), sized(op.right, width), width)
    if isinstance(op, P.Select):
        return P.Select(op.cond, sized(op.then, width), sized(op.orelse, width))
    if isinstance(op, P.HashOf):
        return P.HashOf(tuple(sized(a, leaf_width(a) or DEFAULT_WIDTH) for a in op.args))
    return op


def _cond(c: P.CondT) -> P.CondT:
    if isinstance(c, P.CmpC):
        w = max(leaf_width(c.left) or 0, leaf_width(c.right) or 0) or DEFAULT_WIDTH
        return P.CmpC(c.op, sized(c.left, w), sized(c.right, w))
    if isinstance(c, P.NotC):
        return P.NotC(_cond(c.operand))
    if isinstance(c, P.AndC):
        return P.AndC(tuple(_cond(o) for o in c.operands))
    if isinstance(c, P.OrC):
        return P.OrC(tuple(_cond(o) for o in c.operands))
    return c


def _stmts(nf: P.Nf | None, stmts) -> list[P.StmtT]:
    out: list[P.StmtT] = []
    for s in stmts:
        if isinstance(s, P.AssignOp):
            out.append(replace(s, value=sized(s.value, s.target.width)))
        elif isinstance(s, P.PrimOp):
            params = PRIMITIVES[s.name].params
            args = tuple(a if p.width == COUNTER else sized(a, p.width) for a, p in zip(s.args, params, strict=False))
            out.append(replace(s, args=args))
        elif isinstance(s, P.CallActionOp):
            assert nf is not None
            act = nf.actions[s.action]
            out.append(replace(s, args=tuple(sized(a, w) for a, (_n, w) in zip(s.args, act.params, strict=True))))
        elif isinstance(s, P.IfOp):
            out.append(replace(s, cond=_cond(s.cond), then=tuple(_stmts(nf, s.then)),
                               orelse=tuple(_stmts(nf, s.orelse))))
        else:
            out.append(s)
    return out


def infer_widths(prog: P.Program) -> P.Program:
    """Give every `Arith` of `prog` its width (in place; returns `prog`)."""
    for ht in prog.headers.values():
        for f in ht.fields:
            if f.varbit_length is not None:
                f.varbit_length = sized(f.varbit_length, DEFAULT_WIDTH)
    for st in prog.parser.values():
        st.assigns = [(t, sized(v, t.width)) for t, v in st.assigns]
        st.selector = [sized(e, leaf_width(e) or DEFAULT_WIDTH) for e in st.selector]
    for nf in prog.nfs.values():
        for a in nf.actions.values():
            a.body = _stmts(nf, a.body)
        nf.apply = _stmts(nf, nf.apply)
    for f in prog.flows.values():
        f.match = _cond(f.match)
    return prog
