"""Text → syntax tree: Lark (LALR, positions kept) plus a Transformer into `ast`.

Reading never raises on bad input: undecodable bytes, over-large files and
syntax errors all become diagnostics in the sink, with file:line:col.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path

from lark import Lark, Token, Transformer
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from p4gen.diagnostics import DiagnosticSink
from p4gen.frontend import ast
from p4gen.frontend.literals import LiteralError, parse_colon_addr, parse_int, parse_ipv4

# Real programs are far smaller (a 1000-table program is ~300 KB); the cap keeps
# a stray multi-megabyte input from tying up the parser.
MAX_FILE_BYTES = 4 * 1024 * 1024


@functools.lru_cache(maxsize=1)
def grammar_text() -> str:
    """The grammar as installed (package data `p4gen.grammar`), or from a source checkout's grammar/."""
    try:
        return resources.files("p4gen.grammar").joinpath("p4gen.lark").read_text(encoding="utf-8")
    except ModuleNotFoundError:
        checkout = Path(__file__).resolve().parents[2] / "grammar" / "p4gen.lark"
        return checkout.read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def lark_parser() -> Lark:
    return Lark(
        grammar_text(),
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
    )


def decode_source(path: str, data: bytes, sink: DiagnosticSink) -> str | None:
    """Bytes → text, or None after reporting why the file cannot be read as DSL."""
    if len(data) > MAX_FILE_BYTES:
        sink.error(
            f"file is too large ({len(data)} bytes; the limit is {MAX_FILE_BYTES})",
            ast.Pos(path, 1, 1),
        )
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[: e.start]
        line = before.count(b"\n") + 1
        line_start = before.rfind(b"\n") + 1
        # The source line is shown with undecodable bytes escaped (\xe9), and the caret under the
        # first of them: the column counts characters of that shown line.
        col = len(data[line_start:e.start].decode("utf-8", "backslashreplace")) + 1
        sink.sources[path] = data.decode("utf-8", "backslashreplace")
        sink.error(f"file is not UTF-8 text (byte 0x{data[e.start]:02x})", ast.Pos(path, line, col))
        return None
    sink.sources[path] = text
    if "\x00" in text:
        i = text.index("\x00")
        line = text.count("\n", 0, i) + 1
        col = i - (text.rfind("\n", 0, i) + 1) + 1
        sink.error("file contains a NUL byte; is it a binary file?", ast.Pos(path, line, col))
        return None
    return text


def _describe_expected(expected: set[str]) -> str:
    parser = lark_parser()
    names = []
    for name in sorted(expected):
        try:
            term = parser.get_terminal(name)
        except KeyError:
            names.append(name)
            continue
        if term.pattern.type == "str":
            names.append(f"'{term.pattern.value}'")
        else:
            names.append(_TERMINAL_NAMES.get(name, name.lower()))
    names = sorted(set(names))
    if len(names) > 8:
        names = names[:8] + ["..."]
    return ", ".join(names)


_TERMINAL_NAMES = {
    "NAME": "a name",
    "INT": "a number",
    "HEX": "a number",
    "BIN": "a number",
    "IPV4": "an IPv4 address",
    "ADDR": "an address",
    "STRING": "a string",
    "BOOL": "true or false",
    "CMP": "a comparison",
    "HITMISS": "hit or miss",
    "ADDOP": "an operator",
    "MULOP": "an operator",
    "OVERRIDE": "'override'",
    "AUTO": "'auto'",
}


