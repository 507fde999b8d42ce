"""The scenario's packet tests, written once, run on the software target and on BMv2 + hypervisor.

The BMv2 runs use the real simple_switch_grpc with p4gen's P4 on veth pairs; they carry
the `bmv2` mark and skip with a reason where BMv2 or p4c is absent. On every target the
expected packets are the all-software pipeline's, checked independently with scapy.
"""

from __future__ import annotations

import pytest
from conftest import BMV2, NEEDS_BMV2, P4C
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw
from test_backend import built

from p4gen.frontend import load_program
from p4gen.ir import build_ir
from p4gen.place import load_profile, place
from p4gen.runtime.pipeline import HypervisorPipeline
from p4gen.testing import Bmv2Target, SoftwareTarget

VM, GW = "02:00:00:00:01:02", "02:00:00:00:00:fe"
TUNNEL = Ether(dst="02:00:c0:a8:01:01") / IP(src="192.168.1.2", dst="192.168.1.1") / UDP(sport=50000, dport=4789,
                                                                                          chksum=0)
needs_bmv2 = NEEDS_BMV2


@pytest.fixture(scope="module")
def program():
    prog, sink = load_program(["examples/vm_offload.nf"])
    assert prog is not None, sink.render()
    return prog, build_ir(prog)


@pytest.fixture(params=[
    "software",
    pytest.param("targets/bmv2-smartnic.toml", marks=needs_bmv2),
    pytest.param("targets/constrained-nic.toml", marks=needs_bmv2),
])
def target(request, program, tmp_path):
    prog, g = program
    if request.param == "software":
        t = SoftwareTarget(prog, g)
    else:
        built("examples/vm_offload.nf", tmp_path, request.param, P4C)
        t = Bmv2Target(prog, g, place(g, prog, load_profile(request.param)), tmp_path, BMV2)
    yield t
    t.close()


def reference(program, port: str, frame: bytes) -> list[bytes]:
    prog, g = program
    pipeline = "vm_egress" if port == "vm" else "vm_ingress"
    return [o.data for o in HypervisorPipeline(prog, g).run(pipeline, frame)]


def payload(n: int) -> bytes:
    return bytes((i * 29 + 3) & 0xFF for i in range(n))


@pytest.mark.parametrize("version", [4, 6])
def test_tso_super_packet_to_the_overlay(target, program, version):
    l3 = IP(src="10.0.1.2", dst="10.0.2.9") if version == 4 else IPv6(src="fd00:1::2", dst="fd00:2::9")
    size = 65495 if version == 4 else 65475
    frame = bytes(Ether(src=VM, dst=GW) / l3 / TCP(sport=40000, dport=443, flags="PA") / Raw(payload(size)))
    expected = reference(program, "vm", frame)
    target.send("vm", frame)
    assert len(expected) == (47 if version == 4 else 48)
    for e in expected:
        target.expect("uplink", e)
        pkt = Ether(e)
        assert len(pkt[IP]) <= 1500 and pkt[VXLAN].vni == 5001
    target.expect_nothing("uplink")


def test_snat_dns_and_acl(target, program):
    cases = [
        Ether(src=VM, dst=GW) / IP(src="10.0.1.2", dst="8.8.8.8") / TCP(sport=40001, dport=443, flags="A") /
        Raw(payload(100)),
        Ether(src=VM, dst=GW) / IP(src="10.0.1.2", dst="9.9.9.9") / UDP(sport=5353, dport=53) / Raw(b"q"),
    ]
    for c in cases:
        (e,) = reference(program, "vm", bytes(c))
        assert Ether(e)[IP].src == "203.0.113.10"
        target.send("vm", bytes(c))
        target.expect("uplink", e)
    target.send("vm", bytes(Ether(src=VM) / IP(src="10.0.1.2", dst="10.0.2.9") / TCP(dport=22)))
    target.expect_nothing("uplink")


def test_ingress_decap_dnat_and_drops(target, program):
    inner = Ether(src="02:00:00:00:02:09", dst=VM) / IP(src="10.0.2.9", dst="10.0.1.2") / TCP(sport=443) / \
        Raw(payload(300))
    reply = Ether(dst="02:00:c0:a8:01:01") / IP(src="1.1.1.1", dst="203.0.113.10") / TCP(sport=443, dport=40000)
    for frame in (bytes(TUNNEL / VXLAN(vni=5001) / inner), bytes(reply)):
        (e,) = reference(program, "uplink", frame)
        target.send("uplink", frame)
        target.expect("vm", e)
    assert reference(program, "uplink", bytes(TUNNEL / VXLAN(vni=5001) / inner))[0] == bytes(inner)
    target.send("uplink", bytes(TUNNEL / VXLAN(vni=7) / inner))
    target.send("uplink", bytes(Ether() / IP(src="1.1.1.1", dst="203.0.113.10") / TCP(sport=80)))
    target.expect_nothing("vm")
