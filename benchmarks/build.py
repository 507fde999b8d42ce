"""`p4gen build` speed without p4c: vm_offload and a generated 1000-table program.

Everything `p4gen build` does in-process: parse, check, IR, placement (exact, with
explanations), P4 emission, P4Info, entries, and writing the files. Baseline in the
same run: the front end alone (parse + check + IR), so the ratio is what placement
and the back end add. Goals from the issue: under 300 ms and under 3 s.

    python benchmarks/build.py [--repeat N]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from timing import median_time

from p4gen.backend.build import build
from p4gen.frontend import check_source
from p4gen.ir import build_ir
from p4gen.place import load_profile, place
from p4gen.synth import synth_program

ROOT = Path(__file__).resolve().parent.parent



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    nic = load_profile(ROOT / "targets" / "bmv2-smartnic.toml")
    check_source("warmup.nf", b"")
    cases = [("vm_offload.nf", (ROOT / "examples" / "vm_offload.nf").read_bytes(), 0.3, args.repeat * 3),
             ("synth 1000 tables", synth_program(1000).encode(), 3.0, args.repeat)]
    print(f"{'program':<20} {'p4gen build':>12} {'front end':>10} {'ratio':>7} {'goal':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, data, goal, repeat in cases:
            def front(d=data, n=name):
                prog, _ = check_source(n, d)
                return prog, build_ir(prog)

            def whole(d=data, n=name):
                prog, g = front(d, n)
                build(prog, g, place(g, prog, nic), n, Path(tmp), p4c=None)

            t_build = median_time(whole, repeat)[0]
            t_front = median_time(front, repeat)[0]
            verdict = "ok" if t_build < goal else "MISSED"
            print(f"{name:<20} {t_build * 1000:>9.0f} ms {t_front * 1000:>7.0f} ms {t_build / t_front:>6.2f}x "
                  f"{goal * 1000:>5.0f} ms {verdict}")


if __name__ == "__main__":
    main()
