"""Packets as the hypervisor pipeline sees them: header bytes, validity, payload.

`PacketParser` runs the program's own parser states (std.nf plus the
program's overrides), compiled once into small Python closures, with the same
outcome as the P4 parser the emitter generates: a header that does not fit
in the bytes left, a negative variable length, a header stack overflow or a
`reject` make the packet malformed; IPv4 header checksums (outer and inner)
are verified. `deparse` writes the valid headers back in the P4 deparser's
order, recomputing IPv4 header checksums, and TCP/UDP checksums when a
rewrite touched their pseudo-header or ports — exactly what the NIC does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from p4gen.frontend import program as P
from p4gen.frontend.primitives import L4_CHECKSUM_FIELDS
from p4gen.runtime.checksum import fold, word_sum
from p4gen.runtime.layout import HeaderLayout, compile_layouts

IPV4_INSTANCES = ("ipv4", "inner_ipv4")
L4_PAIRS = (("ipv4", "tcp"), ("ipv4", "udp"), ("ipv6", "tcp"), ("ipv6", "udp"),
            ("inner_ipv4", "inner_tcp"), ("inner_ipv4", "inner_udp"),
            ("inner_ipv6", "inner_tcp"), ("inner_ipv6", "inner_udp"))


class Malformed(Exception):
    """The parser rejected the packet (counted as `malformed`)."""


@dataclass
class Packet:
    """Header bytes per instance (None: invalid); stacks are lists; `opt` holds varbit tails."""

    hdr: dict[str, bytearray | None]
    stacks: dict[str, list[bytearray]]
    opt: dict[str, bytes]
    payload: bytes
    meta: dict[str, int] = field(default_factory=dict)
    l4_dirty: bool = False
    length: int = 0  # bytes as received (v1model's packet_length)

    def valid(self, inst: str, index: int | str | None = None) -> bool:
        if inst in self.stacks:
            st = self.stacks[inst]
            if index is None or index == "last":
                return bool(st)
            return isinstance(index, int) and index < len(st)
        return self.hdr.get(inst) is not None


def _crc16_table() -> list[int]:
    table = []
    for b in range(256):
        crc = b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC16 = _crc16_table()


@functools.lru_cache(maxsize=65536)
def crc16(data: bytes) -> int:
    """BMv2's HashAlgorithm.crc16: CRC-16/ARC (poly 0x8005 reflected, init 0, no final xor).

    Cached: the input is a flow's 5-tuple, so a flow hashes once."""
    crc = 0
    for b in data:
        crc = (crc >> 8) ^ _CRC16[(crc ^ b) & 0xFF]
    return crc


