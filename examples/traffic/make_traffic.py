"""Sample captures of the reference scenario (docs/scenario.md), for `p4gen run`.

    python examples/traffic/make_traffic.py        (needs scapy: pip install -e '.[test]')

writes `vm1_egress.pcap` (what vm1 sends) and `vm1_ingress.pcap` (what arrives
from the wire for vm1) beside this script. The files are committed so that the
README's main job runs without scapy; tests/test_traffic.py regenerates them and
checks they are byte-identical, and checks what the scenario does to them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet, Raw

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
from p4gen.runtime.pcap import write_pcap  # noqa: E402

VM_MAC, GW_MAC = "02:00:00:00:01:02", "02:00:00:00:00:fe"
LOCAL_VTEP_MAC, REMOTE_VTEP_MAC = "02:00:c0:a8:01:01", "02:00:c0:a8:01:02"
VM4, VM6, PUBLIC = "10.0.1.2", "fd00:1::2", "203.0.113.10"


def payload(n: int, seed: int) -> Raw:
    return Raw(bytes((i * 7 + seed) & 0xFF for i in range(n)))


def egress() -> list[Packet]:
    """vm1 → wire: TSO super-packets (overlay v4, v4 with timestamps, v6; SNAT path), DNS, ACL drops."""
    eth = Ether(src=VM_MAC, dst=GW_MAC)
    ts = [("NOP", None), ("NOP", None), ("Timestamp", (1000, 2000))]
    return [
        eth / IP(src=VM4, dst="10.0.2.9", id=100) / TCP(sport=40000, dport=443, seq=1, flags="PA") / payload(65000, 1),
        eth / IP(src=VM4, dst="10.0.2.9", id=200) / TCP(sport=40001, dport=80, seq=1, flags="A", options=ts)
        / payload(20000, 2),
        eth / IPv6(src=VM6, dst="fd00:2::9") / TCP(sport=40002, dport=443, seq=1, flags="PA") / payload(30000, 3),
        eth / IP(src=VM4, dst="198.51.100.7", id=300) / TCP(sport=40003, dport=443, seq=1, flags="PA")
        / payload(10000, 4),
        eth / IP(src=VM4, dst="10.0.2.53") / UDP(sport=5353, dport=53) / payload(40, 5),
        eth / IP(src=VM4, dst="10.0.2.9") / TCP(sport=40004, dport=22, flags="S"),  # ACL: dropped
        eth / IP(src=VM4, dst="198.51.100.7") / TCP(sport=40005, dport=80, flags="S"),  # ACL: dropped
    ]


def ingress() -> list[Packet]:
    """wire → vm1: VXLAN from the remote VTEP (in order, for GRO), a SNAT reply, drops."""
    outer = Ether(src=REMOTE_VTEP_MAC, dst=LOCAL_VTEP_MAC) / IP(src="192.168.1.2", dst="192.168.1.1")
    inner_eth = Ether(src="02:00:00:00:02:09", dst=VM_MAC)
    pkts: list[Packet] = []
    seq = 1
    for i in range(8):
        seg = payload(1410, 10 + i)
        flags = "PA" if i == 7 else "A"
        pkts.append(outer / UDP(sport=49152 + i, dport=4789, chksum=0) / VXLAN(vni=5001) / inner_eth
                    / IP(src="10.0.2.9", dst=VM4, id=500 + i) / TCP(sport=443, dport=40000, seq=seq, flags=flags) / seg)
        seq += len(seg)
    pkts += [
        Ether(src=GW_MAC, dst=LOCAL_VTEP_MAC) / IP(src="198.51.100.7", dst=PUBLIC) / TCP(sport=443, dport=40003,
                                                                                          flags="SA"),
        outer / UDP(sport=49999, dport=4789, chksum=0) / VXLAN(vni=7777) / inner_eth
        / IP(src="10.0.2.9", dst=VM4) / TCP(sport=443, dport=40000, flags="A"),  # unknown VNI: dropped
        outer / UDP(sport=49998, dport=4789, chksum=0) / VXLAN(vni=5001) / inner_eth
        / IP(src="10.0.2.9", dst=VM4) / TCP(sport=22, dport=40000, flags="A"),  # ACL: dropped
    ]
    return pkts


def build(directory: Path = HERE) -> dict[str, Path]:
    """Write both captures into `directory`; returns their paths by name."""
    paths = {"vm1_egress": directory / "vm1_egress.pcap", "vm1_ingress": directory / "vm1_ingress.pcap"}
    write_pcap(str(paths["vm1_egress"]), (bytes(p) for p in egress()))
    write_pcap(str(paths["vm1_ingress"]), (bytes(p) for p in ingress()))
    return paths


if __name__ == "__main__":
    for name, path in build().items():
        print(f"{name}: {path} ({path.stat().st_size} bytes)")
