"""The vector replay (p4gen.runtime.flowvec): a batch's cached flows rewritten as numpy columns
give the reference path's packets, in the reference path's order, and its counters.

The reference is a pipeline without a cache running the same frames one at a time. Traffic
comes in batches (the first learns, later ones hit) with lengths repeated so that groups of
one length form, plus drops, trains, bad IPv4 checksums, entry changes between batches and a
tiny cache; pcap output is read back with scapy.
"""

from __future__ import annotations

import random

import pytest
from conftest import example_files
from entrygen import EntryPackets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import rdpcap

from p4gen.frontend import load_program
from p4gen.ir import build_ir
from p4gen.runtime import flowvec
from p4gen.runtime.pcap import write_records
from p4gen.runtime.pipeline import HypervisorPipeline


def _load(path):
    prog, sink = load_program([str(path)])
    assert prog is not None, sink.render()
    return prog, build_ir(prog)


def _state(hv: HypervisorPipeline) -> tuple:
    tables = {n: [(e.packets, e.bytes) for e in t.entries] for n, t in hv.tables.items()}
    return ({k: [list(c) for c in v] for k, v in hv.counters.items()}, dict(+hv.drops), dict(+hv.stage_packets),
            tables)


def _copies(pkt: Ether, rng: random.Random, n: int) -> list[bytes]:
    """`n` packets of the flow of `pkt` at a few payload lengths (so that lengths repeat), with
    their own IP IDs, ECN bits and TCP sequence numbers, and now and then a bad IPv4 checksum."""
    out = []
    for _ in range(n):
        p = pkt.copy()
        ip = p.getlayer(IP)
        if ip is not None:
            ip.id, ip.tos = rng.randrange(65536), (ip.tos & 0xFC) | rng.randrange(4)
            ip.len = ip.chksum = None
        if p.getlayer(IPv6) is not None:
            p[IPv6].plen = None
        for layer in (TCP, UDP):
            if p.haslayer(layer):
                p[layer].chksum = None
                if layer is UDP:
                    p[UDP].len = None
                else:
                    p[TCP].seq = rng.randrange(1 << 32)
        for layer in (IP, UDP):
            inner = p.getlayer(layer, 2)
            if inner is not None:
                inner.len = inner.chksum = None
        if isinstance(p.lastlayer(), Raw):
            p.lastlayer().load = bytes(rng.choice((10, 10, 200, 1400, 3000)))
        raw = bytearray(bytes(p))
        if ip is not None and rng.random() < 0.03:
            raw[24] ^= 0x55
        out.append(bytes(raw))
    return out


def _compare(prog, g, pipeline: str, batches: list[list[bytes]], size: int = 4096, between=None) -> int:
    """Each batch through `run_vector` and, frame by frame, through the reference path: the same
    outputs in the same order and the same counters. How many rows the vectors replayed."""
    cached, plain = HypervisorPipeline(prog, g, flow_cache=size), HypervisorPipeline(prog, g, flow_cache=0)
    rows = 0
    for k, batch in enumerate(batches):
        if between is not None:
            between(k, cached, plain)
        ov = cached.run_vector(pipeline, batch)
        want = [o for f in batch for o in plain.run(pipeline, f)]
        assert ov.to_list() == want
        rows += sum(len(b.rows) for b in ov.blocks)
    assert _state(cached) == _state(plain)
    return rows


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.stem)
def test_vector_equals_reference_every_example(path):
    prog, g = _load(path)
    hv = HypervisorPipeline(prog, g)
    rng = random.Random(11)
    per_dir: dict[str, list[bytes]] = {"vm_egress": [], "vm_ingress": []}
    for pkt, port in EntryPackets(prog, seed=5).take(30):
        per_dir["vm_egress" if port == "vm" else "vm_ingress"] += _copies(pkt, rng, 12)
    for direction, frames in per_dir.items():
        for pipeline in hv.by_direction.get(direction, ()):
            rng.shuffle(frames)
            third = len(frames) // 3
            _compare(prog, g, pipeline, [frames[:third], frames[third:2 * third], frames[2 * third:]])


