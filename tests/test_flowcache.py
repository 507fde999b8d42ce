"""The flow cache: cache on ≡ cache off, packet for packet and counter for counter.

Every example, both directions: packets aimed at the program's table entries,
each sent as a flow of several packets that differ where flows do (IP ID,
TCP sequence numbers, payload and its length, ECN bits, a bad IPv4 checksum
now and then), through a pipeline with the cache and one without (the
reference path). Then: entries added and removed mid-stream, eviction under
a tiny cache, and what the cache refuses to learn.
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

from p4gen.frontend import load_program
from p4gen.ir import build_ir
from p4gen.runtime.pipeline import HypervisorPipeline


def _load(path):
    prog, sink = load_program([str(path)])
    assert prog is not None, sink.render()
    return prog, build_ir(prog)


def _variants(pkt: Ether, rng: random.Random, n: int, wide: bool = True) -> list[bytes]:
    """`n` packets of the flow of `pkt`: what changes from packet to packet of a flow."""
    out = []
    for i in range(n):
        p = pkt.copy()
        ip = p.getlayer(IP)
        if ip is not None:
            ip.id = rng.randrange(65536)
            ip.tos = (ip.tos & 0xFC) | rng.randrange(4)  # ECN bits
            ip.len = None
            ip.chksum = None
        ip6 = p.getlayer(IPv6)
        if ip6 is not None:
            ip6.plen = None
        if p.haslayer(TCP):
            p[TCP].seq = rng.randrange(1 << 32)
            p[TCP].chksum = None
        if p.haslayer(UDP):
            p[UDP].len = None
            p[UDP].chksum = None
        last = p.lastlayer()
        if isinstance(last, Raw):
            # Mostly small; now and then around the lengths where segmentation starts deciding
            # (fits every path, this path only, cut), or a super-packet.
            size = rng.choice((rng.randint(0, 300), rng.randint(0, 300), rng.randint(1340, 1480), 4000))
            size = size if wide else size % 300
            last.load = rng.randbytes(size)
        for layer in (IP, UDP):
            inner = p.getlayer(layer, 2)
            if inner is not None:
                inner.len = None
                inner.chksum = None
        raw = bytearray(bytes(p))
        if i == n - 1 and ip is not None and rng.random() < 0.5:  # now and then a bad IPv4 header checksum
            raw[24] ^= 0x55
        out.append(bytes(raw))
    return out


def _state(hv: HypervisorPipeline) -> tuple:
    tables = {n: [(e.packets, e.bytes) for e in t.entries] for n, t in hv.tables.items()}
    return ({k: [list(c) for c in v] for k, v in hv.counters.items()}, dict(+hv.drops), dict(+hv.stage_packets),
            tables)


def _pair(prog, g, size=4096):
    cached, plain = HypervisorPipeline(prog, g, flow_cache=size), HypervisorPipeline(prog, g, flow_cache=0)
    assert plain.cache is None and cached.cache is not None
    return cached, plain


def _send(hv: HypervisorPipeline, port: str, frame: bytes):
    name, outs = hv.run_direction("vm_egress" if port == "vm" else "vm_ingress", frame)
    return name, [(o.kind, o.port, o.resume, o.data, o.l4_dirty) for o in outs]


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.stem)
def test_cache_on_equals_cache_off(path):
    prog, g = _load(path)
    cached, plain = _pair(prog, g)
    rng = random.Random(7)
    frames = []
    for pkt, port in EntryPackets(prog, seed=3).take(30):
        frames += [(port, f) for f in _variants(pkt, rng, 4)]
    rng.shuffle(frames)  # flows interleaved
    for port, f in frames:
        assert _send(cached, port, f) == _send(plain, port, f), (port, f.hex())
    assert _state(cached) == _state(plain)
    stats = cached.cache.summary()
    assert stats["hits"] > 0 or not frames, stats


def test_the_scenario_hits(tmp_path):
    """vm_offload, a flow of 200 packets each way: a miss per flow and direction, but the ECN
    bits are in the egress key (the encapsulation copies them outward): up to 4 egress flows."""
    prog, g = _load("examples/vm_offload.nf")
    cached, plain = _pair(prog, g)
    out = Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe") / IP(src="10.0.1.2", dst="10.0.2.2") / \
        TCP(sport=40000, dport=80, flags="A") / Raw(b"x" * 100)
    back = Ether(dst="02:00:c0:a8:01:01", src="02:00:c0:a8:01:02") / IP(src="192.168.1.2", dst="192.168.1.1") / \
        UDP(sport=50000, dport=4789) / bytes.fromhex("0800000000138900") / \
        Ether(src="02:00:00:00:00:fe", dst="02:00:00:00:01:02") / IP(src="10.0.2.2", dst="10.0.1.2") / \
        TCP(sport=80, dport=40000, flags="A") / Raw(b"y" * 50)
    rng = random.Random(1)
    for f in _variants(out, rng, 200, wide=False):
        assert _send(cached, "vm", f) == _send(plain, "vm", f)
    for f in _variants(Ether(bytes(back)), rng, 200, wide=False):
        assert _send(cached, "uplink", f) == _send(plain, "uplink", f)
    assert _state(cached) == _state(plain)
    s = cached.cache.summary()
    assert s["learnt"] <= 5 and s["hits"] >= 390, s


def test_entries_changed_mid_stream():
    """An entry added, then removed, while a flow is cached: the flow follows each change."""
    prog, g = _load("examples/vm_offload.nf")
    cached, plain = _pair(prog, g)
    allow_8080 = next(e for e in prog.entries if e.table == "acl_out_v4" and e.priority == 100)
    from dataclasses import replace

    from p4gen.frontend.program import KeyMatch
    keys = list(allow_8080.keys)
    keys[2] = KeyMatch("range", 8080, high=8080)
    new = replace(allow_8080, keys=keys, priority=101)
    pkt = Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe") / IP(src="10.0.1.2", dst="10.0.2.2") / \
        TCP(sport=40000, dport=8080, flags="A") / Raw(b"z" * 20)
    rng = random.Random(2)
    frames = _variants(pkt, rng, 9)

    def burst(fs):
        for f in fs:
            assert _send(cached, "vm", f) == _send(plain, "vm", f)

    burst(frames[:3])
    before = cached.drops["acl_out.deny"]
    for hv in (cached, plain):
        hv.insert_entry(new)
    burst(frames[3:6])
    for hv in (cached, plain):
        hv.delete_entry(new)
    burst(frames[6:])
    assert _state(cached) == _state(plain)
    assert cached.cache.summary()["invalidated"] >= 1
    assert cached.drops["acl_out.deny"] > before


def test_eviction_under_a_tiny_cache():
    prog, g = _load("examples/vm_offload.nf")
    cached, plain = _pair(prog, g, size=2)
    rng = random.Random(5)
    frames = []
    for sport in range(6):
        pkt = Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe") / IP(src="10.0.1.2", dst="10.0.2.2") / \
            TCP(sport=1000 + sport, dport=443, flags="A") / Raw(b"q")
        frames += _variants(pkt, rng, 5)
    rng.shuffle(frames)
    for f in frames:
        assert _send(cached, "vm", f) == _send(plain, "vm", f)
    assert _state(cached) == _state(plain)
    s = cached.cache.summary()
    assert s["flows"] <= 2 and s["evictions"] > 0, s


def test_gso_super_packets_are_flows_per_segment_size():
    """A VM's GSO super-packets (virtio-net, NEEDS_CSUM): flows of their own per segment size,
    cut at min(gso_size, the path's MSS) as the reference path cuts them; what the cache cannot
    take (a frame the parser rejects) is counted by reason."""
    from p4gen.runtime.virtio import F_NEEDS_CSUM, GSO_TCPV4, VnetHdr

    prog, g = _load("examples/vm_offload.nf")
    cached, plain = _pair(prog, g)
    rng = random.Random(4)
    sent = 0
    for gso_size, dst in ((1000, "10.0.2.2"), (1448, "10.0.2.2"), (1000, "8.8.8.8"), (1448, "8.8.8.8")):
        for size in (5000, 5001, 2000, 20000, 5000):
            p = Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe") / IP(src="10.0.1.2", dst=dst, id=sent) / \
                TCP(sport=1, dport=80 if dst.startswith("10.") else 443, flags="A", seq=rng.randrange(1 << 32)) / \
                Raw(rng.randbytes(size))
            vnet = VnetHdr(F_NEEDS_CSUM, GSO_TCPV4, 54, gso_size, 34, 16)
            a = cached.run_direction("vm_egress", bytes(p), vnet)
            b = plain.run_direction("vm_egress", bytes(p), vnet)
            assert [(o.kind, o.data) for o in a[1]] == [(o.kind, o.data) for o in b[1]] and len(a[1]) > 1
            sent += 1
    short = bytes(Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe") / IP(src="10.0.1.2", dst="10.0.2.2"))[:20]
    assert _send(cached, "vm", short) == _send(plain, "vm", short)
    assert _state(cached) == _state(plain)
    s = cached.cache.summary()
    assert s["hits"] >= 8 and s["uncacheable"].get("not parsed") == 1, s


@pytest.mark.parametrize("dst", ["10.0.2.2", "8.8.8.8", "fd00:2::9"], ids=["overlay", "snat", "overlay-v6"])
def test_trains_are_cached(dst):
    """TSO super-packets of one flow at many lengths, across the lengths where the segmentation
    stage starts cutting: the cached train (headers rewritten once, cut with them replicated)
    gives the reference bytes and counters; packets that pass whole use the flow's other action."""
    prog, g = _load("examples/vm_offload.nf")
    cached, plain = _pair(prog, g)
    rng = random.Random(11)
    ip = IPv6(src="fd00:1::2", dst=dst) if ":" in dst else IP(src="10.0.1.2", dst=dst)
    frames = []
    for opts in ([], [("Timestamp", (1, 2))]):
        base = Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe") / ip / \
            TCP(sport=4242, dport=443, flags="PA", options=opts)
        for size in (10, 1300, 1350, 1360, 1370, 1380, 1390, 1400, 1410, 1420, 1460, 2900, 2921, 9000, 30000, 64000):
            p = base / Raw(rng.randbytes(size))
            frames += _variants(p, rng, 1)
            p[TCP].seq = rng.randrange(1 << 32)
            frames.append(bytes(p))
    rng.shuffle(frames)
    frames += frames[:10]
    outputs = 0
    for f in frames:
        got = _send(cached, "vm", f)
        assert got == _send(plain, "vm", f), f[:80].hex()
        outputs += len(got[1])
    assert _state(cached) == _state(plain)
    s = cached.cache.summary()
    assert s["hits"] >= len(frames) // 3 and "segmented" not in s["uncacheable"], s
    trains = [o for fa in cached.cache.flows.values() for o in fa.chain() if o.train is not None]
    assert trains and outputs > len(frames) + 40, (len(trains), outputs)


def test_a_flow_at_new_lengths_replaces_or_adds_actions():
    """One flow on the SNAT path at lengths that each decide differently at the segmentation
    stage (fits every path; fits this path only, by its exact length; cut), in an order that
    makes later actions overlap, replace and sit beside earlier ones."""
    prog, g = _load("examples/vm_offload.nf")
    cached, plain = _pair(prog, g)
    base = Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe") / IP(src="10.0.1.2", dst="8.8.8.8") / \
        TCP(sport=5555, dport=443, flags="A")
    sizes = [100, 1420, 1460, 1420, 100, 1460, 3000, 1440, 100, 3000, 1460, 9000, 1400]
    for i, size in enumerate(sizes):
        p = base.copy()
        p[IP].id = i
        f = bytes(p / Raw(bytes([i]) * size))
        assert _send(cached, "vm", f) == _send(plain, "vm", f), (i, size)
    assert _state(cached) == _state(plain)
    assert cached.cache.summary()["hits"] >= 4


_SCENARIO: list = []


def _scenario():
    if not _SCENARIO:
        _SCENARIO.append(_load("examples/vm_offload.nf"))
    return _SCENARIO[0]


_FLOW = st.tuples(st.sampled_from(["10.0.2.2", "10.0.2.7", "8.8.8.8", "fd00:2::9", "192.0.2.1"]),
                  st.sampled_from([80, 443, 8080, 53]), st.integers(1024, 1030), st.sampled_from(["tcp", "udp"]),
                  st.integers(2, 255))  # TTL: flows of one shape whose rewritten headers differ
_PACKET = st.tuples(st.integers(0, 7),  # which flow
                    st.one_of(st.integers(0, 200), st.integers(1340, 1480), st.integers(2900, 9000)),  # payload
                    st.integers(0, 3), st.integers(0, 65535), st.booleans(),  # ECN, IP ID, bad IPv4 checksum
                    st.sampled_from([None, None, None, None, "allow 8080", "forget 8080"]))  # an entry change first


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flows=st.lists(_FLOW, min_size=8, max_size=8), packets=st.lists(_PACKET, min_size=5, max_size=40),
       size=st.sampled_from([2, 4096]))
