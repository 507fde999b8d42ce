"""The paths pass (p4gen.midend.paths) and the flow-table report built on it
(p4gen.place.flowtable).

The independent expectation: the reference pipeline, run packet by packet, says which stages
each packet passed (per-stage counts) and which action each table ran (per-entry counts, or
the default on a miss). That route must be one of the enumerated paths, for the examples'
traffic and for random programs. A pruned branch that a packet could take would fail this
check, and so would a missing choice.
"""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, check_golden
from progfuzz import PacketGen, ProgramGen, Rejected, _pipeline_for, ci_features, load

from p4gen.cli import main
from p4gen.frontend import load_program
from p4gen.ir import build_ir
from p4gen.midend.paths import TooManyPaths, dump, parse_paths, pipeline_paths
from p4gen.midend.stages import build_stage_trees
from p4gen.runtime.packet import Malformed, PacketParser
from p4gen.runtime.pcap import read_pcap
from p4gen.runtime.pipeline import HypervisorPipeline

SEED = 20261202


def route(hv: HypervisorPipeline, pipeline: str, frame: bytes) -> tuple[frozenset, dict[str, str]]:
    """(stages passed, table → action run) of one packet through the reference path."""
    stages0 = dict(hv.stage_packets)
    hits0 = {n: [e.packets for e in t.entries] for n, t in hv.tables.items()}
    hv.run(pipeline, frame)
    passed = frozenset(s for s, n in hv.stage_packets.items() if n != stages0.get(s, 0))
    actions = {}
    for name, t in hv.tables.items():
        hit = [e.action for e, n in zip(t.entries, hits0[name], strict=True) if e.packets != n]
        actions[name] = hit[0] if hit else t.default[0]
    return passed, actions


def path_routes(tree, prog) -> list[tuple[frozenset, dict[str, str]]]:
    out = []
    for p in pipeline_paths(tree, prog):
        stages = frozenset(s.stage.id for s in p.steps)
        actions = {s.stage.table.name: s.choice for s in p.steps if s.stage.table is not None}
        out.append((stages, actions))
    return out


def taken(routes, passed, actions) -> bool:
    return any(stages == passed and all(actions[t] == a for t, a in acts.items()) for stages, acts in routes)


def test_every_packet_of_the_examples_takes_an_enumerated_path():
    prog, _ = load_program([str(ROOT / "examples" / "vm_offload.nf")])
    g = build_ir(prog)
    trees = build_stage_trees(prog)
    hv = HypervisorPipeline(prog, g, flow_cache=0)
    seen = 0
    for pipeline, pcap in (("vm_egress", "vm1_egress.pcap"), ("vm_ingress", "vm1_ingress.pcap")):
        routes = path_routes(trees[pipeline], prog)
        for frame in read_pcap(str(ROOT / "examples" / "traffic" / pcap)):
            passed, actions = route(hv, pipeline, frame)
            passed = frozenset(s for s in passed if s.split("/", 1)[1] not in ("parse", "classify", "deparse"))
            if not passed:
                continue  # refused by the parser or the classifier: no path
            assert taken(routes, passed, {t: a for t, a in actions.items() if any(
                s.endswith("." + t) for s in passed)}), (pipeline, sorted(passed), actions)
            seen += 1
    assert seen >= 15


def test_every_packet_of_random_programs_takes_an_enumerated_path():
    feats = ci_features()
    checked = too_many = 0
    for k in range(40):
        seed = SEED + k
        gp = ProgramGen(seed, feats).generate()
        try:
            prog, g = load(gp.text)
        except Rejected:
            continue
        trees = build_stage_trees(prog)
        try:
            routes = {name: path_routes(t, prog) for name, t in trees.items()}
        except TooManyPaths:
            too_many += 1
            continue
        hv = HypervisorPipeline(prog, g, flow_cache=0)
        for port, frame in PacketGen(gp, seed, feats).take(12):
            pipeline = _pipeline_for(prog, port)
            passed, actions = route(hv, pipeline, frame)
            passed = frozenset(s for s in passed if s.split("/", 1)[1] not in ("parse", "classify", "deparse"))
            if not passed:
                continue
            used = {t: a for t, a in actions.items() if any(s.endswith("." + t) for s in passed)}
            assert taken(routes[pipeline], passed, used), (seed, pipeline, sorted(passed), used)
            checked += 1
    assert checked >= 100 and too_many <= 10, (checked, too_many)


