"""The scenario's packet tests, written once, run on the software target and on BMv2 + hypervisor.

The BMv2 runs use the real simple_switch_grpc with p4gen's P4 on veth pairs; they carry
the `bmv2` mark and skip with a reason where BMv2 or p4c is absent. On every target the
packets are checked with scapy as the independent oracle (layouts, checksums, MSS), and
where a test compares bytes, against frames built independently with scapy from the
scenario's rules (segmentation, SNAT/DNAT, VXLAN with its CRC-16 source port). Counters are
the DSL's own, wherever the placement put them (BMv2's are read over P4Runtime).
"""

from __future__ import annotations

import socket

import pytest
from conftest import BMV2, NEEDS_BMV2, P4C
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw
from test_backend import built

from p4gen.frontend import load_program
from p4gen.ir import build_ir
from p4gen.place import load_profile, place
from p4gen.testing import Bmv2Target, SoftwareTarget

VM, GW = "02:00:00:00:01:02", "02:00:00:00:00:fe"
TUNNEL = Ether(dst="02:00:c0:a8:01:01") / IP(src="192.168.1.2", dst="192.168.1.1") / UDP(sport=50000, dport=4789,
                                                                                          chksum=0)


@pytest.fixture(scope="module")
def program():
    prog, sink = load_program(["examples/vm_offload.nf"])
    assert prog is not None, sink.render()
    return prog, build_ir(prog)


@pytest.fixture(scope="module", params=[
    "software",
    pytest.param("targets/bmv2-smartnic.toml", marks=NEEDS_BMV2),
    pytest.param("targets/constrained-nic.toml", marks=NEEDS_BMV2),
])
def started(request, program, tmp_path_factory):
    """One target per module and profile (starting BMv2 takes seconds); tests use counter deltas."""
    prog, g = program
    if request.param == "software":
        t = SoftwareTarget(prog, g)
    else:
        out = tmp_path_factory.mktemp("build")
        built("examples/vm_offload.nf", out, request.param, P4C)
        t = Bmv2Target(prog, g, place(g, prog, load_profile(request.param)), out, BMV2)
    yield t
    t.close()


@pytest.fixture()
def target(started):
    for port in list(started.queues):  # nothing left over from an earlier test
        started.received(port)
    return started


# ---- independent expectations, built with scapy from the scenario's rules (not by p4gen)
LOCAL_VTEP, REMOTE_VTEP = ("02:00:c0:a8:01:01", "192.168.1.1"), ("02:00:c0:a8:01:02", "192.168.1.2")


def crc16_arc(data: bytes) -> int:
    """CRC-16/ARC bit by bit (BMv2's crc16): poly 0x8005 reflected, init 0."""
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def vxlan_out(inner: bytes) -> bytes:
    """The scenario's VXLAN encapsulation of `inner` (an untagged frame): VNI 5001, outer
    IPv4 192.168.1.1 → .2, TTL 64, DF, the inner DSCP/ECN, UDP checksum 0, source port
    CRC-16 of the inner 5-tuple OR 0xC000."""
    p = Ether(inner)
    ip = p[IP] if IP in p else p[IPv6]
    family = socket.AF_INET if IP in p else socket.AF_INET6
    src, dst = (int.from_bytes(socket.inet_pton(family, a), "big") for a in (ip.src, ip.dst))
    proto = ip.proto if IP in p else ip.nh
    l4 = p[TCP] if TCP in p else (p[UDP] if UDP in p else None)
    sport, dport = (l4.sport, l4.dport) if l4 is not None else (0, 0)
    key = src.to_bytes(16, "big") + dst.to_bytes(16, "big") + bytes([proto]) + sport.to_bytes(2, "big") + \
        dport.to_bytes(2, "big")
    tos = ip.tos if IP in p else ip.tc  # DSCP and ECN copied outward (uniform DSCP, RFC 6040 ECN)
    outer = Ether(src=LOCAL_VTEP[0], dst=REMOTE_VTEP[0]) / IP(src=LOCAL_VTEP[1], dst=REMOTE_VTEP[1], ttl=64,
                                                              flags="DF", id=0, tos=tos) / \
        UDP(sport=crc16_arc(key) | 0xC000, dport=4789, chksum=0) / VXLAN(vni=5001, flags=0x08)
    return bytes(outer / Raw(inner))


