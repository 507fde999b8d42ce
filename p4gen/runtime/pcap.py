"""Classic pcap files (libpcap format, Ethernet link type), read and written without scapy.

Reading accepts both byte orders and microsecond or nanosecond timestamps;
a truncated or foreign file is an error with the offset where it went wrong.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

MAGIC_US, MAGIC_NS = 0xA1B2C3D4, 0xA1B23C4D
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144
CHUNK = 1 << 22  # bytes read or written at a time


class PcapError(Exception):
    pass


def read_pcap(path: str) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        head = fh.read(24)
        if len(head) < 24:
            raise PcapError(f"{path}: not a pcap file (only {len(head)} bytes)")
        for order in ("<", ">"):
            magic, _vmaj, _vmin, _tz, _sig, _snap, link = struct.unpack(order + "IHHiIII", head)
            if magic in (MAGIC_US, MAGIC_NS):
                break
        else:
            raise PcapError(f"{path}: not a pcap file (magic {head[:4].hex()}); pcapng is not supported")
        if link != LINKTYPE_ETHERNET:
            raise PcapError(f"{path}: link type {link} is not Ethernet (1)")
        rec = struct.Struct(order + "8xI4x")  # a record header: (included length)
        offset, buf, at = 24, b"", 0  # the file is read in large chunks, records cut out of them
        while True:
            if len(buf) - at < 16:
                more = fh.read(CHUNK)
                buf, at = buf[at:] + more, 0
                if not more:
                    if buf:
                        raise PcapError(f"{path}: truncated record header at byte {offset}")
                    return
                continue
            (incl,) = rec.unpack_from(buf, at)
            end = at + 16 + incl
            if end > len(buf):
                more = fh.read(max(CHUNK, incl + 16))
                if not more:
                    raise PcapError(f"{path}: truncated packet at byte {offset + 16}")
                buf, at = buf[at:] + more, 0
                continue
            yield buf[at + 16:end]
            offset += end - at
            at = end


def write_pcap(path: str, frames: Iterable[bytes]) -> int:
    count = 0
    rec = struct.Struct("<IIII").pack
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", MAGIC_US, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))
        out: list[bytes] = []
        size = 0
        for f in frames:
            n = len(f)
            out.append(rec(count // 1_000_000, count % 1_000_000, n, n))
            out.append(f)
            count += 1
            size += n
            if size >= CHUNK:
                fh.write(b"".join(out))
                out, size = [], 0
        fh.write(b"".join(out))
    return count
