"""The Internet checksum (RFC 1071), vectorised for payloads.

Sums are kept unfolded (plain Python ints of 16-bit big-endian words) so that
partial sums of pieces (pseudo-header, header, payload slices) add up, and
folded once at the end. Payload sums run in numpy over the whole buffer; the
per-segment sums of a super-packet come from one `np.add.reduceat` over its
words, so segmentation touches each payload byte once for checksumming.
"""

from __future__ import annotations

import numpy as np

SMALL = 512  # below this many bytes a big-integer remainder beats a numpy call


def word_sum(data) -> int:
    """Sum of the 16-bit big-endian words of `data` (odd length: zero-padded), unfolded or
    partly folded: congruent modulo 0xFFFF to the true sum and zero only when it is, which is
    all that `fold` of a total of such sums needs.

    Short data (headers) is summed as one big integer modulo 0xFFFF (2^16 ≡ 1, so the
    remainder is the end-around-carry sum); longer data in numpy."""
    n = len(data)
    if n < SMALL:
        v = int.from_bytes(data, "big")
        if n & 1:
            v <<= 8
        return (v % 0xFFFF or 0xFFFF) if v else 0
    even = n & ~1
    total = int(np.frombuffer(data, dtype=">u2", count=even // 2).sum(dtype=np.uint64)) if even else 0
    if n & 1:
        total += data[n - 1] << 8
    return total


def pseudo_header_sum(addrs, protocol: int, l4_len: int) -> int:
    """The TCP/UDP pseudo-header's word sum, IPv4 (RFC 793) and IPv6 (RFC 8200 §8.1) alike:
    source and destination address (`addrs`, back to back), the protocol and the L4 length
    (a 32-bit IPv6 length sums to the same value modulo 0xFFFF as its two words)."""
    return word_sum(addrs) + protocol + l4_len


def fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksum(*parts) -> int:
    """The 16-bit checksum field value for the concatenation of byte strings of even length
    (the last may be odd)."""
    return ~fold(sum(word_sum(p) for p in parts)) & 0xFFFF


def chunk_sums(payload, size: int) -> list[int]:
    """Unfolded word sums of payload[0:size], payload[size:2·size], … in one vectorised pass.

    With an even `size` every chunk starts on a word boundary; an odd size falls
    back to summing each chunk on its own (still vectorised per chunk)."""
    n = len(payload)
    if n == 0:
        return []
    if size & 1:
        return [word_sum(payload[i:i + size]) for i in range(0, n, size)]
    words = np.frombuffer(payload, dtype=">u2", count=n // 2).astype(np.uint64)
    starts = np.arange(0, n // 2, size // 2) if n // 2 else np.array([], dtype=np.int64)
    sums = [int(x) for x in np.add.reduceat(words, starts)] if len(words) else []
    if n & 1:  # the odd last byte belongs to the last chunk
        if len(sums) * size >= n:
            sums[-1] += payload[n - 1] << 8
        else:
            sums.append(payload[n - 1] << 8)
    return sums


def complete_partial(frame: bytes, start: int, offset: int) -> bytes:
    """Finish a checksum a sender left to the device (virtio NEEDS_CSUM, Linux CHECKSUM_PARTIAL):
    the field at start + offset holds the pseudo-header sum; the checksum covers everything
    from `start` to the end of the frame, that field included."""
    at = start + offset
    if start < 0 or at + 2 > len(frame):
        raise ValueError(f"checksum at {start}+{offset} lies outside a {len(frame)}-byte frame")
    value = (~fold(word_sum(frame[start:])) & 0xFFFF) or 0xFFFF  # as skb_checksum_help: UDP's 0 means none
    return frame[:at] + value.to_bytes(2, "big") + frame[at + 2:]


def row_sums(buf: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Unfolded 16-bit word sums of buf[:, start:stop] for every row of a 2-D uint8 array
    (bytes are paired from `start`; an odd width is zero-padded), as non-negative int64 values
    congruent to them modulo 0xFFFF (what a one's complement sum needs). Segmentation and the
    flow cache's vector replay sum headers and payloads of many packets at once with it.

    Long spans are summed as native 32-bit words (RFC 1071: the one's complement sum does
    not depend on byte order or word width; fold to 16 bits and swap the bytes back), twice
    as fast as big-endian 16-bit words in numpy."""
    if not start & 1 and stop - start >= 64:
        # From the 4-byte-aligned address at or before `start` when rows keep their alignment
        # (unaligned words sum at half the speed), less the one word that adds.
        lead = (buf.ctypes.data + start) % 4 if buf.strides[0] % 4 == 0 else 0
        lead = lead if lead == 2 and start >= 2 else 0
        at = start - lead
        mid = at + (stop - at) // 4 * 4
        wide = buf[:, at:mid].view("<u4").sum(axis=1, dtype=np.uint64).astype(np.int64)
        if lead:  # its little-endian value, taken off (modulo 0xFFFF: add its complement)
            wide += 0xFFFF - (buf[:, at].astype(np.int64) | buf[:, at + 1].astype(np.int64) << 8)
        wide = fold_rows(wide)
        wide = (wide >> 8) | ((wide & 0xFF) << 8)  # the byte-swapped sum's bytes, back in order
        return wide + row_sums(buf, mid, stop) if mid < stop else wide
    if not (start | stop | buf.shape[1]) & 1:  # word-aligned: sum the bytes as big-endian words
        words = buf.view(">u2")[:, start // 2:stop // 2]
        if len(buf) >= 256 and 0 < stop - start <= 64:  # a header of many rows: by columns (numpy
            total = words[:, 0].astype(np.int64)  # reduces short rows one at a time, slowly)
            for j in range(1, words.shape[1]):
                total += words[:, j]
            return total
        return words.sum(axis=1, dtype=np.uint64).astype(np.int64)
    part = buf[:, start:stop]
    if part.shape[1] & 1:
        part = np.concatenate([part, np.zeros((part.shape[0], 1), dtype=np.uint8)], axis=1)
    words = part[:, 0::2].astype(np.int64) << 8 | part[:, 1::2].astype(np.int64)
    return words.sum(axis=1)


def fold_rows(sums: np.ndarray) -> np.ndarray:
    """`fold` of every element (the checksum field is then ~fold & 0xFFFF)."""
    sums = sums.astype(np.int64)
    while (sums >> 16).any():
        sums = (sums & 0xFFFF) + (sums >> 16)
    return sums
