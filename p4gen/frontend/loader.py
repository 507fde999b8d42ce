"""Loading .nf files with their imports, the standard library first.

Imports are resolved relative to the importing file; each file is read once
(diamond imports are fine) and a cycle is an error at the `import` that
closes it.
"""

from __future__ import annotations

import functools
import os
from importlib import resources

from p4gen.diagnostics import DiagnosticSink
from p4gen.frontend import ast
from p4gen.frontend.parse import MAX_FILE_BYTES, decode_source, parse_text

STD_NAME = "<std>"


@functools.lru_cache(maxsize=1)
def _parsed_std() -> ast.SourceFile:
    text = resources.files("p4gen.stdlib").joinpath("std.nf").read_text(encoding="utf-8")
    scratch = DiagnosticSink()
    tree = parse_text(STD_NAME, text, scratch)
    if tree is None:  # pragma: no cover - the shipped library parses
        raise RuntimeError("the p4gen standard library does not parse:\n" + scratch.render())
    return tree


def load_std(sink: DiagnosticSink) -> ast.SourceFile:
    """The standard library's syntax tree (parsed once per process; trees are immutable)."""
    tree = _parsed_std()
    sink.sources[STD_NAME] = tree.text
    return tree


def load_files(paths: list[str], sink: DiagnosticSink) -> list[ast.SourceFile]:
    """The std library, then every file and its imports, each after its imports."""
    loaded: dict[str, ast.SourceFile | None] = {}
    order: list[ast.SourceFile] = [load_std(sink)]
    stack: list[str] = []
    entered_by: list[ast.Pos | None] = []  # the import that led to each file on the stack

    def visit(path: str, display: str, from_pos: ast.Pos | None) -> None:
        key = os.path.realpath(path)
        if key in stack:
            i = stack.index(key)
            cycle = [os.path.relpath(p) for p in stack[i:]] + [os.path.relpath(key)]
            # Point at the import in the outermost file of the cycle: that is
            # the file the user is checking, and its import starts the loop.
            where = entered_by[i + 1] if i + 1 < len(stack) else from_pos
            sink.error("import cycle: " + " -> ".join(cycle), where)
            return
        if key in loaded:
            return
        try:
            if os.path.isdir(path):
                raise IsADirectoryError(21, "is a directory")
            with open(path, "rb") as fh:
                data = fh.read(MAX_FILE_BYTES + 1)  # never more: /dev/zero must not exhaust memory
        except OSError as e:
            reason = e.strerror or str(e)
            if from_pos is None:
                sink.error(f"cannot read '{display}': {reason}", None)
            else:
                sink.error(f"cannot import '{display}': {reason}", from_pos)
            loaded[key] = None
            return
        text = decode_source(display, data, sink)
        tree = parse_text(display, text, sink) if text is not None else None
        loaded[key] = tree
        if tree is None:
            return
        stack.append(key)
        entered_by.append(from_pos)
        for decl in tree.decls:
            if isinstance(decl, ast.Import):
                target = os.path.join(os.path.dirname(path), decl.path)
                shown = os.path.normpath(os.path.join(os.path.dirname(display), decl.path))
                visit(target, shown, decl.pos)
        stack.pop()
        entered_by.pop()
        order.append(tree)

    for p in paths:
        visit(p, p, None)
    return order


__all__ = ["load_files", "load_std", "STD_NAME"]
