"""Receive coalescing (GRO) for VMs that advertise LRO.

In-order TCP segments of one flow are merged into one packet of at most
`max_size` bytes of IP packet. A merged packet is flushed when a segment
carries PSH or FIN (merged first, as the last), when a segment does not
continue the sequence (gap), when its flags, ACK, window or options differ,
when merging would exceed the size limit, and at the end of each batch.
SYN, RST and URG segments are never merged, and non-TCP packets pass through.
A segment whose TCP checksum does not verify is never merged (it passes
through untouched, for the VM to drop): coalescing must not launder it.
Merged packets get a fresh IPv4 header checksum and a TCP checksum built from
the verified segments' payload sums, and go to the VM as virtio GSO packets
(`gso_size` = the first segment's payload, DATA_VALID), which is how a guest
with LRO accepts them on a 1500-byte link. Without LRO, everything passes
through untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

from p4gen.frontend.program import Program
from p4gen.runtime.checksum import fold, pseudo_header_sum, word_sum
from p4gen.runtime.tso import IPPROTO_TCP, TCP_FIN, TCP_PSH, Drop, Frame, Segmenter
from p4gen.runtime.virtio import F_DATA_VALID, GSO_TCPV4, GSO_TCPV6, PLAIN, VnetHdr

TCP_SYN, TCP_RST, TCP_URG = 0x02, 0x04, 0x20


@dataclass
class _Held:
    frame: Frame
    headers: bytes  # every byte before the payload, of the first segment
    payloads: list[bytes]
    payload_sum: int  # unfolded word sum of the payloads back to back
    next_seq: int
    size: int  # IP packet length if flushed now
    key: tuple
    count: int
    last_flags: int = 0  # PSH/FIN of the segment that closed the merge


class Coalescer:
    def __init__(self, prog: Program, max_size: int = 65535):
        self.seg = Segmenter(prog)
        self.max_size = max_size
        self.tcp = self.seg.tcp

    def coalesce(self, frames: list[bytes]) -> list[bytes]:
        """One batch: merge what can be merged, keep every flow's order."""
        return [frame for frame, _ in self.coalesce_vnet(frames)]

    def coalesce_vnet(self, frames: list[bytes]) -> list[tuple[bytes, VnetHdr]]:
        """As `coalesce`, each frame with the virtio-net header it goes to the VM with."""
        out: list[tuple[bytes, VnetHdr]] = []
        held: dict[tuple, _Held] = {}
        for frame in frames:
            info = self._tcp_info(frame)
            if info is None:
                out.append((frame, PLAIN))
                continue
            f, hlen, flow, same, seq, flags, payload, psum = info
            h = held.get(flow)
            if flags & (TCP_SYN | TCP_RST | TCP_URG) or not payload or psum is None:
                if h is not None:
                    out.append(self._flush(held.pop(flow)))
                out.append((frame, PLAIN))
                continue
            if h is not None and (seq != h.next_seq or same != h.key or h.size + len(payload) > self.max_size):
                out.append(self._flush(held.pop(flow)))
                h = None
            if h is None:
                h = _Held(f, bytes(frame[: f.l4 + hlen]), [], 0, seq, f.ip_hlen + hlen, same, 0)
                held[flow] = h
            h.payload_sum += _at_offset(psum, h.size - f.ip_hlen - hlen)
            h.payloads.append(payload)
            h.next_seq = (seq + len(payload)) & 0xFFFFFFFF
            h.size += len(payload)
            h.count += 1
            if flags & (TCP_PSH | TCP_FIN):
                h.last_flags = flags
                out.append(self._flush(held.pop(flow)))
        out += [self._flush(h) for h in held.values()]
        return out

    def _tcp_info(self, frame: bytes):
        try:
            f = self.seg.locate(frame)
            if f is None or f.protocol != IPPROTO_TCP:
                return None
            hlen = self.seg.tcp_header_len(frame, f)
        except Drop:
            return None
        t, l4 = self.tcp, f.l4
        flags = t["flags"].get(frame, l4)
        ports = bytes(frame[l4:l4 + 4])
        ip = self.seg.ip4 if f.version == 4 else self.seg.ip6
        addrs = bytes(frame[f.l3 + ip["src"].byte:f.l3 + ip["dst"].byte + ip["dst"].nbytes])
        flow = (bytes(frame[: f.l3]), f.version, addrs, ports)
        # What must be equal to merge: ACK, window, options, flags other than PSH/FIN, TTL/TOS.
        same = (t["ack_no"].get(frame, l4), t["window"].get(frame, l4), bytes(frame[l4 + t.size:l4 + hlen]),
                flags & ~(TCP_PSH | TCP_FIN), bytes(frame[f.l3:f.l3 + 2]))
        payload = bytes(frame[l4 + hlen:f.l3 + f.ip_len])
        psum = word_sum(payload)
        tcp_len = f.ip_len - f.ip_hlen
        if fold(pseudo_header_sum(addrs, IPPROTO_TCP, tcp_len) + word_sum(bytes(frame[l4:l4 + hlen])) + psum) != 0xFFFF:
            psum = None  # the checksum does not verify: never merged
        return f, hlen, flow, same, t["seq_no"].get(frame, l4), flags, payload, psum

    def _flush(self, h: _Held) -> tuple[bytes, VnetHdr]:
        if h.count == 1:  # nothing merged: the segment as it came
            frame = h.headers + h.payloads[0]
            return frame, PLAIN
        f = h.frame
        hdr = bytearray(h.headers)
        payload = b"".join(h.payloads)
        t = self.tcp
        flags = t["flags"].get(hdr, f.l4)
        flags |= h.last_flags & (TCP_PSH | TCP_FIN)
        t["flags"].set(hdr, flags, f.l4)
        tcp_len = len(hdr) - f.l4 + len(payload)
        if f.version == 4:
            ip = self.seg.ip4
            ip["total_len"].set(hdr, f.ip_hlen + tcp_len, f.l3)
            ip["hdr_checksum"].set(hdr, 0, f.l3)
            ip["hdr_checksum"].set(hdr, ~fold(word_sum(bytes(hdr[f.l3:f.l4]))) & 0xFFFF, f.l3)
        else:
            ip = self.seg.ip6
            ip["payload_len"].set(hdr, tcp_len, f.l3)
        addrs = bytes(hdr[f.l3 + ip["src"].byte:f.l3 + ip["dst"].byte + ip["dst"].nbytes])
        t["checksum"].set(hdr, 0, f.l4)
        total = pseudo_header_sum(addrs, IPPROTO_TCP, tcp_len) + word_sum(bytes(hdr[f.l4:])) + h.payload_sum
        t["checksum"].set(hdr, ~fold(total) & 0xFFFF, f.l4)
        vnet = VnetHdr(F_DATA_VALID, GSO_TCPV4 if f.version == 4 else GSO_TCPV6, len(hdr), len(h.payloads[0]))
        return bytes(hdr) + payload, vnet


def _at_offset(total: int, offset: int) -> int:
    """A word sum of bytes that start at `offset` of a longer run: at an odd offset every
    byte changes half of its word, which swaps the folded sum's two bytes (RFC 1071 §2)."""
    if not offset & 1:
        return total
    v = fold(total)
    return (v >> 8) | (v & 0xFF) << 8
