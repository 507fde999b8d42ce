"""Front-end speed: parse + check + IR for vm_offload and a generated 1000-table program.

Baseline, measured in the same run on the same text: Lark's lexer alone
(tokenising is a floor for any Lark-based front end). Goals from the issue:
vm_offload under 100 ms, 1000 tables under 3 s.

    python benchmarks/frontend.py [--repeat N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from timing import median_time

from p4gen.frontend import check_source
from p4gen.frontend.parse import lark_parser
from p4gen.ir import build_ir
from p4gen.synth import synth_program

ROOT = Path(__file__).resolve().parent.parent



def full(name: str, data: bytes) -> None:
    prog, sink = check_source(name, data)
    if prog is None:
        raise SystemExit(sink.render())
    build_ir(prog)


def lex_only(text: str) -> None:
    for _ in lark_parser().lex(text):
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    full("warmup.nf", b"")  # build the Lark parser and parse the std library once
    cases = [
        ("vm_offload.nf", (ROOT / "examples" / "vm_offload.nf").read_bytes(), 0.100, args.repeat * 4),
        ("synth 1000 tables", synth_program(1000).encode(), 3.0, args.repeat),
    ]
    print(f"{'program':<20} {'bytes':>8} {'parse+check+IR':>15} {'lex only':>10} {'ratio':>7} {'goal':>8}")
    for name, data, goal, repeat in cases:
        t_full = median_time(lambda d=data, n=name: full(n, d), repeat)[0]
        text = data.decode()
        t_lex = median_time(lambda t=text: lex_only(t), repeat)[0]
        verdict = "ok" if t_full < goal else "MISSED"
        print(f"{name:<20} {len(data):>8} {t_full * 1000:>12.1f} ms {t_lex * 1000:>7.1f} ms "
              f"{t_full / t_lex:>6.1f}x {goal * 1000:>5.0f} ms {verdict}")


if __name__ == "__main__":
    main()
