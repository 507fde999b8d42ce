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
from collections.abc import Callable
from dataclasses import dataclass, field

from p4gen.frontend import program as P
from p4gen.frontend.primitives import L4_CHECKSUM_FIELDS
from p4gen.midend.protocols import IPV4_HEADERS, L4_CHECKSUM_PAIRS
from p4gen.runtime.checksum import fold, pseudo_header_sum, word_sum
from p4gen.runtime.layout import HeaderLayout, compile_layouts

IPV4_INSTANCES = IPV4_HEADERS
L4_PAIRS = L4_CHECKSUM_PAIRS


class Malformed(Exception):
    """The parser rejected the packet (counted as `malformed`)."""


@dataclass(slots=True)
class Packet:
    """Header bytes per instance (None: invalid); stacks are lists; `opt` holds varbit tails."""

    hdr: dict[str, bytearray | None]
    stacks: dict[str, list[bytearray]]
    opt: dict[str, bytes]
    payload: bytes
    meta: dict[str, int] = field(default_factory=dict)
    l4_dirty: bool = False
    length: int = 0  # bytes as received (v1model's packet_length)
    gso_size: int = 0  # a VM's TCP super-packet (virtio GSO): the segment size the VM asked for
    segs: int = 1  # a train (p4gen.midend.trains): the segments this super-packet stands for
    train_mss: int = 0  # ... and the MSS they are cut with at the end

    def copy(self) -> Packet:
        """An independent copy (header bytes copied; the payload is immutable and shared)."""
        return Packet({k: None if v is None else bytearray(v) for k, v in self.hdr.items()},
                      {k: [bytearray(b) for b in v] for k, v in self.stacks.items()}, dict(self.opt),
                      self.payload, dict(self.meta), self.l4_dirty, self.length, self.gso_size, self.segs,
                      self.train_mss)

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
        self._no_headers: dict[str, bytearray | None] = {n: None for n in prog.instances if n not in self.stack_size}
        self._ipv4_present = [i for i in IPV4_INSTANCES if i in self._no_headers]
        self._getters: dict[P.FieldRef, Callable[[Packet], int]] = {}
        self._setters: dict[P.FieldRef, Callable[[Packet, int], None]] = {}
        self._operands: dict[P.Operand, Callable[[Packet, dict[str, int] | None], int]] = {}
        self._states = self._compile_parser()
        self._emit_order = [(inst, inst in self.stack_size) for inst in self.order]
        self._ipv4_checksums = []  # (instance, checksum field's first and last byte + 1)
        for inst in self._ipv4_present:
            fl = self.inst_layout[inst]["hdr_checksum"]
            assert fl.aligned and fl.nbytes == 2, "an IPv4 header checksum is a 16-bit aligned field"
            self._ipv4_checksums.append((inst, fl.byte, fl.byte + 2))

    # ------------------------------------------------------------ values
    # Every operand, field read and field write is compiled once into a closure over plain
    # integers (offsets, shifts, masks); the data path never looks at the program's operand
    # trees again. The closures are cached by operand (operands are frozen dataclasses).

    def getter(self, ref: P.FieldRef) -> Callable[[Packet], int]:
        """A closure reading `ref` from a packet; a field of an invalid header reads 0 (BMv2
        zeroes headers that were never valid; the emitter guards reads the same way)."""
        fn = self._getters.get(ref)
        if fn is None:
            fn = self._getters[ref] = self._compile_get(ref)
        return fn

    def setter(self, ref: P.FieldRef) -> Callable[[Packet, int], None]:
        """A closure writing `ref`; writing a field of an invalid header changes nothing."""
        fn = self._setters.get(ref)
        if fn is None:
            fn = self._setters[ref] = self._compile_set(ref)
        return fn

    def operand(self, op: P.Operand) -> Callable[[Packet, dict[str, int] | None], int]:
        """A closure evaluating `op` on a packet with action parameters `params`."""
        fn = self._operands.get(op)
        if fn is None:
            fn = self._operands[op] = self._compile_operand(op)
        return fn

    def header_fields(self, inst: str, fields) -> Callable[[bytearray], tuple[int, ...]]:
        """One generated closure reading several fields of one header's bytes into a tuple."""
        lay = self.inst_layout[inst]
        return eval(f"lambda b: ({', '.join(lay[f].source('b') for f in fields)},)")  # noqa: S307

    def fields_tuple(self, refs) -> Callable[[Packet], tuple[int, ...]]:
        """One generated closure reading several fields into a tuple (a table's key)."""
        ns: dict[str, object] = {}
        parts = ", ".join(self.operand_source(ref, ns) for ref in refs)
        return eval(f"lambda pkt: ({parts}{',' if parts else ''})", ns)  # noqa: S307 - see operand_source

    def operands_tuple(self, ops) -> Callable[[Packet, dict[str, int] | None], tuple[int, ...]]:
        """One generated closure evaluating several operands into a tuple."""
        ns: dict[str, object] = {}
        parts = ", ".join(self.operand_source(op, ns) for op in ops)
        return eval(f"lambda pkt, params: ({parts},)", ns)  # noqa: S307 - see operand_source

    def get(self, pkt: Packet, ref: P.FieldRef) -> int:
        return self.getter(ref)(pkt)

    def set(self, pkt: Packet, ref: P.FieldRef, value: int) -> None:
        self.setter(ref)(pkt, value)

    def eval(self, pkt: Packet, op: P.Operand, params: dict[str, int] | None = None) -> int:
        return self.operand(op)(pkt, params)

    def header_bytes(self, pkt: Packet, inst: str, index: int | str | None = None) -> bytearray | None:
        return self._locator(inst, index)(pkt)

    def _locator(self, inst: str, index: int | str | None) -> Callable[[Packet], bytearray | None]:
        """A closure finding the bytes of one header instance (or stack element) in a packet."""
        if inst not in self.stack_size:
            return lambda pkt: pkt.hdr[inst]
        if index == "last":
            return lambda pkt: pkt.stacks[inst][-1] if pkt.stacks[inst] else None
        i = index if isinstance(index, int) else 0
        return lambda pkt: pkt.stacks[inst][i] if i < len(pkt.stacks[inst]) else None

    def _compile_get(self, ref: P.FieldRef) -> Callable[[Packet], int]:
        ns: dict[str, object] = {}
        return eval(f"lambda pkt: {self.operand_source(ref, ns)}", ns)  # noqa: S307 - see operand_source

    def operand_source(self, op: P.Operand, ns: dict[str, object]) -> str:
        """Python source evaluating `op` where `pkt` (and `params`, in actions) are in scope.

        Header fields are read with FieldLayout.source, a field of an invalid header reading 0;
        stack elements go through a locator closure put into `ns`. The text holds only integers,
        quoted names and operators the front end has checked."""
        if isinstance(op, P.ConstVal):
            return str(op.value)
        if isinstance(op, P.ParamRef):
            return f"params[{op.name!r}]"
        if isinstance(op, P.FieldRef):
            if op.instance == "meta":
                return f"pkt.meta.get({op.field!r}, 0)"
            read = self.inst_layout[op.instance][op.field].source("b")
            if op.instance not in self.stack_size:
                return f"(0 if (b := pkt.hdr[{op.instance!r}]) is None else {read})"
            locate = f"locate{len(ns)}"
            ns[locate] = self._locator(op.instance, op.index)
            return f"(0 if (b := {locate}(pkt)) is None else {read})"
        if isinstance(op, P.Arith):
            return arith_source(op, lambda x: self.operand_source(x, ns), ns)
        if isinstance(op, P.Select) and isinstance(op.cond, P.ValidC):
            c = op.cond
            test = (f"pkt.valid({c.instance!r}, {c.index!r})" if c.instance in self.stack_size
                    else f"(pkt.hdr[{c.instance!r}] is not None)")
            return f"({self.operand_source(op.then, ns)} if {test} else {self.operand_source(op.orelse, ns)})"
        raise ValueError(f"cannot evaluate {op!r}")

    def _compile_set(self, ref: P.FieldRef) -> Callable[[Packet, int], None]:
        if ref.instance == "meta":
            name, wmask = ref.field, (1 << ref.width) - 1

            def set_meta(pkt: Packet, value: int) -> None:
                pkt.meta[name] = value & wmask
            return set_meta
        fl = self.inst_layout[ref.instance][ref.field]
        locate = self._locator(ref.instance, ref.index)
        dirties = ref.key in L4_CHECKSUM_FIELDS
        b, e, n, shift, mask = fl.byte, fl.byte + fl.nbytes, fl.nbytes, fl.shift, fl.mask
        from_bytes = int.from_bytes
        if fl.aligned:
            def set_aligned(pkt: Packet, value: int) -> None:
                buf = locate(pkt)
                if buf is not None:
                    buf[b:e] = (value & mask).to_bytes(n, "big")
                    if dirties:
                        pkt.l4_dirty = True
            return set_aligned
        keep = ~(mask << shift)

        def set_bits(pkt: Packet, value: int) -> None:
            buf = locate(pkt)
            if buf is not None:
                span = (from_bytes(buf[b:e], "big") & keep) | ((value & mask) << shift)
                buf[b:e] = span.to_bytes(n, "big")
                if dirties:
                    pkt.l4_dirty = True
        return set_bits

    def _compile_operand(self, op: P.Operand) -> Callable[[Packet, dict[str, int] | None], int]:
        ns: dict[str, object] = {}
        return eval(f"lambda pkt, params: {self.operand_source(op, ns)}", ns)  # noqa: S307 - see operand_source

    # ------------------------------------------------------------ parsing
    def parse(self, frame: bytes) -> Packet:
        pkt = Packet(dict(self._no_headers), {n: [] for n in self.stack_size}, {}, b"", dict(self.meta_defaults),
                     False, len(frame))
        pos = 0
        states = self._states
        state: str | None = "start"
        steps = 0
        while state is not None:  # None: accept
            steps += 1
            if steps > 256:
                raise Malformed("parser loop")
            state, pos = states[state](pkt, frame, pos)
        pkt.payload = bytes(frame[pos:])
        for inst in self._ipv4_present:
            buf = pkt.hdr[inst]
            if buf is not None and fold(word_sum(bytes(buf) + pkt.opt.get(inst, b""))) != 0xFFFF:
                raise BadChecksum(inst)
        return pkt

    def _compile_parser(self) -> dict[str, Callable]:
        """Each parser state becomes a closure (pkt, frame, pos) → (next state's name, or None
        for accept; pos); `reject` (and a select no case matches: P4's error.NoMatch) raise."""
        def reject(pkt: Packet, frame: bytes, pos: int):
            raise Malformed("parser reject")

        def resolve(name: str) -> str | None:
            return None if name == "accept" else name

        compiled: dict[str, Callable] = {"reject": reject}
        for name, st in self.prog.parser.items():
            compiled[name] = self._compile_state(st, resolve)
        return compiled

    def _compile_state(self, st: P.ParserState, resolve) -> Callable:
        """One parser state as generated Python source: extracts, length checks and the select
        inline, with fields of the headers it just extracted read straight from their bytes."""
        ns: dict[str, object] = {"Malformed": Malformed}

        def name(obj: object, prefix: str) -> str:
            key = f"{prefix}{len(ns)}"
            ns[key] = obj
            return key

        lines = ["def state(pkt, frame, pos):", "    n = len(frame)"]
        local: dict[str, str] = {}  # instance → variable holding the bytes it just got
        for k, (inst, idx) in enumerate(st.extracts):
            lay, var = self.extract_info[inst]
            b = f"b{k}"
            lines += [f"    end = pos + {lay.size}",
                      "    if end > n:",
                      f"        raise Malformed({inst + ': packet too short'!r})",
                      f"    {b} = bytearray(frame[pos:end])",
                      "    pos = end"]
            if idx == "next":
                lines += [f"    stack = pkt.stacks[{inst!r}]",
                          f"    if len(stack) >= {self.stack_size[inst]}:",
                          f"        raise Malformed({inst + ': header stack overflow'!r})",
                          f"    stack.append({b})"]
            else:
                lines.append(f"    pkt.hdr[{inst!r}] = {b}")
                local[inst] = b
            if var is not None:
                lines += [f"    bits = {_varbit_expr(b, lay, var[0])}",
                          f"    if bits < 0 or bits > {var[1]} or bits % 8:",
                          f"        raise Malformed({inst + ': bad variable length'!r})",
                          "    end = pos + bits // 8",
                          "    if end > n:",
                          f"        raise Malformed({inst + ': packet too short'!r})",
                          f"    pkt.opt[{inst!r}] = bytes(frame[pos:end])",
                          "    pos = end"]

        def read(op: P.Operand) -> str:
            if isinstance(op, P.FieldRef) and op.instance in local and op.index is None:
                return self.inst_layout[op.instance][op.field].source(local[op.instance])
            return f"{name(self.operand(op), 'O')}(pkt, None)"

        for ref, val in st.assigns:
            if ref.instance == "meta":
                lines.append(f"    pkt.meta[{ref.field!r}] = ({read(val)}) & {(1 << ref.width) - 1}")
            else:
                lines.append(f"    {name(self.setter(ref), 'S')}(pkt, {read(val)})")
        table = self._select_table(st, resolve)
        if table is not None:
            key = read(st.selector[0]) if len(st.selector) == 1 else f"({', '.join(read(e) for e in st.selector)},)"
            lines.append(f"    return {name(table[0], 'T')}.get({key}, {table[1]!r}), pos")
        else:
            lines.append(f"    return {name(self._compile_select(st, resolve), 'SEL')}(pkt), pos")
        exec(compile("\n".join(lines) + "\n", f"<p4gen parser state {st.name}>", "exec"), ns)  # noqa: S102
        return ns["state"]  # type: ignore[return-value]

    @staticmethod
    def _select_table(st: P.ParserState, resolve) -> tuple[dict, str | None] | None:
        """Selectors matched against exact values only (each case all values or all default): a
        dict from the value (a tuple for several selectors; the first case of a value wins) and
        the default (the first default case; none: reject, P4's error.NoMatch). None otherwise."""
        if not st.selector:
            return None
        table: dict = {}
        default = resolve("reject")
        for keys, nxt in st.cases:
            if all(k is None for k in keys):
                default = resolve(nxt)
                break
            if any(k is None or k.kind in ("ternary", "range") for k in keys):
                return None
            values = tuple(k.value for k in keys)
            table.setdefault(values[0] if len(values) == 1 else values, resolve(nxt))
        return table, default

    def _compile_select(self, st: P.ParserState, resolve) -> Callable[[Packet], str | None]:
        """The general select: several selectors, ternary or range cases, or none at all."""
        if not st.selector:
            target = resolve(st.cases[0][1] if st.cases else "accept")
            return lambda pkt: target
        getters = [self.operand(e) for e in st.selector]
        cases = [(keys, resolve(nxt)) for keys, nxt in st.cases]
        no_match = resolve("reject")  # P4: no case matches → error NoMatch

        def select(pkt: Packet):
            values = [g(pkt, None) for g in getters]
            for keys, nxt in cases:
                if all(k is None or _key_matches(k, v) for k, v in zip(keys, values, strict=True)):
                    return nxt
            return no_match
        return select

    # ------------------------------------------------------------ deparsing
    def offset_of(self, pkt: Packet, inst: str) -> int:
        """Where header `inst` starts in the deparsed packet (the headers before it, in order)."""
        off = 0
        for name, stacked in self._emit_order:
            if name == inst:
                return off
            if stacked:
                off += sum(len(b) for b in pkt.stacks[name])
            elif (buf := pkt.hdr[name]) is not None:
                off += len(buf) + len(pkt.opt.get(name, b""))
        raise KeyError(inst)

    def deparse(self, pkt: Packet) -> bytes:
        for inst, b, e in self._ipv4_checksums:
            buf = pkt.hdr[inst]
            if buf is not None:
                buf[b:e] = b"\0\0"
                opt = pkt.opt.get(inst)
                total = word_sum(buf) + (word_sum(opt) if opt else 0)
                buf[b:e] = (~fold(total) & 0xFFFF).to_bytes(2, "big")
        if pkt.l4_dirty:
            self.update_l4(pkt)
        parts = []
        opt = pkt.opt
        hdr = pkt.hdr
        for inst, stacked in self._emit_order:
            if stacked:
                parts += pkt.stacks[inst]
                continue
            buf = hdr[inst]
            if buf is not None:
                parts.append(buf)
                if opt and inst in opt:
                    parts.append(opt[inst])
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
                pseudo = pseudo_header_sum(addrs, ipl["protocol"].get(ipb), l4_len & 0xFFFF)
            else:
                l4_len = ipl["payload_len"].get(ipb)
                pseudo = pseudo_header_sum(addrs, ipl["next_hdr"].get(ipb), l4_len)
            l4l["checksum"].set(l4b, 0)
            after = b"".join(bytes(pkt.hdr[i]) + pkt.opt.get(i, b"") for i in order_valid[order_valid.index(l4) + 1:]
                             if pkt.hdr.get(i) is not None)
            total = pseudo + word_sum(bytes(l4b) + pkt.opt.get(l4, b"")) + word_sum(after + pkt.payload)
            l4l["checksum"].set(l4b, ~fold(total) & 0xFFFF)