def test_the_scenario_is_replayed_as_vectors():
    """vm_offload egress: overlay, SNAT (a rewrite under the TCP checksum), DNS, an ACL drop and
    trains in one batch; all but the first packets of flows and the trains go as vectors."""
    prog, g = _load("examples/vm_offload.nf")
    rng = random.Random(2)
    base = Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe")
    flows = [base / IP(src="10.0.1.2", dst=f"10.0.2.{i}") / TCP(sport=2000 + i, dport=443, flags="A") / Raw(b"")
             for i in range(1, 6)]
    flows += [base / IP(src="10.0.1.2", dst=f"8.8.4.{i}") / TCP(sport=3000 + i, dport=443, flags="A") / Raw(b"")
              for i in range(1, 4)]
    flows += [base / IP(src="10.0.1.2", dst="8.8.8.8") / UDP(sport=5353, dport=53) / Raw(b""),
              base / IP(src="10.0.1.2", dst="10.0.2.9") / TCP(sport=4000, dport=22, flags="S") / Raw(b"")]
    frames = [f for p in flows for f in _copies(p, rng, 40)]
    frames += [bytes(flows[0][Ether].copy() / Raw(bytes(9000)))] * 3  # TCP super-packets: trains
    rng.shuffle(frames)
    rows = _compare(prog, g, "vm_egress", [frames[:150], frames[150:300], frames[300:]])
    assert rows > 150, rows  # (drops leave no rows; groups under MIN_GROUP frames go one by one)


_FLOW = st.tuples(st.sampled_from(["10.0.2.2", "10.0.2.7", "8.8.8.8", "fd00:2::9", "192.0.2.1"]),
                  st.sampled_from([80, 443, 8080]), st.integers(1024, 1026), st.sampled_from(["tcp", "udp"]),
                  st.integers(2, 255))
_PACKET = st.tuples(st.integers(0, 5), st.sampled_from([0, 100, 1400, 1460, 3000]), st.integers(0, 3),
                    st.integers(0, 65535), st.integers(0, 30))  # flow, payload, ECN, IP ID, bad checksum if 0


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flows=st.lists(_FLOW, min_size=6, max_size=6), packets=st.lists(_PACKET, min_size=40, max_size=120),
       cuts=st.lists(st.integers(0, 120), min_size=2, max_size=2), size=st.sampled_from([2, 4096]),
       change=st.sampled_from([None, 1, 2]))
