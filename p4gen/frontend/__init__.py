"""DSL front end: text → syntax tree (Lark) → checked `Program`."""

from __future__ import annotations

from p4gen.diagnostics import DiagnosticSink, Pos
from p4gen.frontend.check import check_program
from p4gen.frontend.loader import load_files, load_std
from p4gen.frontend.parse import decode_source, parse_text
from p4gen.frontend.program import Program


def load_program(paths: list[str], sink: DiagnosticSink | None = None) -> tuple[Program | None, DiagnosticSink]:
    """Parse and check files with their imports; the Program is None when there are errors."""
    sink = sink if sink is not None else DiagnosticSink()
    try:
        files = load_files(paths, sink)
        if sink.has_errors():
            return None, sink
        prog = check_program(files, sink)
    except RecursionError:
        sink.error("the program is nested too deeply to check", Pos(paths[0] if paths else "<input>", 1, 1))
        return None, sink
    return (None if sink.has_errors() else prog), sink


def check_source(name: str, data: bytes) -> tuple[Program | None, DiagnosticSink]:
    """Check one in-memory file (no imports followed): for tests and fuzzing."""
    sink = DiagnosticSink()
    try:
        text = decode_source(name, data, sink)
        if text is None:
            return None, sink
        tree = parse_text(name, text, sink)
        if tree is None:
            return None, sink
        prog = check_program([load_std(sink), tree], sink)
    except RecursionError:
        sink.error("the program is nested too deeply to check", Pos(name, 1, 1))
        return None, sink
    return (None if sink.has_errors() else prog), sink


__all__ = ["load_program", "check_source", "Program"]
