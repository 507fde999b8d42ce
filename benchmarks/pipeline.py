"""Hypervisor pipeline speed, each against a baseline measured in the same run.

1. packets/s of an ACL → per-flow counter → VXLAN encapsulation chain, for 64-byte and
   1500-byte packets, against a straightforward scapy implementation of the same chain
   (parse, match the ACL rules, count, build the outer headers, let scapy compute lengths
   and checksums): through vm_offload's whole vm_egress (segmentation and SNAT first: a
   1500-byte frame exceeds the overlay's MSS and leaves as two segments), and through the
   chain alone (vm_egress cut down to acl_out → flow_counters → overlay_encap, as scapy's);
2. segmentation + encapsulation of 64 KiB super-packets in Gbit/s, against a plain
   memory copy of the same bytes.

Each chain rate is given with the flow cache replaying vectors (a repeated flow: cache hits
in batches of --vector frames, as `p4gen run` hands them over: p4gen.runtime.flowvec), the
same hits one frame at a time (`run_batch`, as `p4gen up` hands them over), cold (every
packet a new flow: a miss, the full path and the learning), and without a cache (the full
path for every packet); a Zipf mix of 10,000 flows gives the rate and the hit rate, as
vectors. Super-packets are one flow repeated (cached trains). Goals (issues): ≥200× scapy
and ≥1 Mpps on one core on cached flows; ≥25% of the copy.

    python benchmarks/pipeline.py [--packets N] [--vector N]
"""

from __future__ import annotations

import argparse
import ipaddress
import tempfile
import time
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


def frame(size: int, sport: int = 40000) -> bytes:
    base = Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe") / IP(src="10.0.1.2", dst="10.0.2.9") / \
        TCP(sport=sport, dport=443, flags="A")
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


def zipf_mix(prog, g, n_flows: int, n: int, vector: int) -> tuple[float, float]:
    """packets/s and hit rate of the flow cache on a Zipf(1.1) mix of `n_flows` TCP flows, in
    batches of `vector` frames (vectors)."""
    import random

    rng = random.Random(3)
    base = Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe")
    flows = [bytes(base / IP(src="10.0.1.2", dst=f"10.0.2.{1 + i % 250}") /
                   TCP(sport=1024 + i, dport=443, flags="A") / Raw(bytes(100))) for i in range(n_flows)]
    weights = [1 / (k + 1) ** 1.1 for k in range(n_flows)]
    frames = [flows[i] for i in rng.choices(range(n_flows), weights=weights, k=n)]
    hv = HypervisorPipeline(prog, g)
    t0 = time.perf_counter()
    for i in range(0, n, vector):
        hv.run_vector("vm_egress", frames[i:i + vector])
    dt = time.perf_counter() - t0
    s = hv.cache.summary()
    return n / dt, s["hits"] / (s["hits"] + s["misses"])


FULL_EGRESS = "tso -> acl_out -> snat -> flow_counters -> overlay_encap;"
CHAIN = "acl_out -> flow_counters -> overlay_encap;"


def chain_program(tmp: Path):
    """vm_offload with vm_egress cut down to the chain the scapy baseline implements (the ACL, the
    per-flow counters, the VXLAN encapsulation: no segmentation, no SNAT)."""
    text = (ROOT / "examples" / "vm_offload.nf").read_text()
    assert FULL_EGRESS in text
    (tmp / "chain.nf").write_text(text.replace(FULL_EGRESS, CHAIN))
    prog, sink = load_program([str(tmp / "chain.nf")])
    assert prog is not None, sink
    return prog, build_ir(prog)


