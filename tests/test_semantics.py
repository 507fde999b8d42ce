"""Semantics the program fuzzer (tests/progfuzz.py) found wrong or divergent, each a regression
test on the software target, the Python split model and (with the tools) BMv2, against frames
built with scapy."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw
from test_crossing import TARGETS, _program, _target

from p4gen.testing import SoftwareTarget

X1_PROGRAM = """
header h_x1 { f0: bit<16>; nt: bit<16>; }
packet { x1: h_x1; }
parser {
    override state start {
        extract(ethernet);
        transition select(ethernet.ether_type) {
            0x88b5: s_x1; 0x8100: vlan; 0x0800: ipv4; 0x86dd: ipv6; default: accept;
        }
    }
    override state vlan {
        extract(vlan.next);
        transition select(vlan.last.ether_type) {
            0x88b5: s_x1; 0x8100: vlan; 0x0800: ipv4; 0x86dd: ipv6; default: accept;
        }
    }
    state s_x1 { extract(x1); transition select(x1.nt) { 0x0800: ipv4; 0x86dd: ipv6; default: accept; } }
}
@pin(nic) nf a { action w() { ipv4.ttl = 9; } apply { w(); } }
@pin(hypervisor) nf b { counter seen; action n() { count(seen); } apply { n(); } }
pipeline pe : vm_egress { a -> b; }
"""


@pytest.mark.parametrize("kind", ["software", *TARGETS])
def test_a_header_reachable_at_two_depths_is_deparsed_where_parsed(kind, tmp_path):
    """Ethernet / 802.1Q / user header / IPv4 leaves in that order (the deparser's order agrees
    with every parse path), and without the tag too."""
    prog, g, pl, path = _program(tmp_path, X1_PROGRAM)
    target = SoftwareTarget(prog, g) if kind == "software" else _target(kind, prog, g, pl, path, tmp_path)
    try:
        for tags in ([5], []):
            head = Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe", type=0x8100 if tags else 0x88B5)
            for vid in tags:
                head = head / Dot1Q(vlan=vid, type=0x88B5)
            x1 = Raw(bytes.fromhex("12340800"))
            sent = bytes(head / x1 / IP(src="10.0.1.2", dst="10.0.2.9", ttl=64) / UDP() / Raw(b"p"))
            want = Ether(bytes(head / x1 / IP(src="10.0.1.2", dst="10.0.2.9", ttl=9) / UDP() / Raw(b"p")))
            target.send("vm", sent)
            assert target.received("uplink") == [bytes(want)], tags
        assert target.counter("b", "seen") == 2
    finally:
        target.close()


DECAP = """
@pin(nic) nf a { action dec() { vxlan_decap(); } apply { if (vxlan.isValid()) { dec(); } } }
@pin(hypervisor) nf b { counter seen; action n() { count(seen); } apply { n(); } }
pipeline pi : vm_ingress { a -> b; }
"""


@pytest.mark.parametrize("kind", ["software", *TARGETS])
def test_decap_removes_the_outer_frames_tags(kind, tmp_path):
    """A tagged VXLAN packet decapsulated is exactly the inner frame: the outer 802.1Q tag goes
    with the outer headers."""
    prog, g, pl, path = _program(tmp_path, DECAP)
    inner = Ether(src="02:00:00:00:02:09", dst="02:00:00:00:01:02") / IP(src="10.0.2.9", dst="10.0.1.2") / \
        UDP(sport=53, dport=5353) / Raw(b"answer")
    sent = Ether(dst="02:00:c0:a8:01:01") / Dot1Q(vlan=100) / IP(src="192.168.1.2", dst="192.168.1.1") / \
        UDP(sport=50000, dport=4789, chksum=0) / VXLAN(vni=5001) / inner
    target = SoftwareTarget(prog, g) if kind == "software" else _target(kind, prog, g, pl, path, tmp_path)
    try:
        target.send("uplink", bytes(sent))
        assert target.received("vm") == [bytes(inner)]
    finally:
        target.close()


PRECONDITIONS = """
@pin(nic) nf a {
    action tag() { push_vlan(9); }
    action dec() { vxlan_decap(); }
    action enc() { geneve_encap(0x020000000b01, 0x020000000b02, 192.168.8.1, 192.168.8.2, 7001); }
    table pick {
        key = { udp.dst_port: exact; }
        actions = { tag; dec; enc; }
        default_action = tag();
    }
    apply { pick.apply(); }
}
@pin(hypervisor) nf b { counter seen; action n() { count(seen); } apply { n(); } }
pipeline pe : vm_egress { a -> b; }
entries a.pick { (1) => dec(); (4789) => enc(); }
"""


@pytest.mark.parametrize("kind", ["software", *TARGETS])
def test_primitive_preconditions_drop_and_count(kind, tmp_path):
    """A third 802.1Q tag, a decap of a packet without that tunnel, an encap of a packet that has
    one: dropped and counted by reason (never a corrupt frame), the same on every target."""
    prog, g, pl, path = _program(tmp_path, PRECONDITIONS)
    vm = Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe")
    ip = IP(src="10.0.1.2", dst="10.0.2.9")
    two_tags = vm / Dot1Q(vlan=1) / Dot1Q(vlan=2) / ip / UDP(dport=7) / Raw(b"x")
    one_tag = vm / Dot1Q(vlan=1) / ip / UDP(dport=7) / Raw(b"x")
    plain_decap = vm / ip / UDP(dport=1) / Raw(b"x")
    tunnelled = vm / ip / UDP(sport=2, dport=4789) / VXLAN(vni=1) / (vm / ip / UDP() / Raw(b"i"))
    target = SoftwareTarget(prog, g) if kind == "software" else _target(kind, prog, g, pl, path, tmp_path)
    try:
        before = target.drops
        for frame in (two_tags, plain_decap, tunnelled):
            target.send("vm", bytes(frame))
        target.expect_nothing("uplink")
        after = target.drops
        for reason in ("vlan_overflow", "no_tunnel", "nested_tunnel"):
            assert after[reason] == before[reason] + 1, reason
        target.send("vm", bytes(one_tag))  # the second tag still fits
        want = Ether(bytes(vm / Dot1Q(vlan=9) / Dot1Q(vlan=1) / ip / UDP(dport=7) / Raw(b"x")))
        assert target.received("uplink") == [bytes(want)]
        assert target.counter("b", "seen") == 1
    finally:
        target.close()


TWO_INGRESS = """
nf a { action m() { ipv4.ttl = 11; } apply { m(); } }
nf b { action m() { ipv4.ttl = 22; } apply { m(); } }
pipeline first : vm_ingress { a; }
pipeline second : vm_ingress { b; }
flow to_first { match ipv4.dst == 10.0.1.2; pipeline first; }
flow to_second { match ipv4.dst == 10.0.1.3; pipeline second; }
"""


@pytest.mark.parametrize("kind", ["software", *TARGETS])
def test_two_pipelines_of_one_direction_are_chosen_by_flow(kind, tmp_path):
    """Packets from the wire enter the pipeline whose flow matches (as the NIC's classifier
    does), on every target; a packet no flow matches is dropped as no_flow."""
    prog, g, pl, path = _program(tmp_path, TWO_INGRESS)
    target = SoftwareTarget(prog, g) if kind == "software" else _target(kind, prog, g, pl, path, tmp_path)
    try:
        for dst, ttl in (("10.0.1.2", 11), ("10.0.1.3", 22)):
            sent = Ether() / IP(src="192.0.2.1", dst=dst, ttl=64) / UDP() / Raw(b"x")
            want = sent.copy()
            want[IP].ttl = ttl
            del want[IP].chksum
            target.send("uplink", bytes(sent))
            assert target.received("vm") == [bytes(Ether(bytes(want)))], dst
        before = target.drops["no_flow"]
        target.send("uplink", bytes(Ether() / IP(dst="10.0.1.9") / UDP()))
        target.expect_nothing("vm")
        assert target.drops["no_flow"] == before + 1
    finally:
        target.close()


UNMOVABLE = X1_PROGRAM.split("@pin(nic)")[0] + """
@pin(nic) nf a { action e() { vxlan_encap(0x020000000a01, 0x020000000a02, 192.168.7.1, 192.168.7.2, 5001); }
                 apply { e(); } }
