"""Hypervisor pipeline speed, each against a baseline measured in the same run.

1. packets/s of an ACL → per-flow counter → VXLAN encapsulation chain (vm_offload's
   vm_egress stages after segmentation), for 64-byte and 1500-byte packets, against a
   straightforward scapy implementation of the same chain (parse, match the ACL rules,
   count, build the outer headers, let scapy compute lengths and checksums);
2. segmentation + encapsulation of 64 KiB super-packets in Gbit/s, against a plain
   memory copy of the same bytes.

Goals from the issue: ≥100× scapy and ≥1 Mpps on one core; ≥25% of the copy.

    python benchmarks/pipeline.py [--packets N]
"""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw
from timing import median_time

from p4gen.frontend import load_program
from p4gen.ir import build_ir
from p4gen.runtime.pipeline import HypervisorPipeline

ROOT = Path(__file__).resolve().parent.parent
OVERLAY = ipaddress.ip_network("10.0.2.0/24")


def frame(size: int) -> bytes:
    base = Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe") / IP(src="10.0.1.2", dst="10.0.2.9") / \
        TCP(sport=40000, dport=443, flags="A")
    return bytes(base / Raw(bytes(max(0, size - len(base)))))


def scapy_chain(raw: bytes, counters: dict) -> bytes | None:
    pkt = Ether(raw)
    ip, tcp = pkt[IP], pkt[TCP]
    if not (ipaddress.ip_address(ip.dst) in OVERLAY and tcp.dport in (80, 443)):
        return None
    key = (ip.src, ip.dst, ip.proto, tcp.sport, tcp.dport)
    counters[key] = counters.get(key, 0) + 1
    outer = (Ether(src="02:00:c0:a8:01:01", dst="02:00:c0:a8:01:02") /
             IP(src="192.168.1.1", dst="192.168.1.2", ttl=64, flags="DF") /
             UDP(sport=0xC000 | (hash(key) & 0x3FFF), dport=4789, chksum=0) / VXLAN(vni=5001) / pkt)
    return bytes(outer)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=2000)
    args = ap.parse_args()
    prog, _ = load_program([str(ROOT / "examples" / "vm_offload.nf")])
    hv = HypervisorPipeline(prog, build_ir(prog))
    n = args.packets
    print(f"{'chain (ACL → counter → VXLAN)':<34} {'p4gen':>12} {'scapy':>12} {'ratio':>8}")
    # 1500-byte frames exceed the overlay path's MSS and are segmented first; 1464 bytes is
    # the largest frame the chain forwards as one packet.
    for size in (64, 1464, 1500):
        f = frame(size)
        t_ours = median_time(lambda f=f: [hv.run("vm_egress", f) for _ in range(n)], 3)[0]
        counters: dict = {}
        m = max(1, n // 10)
        t_scapy = median_time(lambda f=f, c=counters, m=m: [scapy_chain(f, c) for _ in range(m)], 3)[0] * n / m
        print(f"{f'{size}-byte packets':<34} {n / t_ours:>8.0f} pps {n / t_scapy:>8.0f} pps {t_scapy / t_ours:>7.1f}x")
    big = frame(65549)
    bits = len(big) * 8
    t_seg = median_time(lambda: hv.run("vm_egress", big), 5)[0]
    def copy_once() -> list[bytes]:
        b = bytes(bytearray(big))
        return [b[i:i + 1464] for i in range(0, len(b), 1464)]

    t_copy = median_time(copy_once, 5)[0]
    print(f"segmentation + encapsulation, 64 KiB: {bits / t_seg / 1e9:.2f} Gbit/s; memory copy "
          f"{bits / t_copy / 1e9:.2f} Gbit/s; ours = {t_copy / t_seg:.1%} of the copy")


if __name__ == "__main__":
    main()
