"""Trains: a super-packet runs the stages after segmentation once and is cut at the end.

The reference path (cut first, every segment through every later stage) and the
train path must agree packet for packet and counter for counter; the cut of an
encapsulated super-packet is checked field by field with scapy; and the pass
that allows trains refuses programs whose later stages look at what differs
between segments.
"""

from __future__ import annotations

import pytest
from conftest import GATEWAY_MAC, TCP_TIMESTAMPS, VM1_MAC
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN

from p4gen.frontend import load_program
from p4gen.ir import build_ir
from p4gen.ir.lower import stage_trees
from p4gen.midend.trains import train_problem
from p4gen.place import load_profile, place
from p4gen.runtime.pcap import read_pcap
from p4gen.runtime.pipeline import HypervisorPipeline
from p4gen.runtime.virtio import F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6
from p4gen.testing import ModelTarget

VM1, GW, TS = VM1_MAC, GATEWAY_MAC, TCP_TIMESTAMPS


def _program(tmp_path, text: str):
    path = tmp_path / "p.nf"
    path.write_text(text)
    prog, sink = load_program([str(path)])
    assert prog is not None, sink.render()
    return prog, build_ir(prog)


def _problem(prog, g) -> str | None:
    (tree,) = stage_trees(g).values()
    (seg,) = [s for s in tree.stages() if s.kind == "segment"]
    return train_problem(prog, tree, seg)


SEG = "segment tso { mss = auto; max_mss = 1460; underlay_mtu = 1500; }\n"


@pytest.mark.parametrize("body,reason", [
    ("nf a { apply { forward(1); } }", None),
    ("nf a { apply { if (tcp.flags == 2) { drop(); } } }", "decides on tcp.flags"),
    ("nf a { apply { ipv4.identification = 5; } }", "writes ipv4.identification"),
    ("nf a { apply { tcp.window = ipv4.total_len; } }", "reads ipv4.total_len"),
    ("nf a { action s(x: bit<32>) { } table t { key = { tcp.seq_no: exact; } actions = { s; } "
     "default_action = s(0); } apply { t.apply(); } }", "matches on tcp.seq_no"),
    ("nf a { apply { vxlan_decap(); } }", "decapsulates"),
], ids=["forward", "branch-on-flags", "write-id", "read-length", "key-on-seq", "decap"])
def test_train_pass_refuses_what_looks_at_segments(tmp_path, body, reason):
    prog, g = _program(tmp_path, SEG + body + "\npipeline p : vm_egress { tso -> a; }\n")
    problem = _problem(prog, g)
    assert (problem is None) if reason is None else (reason in (problem or "")), problem


def _snapshot(hv: HypervisorPipeline, outs) -> tuple:
    tables = {n: [(e.packets, e.bytes) for e in t.entries] for n, t in hv.tables.items()}
    return ([(o.kind, o.port, o.data) for o in outs], {k: [list(c) for c in v] for k, v in hv.counters.items()},
            dict(hv.drops), dict(hv.stage_packets), tables)