@pin(hypervisor) nf b { counter seen; action n() { count(seen); } apply { n(); } }
pipeline pe : vm_egress { a -> b; }
"""


@pytest.mark.parametrize("kind", ["software", *TARGETS])
def test_a_tunnel_does_not_carry_a_programs_own_header(kind, tmp_path):
    """Encapsulating a packet that holds a header of the program's own (which has no inner
    name) drops it as unmovable_header; a packet without one is encapsulated."""
    prog, g, pl, path = _program(tmp_path, UNMOVABLE)
    eth = Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe")
    plain = eth / IP(src="10.0.1.2", dst="10.0.2.9") / UDP() / Raw(b"p")
    own = Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe", type=0x88B5) / Raw(bytes.fromhex("12340800")) / \
        IP(src="10.0.1.2", dst="10.0.2.9") / UDP() / Raw(b"p")
    target = SoftwareTarget(prog, g) if kind == "software" else _target(kind, prog, g, pl, path, tmp_path)
    try:
        before = target.drops["unmovable_header"]
        target.send("vm", bytes(own))
        target.expect_nothing("uplink")
        assert target.drops["unmovable_header"] == before + 1
        target.send("vm", bytes(plain))
        (out,) = target.received("uplink")
        assert Ether(out)[VXLAN].vni == 5001 and bytes(Ether(out)[VXLAN].payload) == bytes(plain)
    finally:
        target.close()


def _crc16_arc(data: bytes) -> int:
    """CRC-16/ARC (BMv2's crc16: polynomial 0x8005 reflected, initial value 0), bit by bit."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


HASH_PROGRAM = """
@pin(nic) nf h { apply { ipv4.identification = hash(vlan[0].vid, ipv4.protocol, vlan[0].pcp); } }
@pin(hypervisor) nf b { counter seen; action n() { count(seen); } apply { n(); } }
pipeline pe : vm_egress { h -> b; }
"""


@pytest.mark.parametrize("kind", ["software", *TARGETS])
def test_hash_of_fields_not_whole_bytes(kind, tmp_path):
    """hash(a, b, …) is over the fields' bits back to back (12 + 8 + 3 bits here), zero bits to a
    whole byte at the end, as v1model's hash over a field list runs on BMv2; the hypervisor padded
    each field to bytes, so the NIC and the hypervisor hashed the same packet differently (found
    by the program fuzzer on BMv2)."""
    prog, g, pl, path = _program(tmp_path, HASH_PROGRAM)
    target = SoftwareTarget(prog, g) if kind == "software" else _target(kind, prog, g, pl, path, tmp_path)
    try:
        for vid, pcp in ((5, 0), (0xABC, 6), (0xFFF, 7)):
            head = Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe") / Dot1Q(vlan=vid, prio=pcp)
            sent = head / IP(src="10.0.1.2", dst="10.0.2.9", id=1) / UDP(sport=1, dport=2) / Raw(b"p")
            bits = (vid << 11) | (17 << 3) | pcp  # 23 bits, then one zero bit
            want = head / IP(src="10.0.1.2", dst="10.0.2.9", id=_crc16_arc((bits << 1).to_bytes(3, "big"))) \
                / UDP(sport=1, dport=2) / Raw(b"p")
            target.send("vm", bytes(sent))
            assert target.received("uplink") == [bytes(Ether(bytes(want)))], (vid, pcp)
    finally:
        target.close()


OUTER_UDP_REWRITE = """
@pin(nic) nf r { action p() { udp.src_port = 4242; } apply { if (vxlan.isValid()) { p(); } } }
pipeline pi : vm_ingress { r; }
"""


@pytest.mark.parametrize("kind", ["software", *TARGETS])
def test_outer_udp_checksum_covers_the_tunnel_and_inner_frame(kind, tmp_path):
    """A port rewrite of a VXLAN packet with an outer UDP checksum: the recomputed checksum
    covers everything after the UDP header, VXLAN and the inner frame included. On BMv2 the
    checksum's payload is only what the parser left unparsed, so the parsed VXLAN and inner
    headers must be in its field list (found by the program fuzzer on BMv2)."""
    prog, g, pl, path = _program(tmp_path, OUTER_UDP_REWRITE)
    target = SoftwareTarget(prog, g) if kind == "software" else _target(kind, prog, g, pl, path, tmp_path)
    inner = Ether(src="02:00:00:00:0b:01", dst="02:00:00:00:01:02") / IP(src="10.0.2.9", dst="10.0.1.2") \
        / UDP(sport=1, dport=2) / Raw(b"inner payload")
    try:
        outer = Ether(src="02:00:00:00:00:fe", dst="02:00:00:00:00:01") / IP(src="192.168.1.2", dst="192.168.1.1")
        sent = Ether(bytes(outer / UDP(sport=50000, dport=4789) / VXLAN(vni=5001) / inner))
        assert sent[UDP].chksum != 0  # scapy computed it: a checksum the rewrite must keep right
        want = outer / UDP(sport=4242, dport=4789) / VXLAN(vni=5001) / inner
        target.send("uplink", bytes(sent))
        assert target.received("vm") == [bytes(Ether(bytes(want)))]
    finally:
        target.close()


WRITE_TO_MISSING_TCP = """
@pin(nic) nf w { action p() { tcp.src_port = 5; } apply { p(); } }
pipeline pi : vm_ingress { w; }
"""


@pytest.mark.parametrize("kind", ["software", *TARGETS])
def test_a_write_to_a_missing_header_leaves_the_checksums_alone(kind, tmp_path):
    """tcp.src_port = 5 on a UDP packet changes nothing (v1model ignores writes to an invalid
    header): its UDP checksum, wrong on purpose here, stays as it was. The P4 marked the checksums
    for recomputation on every such write, so BMv2 rewrote it (found by the program fuzzer)."""
    prog, g, pl, path = _program(tmp_path, WRITE_TO_MISSING_TCP)
    target = SoftwareTarget(prog, g) if kind == "software" else _target(kind, prog, g, pl, path, tmp_path)
    try:
        sent = bytes(Ether(src="02:00:00:00:00:fe", dst="02:00:00:00:01:02") / IP(src="10.0.2.9", dst="10.0.1.2")
                     / UDP(sport=1, dport=2, chksum=0x1234) / Raw(b"payload"))
        target.send("uplink", sent)
        assert target.received("vm") == [sent]
    finally:
        target.close()
