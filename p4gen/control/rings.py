"""Packet sockets with memory-mapped rings (PACKET_RX_RING / PACKET_TX_RING, TPACKET_V2).

A plain packet socket costs a system call per frame each way. With rings the kernel
writes received frames into a shared buffer that is read without any call, and the
frames to send are written into a second one and handed over together by one `send`
(packet(7), Documentation/networking/packet_mmap.rst). `p4gen up` reads a batch from
each link's ring, runs it, and flushes every link's transmit ring once per batch.

The slots are TPACKET_V2's, sized for an MTU-sized frame: a 32-byte `tpacket2_hdr`
(status, lengths, the MAC offset, the VLAN tag the kernel took off), then the frame. On
a link that speaks virtio-net (PACKET_VNET_HDR) the kernel puts the 10-byte virtio-net
header right before a frame it receives and reads one at the start of a frame it sends.

Super-packets (GSO, up to 64 KiB) do not fit a slot, and slots of that size would
leave a ring room for a few hundred frames only: bursts of small ones would overflow
it. With PACKET_COPY_THRESH on, the kernel marks a frame larger than its slot
TP_STATUS_COPY and queues it whole on the socket as well: read in ring order, with
one recvmsg. A frame to send that is larger than a slot goes out after the frames
queued before it, through a second, plain socket on the link (a socket with a transmit
ring sends only from its ring).

`RingSocket` has the interface of `links.PacketSocket` (send, recv_vnet, recv_batch,
flush, stats, fileno); frames read the same (a VLAN tag taken off is put back).
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import socket
import struct

from p4gen.control.links import (
    ETH_P_ALL,
    PACKET_AUXDATA,
    PACKET_STATISTICS,
    PACKET_VNET_HDR,
    SO_RCVBUFFORCE,
    SO_SNDBUFFORCE,
    SOL_PACKET,
    TPACKET_STATS,
    receive,
    with_tag,
)
from p4gen.runtime.virtio import PLAIN, VnetHdr
from p4gen.runtime.virtio import SIZE as VNET_SIZE

PACKET_RX_RING, PACKET_COPY_THRESH, PACKET_VERSION, PACKET_TX_RING, PACKET_LOSS, PACKET_IGNORE_OUTGOING = \
    5, 7, 10, 13, 14, 23
SIOCGIFMTU = 0x8921
TPACKET_V2 = 1
TPACKET_REQ = struct.Struct("=IIII")  # struct tpacket_req: block size, block count, frame size, frame count
HDR = struct.Struct("=IIIHHIIHH4x")  # struct tpacket2_hdr
STATUS = struct.Struct("=I")
TX_DATA = HDR.size  # TPACKET2_HDRLEN minus sizeof(struct sockaddr_ll): where a frame to send starts
TP_STATUS_KERNEL = TP_STATUS_AVAILABLE = 0
TP_STATUS_USER = TP_STATUS_SEND_REQUEST = 1
TP_STATUS_COPY = 2  # receive: the frame did not fit its slot; it waits whole on the socket's queue
TP_STATUS_WRONG_FORMAT = 4
VLAN_TPIDS = (b"\x81\x00", b"\x88\xa8")
SLOT = 2048  # a 1500-byte frame with a VLAN tag, a punt header and the virtio-net header
BLOCK = 1 << 20  # the kernel allocates a ring in blocks (a power of two pages); slots never cross one


def ring_layout(slot: int, want: int) -> tuple[bytes, list[int], int]:
    """The tpacket_req of a ring of at least `want` slots, each slot's offset, the ring's bytes."""
    block = max(mmap.PAGESIZE, min(BLOCK, 1 << (slot * want - 1).bit_length()))
    while block < slot:
        block <<= 1
    per = block // slot
    blocks = -(-want // per)
    offsets = [b * block + i * slot for b in range(blocks) for i in range(per)]
    return TPACKET_REQ.pack(block, blocks, slot, per * blocks), offsets, block * blocks


class RingFull(BlockingIOError):
    """Every transmit slot is taken (the kernel has not sent them yet): the frame is dropped."""


class RingSocket:
    """A packet socket on one interface with a receive and a transmit ring of `slots` slots
    of `slot` bytes each; `buffer` bytes of socket queue for the frames larger than a slot."""

    def __init__(self, ifname: str, *, vnet: bool = False, slots: int = 4096, slot: int = SLOT,
                 buffer: int = 8 << 20):
        self.ifname, self.vnet, self.slot = ifname, vnet, slot
        rx_req, self.rx_off, rx_bytes = ring_layout(slot, slots)
        tx_req, tx_off, tx_bytes = ring_layout(slot, slots)
        self.tx_off = [rx_bytes + o for o in tx_off]
        self.rx_n, self.tx_n = len(self.rx_off), len(self.tx_off)
        self.rx_at = self.tx_at = 0
        self.pending = 0  # frames written to the transmit ring since the last flush
        self.truncated = 0  # frames larger than a slot that the kernel could not queue whole: dropped
        self.refused = 0  # frames the kernel would not send (TP_STATUS_WRONG_FORMAT)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            for force, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
                try:  # the queues for frames larger than a slot (root may exceed net.core.rmem_max)
                    self.sock.setsockopt(socket.SOL_SOCKET, force, buffer)
                except OSError:
                    self.sock.setsockopt(socket.SOL_SOCKET, plain, buffer)
            self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            self.sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
            if vnet:
                self.sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
            self.sock.setsockopt(SOL_PACKET, PACKET_COPY_THRESH, 1)
            # What the side socket sends would come back as outgoing frames (a packet socket is
            # spared only its own): received frames only.
            self.sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            # A frame the kernel refuses is skipped: without this it would stop the transmit ring
            # there for good (it sends from the ring's head only).
            self.sock.setsockopt(SOL_PACKET, PACKET_LOSS, 1)
            self.sock.setsockopt(SOL_PACKET, PACKET_RX_RING, rx_req)
            self.sock.setsockopt(SOL_PACKET, PACKET_TX_RING, tx_req)
            self.ring = mmap.mmap(self.sock.fileno(), rx_bytes + tx_bytes, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
            self.sock.bind((ifname, ETH_P_ALL))
            ifreq = fcntl.ioctl(self.sock.fileno(), SIOCGIFMTU, struct.pack("16si", ifname.encode(), 0))
            self.mtu = struct.unpack_from("i", ifreq, 16)[0]
            self.big = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # receives nothing (protocol 0)
            try:
                self.big.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, buffer)
            except OSError:
                pass
            if vnet:
                self.big.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
            self.big.bind((ifname, 0))
        except OSError:
            self.sock.close()
            if hasattr(self, "big"):
                self.big.close()
            raise
        self.sock.setblocking(False)
        self.big.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    # ------------------------------------------------------------ receive
    def recv_batch(self, limit: int) -> list[tuple[bytes, VnetHdr]]:
        """Up to `limit` frames in arrival order, each with its virtio-net header (PLAIN on a
        link without); the slots go back to the kernel. A system call only for a frame larger
        than a slot."""
        out: list[tuple[bytes, VnetHdr]] = []
        ring, offsets, n, at = self.ring, self.rx_off, self.rx_n, self.rx_at
        unpack, vnet = HDR.unpack_from, self.vnet
        while len(out) < limit:
            base = offsets[at]
            status, length, snap, mac, _net, _sec, _nsec, tci, tpid = unpack(ring, base)
            if not status & TP_STATUS_USER:
                break
            if snap == length:
                start = base + mac
                frame = with_tag(ring[start:start + snap], status, tci, tpid)
                out.append((frame, VnetHdr.unpack(ring[start - VNET_SIZE:start]) if vnet else PLAIN))
            elif status & TP_STATUS_COPY:  # the whole frame waits on the socket, in the same order
                try:
                    out.append(receive(self.sock, vnet))
                except BlockingIOError:
                    self.truncated += 1
            else:
                self.truncated += 1
            STATUS.pack_into(ring, base, TP_STATUS_KERNEL)
            at = at + 1 if at + 1 < n else 0
        self.rx_at = at
        return out

    def recv_vnet(self) -> tuple[bytes, VnetHdr]:
        """One frame (BlockingIOError if none waits)."""
        got = self.recv_batch(1)
        if not got:
            raise BlockingIOError("no frame in the receive ring")
        return got[0]

    def recv(self) -> bytes:
        return self.recv_vnet()[0]

    # ------------------------------------------------------------ send
    def send(self, frame: bytes, vnet: VnetHdr = PLAIN) -> int:
        """Queue a frame in the transmit ring, sent at the next `flush` (or now, when the ring is
        full or the frame larger than a slot). RingFull (a BlockingIOError) when it cannot go."""
        if len(frame) > self.mtu + 14 + (4 if frame[12:14] in VLAN_TPIDS else 0) and not (self.vnet and vnet.gso):
            raise OSError(errno.EMSGSIZE, "frame longer than the link's MTU")  # (as send() on a plain socket)
        data = vnet.pack() + frame if self.vnet else frame
        if TX_DATA + len(data) > self.slot:  # after what is queued, in a call of its own
            self.flush()
            self.big.send(data)
            return len(frame)
        ring, base = self.ring, self.tx_off[self.tx_at]
        status = STATUS.unpack_from(ring, base)[0]
        if status != TP_STATUS_AVAILABLE:
            self.flush()
            status = STATUS.unpack_from(ring, base)[0]
            if status == TP_STATUS_WRONG_FORMAT:
                self.refused += 1
            elif status != TP_STATUS_AVAILABLE:
                raise RingFull("transmit ring full")
        ring[base + TX_DATA:base + TX_DATA + len(data)] = data
        HDR.pack_into(ring, base, TP_STATUS_SEND_REQUEST, len(data), len(data), 0, 0, 0, 0, 0, 0)
        self.tx_at = self.tx_at + 1 if self.tx_at + 1 < self.tx_n else 0
        self.pending += 1
        return len(frame)

    def flush(self) -> int:
        """Hand every queued frame to the kernel in one system call; how many were queued."""
        n, self.pending = self.pending, 0
        if n:
            try:
                self.sock.send(b"", socket.MSG_DONTWAIT)
            except BlockingIOError:  # the device's queue is full: they go at the next flush
                self.pending = n
            except OSError:  # (not expected: with PACKET_LOSS the kernel skips what it refuses)
                self.refused += 1
        return n

    # ------------------------------------------------------------ the rest of PacketSocket's
    def stats(self) -> tuple[int, int]:
        """(frames received, frames dropped because the ring was full) since the last call."""
        return TPACKET_STATS.unpack(self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, TPACKET_STATS.size))

    def drops(self) -> dict[str, int]:
        """What the socket dropped since the last call, by reason: queue_full (the receive ring
        was full), truncated (larger than a slot and not queued whole), refused (by the kernel)."""
        out = {"queue_full": self.stats()[1], "truncated": self.truncated, "refused": self.refused}
        self.truncated = self.refused = 0
        return out

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.flush()
            self.ring.close()
            self.sock.close()
            self.big.close()

    def __enter__(self) -> RingSocket:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
