"""The crossing protocol: what a packet carries between NIC and hypervisor, and one dispatcher.

Regression tests of split ≠ software divergences, each on the Python model of the split
(ModelTarget: NicModel + HostDispatcher over real p4gen_t frames) and, with p4c and BMv2
present, on BMv2. Expectations are built with scapy, not by the software target.
"""

from __future__ import annotations

import pytest
from conftest import BMV2, NEEDS_BMV2, P4C
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from p4gen.crossing import VERSION, Reason, crossing
from p4gen.crossing.dispatch import NIC_PORT, SLOW_PATH, VM, HostDispatcher
from p4gen.frontend import load_program
from p4gen.ir import build_ir
from p4gen.place import HYP, NIC, load_profile, place
from p4gen.runtime.pipeline import HypervisorPipeline
from p4gen.testing import Bmv2Target, ModelTarget, SoftwareTarget

STEER_THEN_TOS = """
@pin(hypervisor) nf steer { apply { forward(3); } }
@pin(nic) nf tos { apply { set_dscp(5); } }
pipeline out : vm_egress { steer -> tos; }
"""

PUNT_ON_NIC = """
@pin(nic) nf punt { apply { if (udp.dst_port == 9) { to_hypervisor(7); } } }
pipeline inward : vm_ingress { punt; }
"""


def _program(tmp_path, text: str):
    path = tmp_path / "prog.nf"
    path.write_text(text)
    prog, sink = load_program([str(path)])
    assert prog is not None, sink.render()
    g = build_ir(prog)
    return prog, g, place(g, prog, load_profile("targets/bmv2-smartnic.toml")), path


def _bmv2(prog, g, pl, path, tmp_path):
    for mark in NEEDS_BMV2:
        if mark.name == "skipif" and mark.args[0]:
            pytest.skip(mark.kwargs["reason"])
    from p4gen.backend.build import build

    res = build(prog, g, pl, str(path), tmp_path / "out", P4C)
    assert res.p4c is not None and res.p4c.ok, res.p4c
    return Bmv2Target(prog, g, pl, tmp_path / "out", BMV2)


TARGETS = ["model", pytest.param("bmv2", marks=[pytest.mark.bmv2, pytest.mark.p4c])]


def _target(kind, prog, g, pl, path, tmp_path):
    return ModelTarget(prog, g, pl) if kind == "model" else _bmv2(prog, g, pl, path, tmp_path)


@pytest.mark.parametrize("kind", TARGETS)
def test_egress_port_crosses_to_the_nic(kind, tmp_path):
    """forward(3) in a hypervisor stage, then a NIC stage: the packet leaves on port 3, rewritten."""
    prog, g, pl, path = _program(tmp_path, STEER_THEN_TOS)
    assert (pl.assignment["out/steer.block1"], pl.assignment["out/tos.block1"]) == (HYP, NIC)
    sent = Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe") / IP(src="10.0.1.2", dst="10.0.2.9", tos=0) \
        / UDP(sport=1000, dport=2000) / Raw(b"payload")
    want = sent.copy()
    want[IP].tos = 5 << 2
    del want[IP].chksum
    want = bytes(Ether(bytes(want)))
    soft = SoftwareTarget(prog, g)
    soft.send("vm", bytes(sent))
    assert soft.received("port3") == [want]
    target = _target(kind, prog, g, pl, path, tmp_path)
    try:
        target.send("vm", bytes(sent))
        assert target.received("port3") == [want]
        target.expect_nothing("uplink")
    finally:
        target.close()


@pytest.mark.parametrize("kind", TARGETS)
def test_to_hypervisor_on_the_nic_reaches_the_slow_path(kind, tmp_path):
    """A NIC to_hypervisor() goes to the slow path, not to the VM (one dispatcher decides)."""
    prog, g, pl, path = _program(tmp_path, PUNT_ON_NIC)
    punted = bytes(Ether() / IP(src="192.0.2.1", dst="10.0.1.2") / UDP(sport=5, dport=9) / Raw(b"p"))
    passed = bytes(Ether() / IP(src="192.0.2.1", dst="10.0.1.2") / UDP(sport=5, dport=10) / Raw(b"q"))
    target = _target(kind, prog, g, pl, path, tmp_path)
    try:
        target.send("uplink", punted)
        target.send("uplink", passed)
        assert target.received("slow_path") == [punted]
        assert target.received("vm") == [passed]
    finally:
        target.close()


def test_dispatcher_routes_by_reason(tmp_path):
    """The dispatcher `p4gen up` and the BMv2 target share: each reason to its place."""
    prog, g, pl, _ = _program(tmp_path, PUNT_ON_NIC)
    cross = crossing(prog)
    d = HostDispatcher(HypervisorPipeline(prog, g, pl.assignment, HYP), uplink_port=0)
    frame = bytes(Ether() / IP() / UDP(dport=9))
    (slow,) = d.from_nic(cross.wrap("inward", None, frame, reason=Reason.TO_HYPERVISOR, code=7))
    assert (slow.to, slow.code, slow.data) == (SLOW_PATH, 7, frame)
    (vm,) = d.from_nic(cross.wrap("inward", None, frame, reason=Reason.FINISHED))
    assert (vm.to, vm.data) == (VM, frame)
    assert d.from_nic(bytes([VERSION, 9]) + bytes(30)) == [] and d.drops["bad_pipeline"] == 1
    assert d.from_nic(b"\x02") == [] and d.drops["malformed_punt"] == 1


