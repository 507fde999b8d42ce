"""`p4gen run` of a large capture of the scenario's vm1 egress traffic, whole process, flow cache on and off.

The capture: N packets (default 1,000,000) of 2,000 flows with Zipf popularity
(s = 1.1): TCP to the overlay (ports 80/443) and to the Internet (443), DNS;
sizes from 64 to 1,464 bytes; one packet in 500 a TSO super-packet (8-64 KiB).
Flows are built once with scapy; each packet patches its IP ID, TCP sequence
number and checksums into its flow's template.

    python benchmarks/run_capture.py [--packets N] [--reference-packets M]

The reference path (--no-flow-cache) runs on the first M packets (default 100,000),
and its time is given per packet beside the cached run's.
"""

from __future__ import annotations

import argparse
import random
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from p4gen.runtime.checksum import checksum
from p4gen.runtime.pcap import write_pcap

ROOT = Path(__file__).resolve().parent.parent
VM, GW = "02:00:00:00:01:02", "02:00:00:00:00:fe"


def templates(n_flows: int, rng: random.Random) -> list[tuple[bytes, str]]:
    out = []
    for i in range(n_flows):
        kind = rng.random()
        if kind < 0.6:
            ip, l4 = IP(src="10.0.1.2", dst=f"10.0.2.{1 + i % 250}"), TCP(sport=20000 + i, dport=rng.choice((80, 443)),
                                                                            flags="A")
        elif kind < 0.9:
            ip, l4 = IP(src="10.0.1.2", dst=f"8.8.{i // 250}.{i % 250}"), TCP(sport=20000 + i, dport=443, flags="A")
        else:
            ip, l4 = IP(src="10.0.1.2", dst="8.8.8.8"), UDP(sport=20000 + i, dport=53)
        out.append((bytes(Ether(src=VM, dst=GW) / ip / l4), "tcp" if isinstance(l4, TCP) else "udp"))
    return out


def packet(tmpl: bytes, kind: str, size: int, ident: int, seq: int, payload: bytes) -> bytes:
    hdr = bytearray(tmpl)
    body = payload[:max(0, size - len(hdr))]
    total = len(hdr) - 14 + len(body)
    struct.pack_into("!HH", hdr, 16, total, ident & 0xFFFF)
    hdr[24:26] = b"\0\0"
    hdr[24:26] = checksum(bytes(hdr[14:34])).to_bytes(2, "big")
    if kind == "tcp":
        struct.pack_into("!I", hdr, 38, seq & 0xFFFFFFFF)
        at = 50
    else:
        struct.pack_into("!H", hdr, 38, len(hdr) - 34 + len(body))
        at = 40
    hdr[at:at + 2] = b"\0\0"
    pseudo = bytes(hdr[26:34]) + struct.pack("!BBH", 0, 6 if kind == "tcp" else 17, total - 20)
    hdr[at:at + 2] = checksum(pseudo, bytes(hdr[34:]), body).to_bytes(2, "big")
    return bytes(hdr) + body


def make(path: str, n: int, seed: int = 1) -> float:
    rng = random.Random(seed)
    flows = templates(2000, rng)
    weights = [1 / (k + 1) ** 1.1 for k in range(len(flows))]
    picks = rng.choices(range(len(flows)), weights=weights, k=n)
    payload = bytes(range(256)) * 257
    frames = []
    seqs = [0] * len(flows)
    for i, f in enumerate(picks):
        tmpl, kind = flows[f]
        size = rng.choice((64, 128, 576, 1464)) if kind == "tcp" else 90
        if kind == "tcp" and i % 500 == 0:
            size = rng.randint(8000, 65000)
        frames.append(packet(tmpl, kind, size, i, seqs[f], payload))
        seqs[f] += max(0, size - len(tmpl))
    write_pcap(path, frames)
    return sum(len(x) for x in frames) / n


def run(cap: str, out: str, extra: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "p4gen", "run", str(ROOT / "examples/vm_offload.nf"), "--pipeline",
                           "vm_egress", "--in", cap, "--out", out, *extra], capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, proc.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--reference-packets", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        cap, small = f"{d}/vm1.pcap", f"{d}/vm1-small.pcap"
        t0 = time.perf_counter()
        mean = make(cap, args.packets)
        make(small, args.reference_packets)
        print(f"capture: {args.packets} packets, 2000 flows (Zipf 1.1), mean {mean:.0f} bytes; "
              f"made in {time.perf_counter() - t0:.1f} s")
        write_pcap(f"{d}/empty.pcap", [])
        t_start, _ = run(f"{d}/empty.pcap", f"{d}/out-empty.pcap", [])
        print(f"start-up (p4gen run of an empty capture): {t_start:.1f} s")
        t_cache, text = run(cap, f"{d}/out.pcap", ["--stats"])
        line = next((x for x in text.splitlines() if x.startswith("flow cache")), "")
        print(f"p4gen run, flow cache on:  {t_cache:6.1f} s whole process ({args.packets / t_cache:,.0f} packets/s); "
              f"{line}")
        t_ref, _ = run(small, f"{d}/out-ref.pcap", ["--no-flow-cache"])
        t_c2, _ = run(small, f"{d}/out-c2.pcap", [])
        same = Path(f"{d}/out-ref.pcap").read_bytes() == Path(f"{d}/out-c2.pcap").read_bytes()
        print(f"first {args.reference_packets} packets: reference path {t_ref:.1f} s, flow cache {t_c2:.1f} s "
              f"({t_ref / t_c2:.1f}x); outputs identical: {same}")
        print(f"goal: under 10 s for 1,000,000 packets: {'met' if t_cache < 10 else 'missed'} ({t_cache:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
