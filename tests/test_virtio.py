"""The VM attachment's virtio-net metadata: partial checksums, GSO super-packets, GSO towards the VM.

Frames are what a Linux guest hands its virtio device: the TCP/UDP checksum field
holding only the pseudo-header sum (NEEDS_CSUM) and TCP super-packets with the
MSS in `gso_size`. Expectations come from scapy (checksums recomputed from
scratch, layouts), from the virtio spec's byte layout, and in the last test from
a real Linux stack's SYN.
"""

from __future__ import annotations

import select
import socket
import struct
import subprocess
import sys
import time

import pytest
from conftest import GATEWAY_MAC, TCP_TIMESTAMPS, VM1_MAC
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN
from scapy.utils import checksum

from p4gen.control.links import netns_supported, packet_socket, veth_across
from p4gen.crossing.dispatch import VM, Delivery, HostDispatcher
from p4gen.frontend import load_program
from p4gen.ir import build_ir
from p4gen.place import HYP, load_profile, place
from p4gen.runtime.gro import Coalescer
from p4gen.runtime.pipeline import HypervisorPipeline
from p4gen.runtime.virtio import (
    F_DATA_VALID,
    F_NEEDS_CSUM,
    GSO_TCPV4,
    GSO_UDP_L4,
    PLAIN,
    VnetHdr,
    read_sidecar,
    write_sidecar,
)
from p4gen.testing import ModelTarget, SoftwareTarget

VM1, GW, TS = VM1_MAC, GATEWAY_MAC, TCP_TIMESTAMPS


def partial(frame: bytes) -> tuple[bytes, VnetHdr]:
    """`frame` as a Linux guest hands it over: the L4 checksum field holds the folded
    pseudo-header sum (what the kernel leaves for CHECKSUM_PARTIAL)."""
    p = Ether(frame)
    ip = p[IP]
    l4 = ip.payload
    proto = ip.proto
    length = len(bytes(l4))
    pseudo = socket.inet_aton(ip.src) + socket.inet_aton(ip.dst) + struct.pack("!BBH", 0, proto, length)
    offset = 16 if proto == 6 else 6
    start = 14 + ip.ihl * 4
    b = bytearray(frame)
    b[start + offset:start + offset + 2] = struct.pack("!H", checksum(pseudo) ^ 0xFFFF)
    return bytes(b), VnetHdr(F_NEEDS_CSUM, csum_start=start, csum_offset=offset)


def l4_checksum_ok(layer) -> bool:
    """Whether scapy, recomputing from scratch, gets the checksum the packet carries."""
    cls = type(layer)
    fresh = layer.copy()
    fresh.chksum = None
    got = layer.chksum
    return cls(bytes(fresh)).chksum == got


def syn(dst: str, dport: int) -> bytes:
    return bytes(Ether(src=VM1, dst=GW) / IP(src="10.0.1.2", dst=dst, flags="DF") /
                 TCP(sport=40000, dport=dport, flags="S", seq=1000, options=[("MSS", 1460)]))


def test_header_layout_is_the_spec():
    """struct virtio_net_hdr: u8 flags, u8 gso_type, le16 hdr_len, gso_size, csum_start, csum_offset."""
    h = VnetHdr(F_NEEDS_CSUM, GSO_TCPV4, 66, 1448, 34, 16)
    assert h.pack() == bytes([1, 1, 66, 0, 0xA8, 0x05, 34, 0, 16, 0])
    assert VnetHdr.unpack(h.pack()) == h and h.tcp_gso and h.needs_csum and not h.data_valid
    assert VnetHdr(gso_type=GSO_TCPV4 | 0x80, gso_size=1).tcp_gso  # the ECN bit is not a kind


def test_sidecar_round_trip(tmp_path):
    hs = [PLAIN, VnetHdr(F_NEEDS_CSUM, csum_start=34, csum_offset=16), VnetHdr(F_DATA_VALID, GSO_TCPV4, 54, 1448)]
    path = tmp_path / "x.vnet"
    write_sidecar(str(path), hs)
    assert path.read_text().splitlines()[:2] == ["{}", '{"flags": 1, "csum_start": 34, "csum_offset": 16}']
    assert read_sidecar(str(path)) == hs
    path.write_text('{"flags": 1, "bogus": 2}\n')
    with pytest.raises(ValueError, match="x.vnet:1"):
        read_sidecar(str(path))


