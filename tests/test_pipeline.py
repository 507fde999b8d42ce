"""The all-software pipeline of vm_offload, packet for packet, with scapy as the oracle."""

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


def valid_checksums(pkt) -> bool:
    fresh = pkt.copy()
    for layer in (IP, TCP, UDP):
        for sub in fresh.iterpayloads():
            if isinstance(sub, layer) and hasattr(sub, "chksum") and not (layer is UDP and sub.chksum == 0):
                del sub.chksum
    fresh = Ether(bytes(fresh))
    return bytes(fresh) == bytes(pkt)


@pytest.mark.parametrize("version,dst,mss", [(4, "10.0.2.9", 1410), (6, "fd00:2::9", 1390)])
def test_64k_super_packet_to_the_overlay(hv, version, dst, mss):
    data = payload(65495 if version == 4 else 65475)
    l3 = IP(src="10.0.1.2", dst=dst) if version == 4 else IPv6(src="fd00:1::2", dst=dst)
    frame = bytes(Ether(src=VM_MAC, dst=GW) / l3 / TCP(sport=40000, dport=443, seq=1000, flags="PA") / Raw(data))
    outs = hv.run("vm_egress", frame)
    assert outs and {o.kind for o in outs} == {"uplink"}
    rebuilt, seq = b"", 1000
    for o in outs:
        pkt = Ether(o.data)
        assert len(pkt[IP]) <= 1500 and pkt[IP].flags == "DF"
        assert (pkt[IP].src, pkt[IP].dst, pkt[IP].ttl) == ("192.168.1.1", "192.168.1.2", 64)
        assert (pkt.src, pkt.dst) == ("02:00:c0:a8:01:01", "02:00:c0:a8:01:02")
        assert pkt[UDP].dport == 4789 and pkt[UDP].chksum == 0 and pkt[UDP].sport >= 0xC000
        assert pkt[VXLAN].vni == 5001
        inner = pkt[VXLAN].payload
        assert valid_checksums(pkt)
        tcp = inner[TCP]
        assert tcp.seq == seq
        seq += len(tcp.payload)
        assert len(tcp.payload) <= mss
        rebuilt += bytes(tcp.payload)
    assert rebuilt == data
    assert len({Ether(o.data)[UDP].sport for o in outs}) == 1  # one flow, one outer source port


def test_64k_super_packet_snat_path(hv):
    data = payload(65495)
    frame = bytes(Ether(src=VM_MAC, dst="02:00:00:00:01:01") / IP(src="10.0.1.2", dst="8.8.8.8", ttl=64) /
                  TCP(sport=40000, dport=443, flags="A") / Raw(data))
    outs = hv.run("vm_egress", frame)
    assert len(outs) == 45
    for o in outs:
        pkt = Ether(o.data)
        assert pkt[IP].src == "203.0.113.10" and pkt.dst == GW and pkt[IP].ttl == 63
        assert len(pkt[TCP].payload) <= 1460 and valid_checksums(pkt)
    assert b"".join(bytes(Ether(o.data)[TCP].payload) for o in outs) == data


def test_acl_drops_are_counted_by_reason(hv):
    denied = [
        Ether(src=VM_MAC) / IP(src="10.0.1.2", dst="10.0.2.9") / TCP(dport=22),
        Ether(src=VM_MAC) / IP(src="10.0.1.2", dst="10.9.9.9") / TCP(dport=443),  # inside 10/8, not the subnet
        Ether(src=VM_MAC) / IPv6(src="fd00:1::2", dst="2001:db8::1") / TCP(dport=443),
    ]
    for p in denied:
        assert hv.run("vm_egress", bytes(p)) == []
    assert hv.drops["acl_out.deny"] == 3
    assert hv.counters[("acl_out", "acl_out_drops")][0][0] == 3
    dns = Ether(src=VM_MAC) / IP(src="10.0.1.2", dst="9.9.9.9") / UDP(sport=5353, dport=53) / Raw(b"q")
    (out,) = hv.run("vm_egress", bytes(dns))
    assert Ether(out.data)[IP].src == "203.0.113.10" and valid_checksums(Ether(out.data))
    assert hv.run("vm_egress", bytes(Ether(src="02:00:00:00:09:09") / IP() / TCP())) == []
    assert hv.drops["no_flow"] == 1