def test_hypervisor_finishes_through_the_nic(tmp_path):
    """A pipeline that ends in the hypervisor reaches the wire through the NIC: RESUME_DONE and
    the port, as p4gen_t says (never dropped on the floor, as `up` used to)."""
    prog, g, pl, _ = _program(tmp_path, "@pin(hypervisor) nf steer { apply { forward(3); } }\n"
                                        "pipeline out : vm_egress { steer; }\n")
    d = HostDispatcher(HypervisorPipeline(prog, g, pl.assignment, HYP), uplink_port=0)
    frame = bytes(Ether() / IP() / UDP())
    (out,) = d.from_vm(frame)
    assert out.to == NIC_PORT
    p = crossing(prog).unwrap(out.data)
    assert (p.resume, p.port, p.data) == (None, 3, frame)


DIRTY_THEN_WRITE = """
@pin(nic) nf a { action r() { ipv4.dst = 10.9.9.9; } apply { r(); } }
@pin(hypervisor) nf b { action w() { tcp.window = 7; } apply { w(); } }
pipeline out : vm_egress { a -> b; }
"""


@pytest.mark.parametrize("kind", TARGETS)
def test_l4_checksum_state_crosses(kind, tmp_path):
    """An address rewrite on the NIC, a TCP rewrite in the hypervisor after it: the checksum the
    packet leaves with covers both (the 'recompute' state crossed with the packet)."""
    from scapy.layers.inet import TCP

    prog, g, pl, path = _program(tmp_path, DIRTY_THEN_WRITE)
    sent = Ether() / IP(src="10.0.1.2", dst="10.0.2.9") / TCP(sport=40000, dport=443, window=100) / Raw(b"d")
    want = sent.copy()
    want[IP].dst, want[TCP].window = "10.9.9.9", 7
    del want[IP].chksum, want[TCP].chksum
    want = bytes(Ether(bytes(want)))  # scapy computes both checksums
    soft = SoftwareTarget(prog, g)
    soft.send("vm", bytes(sent))
    assert soft.received("uplink") == [want]
    target = _target(kind, prog, g, pl, path, tmp_path)
    try:
        target.send("vm", bytes(sent))
        assert target.received("uplink") == [want]
    finally:
        target.close()


DROPS_ON_BOTH_SIDES = """
@pin(nic) nf acl {
    action deny() { drop(); }
    apply { if (udp.dst_port == 22) { deny(); } if (udp.dst_port == 23) { drop(); } }
}
@pin(hypervisor) nf late { action deny() { drop(); } apply { if (udp.dst_port == 24) { deny(); } } }
pipeline out : vm_egress { acl -> late; }
"""


@pytest.mark.parametrize("kind", TARGETS)
def test_a_programs_drops_count_wherever_they_run(kind, tmp_path):
    """drop() counts by where it ran ("nf.action", or "nf" in an apply block) on the NIC as in
    the hypervisor: the NIC's p4gen.drops has a cell for each after its own reasons."""
    prog, g, pl, path = _program(tmp_path, DROPS_ON_BOTH_SIDES)
    assert (pl.assignment["out/acl.if1"], pl.assignment["out/late.if1"]) == (NIC, HYP)
    target = _target(kind, prog, g, pl, path, tmp_path)
    try:
        for port in (22, 23, 23, 24, 80):
            target.send("vm", bytes(Ether() / IP(src="10.0.1.2", dst="10.0.2.9") / UDP(sport=1, dport=port)))
        assert [UDP in Ether(f) and Ether(f)[UDP].dport for f in target.received("uplink")] == [80]
        drops = target.drops
        assert (drops["acl.deny"], drops["acl"], drops["late.deny"]) == (1, 2, 1), drops
        assert sum(drops.values()) == 4, drops
    finally:
        target.close()


INGRESS_PORT_AFTER_A_CROSSING = """
@pin(hypervisor) nf out_first { apply { set_dscp(1); } }
@pin(hypervisor) nf in_first { apply { set_dscp(1); } }
@pin(nic) nf out_mark { apply { if (meta.ingress_port == 255) { set_dscp(40); } else { set_dscp(30); } } }
@pin(nic) nf in_mark { apply { if (meta.ingress_port == 0) { set_dscp(20); } else { set_dscp(10); } } }
pipeline out : vm_egress { out_first -> out_mark; }
pipeline inward : vm_ingress { in_first -> in_mark; }
"""


@pytest.mark.parametrize("kind", ["software", *TARGETS])
def test_ingress_port_is_where_the_packet_entered(kind, tmp_path):
    """meta.ingress_port is the host port (255) for what the VM sends and the uplink (0) for
    what the wire brings, also on the NIC after the packet went through the hypervisor and came
    back on the host port (it crosses in p4gen_t)."""
    prog, g, pl, path = _program(tmp_path, INGRESS_PORT_AFTER_A_CROSSING)
    out = Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe") / IP(src="10.0.1.2", dst="10.0.2.9") / \
        UDP(sport=1000, dport=2000) / Raw(b"egress")
    back = Ether(src="02:00:00:00:00:fe", dst="02:00:00:00:01:02") / IP(src="10.0.2.9", dst="10.0.1.2") / \
        UDP(sport=2000, dport=1000) / Raw(b"ingress")

    def with_dscp(p, dscp):
        p = p.copy()
        p[IP].tos = dscp << 2
        del p[IP].chksum
        return bytes(Ether(bytes(p)))

    target = SoftwareTarget(prog, g) if kind == "software" else _target(kind, prog, g, pl, path, tmp_path)
    try:
        target.send("vm", bytes(out))
        target.send("uplink", bytes(back))
        assert target.received("uplink") == [with_dscp(out, 40)]
        assert target.received("vm") == [with_dscp(back, 20)]
    finally:
        target.close()
