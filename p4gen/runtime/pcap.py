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
        offset = 24
        while True:
            rec = fh.read(16)
            if not rec:
                return
            if len(rec) < 16:
                raise PcapError(f"{path}: truncated record header at byte {offset}")
            _s, _us, incl, _orig = struct.unpack(order + "IIII", rec)
            data = fh.read(incl)
            if len(data) < incl:
                raise PcapError(f"{path}: truncated packet at byte {offset + 16}")
            offset += 16 + incl
            yield data


def write_pcap(path: str, frames: Iterable[bytes]) -> int:
    count = 0
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", MAGIC_US, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))
        for i, f in enumerate(frames):
            fh.write(struct.pack("<IIII", i // 1_000_000, i % 1_000_000, len(f), len(f)))
            fh.write(f)
            count += 1
    return count