def test_vector_equals_reference_generated(flows, packets, cuts, size, change):
    """Generated scenario traffic cut into three batches, an ACL entry added before batch
    `change`, a cache of 2 flows (evicting between and within batches) or a large one."""
    from dataclasses import replace

    from p4gen.frontend.program import KeyMatch

    prog, g = _load("examples/vm_offload.nf")
    frames = []
    for which, payload, ecn, ident, bad in packets:
        dst, dport, sport, proto, ttl = flows[which]
        ip = IPv6(src="fd00:1::2", dst=dst, hlim=ttl) if ":" in dst else \
            IP(src="10.0.1.2", dst=dst, tos=ecn, id=ident, ttl=ttl)
        l4 = TCP(sport=sport, dport=dport, flags="A") if proto == "tcp" else UDP(sport=sport, dport=dport)
        raw = bytearray(bytes(Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe") / ip / l4 / Raw(bytes(payload))))
        if bad == 0 and ":" not in dst:
            raw[24] ^= 0x41
        frames.append(bytes(raw))
    a, b = sorted(cuts)
    allow = next(e for e in prog.entries if e.table == "acl_out_v4" and e.priority == 100)
    keys = list(allow.keys)
    keys[2] = KeyMatch("range", 8080, high=8080)
    extra = replace(allow, keys=keys, priority=101)

    def between(k, cached, plain):
        if k == change:
            cached.insert_entry(extra)
            plain.insert_entry(extra)

    _compare(prog, g, "vm_egress", [frames[:a], frames[a:b], frames[b:]], size=size, between=between)


def test_a_hash_clash_takes_the_scalar_path(monkeypatch):
    """Every key hashed alike: stored flows clash, nothing is replayed as a vector, and the
    scalar path (which compares whole keys) still gives the reference's packets."""
    import numpy as np

    monkeypatch.setattr(flowvec, "key_hash", lambda words: np.zeros(len(words), np.uint64))
    prog, g = _load("examples/vm_offload.nf")
    rng = random.Random(4)
    base = Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe")
    flows = [base / IP(src="10.0.1.2", dst=f"10.0.2.{i}") / TCP(sport=2000, dport=80, flags="A") / Raw(b"")
             for i in range(1, 4)]
    frames = [f for p in flows for f in _copies(p, rng, 30)]
    assert _compare(prog, g, "vm_egress", [frames, frames, frames]) == 0


def test_one_flow_is_replayed_as_vectors():
    """One flow (its constants broadcast): the first batch learns it frame by frame (it is
    not cached when the batch starts), the second is all vectors."""
    prog, g = _load("examples/vm_offload.nf")
    p = Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe") / IP(src="10.0.1.2", dst="10.0.2.3") / \
        TCP(sport=2000, dport=80, flags="A") / Raw(bytes(100))
    frames = [bytes(p)] * 40
    assert _compare(prog, g, "vm_egress", [frames, frames]) == 40


def test_pcap_records_are_what_scapy_reads(tmp_path):
    """A batch's outputs as pcap records: scapy reads the reference's packets, in order, with
    timestamps numbered on from the previous batch."""
    prog, g = _load("examples/vm_offload.nf")
    rng = random.Random(9)
    base = Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe")
    flows = [base / IP(src="10.0.1.2", dst=f"10.0.2.{i}") / TCP(sport=2000, dport=80, flags="A") / Raw(b"")
             for i in range(1, 4)] + [base / IP(src="10.0.1.2", dst="8.8.8.8") / UDP(sport=5353, dport=53) / Raw(b"")]
    frames = [f for p in flows for f in _copies(p, rng, 25)]
    rng.shuffle(frames)
    cached, plain = HypervisorPipeline(prog, g), HypervisorPipeline(prog, g, flow_cache=0)
    first = cached.run_vector("vm_egress", frames)
    second = cached.run_vector("vm_egress", frames)
    assert second.blocks and second.single is not None
    want = [o.data for f in frames * 2 for o in plain.run("vm_egress", f)]
    blobs, count = [], 0
    for ov in (first, second):
        blob, n = ov.pcap_records([True] * len(ov.fates), lambda o: True, count)
        blobs.append(blob)
        count += n
    write_records(str(tmp_path / "out.pcap"), blobs)
    got = rdpcap(str(tmp_path / "out.pcap"))
    assert [bytes(p) for p in got] == want
    assert [int(p.time * 1_000_000 + 0.5) for p in got] == list(range(len(want)))
    # Only the outputs of one fate (none here is dropped: all go to the uplink).
    blob, n = second.pcap_records([False] * len(second.fates), lambda o: False, 0)
    assert (blob, n) == (b"", 0)


@pytest.mark.parametrize("dst", ["10.0.2.2", "8.8.8.8", "fd00:2::9"], ids=["overlay", "snat", "overlay-v6"])
def test_trains_are_cut_as_vectors(dst):
    """Frames the segmentation stage cuts (1500-byte frames into two, 9000-byte ones into
    seven), of several flows: rewritten as rows and cut together, every segment as the
    reference path makes it (sequence numbers, IP IDs, flags, lengths and checksums, inner
    and outer), in order, and counted alike."""
    prog, g = _load("examples/vm_offload.nf")
    rng = random.Random(8)
    frames = []
    for sport in (2000, 2001, 2002):
        for payload in (1446, 9000):
            for _ in range(20):
                ip = IPv6(src="fd00:1::2", dst=dst) if ":" in dst else \
                    IP(src="10.0.1.2", dst=dst, id=rng.randrange(65536), tos=rng.randrange(4))
                p = Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe") / ip / \
                    TCP(sport=sport, dport=443, flags=rng.choice(["A", "PA", "FPA"]), seq=rng.randrange(1 << 32)) / \
                    Raw(rng.randbytes(payload))
                frames.append(bytes(p))
    rng.shuffle(frames)
    cached, plain = HypervisorPipeline(prog, g), HypervisorPipeline(prog, g, flow_cache=0)
    segs = 0
    for batch in (frames[:40], frames[40:], frames[40:]):
        ov = cached.run_vector("vm_egress", batch)
        assert ov.to_list() == [o for f in batch for o in plain.run("vm_egress", f)]
        segs += sum(len(b.rows) for b in ov.blocks if not isinstance(b.sub, int) or b.sub)
    assert _state(cached) == _state(plain)
    assert segs > 300, segs  # (the later batches' trains went as vectors)
