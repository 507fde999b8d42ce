"""IR passes: control structure, dependency edges, downstream overhead, golden DOT."""

from __future__ import annotations

import networkx as nx
import pytest
from conftest import check_golden, example_files

from p4gen.frontend import check_source, load_program
from p4gen.ir import build_ir, stages
from p4gen.ir.deps import raw_fields
from p4gen.ir.dot import to_dot
from p4gen.synth import synth_program


@pytest.fixture(scope="module")
def vm_ir():
    prog, sink = load_program(["examples/vm_offload.nf"])
    assert prog is not None, sink.render()
    return build_ir(prog)


def _control(g):
    return nx.DiGraph((u, v) for u, v, d in g.edges(data=True) if d["control"])


def test_egress_stage_order(vm_ir):
    order = [s.id for s in stages(vm_ir, "vm_egress") if s.kind in ("segment", "table")]
    assert order == [
        "vm_egress/tso", "vm_egress/acl_out.acl_out_v4", "vm_egress/acl_out.acl_out_v6", "vm_egress/snat.snat_v4",
        "vm_egress/flow_counters.flows_v4", "vm_egress/flow_counters.flows_v6",
        "vm_egress/overlay_encap.overlay_v4", "vm_egress/overlay_encap.overlay_v6",
    ]
    ctl = _control(vm_ir)
    assert nx.is_directed_acyclic_graph(ctl)
    assert nx.has_path(ctl, "vm_egress/parse", "vm_egress/tso")
    assert nx.has_path(ctl, "vm_egress/tso", "vm_egress/overlay_encap.overlay_v4")
    assert not nx.has_path(ctl, "vm_egress/parse", "vm_ingress/deparse")


def test_every_stage_keeps_its_source_position(vm_ir):
    for _, d in vm_ir.nodes(data=True):
        assert d["pos"].file == "examples/vm_offload.nf" and d["pos"].line > 0


def test_acl_reads_destination_written_by_no_earlier_stage(vm_ir):
    acl = "vm_egress/acl_out.acl_out_v4"
    assert "ipv4.dst" in vm_ir.nodes[acl]["reads"]
    for u, _, d in vm_ir.in_edges(acl, data=True):
        assert "ipv4.dst" not in d["raw"], u
    ctl = _control(vm_ir)
    for u in nx.ancestors(ctl, acl):
        assert "ipv4.dst" not in vm_ir.nodes[u]["writes"], u


def test_snat_source_is_read_by_the_counter_stage(vm_ir):
    assert "ipv4.src" in vm_ir.nodes["vm_egress/snat.snat_v4"]["writes"]
    assert "ipv4.src" in raw_fields(vm_ir, "vm_egress/snat.snat_v4", "vm_egress/flow_counters.flows_v4")
    # ...and by the encapsulation, which hashes the inner 5-tuple for the outer UDP source port.
    assert "ipv4.src" in raw_fields(vm_ir, "vm_egress/snat.snat_v4", "vm_egress/overlay_encap.overlay_v4")


def test_ingress_decap_feeds_dnat_and_acl(vm_ir):
    assert "ipv4.dst" in raw_fields(vm_ir, "vm_ingress/overlay_decap.tunnels", "vm_ingress/dnat.dnat_v4")
    assert "ipv4.dst" in raw_fields(vm_ir, "vm_ingress/dnat.dnat_v4", "vm_ingress/gro") or \
        "ipv4.dst" in vm_ir.nodes["vm_ingress/gro"]["reads"]


def test_downstream_overhead_of_segmentation(vm_ir):
    res = vm_ir.nodes["vm_egress/tso"]["downstream_overhead"]
    assert res.distinct == frozenset({0, 50}) and res.max == 50 and not res.truncated
    overlay = res.through(("vm_egress/overlay_encap.overlay_v4", "encap"))
    assert overlay and {p.overhead for p in overlay} == {50}
    overlay6 = res.through(("vm_egress/overlay_encap.overlay_v6", "encap"))
    assert overlay6 and {p.overhead for p in overlay6} == {50}
    snat_path = res.through(("vm_egress/snat.snat_v4", "snat_rewrite"),
                            ("vm_egress/overlay_encap.overlay_v4", "to_underlay"))
    assert snat_path and {p.overhead for p in snat_path} == {0}
    # Dropped packets (ACL deny) take no path out.
    assert not res.through(("vm_egress/acl_out.acl_out_v4", "deny"))
    # Validity pruning: no path tests ipv4 valid and then ipv6 tables.
    for p in res.paths:
        ids = [s for s, _ in p.steps]
        assert not ("vm_egress/acl_out.acl_out_v4" in ids and "vm_egress/overlay_encap.overlay_v6" in ids)


OVERHEAD_PROGRAM = """
segment s {{ mss = auto; underlay_mtu = 1500; }}
nf n {{
    action a() {{ {body} }}
    action none() {{ }}
    table t {{ key = {{ ipv4.dst: lpm; }} actions = {{ a; none; }} default_action = none(); }}
    apply {{ t.apply(); }}
}}
pipeline p : vm_egress {{ s -> n; }}
"""


@pytest.mark.parametrize("body,overhead", [
    ("vxlan_encap(1, 2, 3, 4, 5);", 50),
    ("geneve_encap(1, 2, 3, 4, 5, 64, 6081);", 50),
    ("push_vlan(10);", 0),  # an 802.1Q tag is outside the IP packet
    ("vxlan_encap(1, 2, 3, 4, 5); geneve_encap(1, 2, 3, 4, 5);", 100),
    ("ipv4.ttl = 1;", 0),
])
def test_overhead_of_each_primitive(body, overhead):
    prog, sink = check_source("o.nf", OVERHEAD_PROGRAM.format(body=body).encode())
    assert prog is not None, sink.render()
    res = build_ir(prog).nodes["p/s"]["downstream_overhead"]
    assert res.distinct == frozenset({0, overhead})
    assert {p.overhead for p in res.through(("p/n.t", "a"))} == {overhead}


def test_large_program_overhead_is_bounded():
    prog, _ = check_source("big.nf", synth_program(60).encode())
    g = build_ir(prog)
    res = g.nodes["egress/tso"]["downstream_overhead"]
    assert res.truncated and res.distinct == frozenset({0})
    assert g.number_of_edges() < 10 * g.number_of_nodes()  # dependency edges stay linear


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_ir_builds_for_every_example(path):
    prog, sink = load_program([f"examples/{path.name}"])
    g = build_ir(prog)
    assert nx.is_directed_acyclic_graph(_control(g))
    for pl in prog.pipelines:
        assert f"{pl}/parse" in g and f"{pl}/deparse" in g


def test_golden_dot(vm_ir):
    check_golden("vm_offload.dot", to_dot(vm_ir))