@pytest.mark.parametrize("dst,dport,proto", [("10.0.2.2", 80, "tcp"), ("8.8.8.8", 443, "tcp"),
                                              ("8.8.8.8", 53, "udp")],
                         ids=["overlay-tcp", "snat-tcp", "snat-udp"])
def test_partial_checksum_completed_after_rewrites(scenario, dst, dport, proto):
    """NEEDS_CSUM: the checksum is finished once, after SNAT rewrote the source it covers, or
    inside the VXLAN packet; without the metadata the partial value would reach the overlay."""
    prog, g = scenario
    if proto == "tcp":
        frame = syn(dst, dport)
    else:
        frame = bytes(Ether(src=VM1, dst=GW) / IP(src="10.0.1.2", dst=dst) / UDP(sport=5353, dport=dport) /
                      (b"q" * 31))
    frame, vnet = partial(frame)
    t = SoftwareTarget(prog, g)
    t.send("vm", frame, vnet)
    (out,) = t.received("uplink")
    p = Ether(out)
    inner = p[VXLAN].payload if VXLAN in p else p
    layer = inner[TCP] if proto == "tcp" else inner[UDP]
    assert l4_checksum_ok(layer), p.show(dump=True)
    if dst == "8.8.8.8":
        assert inner[IP].src == "203.0.113.10"
    if dst == "8.8.8.8":
        return  # (SNAT's rewrite under the checksum recomputes it with or without the metadata)
    # The same bytes without the metadata: the partial checksum goes out as it came.
    t.send("vm", frame)
    (plain,) = t.received("uplink")
    p = Ether(plain)
    inner = p[VXLAN].payload if VXLAN in p else p
    assert not l4_checksum_ok(inner[TCP] if proto == "tcp" else inner[UDP])


@pytest.mark.parametrize("gso_size,options,want", [(1000, [], 1000), (1460, [], 1410), (1448, TS, 1398)],
                         ids=["vm-mss-smaller", "path-mss", "path-mss-timestamps"])
