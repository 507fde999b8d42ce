"""Pipeline numbers on the wire (p4gen_t.pipeline): 1-based, in declaration order."""

from __future__ import annotations

from p4gen.frontend.program import Program


def pipeline_numbers(prog: Program) -> dict[str, int]:
    return {name: i + 1 for i, name in enumerate(prog.pipelines)}


def pipeline_name(prog: Program, number: int) -> str | None:
    """The pipeline numbered `number`, or None when there is none."""
    names = list(prog.pipelines)
    return names[number - 1] if 1 <= number <= len(names) else None
