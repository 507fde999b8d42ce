"""Semantic checks: syntax trees → a resolved `Program`, or diagnostics.

The checker never stops at the first problem: each declaration is checked on
its own and every error of every file is reported, each at its own position.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from p4gen.diagnostics import DiagnosticSink, note
from p4gen.frontend import ast
from p4gen.frontend import program as P
from p4gen.frontend.literals import format_value
from p4gen.frontend.primitives import COUNTER, PRIMITIVES
from p4gen.midend.widths import leaf_width

MATCH_KINDS = ("exact", "lpm", "ternary", "range", "optional")
DIRECTIONS = ("vm_egress", "vm_ingress")
PLACEMENT_TARGETS = ("nic", "hypervisor")
READ_ONLY_META = ("ingress_port",)
MAX_WIDTH = 2048
KNOWN_ANNOTATIONS = {
    "pin": "a target: nic or hypervisor",
    "prefer": "a target: nic or hypervisor",
    "id": "a number",
    "name": "a string",
    "idle_timeout_ms": "a number",
    "doc": "a string",
}


class _Skip(Exception):
    """Internal: abandon checking the current construct (already reported)."""


@dataclass
class _Scope:
    """What names mean inside an action body or apply block."""

    nf: P.Nf | None = None
    params: dict[str, int] = field(default_factory=dict)
    in_action: bool = False
    allow_fields: bool = True
    allow_hash: bool = False


class Checker:
    def __init__(self, sink: DiagnosticSink):
        self.sink = sink
        self.prog = P.Program(files=[])
        self.names: dict[tuple[str, str], ast.Pos] = {}
        self.const_lits: dict[str, ast.Literal] = {}
        # Names declared in each nf, including those whose declaration had
        # errors: uses of those are not reported again as "unknown".
        self.declared: dict[str, set[str]] = {}

    # ------------------------------------------------------------ helpers
    def error(self, msg: str, pos: ast.Pos | None, *notes) -> None:
        self.sink.error(msg, pos, *notes)

    def declare(self, ns: str, name: str, pos: ast.Pos, what: str) -> bool:
        prev = self.names.get((ns, name))
        if prev is not None:
            self.error(f"{what} '{name}' is already defined", pos, note("previous definition is here", prev))
            return False
        self.names[(ns, name)] = pos
        return True

    def check_width(self, width: int, pos: ast.Pos, what: str) -> bool:
        if not 1 <= width <= MAX_WIDTH:
            self.error(f"{what} has width bit<{width}>; widths must be 1 to {MAX_WIDTH}", pos)
            return False
        return True

    def check_annotations(self, annos: tuple[ast.Annotation, ...]) -> None:
        for a in annos:
            if a.name not in KNOWN_ANNOTATIONS:
                self.sink.warning(f"unknown annotation '@{a.name}' is ignored", a.pos)
                continue
            if a.name in ("pin", "prefer"):
                if len(a.args) != 1 or a.args[0] not in PLACEMENT_TARGETS:
                    self.error(f"@{a.name} takes one target: nic or hypervisor", a.pos)
            elif a.name in ("id", "idle_timeout_ms"):
                if len(a.args) != 1 or not isinstance(a.args[0], ast.IntLit):
                    self.error(f"@{a.name} takes one number", a.pos)
                elif a.name == "id" and not 1 <= a.args[0].value < (1 << 24):
                    self.error("@id must be between 1 and 16777215 (the P4Info id's low 24 bits)", a.pos)
            elif len(a.args) != 1 or not isinstance(a.args[0], ast.StrLit):
                self.error(f"@{a.name} takes {KNOWN_ANNOTATIONS[a.name]}", a.pos)

    # ------------------------------------------------------------ entry point
    def run(self, files: list[ast.SourceFile]) -> P.Program:
        self.prog.files = [f.path for f in files]
        by_kind: dict[type, list] = {}
        for f in files:
            for d in f.decls:
                by_kind.setdefault(type(d), []).append(d)

        def each(kind):
            return by_kind.get(kind, [])

        for d in each(ast.Const):
            self.const_decl(d)
        for d in each(ast.HeaderDecl):
            self.header_decl(d)
        for d in each(ast.PacketDecl):
            for inst in d.instances:
                self.instance_decl(inst)
        for d in each(ast.MetadataDecl):
            for mf in d.fields:
                if self.declare("meta", mf.name, mf.pos, "metadata field") and self.check_width(
                    mf.width, mf.pos, f"metadata field '{mf.name}'"
                ):
                    self.prog.metadata[mf.name] = (mf.width, mf.pos)
        self.parser_decls(each(ast.ParserDecl))
        stage_decls = [d for f in files for d in f.decls
                       if isinstance(d, (ast.NfDecl, ast.SegmentDecl, ast.CoalesceDecl))]
        for d in stage_decls:  # source order, so a duplicate is reported at the later one
            if not self.declare("stage", d.name, d.pos, "stage"):
                continue
            if isinstance(d, ast.SegmentDecl):
                self.segment_decl(d)
            elif isinstance(d, ast.CoalesceDecl):
                self.coalesce_decl(d)
            else:
                self.nf_decl(d)
        used: dict[str, ast.Pos] = {}
        for d in each(ast.PipelineDecl):
            if self.declare("pipeline", d.name, d.pos, "pipeline"):
                self.pipeline_decl(d, used)
        for d in each(ast.FlowDecl):
            if self.declare("flow", d.name, d.pos, "flow"):
                self.flow_decl(d)
        for d in each(ast.EntriesDecl):
            self.entries_decl(d)
        if not self.sink.has_errors():  # an erroneous apply block would make this noise
            self.unused_tables()
        return self.prog

    # ------------------------------------------------------------ constants
    def const_decl(self, d: ast.Const) -> None:
        if not self.declare("const", d.name, d.pos, "constant"):
            return
        lit = d.value
        if isinstance(lit, ast.StrLit):
            self.error("a constant must be a number or an address, not a string", lit.pos)
            return
        self.const_lits[d.name] = lit
        if isinstance(lit, ast.IntLit):
            self.prog.consts[d.name] = P.ConstVal(lit.value, "int", None, d.name)
        else:
            self.prog.consts[d.name] = P.ConstVal(lit.value, lit.kind, lit.width, d.name)

    # ------------------------------------------------------------ headers
    def header_decl(self, d: ast.HeaderDecl) -> None:
        if not self.declare("header", d.name, d.pos, "header type"):
            return
        self.check_annotations(d.annotations)
        fields: list[P.FieldType] = []
        seen: dict[str, ast.Pos] = {}
        offset = 0
        ok = True
        for i, fd in enumerate(d.fields):
            if fd.name in seen:
                self.error(f"field '{fd.name}' is already defined in header '{d.name}'", fd.pos,
                           note("previous definition is here", seen[fd.name]))
                ok = False
                continue
            seen[fd.name] = fd.pos
            if not self.check_width(fd.width, fd.pos, f"field '{d.name}.{fd.name}'"):
                ok = False
                continue
            if fd.varbit_length is None:
                fields.append(P.FieldType(fd.name, fd.width, offset, None, fd.pos))
                offset += fd.width
                continue
            if i != len(d.fields) - 1:
                self.error(f"varbit field '{fd.name}' must be the last field of header '{d.name}'", fd.pos)
                ok = False
                continue
            if fd.width % 8:
                self.error(f"varbit field '{fd.name}' has a maximum of {fd.width} bits; it must be whole bytes", fd.pos)
                ok = False
                continue
            length = self.header_length_expr(fd.varbit_length, {f.name: f for f in fields}, d.name)
            if length is None:
                ok = False
                continue
            fields.append(P.FieldType(fd.name, fd.width, offset, length, fd.pos))
        if not d.fields:
            self.error(f"header '{d.name}' has no fields", d.pos)
            ok = False
        bits = sum(f.width for f in fields if not f.is_varbit)
        if ok and bits % 8:
            self.error(f"header '{d.name}' is {bits} bits long; headers must be a whole number of bytes", d.pos)
            ok = False
        if ok:
            self.prog.headers[d.name] = P.HeaderType(d.name, fields, d.pos)

    def header_length_expr(self, e: ast.Expr, fields: dict[str, P.FieldType], header: str) -> P.Operand | None:
        if isinstance(e, ast.IntLit):
            return P.ConstVal(e.value, "int", None)
        if isinstance(e, ast.Path) and len(e.parts) == 1 and e.index is None:
            f = fields.get(e.parts[0])
            if f is None:
                self.error(f"varbit length refers to '{e.parts[0]}', which is not an earlier field of '{header}'",
                           e.pos)
                return None
            return P.FieldRef(header, f.name, f.width)
        if isinstance(e, ast.BinOp):
            left = self.header_length_expr(e.left, fields, header)
            right = self.header_length_expr(e.right, fields, header)
            if left is None or right is None:
                return None
            return P.Arith(e.op, left, right)
        self.error("a varbit length is made of numbers and earlier fields of the header", e.pos)
        return None

    def instance_decl(self, d: ast.InstanceDecl) -> None:
        if d.name == "meta":
            self.error("'meta' is reserved for metadata", d.pos)
            return
        if not self.declare("instance", d.name, d.pos, "header instance"):
            return
        ht = self.prog.headers.get(d.type_name)
        if ht is None:
            if ("header", d.type_name) not in self.names:
                self.error(f"unknown header type '{d.type_name}'", d.type_pos or d.pos)
            return
        if d.stack is not None and not 1 <= d.stack <= 16:
            self.error(f"header stack '{d.name}' has {d.stack} elements; 1 to 16 are allowed", d.pos)
            return
        self.prog.instances[d.name] = P.Instance(d.name, ht, d.stack, d.pos)

    # ------------------------------------------------------------ fields and operands
    def resolve_field(self, path: ast.Path, *, allow_next: bool = False, allow_varbit: bool = False) -> P.FieldRef:
        parts = path.parts
        head = parts[0]
        if head == "meta":
            if path.index is not None or len(parts) != 2:
                self.error(f"'{path}' is not a metadata field; write meta.NAME", path.pos)
                raise _Skip
            mf = self.prog.metadata.get(parts[1])
            if mf is None:
                self.error(f"unknown metadata field 'meta.{parts[1]}'", path.pos)
                raise _Skip
            return P.FieldRef("meta", parts[1], mf[0])
        inst = self.prog.instances.get(head)
        if inst is None:
            if head in self.prog.consts and len(parts) == 1:
                self.error(f"'{head}' is a constant, not a field", path.pos)
            else:
                self.error(f"unknown header '{head}'", path.pos)
            raise _Skip
        rest = list(parts[1:])
        index: int | str | None = None
        if inst.stack is not None:
            if path.index is not None:
                if path.index >= inst.stack:
                    self.error(f"index {path.index} is out of range for header stack '{head}[{inst.stack}]'", path.pos)
                    raise _Skip
                index = path.index
            elif rest and rest[0] in ("last", "next"):
                if rest[0] == "next" and not allow_next:
                    self.error(f"'{head}.next' is only valid in extract()", path.pos)
                    raise _Skip
                index = rest.pop(0)
            else:
                self.error(f"header stack '{head}' needs an index: {head}[0].FIELD or {head}.last.FIELD", path.pos)
                raise _Skip
        elif path.index is not None:
            self.error(f"'{head}' is not a header stack", path.pos)
            raise _Skip
        if len(rest) != 1:
            if not rest:
                self.error(f"'{path}' is a header, not a field", path.pos)
            else:
                self.error(f"'{path}' is not a field of '{head}'", path.pos)
            raise _Skip
        ft = inst.type.field(rest[0])
        if ft is None:
            of_type = "" if inst.type.name == head else f" (type '{inst.type.name}')"
            self.error(f"unknown field '{rest[0]}' in header '{head}'{of_type}", path.pos)
            raise _Skip
        if ft.is_varbit and not allow_varbit:
            self.error(f"varbit field '{head}.{ft.name}' cannot be used here", path.pos)
            raise _Skip
        return P.FieldRef(head, ft.name, ft.width, index)

    def resolve_header(self, path: ast.Path, *, allow_next: bool = False) -> tuple[str, int | str | None]:
        head = path.parts[0]
        inst = self.prog.instances.get(head)
        if inst is None:
            self.error(f"unknown header '{head}'", path.pos)
            raise _Skip
        rest = path.parts[1:]
        if inst.stack is not None:
            if path.index is not None and not rest:
                if path.index >= inst.stack:
                    self.error(f"index {path.index} is out of range for header stack '{head}[{inst.stack}]'", path.pos)
                    raise _Skip
                return head, path.index
            if len(rest) == 1 and rest[0] in ("next", "last") and path.index is None:
                if rest[0] == "next" and not allow_next:
                    self.error(f"'{head}.next' is only valid in extract()", path.pos)
                    raise _Skip
                return head, rest[0]
            want = f"{head}.next" if allow_next else f"{head}[0] or {head}.last"
            self.error(f"header stack '{head}' needs an element: {want}", path.pos)
            raise _Skip
        if rest or path.index is not None:
            self.error(f"'{path}' is not a header", path.pos)
            raise _Skip
        return head, None

    def resolve_expr(self, e: ast.Expr, scope: _Scope) -> P.Operand:
        if isinstance(e, ast.IntLit):
            return P.ConstVal(e.value, "int", None)
        if isinstance(e, ast.AddrLit):
            if e.prefix is not None:
                self.error(f"a prefix ('{e.text}') is only allowed in table entries", e.pos)
                raise _Skip
            return P.ConstVal(e.value, e.kind, e.width)
        if isinstance(e, ast.StrLit):
            self.error("a string is not a value", e.pos)
            raise _Skip
        if isinstance(e, ast.BinOp):
            inner = _Scope(scope.nf, scope.params, scope.in_action, scope.allow_fields)
            return P.Arith(e.op, self.resolve_expr(e.left, inner), self.resolve_expr(e.right, inner))
        if isinstance(e, ast.HashExpr):
            if not scope.allow_hash:
                self.error("hash() can only be the whole right-hand side of an assignment", e.pos)
                raise _Skip
            if not e.args:
                self.error("hash() needs at least one field", e.pos)
                raise _Skip
            inner = _Scope(scope.nf, scope.params, scope.in_action, scope.allow_fields)
            return P.HashOf(tuple(self.resolve_expr(a, inner) for a in e.args))
        assert isinstance(e, ast.Path)
        if len(e.parts) == 1 and e.index is None:
            name = e.parts[0]
            if name in scope.params:
                return P.ParamRef(name, scope.params[name])
            if name in self.prog.consts:
                return self.prog.consts[name]
            if name in self.prog.instances:
                self.error(f"'{name}' is a header, not a value", e.pos)
            else:
                self.error(f"undefined name '{name}'", e.pos)
            raise _Skip
        if not scope.allow_fields:
            self.error(f"'{e}': only constants and parameters are allowed here", e.pos)
            raise _Skip
        return self.resolve_field(e)

    def check_fits(self, op: P.Operand, width: int, pos: ast.Pos, what: str) -> None:
        if isinstance(op, P.ConstVal):
            if op.width is not None and op.width != width:
                self.error(f"{_kind_name(op.kind)} is {op.width} bits; {what} is bit<{width}>", pos)
            elif op.width is None and op.value >= (1 << width):
                self.error(f"value {op.value} does not fit in {what} (bit<{width}>)", pos)
        elif isinstance(op, (P.ParamRef, P.FieldRef)) and op.width > width:
            self.error(f"'{_operand_name(op)}' is bit<{op.width}>; {what} is only bit<{width}>", pos)

    # ------------------------------------------------------------ parser
    def parser_decls(self, decls: list[ast.ParserDecl]) -> None:
        states: dict[str, ast.StateDecl] = {}
        for d in decls:
            for s in d.states:
                if s.name in ("accept", "reject"):
                    self.error(f"'{s.name}' is a built-in parser state", s.pos)
                    continue
                prev = states.get(s.name)
                if prev is not None and s.override and prev.pos.file != s.pos.file:
                    states[s.name] = s
                elif prev is not None:
                    hint = "" if prev.pos.file == s.pos.file else " (use 'override state' to replace it)"
                    self.error(f"parser state '{s.name}' is already defined{hint}", s.pos,
                               note("previous definition is here", prev.pos))
                elif s.override:
                    self.error(f"'override state {s.name}' replaces nothing: no such state", s.pos)
                else:
                    states[s.name] = s
        if "start" not in states:
            self.error("the parser has no 'start' state", None)
        for s in states.values():
            try:
                self.prog.parser[s.name] = self.parser_state(s, states)
            except _Skip:
                pass

    def parser_state(self, s: ast.StateDecl, states: dict[str, ast.StateDecl]) -> P.ParserState:
        scope = _Scope()
        extracts: list[tuple[str, int | str | None]] = []
        assigns: list[tuple[P.FieldRef, P.Operand]] = []
        ok = True
        for st in s.body:
            try:
                if isinstance(st, ast.Extract):
                    extracts.append(self.resolve_header(st.header, allow_next=True))
                else:
                    tgt = self.resolve_field(st.target)
                    val = self.resolve_expr(st.value, scope)
                    self.check_fits(val, tgt.width, st.value.pos if hasattr(st.value, "pos") else st.pos, f"'{tgt}'")
                    assigns.append((tgt, val))
            except _Skip:
                ok = False
        t = s.transition
        selector: list[P.Operand] = []
        cases: list[tuple[list[P.KeyMatch | None], str]] = []
        if t.goto is not None:
            self.check_next_state(t.goto, t.pos, states)
            cases.append(([], t.goto))  # an unconditional transition: one case with no keys
        else:
            for e in t.selector:
                try:
                    selector.append(self.resolve_expr(e, scope))
                except _Skip:
                    ok = False
            if len(selector) != len(t.selector):
                raise _Skip  # cases cannot be checked against an unresolved selector
            widths = [_op_width(o) for o in selector]
            for case in t.cases:
                self.check_next_state(case.next_state, case.pos, states)
                if len(case.keys) == 1 and isinstance(case.keys[0], ast.Default):
                    cases.append(([None] * len(selector), case.next_state))
                    continue
                if len(case.keys) != len(t.selector):
                    self.error(f"select has {len(t.selector)} field(s); this case gives {len(case.keys)} value(s)",
                               case.pos)
                    ok = False
                    continue
                keys: list[P.KeyMatch | None] = []
                for k, w in zip(case.keys, widths, strict=True):
                    if isinstance(k, (ast.Default, ast.Wildcard)):
                        keys.append(None)
                        continue
                    km = self.select_key(k, w)
                    if km is None:
                        ok = False
                    keys.append(km)
                cases.append((keys, case.next_state))
        if not ok:
            raise _Skip
        return P.ParserState(s.name, extracts, assigns, selector, cases, s.pos)

    def select_key(self, k: ast.MatchValue, width: int | None) -> P.KeyMatch | None:
        w = width or 64
        if isinstance(k, ast.TernaryValue):
            v, m = self.match_literal(k.value, w), self.match_literal(k.mask, w)
            return None if v is None or m is None else P.KeyMatch("ternary", v & m, mask=m)
        if isinstance(k, ast.RangeValue):
            lo, hi = self.match_literal(k.low, w), self.match_literal(k.high, w)
            if lo is None or hi is None:
                return None
            if lo > hi:
                self.error(f"range {lo}..{hi} is empty (low > high)", k.pos)
                return None
            return P.KeyMatch("range", lo, high=hi)
        v = self.match_literal(k, w)
        return None if v is None else P.KeyMatch("exact", v)

    def check_next_state(self, name: str, pos: ast.Pos, states: dict[str, ast.StateDecl]) -> None:
        if name not in states and name not in ("accept", "reject"):
            self.error(f"unknown parser state '{name}'", pos)

    # ------------------------------------------------------------ network functions
    def nf_decl(self, d: ast.NfDecl) -> None:
        self.check_annotations(d.annotations)
        nf = P.Nf(d.name, {}, {}, {}, [], d.annotations, d.pos)
        local: dict[str, ast.Pos] = {}

        def declare_local(name: str, pos: ast.Pos, what: str) -> bool:
            if name in local:
                self.error(f"'{name}' is already defined in nf '{d.name}'", pos,
                           note("previous definition is here", local[name]))
                return False
            if name in PRIMITIVES:
                self.error(f"{what} '{name}' has the name of a primitive", pos)
                return False
            local[name] = pos
            return True

        for c in d.counters:
            self.check_annotations(c.annotations)
            if declare_local(c.name, c.pos, "counter"):
                if c.size is not None and c.size < 1:
                    self.error(f"counter '{c.name}' must have at least one cell", c.pos)
                nf.counters[c.name] = P.Counter(c.name, d.name, c.size, c.pos)
        # Declare every action first so that tables may name them in any order.
        for a in d.actions:
            self.check_annotations(a.annotations)
            declare_local(a.name, a.pos, "action")
        self.declared[d.name] = set(local)
        self.declared[d.name] = set(local)
        for t in d.tables:
            self.check_annotations(t.annotations)
            if not declare_local(t.name, t.pos, "table"):
                continue
            self.declared[d.name].add(t.name)
            if ("table", t.name) in self.names:
                self.error(f"table '{t.name}' is already defined in another nf; table names are global", t.pos,
                           note("previous definition is here", self.names[("table", t.name)]))
            else:
                self.names[("table", t.name)] = t.pos
        for a in d.actions:
            act = self.action_decl(a, nf)
            if act is not None:
                nf.actions[a.name] = act
        for t in d.tables:
            tbl = self.table_decl(t, nf)
            if tbl is not None:
                nf.tables[t.name] = tbl
        applied: dict[str, ast.Pos] = {}
        nf.apply = self.stmts(d.apply, _Scope(nf=nf), applied)
        self.prog.nfs[d.name] = nf

    def action_decl(self, a: ast.ActionDecl, nf: P.Nf) -> P.Action | None:
        params: dict[str, int] = {}
        ok = True
        for p in a.params:
            if p.name in params:
                self.error(f"parameter '{p.name}' is already defined", p.pos)
                ok = False
            elif self.check_width(p.width, p.pos, f"parameter '{p.name}'"):
                params[p.name] = p.width
            else:
                ok = False
        body = self.stmts(a.body, _Scope(nf=nf, params=params, in_action=True), {})
        if not ok:
            return None
        return P.Action(a.name, nf.name, list(params.items()), body, a.annotations, a.pos)

    def stmts(self, stmts: tuple[ast.Stmt, ...], scope: _Scope, applied: dict[str, ast.Pos]) -> list[P.StmtT]:
        out: list[P.StmtT] = []
        for s in stmts:
            try:
                out.append(self.stmt(s, scope, applied))
            except _Skip:
                pass
        return out

    def stmt(self, s: ast.Stmt, scope: _Scope, applied: dict[str, ast.Pos]) -> P.StmtT:
        if isinstance(s, ast.Assign):
            tgt = self.resolve_field(s.target)
            if tgt.instance == "meta" and tgt.field in READ_ONLY_META:
                self.error(f"'meta.{tgt.field}' is read-only", s.target.pos)
                raise _Skip
            if isinstance(tgt.index, str):
                self.error(f"assign to a stack element by index, not '{tgt.index}'", s.target.pos)
                raise _Skip
            rhs_scope = _Scope(scope.nf, scope.params, scope.in_action, scope.allow_fields, allow_hash=True)
            val = self.resolve_expr(s.value, rhs_scope)
            self.check_fits(val, tgt.width, _expr_pos(s.value, s.pos), f"'{tgt}'")
            return P.AssignOp(tgt, val, s.pos)
        if isinstance(s, ast.Call):
            return self.call(s, scope)
        if isinstance(s, ast.ApplyTable):
            name = self.table_name(s.table, scope, s.pos)
            self.note_applied(name, s.pos, applied)
            return P.ApplyOp(name, s.pos)
        assert isinstance(s, ast.If)
        if scope.in_action:
            self.error("conditionals belong in the apply block, not in an action", s.pos)
            raise _Skip
        cond = self.cond(s.cond, scope, applied, top=True)
        then = self.stmts(s.then, scope, applied)
        orelse = self.stmts(s.orelse, scope, applied)
        return P.IfOp(cond, tuple(then), tuple(orelse), s.pos)

    def note_applied(self, name: str, pos: ast.Pos, applied: dict[str, ast.Pos]) -> None:
        if name in applied:
            self.error(f"table '{name}' is applied more than once; P4 allows one apply per table", pos,
                       note("first applied here", applied[name]))
        else:
            applied[name] = pos

    def table_name(self, path: ast.Path, scope: _Scope, pos: ast.Pos) -> str:
        if scope.in_action:
            self.error("tables are applied in the apply block, not in an action", pos)
            raise _Skip
        if len(path.parts) != 1 or path.index is not None:
            self.error(f"'{path}' is not a table name", path.pos)
            raise _Skip
        name = path.parts[0]
        assert scope.nf is not None
        if name not in scope.nf.tables:
            if name in self.declared.get(scope.nf.name, ()):
                raise _Skip  # its declaration had errors, already reported
            if ("table", name) in self.names:
                self.error(f"table '{name}' belongs to another nf", path.pos)
            else:
                self.error(f"unknown table '{name}' in nf '{scope.nf.name}'", path.pos)
            raise _Skip
        return name

    def call(self, s: ast.Call, scope: _Scope) -> P.StmtT:
        nf = scope.nf
        prim = PRIMITIVES.get(s.name)
        if prim is None:
            if nf is not None and s.name not in nf.actions and s.name in self.declared.get(nf.name, ()):
                raise _Skip  # the action's declaration had errors, already reported
            if nf is not None and s.name in nf.actions:
                if scope.in_action:
                    self.error(f"action '{s.name}' cannot be called from another action", s.pos)
                    raise _Skip
                act = nf.actions[s.name]
                args = self.call_args(s, [(n, w) for n, w in act.params], len(act.params), scope, f"action '{s.name}'")
                return P.CallActionOp(s.name, tuple(args), s.pos)
            self.error(f"unknown primitive or action '{s.name}'", s.pos)
            raise _Skip
        n = len(s.args)
        if not prim.min_args <= n <= len(prim.params):
            want = (str(len(prim.params)) if prim.min_args == len(prim.params)
                    else f"{prim.min_args} to {len(prim.params)}")
            self.error(f"{s.name}() takes {want} argument(s); {n} given", s.pos)
            raise _Skip
        args: list[P.Operand] = []
        for a, p in zip(s.args, prim.params, strict=False):
            if p.width == COUNTER:
                args.append(self.counter_ref(a, nf))
                continue
            op = self.resolve_expr(a, scope)
            self.check_fits(op, p.width, _expr_pos(a, s.pos), f"argument '{p.name}' of {s.name}()")
            args.append(op)
        for p in prim.params[n:]:
            args.append(P.ConstVal(p.default or 0, "int", None))
        if s.name == "count":
            ctr = args[0]
            assert isinstance(ctr, P.CounterRef)
            idx = args[1]
            if isinstance(idx, P.ConstVal) and idx.value >= (ctr.size or 1):
                self.error(f"index {idx.value} is out of range for counter '{ctr.name}' of {ctr.size or 1} cell(s)",
                           _expr_pos(s.args[1], s.pos))
        return P.PrimOp(s.name, tuple(args), s.pos)

    def counter_ref(self, a: ast.Expr, nf: P.Nf | None) -> P.CounterRef:
        if not isinstance(a, ast.Path) or len(a.parts) != 1 or a.index is not None:
            self.error("count() needs a counter name", _expr_pos(a, None))
            raise _Skip
        name = a.parts[0]
        if nf is None or name not in nf.counters:
            self.error(f"unknown counter '{name}'", a.pos)
            raise _Skip
        c = nf.counters[name]
        return P.CounterRef(nf.name, name, c.size)

    def call_args(self, s, params: list[tuple[str, int]], n: int, scope: _Scope, what: str) -> list[P.Operand]:
        if len(s.args) != n:
            self.error(f"{what} takes {n} argument(s); {len(s.args)} given", s.pos)
            raise _Skip
        out = []
        for a, (pname, w) in zip(s.args, params, strict=True):
            op = self.resolve_expr(a, scope)
            self.check_fits(op, w, _expr_pos(a, s.pos), f"parameter '{pname}' of {what}")
            out.append(op)
        return out

    def cond(self, c: ast.Cond, scope: _Scope, applied: dict[str, ast.Pos], top: bool = False) -> P.CondT:
        if isinstance(c, ast.Valid):
            inst, index = self.resolve_header(c.header)
            return P.ValidC(inst, index)
        if isinstance(c, ast.ApplyHit):
            if not top:
                self.error("'.apply().hit' / '.apply().miss' must be the whole condition of an if", c.pos)
                raise _Skip
            if scope.nf is None:
                self.error("tables cannot be applied here", c.pos)
                raise _Skip
            name = self.table_name(c.table, scope, c.pos)
            self.note_applied(name, c.pos, applied)
            return P.HitC(name, c.hit)
        if isinstance(c, ast.Compare):
            left = self.resolve_expr(c.left, scope)
            right = self.resolve_expr(c.right, scope)
            lw, rw = leaf_width(left), leaf_width(right)  # the comparison's width (p4gen.midend.widths)
            if lw is not None and isinstance(right, P.ConstVal):
                self.check_fits(right, lw, _expr_pos(c.right, c.pos), f"'{_operand_name(left)}'")
            elif rw is not None and isinstance(left, P.ConstVal):
                self.check_fits(left, rw, _expr_pos(c.left, c.pos), f"'{_operand_name(right)}'")
            return P.CmpC(c.op, left, right)
        if isinstance(c, ast.BoolConst):
            return P.BoolC(c.value)
        if isinstance(c, ast.Not):
            inner = c.operand
            return P.NotC(self.cond(inner, scope, applied, top=top and isinstance(inner, ast.ApplyHit)))
        ops = []
        errors = False
        for o in c.operands:
            try:
                ops.append(self.cond(o, scope, applied))
            except _Skip:
                errors = True
        if errors:
            raise _Skip
        return P.AndC(tuple(ops)) if isinstance(c, ast.And) else P.OrC(tuple(ops))

    # ------------------------------------------------------------ tables
    def table_decl(self, t: ast.TableDecl, nf: P.Nf) -> P.Table | None:
        ok = True
        seen_props: dict[str, ast.Pos] = {}
        for p in t.props:
            if p.name in seen_props:
                self.error(f"property '{p.name}' is given twice in table '{t.name}'", p.pos,
                           note("first given here", seen_props[p.name]))
                ok = False
            seen_props[p.name] = p.pos
        keys: list[P.KeyField] = []
        seen_keys: set[str] = set()
        for k in t.keys:
            try:
                ref = self.resolve_field(k.field)
            except _Skip:
                ok = False
                continue
            if k.match_kind not in MATCH_KINDS:
                self.error(f"unknown match kind '{k.match_kind}'; expected one of {', '.join(MATCH_KINDS)}", k.pos)
                ok = False
                continue
            if str(ref) in seen_keys:
                self.error(f"field '{ref}' is a key of table '{t.name}' twice", k.field.pos)
                ok = False
                continue
            seen_keys.add(str(ref))
            keys.append(P.KeyField(ref, k.match_kind, k.pos))
        lpms = [k for k in keys if k.match_kind == "lpm"]
        if len(lpms) > 1:
            self.error(f"table '{t.name}' has {len(lpms)} lpm keys; at most one is allowed", lpms[1].pos)
            ok = False
        actions: list[str] = []
        for name, pos in t.actions:
            if name not in nf.actions:
                if name not in self.declared.get(nf.name, ()):
                    self.error(f"unknown action '{name}' in table '{t.name}'", pos)
                ok = False
            elif name in actions:
                self.error(f"action '{name}' is listed twice in table '{t.name}'", pos)
                ok = False
            else:
                actions.append(name)
        if not t.actions:
            self.error(f"table '{t.name}' has no actions", t.pos)
            ok = False
        default_args: list[int] = []
        default = t.default_action
        if default is None:
            self.error(f"table '{t.name}' has no default_action", t.pos)
            ok = False
        elif default.name in nf.actions and default.name not in actions:
            self.error(f"default action '{default.name}' is not one of the actions of table '{t.name}'", default.pos)
            ok = False
        elif default.name not in nf.actions:
            if default.name not in [n for n, _ in t.actions] and default.name not in self.declared.get(nf.name, ()):
                self.error(f"unknown action '{default.name}'", default.pos)
            ok = False
        else:
            act = nf.actions[default.name]
            try:
                ops = self.call_args(default, act.params, len(act.params), _Scope(nf=nf, allow_fields=False),
                                     f"action '{default.name}'")
                default_args = [o.value for o in ops if isinstance(o, P.ConstVal)]
            except _Skip:
                ok = False
        size = t.size if t.size is not None else 1024
        if size < 1:
            self.error(f"table '{t.name}' must have a size of at least 1", seen_props.get("size", t.pos))
            ok = False
        if not ok:
            return None
        assert default is not None
        return P.Table(t.name, nf.name, keys, actions, default.name, default_args, size, t.counters,
                       t.idle_timeout, t.annotations, t.pos)

    def unused_tables(self) -> None:
        for nf in self.prog.nfs.values():
            used: set[str] = set()

            def walk(stmts, used=used):
                for s in stmts:
                    if isinstance(s, P.ApplyOp):
                        used.add(s.table)
                    elif isinstance(s, P.IfOp):
                        if isinstance(s.cond, P.HitC):
                            used.add(s.cond.table)
                        elif isinstance(s.cond, P.NotC) and isinstance(s.cond.operand, P.HitC):
                            used.add(s.cond.operand.table)
                        walk(s.then, used)
                        walk(s.orelse, used)

            walk(nf.apply)
            for t in nf.tables.values():
                if t.name not in used:
                    self.sink.warning(f"table '{t.name}' is never applied", t.pos)

    # ------------------------------------------------------------ stages
    def stage_props(self, props, allowed: dict[str, str], what: str) -> dict[str, object]:
        out: dict[str, object] = {}
        for p in props:
            if p.name not in allowed:
                self.error(f"unknown property '{p.name}' of {what}; expected one of {', '.join(allowed)}", p.pos)
                continue
            if p.name in out:
                self.error(f"property '{p.name}' is given twice", p.pos)
                continue
            v = p.value
            if isinstance(v, ast.ConstRef):
                lit = self.const_lits.get(v.name)
                if lit is None:
                    self.error(f"undefined constant '{v.name}'", v.pos)
                    continue
                v = lit
            if v == "auto":
                if allowed[p.name] != "auto":
                    self.error(f"'{p.name}' cannot be auto", p.pos)
                    continue
                out[p.name] = "auto"
            elif isinstance(v, ast.IntLit):
                out[p.name] = (v.value, p.pos)
            else:
                self.error(f"'{p.name}' must be a number", p.pos)
                out[p.name] = None  # given, but wrong: no "missing" error on top
        return out

    def segment_decl(self, d: ast.SegmentDecl) -> None:
        self.check_annotations(d.annotations)
        props = self.stage_props(d.props, {"mss": "auto", "max_mss": "int", "underlay_mtu": "int"},
                                 f"segment '{d.name}'")
        if any(v is None for v in props.values()) and "underlay_mtu" in props:
            return
        mtu = props.get("underlay_mtu")
        if mtu is None:
            self.error(f"segment '{d.name}' needs underlay_mtu", d.pos)
            return
        if any(v is None for v in props.values()):
            return
        mtu_v, mtu_pos = mtu
        if not 576 <= mtu_v <= 65535:
            self.error(f"underlay_mtu {mtu_v} is out of range (576 to 65535)", mtu_pos)
            return
        max_mss, max_pos = props.get("max_mss", (1460, d.pos))
        if not 1 <= max_mss <= 65495:
            self.error(f"max_mss {max_mss} is out of range (1 to 65495)", max_pos)
            return
        mss = props.get("mss", "auto")
        if mss == "auto":
            mss_v = None
        else:
            mss_v, mss_pos = mss
            if not 1 <= mss_v <= mtu_v - 40:
                self.error(f"mss {mss_v} does not fit the underlay MTU {mtu_v} (1 to {mtu_v - 40})", mss_pos)
                return
        self.prog.segments[d.name] = P.Segment(d.name, mss_v, max_mss, mtu_v, d.annotations, d.pos)

    def coalesce_decl(self, d: ast.CoalesceDecl) -> None:
        self.check_annotations(d.annotations)
        props = self.stage_props(d.props, {"max_size": "int"}, f"coalesce '{d.name}'")
        if any(v is None for v in props.values()):
            return
        size, pos = props.get("max_size", (65535, d.pos))
        if not 576 <= size <= 65535:
            self.error(f"max_size {size} is out of range (576 to 65535)", pos)
            return
        self.prog.coalesces[d.name] = P.Coalesce(d.name, size, d.annotations, d.pos)

    def pipeline_decl(self, d: ast.PipelineDecl, used: dict[str, ast.Pos]) -> None:
        self.check_annotations(d.annotations)
        if d.direction not in DIRECTIONS:
            self.error(f"unknown direction '{d.direction}'; expected vm_egress or vm_ingress", d.direction_pos)
            return
        if not d.stages:
            self.error(f"pipeline '{d.name}' has no stages", d.pos)
            return
        ok = True
        for name, pos in d.stages:
            if ("stage", name) not in self.names:
                self.error(f"unknown stage '{name}' (not an nf, segment or coalesce)", pos)
                ok = False
                continue
            if name in used:
                self.error(f"stage '{name}' is already used in a pipeline", pos, note("first used here", used[name]))
                ok = False
                continue
            used[name] = pos
            if name in self.prog.segments and d.direction != "vm_egress":
                self.error(f"segment '{name}' can only run in a vm_egress pipeline", pos)
                ok = False
            if name in self.prog.coalesces and d.direction != "vm_ingress":
                self.error(f"coalesce '{name}' can only run in a vm_ingress pipeline", pos)
                ok = False
        if ok:
            self.prog.pipelines[d.name] = P.Pipeline(d.name, d.direction, [n for n, _ in d.stages],
                                                     d.annotations, d.pos)

    def flow_decl(self, d: ast.FlowDecl) -> None:
        if ("pipeline", d.pipeline) not in self.names:
            self.error(f"unknown pipeline '{d.pipeline}'", d.pipeline_pos)
            return
        try:
            cond = self.cond(d.match, _Scope(), {})
        except _Skip:
            return
        self.prog.flows[d.name] = P.Flow(d.name, cond, d.pipeline, d.pos)

    # ------------------------------------------------------------ entries
    def match_literal(self, v: ast.MatchValue, width: int) -> int | None:
        """A plain value in an entry or select case, checked against the key width."""
        if isinstance(v, ast.ConstRef):
            lit = self.const_lits.get(v.name)
            if lit is None:
                self.error(f"undefined constant '{v.name}'", v.pos)
                return None
            v = lit
        if isinstance(v, ast.StrLit):
            self.error("a string is not a key value", v.pos)
            return None
        if isinstance(v, ast.AddrLit):
            if v.width != width:
                self.error(f"{_kind_name(v.kind)} is {v.width} bits; the key is bit<{width}>", v.pos)
                return None
            if v.prefix is not None:
                self.error(f"a prefix ('{v.text}') is not allowed here", v.pos)
                return None
            return v.value
        if isinstance(v, ast.IntLit):
            if v.value >= (1 << width):
                self.error(f"value {v.value} does not fit in the key (bit<{width}>)", v.pos)
                return None
            return v.value
        self.error("expected a value", getattr(v, "pos", None))
        return None

    def entries_decl(self, d: ast.EntriesDecl) -> None:
        nf = self.prog.nfs.get(d.nf)
        if nf is None:
            self.error(f"unknown nf '{d.nf}'", d.pos)
            return
        table = nf.tables.get(d.table)
        if table is None:
            if d.table not in self.declared.get(d.nf, ()):  # else: its declaration had errors
                self.error(f"unknown table '{d.table}' in nf '{d.nf}'", d.table_pos or d.pos)
            return
        existing = [e for e in self.prog.entries if e.table == table.name and e.nf == nf.name]
        seen: dict[tuple, ast.Pos] = {
            (tuple(e.keys), e.priority): e.pos for e in existing
        }
        count = len(existing)
        for e in d.entries:
            entry = self.entry(e, nf, table)
            if entry is None:
                continue
            ident = (tuple(entry.keys), entry.priority)
            if ident in seen:
                self.error(f"duplicate entry in table '{table.name}'", e.pos, note("first entry is here", seen[ident]))
                continue
            seen[ident] = e.pos
            count += 1
            if count > table.size:
                self.error(f"table '{table.name}' holds {table.size} entries; this is entry {count}", e.pos)
                continue
            self.prog.entries.append(entry)

    def entry(self, e: ast.Entry, nf: P.Nf, table: P.Table) -> P.TableEntry | None:
        ok = True
        if not table.keys:
            self.error(f"table '{table.name}' has no keys: it takes no entries, only a default_action", e.pos)
            return None
        if len(e.keys) != len(table.keys):
            self.error(f"table '{table.name}' has {len(table.keys)} key(s); this entry gives {len(e.keys)}", e.pos)
            return None
        keys: list[P.KeyMatch] = []
        for v, k in zip(e.keys, table.keys, strict=True):
            km = self.entry_key(v, k)
            if km is None:
                ok = False
            else:
                keys.append(km)
        args: list[int] = []
        apos = e.action_pos or e.pos
        ppos = e.priority_pos or e.pos
        if e.action not in nf.actions:
            if e.action not in self.declared.get(nf.name, ()):
                self.error(f"unknown action '{e.action}'", apos)
            ok = False
        elif e.action not in table.actions:
            self.error(f"action '{e.action}' is not one of the actions of table '{table.name}'", apos)
            ok = False
        else:
            act = nf.actions[e.action]
            try:
                call = ast.Call(e.action, e.args, apos)
                ops = self.call_args(call, act.params, len(act.params), _Scope(nf=nf, allow_fields=False),
                                     f"action '{e.action}'")
                args = [o.value for o in ops if isinstance(o, P.ConstVal)]
            except _Skip:
                ok = False
        if table.needs_priority:
            if e.priority is None:
                kinds = sorted({k.match_kind for k in table.keys if k.match_kind in ("ternary", "range", "optional")})
                self.error(f"table '{table.name}' has {'/'.join(kinds)} keys: each entry needs 'priority N'", e.pos)
                ok = False
            elif e.priority < 1 or e.priority > 0x7FFFFFFF:
                self.error(f"priority {e.priority} is out of range (1 to 2147483647)", ppos)
                ok = False
        elif e.priority is not None:
            self.error(f"table '{table.name}' has only exact/lpm keys; entries take no priority", ppos)
            ok = False
        if not ok:
            return None
        return P.TableEntry(nf.name, table.name, keys, e.action, args, e.priority, e.pos)

    def entry_key(self, v: ast.MatchValue, k: P.KeyField) -> P.KeyMatch | None:
        w = k.field.width
        kind = k.match_kind
        full = (1 << w) - 1
        name = str(k.field)
        if isinstance(v, ast.Wildcard):
            if kind == "exact":
                self.error(f"exact key '{name}' cannot be a wildcard", v.pos)
                return None
            if kind == "lpm":
                return P.KeyMatch("lpm", 0, prefix_len=0, wildcard=True)
            if kind == "ternary":
                return P.KeyMatch("ternary", 0, mask=0, wildcard=True)
            if kind == "range":
                return P.KeyMatch("range", 0, high=full, wildcard=True)
            return P.KeyMatch("optional", 0, wildcard=True)
        if isinstance(v, ast.TernaryValue):
            if kind != "ternary":
                self.error(f"'value &&& mask' is for ternary keys; '{name}' is {kind}", v.pos)
                return None
            val, mask = self.match_literal(v.value, w), self.match_literal(v.mask, w)
            if val is None or mask is None:
                return None
            return P.KeyMatch("ternary", val & mask, mask=mask)
        if isinstance(v, ast.RangeValue):
            if kind != "range":
                self.error(f"'low..high' is for range keys; '{name}' is {kind}", v.pos)
                return None
            lo, hi = self.match_literal(v.low, w), self.match_literal(v.high, w)
            if lo is None or hi is None:
                return None
            if lo > hi:
                self.error(f"range {lo}..{hi} is empty (low > high)", v.pos)
                return None
            return P.KeyMatch("range", lo, high=hi)
        lit = v
        if isinstance(v, ast.ConstRef):
            lit = self.const_lits.get(v.name)
            if lit is None:
                self.error(f"undefined constant '{v.name}'", v.pos)
                return None
        if isinstance(lit, ast.AddrLit) and lit.prefix is not None:
            if lit.width != w:
                self.error(f"{_kind_name(lit.kind)} is {lit.width} bits; key '{name}' is bit<{w}>", v.pos)
                return None
            if kind not in ("lpm", "ternary"):
                self.error(f"a prefix is for lpm or ternary keys; '{name}' is {kind}", v.pos)
                return None
            mask = (full >> (w - lit.prefix)) << (w - lit.prefix) if lit.prefix else 0
            if lit.value & ~mask & full:
                fixed = format_value(lit.kind, lit.value & mask, w)
                self.error(f"'{lit.text}' has bits set beyond the /{lit.prefix} prefix; "
                           f"did you mean {fixed}/{lit.prefix}?", v.pos)
                return None
            if kind == "lpm":
                return P.KeyMatch("lpm", lit.value, prefix_len=lit.prefix)
            return P.KeyMatch("ternary", lit.value, mask=mask)
        val = self.match_literal(lit, w)
        if val is None:
            return None
        if kind == "lpm":
            return P.KeyMatch("lpm", val, prefix_len=w)
        if kind == "ternary":
            return P.KeyMatch("ternary", val, mask=full)
        if kind == "range":
            return P.KeyMatch("range", val, high=val)
        return P.KeyMatch(kind, val)


# ---------------------------------------------------------------- small helpers


def _kind_name(kind: str) -> str:
    return {"ipv4": "an IPv4 address", "ipv6": "an IPv6 address", "mac": "a MAC address"}.get(kind, "a value")


def _operand_name(op: P.Operand) -> str:
    if isinstance(op, P.ParamRef):
        return op.name
    if isinstance(op, P.ConstVal):
        return format_value(op.kind, op.value, op.width or 0)
    if isinstance(op, P.Arith):
        return f"{_operand_name(op.left)} {op.op} {_operand_name(op.right)}"
    return str(op)


def _op_width(op: P.Operand) -> int | None:
    if isinstance(op, (P.FieldRef, P.ParamRef)):
        return op.width
    if isinstance(op, P.ConstVal):
        return op.width
    return None


def _expr_pos(e: object, default: ast.Pos | None) -> ast.Pos | None:
    return getattr(e, "pos", default)


def check_program(files: list[ast.SourceFile], sink: DiagnosticSink) -> P.Program:
    """Check parsed files (std library first); errors go to `sink`. Every arithmetic
    expression of a valid program leaves with its width (p4gen.midend.widths)."""
    from p4gen.midend.widths import infer_widths

    prog = Checker(sink).run(files)
    return prog if sink.has_errors() else infer_widths(prog)