def test_gso_super_packet_cut_at_min_of_vm_and_path_mss(scenario, gso_size, options, want):
    """A super-packet from the VM: segments of min(gso_size, the overlay path's MSS), each with
    a complete checksum, inside VXLAN packets that fit the 1500-byte underlay."""
    prog, g = scenario
    payload = bytes(range(256)) * 80  # 20480 bytes
    frame = bytes(Ether(src=VM1, dst=GW) / IP(src="10.0.1.2", dst="10.0.2.2", flags="DF", id=7) /
                  TCP(sport=40000, dport=80, flags="PA", seq=5000, options=options) / payload)
    frame, vnet = partial(frame)
    hlen = 14 + 20 + 20 + (12 if options else 0)
    vnet = VnetHdr(vnet.flags, GSO_TCPV4, hlen, gso_size, vnet.csum_start, vnet.csum_offset)
    t = SoftwareTarget(prog, g)
    t.send("vm", frame, vnet)
    outs = [Ether(f) for f in t.received("uplink")]
    sizes = [len(bytes(o[VXLAN].payload[TCP].payload)) for o in outs]
    assert sizes == [want] * (len(payload) // want) + ([len(payload) % want] if len(payload) % want else [])
    assert b"".join(bytes(o[VXLAN].payload[TCP].payload) for o in outs) == payload
    for i, o in enumerate(outs):
        assert o[IP].len <= 1500 and o[IP].flags.DF
        assert l4_checksum_ok(o[VXLAN].payload[TCP])
        assert o[VXLAN].payload[TCP].seq == 5000 + i * want


def test_gso_without_a_segment_stage_is_cut_at_gso_size(tmp_path):
    """A program with no segmentation stage still honours the VM's TSO: the super-packet is cut
    at gso_size on entry, as the VM would have sent it without TSO."""
    path = tmp_path / "fwd.nf"
    path.write_text("nf fwd { apply { forward(0); } }\npipeline out : vm_egress { fwd; }\n")
    prog, sink = load_program([str(path)])
    assert prog is not None, sink.render()
    payload = b"z" * 5000
    frame = bytes(Ether(src=VM1, dst=GW) / IP(src="10.0.1.2", dst="10.0.2.2") /
                  TCP(sport=1, dport=2, flags="A", seq=1) / payload)
    frame, vnet = partial(frame)
    t = SoftwareTarget(prog, build_ir(prog))
    t.send("vm", frame, VnetHdr(vnet.flags, GSO_TCPV4, 54, 1448, vnet.csum_start, vnet.csum_offset))
    outs = [Ether(f) for f in t.received("uplink")]
    assert [len(bytes(o[TCP].payload)) for o in outs] == [1448, 1448, 1448, 656]
    assert all(l4_checksum_ok(o[TCP]) for o in outs)


def test_bad_offload_requests_are_dropped_and_counted(scenario):
    prog, g = scenario
    t = SoftwareTarget(prog, g)
    frame = syn("10.0.2.2", 80)
    t.send("vm", frame, VnetHdr(F_NEEDS_CSUM, csum_start=5000, csum_offset=16))
    t.send("vm", frame, VnetHdr(gso_type=GSO_UDP_L4, gso_size=100))
    assert t.received("uplink") == []
    assert t.drops["bad_offload"] == 1 and t.drops["unsupported_gso"] == 1


def test_split_completes_the_checksum_on_the_nic(scenario):
    """Segmentation runs in the hypervisor, the rest on the NIC: a partial SYN crosses with the
    'checksum still to do' flag, and the NIC model finishes it, with the same bytes as software."""
    prog, g = scenario
    pl = place(g, prog, load_profile("targets/bmv2-smartnic.toml"))
    frame, vnet = partial(syn("10.0.2.2", 80))
    split, sw = ModelTarget(prog, g, pl), SoftwareTarget(prog, g)
    for t in (split, sw):
        t.send("vm", frame, vnet)
    (a,), (b,) = split.received("uplink"), sw.received("uplink")
    assert a == b and l4_checksum_ok(Ether(a)[VXLAN].payload[TCP])


def _segments(n: int, size: int = 1448, corrupt: int | None = None) -> list[bytes]:
    out = []
    for i in range(n):
        p = Ether(src=GW, dst=VM1) / IP(src="10.0.2.2", dst="10.0.1.2", id=i) / \
            TCP(sport=80, dport=40000, flags="A", seq=1 + i * size, ack=9) / (bytes([i]) * size)
        b = bytearray(bytes(p))
        if i == corrupt:
            b[-1] ^= 0xFF
        out.append(bytes(b))
    return out


def test_coalesced_frames_go_to_the_vm_as_gso(scenario):
    prog, _ = scenario
    (frame, vnet), = Coalescer(prog).coalesce_vnet(_segments(4))
    p = Ether(frame)
    assert len(bytes(p[TCP].payload)) == 4 * 1448 and l4_checksum_ok(p[TCP])
    assert vnet == VnetHdr(F_DATA_VALID, GSO_TCPV4, 54, 1448)


def test_a_segment_that_fails_its_checksum_is_not_merged(scenario):
    """Coalescing recomputes the checksum: merging a corrupted segment would launder it."""
    prog, _ = scenario
    segs = _segments(5, corrupt=2)
    out = Coalescer(prog).coalesce_vnet(segs)
    assert [len(f) for f, _ in out] == [len(segs[0]) + 1448, len(segs[2]), len(segs[3]) + 1448]
    assert out[1] == (segs[2], PLAIN)
    assert all(l4_checksum_ok(Ether(f)[TCP]) for f, _ in (out[0], out[2]))


def test_for_vm_coalesces_only_with_lro(scenario):
    prog, g = scenario
    d = HostDispatcher(HypervisorPipeline(prog, g), 0, nic=False)
    batch = [Delivery(VM, f, pipeline="vm_ingress") for f in _segments(3)]
    assert [v for _, v in d.for_vm(batch, lro=False)] == [PLAIN] * 3
    ((_, v),) = d.for_vm(batch, lro=True)
    assert v.tcp_gso and v.gso_size == 1448


def test_run_cli_reads_the_sidecar(tmp_path):
    from p4gen.runtime.pcap import read_pcap, write_pcap

    frame, vnet = partial(syn("10.0.2.2", 80))
    pcap, side = tmp_path / "in.pcap", tmp_path / "in.vnet"
    write_pcap(str(pcap), [frame])
    write_sidecar(str(side), [vnet])
    base = [sys.executable, "-m", "p4gen", "run", "examples/vm_offload.nf", "--pipeline", "vm_egress",
            "--in", str(pcap)]
    for extra, ok in ((["--vnet", str(side)], True), ([], False)):
        out = tmp_path / f"out{ok}.pcap"
        proc = subprocess.run(base + ["--out", str(out), *extra], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        (got,) = list(read_pcap(str(out)))
        assert l4_checksum_ok(Ether(got)[VXLAN].payload[TCP]) is ok
    side.write_text("{}\n{}\n")
    proc = subprocess.run(base + ["--out", str(tmp_path / "x.pcap"), "--vnet", str(side)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 1 and "more lines than" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(not netns_supported(), reason="needs root and iproute2 for a network namespace")
def test_a_real_linux_syn(scenario, tmp_path):
    """A SYN from a real Linux stack in a namespace, read with PACKET_VNET_HDR: it asks for its
    checksum (NEEDS_CSUM at the TCP header), and p4gen's output carries a complete one."""
    prog, g = scenario
    ns, host_end = f"vt{id(tmp_path) % 10000}", f"vt{id(tmp_path) % 10000}-h"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        veth_across(host_end, "eth0", None, ns, 1500)
        for cmd in (["ip", "-n", ns, "link", "set", "eth0", "address", VM1],
                    ["ip", "-n", ns, "addr", "add", "10.0.1.2/24", "dev", "eth0"],
                    ["ip", "-n", ns, "neigh", "replace", "10.0.1.1", "lladdr", GW, "dev", "eth0", "nud", "permanent"],
                    ["ip", "-n", ns, "route", "add", "default", "via", "10.0.1.1"]):
            subprocess.run(cmd, check=True)
        with packet_socket(host_end, blocking=False, vnet=True) as sock:
            client = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c",
                                       "import socket\ns=socket.socket();s.settimeout(2)\n"
                                       "try: s.connect(('10.0.2.2', 80))\nexcept OSError: pass"])
            got = None
            end = time.time() + 5
            while got is None and time.time() < end:
                select.select([sock], [], [], 0.5)
                try:
                    frame, vnet = sock.recv_vnet()
                except BlockingIOError:
                    continue
                if Ether(frame).haslayer(TCP):
                    got = frame, vnet
            client.wait()
        assert got is not None, "no SYN seen"
        frame, vnet = got
        assert vnet.needs_csum and (vnet.csum_start, vnet.csum_offset) == (34, 16)
        assert not l4_checksum_ok(Ether(frame)[TCP])  # as sent: only the pseudo-header sum
        t = SoftwareTarget(prog, g)
        t.send("vm", frame, vnet)
        (out,) = t.received("uplink")
        assert l4_checksum_ok(Ether(out)[VXLAN].payload[TCP])
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", host_end], capture_output=True, check=False)


def test_hypervisor_pipeline_tells_where_super_packets_may_travel(scenario):
    """vm_offload's vm_egress starts with segmentation in the hypervisor: super-packets travel
    whole until there; a pipeline whose first stage is on the NIC cuts them on entry."""
    prog, g = scenario
    hv = HypervisorPipeline(prog, g)
    assert hv._keeps_super_packets["vm_egress"] is True
    pl = place(g, prog, load_profile("targets/bmv2-smartnic.toml"))
    assert HypervisorPipeline(prog, g, pl.assignment, HYP)._keeps_super_packets["vm_egress"] is True
