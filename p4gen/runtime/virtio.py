"""The VM attachment's packet metadata: `struct virtio_net_hdr` (virtio 1.x, §5.1.6).

A Linux guest behind a virtio NIC does not send finished packets. It leaves the
TCP/UDP checksum to the device (NEEDS_CSUM: the checksum field holds only the
pseudo-header sum; the device sums from `csum_start` to the end and stores the
result at `csum_start + csum_offset`) and hands over TCP super-packets of up to
64 KiB (GSO: `gso_type`, the segment size `gso_size`, the header length
`hdr_len`). Towards the guest, the device may mark checksums as verified
(DATA_VALID) and deliver coalesced packets with the same GSO fields, which is
how a guest with LRO accepts more than its MTU.

Linux packet sockets carry this header in front of every frame with
PACKET_VNET_HDR (packet(7)); veth pairs keep it intact, so a network namespace
behind a veth behaves as such a guest. The layout is little-endian (virtio 1.x,
and what packet sockets use on little-endian hosts): this module is its one home.
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass

LAYOUT = struct.Struct("<BBHHHH")  # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
SIZE = LAYOUT.size  # 10 bytes

F_NEEDS_CSUM = 1
F_DATA_VALID = 2

GSO_NONE = 0
GSO_TCPV4 = 1
GSO_UDP = 3  # UFO, obsolete
GSO_TCPV6 = 4
GSO_UDP_L4 = 5
GSO_ECN = 0x80

GSO_NAMES = {GSO_NONE: "none", GSO_TCPV4: "tcpv4", GSO_UDP: "udp", GSO_TCPV6: "tcpv6", GSO_UDP_L4: "udp_l4"}


@dataclass(frozen=True, slots=True)
class VnetHdr:
    """One frame's virtio-net header (all zero: a finished packet, nothing asked of anyone)."""

    flags: int = 0
    gso_type: int = GSO_NONE
    hdr_len: int = 0
    gso_size: int = 0
    csum_start: int = 0
    csum_offset: int = 0

    @classmethod
    def unpack(cls, data: bytes) -> VnetHdr:
        return cls(*LAYOUT.unpack_from(data))

    def pack(self) -> bytes:
        return LAYOUT.pack(self.flags, self.gso_type, self.hdr_len, self.gso_size, self.csum_start, self.csum_offset)

    @property
    def needs_csum(self) -> bool:
        return bool(self.flags & F_NEEDS_CSUM)

    @property
    def data_valid(self) -> bool:
        return bool(self.flags & F_DATA_VALID)

    @property
    def gso(self) -> int:
        """The GSO kind without the ECN bit (GSO_NONE: not a super-packet)."""
        return self.gso_type & ~GSO_ECN

    @property
    def tcp_gso(self) -> bool:
        return self.gso in (GSO_TCPV4, GSO_TCPV6) and self.gso_size > 0

    # ------------------------------------------------------------ the sidecar format
    def to_json(self) -> str:
        """One line of a `.vnet` sidecar (pcap has no place for this metadata)."""
        return json.dumps({k: v for k, v in asdict(self).items() if v})

    @classmethod
    def from_json(cls, line: str) -> VnetHdr:
        fields = json.loads(line) if line.strip() else {}
        if not isinstance(fields, dict) or set(fields) - set(cls.__dataclass_fields__):
            raise ValueError(f"not a virtio_net_hdr: {line.strip()!r}")
        return cls(**{k: int(v) for k, v in fields.items()})


PLAIN = VnetHdr()


def read_sidecar(path: str) -> list[VnetHdr]:
    """A `.vnet` sidecar: one JSON object per frame of the pcap beside it, in order
    (`{}` for a plain frame), e.g. {"flags": 1, "csum_start": 34, "csum_offset": 16}."""
    with open(path) as f:
        out = []
        for n, line in enumerate(f, 1):
            try:
                out.append(VnetHdr.from_json(line))
            except (ValueError, TypeError) as e:
                raise ValueError(f"{path}:{n}: {e}") from None
        return out


def write_sidecar(path: str, headers: list[VnetHdr]) -> None:
    with open(path, "w") as f:
        for h in headers:
            f.write(h.to_json() + "\n")
