"""Classic pcap files (libpcap format, Ethernet link type), read and written without scapy.

Reading accepts both byte orders and microsecond or nanosecond timestamps;
a truncated or foreign file is an error with the offset where it went wrong.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

import numpy as np

MAGIC_US, MAGIC_NS = 0xA1B2C3D4, 0xA1B23C4D
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144
CHUNK = 1 << 22  # bytes read or written at a time
RECORD_HEADER = 16  # bytes before each frame: seconds, microseconds, included and original length


class PcapError(Exception):
    pass


def read_pcap(path: str) -> Iterator[bytes]:
    for chunk in read_pcap_chunks(path):
        yield from chunk


def read_pcap_chunks(path: str) -> Iterator[list[bytes]]:
    """The frames of a pcap file, a list per chunk of the file read (a few MB): the records'
    places are found in one tight loop, the frames cut out by `map` (p4gen run reads a million
    frames; a generator step per frame would be a tenth of its time). An error is raised after
    the frames before it."""
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
        incl_of = struct.Struct(order + "8xI4x").unpack_from  # a record header: (included length)
        offset, buf = 24, b""  # `offset`: where `buf` starts in the file
        while True:
            more = fh.read(CHUNK)
            buf += more
            n, at = len(buf), 0
            starts: list[int] = []
            ends: list[int] = []
            while n - at >= 16:
                end = at + 16 + incl_of(buf, at)[0]
                if end > n:
                    break
                starts.append(at + 16)
                ends.append(end)
                at = end
            if starts:
                yield list(map(buf.__getitem__, map(slice, starts, ends)))
            offset += at
            buf = buf[at:]
            if not more:
                if not buf:
                    return
                if len(buf) < 16:
                    raise PcapError(f"{path}: truncated record header at byte {offset}")
                raise PcapError(f"{path}: truncated packet at byte {offset + 16}")


FILE_HEADER = struct.pack("<IHHiIII", MAGIC_US, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET)


def record_headers(lengths: np.ndarray, first: int) -> np.ndarray:
    """The 16-byte record headers (one row each) of frames of `lengths`, numbered from `first`:
    the n-th frame written is stamped n microseconds after the epoch (p4gen's outputs have no
    time of their own, and the stamps keep their order)."""
    n = len(lengths)
    number = np.arange(first, first + n, dtype=np.int64)
    head = np.empty((n, 4), "<u4")
    head[:, 0], head[:, 1] = number // 1_000_000, number % 1_000_000
    head[:, 2] = head[:, 3] = lengths
    return head.view(np.uint8)


def write_records(path: str, chunks: Iterable[bytes]) -> None:
    """A pcap file of records already laid out (record headers and data, as `record_headers`)."""
    with open(path, "wb") as fh:
        fh.write(FILE_HEADER)
        for c in chunks:
            fh.write(c)


def write_pcap(path: str, frames: Iterable[bytes]) -> int:
    count = 0

    def records():
        nonlocal count
        out: list[bytes] = []
        size = 0
        for f in frames:
            out.append(f)
            size += len(f)
            if size >= CHUNK:
                yield _interleave(out, count)
                count += len(out)
                out, size = [], 0
        yield _interleave(out, count)
        count += len(out)

    write_records(path, records())
    return count


def _interleave(frames: list[bytes], first: int) -> bytes:
    heads = record_headers(np.fromiter(map(len, frames), np.int64, len(frames)), first).tobytes()
    return b"".join(x for i, f in enumerate(frames) for x in (heads[16 * i:16 * i + 16], f))
