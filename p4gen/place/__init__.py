"""Placement: which stages run on the NIC and which in the hypervisor.

`place()` builds the abstract problem from the IR and the target profiles,
solves it exactly, and explains every decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from p4gen.frontend.program import Program
from p4gen.place.problem import HYP, NIC, Problem, build_problem
from p4gen.place.profiles import Profile, ProfileError, builtin_profile, load_profile, resolve_targets
from p4gen.place.solve import Assignment, Cost, Infeasible, cost_of, greedy_first_fit, solve_exact


@dataclass
class StageDecision:
    id: str
    kind: str
    pipeline: str
    target: str  # "nic" | "hypervisor"
    reason: str
    pos: str


@dataclass
class Placement:
    problem: Problem
    assignment: Assignment
    cost: Cost
    decisions: list[StageDecision] = field(default_factory=list)

    @property
    def nic(self) -> Profile | None:
        return self.problem.nic

    def target_of(self, stage_id: str) -> str:
        return self.assignment[stage_id]

    def stages_on(self, target: str) -> list[str]:
        return [s.id for s in self.problem.stages if self.assignment[s.id] == target]

    def resource_use(self) -> dict[str, tuple[int, int | None]]:
        tables = [s for s in self.problem.stages if s.is_table and self.assignment[s.id] == NIC]
        return {
            "tables": (len(tables), self.problem.max_tables),
            "table_entries": (sum(s.entries for s in tables), self.problem.max_entries),
        }

    def crossings(self) -> dict[str, dict[str, float]]:
        """Per pipeline: most crossings on any path, and the expected number per packet."""
        out: dict[str, dict[str, float]] = {}
        for pl in self.problem.pipelines:
            ids = [s.id for s in self.problem.stages if s.pipeline == pl]
            edges = [e for e in self.problem.edges if e.u in set(ids)]
            g = nx.DiGraph()
            g.add_nodes_from(ids)
            for e in edges:
                g.add_edge(e.u, e.v, w=e.weight)
            most: dict[str, int] = {}
            for n in nx.topological_sort(g):
                preds = list(g.predecessors(n))
                most[n] = max((most[p] + (self.assignment[p] != self.assignment[n]) for p in preds), default=0)
            rate = next(s.weight for s in self.problem.stages if s.id in set(ids) and s.kind == "parse")
            expected = sum(e.weight for e in edges if self.assignment[e.u] != self.assignment[e.v]) / (rate or 1.0)
            exit_id = next(s.id for s in self.problem.stages if s.pipeline == pl and s.kind == "deparse")
            out[pl] = {"max": float(max(most.values(), default=0)), "expected": expected,
                       "max_to_exit": float(most.get(exit_id, 0))}
        return out


def load_rates(path: str, prog: Program) -> dict[str, float]:
    """Packets per second per pipeline from a TOML file `[rates] FLOW = PPS` (flows add up)."""
    import tomllib

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ProfileError(f"{path}: cannot read rates: {getattr(e, 'strerror', None) or e}") from None
    unknown = set(data) - {"rates"}
    if unknown or not isinstance(data.get("rates"), dict):
        raise ProfileError(f"{path}: expected one table [rates] of FLOW = packets per second")
    out: dict[str, float] = {}
    for flow, pps in data["rates"].items():
        if flow not in prog.flows:
            raise ProfileError(f"{path}: unknown flow '{flow}'; the program has {', '.join(prog.flows) or 'none'}")
        if not isinstance(pps, (int, float)) or isinstance(pps, bool) or pps < 0:
            raise ProfileError(f"{path}: rate of '{flow}' must be a non-negative number, not {pps!r}")
        pl = prog.flows[flow].pipeline
        out[pl] = out.get(pl, 0.0) + float(pps)
    return out


def place(g: nx.DiGraph, prog: Program, nic: Profile | None, hyp: Profile | None = None,
          rates: dict[str, float] | None = None, explain: bool = True) -> Placement:
    """Optimal placement of every stage; raises Infeasible (with the reason) when there is none."""
    from p4gen.place.explain import explain_all

    hyp = hyp or builtin_profile("hypervisor")
    prob = build_problem(g, prog, nic, hyp, rates)
    assign = solve_exact(prob)
    result = Placement(prob, assign, cost_of(prob, assign))
    if explain:
        result.decisions = explain_all(result)
    return result


__all__ = [
    "place", "Placement", "StageDecision", "Problem", "Profile", "ProfileError", "Infeasible", "NIC", "HYP",
    "load_profile", "builtin_profile", "resolve_targets", "greedy_first_fit", "cost_of", "load_rates",
]