class PacketParser:
    def __init__(self, prog: P.Program):
        self.prog = prog
        self.layouts: dict[str, HeaderLayout] = compile_layouts(prog)
        self.inst_layout = {name: self.layouts[i.type.name] for name, i in prog.instances.items()}
        self.order = prog.deparse_order()
        self.stack_size = {n: i.stack for n, i in prog.instances.items() if i.stack}
        self.meta_defaults = {name: 0 for name in prog.metadata}
        # Per instance: (fixed layout, varbit length operand and maximum bits, or None).
        self.extract_info = {
            name: (self.inst_layout[name],
                   (i.type.varbit.varbit_length, i.type.varbit.width) if i.type.varbit else None)
            for name, i in prog.instances.items()}

    # ------------------------------------------------------------ values
    def get(self, pkt: Packet, ref: P.FieldRef) -> int:
        if ref.instance == "meta":
            return pkt.meta.get(ref.field, 0)
        buf = self.header_bytes(pkt, ref.instance, ref.index)
        if buf is None:
            return 0  # a field of an invalid header reads as 0 (never valid headers are zero in BMv2)
        return self.inst_layout[ref.instance][ref.field].get(buf)

    def set(self, pkt: Packet, ref: P.FieldRef, value: int) -> None:
        if ref.instance == "meta":
            pkt.meta[ref.field] = value & ((1 << ref.width) - 1)
            return
        buf = self.header_bytes(pkt, ref.instance, ref.index)
        if buf is not None:  # writing a field of an invalid header changes nothing on the wire
            self.inst_layout[ref.instance][ref.field].set(buf, value)
            if ref.key in L4_CHECKSUM_FIELDS:
                pkt.l4_dirty = True

    def header_bytes(self, pkt: Packet, inst: str, index: int | str | None = None) -> bytearray | None:
        if inst in self.stacks_of(pkt):
            st = pkt.stacks[inst]
            if not st:
                return None
            if index == "last":
                return st[-1]
            i = index if isinstance(index, int) else 0
            return st[i] if i < len(st) else None
        return pkt.hdr.get(inst)

    @staticmethod
    def stacks_of(pkt: Packet) -> dict:
        return pkt.stacks

    def eval(self, pkt: Packet, op: P.Operand, params: dict[str, int] | None = None) -> int:
        if isinstance(op, P.ConstVal):
            return op.value
        if isinstance(op, P.ParamRef):
            return (params or {})[op.name]
        if isinstance(op, P.FieldRef):
            return self.get(pkt, op)
        if isinstance(op, P.Arith):
            a, b = self.eval(pkt, op.left, params), self.eval(pkt, op.right, params)
            return {"+": a + b, "-": a - b, "*": a * b, "&": a & b, "|": a | b, "<<": a << b,
                    ">>": a >> b}[op.op]
        raise ValueError(f"cannot evaluate {op!r}")

    # ------------------------------------------------------------ parsing
    def parse(self, frame: bytes) -> Packet:
        pkt = Packet({n: None for n in self.prog.instances if n not in self.stack_size},
                     {n: [] for n in self.stack_size}, {}, b"", dict(self.meta_defaults), False, len(frame))
        pos = 0
        state = "start"
        steps = 0
        while state not in ("accept", "reject"):
            steps += 1
            if steps > 256:
                raise Malformed("parser loop")
            st = self.prog.parser[state]
            for inst, idx in st.extracts:
                lay, var = self.extract_info[inst]
                end = pos + lay.size
                if end > len(frame):
                    raise Malformed(f"{inst}: packet too short")
                buf = bytearray(frame[pos:end])
                pos = end
                if idx == "next":
                    if len(pkt.stacks[inst]) >= self.stack_size[inst]:
                        raise Malformed(f"{inst}: header stack overflow")
                    pkt.stacks[inst].append(buf)
                else:
                    pkt.hdr[inst] = buf
                if var is not None:
                    bits = self.varbit_bits(buf, lay, var[0])
                    if bits < 0 or bits > var[1] or bits % 8:
                        raise Malformed(f"{inst}: bad variable length")
                    n = bits // 8
                    if pos + n > len(frame):
                        raise Malformed(f"{inst}: packet too short")
                    pkt.opt[inst] = bytes(frame[pos:pos + n])
                    pos += n
            for ref, val in st.assigns:
                self.set(pkt, ref, self.eval(pkt, val))
            state = self.next_state(pkt, st)
        if state == "reject":
            raise Malformed("parser reject")
        pkt.payload = bytes(frame[pos:])
        for inst in IPV4_INSTANCES:
            buf = pkt.hdr.get(inst)
            if buf is not None and fold(word_sum(bytes(buf) + pkt.opt.get(inst, b""))) != 0xFFFF:
                raise BadChecksum(inst)
        return pkt

    def varbit_bits(self, buf: bytearray, lay: HeaderLayout, op: P.Operand) -> int:
        if isinstance(op, P.ConstVal):
            return op.value
        if isinstance(op, P.FieldRef):
            return lay[op.field].get(buf)
        a, b = self.varbit_bits(buf, lay, op.left), self.varbit_bits(buf, lay, op.right)
        return {"+": a + b, "-": a - b, "*": a * b}.get(op.op, 0)

    def next_state(self, pkt: Packet, st: P.ParserState) -> str:
        if not st.selector:
            return st.cases[0][1] if st.cases else "accept"
        values = [self.eval(pkt, e) for e in st.selector]
        for keys, nxt in st.cases:
            if all(k is None or _key_matches(k, v) for k, v in zip(keys, values, strict=True)):
                return nxt
        return "reject"  # P4: no case matches → error NoMatch

    # ------------------------------------------------------------ deparsing
    def deparse(self, pkt: Packet) -> bytes:
        for inst in IPV4_INSTANCES:
            buf = pkt.hdr.get(inst)
            if buf is not None:
                lay = self.inst_layout[inst]
                lay["hdr_checksum"].set(buf, 0)
                lay["hdr_checksum"].set(buf, ~fold(word_sum(bytes(buf) + pkt.opt.get(inst, b""))) & 0xFFFF)
        if pkt.l4_dirty:
            self.update_l4(pkt)
        parts = []
        for inst in self.order:
            if inst in pkt.stacks:
                parts += pkt.stacks[inst]
                continue
            buf = pkt.hdr.get(inst)
            if buf is not None:
                parts.append(buf)
                if inst in pkt.opt:
                    parts.append(pkt.opt[inst])
        parts.append(pkt.payload)
        return b"".join(parts)

    def update_l4(self, pkt: Packet) -> None:
        """TCP/UDP checksums over pseudo-header, header and everything after the last header."""
        order_valid = [i for i in self.order if pkt.hdr.get(i) is not None or pkt.stacks.get(i)]
        for ip, l4 in L4_PAIRS:
            ipb, l4b = pkt.hdr.get(ip), pkt.hdr.get(l4)
            if ipb is None or l4b is None:
                continue
            ipl, l4l = self.inst_layout[ip], self.inst_layout[l4]
            if l4.endswith("udp") and l4l["checksum"].get(l4b) == 0:
                continue
            addrs = bytes(ipb[ipl["src"].byte:ipl["dst"].byte + ipl["dst"].nbytes])
            if ipl.name == "ipv4":
                l4_len = ipl["total_len"].get(ipb) - ipl["ihl"].get(ipb) * 4
                pseudo = word_sum(addrs) + ipl["protocol"].get(ipb) + (l4_len & 0xFFFF)
            else:
                l4_len = ipl["payload_len"].get(ipb)
                pseudo = word_sum(addrs) + ipl["next_hdr"].get(ipb) + l4_len
            l4l["checksum"].set(l4b, 0)
            after = b"".join(bytes(pkt.hdr[i]) + pkt.opt.get(i, b"") for i in order_valid[order_valid.index(l4) + 1:]
                             if pkt.hdr.get(i) is not None)
            total = pseudo + word_sum(bytes(l4b) + pkt.opt.get(l4, b"")) + word_sum(after + pkt.payload)
            l4l["checksum"].set(l4b, ~fold(total) & 0xFFFF)


class BadChecksum(Malformed):
    """An IPv4 header checksum did not verify (counted as `bad_checksum`)."""



def _key_matches(k: P.KeyMatch, v: int) -> bool:
    if k.kind == "ternary":
        return v & (k.mask or 0) == k.value
    if k.kind == "range":
        return k.value <= v <= (k.high if k.high is not None else k.value)
    return v == k.value
