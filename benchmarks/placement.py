"""Placement: time of the exact solver for 16/32/64-stage programs, and the cost of
its placement against a greedy first-fit baseline measured in the same run.

The programs are p4gen.synth chains (a branch and a table per nf, tables
rotating over exact/lpm/ternary/range/optional) on the constrained NIC
profile (4 tables, no range or optional match), so the NIC cannot take
everything and the choice matters. Goal from the issue: 64 stages in < 1 s.

    python benchmarks/placement.py [--repeat N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from timing import median_time

from p4gen.frontend import check_source
from p4gen.ir import build_ir
from p4gen.place import builtin_profile, load_profile
from p4gen.place.problem import build_problem
from p4gen.place.solve import cost_of, greedy_first_fit, solve_exact
from p4gen.synth import synth_program

ROOT = Path(__file__).resolve().parent.parent



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    nic = load_profile(ROOT / "targets" / "constrained-nic.toml")
    hyp = builtin_profile("hypervisor")
    print(f"{'stages':>6} {'exact':>10} {'greedy':>10} {'optimal cost':>13} {'greedy cost':>12} {'greedy/optimal':>15}")
    for n_stages in (16, 32, 64):
        n_tables = n_stages // 2  # each nf is a branch and a table
        prog, sink = check_source("synth.nf", synth_program(n_tables, segment=False).encode())
        assert prog is not None, sink.render()
        prob = build_problem(build_ir(prog), prog, nic, hyp)
        placeable = sum(1 for s in prob.stages if s.fixed is None)
        t_exact, best = median_time(lambda p=prob: solve_exact(p), args.repeat)
        t_greedy, greedy = median_time(lambda p=prob: greedy_first_fit(p), args.repeat)
        c_best, c_greedy = cost_of(prob, best).total, cost_of(prob, greedy).total
        print(f"{placeable:>6} {t_exact * 1000:>7.1f} ms {t_greedy * 1000:>7.2f} ms {c_best:>13.2f} {c_greedy:>12.2f} "
              f"{c_greedy / c_best:>14.2f}x")


if __name__ == "__main__":
    main()
