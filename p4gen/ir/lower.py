"""Pass 1: every pipeline's stage tree (p4gen.midend.stages) as stages joined by control edges.

Control edges carry labels: `next`, `true`/`false` (branches), an action
name (table applied for its action), `ACTION/hit` or `ACTION/miss` (table
applied in `if (t.apply().hit)`). A DiGraph keeps one edge per node pair,
so the labels of parallel transitions are kept as a list on that edge.
The trees themselves stay on the graph (`g.graph["stage_trees"]`) for the
back ends, which walk them rather than the graph.
"""

from __future__ import annotations

import networkx as nx

from p4gen.frontend import program as P
from p4gen.midend.stages import Branch, PipelineTree, Seq, Stage, build_stage_trees, hit_condition

__all__ = ["Stage", "hit_condition", "lower_program", "stage_trees"]

Exit = tuple[str, str]  # (node, label) still to be connected to what comes next


class _Lowerer:
    def __init__(self, g: nx.DiGraph):
        self.g = g

    def add(self, stage: Stage) -> str:
        self.g.add_node(stage.id, stage=stage, kind=stage.kind, pipeline=stage.pipeline, pos=stage.pos,
                        reads=frozenset(stage.reads), writes=frozenset(stage.writes))
        return stage.id

    def connect(self, exits: list[Exit], target: str) -> None:
        for src, label in exits:
            if self.g.has_edge(src, target):
                self.g.edges[src, target]["control"].append(label)
            else:
                self.g.add_edge(src, target, control=[label], raw=set())

    def pipeline(self, tree: PipelineTree) -> None:
        exits: list[Exit] = [(self.add(tree.parse), "next")]
        if tree.classify is not None:
            self.connect(exits, self.add(tree.classify))
            exits = [(tree.classify.id, "next")]
        exits = self.seq(tree.body, exits)
        self.connect(exits, self.add(tree.deparse))

    def seq(self, seq: Seq, exits: list[Exit]) -> list[Exit]:
        for it in seq.items:
            if isinstance(it, Stage):
                node = self.add(it)
                self.connect(exits, node)
                exits = [(node, a) for a in it.table.actions] if it.kind == "table" else [(node, "next")]
                continue
            assert isinstance(it, Branch)
            node = self.add(it.stage)
            self.connect(exits, node)
            if it.hit is not None:
                t = it.stage.table
                hit_exits = [(node, f"{a}/hit") for a in t.actions]
                miss_exits = [(node, f"{t.default_action}/miss")]
                then_in, else_in = (hit_exits, miss_exits) if it.hit[1] else (miss_exits, hit_exits)
            else:
                then_in, else_in = [(node, "true")], [(node, "false")]
            exits = self.seq(it.then, then_in) + self.seq(it.orelse, else_in)
        return exits


def lower_program(prog: P.Program) -> nx.DiGraph:
    trees = build_stage_trees(prog)
    g = nx.DiGraph(program=prog, stage_trees=trees)
    low = _Lowerer(g)
    for tree in trees.values():
        low.pipeline(tree)
    return g


def stage_trees(g: nx.DiGraph) -> dict[str, PipelineTree]:
    return g.graph["stage_trees"]
