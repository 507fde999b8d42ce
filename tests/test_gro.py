"""Receive coalescing: segments of one flow merge back into the original, with scapy as the oracle."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

from p4gen.frontend import check_source, load_program
from p4gen.ir import build_ir
from p4gen.runtime.gro import Coalescer
from p4gen.runtime.pipeline import HypervisorPipeline
from p4gen.runtime.tso import Segmenter

PROG, _ = check_source("std.nf", b"")
GRO, TSO = Coalescer(PROG), Segmenter(PROG)
E = Ether(src="02:00:00:00:02:09", dst="02:00:00:00:01:02")


def data(n: int) -> bytes:
    return bytes((i * 31 + 7) & 0xFF for i in range(n))


def segments(l3, size: int, flags="PA", mss=1410) -> tuple[bytes, list[bytes]]:
    frame = bytes(E / l3 / TCP(sport=443, dport=40000, seq=5, flags=flags) / Raw(data(size)))
    return frame, TSO.segment(frame, mss, 1500, 1500 - mss - 40)


def test_segments_merge_back_into_the_original():
    for l3 in (IP(src="10.0.2.9", dst="10.0.1.2"), IPv6(src="fd00:2::9", dst="fd00:1::2")):
        size = 65495 if IP in l3 else 65475
        original, segs = segments(l3, size, mss=1390)
        assert len(segs) > 40
        merged = GRO.coalesce(segs)
        assert len(merged) == 1
        if IP in l3:
            # Only the IPv4 identification differs: the merge keeps the first segment's.
            assert Ether(merged[0])[IP].id == Ether(original)[IP].id
        assert merged[0] == original


def test_flush_on_gap_push_flag_change_and_size():
    _, segs = segments(IP(src="10.0.2.9", dst="10.0.1.2"), 14100, flags="A")
    merged = GRO.coalesce(segs[:3] + segs[4:])  # segment 3 lost: gap
    assert [len(Ether(m)[TCP].payload) for m in merged] == [3 * 1410, 14100 - 4 * 1410]
    _, pushed = segments(IP(src="10.0.2.9", dst="10.0.1.2"), 2820, flags="PA")
    _, more = segments(IP(src="10.0.2.9", dst="10.0.1.2"), 2820, flags="A")
    out = GRO.coalesce(pushed + more)
    assert len(out) == 2 and "P" in str(Ether(out[0])[TCP].flags)
    small = Coalescer(PROG, max_size=3000)
    assert len(small.coalesce(segs)) == 5  # 2 segments (2820 bytes + headers) per packet at most
    for m in GRO.coalesce(segs):
        fresh = Ether(m)
        del fresh[IP].chksum, fresh[TCP].chksum
        assert bytes(Ether(bytes(fresh))) == m


def test_non_tcp_and_other_flows_pass_in_order():
    udp = bytes(E / IP(src="10.0.2.9", dst="10.0.1.2") / UDP(dport=53) / Raw(b"q"))
    _, a = segments(IP(src="10.0.2.9", dst="10.0.1.2"), 2820, flags="A")
    _, b = segments(IP(src="10.0.2.8", dst="10.0.1.2"), 2820, flags="A")
    out = GRO.coalesce([a[0], b[0], udp, a[1], b[1]])
    assert udp in out and len(out) == 3


def test_vm_ingress_with_and_without_lro():
    prog, _ = load_program(["examples/vm_offload.nf"])
    hv = HypervisorPipeline(prog, build_ir(prog))
    original, segs = segments(IP(src="10.0.2.9", dst="10.0.1.2"), 28200, flags="PA")
    tunnelled = [bytes(Ether() / IP(src="192.168.1.2", dst="192.168.1.1") / UDP(dport=4789, chksum=0) /
                       VXLAN(vni=5001) / Raw(s)) for s in segs]
    without = hv.run_batch("vm_ingress", tunnelled, lro=False)
    assert [o.data for o in without] == segs
    (merged,) = hv.run_batch("vm_ingress", tunnelled, lro=True)
    assert merged.kind == "vm" and merged.data == original
