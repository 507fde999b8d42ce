"""The IR: a networkx DiGraph of stages, built by a short sequence of passes.

1. `lower.lower_program`       pipelines → stages with control-flow edges
2. `deps.add_dependency_edges` read-after-write edges from read/write sets
3. `overhead.annotate_overheads` downstream header overhead of segmentation
"""

from __future__ import annotations

import networkx as nx

from p4gen.frontend.program import Program
from p4gen.ir.deps import add_dependency_edges
from p4gen.ir.lower import Stage, lower_program
from p4gen.ir.overhead import OverheadResult, annotate_overheads, downstream_overhead


def build_ir(prog: Program) -> nx.DiGraph:
    g = lower_program(prog)
    add_dependency_edges(g)
    annotate_overheads(g)
    return g


def stages(g: nx.DiGraph, pipeline: str | None = None) -> list[Stage]:
    """Stages in program order (optionally of one pipeline)."""
    out = [d["stage"] for _, d in g.nodes(data=True) if pipeline is None or d["pipeline"] == pipeline]
    return sorted(out, key=lambda s: s.order)


__all__ = ["build_ir", "stages", "Stage", "OverheadResult", "downstream_overhead"]