def test_ingress_decap_and_dnat(hv):
    inner = Ether(src="02:00:00:00:02:09", dst=VM_MAC) / IP(src="10.0.2.9", dst="10.0.1.2") / TCP(sport=443) / \
        Raw(b"reply")
    tunnel = (Ether(dst="02:00:c0:a8:01:01") / IP(src="192.168.1.2", dst="192.168.1.1") /
              UDP(sport=50000, dport=4789, chksum=0) / VXLAN(vni=5001) / inner)
    (out,) = hv.run("vm_ingress", bytes(tunnel))
    assert out.kind == "vm" and out.data == bytes(inner)
    wrong_vni = tunnel.copy()
    wrong_vni[VXLAN].vni = 7
    assert hv.run("vm_ingress", bytes(wrong_vni)) == []
    assert hv.drops["overlay_decap.reject_tunnel"] == 1
    reply = Ether(dst="02:00:c0:a8:01:01") / IP(src="1.1.1.1", dst="203.0.113.10") / TCP(sport=443, dport=40000)
    (out,) = hv.run("vm_ingress", bytes(reply))
    pkt = Ether(out.data)
    assert pkt[IP].dst == "10.0.1.2" and pkt.dst == VM_MAC and valid_checksums(pkt)


def test_split_placement_equals_software(hv):
    """Hypervisor stages here, NIC stages in a Python model of the NIC, crossing at the placement's
    edges: the same packets as the all-software run (BMv2 itself comes with the integration issue)."""
    from p4gen.place import HYP, NIC, load_profile, place

    prog, g = hv.prog, hv.g
    pl = place(g, prog, load_profile("targets/bmv2-smartnic.toml"))
    side = {HYP: HypervisorPipeline(prog, g, pl.assignment, HYP), NIC: HypervisorPipeline(prog, g, pl.assignment, NIC)}

    def split(pipeline: str, frame: bytes, start: str) -> list:
        pending, done = [(start, frame, None)], []
        while pending:
            where, data, resume = pending.pop(0)
            for o in side[where].run(pipeline, data, resume):
                if o.kind == "to_nic":
                    pending.append((NIC, o.data, o.resume))
                elif o.kind == "to_hypervisor":
                    pending.append((HYP, o.data, o.resume))
                else:
                    done.append((o.kind, o.data))
        return done

    frames = [
        Ether(src=VM_MAC) / IP(src="10.0.1.2", dst="10.0.2.9") / TCP(dport=443, flags="PA") / Raw(payload(20000)),
        Ether(src=VM_MAC) / IPv6(src="fd00:1::2", dst="fd00:2::9") / TCP(dport=80) / Raw(payload(7000)),
        Ether(src=VM_MAC) / IP(src="10.0.1.2", dst="8.8.8.8") / TCP(dport=443) / Raw(payload(3000)),
        Ether(src=VM_MAC) / IP(src="10.0.1.2", dst="8.8.8.8") / UDP(dport=53) / Raw(b"q"),
        Ether(src=VM_MAC) / IP(src="10.0.1.2", dst="10.0.2.9") / TCP(dport=22),
    ]
    for f in frames:
        reference = [(o.kind, o.data) for o in hv.run("vm_egress", bytes(f))]
        assert split("vm_egress", bytes(f), HYP) == reference
    tunnel = (Ether() / IP(src="192.168.1.2", dst="192.168.1.1") / UDP(dport=4789, chksum=0) / VXLAN(vni=5001) /
              Ether(dst=VM_MAC) / IP(src="10.0.2.9", dst="10.0.1.2") / TCP(sport=80) / Raw(b"r"))
    reference = [(o.kind, o.data) for o in hv.run("vm_ingress", bytes(tunnel))]
    assert reference and split("vm_ingress", bytes(tunnel), NIC) == reference


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
