"""`p4gen build`: every artefact of a placed program, in one output directory.

    program.p4                  the NIC part, P4_16 for v1model
    program.p4info.txtpb        p4gen's P4Info for it
    entries.txtpb               the DSL's initial entries (P4Runtime WriteRequest)
    placement.json              the placement and its reasons
    hypervisor_plan.json        what the Python pipeline runs, stage by stage
    hypervisor.py               the hypervisor's generated control flow, one function per entry point
    program.json                BMv2 JSON            } when p4c is available
    program.p4c.p4info.txtpb    p4c's own P4Info     }
    build.json                  what the build was made from and what it wrote (p4gen.backend.manifest)

A rebuild removes program.json and p4c's P4Info first: a stale pair from an earlier
build must never sit next to a new program.p4.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
from google.protobuf import text_format

from p4gen.backend.emit import BackendError, LineMap, emit_program
from p4gen.backend.entries import build_updates, entry_positions, validate_updates
from p4gen.backend.model import NicModel, build_model
from p4gen.backend.p4c import P4cResult, find_p4c, run_p4c
from p4gen.backend.p4info import build_p4info
from p4gen.crossing import DROP_REASONS, PUNT_HEADER, RESUME_DONE, VERSION, Reason, carried_layout, drop_sites
from p4gen.frontend.ports import forwarded_ports
from p4gen.frontend.program import Program
from p4gen.place import HYP, Placement
from p4gen.place.explain import to_json
from p4gen.runtime.control_flow import listing
from p4gen.runtime.pipeline import HypervisorPipeline


@dataclass
class BuildResult:
    outdir: Path
    model: NicModel
    line_map: LineMap
    files: list[str] = field(default_factory=list)
    p4c: P4cResult | None = None
    p4c_missing: bool = False


def hypervisor_plan(m: NicModel) -> dict:
    """The stages the Python side runs, in the numbering the punt header uses."""
    g: nx.DiGraph = m.graph
    constants = {"P4GEN_VERSION": VERSION, "P4GEN_RESUME_DONE": RESUME_DONE,
                 **{f"P4GEN_REASON_{r.name}": int(r) for r in Reason}}
    plan = {"punt_header": {"fields": [list(f) for f in PUNT_HEADER.fields], "constants": constants,
                            "bytes": PUNT_HEADER.size},
            "carried_metadata": {"fields": [list(f) for f in carried_layout(m.prog).fields],
                                 "bytes": carried_layout(m.prog).size},
            # the cells of the NIC's p4gen.drops counter: its own reasons, then where drop() ran
            "drop_reasons": list(DROP_REASONS) + list(drop_sites(m.prog)), "pipelines": []}
    nic = m.placement.problem.nic
    if nic is not None:
        plan["ports"] = {"uplink": nic.ports.uplink, "host": nic.ports.host, "vm_ports": list(nic.ports.vm_ports)}
    for name, pl in m.prog.pipelines.items():
        start, end = m.placement.problem.pipelines[name]
        stages = sorted((d["stage"] for _, d in g.nodes(data=True) if d["pipeline"] == name), key=lambda s: s.order)
        plan["pipelines"].append({
            "name": name, "index": m.pipeline_index[name], "direction": pl.direction,
            "starts_on": start, "ends_on": end,
            "stages": [{"id": s.id, "order": s.order, "kind": s.kind, "target": m.placement.assignment[s.id]}
                       for s in stages],
            "hypervisor_stages": [s.order for s in stages if m.placement.assignment[s.id] == HYP
                                  and s.kind not in ("parse", "classify", "deparse")],
        })
    return plan


def build(prog: Program, g: nx.DiGraph, placement: Placement, source: str, outdir: Path,
          p4c: str | None = "auto", rates: str | None = None) -> BuildResult:
    """Write every artefact and build.json; p4c="auto" finds one, None skips it, "docker" uses the image.
    `rates`: the rates file the placement was made with (recorded as an input)."""
    from p4gen.backend.manifest import P4C_FILES, make_manifest, sha256_file, write_manifest

    nic = placement.problem.nic
    if nic is not None:
        for port, where in forwarded_ports(prog).items():
            if port == nic.ports.host:
                raise BackendError(f"forward({port}) reaches NIC port {port}, the host (punt) port of "
                                   f"{nic.name}: no packet could be told apart from a punted one; "
                                   "use another port or change [ports].host in the profile", where[0])
    outdir.mkdir(parents=True, exist_ok=True)
    m = build_model(prog, g, placement)
    text, line_map = emit_program(m, source)
    info = build_p4info(m)
    req = build_updates(m)
    problems = validate_updates(req, info, entry_positions(m))
    if problems:
        raise BackendError("entries do not match the P4Info:\n" + "\n".join(problems))
    res = BuildResult(outdir, m, line_map)
    for stale in P4C_FILES:  # made from an earlier program.p4
        (outdir / stale).unlink(missing_ok=True)
    written: list[str] = []

    def write(name: str, data: str, shown: bool = True) -> None:
        (outdir / name).write_text(data, encoding="utf-8")
        written.append(name)
        if shown:
            res.files.append(name)

    write("program.p4", text)
    write("program.p4info.txtpb", text_format.MessageToString(info))
    write("entries.txtpb", text_format.MessageToString(req))
    # The DSL line of each update, in order: `p4gen push` names it when the switch refuses one.
    write("entries_origin.json", json.dumps([str(p) for p in entry_positions(m)]), shown=False)
    write("placement.json", json.dumps(to_json(placement, source), indent=2) + "\n")
    write("hypervisor_plan.json", json.dumps(hypervisor_plan(m), indent=2) + "\n")
    write("hypervisor.py", listing(HypervisorPipeline(prog, g, placement.assignment, HYP), source))
    origins = {str(k): str(v) if v else None for k, v in line_map.lines.items()}
    write("line_map.json", json.dumps(origins), shown=False)

    def manifest(p4c_record: dict | None) -> None:
        outputs = {name: sha256_file(outdir / name) for name in written}
        write_manifest(outdir, make_manifest(prog, placement, source, rates, outputs, p4c_record))

    manifest(None)  # before p4c: a build interrupted there is still a build of p4gen's
    exe = find_p4c() if p4c == "auto" else p4c
    if exe is None:
        res.p4c_missing = p4c == "auto"
        return res
    p4_hash = sha256_file(outdir / "program.p4")
    res.p4c = run_p4c(exe, outdir, line_map)
    if res.p4c.ok:
        res.files += list(P4C_FILES)
        written.extend(n for n in P4C_FILES if (outdir / n).exists())
        manifest({"program.p4": p4_hash, "outputs": {n: sha256_file(outdir / n) for n in P4C_FILES}})
    else:
        for partial in P4C_FILES:
            (outdir / partial).unlink(missing_ok=True)
    return res