def chain_row(label: str, prog, g, hv: HypervisorPipeline, cold: HypervisorPipeline, size: int, n: int,
              nv: int) -> None:
    """One row: cached flows as vectors and one at a time, every packet a new flow (cold), no
    cache at all, and scapy, for `size`-byte frames through vm_egress."""
    f = frame(size)
    batch = [f] * n
    vec = [f] * nv
    hv.run_vector("vm_egress", vec)
    t_vec = median_time(lambda: hv.run_vector("vm_egress", vec), 5)[0]
    t_ours = median_time(lambda: hv.run_batch("vm_egress", batch), 3)[0]
    fresh = [frame(size, sport=1024 + i) for i in range(n)]  # n new flows, each into a fresh cache
    pipes = [HypervisorPipeline(prog, g) for _ in range(3)]
    t_miss = median_time(lambda: pipes.pop().run_batch("vm_egress", fresh), 3)[0]
    t_cold = median_time(lambda: [cold.run("vm_egress", f) for _ in range(n)], 3)[0]
    counters: dict = {}
    m = max(1, n // 10)
    t_scapy = median_time(lambda: [scapy_chain(f, counters) for _ in range(m)], 3)[0] * n / m
    print(f"{label:<26} {nv / t_vec:>8.0f} pps {n / t_ours:>8.0f} pps {n / t_miss:>8.0f} pps "
          f"{n / t_cold:>8.0f} pps {n / t_scapy:>6.0f} pps {t_scapy / n / (t_vec / nv):>16.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=2000)
    ap.add_argument("--vector", type=int, default=16384, help="frames per vector batch (default: %(default)s)")
    args = ap.parse_args()
    prog, _ = load_program([str(ROOT / "examples" / "vm_offload.nf")])
    g = build_ir(prog)
    hv = HypervisorPipeline(prog, g)
    cold = HypervisorPipeline(prog, g, flow_cache=0)  # the full path for every packet
    import gc

    gc.freeze()  # what setup made (scapy's classes, the program) is not walked again while timing, as p4gen run does
    n, nv = args.packets, args.vector
    print(f"{'chain (ACL → counter → VXLAN)':<26} {'vectors':>12} {'one by one':>12} {'cold (miss)':>12} "
          f"{'no cache':>12} {'scapy':>10} {'vectors vs scapy':>17}")
    # Through the whole vm_egress: 1500-byte frames exceed the overlay path's MSS and are
    # segmented first; 1464 bytes is the largest frame it forwards as one packet.
    for size in (64, 1464, 1500):
        chain_row(f"{size}-byte packets", prog, g, hv, cold, size, n, nv)
    # The chain alone (what scapy_chain does): a 1500-byte frame is encapsulated whole.
    with tempfile.TemporaryDirectory() as d:
        cprog, cg = chain_program(Path(d))
    chain, chain_cold = HypervisorPipeline(cprog, cg), HypervisorPipeline(cprog, cg, flow_cache=0)
    for size in (64, 1500):
        chain_row(f"{size} B, the chain alone", cprog, cg, chain, chain_cold, size, n, nv)
    pps, hit = zipf_mix(prog, g, 10_000, 200_000, nv)
    print(f"Zipf mix of 10,000 flows (200,000 packets of 154 bytes, as vectors): {pps:.0f} pps, {hit:.1%} cache hits")
    big = frame(65549)
    bits = len(big) * 8
    k = 32
    hv.run_vector("vm_egress", [big] * k)
    t_vseg = median_time(lambda: hv.run_vector("vm_egress", [big] * k), 5)[0] / k
    t_seg = median_time(lambda: hv.run_batch("vm_egress", [big] * k), 5)[0] / k
    t_seg_full = median_time(lambda: cold.run("vm_egress", big), 5)[0]

    def copy_once() -> list[bytes]:
        b = bytes(bytearray(big))
        return [b[i:i + 1464] for i in range(0, len(b), 1464)]

    t_copy = median_time(copy_once, 5)[0]
    print(f"segmentation + encapsulation, 64 KiB: {bits / t_vseg / 1e9:.2f} Gbit/s cached, {k} at a time as "
          f"vectors ({bits / t_seg / 1e9:.2f} one at a time, {bits / t_seg_full / 1e9:.2f} without the cache); "
          f"memory copy {bits / t_copy / 1e9:.2f} Gbit/s; vectors = {t_copy / t_vseg:.1%} of the copy "
          f"(one at a time {t_copy / t_seg:.1%})")
    print("calibration: sum(range(1000)) takes "
          f"{median_time(lambda: sum(range(1000)), 200)[0] * 1e6:.1f} µs here")


if __name__ == "__main__":
    main()
