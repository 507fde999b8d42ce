"""Placement: the scenario's split, trade-offs on a small NIC, infeasibility, optimality."""

from __future__ import annotations

import json
import random

import pytest

from p4gen.cli import main
from p4gen.frontend import check_source, load_program
from p4gen.ir import build_ir
from p4gen.place import HYP, NIC, Infeasible, load_profile, place
from p4gen.place.problem import PEdge, Problem, PStage
from p4gen.place.solve import brute_force, cost_of, greedy_first_fit, solve_exact


@pytest.fixture(scope="module")
def vm():
    prog, sink = load_program(["examples/vm_offload.nf"])
    assert prog is not None, sink.render()
    return prog, build_ir(prog)


def _by_kind(pl):
    return {s.id: (s.kind, pl.assignment[s.id]) for s in pl.problem.stages}


def test_bmv2_split_matches_the_scenario(vm):
    prog, g = vm
    pl = place(g, prog, load_profile("targets/bmv2-smartnic.toml"))
    placed = _by_kind(pl)
    assert placed["vm_egress/tso"] == ("segment", HYP)
    assert placed["vm_ingress/gro"] == ("coalesce", HYP)
    for sid, (kind, target) in placed.items():
        if kind in ("parse", "classify", "deparse") or sid in ("vm_egress/tso", "vm_ingress/gro"):
            continue
        assert target == NIC, sid
    cross = pl.crossings()
    assert cross["vm_egress"]["max_to_exit"] == 1 and cross["vm_ingress"]["max_to_exit"] == 1
    assert cross["vm_egress"]["max"] == 1 and cross["vm_ingress"]["max"] == 1
    reasons = {d.id: d.reason for d in pl.decisions}
    assert reasons["vm_egress/tso"] == "bmv2-smartnic lacks 'segment'"
    assert reasons["vm_ingress/gro"] == "bmv2-smartnic lacks 'coalesce'"


def test_constrained_nic_forces_tables_to_the_hypervisor(vm):
    prog, g = vm
    pl = place(g, prog, load_profile("targets/constrained-nic.toml"))
    reasons = {d.id: (d.target, d.reason) for d in pl.decisions}
    assert reasons["vm_egress/acl_out.acl_out_v4"] == (
        HYP, "constrained-nic has no 'range' match (key meta.l4_dst)")
    target, why = reasons["vm_egress/flow_counters.flows_v4"]
    assert target == HYP and "lacks 'idle_timeout'" in why and "per-table limit of 2048" in why
    assert reasons["vm_egress/snat.snat_v4"] == (HYP, "NIC tables exhausted: 4 of 4 in use on constrained-nic")
    used, limit = pl.resource_use()["tables"]
    assert used == limit == 4
    on_nic = [s.id for s in pl.problem.stages if s.is_table and pl.assignment[s.id] == NIC]
    assert sorted(on_nic) == ["vm_egress/overlay_encap.overlay_v4", "vm_egress/overlay_encap.overlay_v6",
                              "vm_ingress/dnat.dnat_v4", "vm_ingress/overlay_decap.tunnels"]
    assert pl.crossings()["vm_egress"]["max_to_exit"] == 1


def test_without_nic_everything_runs_in_the_hypervisor(vm):
    prog, g = vm
    pl = place(g, prog, None)
    assert set(pl.assignment.values()) == {HYP}
    assert pl.cost.crossings == 0


def test_memory_exhaustion_reason():
    src = """
nf a { action x() { } table big4 { key = { ipv4.dst: lpm; } actions = { x; } default_action = x(); size = 3000; }
       apply { big4.apply(); } }
nf b { action x() { } table acl_v6 { key = { ipv6.dst: lpm; } actions = { x; } default_action = x(); size = 2048; }
       apply { acl_v6.apply(); } }
pipeline p : vm_ingress { b -> a; }
"""
    prog, sink = check_source("m.nf", src.encode())
    assert prog is not None, sink.render()
    pl = place(build_ir(prog), prog, load_profile("targets/constrained-nic.toml"))
    reasons = {d.id: (d.target, d.reason) for d in pl.decisions}
    assert reasons["p/a.big4"] == (HYP, "table size 3000 exceeds constrained-nic's per-table limit of 2048")
    assert reasons["p/b.acl_v6"][0] == NIC
    # After a stage forced into the hypervisor, going back to the NIC would cost two crossings.
    prog, _ = check_source("m.nf", src.replace("b -> a", "a -> b").encode())
    pl = place(build_ir(prog), prog, load_profile("targets/constrained-nic.toml"))
    (acl,) = [d for d in pl.decisions if d.id == "p/b.acl_v6"]
    assert acl.target == HYP and acl.reason.startswith("cheaper in the hypervisor: moving it alone to "
                                                       "constrained-nic costs +")


