"""Which NIC ports a program forwards to, and from where.

`forward(port)` names a port either as a constant (in an action body or
directly in an nf's apply block) or through an action parameter that a table entry (or a default action) binds.
The back end checks these against the NIC's reserved host (punt) port, and
the BMv2 test target wires a veth to each of them, so both need the same
answer: port number → the DSL positions that send there.
"""

from __future__ import annotations

from p4gen.diagnostics import Pos
from p4gen.frontend import program as P


def _bind(params: list[tuple[str, int]], args) -> dict[str, int | None]:
    """Parameter name → value (the checker has matched argument counts)."""
    return {name: arg for (name, _width), arg in zip(params, args, strict=True)}


def _forwards(prog: P.Program, nf: str, body, env: dict[str, int | None], out: dict[int, list[Pos]],
              pos: Pos | None, depth: int = 0) -> None:
    if depth > 16:  # actions cannot recurse (the checker refuses it); this only bounds the walk
        return
    for s in body:
        if isinstance(s, P.PrimOp) and s.name == "forward":
            arg = s.args[0]
            port = arg.value if isinstance(arg, P.ConstVal) else env.get(arg.name) \
                if isinstance(arg, P.ParamRef) else None
            if port is not None:
                out.setdefault(port, []).append(pos or s.pos)
        elif isinstance(s, P.IfOp):
            _forwards(prog, nf, s.then, env, out, pos, depth)
            _forwards(prog, nf, s.orelse, env, out, pos, depth)
        elif isinstance(s, P.CallActionOp):
            callee = prog.nfs[nf].actions[s.action]
            args = [a.value if isinstance(a, P.ConstVal) else env.get(a.name) if isinstance(a, P.ParamRef) else None
                    for a in s.args]
            _forwards(prog, nf, callee.body, _bind(callee.params, args), out,
                      pos or s.pos, depth + 1)


def forwarded_ports(prog: P.Program) -> dict[int, list[Pos]]:
    """Every port a `forward()` can reach with a known number: constants, entries' and defaults' arguments."""
    out: dict[int, list[Pos]] = {}
    for nf_name, nf in prog.nfs.items():
        _forwards(prog, nf_name, nf.apply, {}, out, None)  # `apply { forward(3); }` and its ifs
        for action in nf.actions.values():
            _forwards(prog, nf_name, action.body, {}, out, None)
        for table in nf.tables.values():
            action = nf.actions[table.default_action]
            _forwards(prog, nf_name, action.body, _bind(action.params, table.default_args),
                      out, table.pos)
    for e in prog.entries:
        action = prog.nfs[e.nf].actions[e.action]
        _forwards(prog, e.nf, action.body, _bind(action.params, e.args), out, e.pos)
    return {port: sorted(set(where), key=lambda p: (p.file, p.line, p.col)) for port, where in sorted(out.items())}
