"""The IR as a Graphviz picture: DOT text written by hand (no pydot needed);
SVG/PNG by running Graphviz's `dot` when it is installed."""

from __future__ import annotations

import shutil
import subprocess

import networkx as nx

from p4gen.ir.lower import Stage

KIND_SHAPES = {
    "parse": "invhouse", "deparse": "house", "classify": "octagon", "table": "box",
    "action": "box", "branch": "diamond", "segment": "parallelogram", "coalesce": "parallelogram",
}
TARGET_COLOURS = {"nic": "#9ecae1", "hypervisor": "#fdae6b"}


def _q(s: str) -> str:
    """A DOT string; newlines become DOT's \\n line breaks."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(g: nx.DiGraph, placement: dict[str, str] | None = None) -> str:
    """Control edges solid (labelled), read-after-write edges dashed (fields)."""
    lines = ["digraph p4gen {", "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=8];']
    by_pipeline: dict[str, list[Stage]] = {}
    for _, d in g.nodes(data=True):
        by_pipeline.setdefault(d["pipeline"], []).append(d["stage"])
    for i, (pl, sts) in enumerate(by_pipeline.items()):
        lines.append(f"  subgraph cluster_{i} {{")
        lines.append(f"    label={_q(pl + ' (' + sts[0].direction + ')')};")
        for st in sorted(sts, key=lambda s: s.order):
            label = st.name if st.name == st.kind else f"{st.name}\n{st.kind}"  # no "parse\nparse"
            attrs = [f"label={_q(label)}", f"shape={KIND_SHAPES.get(st.kind, 'box')}"]
            target = (placement or {}).get(st.id)
            if target is not None:
                colour = TARGET_COLOURS.get(target, "#d9d9d9")
                attrs += ["style=filled", f"fillcolor={_q(colour)}", f"tooltip={_q(target)}"]
            lines.append(f"    {_q(st.id)} [{', '.join(attrs)}];")
        lines.append("  }")
    if placement:  # a legend for the colours (and the edge styles)
        lines.append("  subgraph cluster_legend {")
        lines.append('    label="legend"; fontsize=9;')
        for target, colour in TARGET_COLOURS.items():
            lines.append(f"    {_q('legend_' + target)} [label={_q('runs on ' + target)}, shape=box, style=filled, "
                         f"fillcolor={_q(colour)}];")
        lines.append('    "legend_edges" [shape=plaintext, label="solid: control flow (branch / action labels)\n'
                     'dashed: read-after-write dependency (fields)"];')
        lines.append("  }")
    for u, v, d in g.edges(data=True):
        if d.get("control"):
            labels = sorted(set(d["control"]) - {"next"})
            label = f" [label={_q(', '.join(labels))}]" if labels else ""
            lines.append(f"  {_q(u)} -> {_q(v)}{label};")
        if d.get("raw"):
            fields = ", ".join(sorted(d["raw"])[:4]) + (" ..." if len(d["raw"]) > 4 else "")
            lines.append(f"  {_q(u)} -> {_q(v)} [style=dashed, color=gray40, constraint=false, label={_q(fields)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


class GraphvizMissing(RuntimeError):
    pass


def render(dot_text: str, fmt: str) -> bytes:
    """DOT → svg/png bytes with Graphviz's `dot`."""
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizMissing(f"writing .{fmt} needs Graphviz's 'dot' on PATH (e.g. apt-get install graphviz); "
                              "a .dot file needs nothing extra")
    proc = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode(), capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"dot failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout
