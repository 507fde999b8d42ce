"""Compiler diagnostics: `FILE:LINE:COL: error: message`, the source line, a caret.

Every user-facing error of p4gen goes through here so that they all look
alike and none of them is a Python traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Pos:
    """A place in a source file: 1-based line and column."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    severity: str  # "error" | "warning" | "note"
    message: str
    pos: Pos | None
    notes: tuple[Diagnostic, ...] = ()

    def headline(self) -> str:
        if self.pos is not None and self.pos.line > 0:
            return f"{self.pos}: {self.severity}: {self.message}"
        # Not about a place in a source file (a file that cannot be read): said by p4gen itself.
        return f"p4gen: {self.severity}: {self.message}" if self.severity != "note" else f"note: {self.message}"


@dataclass
class DiagnosticSink:
    """Collects diagnostics of a whole run; the source texts render carets."""

    sources: dict[str, str] = field(default_factory=dict)
    items: list[Diagnostic] = field(default_factory=list)

    def error(self, message: str, pos: Pos | None, *notes: Diagnostic) -> None:
        self.items.append(Diagnostic("error", message, pos, tuple(notes)))

    def warning(self, message: str, pos: Pos | None) -> None:
        self.items.append(Diagnostic("warning", message, pos))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        def key(d: Diagnostic) -> tuple[str, int, int]:
            p = d.pos
            return (p.file, p.line, p.col) if p else ("", 0, 0)

        return sorted(self.items, key=key)

    def render(self) -> str:
        return "".join(render(d, self.sources) for d in self.sorted())


def note(message: str, pos: Pos | None) -> Diagnostic:
    return Diagnostic("note", message, pos)


def render(d: Diagnostic, sources: dict[str, str]) -> str:
    """The headline, then the source line with a caret under the column."""
    out = [d.headline()]
    if d.pos is not None and d.pos.line > 0:
        text = sources.get(d.pos.file)
        if text is not None:
            lines = text.splitlines()
            if 0 < d.pos.line <= len(lines):
                line = lines[d.pos.line - 1].replace("\t", " ")
                if len(line) > 200:  # keep carets readable on huge lines
                    start = max(0, d.pos.col - 100)
                    shown = line[start:start + 200]
                    caret = d.pos.col - 1 - start
                else:
                    shown, caret = line, d.pos.col - 1
                out.append("    " + shown)
                out.append("    " + " " * max(caret, 0) + "^")
    text = "\n".join(out) + "\n"
    return text + "".join(render(n, sources) for n in d.notes)


class CompileError(Exception):
    """Raised by a pass when it cannot go on; carries the diagnostics."""

    def __init__(self, sink: DiagnosticSink):
        super().__init__(sink.render())
        self.sink = sink
