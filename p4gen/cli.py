"""The `p4gen` command line: check, graph (and later build, place, run, push)."""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from p4gen.diagnostics import DiagnosticSink
from p4gen.frontend import load_program


def _report(sink: DiagnosticSink) -> None:
    text = sink.render()
    if text:
        sys.stderr.write(text)


def cmd_check(args: argparse.Namespace) -> int:
    status = 0
    for path in args.files:
        prog, sink = load_program([path])
        _report(sink)
        if prog is None:
            status = 1
        elif not args.quiet:
            n_tables = sum(len(nf.tables) for nf in prog.nfs.values())
            print(f"{path}: ok ({len(prog.pipelines)} pipeline(s), {n_tables} table(s), "
                  f"{len(prog.entries)} entr{'y' if len(prog.entries) == 1 else 'ies'})")
    return status


def cmd_graph(args: argparse.Namespace) -> int:
    from p4gen.ir import build_ir
    from p4gen.ir.dot import GraphvizMissing, render, to_dot

    prog, sink = load_program([args.file])
    _report(sink)
    if prog is None:
        return 1
    g = build_ir(prog)
    placement = None
    if args.placement:
        import json

        try:
            with open(args.placement, encoding="utf-8") as fh:
                data = json.load(fh)
            placement = {s["id"]: s["target_kind"] for s in data["stages"]}
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"p4gen: error: cannot read placement '{args.placement}': {e}", file=sys.stderr)
            return 1
    dot_text = to_dot(g, placement)
    ext = os.path.splitext(args.output)[1].lower().lstrip(".")
    if ext == "dot":
        data_out = dot_text.encode()
    elif ext in ("svg", "png"):
        try:
            data_out = render(dot_text, ext)
        except (GraphvizMissing, RuntimeError) as e:
            print(f"p4gen: error: {e}", file=sys.stderr)
            return 1
    else:
        print(f"p4gen: error: unknown output format '.{ext}' (use .dot, .svg or .png)", file=sys.stderr)
        return 1
    with open(args.output, "wb") as fh:
        fh.write(data_out)
    print(f"wrote {args.output} ({g.number_of_nodes()} stages)")
    return 0


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="p4gen", description="Network functions to P4 for programmable NICs.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("check", help="parse and check .nf files; print diagnostics",
                       description="Parse and check DSL files. Exit 0 when all are valid, 1 otherwise.")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("-q", "--quiet", action="store_true", help="print diagnostics only")
    c.set_defaults(func=cmd_check)

    gr = sub.add_parser("graph", help="draw the IR graph (.dot, .svg, .png)",
                        description="Write the IR of FILE as a picture. .dot needs nothing extra; "
                                    ".svg and .png need Graphviz's 'dot'.")
    gr.add_argument("file", metavar="FILE")
    gr.add_argument("-o", "--output", required=True, metavar="OUT")
    gr.add_argument("--placement", metavar="JSON", help="colour stages by target from a placement.json")
    gr.set_defaults(func=cmd_graph)
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("P4GEN_DEBUG"):
            raise
        print("p4gen: internal error (a bug in p4gen; set P4GEN_DEBUG=1 for the traceback):", file=sys.stderr)
        print("  " + traceback.format_exc().strip().splitlines()[-1], file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
