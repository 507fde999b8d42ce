"""The DSL's action primitives: signatures, effects on fields, header changes.

One table describes each primitive once; the checker validates calls
against it, the IR derives read/write sets and header overhead from it, and
placement reads the capability each primitive needs from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from p4gen.midend.protocols import GENEVE_UDP_PORT, OUTER_TTL, VXLAN_UDP_PORT

COUNTER = -1  # parameter "width" of a counter reference

# Headers a tunnel encapsulation moves inward (outer name → inner name).
INNER_OF = {
    "ethernet": "inner_ethernet",
    "ipv4": "inner_ipv4",
    "ipv6": "inner_ipv6",
    "tcp": "inner_tcp",
    "udp": "inner_udp",
    "icmp": "inner_icmp",
}


# Fields under a TCP/UDP checksum (the pseudo-header and the L4 header itself): writing one
# makes the target that finishes the packet recompute the L4 checksums (the "dirty" state
# crosses between NIC and hypervisor with the packet, p4gen.crossing).
L4_CHECKSUM_FIELDS = frozenset(
    f"{prefix}{hdr}.{fld}"
    for prefix in ("", "inner_")
    for hdr, fields in (("ipv4", ("src", "dst", "protocol", "total_len", "ihl")),
                        ("ipv6", ("src", "dst", "next_hdr", "payload_len")),
                        ("tcp", ("src_port", "dst_port", "seq_no", "ack_no", "data_offset", "res", "flags", "window",
                                 "urgent_ptr")),
                        ("udp", ("src_port", "dst_port", "length")))
    for fld in fields
)


@dataclass(frozen=True)
class PrimParam:
    name: str
    width: int  # COUNTER for a counter name
    default: int | None = None


@dataclass(frozen=True)
class Primitive:
    name: str
    params: tuple[PrimParam, ...]
    capability: str
    reads: tuple[str, ...] = ()  # field keys; "hdr.*" means every field of hdr
    writes: tuple[str, ...] = ()
    pushes: tuple[str, ...] = ()  # outer header instances a tunnel encap adds, outermost first
    pops: tuple[str, ...] = ()  # outer header instances a tunnel decap removes
    ends_packet: bool = False  # no later stage sees the packet (drop)
    doc: str = ""

    @property
    def min_args(self) -> int:
        return sum(1 for p in self.params if p.default is None)


_ENCAP_MOVES = tuple(f"{o}.*" for o in INNER_OF) + tuple(f"{i}.*" for i in INNER_OF.values())
_FIVE_TUPLE = ("ipv4.src", "ipv4.dst", "ipv4.protocol", "ipv6.src", "ipv6.dst", "ipv6.next_hdr",
               "meta.l4_src", "meta.l4_dst")


def _encap(name: str, tunnel: str, udp_port: int, doc: str) -> Primitive:
    return Primitive(
        name=name,
        params=(
            PrimParam("src_mac", 48),
            PrimParam("dst_mac", 48),
            PrimParam("src_ip", 32),
            PrimParam("dst_ip", 32),
            PrimParam("vni", 24),
            PrimParam("ttl", 8, OUTER_TTL),
            PrimParam("udp_dst_port", 16, udp_port),
        ),
        capability=name,
        reads=_ENCAP_MOVES + _FIVE_TUPLE,
        writes=_ENCAP_MOVES + (f"{tunnel}.*",),
        pushes=("ethernet", "ipv4", "udp", tunnel),
        doc=doc,
    )


def _decap(name: str, tunnel: str, doc: str) -> Primitive:
    return Primitive(
        name=name,
        params=(),
        capability=name,
        reads=_ENCAP_MOVES + (f"{tunnel}.*",),
        writes=_ENCAP_MOVES + (f"{tunnel}.*",),
        pops=("ethernet", "ipv4", "udp", tunnel),
        doc=doc,
    )


PRIMITIVES: dict[str, Primitive] = {
    p.name: p
    for p in (
        Primitive("drop", (), "drop", ends_packet=True, doc="discard the packet"),
        Primitive("forward", (PrimParam("port", 9),), "forward", writes=("meta.$egress_port",),
                  doc="send the packet out of a port"),
        Primitive("to_hypervisor", (PrimParam("reason", 8, 0),), "punt", writes=("meta.$egress_port",),
                  doc="send the packet to the hypervisor over the punt path"),
        Primitive("dec_ttl", (), "ttl",
                  reads=("ipv4.ttl", "ipv6.hop_limit", "ipv4.$valid", "ipv6.$valid"),
                  writes=("ipv4.ttl", "ipv4.hdr_checksum", "ipv6.hop_limit"),
                  doc="decrement the IPv4 TTL or IPv6 hop limit"),
        Primitive("set_dscp", (PrimParam("dscp", 6),), "rewrite",
                  reads=("ipv4.$valid", "ipv6.$valid"),
                  writes=("ipv4.dscp", "ipv4.hdr_checksum", "ipv6.traffic_class"),
                  doc="set the DSCP bits of IPv4 or IPv6"),
        Primitive("push_vlan", (PrimParam("vid", 12), PrimParam("pcp", 3, 0)), "vlan",
                  reads=("ethernet.ether_type", "vlan.*"), writes=("ethernet.ether_type", "vlan.*"),
                  doc="add an 802.1Q tag"),
        Primitive("pop_vlan", (), "vlan",
                  reads=("vlan.*",), writes=("ethernet.ether_type", "vlan.*"),
                  doc="remove the outermost 802.1Q tag"),
        _encap("vxlan_encap", "vxlan", VXLAN_UDP_PORT, "VXLAN over IPv4 encapsulation (RFC 7348)"),
        _encap("geneve_encap", "geneve", GENEVE_UDP_PORT, "Geneve over IPv4 encapsulation (RFC 8926), no options"),
        _decap("vxlan_decap", "vxlan", "remove outer Ethernet/IPv4/UDP/VXLAN"),
        _decap("geneve_decap", "geneve", "remove outer Ethernet/IPv4/UDP/Geneve"),
        Primitive("count", (PrimParam("counter", COUNTER), PrimParam("index", 32, 0)), "counter",
                  doc="count the packet in an indirect counter"),
    )
}
