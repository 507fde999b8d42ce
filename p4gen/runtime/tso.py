"""Encapsulation-aware TCP segmentation (TSO with an MSS override).

A VM hands the hypervisor TCP super-packets of up to 64 KiB. Before they are
encapsulated downstream, they must be cut so that no segment, once every
downstream header is added, exceeds the underlay MTU (nothing may be
IP-fragmented):

    MSS = min(the VM's MSS, underlay MTU − overhead added downstream
              − inner IP header − TCP header, options included)

Each segment gets: consecutive sequence numbers; IPv4 identification
incremented per segment; CWR only on the first segment; FIN and PSH only on
the last; a fresh IPv4 header checksum; and a TCP checksum over the
pseudo-header, the header and its slice of payload. Payload checksums come
from one vectorised pass over the whole payload (p4gen.runtime.checksum).
Field positions come from the compiled header layouts (std.nf).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from p4gen.frontend.program import Program
from p4gen.midend.protocols import IPPROTO_TCP, IPPROTO_UDP
from p4gen.runtime.checksum import fold, fold_rows, pseudo_header_sum, row_sums
from p4gen.runtime.layout import HeaderLayout
from p4gen.runtime.packet import Malformed, PacketParser

TCP_FIN, TCP_PSH, TCP_CWR = 0x01, 0x08, 0x80
SCALAR_SEGMENTS = 8  # up to this many segments, one at a time beats numpy's fixed cost per call


class Drop(Exception):
    """The packet is dropped; `reason` is the counter it is counted under."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Frame:
    """Where the layers of an Ethernet frame carrying IP start (offsets in bytes)."""

    l3: int
    version: int  # 4 or 6
    ip_hlen: int
    ip_len: int  # the IP packet's length from its header (total_len or 40 + payload_len)
    protocol: int
    l4: int  # start of the L4 header (l3 + ip_hlen)


@dataclass(frozen=True)
class Plan:
    """A cut decided but not made: the frame's layers, the TCP header length, the MSS, how many
    segments, and the bytes of all segments together (each: every header byte + its payload)."""

    frame: Frame
    tcp_hlen: int
    mss: int
    count: int
    total_bytes: int


def auto_mss(max_mss: int, underlay_mtu: int, overhead: int, ip_hlen: int, tcp_hlen: int) -> int:
    """The scenario's rule: overlay IPv4 1500−50−20−20 = 1410, with timestamps 1398, IPv6 1390."""
    return min(max_mss, underlay_mtu - overhead - ip_hlen - tcp_hlen)


