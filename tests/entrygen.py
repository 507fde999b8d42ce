"""Seeded random packets that reach a program's own table entries.

Random packets rarely hit a 5-tuple rule with a source port range, a /64 and a
protocol at once, so equivalence tests built only from them mostly compare
drops. Here each packet is aimed at one initial entry: its key matches are
turned back into field values (an exact value, a prefix with random host
bits, a ternary value with random don't-care bits, a point inside a range),
the flow conditions of the entry's pipeline are applied, and the packet is
built with scapy (the tests' independent packet library). Entries of tunnel
tables (keys on vxlan/geneve) supply outer headers around packets aimed at
the tables behind the decapsulation.

A seeded `random.Random` rather than hypothesis draws them: hypothesis spends
small budgets on near-copies of its simplest examples, while each aimed packet
here is drawn afresh, directions taking turns (hypothesis still generates the
free-form packets of the equivalence test).
"""

from __future__ import annotations

import random

from scapy.contrib.geneve import GENEVE
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

from p4gen.frontend import program as P

# DSL field → scapy field, for the headers this generator builds.
SCAPY_FIELDS = {
    "ethernet": {"src": "src", "dst": "dst"},
    "ipv4": {"src": "src", "dst": "dst", "ttl": "ttl", "dscp": "tos"},
    "ipv6": {"src": "src", "dst": "dst", "hop_limit": "hlim", "traffic_class": "tc"},
}
TUNNEL_INSTANCES = {"vxlan", "geneve"}


def _value(km: P.KeyMatch, width: int, rng: random.Random) -> int | None:
    """A value of one field that satisfies one key match (None: leave the field as generated)."""
    full = (1 << width) - 1
    if km.wildcard or km.kind == "optional" and rng.random() < 0.3:
        return None
    if km.kind in ("exact", "optional"):
        return km.value
    if km.kind == "lpm":
        host = (1 << (width - (km.prefix_len or 0))) - 1
        return (km.value & ~host & full) | rng.randint(0, host)
    if km.kind == "ternary":
        mask = km.mask if km.mask is not None else full
        return (km.value & mask) | (rng.getrandbits(width) & ~mask & full)
    if km.kind == "range":
        return rng.randint(km.value, km.high if km.high is not None else km.value)
    raise ValueError(km.kind)


def _constraints(prog: P.Program, entry: P.TableEntry, rng: random.Random) -> dict[str, int]:
    table = prog.table(entry.nf, entry.table)
    values = {kf.field.key: _value(km, kf.field.width, rng) for kf, km in zip(table.keys, entry.keys, strict=True)}
    return {k: v for k, v in values.items() if v is not None}


def _pipeline_port(prog: P.Program, nf: str) -> str | None:
    for pl in prog.pipelines.values():
        if nf in pl.stages:
            return "vm" if pl.direction == "vm_egress" else "uplink"
    return None


def flow_fields(prog: P.Program, port: str | None = None) -> list[dict[str, tuple[P.ConstVal, int]]]:
    """For each flow (into the pipeline fed by `port`, or any), its `field == constant` conditions:
    field → (constant, field width); of an `||`, the last arm."""
    direction = {"vm": "vm_egress", "uplink": "vm_ingress", None: None}[port]

    def walk(c, out):
        if isinstance(c, P.CmpC) and c.op == "==" and isinstance(c.left, P.FieldRef) and \
                isinstance(c.right, P.ConstVal):
            out[c.left.key] = (c.right, c.left.width)
        elif isinstance(c, P.AndC):
            for o in c.operands:
                walk(o, out)
        elif isinstance(c, P.OrC):
            walk(c.operands[-1], out)
        return out

    return [walk(f.match, {}) for f in prog.flows.values()
            if direction in (None, prog.pipelines[f.pipeline].direction)] or [{}]


def _flow_values(prog: P.Program, port: str) -> list[dict[str, int]]:
    return [{k: cv.value for k, (cv, _w) in fields.items()} for fields in flow_fields(prog, port)]


def _addr(kind: str, value: int) -> str:
    if kind == "mac":
        return ":".join(f"{b:02x}" for b in value.to_bytes(6, "big"))
    import ipaddress

    return str(ipaddress.IPv4Address(value) if kind == "ipv4" else ipaddress.IPv6Address(value))


def _set(layer, hdr: str, fld: str, value: int) -> None:
    name = SCAPY_FIELDS.get(hdr, {}).get(fld)
    if name is None:
        return
    if fld in ("src", "dst"):
        value = _addr({"ethernet": "mac", "ipv4": "ipv4", "ipv6": "ipv6"}[hdr], value)  # type: ignore[assignment]
    elif hdr == "ipv4" and fld == "dscp":
        value = value << 2
    setattr(layer, name, value)


