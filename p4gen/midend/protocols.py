"""Protocol numbers and the tunnels' outer headers: the one home of these constants.

Packet formats (field layouts) live in std.nf; the numbers that primitives write
into them live here. The P4 emitter and the hypervisor read them from here and
from nowhere else (a test scans both back ends for stray literals).
"""

from __future__ import annotations

from dataclasses import dataclass

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_VLAN = 0x8100  # 802.1Q TPID
ETHERTYPE_TEB = 0x6558  # transparent Ethernet bridging (Geneve's protocol type for Ethernet)
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPV4_VERSION = 4
IPV4_MIN_IHL = 5  # header words without options
IPV4_FLAGS_DF = 0b010  # don't fragment
VXLAN_FLAGS_I = 0x08  # RFC 7348: the VNI is valid
VXLAN_UDP_PORT = 4789
GENEVE_UDP_PORT = 6081
OUTER_TTL = 64

# Which L4 header's checksum covers which IP header's pseudo-header: both targets recompute
# these (after a rewrite of an address or port: primitives.L4_CHECKSUM_FIELDS), and the IPv4
# header checksums of IPV4_HEADERS always.
# Inner pairs first: an outer UDP checksum covers the inner headers, so it is computed last.
L4_CHECKSUM_PAIRS = tuple((f"{inner}{ip}", f"{inner}{l4}") for inner in ("inner_", "") for ip in ("ipv4", "ipv6")
                          for l4 in ("tcp", "udp"))
IPV4_HEADERS = ("ipv4", "inner_ipv4")

# The outer UDP source port of a tunnel: a hash of the inner 5-tuple in the dynamic range
# (RFC 7348 §5), so that underlay ECMP spreads flows: CRC-16 of
# (src, dst as 128-bit numbers, protocol, L4 source port, L4 destination port), OR 0xC000.
SRC_PORT_BASE = 0xC000
SRC_PORT_HASH_WIDTHS = (128, 128, 8, 16, 16)


@dataclass(frozen=True)
class Arg:
    """An outer field set from the encap primitive's argument `index`."""

    index: int


@dataclass(frozen=True)
class Computed:
    """An outer field computed per packet: "ip_total_len", "udp_length", "src_port", or the
    inner IP header's "inner_dscp" / "inner_ecn"."""

    what: str


Value = int | Arg | Computed


@dataclass(frozen=True)
class TunnelSpec:
    """What `<tunnel>_encap(src_mac, dst_mac, src_ip, dst_ip, vni, ttl, udp_dst_port)` writes.

    The headers `pushes` become valid as the new outer headers, every field set from
    `fields` (a field not named there is 0), after the old outer headers moved to their
    inner names (primitives.INNER_OF). Outer headers that are not pushed again (IPv6, TCP,
    ICMP) become invalid, and so do the variable parts (options) of the pushed ones.
    802.1Q tags are stripped first: the tunnel carries the frame untagged (as a VTEP's
    access port does), the innermost tag's EtherType on the inner Ethernet header.

    Decapsulation removes the outer headers, and with them the 802.1Q tags in front of
    the outer IP header (they belong to the outer frame).

    DSCP and ECN of the outer IPv4 header are copied from the inner IP header (IPv4's
    dscp/ecn, IPv6's traffic class): DSCP in the "uniform" model (RFC 2983), so the underlay
    treats the tunnel as its traffic; ECN per RFC 6040's normal mode, so congestion marks
    the underlay sets can be propagated at decapsulation. A non-IP inner frame gives 0."""

    name: str
    pushes: tuple[str, ...]
    fields: tuple[tuple[str, tuple[tuple[str, Value], ...]], ...]

    def values(self, inst: str) -> dict[str, Value]:
        return dict(next((f for i, f in self.fields if i == inst), ()))


def _tunnel(name: str, tunnel_fields: tuple[tuple[str, Value], ...]) -> TunnelSpec:
    return TunnelSpec(name, ("ethernet", "ipv4", "udp", name), (
        ("ethernet", (("src", Arg(0)), ("dst", Arg(1)), ("ether_type", ETHERTYPE_IPV4))),
        ("ipv4", (("version", IPV4_VERSION), ("ihl", IPV4_MIN_IHL), ("dscp", Computed("inner_dscp")),
                  ("ecn", Computed("inner_ecn")), ("total_len", Computed("ip_total_len")),
                  ("flags", IPV4_FLAGS_DF), ("ttl", Arg(5)), ("protocol", IPPROTO_UDP), ("src", Arg(2)),
                  ("dst", Arg(3)))),
        ("udp", (("src_port", Computed("src_port")), ("dst_port", Arg(6)), ("length", Computed("udp_length")))),
        (name, tunnel_fields),
    ))


TUNNELS = {
    "vxlan": _tunnel("vxlan", (("flags", VXLAN_FLAGS_I), ("vni", Arg(4)))),
    "geneve": _tunnel("geneve", (("protocol_type", ETHERTYPE_TEB), ("vni", Arg(4)))),
}
