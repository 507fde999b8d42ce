"""The hypervisor's parser and deparser: P4 semantics, checked against scapy-built packets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

from p4gen.frontend import check_source
from p4gen.frontend import program as P
from p4gen.runtime.packet import BadChecksum, Malformed, PacketParser, crc16

PROG, _ = check_source("std.nf", b"")
PARSER = PacketParser(PROG)
E = Ether(src="02:00:00:00:01:02", dst="02:00:c0:a8:01:01")

PACKETS = {
    "tcp4": E / IP(src="10.0.1.2", dst="10.0.2.9") / TCP(sport=1234, dport=80) / Raw(b"x" * 33),
    "udp4_vlan": E / Dot1Q(vlan=7) / IP(src="10.0.1.2", dst="8.8.8.8") / UDP(sport=5, dport=53) / Raw(b"q"),
    "qinq": E / Dot1Q(vlan=7) / Dot1Q(vlan=8) / IP() / ICMP(),
    "tcp6": E / IPv6(src="fd00:1::2", dst="fd00:2::9") / TCP(dport=443, options=[("MSS", 1460)]) / Raw(b"y" * 7),
    "ip_options": E / IP(options=b"\x94\x04\x00\x00") / UDP() / Raw(b"z"),
    "vxlan": (E / IP(src="192.168.1.2", dst="192.168.1.1") / UDP(sport=49152, dport=4789, chksum=0) /
              VXLAN(vni=5001) / Ether() / IP(src="10.0.2.9", dst="10.0.1.2") / TCP(sport=80) / Raw(b"w")),
    "arp": E / ARP(),
    "fragment": E / IP(frag=10, proto=6) / Raw(b"not a tcp header"),
}


@pytest.mark.parametrize("name", PACKETS)
def test_parse_then_deparse_gives_the_same_bytes(name):
    raw = bytes(PACKETS[name])
    pkt = PARSER.parse(raw)
    assert PARSER.deparse(pkt) == raw


def test_parsed_fields_and_metadata():
    pkt = PARSER.parse(bytes(PACKETS["vxlan"]))
    assert pkt.valid("ipv4") and pkt.valid("udp") and pkt.valid("vxlan") and pkt.valid("inner_tcp")
    assert not pkt.valid("tcp") and not pkt.valid("ipv6")
    assert PARSER.get(pkt, P.FieldRef("vxlan", "vni", 24)) == 5001
    assert PARSER.get(pkt, P.FieldRef("inner_ipv4", "src", 32)) == 0x0A000209
    # l4 ports are the innermost TCP/UDP header's
    assert pkt.meta["l4_src"] == 80 and pkt.meta["l4_dst"] == 80
    qinq = PARSER.parse(bytes(PACKETS["qinq"]))
    assert [PARSER.get(qinq, P.FieldRef("vlan", "vid", 12, i)) for i in (0, 1)] == [7, 8]
    frag = PARSER.parse(bytes(PACKETS["fragment"]))
    assert frag.valid("ipv4") and not frag.valid("tcp")  # no L4 header in a non-first fragment


def test_rewrite_then_deparse_has_valid_checksums():
    pkt = PARSER.parse(bytes(PACKETS["tcp4"]))
    PARSER.set(pkt, P.FieldRef("ipv4", "src", 32), 0xCB00710A)  # SNAT to 203.0.113.10
    PARSER.set(pkt, P.FieldRef("ipv4", "ttl", 8), 63)
    out = Ether(PARSER.deparse(pkt))
    assert out[IP].src == "203.0.113.10" and out[IP].ttl == 63
    fresh = out.copy()
    del fresh[IP].chksum, fresh[TCP].chksum
    fresh = Ether(bytes(fresh))
    assert out[IP].chksum == fresh[IP].chksum and out[TCP].chksum == fresh[TCP].chksum


def test_udp_checksum_zero_stays_zero():
    raw = bytes(E / IP() / UDP(chksum=0) / Raw(b"abc"))
    pkt = PARSER.parse(raw)
    PARSER.set(pkt, P.FieldRef("ipv4", "dst", 32), 1)
    assert Ether(PARSER.deparse(pkt))[UDP].chksum == 0


def test_bad_ipv4_checksum_and_malformed_packets():
    with pytest.raises(BadChecksum):
        PARSER.parse(bytes(E / IP(chksum=0x1234) / UDP()))
    with pytest.raises(Malformed):
        PARSER.parse(bytes(E / IP(ihl=4) / UDP()))  # ihl < 5: negative options length
    raw = bytes(PACKETS["vxlan"])
    for cut in range(len(raw)):
        try:
            PARSER.parse(raw[:cut])
        except Malformed:
            pass


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120))
def test_random_frames_parse_or_are_malformed(data):
    try:
        pkt = PARSER.parse(data)
    except Malformed:
        return
    assert PARSER.deparse(pkt) == data  # nothing rewritten: deparse is the identity


def test_crc16_is_bmv2s():
    assert crc16(b"123456789") == 0xBB3D  # CRC-16/ARC check value


def test_generated_field_reads_equal_the_layout_get():
    """FieldLayout.source (the generated parser and readers) against FieldLayout.get, for every
    field of every std header, on patterned bytes where each field has a distinct value."""
    for lay in PARSER.layouts.values():
        buf = bytearray((i * 37 + 11) & 0xFF for i in range(lay.size))
        for fl in lay.fields.values():
            assert eval(fl.source("b"), {"b": buf}) == fl.get(buf), (lay.name, fl.name)  # noqa: S307
            other = bytearray(~x & 0xFF for x in buf)
            assert eval(fl.source("b"), {"b": other}) == fl.get(other), (lay.name, fl.name)  # noqa: S307
    ipv4 = PARSER.inst_layout["ipv4"]
    raw = bytes(IP(ihl=5, tos=0xB8, ttl=7, src="10.0.1.2"))
    assert [eval(ipv4[f].source("b"), {"b": raw}) for f in ("ihl", "dscp", "ttl", "src")] == [5, 0x2E, 7, 0x0A000102]


def test_field_set_source_matches_set():
    """FieldLayout.set_source (the generated encapsulation filler) against FieldLayout.set, for
    every field of every header, on random bytes, with values wider than the field."""
    import random

    from p4gen.runtime.layout import compile_layouts

    rng = random.Random(7)
    for lay in compile_layouts(PARSER.prog).values():
        for fl in lay.fields.values():
            for _ in range(4):
                buf = bytearray(rng.randbytes(lay.size))
                value = rng.getrandbits(fl.width + 3)
                want = bytearray(buf)
                fl.set(want, value)
                exec(fl.set_source("b", "v"), {"b": buf, "v": value})  # noqa: S102
                assert buf == want, (lay.name, fl.name)
