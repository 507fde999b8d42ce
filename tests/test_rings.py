"""Memory-mapped packet rings (p4gen.control.rings): frames read and sent through the rings
are byte for byte, and in order, what a plain packet socket on the other end of a veth sends
and reads, VLAN tags, virtio-net headers and frames larger than a slot included (needs root
and iproute2)."""

from __future__ import annotations

import errno
import os
import select
import shutil
import time

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from p4gen.control.links import delete_links, packet_socket, veth
from p4gen.control.rings import RingSocket
from p4gen.runtime.virtio import F_NEEDS_CSUM, GSO_TCPV4, VnetHdr

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="creating veth pairs needs root and iproute2")


@pytest.fixture
def link():
    a, b = f"p4r{os.getpid() % 100000}a", f"p4r{os.getpid() % 100000}b"
    veth(a, b, mtu=9000)
    try:
        yield a, b
    finally:
        delete_links([a])


def frame(i: int, size: int = 0) -> bytes:
    pkt = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.9.9.1", dst="10.9.9.2", id=i) / \
        UDP(sport=1000 + i, dport=2)
    return bytes(pkt / (bytes([i % 256]) * max(0, size - len(pkt))))


def drain(sock, want: int, seconds: float = 2.0) -> list:
    got: list = []
    end = time.time() + seconds
    while len(got) < want and time.time() < end:
        select.select([sock], [], [], 0.1)
        got += sock.recv_batch(want - len(got))
    return got


def settle(sock) -> None:
    """Forget what the link said when it came up."""
    time.sleep(0.05)
    sock.recv_batch(1 << 16)


def test_frames_read_from_the_ring_are_the_frames_sent(link):
    a, b = link
    with RingSocket(a, slots=64, slot=2048) as ring, packet_socket(b) as tx:
        settle(ring)
        # Small ones, MTU-sized ones, jumbo ones larger than a slot (they wait on the socket's
        # queue, and must come back in their place), VLAN tags of both TPIDs.
        frames = [frame(i, size) for i, size in enumerate([60, 1514, 1900, 1990, 2100, 8000, 60, 9014, 300])]
        tags = (b"\x81\x00\x20\x05", b"\x88\xa8\x00\x07")
        frames += [f[:12] + tag + f[12:] for f, tag in zip(frames[:2], tags, strict=True)]
        for f in frames:
            tx.send(f)
        got = drain(ring, len(frames))
        assert [f for f, _ in got] == frames
        assert ring.truncated == 0


def test_frames_sent_through_the_ring_leave_at_the_flush_in_order(link):
    a, b = link
    with RingSocket(a, slots=64, slot=2048) as ring, packet_socket(b, blocking=False) as rx:
        settle(rx)
        frames = [frame(i, 60 + 97 * i) for i in range(20)]
        for f in frames[:10]:
            ring.send(f)
        time.sleep(0.05)
        assert rx.recv_batch(100) == []  # queued in the ring, nothing sent yet
        assert ring.pending == 10
        big = frame(99, 7000)  # larger than a slot: after the ten queued before it
        ring.send(big)
        for f in frames[10:]:
            ring.send(f)
        assert ring.flush() == 10
        got = [f for f, _ in drain(rx, 21)]
        assert got == frames[:10] + [big] + frames[10:]
        time.sleep(0.05)
        assert ring.recv_batch(100) == []  # what it sent (by either socket) never reads back
        # Longer than the link's MTU (9000): refused at once, as a plain socket's send() is; the
        # ring goes on. A VLAN tag may come on top of the MTU.
        with pytest.raises(OSError) as e:
            ring.send(frame(1, 9015))
        assert e.value.errno == errno.EMSGSIZE
        tagged = frame(2, 9014)
        tagged = tagged[:12] + b"\x81\x00\x00\x07" + tagged[12:]
        after = [frame(3, 100), tagged, frame(4, 200)]
        for f in after:
            ring.send(f)
        ring.flush()
        assert [f for f, _ in drain(rx, 3)] == after


def test_a_full_receive_ring_drops_the_newest_and_counts_them(link):
    a, b = link
    with RingSocket(a, slots=16, slot=2048) as ring, packet_socket(b) as tx:
        settle(ring)
        ring.stats()
        frames = [frame(i, 200) for i in range(ring.rx_n + 9)]
        for f in frames:
            tx.send(f)
        time.sleep(0.05)
        got = [f for f, _ in ring.recv_batch(1000)]
        assert got == frames[:ring.rx_n]
        received, dropped = ring.stats()
        assert dropped == 9 and received == len(frames)


def test_virtio_headers_through_the_rings(link):
    """A GSO super-packet with a partial checksum, written with PACKET_VNET_HDR on one end, reads
    back through the ring with the same header (the kernel's skb carries it across the veth);
    and one the ring sends reads back the same on a plain socket."""
    a, b = link
    tcp = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.9.9.1", dst="10.9.9.2") / \
        TCP(sport=1, dport=2, flags="A", chksum=0x1234)
    tcp = bytes(tcp)
    small = tcp + b"s" * 100
    big = tcp + bytes(range(256)) * 16  # 4096 bytes of payload: larger than a slot, cut at 1448
    hdr_small = VnetHdr(F_NEEDS_CSUM, 0, 0, 0, 34, 16)
    hdr_big = VnetHdr(F_NEEDS_CSUM, GSO_TCPV4, 54, 1448, 34, 16)
    with RingSocket(a, vnet=True, slots=32, slot=2048) as ring, packet_socket(b, vnet=True) as plain:
        settle(ring)
        plain.send(small, hdr_small)
        plain.send(big, hdr_big)
        got = drain(ring, 2)
        assert [f for f, _ in got] == [small, big]
        assert [(h.flags & F_NEEDS_CSUM, h.gso_type, h.gso_size, h.csum_start, h.csum_offset) for _, h in got] == \
            [(F_NEEDS_CSUM, 0, 0, 34, 16), (F_NEEDS_CSUM, GSO_TCPV4, 1448, 34, 16)]
        plain.sock.setblocking(False)
        settle(plain)
        ring.send(small, hdr_small)
        ring.send(big, hdr_big)
        ring.flush()
        back = drain(plain, 2)
        assert [f for f, _ in back] == [small, big]
        assert [(h.gso_type, h.gso_size, h.csum_start, h.csum_offset) for _, h in back] == \
            [(0, 0, 34, 16), (GSO_TCPV4, 1448, 34, 16)]