def test_memory_exhausted_by_other_tables():
    tables = "\n".join(
        f"nf n{i} {{ action x() {{ }} table t{i} {{ key = {{ ipv4.dst: lpm; }} actions = {{ x; }} "
        f"default_action = x(); size = {2048 if i < 2 else 1024}; }} apply {{ t{i}.apply(); }} }}"
        for i in range(3))
    src = tables + "\npipeline p : vm_ingress { n0 -> n1 -> n2; }\n"
    prog, sink = check_source("m.nf", src.encode())
    assert prog is not None, sink.render()
    pl = place(build_ir(prog), prog, load_profile("targets/constrained-nic.toml"))
    hv = [d for d in pl.decisions if d.target == HYP and d.kind == "table"]
    assert len(hv) == 1
    assert hv[0].reason.startswith("NIC table memory exhausted: needs ")
    assert hv[0].reason.endswith(" free")


def test_pins_and_preferences():
    src = """
@pin(hypervisor)
nf a { action x() { } table t1 { key = { ipv4.dst: exact; } actions = { x; } default_action = x(); }
       apply { t1.apply(); } }
nf b { action x() { } @prefer(hypervisor) table t2 { key = { ipv4.src: exact; } actions = { x; }
       default_action = x(); } apply { t2.apply(); } }
pipeline p : vm_egress { a -> b; }
"""
    prog, sink = check_source("m.nf", src.encode())
    assert prog is not None, sink.render()
    pl = place(build_ir(prog), prog, load_profile("targets/bmv2-smartnic.toml"))
    d = {x.id: x for x in pl.decisions}
    assert d["p/a.t1"].target == HYP and d["p/a.t1"].reason == "pinned by @pin(hypervisor) at m.nf:2:1"
    assert d["p/b.t2"].target == HYP  # the preference and avoiding a second crossing agree


def test_pinned_stage_the_nic_cannot_run_is_an_error(capsys, tmp_path):
    f = tmp_path / "pin.nf"
    f.write_text("@pin(nic)\nsegment s { mss = auto; underlay_mtu = 1500; }\npipeline p : vm_egress { s; }\n")
    status = main(["place", str(f), "--target", "targets/bmv2-smartnic.toml"])
    err = capsys.readouterr().err
    assert status == 1
    assert f"{f}:1:1: error: stage 'p/s' is pinned to the NIC, but bmv2-smartnic lacks 'segment'" in err
    assert err.splitlines()[1:] == ["    @pin(nic)", "    ^"]
    assert "Traceback" not in err


def test_pinned_tables_beyond_nic_resources_is_an_error():
    nfs = "\n".join(
        f"@pin(nic) nf n{i} {{ action x() {{ }} table t{i} {{ key = {{ ipv4.dst: exact; }} actions = {{ x; }} "
        f"default_action = x(); size = 16; }} apply {{ t{i}.apply(); }} }}" for i in range(5))
    src = nfs + "\npipeline p : vm_ingress { n0 -> n1 -> n2 -> n3 -> n4; }\n"
    prog, sink = check_source("m.nf", src.encode())
    assert prog is not None, sink.render()
    with pytest.raises(Infeasible, match="stages pinned to the NIC need 5 tables; constrained-nic has 4"):
        place(build_ir(prog), prog, load_profile("targets/constrained-nic.toml"))


def test_sriov_attachment_adds_crossings_for_segmentation(vm, tmp_path):
    prog, g = vm
    text = open("targets/bmv2-smartnic.toml").read().replace('vms = "hypervisor"', 'vms = "nic"') \
        .replace("vm_ports = []", "vm_ports = [2]")
    prof = tmp_path / "sriov.toml"
    prof.write_text(text)
    pl = place(g, prog, load_profile(prof))
    assert pl.problem.pipelines["vm_egress"] == (NIC, NIC)
    # The segmentation stage still runs in the hypervisor: out and back.
    assert pl.crossings()["vm_egress"]["max_to_exit"] == 2
    assert pl.crossings()["vm_ingress"]["max_to_exit"] == 2