def _super(dst: str, n: int, options=(), v6: bool = False, dport: int = 80) -> bytes:
    payload = bytes(range(256)) * (n // 256 + 1)
    ip = IPv6(src="fd00:1::2", dst=dst) if v6 else IP(src="10.0.1.2", dst=dst, flags="DF", id=100)
    return bytes(Ether(src=VM1, dst=GW) / ip / TCP(sport=40000, dport=dport, flags="PA", seq=7, options=list(options))
                 / payload[:n])


def test_trains_equal_the_reference_path(scenario):
    """vm_offload's egress traffic plus super-packets on every path: the same packets, counters
    (indirect and per entry), drops and per-stage packet counts, trains on or off."""
    prog, g = scenario
    frames = list(read_pcap("examples/traffic/vm1_egress.pcap"))
    frames += [_super("10.0.2.2", 30000), _super("10.0.2.2", 30000, TS), _super("8.8.8.8", 20000, dport=443),
               _super("fd00:2::5", 25000, v6=True), _super("10.9.9.9", 20000)]  # (the last: dropped by the ACL)
    snaps = []
    for trains in (True, False):
        hv = HypervisorPipeline(prog, g)
        hv.trains = trains
        snaps.append(_snapshot(hv, hv.run_batch("vm_egress", frames)))
    assert snaps[0] == snaps[1]
    alone = HypervisorPipeline(prog, g)
    alone.run_batch("vm_egress", frames[:-1])
    # the refused train counts as its 14 segments (no encapsulation ahead of a drop: MSS 1460)
    assert snaps[0][2]["acl_out.deny"] - alone.drops["acl_out.deny"] == 14


def test_trains_with_vm_offloads_equal_the_reference_path(scenario):
    prog, g = scenario
    cases = [(_super("10.0.2.2", 40000, TS), GSO_TCPV4, 1448), (_super("fd00:2::5", 9000, v6=True), GSO_TCPV6, 1000)]
    snaps = []
    for trains in (True, False):
        hv = HypervisorPipeline(prog, g)
        hv.trains = trains
        outs = []
        for frame, kind, size in cases:
            from p4gen.runtime.virtio import VnetHdr

            outs += hv.run("vm_egress", frame, vnet=VnetHdr(F_NEEDS_CSUM, kind, 0, size, 34 if kind == GSO_TCPV4
                                                            else 54, 16))
        snaps.append(_snapshot(hv, outs))
    assert snaps[0] == snaps[1]


def test_trains_cross_to_the_nic_as_segments(scenario):
    """Split: the train reaches the hand-over to the NIC and crosses as its segments."""
    prog, g = scenario
    pl = place(g, prog, load_profile("targets/bmv2-smartnic.toml"))
    got = []
    for trains in (True, False):
        t = ModelTarget(prog, g, pl)
        t.hv.trains = trains
        for f in (_super("10.0.2.2", 30000, TS), _super("8.8.8.8", 9000, dport=443)):
            t.send("vm", f)
        got.append((t.received("uplink"), t.counter("acl_out", "acl_out_drops")))
    assert got[0] == got[1] and len(got[0][0]) > 20


def test_replicate_sets_every_outer_length_and_checksum(scenario):
    """An encapsulated super-packet with an outer UDP checksum, cut at the end: each segment
    as scapy builds it from scratch (outer IPv4 length/checksum, UDP length/checksum, inner
    IPv4, TCP)."""
    prog, _ = scenario
    hv = HypervisorPipeline(prog, build_ir(prog))
    payload = bytes(range(256)) * 20
    inner = Ether(src=VM1, dst=GW) / IP(src="10.0.1.2", dst="10.0.2.2", id=9) / \
        TCP(sport=1, dport=80, flags="PA", seq=100, options=TS) / payload
    frame = bytes(Ether(src="02:00:c0:a8:01:01", dst="02:00:c0:a8:01:02") / IP(src="192.168.1.1", dst="192.168.1.2")
                  / UDP(sport=50000, dport=4789) / VXLAN(vni=5001) / inner)
    assert Ether(frame)[UDP].chksum != 0
    segs = hv.segmenter.replicate(frame, 1000)
    assert len(segs) == 6
    for i, seg in enumerate(segs):
        p = Ether(seg)
        fresh = p.copy()
        for layer in (IP, UDP):
            del fresh[layer].chksum, fresh[layer].len
        inner_p = fresh[VXLAN].payload
        del inner_p[IP].chksum, inner_p[IP].len, inner_p[TCP].chksum
        assert bytes(p) == bytes(Ether(bytes(fresh))), i
        assert p[VXLAN].payload[TCP].seq == 100 + 1000 * i and p[VXLAN].payload[IP].id == 9 + i
    assert b"".join(bytes(Ether(s)[VXLAN].payload[TCP].payload) for s in segs) == payload


def test_kernel_gso_header_only_for_outermost_tcp(scenario):
    prog, g = scenario
    hv = HypervisorPipeline(prog, g)
    plain = _super("8.8.8.8", 5000, TS, dport=443)
    v = hv.segmenter.gso_header(plain, 1398)
    assert (v.flags, v.gso_type, v.gso_size, v.csum_start, v.csum_offset, v.hdr_len) == \
        (F_NEEDS_CSUM, GSO_TCPV4, 1398, 34, 16, 66)
    encapsulated = bytes(Ether() / IP() / UDP(dport=4789) / VXLAN(vni=1) / Ether(plain))
    assert hv.segmenter.gso_header(encapsulated, 1398) is None


def test_kernel_gso_leaves_plain_trains_whole(scenario):
    """With kernel_gso (a runner whose wire is a Linux link), the SNAT path's train leaves as
    one GSO frame; the overlay path's is cut in Python (the kernel cannot cut it)."""
    prog, g = scenario
    hv = HypervisorPipeline(prog, g)
    hv.kernel_gso = True
    (out,) = hv.run("vm_egress", _super("8.8.8.8", 20000, TS, dport=443))
    assert out.vnet is not None and out.vnet.gso_size == 1448  # 1500 − 20 − 32: no tunnel on this path
    p = Ether(out.data)
    assert p[IP].src == "203.0.113.10" and len(out.data) > 20000
    # NEEDS_CSUM: the field holds the folded pseudo-header sum over the whole TCP length (scapy's
    # checksum of the pseudo-header, uncomplemented), for the kernel to finish per segment.
    import socket
    import struct

    from scapy.utils import checksum
    pseudo = socket.inet_aton(p[IP].src) + socket.inet_aton(p[IP].dst) + struct.pack("!BBH", 0, 6, len(p[TCP]))
    assert p[TCP].chksum == checksum(pseudo) ^ 0xFFFF
    outs = hv.run("vm_egress", _super("10.0.2.2", 20000, TS))
    assert len(outs) == 15 and all(o.vnet is None for o in outs)