class Segmenter:
    """Compiled once per program; `segment()` per packet."""

    def __init__(self, prog: Program, parser: PacketParser | None = None):
        self.parser = parser or PacketParser(prog)
        lay = self.parser.inst_layout
        self.eth: HeaderLayout = lay["ethernet"]
        self.ip4: HeaderLayout = lay["ipv4"]
        self.ip6: HeaderLayout = lay["ipv6"]
        self.tcp: HeaderLayout = lay["tcp"]
        self.udp: HeaderLayout | None = lay.get("udp")

    # ------------------------------------------------------------ locating (the program's parser)
    def l2_length(self, frame) -> int:
        """Bytes before the outermost IP header (the whole frame when it has none)."""
        try:
            pkt = self.parser.parse(frame)
        except Malformed:
            return min(len(frame), self.eth.size)
        for ip in ("ipv4", "ipv6"):
            if pkt.hdr.get(ip) is not None:
                return self.parser.offset_of(pkt, ip)
        return len(frame) - len(pkt.payload)

    def locate(self, frame) -> Frame | None:
        """The outermost IP layer of `frame`, found by the program's own parser; None for
        non-IP frames. Raises Drop('malformed') for what the parser rejects and for an IP
        length that does not fit the frame."""
        n = len(frame)
        try:
            pkt = self.parser.parse(frame)
        except Malformed:
            raise Drop("malformed") from None
        if (ip := pkt.hdr.get("ipv4")) is not None:
            off = self.parser.offset_of(pkt, "ipv4")
            hlen = self.ip4.size + len(pkt.opt.get("ipv4", b""))
            total = self.ip4["total_len"].get(ip)
            if self.ip4["version"].get(ip) != 4 or total < hlen or off + total > n:
                raise Drop("malformed")
            frag = self.ip4["frag_offset"].get(ip) or (self.ip4["flags"].get(ip) & 1)
            proto = self.ip4["protocol"].get(ip) if not frag else -1
            return Frame(off, 4, hlen, total, proto, off + hlen)
        if (ip := pkt.hdr.get("ipv6")) is not None:
            off = self.parser.offset_of(pkt, "ipv6")
            total = self.ip6.size + self.ip6["payload_len"].get(ip)
            if self.ip6["version"].get(ip) != 6 or off + total > n:
                raise Drop("malformed")
            # Extension headers are not walked: such packets are not segmented.
            return Frame(off, 6, self.ip6.size, total, self.ip6["next_hdr"].get(ip), off + self.ip6.size)
        return None

    def tcp_header_len(self, frame, f: Frame) -> int:
        if f.protocol != IPPROTO_TCP or f.ip_len < f.ip_hlen + self.tcp.size:
            raise Drop("malformed")
        hlen = self.tcp["data_offset"].get(frame, f.l4) * 4
        if hlen < self.tcp.size or f.ip_hlen + hlen > f.ip_len:
            raise Drop("malformed")
        return hlen

    # ------------------------------------------------------------ segmentation
    def segment(self, frame: bytes, max_mss: int, underlay_mtu: int, overhead: int,
                vm_mss: int = 0) -> list[bytes]:
        """Cut `frame` for a path that adds `overhead` bytes inside the outer IP packet.

        `vm_mss`: a VM's super-packet (virtio GSO) with the segment size the VM asked for;
        it is cut to at most that even where it would fit the path. Frames that fit pass
        unchanged. Raises Drop('oversize') for a non-TCP packet that cannot fit,
        Drop('malformed') for broken headers."""
        plan = self.plan(frame, max_mss, underlay_mtu, overhead, vm_mss)
        if plan is None:
            return [frame]
        return self.cut(frame, plan.frame, plan.tcp_hlen, plan.mss)

    def plan(self, frame: bytes, max_mss: int, underlay_mtu: int, overhead: int, vm_mss: int = 0) -> Plan | None:
        """How `segment` would cut `frame` (None: it passes whole), without cutting."""
        f = self.locate(frame)
        if f is None:  # not IP: the MTU limits the frame after the L2 header
            if len(frame) - self.eth.size + overhead > underlay_mtu:
                raise Drop("oversize")
            return None
        fits = f.ip_len + overhead <= underlay_mtu
        if fits and not vm_mss:
            return None
        if f.protocol != IPPROTO_TCP:
            if fits:
                return None
            raise Drop("oversize")
        tcp_hlen = self.tcp_header_len(frame, f)
        payload = f.ip_len - f.ip_hlen - tcp_hlen
        if fits and payload <= vm_mss:
            return None
        mss = auto_mss(min(max_mss, vm_mss) if vm_mss else max_mss, underlay_mtu, overhead, f.ip_hlen, tcp_hlen)
        if mss <= 0:
            raise Drop("oversize")
        if payload <= mss:
            return None
        count = -(-payload // mss)
        return Plan(f, tcp_hlen, mss, count, count * (f.l4 + tcp_hlen) + payload)

    # ------------------------------------------------------------ trains (cut after the rest ran once)
    def _innermost_tcp(self, frame: bytes):
        """(Frame of the innermost IP/TCP, its TCP header length, the outer length-carrying
        headers as (kind, offset)) of an already rewritten, maybe encapsulated, super-packet."""
        ps = self.parser
        pkt = ps.parse(frame)
        for tcp, ips in (("inner_tcp", ("inner_ipv4", "inner_ipv6")), ("tcp", ("ipv4", "ipv6"))):
            if pkt.hdr.get(tcp) is None:
                continue
            ip = next(i for i in ips if pkt.hdr.get(i) is not None)
            l3, l4 = ps.offset_of(pkt, ip), ps.offset_of(pkt, tcp)
            lay = ps.inst_layout[ip]
            if lay.name == "ipv4":
                ip_len, version = lay["total_len"].get(pkt.hdr[ip]), 4
            else:
                ip_len, version = lay.size + lay["payload_len"].get(pkt.hdr[ip]), 6
            f = Frame(l3, version, l4 - l3, ip_len, IPPROTO_TCP, l4)
            outer = [(ps.inst_layout[i].name, ps.offset_of(pkt, i)) for i in ps.order
                     if pkt.hdr.get(i) is not None and ps.inst_layout[i].name in ("ipv4", "ipv6", "udp")
                     and ps.offset_of(pkt, i) < l3]
            return f, self.tcp_header_len(frame, f), outer
        raise Drop("malformed")

    def train_layout(self, frame: bytes) -> tuple[Frame, int, list[tuple[str, int]]]:
        """(innermost IP/TCP, its TCP header length, the outer length-carrying headers) of a
        super-packet whose headers are final: what `cut` needs to replicate them."""
        return self._innermost_tcp(frame)

    def replicate(self, frame: bytes, mss: int) -> list[bytes]:
        """Cut a super-packet whose headers are final (rewritten, maybe encapsulated): the
        innermost TCP is segmented as `cut` does, and every outer IP and UDP header gets its
        lengths, and its checksum where it has one, per segment."""
        f, tcp_hlen, outer = self._innermost_tcp(frame)
        return self.cut(frame, f, tcp_hlen, mss, outer)

    def gso_frame(self, frame: bytes, mss: int):
        """(frame, virtio-net header) that has the kernel cut `frame` at `mss` (TSO, with Linux
        as the NIC), or None when the kernel cannot: its TCP is not the outermost layer. The
        frame's TCP checksum field then holds the pseudo-header sum for the whole TCP length,
        as the kernel's own TSO packets do (NEEDS_CSUM: each segment's is finished below)."""
        f, tcp_hlen, outer = self._innermost_tcp(frame)
        if outer:
            return None
        ip = self.ip4 if f.version == 4 else self.ip6
        addrs = frame[f.l3 + ip["src"].byte:f.l3 + ip["dst"].byte + ip["dst"].nbytes]
        seed = fold(pseudo_header_sum(addrs, IPPROTO_TCP, f.ip_len - f.ip_hlen))
        at = f.l4 + self.tcp["checksum"].byte
        return frame[:at] + seed.to_bytes(2, "big") + frame[at + 2:], self._gso_header(f, tcp_hlen, mss)

    def gso_header(self, frame: bytes, mss: int):
        """The virtio-net header of `gso_frame` (None when the kernel cannot cut `frame`)."""
        f, tcp_hlen, outer = self._innermost_tcp(frame)
        return None if outer else self._gso_header(f, tcp_hlen, mss)

    def _gso_header(self, f: Frame, tcp_hlen: int, mss: int):
        from p4gen.runtime.virtio import F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, VnetHdr

        return VnetHdr(F_NEEDS_CSUM, GSO_TCPV4 if f.version == 4 else GSO_TCPV6, f.l4 + tcp_hlen, mss, f.l4,
                       self.tcp["checksum"].byte)

    def cut(self, frame: bytes, f: Frame, tcp_hlen: int, mss: int,
            outer: list[tuple[str, int]] = ()) -> list[bytes]:
        """All segments at once (`cut_rows` of this one super-packet; up to SCALAR_SEGMENTS
        one at a time, `_cut_few`, where numpy's fixed cost would dominate). `outer`: headers
        in front of `f`'s IP whose lengths (and checksums) follow each segment's, as (header
        type, offset): "ipv4", "ipv6", "udp"."""
        hlen = f.l4 + tcp_hlen  # every header byte before the payload
        n = f.l3 + f.ip_len - hlen
        if n <= mss:
            return [bytes(frame[: f.l3 + f.ip_len])]
        count = -(-n // mss)
        if count <= SCALAR_SEGMENTS:
            return _cut_few(self, frame, f, tcp_hlen, mss, outer, hlen, n, count)
        rows, _count, last = cut_rows(self, np.frombuffer(frame, np.uint8, count=f.l3 + f.ip_len).reshape(1, -1),
                                      f, tcp_hlen, mss, outer)
        return [r.tobytes() for r in rows[:count - 1]] + [rows[count - 1, :last].tobytes()]


def _column(rows: np.ndarray, at: int, nbytes: int) -> np.ndarray:
    """A big-endian field of every row, as int64."""
    v = np.zeros(len(rows), np.int64)
    for j in range(nbytes):
        v = v << 8 | rows[:, at + j]
    return v


def _split_rows(a: np.ndarray, k: int, parts: int, width: int) -> np.ndarray:
    """A (k, parts · width) view as (k, parts, width), never a copy (assignments must land)."""
    v = a.view()
    v.shape = (k, parts, width)
    return v


def cut_rows(seg: Segmenter, rows: np.ndarray, f: Frame, tcp_hlen: int, mss: int, outer: list[tuple[str, int]],
             room: int = 0, payload: tuple[np.ndarray, int] | None = None) -> tuple[np.ndarray, int, int]:
    """`cut` of k super-packets of one layout and one IP length at once (rows: one each): the
    same bytes, written as k · count rows of room + hlen + mss bytes: first every full
    segment (super-packet i's segment j at row i · (count - 1) + j), then the k last
    segments, whose payload is shorter (the rest of the row is zero); each after `room`
    spare bytes. Returns (rows, count, length of a last segment). `f` is the layout with
    this IP length; at least two segments. With `payload` (rows, offset), `rows` need hold
    only the headers: the TCP payload is read from there (the flow cache's trains: headers
    rewritten, payload cut straight from the input)."""
    k = len(rows)
    hlen = f.l4 + tcp_hlen
    n = f.l3 + f.ip_len - hlen
    count = -(-n // mss)
    full = (count - 1) * mss
    last = n - full
    row = hlen + mss
    nf = k * (count - 1)  # full segments
    # Rows a multiple of 8 bytes apart, so that the word sums read aligned words.
    whole = np.empty((k * count, -(-(room + row) // 8) * 8), np.uint8)[:, :room + row]
    buf = whole[:, room:]

    def per_row(values: np.ndarray) -> np.ndarray:  # one value per super-packet → per segment
        return np.concatenate([np.repeat(values, count - 1, axis=0), values])

    # The payload is copied once into place and summed once; the headers are built in a
    # compact array of their own (per-row field writes and sums stay in cache), then copied in.
    src, src_at = payload if payload is not None else (rows, hlen)
    _split_rows(buf[:nf, hlen:], k, count - 1, mss)[...] = _split_rows(src[:, src_at:src_at + full], k, count - 1,
                                                                       mss)
    buf[nf:, hlen:hlen + last] = src[:, src_at + full:src_at + n]
    buf[nf:, hlen + last:] = 0  # so that the last segments' word sums see zero padding
    body = row_sums(buf, hlen, row)
    hdr = per_row(rows[:, :hlen])
    idx = np.concatenate([np.tile(np.arange(count - 1, dtype=np.int64), k), np.full(k, count - 1, np.int64)])
    lens = np.where(idx == count - 1, last, mss)

    def put(col: int, values: np.ndarray, nbytes: int) -> None:
        dtype = {2: ">u2", 4: ">u4"}[nbytes]
        hdr[:, col:col + nbytes] = values.astype(dtype).view(np.uint8).reshape(k * count, nbytes)

    def sum_to_end(start: int) -> np.ndarray:
        """Word sums from `start` to the end of each segment (the payload's paired from
        `start`: by an odd number of header bytes, its sum times 256 is)."""
        return row_sums(hdr, start, hlen) + (body if not (hlen - start) & 1 else body * 256)

    tcp, l4 = seg.tcp, f.l4
    put(l4 + tcp["seq_no"].byte, (per_row(_column(rows, l4 + tcp["seq_no"].byte, 4)) + idx * mss) & 0xFFFFFFFF, 4)
    fl = tcp["flags"]
    flags = per_row(rows[:, l4 + fl.byte].astype(np.int64))
    flags = np.where(idx > 0, flags & ~TCP_CWR, flags)
    flags = np.where(idx < count - 1, flags & ~(TCP_FIN | TCP_PSH), flags)
    hdr[:, l4 + fl.byte] = flags
    tcp_len = tcp_hlen + lens
    zeros = np.zeros(k * count, np.int64)
    if f.version == 4:
        ip = seg.ip4
        put(f.l3 + ip["total_len"].byte, f.ip_hlen + tcp_len, 2)
        ident = per_row(_column(rows, f.l3 + ip["identification"].byte, 2))
        put(f.l3 + ip["identification"].byte, (ident + idx) & 0xFFFF, 2)
        put(f.l3 + ip["hdr_checksum"].byte, zeros, 2)
        put(f.l3 + ip["hdr_checksum"].byte, ~fold_rows(row_sums(hdr, f.l3, f.l4)) & 0xFFFF, 2)
        addr = (f.l3 + ip["src"].byte, f.l3 + ip["dst"].byte + 4)
    else:
        ip = seg.ip6
        put(f.l3 + ip["payload_len"].byte, tcp_len, 2)
        addr = (f.l3 + ip["src"].byte, f.l3 + ip["dst"].byte + 16)
    put(l4 + tcp["checksum"].byte, zeros, 2)
    pseudo = per_row(row_sums(rows, addr[0], addr[1])) + IPPROTO_TCP
    put(l4 + tcp["checksum"].byte, ~fold_rows(pseudo + tcp_len + sum_to_end(l4)) & 0xFFFF, 2)
    if outer:
        lengths, ip_sums, udp = _outer_fields(seg, bytes(rows[0, :hlen]), outer)
        shrink = n - lens
        for at, _value in lengths:
            put(at, (per_row(_column(rows, at, 2)) - shrink) & 0xFFFF, 2)
        for at, start, stop in ip_sums:
            put(at, zeros, 2)
            put(at, ~fold_rows(row_sums(hdr, start, stop)) & 0xFFFF, 2)
        del udp  # (row 0's; each row decides whether its UDP checksums are there)
        spans, ip_span = [], None
        for kind, off in outer:  # every outer UDP and the addresses of the IP header before it
            if kind in ("ipv4", "ipv6"):
                lay = seg.ip4 if kind == "ipv4" else seg.ip6
                ip_span = (off + lay["src"].byte, off + lay["dst"].byte + lay["dst"].nbytes)
            elif seg.udp is not None and ip_span is not None:
                spans.append((off + seg.udp["checksum"].byte, off, ip_span))
        for at, start, (a0, a1) in spans[::-1]:  # innermost first (an outer UDP covers the inner)
            live = per_row(_column(rows, at, 2)) != 0  # a zero UDP checksum means none, and stays
            if not live.any():
                continue
            udp_len = per_row(_column(rows, start + seg.udp["length"].byte, 2))
            put(at, zeros, 2)  # (before summing: the field holds the super-packet's checksum)
            sums = per_row(row_sums(rows, a0, a1)) + IPPROTO_UDP + ((udp_len - shrink) & 0xFFFF) + \
                sum_to_end(start)
            value = ~fold_rows(sums) & 0xFFFF
            put(at, np.where(live, np.where(value == 0, 0xFFFF, value), 0), 2)
    buf[:, :hlen] = hdr
    return whole, count, hlen + last


def _sum(data) -> int:
    """Unfolded word sum of short data (a header, a segment): the big-integer remainder."""
    v = int.from_bytes(data, "big")
    if len(data) & 1:
        v <<= 8
    return (v % 0xFFFF or 0xFFFF) if v else 0


def _put16(buf: bytearray, at: int, value: int) -> None:
    buf[at] = value >> 8 & 0xFF
    buf[at + 1] = value & 0xFF


def _cut_few(seg: Segmenter, frame: bytes, f: Frame, tcp_hlen: int, mss: int, outer, hlen: int, n: int,
             count: int) -> list[bytes]:
    """`cut` for a few segments, one at a time: the same bytes as the vectorised cut (whose
    fixed cost of numpy calls is most of the work when there are only a few rows)."""
    tcp, l4, l3 = seg.tcp, f.l4, f.l3
    seq0 = tcp["seq_no"].get(frame, l4)
    flags0 = tcp["flags"].get(frame, l4)
    fl_at, seq_at, csum_at = l4 + tcp["flags"].byte, l4 + tcp["seq_no"].byte, l4 + tcp["checksum"].byte
    if f.version == 4:
        ip = seg.ip4
        ident0 = ip["identification"].get(frame, l3)
        addr = (l3 + ip["src"].byte, l3 + ip["dst"].byte + 4)
    else:
        ip = seg.ip6
        addr = (l3 + ip["src"].byte, l3 + ip["dst"].byte + 16)
    pseudo = pseudo_header_sum(frame[addr[0]:addr[1]], IPPROTO_TCP, 0)
    head = bytes(frame[:hlen])
    out = []
    for i in range(count):
        length = min(mss, n - i * mss)
        b = bytearray(head)
        b += frame[hlen + i * mss:hlen + i * mss + length]
        b[seq_at:seq_at + 4] = ((seq0 + i * mss) & 0xFFFFFFFF).to_bytes(4, "big")
        flags = flags0
        if i:
            flags &= ~TCP_CWR
        if i < count - 1:
            flags &= ~(TCP_FIN | TCP_PSH)
        b[fl_at] = flags & 0xFF
        tcp_len = tcp_hlen + length
        if f.version == 4:
            _put16(b, l3 + ip["total_len"].byte, f.ip_hlen + tcp_len)
            _put16(b, l3 + ip["identification"].byte, (ident0 + i) & 0xFFFF)
            at = l3 + ip["hdr_checksum"].byte
            _put16(b, at, 0)
            _put16(b, at, ~fold(_sum(b[l3:l4])) & 0xFFFF)
        else:
            _put16(b, l3 + ip["payload_len"].byte, tcp_len)
        _put16(b, csum_at, 0)
        _put16(b, csum_at, ~fold(pseudo + tcp_len + _sum(b[l4:])) & 0xFFFF)
        if outer:
            _outer_lengths_one(seg, b, frame, outer, n - length)
        out.append(bytes(b))
    return out


def _outer_fields(seg: Segmenter, frame: bytes, outer: list[tuple[str, int]]):
    """Where a replicated cut rewrites the outer headers, in the order it must: the length
    fields (offset, value in the super-packet); the IPv4 header checksums (offset, header
    start, end); the nonzero UDP checksums, innermost first (offset, UDP start, its length in
    the super-packet, the IP addresses of its pseudo-header). A zero UDP checksum means none."""
    lengths, ip_sums, udp = [], [], []
    ip_addrs: bytes | None = None
    for kind, off in outer:
        if kind == "ipv4":
            lay = seg.ip4
            lengths.append((off + lay["total_len"].byte, lay["total_len"].get(frame, off)))
            ip_addrs = frame[off + lay["src"].byte:off + lay["dst"].byte + 4]
            ip_sums.append((off + lay["hdr_checksum"].byte, off, off + lay["ihl"].get(frame, off) * 4))
        elif kind == "ipv6":
            lay = seg.ip6
            lengths.append((off + lay["payload_len"].byte, lay["payload_len"].get(frame, off)))
            ip_addrs = frame[off + lay["src"].byte:off + lay["dst"].byte + 16]
        elif seg.udp is not None:
            udp_len = seg.udp["length"].get(frame, off)
            lengths.append((off + seg.udp["length"].byte, udp_len))
            if seg.udp["checksum"].get(frame, off) and ip_addrs is not None:
                udp.append((off + seg.udp["checksum"].byte, off, udp_len, ip_addrs))
    return lengths, ip_sums, udp[::-1]


def _outer_lengths_one(seg: Segmenter, b: bytearray, frame: bytes, outer: list[tuple[str, int]],
                       shrink: int) -> None:
    """The outer headers of one segment of a replicated cut (`_outer_fields`; `cut_rows` does
    every row at once): each length less `shrink`, then the checksums."""
    lengths, ip_sums, udp = _outer_fields(seg, frame, outer)
    for at, value in lengths:
        _put16(b, at, (value - shrink) & 0xFFFF)
    for at, start, stop in ip_sums:
        _put16(b, at, 0)
        _put16(b, at, ~fold(_sum(b[start:stop])) & 0xFFFF)
    for at, start, udp_len, addrs in udp:
        _put16(b, at, 0)
        value = ~fold(pseudo_header_sum(addrs, IPPROTO_UDP, 0) + ((udp_len - shrink) & 0xFFFF) + _sum(b[start:]))
        _put16(b, at, value & 0xFFFF or 0xFFFF)