def tso(frame: bytes, mss: int) -> list[bytes]:
    """RFC 7414-style segmentation with scapy: payload slices of `mss`, sequence numbers
    advancing, IPv4 identification + i, PSH/FIN on the last segment only, CWR on the first."""
    p = Ether(frame)
    data = bytes(p[TCP].payload)
    out = []
    for i, off in enumerate(range(0, len(data), mss)):
        seg = p.copy()
        t = seg[TCP]
        t.remove_payload()
        t.seq = (p[TCP].seq + off) & 0xFFFFFFFF
        flags = int(p[TCP].flags)
        if off + mss < len(data):
            flags &= ~0x09  # FIN, PSH
        if i:
            flags &= ~0x80  # CWR
        t.flags = flags
        del t.chksum
        if IP in seg:
            seg[IP].id = (p[IP].id + i) & 0xFFFF
            del seg[IP].len, seg[IP].chksum
        else:
            del seg[IPv6].plen
        out.append(bytes(seg / Raw(data[off:off + mss])))
    return out


def snat(frame: bytes) -> bytes:
    """The scenario's SNAT: source 203.0.113.10, destination MAC the gateway, TTL − 1."""
    p = Ether(frame)
    p.dst = GW
    p[IP].src, p[IP].ttl = "203.0.113.10", p[IP].ttl - 1
    del p[IP].chksum
    for layer in (TCP, UDP):
        if layer in p:
            del p[layer].chksum
    return bytes(p)


def payload(n: int) -> bytes:
    return bytes((i * 29 + 3) & 0xFF for i in range(n))


def valid_checksums(pkt) -> bool:
    """scapy recomputes every IP/TCP/UDP checksum (a zero UDP checksum stays 'none')."""
    fresh = pkt.copy()
    for layer in (IP, TCP, UDP):
        for sub in fresh.iterpayloads():
            if isinstance(sub, layer) and hasattr(sub, "chksum") and not (layer is UDP and sub.chksum == 0):
                del sub.chksum
    return bytes(Ether(bytes(fresh))) == bytes(pkt)


@pytest.mark.parametrize("version,dst,mss,count", [(4, "10.0.2.9", 1410, 47), (6, "fd00:2::9", 1390, 48)])
def test_64k_super_packet_to_the_overlay(target, program, version, dst, mss, count):
    data = payload(65495 if version == 4 else 65475)
    l3 = IP(src="10.0.1.2", dst=dst) if version == 4 else IPv6(src="fd00:1::2", dst=dst)
    frame = bytes(Ether(src=VM, dst=GW) / l3 / TCP(sport=40000, dport=443, seq=1000, flags="PA") / Raw(data))
    target.send("vm", frame)
    outs = target.received("uplink")
    assert outs == [vxlan_out(seg) for seg in tso(frame, mss)] and len(outs) == count
    rebuilt, seq = b"", 1000
    for o in outs:
        pkt = Ether(o)
        assert len(pkt[IP]) <= 1500 and pkt[IP].flags == "DF"  # never above the underlay MTU, never fragmented
        assert (pkt[IP].src, pkt[IP].dst, pkt[IP].ttl) == ("192.168.1.1", "192.168.1.2", 64)
        assert (pkt.src, pkt.dst) == ("02:00:c0:a8:01:01", "02:00:c0:a8:01:02")
        assert pkt[UDP].dport == 4789 and pkt[UDP].chksum == 0 and pkt[UDP].sport >= 0xC000
        assert pkt[VXLAN].vni == 5001 and valid_checksums(pkt)
        tcp = pkt[VXLAN].payload[TCP]
        assert tcp.seq == seq and len(tcp.payload) <= mss
        seq += len(tcp.payload)
        rebuilt += bytes(tcp.payload)
    assert rebuilt == data
    assert len({Ether(o)[UDP].sport for o in outs}) == 1  # one flow, one outer source port
    target.expect_nothing("vm")


def test_64k_super_packet_snat_path(target, program):
    data = payload(65495)
    frame = bytes(Ether(src=VM, dst="02:00:00:00:01:01") / IP(src="10.0.1.2", dst="8.8.8.8", ttl=64) /
                  TCP(sport=40000, dport=443, flags="A") / Raw(data))
    target.send("vm", frame)
    outs = target.received("uplink")
    assert outs == [snat(seg) for seg in tso(frame, 1460)] and len(outs) == 45
    for o in outs:
        pkt = Ether(o)
        assert pkt[IP].src == "203.0.113.10" and pkt.dst == GW and pkt[IP].ttl == 63
        assert len(pkt[TCP].payload) <= 1460 and valid_checksums(pkt)
    assert b"".join(bytes(Ether(o)[TCP].payload) for o in outs) == data