def test_paths_of_the_scenario_golden():
    prog, _ = load_program([str(ROOT / "examples" / "vm_offload.nf")])
    build_ir(prog)
    trees = build_stage_trees(prog)
    check_golden("paths/vm_offload.txt", "".join(f"# {n}\n{dump(pipeline_paths(t, prog))}" for n, t in trees.items()))


@pytest.mark.parametrize("target, room", [
    ("constrained-nic", "room for 0 entries (no [offload] in the profile, and no table left: 4/4 in use)"),
    ("bmv2-smartnic", "room for 65536 entries (reserved by bmv2-smartnic's [offload]: a table of its own)")])
def test_place_explain_reports_what_a_flow_table_could_take(capsys, target, room):
    """The constrained NIC cannot look up the ACLs (range matches), but a flow's fused action
    needs only their actions: on both NICs, every path without segmentation or coalescing
    could run there; the egress paths that cut need 'segment', the ingress ones end at gro."""
    assert main(["place", "examples/vm_offload.nf", "--target", f"targets/{target}.toml", "--explain"]) == 0
    text = capsys.readouterr().out
    assert f"per-flow offload on {target} (the fused flow table p4gen.flows): {room}" in text
    assert ("  vm_egress: 43 paths; on the NIC whole 22, up to hypervisor-only stages at the end 0, up to one in "
            "the middle 0, not at all 21") in text
    assert "    21 path(s) need 'segment' at tso" in text
    assert "    6 path(s) need 'coalesce' at gro" in text
    assert main(["place", "examples/vm_offload.nf", "--target", f"targets/{target}.toml", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["flow_offload"]
    assert data["pipelines"]["vm_ingress"] == {
        "paths": 15, "whole": 9, "tail": 6, "part": 0, "none": 0, "needs": {"'coalesce' at gro": 6},
        "key_bits": 701, "widest_parse_path": 428, "uncacheable": None, "too_many": None}


def test_every_parsed_packet_holds_the_headers_of_a_parse_path():
    """parse_paths against the runtime's parser: the headers a parsed packet holds are one of
    the enumerated sets, for the examples' traffic and random programs' packets."""
    def held(pkt) -> frozenset[str]:
        return frozenset([i for i, b in pkt.hdr.items() if b is not None] + [i for i, st in pkt.stacks.items() if st])

    prog, _ = load_program([str(ROOT / "examples" / "vm_offload.nf")])
    sets = set(parse_paths(prog))
    parser = PacketParser(prog)
    frames = [f for pcap in ("vm1_egress.pcap", "vm1_ingress.pcap")
              for f in read_pcap(str(ROOT / "examples" / "traffic" / pcap))]
    assert all(held(parser.parse(f)) in sets for f in frames)
    assert frozenset({"ethernet", "ipv4", "udp", "vxlan", "inner_ethernet", "inner_ipv4", "inner_tcp"}) in sets
    feats, checked = ci_features(), 0
    for k in range(30):
        gp = ProgramGen(SEED + 100 + k, feats).generate()
        try:
            prog, _ = load(gp.text)
        except Rejected:
            continue
        sets, parser = set(parse_paths(prog)), PacketParser(prog)
        for _port, frame in PacketGen(gp, SEED + 100 + k, feats).take(12):
            try:
                pkt = parser.parse(frame)
            except Malformed:  # refused by the parser (a bad checksum too): no path
                continue
            assert held(pkt) in sets, (SEED + 100 + k, sorted(held(pkt)))
            checked += 1
    assert checked >= 100
