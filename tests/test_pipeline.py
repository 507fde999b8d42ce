"""The hypervisor pipeline's internals on vm_offload: a split run through a Python model of the
NIC, and malformed input. The scenario's packet tests, which run on the software target and on
BMv2 alike, are in test_packets.py."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

from p4gen.frontend import load_program
from p4gen.ir import build_ir
from p4gen.runtime.pipeline import HypervisorPipeline

VM_MAC, GW = "02:00:00:00:01:02", "02:00:00:00:00:fe"


@pytest.fixture()
def hv():
    prog, sink = load_program(["examples/vm_offload.nf"])
    assert prog is not None, sink.render()
    return HypervisorPipeline(prog, build_ir(prog))


def payload(n: int) -> bytes:
    return bytes((i * 13 + i // 256) & 0xFF for i in range(n))


def test_split_placement_equals_software(hv):
    """Hypervisor stages here, NIC stages in the Python model of the NIC (ModelTarget: every
    crossing a real p4gen_t frame through the host-port dispatcher): the same packets on the
    same ports as the all-software run."""
    from p4gen.place import load_profile, place
    from p4gen.testing import ModelTarget, SoftwareTarget

    prog, g = hv.prog, hv.g
    pl = place(g, prog, load_profile("targets/bmv2-smartnic.toml"))
    split, soft = ModelTarget(prog, g, pl), SoftwareTarget(prog, g)

    def same(port: str, frame: bytes) -> int:
        split.send(port, frame)
        soft.send(port, frame)
        delivered = 0
        for out in ("uplink", "vm", "slow_path"):
            got = split.received(out)
            assert got == soft.received(out), out
            delivered += len(got)
        return delivered

    frames = [
        Ether(src=VM_MAC) / IP(src="10.0.1.2", dst="10.0.2.9") / TCP(dport=443, flags="PA") / Raw(payload(20000)),
        Ether(src=VM_MAC) / IPv6(src="fd00:1::2", dst="fd00:2::9") / TCP(dport=80) / Raw(payload(7000)),
        Ether(src=VM_MAC) / IP(src="10.0.1.2", dst="8.8.8.8") / TCP(dport=443) / Raw(payload(3000)),
        Ether(src=VM_MAC) / IP(src="10.0.1.2", dst="8.8.8.8") / UDP(dport=53) / Raw(b"q"),
        Ether(src=VM_MAC) / IP(src="10.0.1.2", dst="10.0.2.9") / TCP(dport=22),
    ]
    assert sum(same("vm", bytes(f)) for f in frames) > 20
    tunnel = (Ether() / IP(src="192.168.1.2", dst="192.168.1.1") / UDP(dport=4789, chksum=0) / VXLAN(vni=5001) /
              Ether(dst=VM_MAC) / IP(src="10.0.2.9", dst="10.0.1.2") / TCP(sport=80) / Raw(b"r"))
    assert same("uplink", bytes(tunnel)) == 1
    assert split.counter("acl_out", "acl_out_drops") == soft.counter("acl_out", "acl_out_drops") == 1


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_SEEDS = [
    bytes(Ether(src=VM_MAC) / IP(src="10.0.1.2", dst="10.0.2.9") / TCP(dport=443, flags="PA") / Raw(payload(3000))),
    bytes(Ether(src=VM_MAC) / IPv6(src="fd00:1::2", dst="fd00:2::9", nh=0) / Raw(b"\x06\x00" + payload(60))),
    bytes(Ether(src=VM_MAC) / IP(src="10.0.1.2", dst="8.8.8.8", ihl=6, options=b"\x01\x01\x01\x00") / UDP(dport=53)),
    bytes(Ether() / IP(src="192.168.1.2", dst="192.168.1.1") / UDP(dport=4789, chksum=0) / VXLAN(vni=5001) /
          Ether(dst=VM_MAC) / IP(src="10.0.2.9", dst="10.0.1.2") / TCP(sport=80) / Raw(b"")),
]


@st.composite
def _mangled(draw):
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["truncate", "flip", "set"]))
        if op == "truncate":
            del data[i:]
        elif op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        else:
            data[i] = draw(st.integers(0, 255))
        if not data:
            break
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_mangled(), st.sampled_from(["vm_egress", "vm_ingress"]))
def test_malformed_input_is_dropped_or_passed_never_a_crash(hv, data, pipeline):
    before = sum(hv.drops.values())
    outs = hv.run(pipeline, data)
    for o in outs:
        assert o.kind in ("uplink", "vm") and len(o.data) >= 14
    if not outs:
        # every drop is counted under a reason (a super-packet cut by TSO may drop segment by segment)
        assert sum(hv.drops.values()) >= before + 1


def test_metadata_crosses_the_punt_path():
    """ipv6_only on the constrained NIC: routes6 (8192 entries) runs in the hypervisor and writes
    meta.nexthop_id; nexthops, on the NIC, reads it after the crossing (p4gen_meta_t)."""
    from p4gen.place import HYP, NIC, load_profile, place

    prog, _ = load_program(["examples/ipv6_only.nf"])
    g = build_ir(prog)
    pl = place(g, prog, load_profile("targets/constrained-nic.toml"))
    assert (pl.assignment["v6_out/fwd6.routes6"], pl.assignment["v6_out/fwd6.nexthops"]) == (HYP, NIC)
    hyp, nic = HypervisorPipeline(prog, g, pl.assignment, HYP), HypervisorPipeline(prog, g, pl.assignment, NIC)
    frame = bytes(Ether(src="02:00:00:00:06:02", dst=GW) / IPv6(src="2001:db8:6::2", dst="2001:db8:7::4") /
                  TCP(sport=40000, dport=443) / Raw(b"x"))
    (crossing,) = hyp.run("v6_out", frame)
    assert crossing.kind == "to_nic" and crossing.meta["nexthop_id"] == 2
    (out,) = nic.run("v6_out", crossing.data, crossing.resume, crossing.meta)
    assert (out.kind, out.port, Ether(out.data).dst) == ("port", 1, "02:00:0a:06:ff:02")  # NH_UPSTREAM_B's
    assert [(o.kind, o.data) for o in HypervisorPipeline(prog, g).run("v6_out", frame)] == [("port", out.data)]
    (lost,) = nic.run("v6_out", crossing.data, crossing.resume)  # without it: no next hop
    assert lost.kind == "slow_path"  # unroutable(): punted to the slow path
