"""Solving a placement Problem exactly (MILP), by brute force, and greedily.

The exact solver is a mixed-integer program solved by HiGHS
(scipy.optimize.milp):

    x_s ∈ {0,1}          1: stage s runs on the NIC
    c_e ∈ [0,1]          c_e ≥ |x_u − x_v|: edge e crosses NIC↔hypervisor
    minimise  Σ_s w_s·cost_s·(1 − x_s)  +  Σ_e w_e·crossing·c_e  +  preference penalties
    subject to Σ_tables x_s ≤ NIC tables,  Σ_tables entries_s·x_s ≤ NIC entries,
               x_s = 0 where the NIC cannot run s, x fixed for pins and anchors.

`brute_force` enumerates every assignment (small instances, for tests) and
`greedy_first_fit` is the baseline the benchmark compares against.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from p4gen.diagnostics import Pos
from p4gen.place.problem import HYP, NIC, Problem

Assignment = dict[str, str]


class Infeasible(Exception):
    """No placement satisfies the constraints; the message says which, `pos` where (a @pin)."""

    def __init__(self, message: str, pos: Pos | None = None):
        super().__init__(message)
        self.message, self.pos = message, pos

    def __str__(self) -> str:
        return f"{self.pos}: {self.message}" if self.pos is not None else self.message


@dataclass(frozen=True)
class Cost:
    hypervisor: float
    crossings: float
    preferences: float

    @property
    def total(self) -> float:
        return self.hypervisor + self.crossings + self.preferences


def forced(prob: Problem) -> dict[str, str]:
    """Stages whose target is decided before optimising; raises Infeasible on contradictions."""
    out: dict[str, str] = {}
    for s in prob.stages:
        if s.fixed is not None:
            out[s.id] = s.fixed
        elif s.pin == NIC:
            if not s.nic_ok:
                raise Infeasible(f"stage '{s.id}' is pinned to the NIC, but {'; '.join(s.nic_reasons)}", s.pin_pos)
            out[s.id] = NIC
        elif s.pin == HYP or not s.nic_ok:
            out[s.id] = HYP
    return out


def check_pinned_resources(prob: Problem, fixed: dict[str, str]) -> None:
    pinned = [s for s in prob.stages if s.is_table and fixed.get(s.id) == NIC]
    name = prob.nic.name if prob.nic else "the NIC"
    if prob.max_tables is not None and len(pinned) > prob.max_tables:
        raise Infeasible(f"stages pinned to the NIC need {len(pinned)} tables; {name} has {prob.max_tables}: "
                         + ", ".join(s.id for s in pinned))
    need = sum(s.entries for s in pinned)
    if prob.max_entries is not None and need > prob.max_entries:
        raise Infeasible(f"stages pinned to the NIC need {need} table entries; {name} has {prob.max_entries}: "
                         + ", ".join(s.id for s in pinned))


def cost_of(prob: Problem, assign: Assignment) -> Cost:
    hv = sum(s.weight * s.hv_cost for s in prob.stages if assign[s.id] == HYP)
    cross = sum(e.weight * prob.crossing_cost for e in prob.edges if assign[e.u] != assign[e.v])
    pref = sum(s.weight * prob.preference_cost for s in prob.stages
               if s.prefer is not None and assign[s.id] != s.prefer)
    return Cost(hv, cross, pref)


def is_feasible(prob: Problem, assign: Assignment) -> bool:
    try:
        fixed = forced(prob)
    except Infeasible:
        return False
    if any(assign[k] != v for k, v in fixed.items()):
        return False
    tables = [s for s in prob.stages if s.is_table and assign[s.id] == NIC]
    if prob.max_tables is not None and len(tables) > prob.max_tables:
        return False
    return prob.max_entries is None or sum(s.entries for s in tables) <= prob.max_entries


DEFAULT_TIME_LIMIT = 20.0  # seconds; beyond it the best placement found is used, marked unproven


@dataclass
class SolveStatus:
    optimal: bool = True
    note: str = ""


def solve_exact(prob: Problem, extra_fixed: dict[str, str] | None = None,
                time_limit: float = DEFAULT_TIME_LIMIT, status: SolveStatus | None = None) -> Assignment:
    """The optimal assignment (MILP). Raises Infeasible with a reason.

    When HiGHS hits `time_limit` (large programs whose NIC budgets bind), the
    best placement it found, or greedy first-fit if it found none, is returned
    and `status` says that optimality is not proven."""
    fixed = forced(prob)
    check_pinned_resources(prob, fixed)
    for sid, target in (extra_fixed or {}).items():
        if fixed.get(sid, target) != target:
            raise Infeasible(f"stage '{sid}' cannot run on {target}")
        fixed[sid] = target
    if prob.nic is None or not prob.stages:
        return {s.id: HYP for s in prob.stages}
    from scipy import sparse  # imported here: a second of start-up that only placement needs
    from scipy.optimize import Bounds, LinearConstraint, milp

    index = {s.id: i for i, s in enumerate(prob.stages)}
    n, m = len(prob.stages), len(prob.edges)
    c = np.zeros(n + m)
    for i, s in enumerate(prob.stages):
        c[i] -= s.weight * s.hv_cost  # cost w·h·(1 − x): the constant part is added back by cost_of
        if s.prefer == NIC:
            c[i] -= s.weight * prob.preference_cost
        elif s.prefer == HYP:
            c[i] += s.weight * prob.preference_cost
    for j, e in enumerate(prob.edges):
        c[n + j] = e.weight * prob.crossing_cost
    lb = np.zeros(n + m)
    ub = np.ones(n + m)
    for sid, target in fixed.items():
        lb[index[sid]] = ub[index[sid]] = 1.0 if target == NIC else 0.0
    # Sparse constraint matrix, built as coordinates (row, column, value).
    r_idx: list[int] = []
    c_idx: list[int] = []
    vals: list[float] = []
    lo: list[float] = []
    hi: list[float] = []

    def row(entries: list[tuple[int, float]], low: float, high: float) -> None:
        r = len(lo)
        for col, v in entries:
            r_idx.append(r)
            c_idx.append(col)
            vals.append(v)
        lo.append(low)
        hi.append(high)

    for j, e in enumerate(prob.edges):  # c_e ≥ x_u − x_v and c_e ≥ x_v − x_u
        u, v = index[e.u], index[e.v]
        row([(n + j, 1.0), (u, -1.0), (v, 1.0)], 0.0, np.inf)
        row([(n + j, 1.0), (u, 1.0), (v, -1.0)], 0.0, np.inf)
    table_idx = [i for i, s in enumerate(prob.stages) if s.is_table]
    if prob.max_tables is not None and table_idx:
        row([(i, 1.0) for i in table_idx], -np.inf, prob.max_tables)
    if prob.max_entries is not None and table_idx:
        row([(i, float(prob.stages[i].entries)) for i in table_idx], -np.inf, prob.max_entries)
    integrality = np.concatenate([np.ones(n), np.zeros(m)])
    constraints = []
    if lo:
        matrix = sparse.csr_matrix((vals, (r_idx, c_idx)), shape=(len(lo), n + m))
        constraints = [LinearConstraint(matrix, lo, hi)]
    res = milp(c, constraints=constraints, integrality=integrality, bounds=Bounds(lb, ub),
               options={"time_limit": time_limit})
    if res.status == 1:  # time limit: use what there is, and say so
        if status is not None:
            status.optimal = False
        if res.x is not None:
            gap = getattr(res, "mip_gap", None)
            if status is not None:
                status.note = f"time limit {time_limit:g} s reached; best placement found, gap {gap:.1%}"
            return {s.id: NIC if res.x[i] > 0.5 else HYP for i, s in enumerate(prob.stages)}
        if status is not None:
            status.note = f"time limit {time_limit:g} s reached with no solution; greedy first-fit used"
        return greedy_first_fit(prob)
    if res.status != 0 or res.x is None:
        raise Infeasible(f"the solver found no placement ({res.message})")
    return {s.id: NIC if res.x[i] > 0.5 else HYP for i, s in enumerate(prob.stages)}


def brute_force(prob: Problem) -> tuple[Assignment, Cost]:
    """Every assignment of the free stages; for tests on small instances."""
    fixed = forced(prob)
    free = [s.id for s in prob.stages if s.id not in fixed]
    best: tuple[Assignment, Cost] | None = None
    for combo in itertools.product((NIC, HYP), repeat=len(free)):
        assign = dict(fixed)
        assign.update(zip(free, combo, strict=True))
        if not is_feasible(prob, assign):
            continue
        cost = cost_of(prob, assign)
        if best is None or cost.total < best[1].total - 1e-9:
            best = (assign, cost)
    if best is None:
        raise Infeasible("no feasible placement")
    return best


def greedy_first_fit(prob: Problem) -> Assignment:
    """Baseline: in program order, put each stage on the NIC if it can run there and still fits."""
    fixed = forced(prob)
    assign: Assignment = {}
    pinned = [s for s in prob.stages if s.is_table and fixed.get(s.id) == NIC]
    tables, entries = len(pinned), sum(s.entries for s in pinned)  # reserved up front
    for s in prob.stages:
        if s.id in fixed:
            assign[s.id] = fixed[s.id]
            continue
        fits = (not s.is_table or ((prob.max_tables is None or tables + 1 <= prob.max_tables)
                                   and (prob.max_entries is None or entries + s.entries <= prob.max_entries)))
        if prob.nic is not None and fits:
            assign[s.id] = NIC
            if s.is_table:
                tables += 1
                entries += s.entries
        else:
            assign[s.id] = HYP
    return assign