def test_cache_on_equals_cache_off_generated(flows, packets, size):
    """Hypothesis-generated traffic on the scenario: a few flows, many packets each at lengths on
    both sides of where segmentation starts, ECN and IP ID changes, bad IPv4 checksums, an ACL
    entry added and removed mid-stream, a cache of 2 flows (evicting) or a large one."""
    from dataclasses import replace

    from p4gen.frontend.program import KeyMatch

    prog, g = _scenario()
    cached, plain = _pair(prog, g, size=size)
    allow = next(e for e in prog.entries if e.table == "acl_out_v4" and e.priority == 100)
    keys = list(allow.keys)
    keys[2] = KeyMatch("range", 8080, high=8080)
    extra = replace(allow, keys=keys, priority=101)
    present = False
    for which, payload, ecn, ident, bad, change in packets:
        if change == "allow 8080" and not present or change == "forget 8080" and present:
            for hv in (cached, plain):
                (hv.insert_entry if not present else hv.delete_entry)(extra)
            present = not present
        dst, dport, sport, proto, ttl = flows[which]
        ip = IPv6(src="fd00:1::2", dst=dst, hlim=ttl) if ":" in dst else \
            IP(src="10.0.1.2", dst=dst, tos=ecn, id=ident, ttl=ttl)
        l4 = TCP(sport=sport, dport=dport, flags="A") if proto == "tcp" else UDP(sport=sport, dport=dport)
        raw = bytearray(bytes(Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe") / ip / l4 /
                              Raw(bytes([which]) * payload)))
        if bad and ":" not in dst:
            raw[24] ^= 0x41
        assert _send(cached, "vm", bytes(raw)) == _send(plain, "vm", bytes(raw))
    assert _state(cached) == _state(plain)


def test_a_train_longer_than_its_frame_takes_the_full_path():
    """A super-packet whose IP length claims more than the frame holds, in a flow whose train is
    cached: dropped as malformed, as the reference path drops it (found by hypothesis)."""
    prog, g = _load("examples/vm_offload.nf")
    cached, plain = _pair(prog, g)
    base = Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe") / IP(src="10.0.1.2", dst="10.0.2.9") / \
        TCP(sport=20, dport=443, flags="PA")
    whole = bytes(base / Raw(bytes(3000)))
    lying = bytearray(whole[:-2000])  # the IP length still says 3040
    for f in (whole, bytes(lying), whole):
        assert _send(cached, "vm", f) == _send(plain, "vm", f)
    assert _state(cached) == _state(plain) and plain.drops["malformed"] == 1