class BadChecksum(Malformed):
    """An IPv4 header checksum did not verify (counted as `bad_checksum`)."""



def _varbit_expr(buf: str, lay: HeaderLayout, op: P.Operand) -> str:
    """Python source for a variable-length field's length in bits (constants, the header's own
    fields, + - *; anything else counts as 0, as the P4 side cannot express it either)."""
    if isinstance(op, P.ConstVal):
        return str(op.value)
    if isinstance(op, P.FieldRef):
        return lay[op.field].source(buf)
    if isinstance(op, P.Arith) and op.op in ("+", "-", "*"):
        return f"({_varbit_expr(buf, lay, op.left)} {op.op} {_varbit_expr(buf, lay, op.right)})"
    return "0"


def arith_source(op: P.Arith, leaf: Callable[[P.Operand], str], ns: dict[str, object]) -> str:
    """Python source of `op` with the DSL's meaning (p4gen.midend.widths): operands truncated
    to `op.width`, the result wrapping at it; a shift by the width or more gives 0."""
    w, m = op.width, op.mask
    if not w:
        raise ValueError(f"arithmetic without a width (the midend's width pass did not run): {op!r}")

    def side(x: P.Operand) -> str:
        if isinstance(x, P.ConstVal):
            return str(x.value & m)
        text = leaf(x)
        fits = isinstance(x, P.Arith) or (isinstance(x, (P.FieldRef, P.ParamRef)) and x.width <= w)
        return text if fits else f"({text} & {m})"

    left, right = side(op.left), side(op.right)
    if op.op == "<<":
        ns["_shl"] = _shl
        return f"_shl({left}, {right}, {w})"
    if op.op in WRAPS:
        return f"(({left} {op.op} {right}) & {m})"
    return f"({left} {op.op} {right})"  # & | >> of values below 2**w stay below it


WRAPS = frozenset(("+", "-", "*"))  # operations whose result can leave [0, 2**w)


def _shl(value: int, amount: int, width: int) -> int:
    return 0 if amount >= width else (value << amount) & ((1 << width) - 1)


def _key_matches(k: P.KeyMatch, v: int) -> bool:
    if k.kind == "ternary":
        return v & (k.mask or 0) == k.value
    if k.kind == "range":
        return k.value <= v <= (k.high if k.high is not None else k.value)
    return v == k.value
