"""Per-flow offload on BMv2 (needs p4c-bm2-ss and simple_switch_grpc, and root for the veths).

The reference scenario's vm_ingress on the constrained NIC with a flow table ([offload]):
the static split sends every packet to the hypervisor for its ACL (a range match the NIC
lacks); an offloaded flow has its ACL decided on the NIC and reaches the hypervisor only
at coalescing, where the VM is. Each figure has its baseline from the same run:

1. first packet → NIC entry: a flow's packets at the pacing BMv2 takes (one per --pace
   seconds); the time until its entry is written, against the least it can be (the
   threshold's packets at that pace), and the manager's own part (LEARN punt → entry written);
2. offloads per second: LEARN punts of many flows handled and installed in one batch, against
   a plain batched Write of as many entries with no learning;
3. a Zipf(1.1) mix of flows against flow-table sizes: the share of packets that hit the
   table (their ACL not run in the hypervisor), the hypervisor's ACL lookups against the same
   mix with offload off, evictions by rebalancing, and reordering within flows (goal 0);
4. the same for vm_egress, which starts in the hypervisor: the hypervisor's stages run per
   packet with offload on and off (offloaded flows are only segmented there).

    python benchmarks/offload.py [--flows 200] [--packets 3000] [--sizes 8,32,128] [--pace 0.002]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from p4.v1 import p4runtime_pb2
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

from p4gen.backend.build import build
from p4gen.backend.p4c import find_p4c, find_tool
from p4gen.crossing.protocol import Punted, Reason
from p4gen.frontend import load_program
from p4gen.ir import build_ir
from p4gen.place import load_profile, place
from p4gen.testing import Bmv2Target

ROOT = Path(__file__).resolve().parent.parent
TUNNEL = Ether(dst="02:00:c0:a8:01:01") / IP(src="192.168.1.2", dst="192.168.1.1") / UDP(sport=50000, dport=4789,
                                                                                          chksum=0)
ACL_STAGE = "vm_ingress:acl_in.acl_in_v4"


def frame(flow: int, seq: int) -> bytes:
    """Flow `flow` (an allowed web reply from 10.0.2.x, port 443 to a port of its own), packet `seq`."""
    inner = (Ether(src="02:00:00:00:02:05", dst="02:00:00:00:01:02")
             / IP(src=f"10.0.2.{1 + flow % 250}", dst="10.0.1.2")
             / TCP(sport=443, dport=20000 + flow // 250, seq=seq) / Raw(b"z" * 40))
    return bytes(TUNNEL / VXLAN(vni=5001) / inner)


def flow_of(data: bytes) -> tuple[str, int, int]:
    p = Ether(data)
    return p[IP].src, p[TCP].dport, p[TCP].seq


def target(prog, g, tmp: Path, entries: int, offload: bool = True) -> Bmv2Target:
    text = (ROOT / "targets" / "constrained-nic.toml").read_text()
    text += f"\n[offload]\nflow_entries = {entries}\nthreshold_packets = 8\nidle_timeout_ms = 60000\n"
    prof = tmp / f"nic-{entries}.toml"
    prof.write_text(text)
    pl = place(g, prog, load_profile(str(prof)))
    out = tmp / f"out-{entries}"
    res = build(prog, g, pl, "examples/vm_offload.nf", out, p4c=find_p4c())
    if res.p4c is None or not res.p4c.ok:
        sys.exit(f"p4c failed:\n{res.p4c.output if res.p4c else 'no p4c'}")
    return Bmv2Target(prog, g, pl, out, find_tool("P4GEN_BMV2", "simple_switch_grpc"), offload=offload)


def first_packet_to_entry(t: Bmv2Target, pace: float, runs: int) -> None:
    lat, own = [], []
    for r in range(runs):
        flow = 1000 + r
        start = time.monotonic()
        for i in range(40):
            t.sock["uplink"].send(frame(flow, i))
            t._collect_host(pace)
            f = next((x for x in t.offload.flows.values() if x.written_at is not None and x.offloads and
                      x.key and x.hash not in seen), None)
            if f is not None:
                seen.add(f.hash)
                lat.append(f.written_at - start)
                own.append(f.written_at - f.last_learn)
                break
        t._pump()
    floor = 8 * pace
    lat.sort()
    own.sort()
    med, mown = lat[len(lat) // 2], own[len(own) // 2]
    print(f"first packet -> NIC entry ({len(lat)} flows, one packet per {pace * 1000:g} ms): median "
          f"{med * 1000:.1f} ms (min {lat[0] * 1000:.1f}, max {lat[-1] * 1000:.1f}); the threshold's 8 packets "
          f"alone take {floor * 1000:.1f} ms: {med / floor:.2f}x that")
    print(f"  of which the manager (LEARN punt -> predicted, decided, entry written): median {mown * 1000:.2f} ms")


seen: set[int] = set()


def offloads_per_second(t: Bmv2Target, n: int) -> None:
    m = t.offload
    lay = m.layouts["vm_ingress"]
    punts = [Punted("vm_ingress", lay.first_stage, Reason.LEARN, 0, None, {"ingress_port": 0}, frame(5000 + i, 0),
                    flow_hash=0x7000_0000 + i) for i in range(n)]
    t0 = time.perf_counter()
    for p in punts:
        m.learn(p)
    t1 = time.perf_counter()
    m.flush()
    t2 = time.perf_counter()
    mine = {p.flow_hash for p in punts}
    installed = sum(1 for f in m.flows.values() if f.hash in mine and f.where == "nic")
    # baseline: the same number of flow-table entries written with no learning at all
    removed = [f for f in m.flows.values() if f.hash in mine and f.where == "nic"]
    for f in removed:
        m._remove(f, "benchmark cleanup")
    raw = []
    for i, f in enumerate(removed):
        f.slot = i
        raw.append(m._update(p4runtime_pb2.Update.INSERT, f))
    t3 = time.perf_counter()
    m._write(raw)
    t4 = time.perf_counter()
    dels = []
    for u in raw:
        d = p4runtime_pb2.Update(type=p4runtime_pb2.Update.DELETE)
        d.entity.table_entry.CopyFrom(u.entity.table_entry)
        d.entity.table_entry.ClearField("action")
        dels.append(d)
    m._write(dels)
    rate = installed / (t2 - t0)
    print(f"offloads per second ({installed} flows learnt from LEARN punts and installed in one batch): "
          f"{rate:.0f}/s (learning {(t1 - t0) / n * 1e6:.0f} us a flow, write {(t2 - t1) * 1000:.0f} ms); "
          f"a plain batched Write of {len(raw)} entries: {len(raw) / (t4 - t3):.0f}/s: "
          f"{rate / (len(raw) / (t4 - t3)):.2f}x")


def acl_runs(t: Bmv2Target) -> int:
    """Packets whose ACL ran in the hypervisor: resumed there for it, or learnt (run whole there)."""
    return t.dispatch.resumed_at[ACL_STAGE] + t.dispatch.crossings["learn"]


def zipf(t: Bmv2Target, flows: int, packets: int, pace: float, rng: random.Random) -> dict:
    weights = [1 / (k + 1) ** 1.1 for k in range(flows)]
    picks = rng.choices(range(flows), weights, k=packets)
    seqs: dict[int, int] = defaultdict(int)
    acl0 = acl_runs(t)
    hits0 = 0
    sent_at = time.monotonic()
    got: list[bytes] = []
    for n, fl in enumerate(picks):
        t.sock["uplink"].send(frame(fl, seqs[fl]))
        seqs[fl] += 1
        t._collect_host(pace)
        if t.offload is not None and time.monotonic() - sent_at > 1.0:
            t.offload.poll()  # as `up` does: once a second (rates, rebalancing)
            sent_at = time.monotonic()
        if n % 200 == 199:
            got += t.received("vm")
    t._pump()
    got += t.received("vm")
    hits = 0
    if t.offload is not None:
        t.offload.poll()
        hits = sum(f.packets_on_nic for f in t.offload.flows.values()) - hits0
    last: dict[tuple, int] = {}
    reordered = 0
    for data in got:
        src, dport, seq = flow_of(data)
        if seq < last.get((src, dport), -1):
            reordered += 1
        last[(src, dport)] = seq
    return {"received": len(got), "hits": hits, "acl": acl_runs(t) - acl0,
            "reordered": reordered,
            "rebalanced": t.offload.stats["evicted_rebalance"] if t.offload is not None else 0}


def vm_frame(flow: int, seq: int) -> bytes:
    """A VM flow towards the overlay (10.0.2.x, port 443), packet `seq`."""
    return bytes(Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe")
                 / IP(src="10.0.1.2", dst=f"10.0.2.{1 + flow % 250}")
                 / TCP(sport=30000 + flow // 250, dport=443, seq=seq) / Raw(b"y" * 40))


def zipf_vm(t: Bmv2Target, flows: int, packets: int, rng: random.Random) -> dict:
    """vm_egress (from the VM: the hypervisor first): stages the hypervisor ran per packet."""
    weights = [1 / (k + 1) ** 1.1 for k in range(flows)]
    picks = rng.choices(range(flows), weights, k=packets)
    seqs: dict[int, int] = defaultdict(int)
    before = sum(t.hv.stage_packets.values())
    polled = time.monotonic()
    for n in range(0, packets, 50):
        frames = []
        for fl in picks[n:n + 50]:
            frames.append(vm_frame(fl, seqs[fl]))
            seqs[fl] += 1
        t.send_many("vm", frames)
        if t.offload is not None and time.monotonic() - polled > 1.0:
            t.offload.poll()
            polled = time.monotonic()
    got = t.received("uplink")
    ran = sum(t.hv.stage_packets.values()) - before
    last: dict[tuple, int] = {}
    reordered = 0
    for data in got:
        inner = Ether(data)[VXLAN]
        k = (inner[IP].dst, inner[TCP].sport)
        if inner[TCP].seq < last.get(k, -1):
            reordered += 1
        last[k] = inner[TCP].seq
    hits = 0
    if t.offload is not None:
        t.offload.poll()
        hits = sum(f.packets_on_nic for f in t.offload.flows.values() if f.pipeline == "vm_egress")
    return {"sent": len(got), "stages": ran / packets, "hits": hits, "reordered": reordered}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flows", type=int, default=200)
    ap.add_argument("--packets", type=int, default=3000)
    ap.add_argument("--sizes", default="8,32,128")
    ap.add_argument("--pace", type=float, default=0.002, help="seconds between packets into BMv2")
    ap.add_argument("--batch", type=int, default=200, help="flows learnt at once for the offload rate")
    args = ap.parse_args()
    if find_p4c() is None or find_tool("P4GEN_BMV2", "simple_switch_grpc") is None:
        sys.exit("needs p4c-bm2-ss and simple_switch_grpc (P4GEN_P4C, P4GEN_BMV2, PATH, /opt/p4/bin)")
    prog, sink = load_program([str(ROOT / "examples" / "vm_offload.nf")])
    assert prog is not None, sink.render()
    g = build_ir(prog)
    tmp = Path(tempfile.mkdtemp(prefix="p4gen-offload-bench-"))
    t = target(prog, g, tmp, 1024)
    try:
        first_packet_to_entry(t, args.pace, 9)
        offloads_per_second(t, args.batch)
    finally:
        t.close()
    sizes = [int(x) for x in args.sizes.split(",")]
    print(f"Zipf(1.1) mix: {args.flows} flows, {args.packets} packets, one per {args.pace * 1000:g} ms")
    base_t = target(prog, g, tmp, sizes[0], offload=False)
    try:
        base = zipf(base_t, args.flows, args.packets, args.pace, random.Random(1))
    finally:
        base_t.close()
    print(f"  offload off:         {base['received']} to the VM, ACL run in the hypervisor {base['acl']}, "
          f"reordered {base['reordered']}")
    for size in sizes:
        t = target(prog, g, tmp, size)
        try:
            r = zipf(t, args.flows, args.packets, args.pace, random.Random(1))
        finally:
            t.close()
        print(f"  table of {size:>4} entries: {r['received']} to the VM; {r['hits'] / args.packets:.1%} of packets hit "
              f"the flow table; ACL run in the hypervisor {r['acl']} ({r['acl'] / max(base['acl'], 1):.2f}x offload "
              f"off); rebalanced {r['rebalanced']}; reordered within a flow {r['reordered']}")
    n = args.packets // 2
    print(f"vm_egress (from the VM, the hypervisor first), Zipf(1.1): {args.flows // 2} flows, {n} packets, "
          f"flow table of {sizes[-1]} entries")
    rows = []
    for offload in (False, True):
        t = target(prog, g, tmp, sizes[-1], offload=offload)
        try:
            rows.append(zipf_vm(t, args.flows // 2, n, random.Random(2)))
        finally:
            t.close()
    off, on = rows
    print(f"  offload off: {off['sent']} to the wire; hypervisor stages run per packet {off['stages']:.2f}")
    print(f"  offload on:  {on['sent']} to the wire; {on['hits'] / n:.1%} of packets hit the flow table; hypervisor "
          f"stages run per packet {on['stages']:.2f} ({on['stages'] / off['stages']:.2f}x offload off); reordered "
          f"within a flow {on['reordered']} (offload off: {off['reordered']})")


if __name__ == "__main__":
    main()