def _token_text(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    return f"'{tok.value}'"


def parse_text(path: str, text: str, sink: DiagnosticSink) -> ast.SourceFile | None:
    """Parse one file's text; None (with diagnostics) if it has syntax errors."""
    sink.sources[path] = text
    # Only the first syntax error is reported: Lark's token-dropping recovery
    # produces cascades of bogus follow-up errors. Semantic checks, which run
    # on files that parse, report every error.
    syntax_errors: list[tuple[int, int, str]] = []
    expected_set: set[str] = set()
    found: str | None = None  # the unexpected token's text (None: end of file)
    try:
        tree = lark_parser().parse(text)
    except UnexpectedToken as e:
        tok = e.token
        line = tok.line if tok.line is not None else e.line
        col = tok.column if tok.column is not None else e.column
        if tok.type == "$END":
            lines = text.splitlines() or [""]
            line, col = len(lines), len(lines[-1]) + 1
        else:
            found = str(tok.value)
        expected = getattr(e, "accepts", None) or e.expected
        expected_set = set(expected)
        syntax_errors.append((line, col, f"unexpected {_token_text(tok)}; expected {_describe_expected(expected)}"))
        tree = None
    except UnexpectedCharacters as e:
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else "?"
        found = ch
        expected_set = set(getattr(e, "allowed", None) or ())
        syntax_errors.append((e.line, e.column, f"unexpected character {ch!r}"))
        tree = None
    except UnexpectedEOF as e:
        lines = text.splitlines() or [""]
        expected_set = set(e.expected)
        expected = _describe_expected(expected_set)
        syntax_errors.append((len(lines), len(lines[-1]) + 1, f"unexpected end of file; expected {expected}"))
        tree = None
    except UnexpectedInput as e:  # pragma: no cover - other Lark input errors
        syntax_errors.append((getattr(e, "line", 1) or 1, getattr(e, "column", 1) or 1, str(e).splitlines()[0]))
        tree = None

    if syntax_errors:
        for line, col, msg in syntax_errors:
            pos = ast.Pos(path, max(line, 1), max(col, 1))
            msg, pos, notes = explain_syntax_error(text, pos, msg, expected_set, found)
            sink.error(msg, pos, *notes)
        return None
    assert tree is not None
    try:
        decls = ToAst(path, sink).transform(tree)
    except VisitError as e:  # a bug in a transformer method; surface it
        raise e.orig_exc from None
    return ast.SourceFile(path=path, text=text, decls=tuple(decls))


# ---------------------------------------------------------------- better syntax errors

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Words that start a declaration: met where a statement was expected, they mean a block was left open.
_DECL_WORDS = ("import", "const", "header", "packet", "metadata", "parser", "nf", "segment", "coalesce",
               "pipeline", "flow", "entries", "action", "table", "counter", "state")


def _code_lines(text: str) -> list[str]:
    """The lines of text with comments and strings blanked out (same lengths, same columns)."""
    i, n = 0, len(text)
    buf = []
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            buf.append(" " * (j - i))
            i = j
        elif c == "/" and text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            buf.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif c == '"':
            j = text.find('"', i + 1)
            nl = text.find("\n", i + 1)
            j = j + 1 if j >= 0 and (nl < 0 or j < nl) else (nl if nl >= 0 else n)
            buf.append(" " * (j - i))
            i = j
        else:
            buf.append(c)
            i += 1
    return "".join(buf).split("\n")


def unclosed_brace(text: str) -> tuple[int, int] | None:
    """(line, col) of the '{' that was left open, or None when every brace is closed.

    Braces are matched as a stack; when a '}' that starts its line closes a '{' whose line is
    indented differently, that '{' is the likelier one to have lost its '}' (code is indented
    by its blocks): the first such is taken, else the innermost one still open."""
    stack: list[tuple[int, int, int]] = []  # line, col, indentation of the '{' line
    suspect: tuple[int, int] | None = None
    for ln, line in enumerate(_code_lines(text), start=1):
        indent = len(line) - len(line.lstrip())
        for col, ch in enumerate(line, start=1):
            if ch == "{":
                stack.append((ln, col, indent))
            elif ch == "}" and stack:
                o_ln, o_col, o_indent = stack.pop()
                if suspect is None and col == indent + 1 and o_indent != indent and o_ln != ln:
                    suspect = (o_ln, o_col)
    if not stack:
        return None
    return suspect if suspect is not None else (stack[-1][0], stack[-1][1])


def _previous_code_end(text: str, line: int, col: int) -> tuple[int, int] | None:
    """The position just after the last code character before (line, col), when it is on an
    earlier line (comments and blank lines skipped)."""
    lines = _code_lines(text)
    if not 0 < line <= len(lines) or lines[line - 1][: col - 1].strip():
        return None  # something precedes the token on its own line
    for ln in range(line - 1, 0, -1):
        code = lines[ln - 1].rstrip()
        if code:
            return ln, len(code) + 1
    return None


def explain_syntax_error(text: str, pos, msg: str, expected: set[str], found: str | None):
    """Lark's error → (message, position, notes), as a person would put it."""
    from p4gen.diagnostics import note

    lines = text.split("\n")
    line_text = lines[pos.line - 1] if 0 < pos.line <= len(lines) else ""
    # `bits<6>`, `int<8>`: the word the parser stumbled in.
    start = min(pos.col - 1, len(line_text))  # Lark's column can lie past this split's line (other line breaks)
    while start > 0 and (line_text[start - 1].isalnum() or line_text[start - 1] == "_"):
        start -= 1
    m = _WORD.match(line_text, start)
    if m is not None and m.start() <= pos.col - 1 <= m.end():
        word = m.group()
        if word != "bit" and (word.startswith("bit") or word in ("int", "uint", "bits", "byte")):
            rest = line_text[m.end():]
            width = re.match(r"\s*<\s*(\d+)\s*>", rest)
            example = f"bit<{width.group(1)}>" if width else "bit<8>"
            return (f"unknown type '{word}'; field and parameter types are written bit<N> (e.g. {example})",
                    type(pos)(pos.file, pos.line, m.start() + 1), ())
    # An unclosed '{' that the parser only noticed later.
    brace = unclosed_brace(text)
    if brace is not None and brace < (pos.line, pos.col):
        indent = len(line_text) - len(line_text.lstrip())
        first = _WORD.match(line_text, indent)
        at = pos
        if first is not None and first.group() in _DECL_WORDS and found is not None:
            found, at = first.group(), type(pos)(pos.file, pos.line, indent + 1)
        if found is None or at is not pos or "RBRACE" in expected:
            here = "the end of the file" if found is None else f"'{found}' on line {pos.line}"
            return ("unclosed '{': its '}' is missing",
                    type(pos)(pos.file, brace[0], brace[1]),
                    (note(f"the block was still open at {here}", at),))
    # A missing ';' at the end of the previous line.
    if "SEMICOLON" in expected and found is not None:
        prev = _previous_code_end(text, pos.line, pos.col)
        if prev is not None:
            return (f"expected ';' at the end of this line (found '{found}' on the next)",
                    type(pos)(pos.file, prev[0], prev[1]), ())
    return msg, pos, ()


# ---------------------------------------------------------------- transformer


def _pos(path: str, meta_or_tok: object) -> ast.Pos:
    line = getattr(meta_or_tok, "line", None)
    col = getattr(meta_or_tok, "column", None)
    if line is None:
        return ast.Pos(path, 1, 1)
    return ast.Pos(path, line, col or 1)


class ToAst(Transformer):
    """One method per grammar rule or alias, called as `rule(meta, children)`; each returns an
    `ast` node."""

    def __init__(self, path: str, sink: DiagnosticSink):
        super().__init__()
        self.file = path
        self.sink = sink

    def _call_userfunc(self, tree, new_children=None):
        """Call a rule's method with (meta, children), as lark's `v_args(meta=True)` would, but
        without the wrapper lark builds on every call (a fifth of the front end's time on large
        programs). Errors propagate as they are; `parse` used to unwrap them from VisitError."""
        children = new_children if new_children is not None else tree.children
        f = getattr(self, tree.data, None)
        if f is None:
            return self.__default__(tree.data, children, tree.meta)
        return f(tree.meta, children)

    def P(self, x: object) -> ast.Pos:  # noqa: N802 - short on purpose
        return _pos(self.file, x)

    # -- top level
    def start(self, meta, items):
        return items

    def annotations(self, meta, items):
        return tuple(items)

    def annotation(self, meta, c):
        name, args = c
        return ast.Annotation(str(name), tuple(args or ()), self.P(meta))

    def anno_args(self, meta, c):
        return tuple(a for a in c if a is not None)

    def anno_name(self, meta, c):
        return str(c[0])

    def import_decl(self, meta, c):
        return ast.Import(str(c[0])[1:-1], self.P(meta))

    def const_decl(self, meta, c):
        return ast.Const(str(c[0]), c[1], self.P(c[0]))

    def header_decl(self, meta, c):
        annos, name, *fields = c
        return ast.HeaderDecl(str(name), tuple(fields), annos, self.P(name))

    def fixed_field(self, meta, c):
        return ast.FieldDecl(str(c[0]), c[1], None, self.P(c[0]))

    def varbit_field(self, meta, c):
        return ast.FieldDecl(str(c[0]), int(c[1]), c[2], self.P(c[0]))

    def bit_type(self, meta, c):
        return int(c[0])

    def packet_decl(self, meta, c):
        return ast.PacketDecl(tuple(c), self.P(meta))

    def instance_decl(self, meta, c):
        name, type_name, stack = c
        return ast.InstanceDecl(str(name), str(type_name), int(stack) if stack is not None else None, self.P(name),
                                self.P(type_name))

    def metadata_decl(self, meta, c):
        return ast.MetadataDecl(tuple(c), self.P(meta))

    def meta_field(self, meta, c):
        return ast.MetaField(str(c[0]), c[1], self.P(c[0]))

    # -- parser
    def parser_decl(self, meta, c):
        return ast.ParserDecl(tuple(c), self.P(meta))

    def state_decl(self, meta, c):
        override = isinstance(c[0], Token) and c[0].type == "OVERRIDE"
        if override:
            c = c[1:]
        name, *body, transition = c
        return ast.StateDecl(str(name), tuple(body), transition, override, self.P(name))

    def extract(self, meta, c):
        return ast.Extract(c[0], self.P(meta))

    def parser_assign(self, meta, c):
        return ast.ParserAssign(c[0], c[1], self.P(meta))

    def goto(self, meta, c):
        return ast.Transition((), (), str(c[0]), self.P(c[0]))

    def select(self, meta, c):
        selector, *cases = c
        return ast.Transition(tuple(selector), tuple(cases), None, self.P(meta))

    def arith_list(self, meta, c):
        return tuple(c)

    def select_case(self, meta, c):
        keys, nxt = c
        if not isinstance(keys, tuple):
            keys = (keys,)
        return ast.SelectCase(keys, str(nxt), self.P(nxt))

    def key_tuple(self, meta, c):
        return tuple(c)

    def default_key(self, meta, c):
        return ast.Default(self.P(meta))

    # -- nf
    def nf_decl(self, meta, c):
        annos, name, *members, apply = c
        return ast.NfDecl(
            name=str(name),
            actions=tuple(m for m in members if isinstance(m, ast.ActionDecl)),
            tables=tuple(m for m in members if isinstance(m, ast.TableDecl)),
            counters=tuple(m for m in members if isinstance(m, ast.CounterDecl)),
            apply=apply,
            annotations=annos,
            pos=self.P(name),
        )

    def counter_decl(self, meta, c):
        annos, name, size = c
        return ast.CounterDecl(str(name), int(size) if size is not None else None, annos, self.P(name))

    def action_decl(self, meta, c):
        annos, name, params, body = c
        return ast.ActionDecl(str(name), params, body, annos, self.P(name))

    def params(self, meta, c):
        return tuple(p for p in c if p is not None)

    def param(self, meta, c):
        return ast.Param(str(c[0]), c[1], self.P(c[0]))

    def block(self, meta, c):
        return tuple(c)

    def apply_block(self, meta, c):
        return c[0]

    def assign(self, meta, c):
        return ast.Assign(c[0], c[1], self.P(meta))

    def call(self, meta, c):
        return ast.Call(str(c[0]), c[1], self.P(c[0]))

    def apply_table(self, meta, c):
        return ast.ApplyTable(c[0], self.P(meta))

    def if_stmt(self, meta, c):
        cond, then, orelse = c
        return ast.If(cond, then, tuple(orelse or ()), self.P(meta))

    def else_if(self, meta, c):
        return (c[0],)

    def args(self, meta, c):
        return tuple(a for a in c if a is not None)

    # -- tables
    def table_decl(self, meta, c):
        annos, name, *props = c
        values: dict[str, object] = {}
        for p in props:
            values.setdefault(p.name, p.value)
        return ast.TableDecl(
            name=str(name),
            keys=tuple(values.get("key", ())),
            actions=tuple(values.get("actions", ())),
            default_action=values.get("default_action"),
            size=values.get("size"),
            counters=bool(values.get("counters", False)),
            idle_timeout=bool(values.get("idle_timeout", False)),
            annotations=annos,
            props=tuple(props),
            pos=self.P(name),
        )

    def key_prop(self, meta, c):
        return ast.TableProp("key", tuple(c), self.P(meta))

    def actions_prop(self, meta, c):
        return ast.TableProp("actions", tuple(c), self.P(meta))

    def default_prop(self, meta, c):
        return ast.TableProp("default_action", ast.ActionCall(str(c[0]), c[1], self.P(c[0])), self.P(meta))

    def size_prop(self, meta, c):
        return ast.TableProp("size", int(c[0]), self.P(meta))

    def counters_prop(self, meta, c):
        return ast.TableProp("counters", str(c[0]) == "true", self.P(meta))

    def idle_prop(self, meta, c):
        return ast.TableProp("idle_timeout", str(c[0]) == "true", self.P(meta))

    def key_elem(self, meta, c):
        return ast.KeyElem(c[0], str(c[1]), self.P(c[1]))

    def action_ref(self, meta, c):
        return (str(c[0]), self.P(c[0]))

    # -- conditions
    def or_(self, meta, c):
        c = [x for x in c if not isinstance(x, Token)]
        return c[0] if len(c) == 1 else ast.Or(tuple(c), self.P(meta))

    def and_(self, meta, c):
        c = [x for x in c if not isinstance(x, Token)]
        return c[0] if len(c) == 1 else ast.And(tuple(c), self.P(meta))

    def not_(self, meta, c):
        return ast.Not(c[0], self.P(meta))

    def valid(self, meta, c):
        return ast.Valid(c[0], self.P(meta))

    def apply_hit(self, meta, c):
        return ast.ApplyHit(c[0], str(c[1]) == "hit", self.P(meta))

    def compare(self, meta, c):
        return ast.Compare(str(c[1]), c[0], c[2], self.P(c[1]))

    def bool_cond(self, meta, c):
        return ast.BoolConst(str(c[0]) == "true", self.P(meta))

    # -- expressions
    def binop(self, meta, c):
        return ast.BinOp(str(c[1]), c[0], c[2], self.P(c[1]))

    def hash_expr(self, meta, c):
        return ast.HashExpr(c[0], self.P(meta))

    def path_head(self, meta, c):
        name, index = c
        return ast.Path((str(name),), int(index) if index is not None else None, self.P(name))

    def path(self, meta, c):
        if len(c) == 1:
            return c[0]
        base, name = c
        return ast.Path(base.parts + (str(name),), base.index, base.pos)

    # -- stages, pipelines, flows
    def segment_decl(self, meta, c):
        annos, name, *props = c
        return ast.SegmentDecl(str(name), tuple(props), annos, self.P(name))

    def coalesce_decl(self, meta, c):
        annos, name, *props = c
        return ast.CoalesceDecl(str(name), tuple(props), annos, self.P(name))

    def stage_prop(self, meta, c):
        name, value = c
        if isinstance(value, Token):
            value = "auto" if value.type == "AUTO" else ast.ConstRef(str(value), self.P(value))
        return ast.StageProp(str(name), value, self.P(name))

    def pipeline_decl(self, meta, c):
        annos, name, direction, *stages = c
        stage_list = tuple((str(s), self.P(s)) for s in stages if s is not None)
        return ast.PipelineDecl(str(name), str(direction), self.P(direction), stage_list, annos, self.P(name))

    def flow_decl(self, meta, c):
        name, cond, pipeline = c
        return ast.FlowDecl(str(name), cond, str(pipeline), self.P(pipeline), self.P(name))

    # -- entries
    def entries_decl(self, meta, c):
        nf, table, *entries = c
        return ast.EntriesDecl(str(nf), str(table), tuple(entries), self.P(nf), self.P(table))

    def entry(self, meta, c):
        *keys, action, args, priority = c
        return ast.Entry(
            tuple(k for k in keys if k is not None),
            str(action),
            args,
            int(priority) if priority is not None else None,
            self.P(meta),
            self.P(action),
            self.P(priority) if priority is not None else None,
        )

    def ternary_value(self, meta, c):
        return ast.TernaryValue(c[0], c[2], self.P(meta))

    def range_value(self, meta, c):
        return ast.RangeValue(c[0], c[1], self.P(meta))

    def wildcard(self, meta, c):
        return ast.Wildcard(self.P(meta))

    def const_ref(self, meta, c):
        return ast.ConstRef(str(c[0]), self.P(c[0]))

    # -- literals
    def int_lit(self, meta, c):
        tok = c[0]
        try:
            value = parse_int(str(tok))
        except ValueError:
            self.sink.error(f"bad number '{tok}'", self.P(tok))
            value = 0
        return ast.IntLit(value, str(tok), self.P(tok))

    def ipv4_lit(self, meta, c):
        tok = c[0]
        try:
            value, plen = parse_ipv4(str(tok))
        except LiteralError as e:
            self.sink.error(str(e), self.P(tok))
            value, plen = 0, None
        return ast.AddrLit("ipv4", value, 32, plen, str(tok), self.P(tok))

    def addr_lit(self, meta, c):
        tok = c[0]
        try:
            kind, value, plen = parse_colon_addr(str(tok))
        except LiteralError as e:
            self.sink.error(str(e), self.P(tok))
            kind, value, plen = "ipv6", 0, None
        width = 48 if kind == "mac" else 128
        return ast.AddrLit(kind, value, width, plen, str(tok), self.P(tok))

    def string_lit(self, meta, c):
        return ast.StrLit(str(c[0])[1:-1], self.P(c[0]))