def plain_packet(c: dict[str, int], payload: bytes, syn: bool, v6: bool, towards_vm: bool):
    """Ethernet / IP / L4 / payload meeting the constraints `c` (IPv6 if `c` says so, or else if `v6`).

    Fields `c` leaves open take the scenario's VM-side or remote-side addresses, by direction."""
    six = any(k.startswith("ipv6.") for k in c) or (v6 and not any(k.startswith("ipv4.") for k in c))
    vm, remote = ("fd00:1::2", "fd00:2::9") if six else ("10.0.1.2", "10.0.2.9")
    src, dst = (remote, vm) if towards_vm else (vm, remote)
    l3 = IPv6(src=src, dst=dst) if six else IP(src=src, dst=dst)
    proto = c.get("ipv6.next_hdr" if six else "ipv4.protocol")
    if proto is None:
        proto = 17 if {c.get("meta.l4_src"), c.get("meta.l4_dst")} & {53, 123, 546, 547} else 6
    sport, dport = (443, 40000) if towards_vm else (40000, 443)
    sport, dport = c.get("meta.l4_src", sport), c.get("meta.l4_dst", dport)
    if proto == 6:
        l4 = TCP(sport=c.get("tcp.src_port", sport), dport=c.get("tcp.dst_port", dport),
                 flags="S" if syn else "PA")
    elif proto == 17:
        l4 = UDP(sport=c.get("udp.src_port", sport), dport=c.get("udp.dst_port", dport))
    elif proto in (1, 58):
        l4 = ICMPv6EchoRequest() if six and proto == 58 else ICMP()
        if not six and proto == 58 or six and proto == 1:
            l3.setfieldval("nh" if six else "proto", proto)
    else:
        l4 = Raw(b"")
        l3.setfieldval("nh" if six else "proto", proto)
    macs = ("02:00:00:00:01:02", "02:00:00:00:00:fe")
    eth = Ether(src=macs[towards_vm], dst=macs[not towards_vm])
    for key, value in c.items():
        hdr, fld = key.split(".")
        layer = {"ethernet": eth, "ipv4": None if six else l3, "ipv6": l3 if six else None}.get(hdr)
        if layer is not None:
            _set(layer, hdr, fld, value)
    return eth / l3 / l4 / Raw(payload)


def _tunnel(c: dict[str, int], inner, geneve: bool):
    outer = Ether(src="02:00:c0:a8:01:02", dst="02:00:c0:a8:01:01") / IP(src="192.168.1.2", dst="192.168.1.1")
    for key, value in c.items():
        inst, fld = key.split(".")
        layer = {"ethernet": outer, "ipv4": outer[IP]}.get(inst)
        if layer is not None:
            _set(layer, inst, fld, value)
    if geneve or "geneve.vni" in c:
        encap = UDP(sport=50000, dport=6081, chksum=0) / GENEVE(vni=c.get("geneve.vni", 7001), proto=0x6558)
    else:
        encap = UDP(sport=50000, dport=4789, chksum=0) / VXLAN(vni=c.get("vxlan.vni", 5001))
    return outer / encap / inner


class EntryPackets:
    """(packet, port it enters by) aimed at entries of the tables its pipeline applies.

    One entry is drawn from most of the pipeline's tables (in a random order, the first
    drawn wins a field), so a packet can pass an ACL rule and then hit a route or a
    delivery entry, instead of matching one table and missing the next."""

    def __init__(self, prog: P.Program, seed: int = 0):
        self.prog, self.rng = prog, random.Random(seed)
        self.plain: dict[str, dict[tuple[str, str], list[P.TableEntry]]] = {}
        self.tunnels: dict[str, list[P.TableEntry]] = {}
        known = set(SCAPY_FIELDS) | TUNNEL_INSTANCES | {"meta", "tcp", "udp"}
        for e in prog.entries:
            table = prog.table(e.nf, e.table)
            instances = {kf.field.instance for kf in table.keys}
            port = _pipeline_port(prog, e.nf)
            set_earlier = any(kf.field.instance == "meta" and kf.field.field not in ("l4_src", "l4_dst")
                              for kf in table.keys)
            if port is None or not instances <= known or set_earlier:
                continue  # a custom header or metadata set by earlier stages: not reachable by construction
            if instances & TUNNEL_INSTANCES:
                self.tunnels.setdefault(port, []).append(e)
            else:
                self.plain.setdefault(port, {}).setdefault((e.nf, e.table), []).append(e)
        self.ports = sorted(set(self.plain) | set(self.tunnels))

    def take(self, n: int) -> list[tuple[Ether, str]]:
        """n packets, the directions taking turns."""
        return [self.one(self.ports[i % len(self.ports)]) for i in range(n)] if self.ports else []

    def one(self, port: str) -> tuple[Ether, str]:
        rng, prog = self.rng, self.prog
        c: dict[str, int] = {}
        tables = sorted(self.plain.get(port, {}))
        rng.shuffle(tables)
        for key in tables:
            if rng.random() < 0.2:
                continue  # now and then leave a table to chance (its default action)
            for k, v in _constraints(prog, rng.choice(self.plain[port][key]), rng).items():
                c.setdefault(k, v)
        payload = rng.randbytes(rng.randint(0, 48))
        syn, v6 = rng.random() < 0.5, rng.random() < 0.5
        flow = rng.choice(_flow_values(prog, port))
        if port in self.tunnels and rng.random() < 0.5:
            t = rng.choice(self.tunnels[port])
            tc = {**flow, **_constraints(prog, t, rng)}
            # Behind the decapsulation the entries' fields name the inner headers (they become the
            # outermost ones there), so the inner packet carries them under their plain names.
            inner = plain_packet({k: v for k, v in c.items() if not k.startswith("ethernet.")}, payload, syn, v6,
                                 port == "uplink")
            return Ether(bytes(_tunnel(tc, inner, "geneve.vni" in tc))), port
        pkt = plain_packet({**flow, **c}, payload, syn, v6, port == "uplink")
        if rng.random() < 0.1:  # now and then an 802.1Q tag in front
            raw = bytes(pkt)
            pkt = Ether(raw[:12] + b"\x81\x00" + bytes(Dot1Q(vlan=rng.randint(1, 4094), type=pkt.type))[:4] +
                        raw[14:])
        return Ether(bytes(pkt)), port
