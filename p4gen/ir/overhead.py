"""Pass 3: header overhead added downstream of each segmentation stage.

`mss auto` needs, for every path a packet can take after segmentation, the
number of bytes that later stages add inside the outermost IP packet (VXLAN
over IPv4: outer IPv4 20 + UDP 8 + VXLAN 8 + the carried inner Ethernet 14 =
50). Paths branch at every table (one edge per action) and at every `if`;
an action that drops ends its path. Branches on header validity are pruned
when an earlier branch on the same path already decided them and nothing
in between changed that header's validity.

Where the stages run (NIC or hypervisor) does not matter: the overhead is a
property of the path, so the result holds for any placement.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from p4gen.frontend import program as P
from p4gen.ir.lower import Stage

DEFAULT_PATH_LIMIT = 256  # witness paths kept; `distinct` is always complete


@dataclass(frozen=True)
class OverheadPath:
    overhead: int  # bytes added inside the outermost IP packet
    steps: tuple[tuple[str, str], ...]  # (stage id, label taken) for every decision on the path

    def takes(self, stage_id: str, action: str) -> bool:
        return any(s == stage_id and lbl.split("/")[0] == action for s, lbl in self.steps)


@dataclass(frozen=True)
class OverheadResult:
    stage: str
    paths: tuple[OverheadPath, ...]
    distinct: frozenset[int]
    truncated: bool  # more paths than the limit; `distinct` is still complete

    @property
    def max(self) -> int:
        return max(self.distinct, default=0)

    def through(self, *choices: tuple[str, str]) -> list[OverheadPath]:
        """Paths taking every given (stage id, action) choice."""
        return [p for p in self.paths if all(p.takes(s, a) for s, a in choices)]


def _effect_of(stage: Stage, label: str):
    return stage.effects.get(label.split("/")[0]) or stage.effects.get(label)


def _valid_test(cond: P.CondT | None) -> tuple[str, bool] | None:
    if isinstance(cond, P.ValidC):
        return cond.instance, True
    if isinstance(cond, P.NotC) and isinstance(cond.operand, P.ValidC):
        return cond.operand.instance, False
    return None


def downstream_overhead(g: nx.DiGraph, start: str, limit: int = DEFAULT_PATH_LIMIT) -> OverheadResult:
    """Enumerate the paths from after `start` to the pipeline's end."""
    paths: list[OverheadPath] = []
    truncated = False

    def successors(node: str):
        for _, v, d in g.out_edges(node, data=True):
            for label in d["control"]:
                yield v, label

    def unwind(cell) -> tuple[tuple[str, str], ...]:
        out = []
        while cell is not None:
            out.append(cell[0])
            cell = cell[1]
        return tuple(reversed(out))

    # Iterative DFS: (node, overhead so far, steps as a shared-prefix linked list, validity facts)
    stack: list[tuple[str, int, object, tuple]] = []
    for v, _label in successors(start):
        stack.append((v, 0, None, ()))
    while stack:
        node, acc, steps, facts = stack.pop()
        stage: Stage = g.nodes[node]["stage"]
        if stage.kind == "deparse":
            if len(paths) >= limit:
                truncated = True
                break
            paths.append(OverheadPath(max(acc, 0), unwind(steps)))
            continue
        known = dict(facts)
        test = _valid_test(stage.cond) if stage.kind == "branch" else None
        for v, label in successors(node):
            if test is not None:
                inst, positive = test
                outcome = (label == "true") == positive
                if inst in known and known[inst] != outcome:
                    continue  # contradicts what this path already established
                new_facts = tuple(sorted({**known, inst: outcome}.items()))
                stack.append((v, acc, ((node, label), steps), new_facts))
                continue
            eff = _effect_of(stage, label)
            if eff is not None and eff.drops:
                continue
            add = eff.ip_overhead if eff is not None else 0
            facts_after = facts
            if eff is not None and known:
                changed = {k.split(".")[0] for k in eff.writes if k.endswith(".$valid")}
                facts_after = tuple((k, b) for k, b in facts if k not in changed)
            decision = stage.kind in ("table", "branch") or len(stage.effects) > 1
            stack.append((v, acc + add, ((node, label), steps) if decision else steps, facts_after))
    distinct = frozenset(p.overhead for p in paths) if not truncated else _distinct_overheads(g, start)
    paths.sort(key=lambda p: (p.overhead, p.steps))
    return OverheadResult(start, tuple(paths), distinct, truncated)


def _distinct_overheads(g: nx.DiGraph, start: str) -> frozenset[int]:
    """Every overhead value reachable (without validity pruning): polynomial DP."""
    memo: dict[str, frozenset[int]] = {}
    order = list(nx.topological_sort(nx.DiGraph((u, v) for u, v, d in g.edges(data=True) if d.get("control"))))
    for node in reversed(order):
        stage: Stage = g.nodes[node]["stage"]
        if stage.kind == "deparse":
            memo[node] = frozenset({0})
            continue
        vals: set[int] = set()
        for _, v, d in g.out_edges(node, data=True):
            for label in d["control"]:
                eff = _effect_of(stage, label)
                if eff is not None and eff.drops:
                    continue
                add = eff.ip_overhead if eff is not None else 0
                vals |= {add + x for x in memo.get(v, frozenset())}
        memo[node] = frozenset(vals)
    out: set[int] = set()
    for _, v, d in g.out_edges(start, data=True):
        if d["control"]:
            out |= memo.get(v, frozenset())
    return frozenset(max(x, 0) for x in out)


def annotate_overheads(g: nx.DiGraph, limit: int = DEFAULT_PATH_LIMIT) -> dict[str, OverheadResult]:
    """Run the pass for every segmentation stage; results also land on the node."""
    results = {}
    for n, data in g.nodes(data=True):
        if data["kind"] == "segment":
            results[n] = downstream_overhead(g, n, limit)
            data["downstream_overhead"] = results[n]
    return results