def test_place_cli_json(tmp_path, capsys):
    out = tmp_path / "placement.json"
    assert main(["place", "examples/vm_offload.nf", "--target", "targets/bmv2-smartnic.toml", "--explain",
                 "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "tso                                segment   → hypervisor: bmv2-smartnic lacks 'segment'" in text
    assert "crossings per packet: vm_egress 1 (expected 1.00), vm_ingress 1 (expected 1.00)" in text
    data = json.loads(out.read_text())
    stages = {s["id"]: s for s in data["stages"]}
    assert stages["vm_egress/tso"]["target"] == "hypervisor"
    assert stages["vm_egress/snat.snat_v4"]["target"] == "bmv2-smartnic"
    assert data["resources"]["tables"] == {"used": 11, "limit": 4095}  # (one is the flow table's: [offload])


def test_offload_reserves_a_table_before_the_static_placement(tmp_path, capsys):
    """[offload] takes a table and its entries off the NIC before placement: on a 4-table NIC
    the static split gets 3, and the report says what the flow table has."""
    prof = tmp_path / "c.toml"
    prof.write_text(open("targets/constrained-nic.toml").read() +
                    "\n[offload]\nflow_entries = 1024\nthreshold_packets = 4\nidle_timeout_ms = 5000\n")
    assert main(["place", "examples/vm_offload.nf", "--target", str(prof), "--explain"]) == 0
    text = capsys.readouterr().out
    assert "resources on constrained-nic: tables 3/3, table entries 1152/3072 (besides a table of 1024 entries " \
           "for per-flow offload)" in text
    assert "NIC tables exhausted: 3 of 3 in use" in text
    assert "room for 1024 entries (reserved by constrained-nic's [offload]: a table of its own)" in text
    assert ("a flow goes to the table after 4 packets and leaves it after 5 s without one (polling its counters: "
            "constrained-nic lacks 'idle_timeout')") in text


def test_rates_file(vm, tmp_path, capsys):
    """On a one-table NIC, the busier direction gets the table."""
    prof = tmp_path / "one-table.toml"
    prof.write_text(open("targets/constrained-nic.toml").read().replace("tables = 4", "tables = 1"))
    rates = tmp_path / "rates.toml"
    chosen = {}
    for tx, rx in ((1000, 10), (10, 1000)):
        rates.write_text(f"[rates]\nvm1_tx = {tx}\nvm1_rx = {rx}\n")
        assert main(["place", "examples/vm_offload.nf", "--target", str(prof), "--rates", str(rates), "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        (table,) = [s["id"] for s in data["stages"] if s["kind"] == "table" and s["target_kind"] == NIC]
        chosen[(tx, rx)] = table
    assert chosen[(1000, 10)].startswith("vm_egress/")
    assert chosen[(10, 1000)].startswith("vm_ingress/")
    rates.write_text("[rates]\nnope = 1\n")
    assert main(["place", "examples/vm_offload.nf", "--rates", str(rates)]) == 1
    assert "unknown flow 'nope'" in capsys.readouterr().err


# ------------------------------------------------------------ optimality


def random_problem(rng: random.Random, n: int) -> Problem:
    """A random pipeline of n placeable stages (chains and if/else diamonds) with anchors."""
    stages = [PStage("start", "parse", "p", 1.0, 0.0, [], fixed=rng.choice([HYP, NIC]))]
    edges: list[PEdge] = []
    frontier = [("start", 1.0)]
    i = 0
    while i < n:
        if rng.random() < 0.3 and n - i >= 3:
            # a diamond: branch → (a | b) → join
            names = [f"s{i}", f"s{i + 1}", f"s{i + 2}"]
            i += 3
        else:
            names = [f"s{i}"]
            i += 1
        for name in names:
            is_table = rng.random() < 0.6
            reasons = ["cannot"] if rng.random() < 0.2 else []
            pin = rng.choice([None] * 8 + [NIC, HYP])
            if pin == NIC and reasons:
                pin = None
            stages.append(PStage(
                name, "table" if is_table else "action", "p", 0.0, rng.uniform(0, 3), reasons,
                entries=rng.choice([0, 64, 512, 2048]) if is_table else 0, is_table=is_table, pin=pin,
                prefer=rng.choice([None] * 6 + [NIC, HYP])))
        total = sum(w for _, w in frontier)
        if len(names) == 3:
            br, a, b = names
            edges += [PEdge(u, br, w) for u, w in frontier]
            edges += [PEdge(br, a, total / 2), PEdge(br, b, total / 2)]
            frontier = [(a, total / 2), (b, total / 2)]
        else:
            edges += [PEdge(u, names[0], w) for u, w in frontier]
            frontier = [(names[0], total)]
    stages.append(PStage("end", "deparse", "p", 1.0, 0.0, [], fixed=rng.choice([HYP, NIC])))
    edges += [PEdge(u, "end", w) for u, w in frontier]
    weight = {s.id: 0.0 for s in stages}
    weight["start"] = 1.0
    for e in edges:
        weight[e.v] += e.weight
    for s in stages:
        s.weight = weight[s.id]
    return Problem(stages, edges, crossing_cost=rng.uniform(0.5, 6.0), preference_cost=rng.uniform(0, 2),
                   max_tables=rng.randint(0, n), max_entries=rng.choice([None, 1024, 4096]),
                   nic=load_profile("targets/bmv2-smartnic.toml"), hyp=load_profile("targets/hypervisor.toml"),
                   pipelines={"p": (stages[0].fixed, stages[-1].fixed)})


@pytest.mark.parametrize("seed", range(200))
def test_exact_solver_matches_brute_force(seed):
    rng = random.Random(seed)
    prob = random_problem(rng, rng.randint(1, 12))
    try:
        _, best = brute_force(prob)
    except Infeasible:
        with pytest.raises(Infeasible):
            solve_exact(prob)
        return
    assign = solve_exact(prob)
    assert cost_of(prob, assign).total == pytest.approx(best.total, abs=1e-6)
    greedy = greedy_first_fit(prob)
    assert cost_of(prob, greedy).total >= best.total - 1e-6