def test_acl_drops_snat_dns_and_unknown_senders_are_counted(target, program):
    drops_before = target.counter("acl_out", "acl_out_drops")
    no_flow_before = target.drops["no_flow"]
    denied = [
        Ether(src=VM, dst=GW) / IP(src="10.0.1.2", dst="10.0.2.9") / TCP(dport=22),
        Ether(src=VM, dst=GW) / IP(src="10.0.1.2", dst="10.9.9.9") / TCP(dport=443),  # inside 10/8, not the subnet
        Ether(src=VM, dst=GW) / IPv6(src="fd00:1::2", dst="2001:db8::1") / TCP(dport=443),
    ]
    for p in denied:
        target.send("vm", bytes(p))
    target.expect_nothing("uplink")
    assert target.counter("acl_out", "acl_out_drops") == drops_before + 3
    cases = [
        Ether(src=VM, dst=GW) / IP(src="10.0.1.2", dst="8.8.8.8") / TCP(sport=40001, dport=443, flags="A") /
        Raw(payload(100)),
        Ether(src=VM, dst=GW) / IP(src="10.0.1.2", dst="9.9.9.9") / UDP(sport=5353, dport=53) / Raw(b"q"),
    ]
    for c in cases:
        e = snat(bytes(c))
        target.send("vm", bytes(c))
        target.expect("uplink", e)
        pkt = Ether(e)
        assert pkt[IP].src == "203.0.113.10" and valid_checksums(pkt)
    target.send("vm", bytes(Ether(src="02:00:00:00:09:09", dst=GW) / IP() / TCP()))
    target.expect_nothing("uplink")
    assert target.drops["no_flow"] == no_flow_before + 1


def test_ingress_decap_dnat_and_drops(target, program):
    bad_before = target.counter("overlay_decap", "bad_tunnel")
    inner = Ether(src="02:00:00:00:02:09", dst=VM) / IP(src="10.0.2.9", dst="10.0.1.2") / TCP(sport=443) / \
        Raw(payload(300))
    reply = Ether(dst="02:00:c0:a8:01:01") / IP(src="1.1.1.1", dst="203.0.113.10") / TCP(sport=443, dport=40000)
    dnatted = reply.copy()
    dnatted.dst, dnatted[IP].dst = VM, "10.0.1.2"
    del dnatted[IP].chksum, dnatted[TCP].chksum
    for frame, e in ((bytes(TUNNEL / VXLAN(vni=5001) / inner), bytes(inner)), (bytes(reply), bytes(dnatted))):
        target.send("uplink", frame)
        target.expect("vm", e)
    target.send("uplink", bytes(TUNNEL / VXLAN(vni=7) / inner))  # an unknown VNI
    target.send("uplink", bytes(Ether() / IP(src="1.1.1.1", dst="203.0.113.10") / TCP(sport=80)))  # ACL
    target.expect_nothing("vm")
    assert target.counter("overlay_decap", "bad_tunnel") == bad_before + 1


def test_bad_packets_from_the_wire_are_dropped_and_counted(target):
    before = target.drops
    good = TUNNEL / VXLAN(vni=5001) / Ether(dst=VM) / IP(src="10.0.2.9", dst="10.0.1.2") / TCP(sport=443)
    raw = bytes(good)
    bad_sum = raw[:24] + bytes([raw[24] ^ 0xFF]) + raw[25:]  # outer IPv4 header checksum broken
    for frame in (raw[:30], bad_sum):  # cut inside the outer IPv4 header; then the bad checksum
        target.send("uplink", frame)
    target.expect_nothing("vm")
    after = target.drops
    assert after["malformed"] == before["malformed"] + 1
    assert after["bad_checksum"] == before["bad_checksum"] + 1


def test_tagged_frames_enter_the_tunnel_untagged(target, program):
    """802.1Q tags are local to the host side: the overlay carries the frame untagged, its
    Ethernet header taking the innermost tag's EtherType; outer lengths match the bytes."""
    inner = IP(src="10.0.1.2", dst="10.0.2.9", tos=0xB9) / TCP(sport=40000, dport=443, flags="PA") / \
        Raw(payload(200))  # DSCP 46 (EF), ECN 01 (ECT(1)): copied to the outer header
    for tags in ([7], [100, 7]):
        frame = Ether(src=VM, dst=GW)
        for vid in tags:
            frame = frame / Dot1Q(vlan=vid)
        frame = bytes(frame / inner)
        target.send("vm", frame)
        (out,) = target.received("uplink")
        assert out == vxlan_out(bytes(Ether(src=VM, dst=GW) / inner))
        pkt = Ether(out)
        assert pkt[IP].len == len(out) - 14 and pkt[UDP].len == len(out) - 34 and valid_checksums(pkt)
        assert bytes(pkt[VXLAN].payload) == bytes(Ether(src=VM, dst=GW) / inner)
