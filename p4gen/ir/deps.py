"""Pass 2: data-dependency edges from each stage's read and write sets.

For every stage S and every field f that S reads, an edge `raw` ∋ f comes
from each *latest* earlier stage that may write f: among S's control-flow
ancestors that write f, those that are not themselves ancestors of another
such writer (one per branch of an if/else, usually a single stage).
Writers further back precede one of those in control order, so every
read-after-write dependency is implied by these edges plus control edges,
and the graph stays linear in size even for 1000 tables that all rewrite the
same field behind `if`s. Sets are bit masks over a topological order.
"""

from __future__ import annotations

import networkx as nx


def _bits(mask: int):
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def add_dependency_edges(g: nx.DiGraph) -> None:
    control = nx.DiGraph((u, v) for u, v, d in g.edges(data=True) if d.get("control"))
    control.add_nodes_from(g.nodes)
    order = list(nx.topological_sort(control))
    index = {n: i for i, n in enumerate(order)}
    anc: list[int] = [0] * len(order)
    latest_after: list[dict[str, int] | None] = [None] * len(order)
    for i, v in enumerate(order):
        preds = [index[p] for p in control.predecessors(v)]
        mask = 0
        for p in preds:
            mask |= anc[p] | (1 << p)
        anc[i] = mask
        cand: dict[str, int] = {}
        for p in preds:
            for f, m in latest_after[p].items():  # type: ignore[union-attr]
                cand[f] = cand.get(f, 0) | m
        if len(preds) > 1:  # joins: keep only writers no other candidate follows
            for f, m in cand.items():
                keep = m
                for c in _bits(m):
                    for d in _bits(m):
                        if c != d and anc[d] >> c & 1:
                            keep &= ~(1 << c)
                            break
                cand[f] = keep
        for f in g.nodes[v]["reads"]:
            for u_i in _bits(cand.get(f, 0)):
                u = order[u_i]
                if g.has_edge(u, v):
                    g.edges[u, v]["raw"].add(f)
                else:
                    g.add_edge(u, v, control=[], raw={f})
        writes = g.nodes[v]["writes"]
        if writes:
            cand = dict(cand)
            for f in writes:
                cand[f] = 1 << i
        latest_after[i] = cand


def raw_fields(g: nx.DiGraph, u: str, v: str) -> set[str]:
    """Fields `v` reads that `u` wrote (empty when there is no such dependency)."""
    if not g.has_edge(u, v):
        return set()
    return set(g.edges[u, v]["raw"])
