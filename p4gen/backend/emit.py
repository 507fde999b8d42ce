"""P4_16 text for the NIC part of a placed program (v1model).

The program has every pipeline's structured code in the ingress control.
Each stage is guarded by a small state machine in metadata:

    RUN   run stages as they come
    SKIP  entered from the hypervisor: skip until the stage `resume`, steering
          each branch into the arm that holds it (arms are contiguous ranges
          of IR order numbers, so one range test per branch)
    PUNT  a stage that runs in the hypervisor was reached: stop; the packet
          leaves on the host port with the p4gen header (p4src/p4gen_punt.p4)
    DROP / TO_HV / DONE / SEND   dropped, to_hypervisor(), pipeline finished,
          injected with nothing left to do

so a packet can cross between NIC and hypervisor at any edge placement chose.
A `LineMap` records which DSL position each generated line came from, for
p4c's error messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from p4gen.backend.model import NicModel, P4Action, P4Table, annotation_doc
from p4gen.backend.names import p4_ident
from p4gen.crossing.p4text import carried_p4, punt_p4, states_p4
from p4gen.crossing.protocol import CARRIED_PAD, PUNT_HEADER, carried_layout
from p4gen.crossing.states import DROP_REASONS, drop_sites
from p4gen.diagnostics import Pos
from p4gen.frontend import program as P
from p4gen.frontend.literals import format_value
from p4gen.frontend.primitives import INNER_OF, L4_CHECKSUM_FIELDS
from p4gen.ir.lower import stage_trees
from p4gen.midend import coreops as C
from p4gen.midend.coreops import encap_cleared
from p4gen.midend.protocols import IPV4_HEADERS, L4_CHECKSUM_PAIRS, SRC_PORT_BASE, Arg, Computed, TunnelSpec
from p4gen.midend.stages import Branch, Seq, Stage
from p4gen.midend.widths import leaf_width
from p4gen.place import HYP, NIC
from p4gen.place.flowlayout import LEARN_BUCKETS, RELEARN_PACKETS

L4_PSEUDO = L4_CHECKSUM_FIELDS


class BackendError(Exception):
    def __init__(self, message: str, pos: Pos | None = None):
        super().__init__(message)
        self.pos = pos


@dataclass
class LineMap:
    """Generated line number (1-based) → the DSL position it came from."""

    lines: dict[int, Pos | None] = field(default_factory=dict)  # None: generated code of p4gen's own

    def lookup(self, line: int) -> Pos | None:
        for n in range(line, 0, -1):
            if n in self.lines:
                return self.lines[n]
        return None


class _Out:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.map = LineMap()
        self.depth = 0

    def __call__(self, text: str = "", pos: Pos | None = None, origin: bool = False) -> None:
        if pos is not None or origin:
            self.map.lines[len(self.lines) + 1] = pos
        self.lines.append(("    " * self.depth + text) if text else "")

    def mark(self, pos: Pos | None) -> None:
        """The next line comes from `pos` (for p4c's errors)."""
        if pos is not None:
            self.map.lines[len(self.lines) + 1] = pos

    def open(self, text: str, pos: Pos | None = None) -> None:
        # A block with no DSL position is p4gen's own code: say so, so that errors in it
        # are not blamed on whatever DSL line came before.
        self(text + " {", pos, origin=True)
        self.depth += 1

    def close(self, suffix: str = "") -> None:
        self.depth -= 1
        self("}" + suffix)


def header_type(name: str) -> str:
    return p4_ident(name) + "_t"


class Emitter:
    def __init__(self, model: NicModel, source: str):
        self.m = model
        self.prog = model.prog
        self.g = model.graph
        self.source = source
        self.out = _Out()
        self.nic = model.placement.problem.nic
        self.tmp = 0
        self.carried = carried_layout(self.prog)  # p4gen_meta_t: the metadata behind the punt header
        # drop() counts in p4gen.drops after DROP_REASONS, by where it ran, as the hypervisor counts it
        self.drop_sites = {site: len(DROP_REASONS) + i for i, site in enumerate(drop_sites(self.prog))}
        # DSL constants of a fixed width (addresses) keep their names in the P4, unless a name
        # would clash with another P4 name of the program.
        taken = {p4_ident(n) for n in (*self.prog.headers, *self.prog.instances, *self.prog.metadata,
                                       *self.prog.nfs, *(t for nf in self.prog.nfs.values() for t in nf.tables),
                                       *(a for nf in self.prog.nfs.values() for a in nf.actions))}
        self.named = [n for n, c in self.prog.consts.items()
                      if c.width and p4_ident(n) not in taken and not n.upper().startswith("P4GEN")]

    # ------------------------------------------------------------ expressions
    def field(self, f: P.FieldRef) -> str:
        if f.instance == "meta":
            return f"meta.{p4_ident(f.field)}"
        inst = f"hdr.{p4_ident(f.instance)}"
        if isinstance(f.index, int):
            inst += f"[{f.index}]"
        elif f.index is not None:
            inst += f".{f.index}"
        return f"{inst}.{p4_ident(f.field)}"

    def read(self, f: P.FieldRef) -> str:
        """A field read with the DSL's meaning: a field of an invalid header reads 0.

        P4 leaves such reads unspecified, and BMv2 returns whatever an earlier
        packet left in the field, so `ipv4.dst == X` on an IPv6 packet could
        match; the hypervisor reads 0. The validity guard makes both agree."""
        if f.index == "last" and not self.in_parser:
            # P4 allows `.last` in parsers only: in a control, the highest valid element.
            text = f"{f.width}w0"
            for i in range(self.prog.instances[f.instance].stack or 1):
                elem = f"hdr.{p4_ident(f.instance)}[{i}]"
                text = f"({elem}.isValid() ? {elem}.{p4_ident(f.field)} : {text})"
            return text
        text = self.field(f)
        if self.in_parser or f.instance == "meta" or isinstance(f.index, str):
            return text  # metadata is always valid; next/last name an element only when one exists
        header = text.rsplit(".", 1)[0]
        return f"({header}.isValid() ? {text} : {f.width}w0)"

    in_parser = False  # a parser state reads only what it (or an earlier state) extracted
    def expr(self, op: P.Operand, width: int | None = None, params: dict[str, str] | None = None) -> str:
        if isinstance(op, P.ConstVal):
            w = op.width or width
            if op.name in self.named and op.width == w:
                return p4_ident(op.name)  # the DSL's own name (const bit<W> NAME = …;)
            v = op.value & ((1 << w) - 1) if w else op.value  # a literal truncated to its width
            return f"{w}w{v:#x}" if w and v > 9 else (f"{w}w{v}" if w else str(v))
        if isinstance(op, P.ParamRef):
            return (params or {}).get(op.name, p4_ident(op.name))
        if isinstance(op, P.FieldRef):
            return self.read(op)
        if isinstance(op, P.Arith):
            w = op.width  # decided by the midend (p4gen.midend.widths), as the hypervisor reads it
            if op.op in ("<<", ">>"):
                return self.shift(op, params)
            left = self.cast(op.left, w, params)
            right = self.cast(op.right, w, params)
            return f"({left} {op.op} {right})"
        if isinstance(op, P.Select):
            w = width or _width(op) or 32
            return f"({self.cond(op.cond, params)} ? {self.cast(op.then, w, params)} : " \
                   f"{self.cast(op.orelse, w, params)})"
        raise BackendError("hash() can only be the whole right-hand side of an assignment")

    def shift(self, op: P.Arith, params=None) -> str:
        """`a << b` / `a >> b` at the width w the midend decided: both operands are bit<w>, a shift
        by w or more gives 0 (P4's rule, and the hypervisor's).

        p4c's BMv2 back end takes a shift amount only as an integer literal up to 256 or a
        bit<N> with N <= 8 (backends/bmv2/common/lower.cpp: "shift amount limited to 8 bits"),
        so the amount is written as a plain literal, or, when it is wider than 8 bits and not
        constant, as 8 bits behind a test for w or more."""
        w = op.width
        left = self.cast(op.left, w, params)
        if isinstance(op.right, P.ConstVal):
            amount = op.right.value & ((1 << w) - 1)
            return f"({left} {op.op} {amount})" if amount < w else f"{w}w0"
        right = self.cast(op.right, w, params)
        if w <= 8:
            return f"({left} {op.op} {right})"
        return f"(({right} >= {w}w{w}) ? {w}w0 : ({left} {op.op} (bit<8>){right}))"

    def cast(self, op: P.Operand, width: int, params=None) -> str:
        w = _width(op)
        text = self.expr(op, width, params)
        if isinstance(op, P.ConstVal) or w == width:
            return text
        return f"(bit<{width}>){text}"

    def cond(self, c: P.CondT, params=None) -> str:
        if isinstance(c, P.ValidC):
            if c.index == "last" and not self.in_parser:
                return f"hdr.{p4_ident(c.instance)}[0].isValid()"  # a last element exists iff the first does
            idx = "" if c.index is None else (f"[{c.index}]" if isinstance(c.index, int) else f".{c.index}")
            return f"hdr.{p4_ident(c.instance)}{idx}.isValid()"
        if isinstance(c, P.BoolC):
            return "true" if c.value else "false"
        if isinstance(c, P.NotC):
            return f"!({self.cond(c.operand, params)})"
        if isinstance(c, P.AndC):
            return "(" + " && ".join(self.cond(o, params) for o in c.operands) + ")"
        if isinstance(c, P.OrC):
            return "(" + " || ".join(self.cond(o, params) for o in c.operands) + ")"
        if isinstance(c, P.CmpC):
            w = max(_width(c.left) or 0, _width(c.right) or 0) or 32
            return f"({self.cast(c.left, w, params)} {c.op} {self.cast(c.right, w, params)})"
        raise BackendError("a table hit can only be tested as a whole condition")

    # ------------------------------------------------------------ top level
    def emit(self) -> tuple[str, LineMap]:
        o = self.out
        o(f"// Generated by p4gen from {self.source}. Do not edit: edit the .nf file and rebuild.")
        o("// NIC part of the placement on " + (self.nic.name if self.nic else "(no NIC)") + ".")
        o("#include <core.p4>")
        o("#include <v1model.p4>")
        o()
        o("// ---- the crossing protocol (p4gen/crossing; also in p4src/p4gen_punt.p4)")
        for line in punt_p4().rstrip().splitlines():
            o(line)
        o()
        self.constants()
        self.headers()
        self.parser()
        self.verify_checksum()
        self.ingress()
        o("control P4genEgress(inout headers_t hdr, inout metadata_t meta, "
          "inout standard_metadata_t standard_metadata) {")
        o("    apply { }")
        o("}")
        o()
        self.compute_checksum()
        self.deparser()
        o("V1Switch(P4genParser(), P4genVerifyChecksum(), P4genIngress(), P4genEgress(), "
          "P4genComputeChecksum(), P4genDeparser()) main;")
        return "\n".join(self.out.lines) + "\n", self.out.map

    def constants(self) -> None:
        o = self.out
        if self.named:
            o("// ---- the program's constants")
            for name in self.named:
                c = self.prog.consts[name]
                o(f"const bit<{c.width}> {p4_ident(name)} = {c.width}w{c.value:#x};  "
                  f"// {format_value(c.kind, c.value, c.width)}")
            o()
        ports = self.nic.ports if self.nic else None
        o("// ---- ports and internal states")
        o(f"const bit<9> P4GEN_PORT_UPLINK = {ports.uplink if ports else 0};")
        o(f"const bit<9> P4GEN_PORT_HOST = {ports.host if ports else 255};")
        for i, p in enumerate(ports.vm_ports if ports else ()):
            o(f"const bit<9> P4GEN_PORT_VM{i} = {p};")
        for line in states_p4():
            o(line)
        o()

    # ------------------------------------------------------------ headers
    def headers(self) -> None:
        o = self.out
        for line in carried_p4(self.carried, _carried_ident):  # the metadata while it crosses the punt path
            o(line)
        for ht in self.prog.headers.values():
            if not any(i.type is ht for i in self.prog.instances.values()):
                continue
            o.open(f"header {header_type(ht.name)}", ht.pos)
            for f in ht.fields:
                if not f.is_varbit:
                    o(f"bit<{f.width}> {p4_ident(f.name)};")
            o.close()
            if ht.varbit is not None:
                # The variable part is a header of its own, so that an encapsulation can
                # reuse the fixed header as the outer one without carrying stale options.
                o.open(f"header {header_type(ht.name)}_opt")
                o(f"varbit<{ht.varbit.width}> {p4_ident(ht.varbit.name)};")
                o.close()
        o.open("struct headers_t")
        o("p4gen_t p4gen;")
        if self.carried.fields:
            o("p4gen_meta_t p4gen_meta;")
        for inst in self.deparse_order():
            i = self.prog.instances[inst]
            stack = f"[{i.stack}]" if i.stack else ""
            o(f"{header_type(i.type.name)}{stack} {p4_ident(inst)};")
            if i.type.varbit is not None:
                o(f"{header_type(i.type.name)}_opt{stack} {p4_ident(inst)}_opt;")
        o.close()
        o()
        o.open("struct metadata_t")
        for name, (width, _pos) in self.prog.metadata.items():
            o(f"bit<{width}> {p4_ident(name)};")
        for line in ("bit<8> p4gen_pipeline;", "bit<8> p4gen_state;", "bit<16> p4gen_resume;",
                     "bit<16> p4gen_flow;", "bit<8> p4gen_reason;", "bit<8> p4gen_code;", "bit<1> p4gen_forwarded;",
                     "bit<1> p4gen_l4_dirty;", "bit<16> p4gen_l4_len;", "bit<16> p4gen_inner_l4_len;",
                     "bit<16> p4gen_inner_len;", "bit<16> p4gen_rx_len;", "bit<16> p4gen_egress_port;",
                     "bit<128> p4gen_h_src;", "bit<128> p4gen_h_dst;", "bit<8> p4gen_h_proto;",
                     "bit<8> p4gen_h_tos;", "bit<32> p4gen_drop_cause;"):
            o(line)
        if self.m.flow_layouts:  # per-flow offload: the flow key, and what a flow table hit recorded
            for line in ("bit<32> p4gen_flow_hash;", "bit<1> p4gen_fused;", "bit<8> p4gen_fhit;",
                         "bit<32> p4gen_fslot;", "bit<32> p4gen_learn_n;"):
                o(line)
            for lay in self.m.flow_layouts.values():
                n = lay.number
                o(f"bit<{lay.key_width}> p4gen_f{n}_key;  // the flow key: {', '.join(k.name for k in lay.key)}")
                o(f"bit<{lay.key_width}> p4gen_f{n}_copy;  // the flow table entry's copy of it")
                for name, w in lay.decision_params():
                    o(f"bit<{w}> p4gen_f{n}_{name};")
        o.close()
        o()

    def deparse_order(self) -> list[str]:
        return self.prog.deparse_order()

    # ------------------------------------------------------------ parser
    def parser(self) -> None:
        self.in_parser = True
        try:
            self._parser()
        finally:
            self.in_parser = False

    def _parser(self) -> None:
        o = self.out
        o.open("parser P4genParser(packet_in packet, out headers_t hdr, inout metadata_t meta, "
               "inout standard_metadata_t standard_metadata)")
        o.open("state start")
        o(f"transition select(standard_metadata.ingress_port) {{ P4GEN_PORT_HOST: parse_p4gen; "
          f"default: {self.state_name('start', user=True)}; }}")
        o.close()
        o.open("state parse_p4gen")
        o("packet.extract(hdr.p4gen);")
        if self.carried.fields:
            o("packet.extract(hdr.p4gen_meta);")
        o(f"transition {self.state_name('start', user=True)};")
        o.close()
        for st in self.prog.parser.values():
            o.open(f"state {self.state_name(st.name, user=True)}", st.pos)
            for inst, idx in st.extracts:
                target = f"hdr.{p4_ident(inst)}" + (".next" if idx == "next" else "")
                ht = self.prog.instances[inst].type
                o(f"packet.extract({target});")
                if ht.varbit is None:
                    continue
                base = f"hdr.{p4_ident(inst)}" + (".last" if idx == "next" else "")
                length = ht.varbit.varbit_length
                guard = _nonnegative_guard(length)
                if guard is not None:
                    lo, hi = guard
                    o(f"verify({self.len_expr(lo, base)} >= {self.len_expr(hi, base)}, error.HeaderTooShort);")
                opt = f"hdr.{p4_ident(inst)}_opt" + (".next" if idx == "next" else "")
                o(f"packet.extract({opt}, {self.len_expr(length, base)});")
            for tgt, val in st.assigns:
                o(f"{self.field(tgt)} = {self.cast(val, tgt.width)};")
            if not st.selector:
                nxt = st.cases[0][1] if st.cases else "accept"
                o(f"transition {self.state_name(nxt)};")
            else:
                sel = ", ".join(self.expr(e) for e in st.selector)
                o(f"transition select({sel}) {{")
                o.depth += 1
                widths = [_width(e) or 32 for e in st.selector]
                for keys, nxt in st.cases:
                    if all(k is None for k in keys):
                        o(f"default: {self.state_name(nxt)};")
                        continue
                    parts = [self.select_key(k, w) for k, w in zip(keys, widths, strict=True)]
                    label = parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"
                    o(f"{label}: {self.state_name(nxt)};")
                o.depth -= 1
                o("}")
            o.close()
        o.close()
        o()

    def len_expr(self, op: P.Operand, var: str) -> str:
        if isinstance(op, P.ConstVal):
            return f"32w{op.value}"
        if isinstance(op, P.FieldRef):
            return f"(bit<32>){var}.{p4_ident(op.field)}"  # var: the fixed header just extracted
        if isinstance(op, P.Arith):
            return f"({self.len_expr(op.left, var)} {op.op} {self.len_expr(op.right, var)})"
        raise BackendError("unsupported varbit length")

    def select_key(self, k: P.KeyMatch | None, w: int) -> str:
        if k is None:
            return "_"
        if k.kind == "ternary":
            return f"{w}w{k.value:#x} &&& {w}w{k.mask:#x}"
        if k.kind == "range":
            return f"{w}w{k.value} .. {w}w{k.high}"
        return f"{w}w{k.value:#x}"

    def state_name(self, name: str, user: bool = False) -> str:
        """DSL states become parse_NAME; the P4 `start` state is p4gen's own dispatcher."""
        return name if name in ("accept", "reject") else f"parse_{p4_ident(name)}"

    # ------------------------------------------------------------ checksums
    def ipv4_checksum_list(self, inst: str) -> str:
        ht = self.prog.instances[inst].type
        fields = [self.hdr_field(inst, f) for f in ht.fields if f.name != "hdr_checksum"]
        return "{ " + ", ".join(fields) + " }"

    def hdr_field(self, inst: str, f) -> str:
        if f.is_varbit:
            return f"hdr.{p4_ident(inst)}_opt.{p4_ident(f.name)}"
        return f"hdr.{p4_ident(inst)}.{p4_ident(f.name)}"

    def ipv4_instances(self) -> list[str]:
        return [i for i in IPV4_HEADERS if i in self.prog.instances]

    def verify_checksum(self) -> None:
        o = self.out
        o.open("control P4genVerifyChecksum(inout headers_t hdr, inout metadata_t meta)")
        o.open("apply")
        for inst in self.ipv4_instances():
            o(f"verify_checksum(hdr.{inst}.isValid(), {self.ipv4_checksum_list(inst)}, "
              f"hdr.{inst}.hdr_checksum, HashAlgorithm.csum16);")
        o.close()
        o.close()
        o()

    def compute_checksum(self) -> None:
        o = self.out
        o.open("control P4genComputeChecksum(inout headers_t hdr, inout metadata_t meta)")
        o.open("apply")
        for inst in self.ipv4_instances():
            o(f"update_checksum(hdr.{inst}.isValid(), {self.ipv4_checksum_list(inst)}, "
              f"hdr.{inst}.hdr_checksum, HashAlgorithm.csum16);")
        # TCP/UDP checksums are recomputed only after a rewrite of the pseudo-header or
        # ports (a UDP checksum of 0 over IPv4 means "none" and stays 0).
        for ip, l4 in L4_CHECKSUM_PAIRS:
            length = "p4gen_inner_l4_len" if ip.startswith("inner_") else "p4gen_l4_len"
            if ip not in self.prog.instances or l4 not in self.prog.instances:
                continue
            l4t = self.prog.instances[l4].type
            l4_fields = [self.hdr_field(l4, f) for f in l4t.fields if f.name != "checksum"]
            # BMv2's "payload" is what the parser left unparsed: the headers parsed after the L4
            # header (a tunnel's, the inner frame's, a user header after UDP) are listed here,
            # whole, in wire order; an invalid one adds nothing (BMv2's BufBuilder skips it).
            order = self.deparse_order()
            for inst in order[order.index(l4) + 1:]:
                stack = self.prog.instances[inst].stack
                for i in range(stack) if stack else [None]:
                    elem = f"hdr.{p4_ident(inst)}" + ("" if i is None else f"[{i}]")
                    l4_fields.append(elem)
                    if self.prog.instances[inst].type.varbit is not None:
                        l4_fields.append(f"hdr.{p4_ident(inst)}_opt" + ("" if i is None else f"[{i}]"))
            if ip.endswith("ipv4"):
                pseudo = [f"hdr.{ip}.src", f"hdr.{ip}.dst", "8w0", f"hdr.{ip}.protocol", f"meta.{length}"]
            else:
                # The 32-bit upper-layer length as two fields: p4c allows no casts here.
                pseudo = [f"hdr.{ip}.src", f"hdr.{ip}.dst", "16w0", f"meta.{length}", "24w0", f"hdr.{ip}.next_hdr"]
            cond = f"meta.p4gen_l4_dirty == 1 && hdr.{ip}.isValid() && hdr.{l4}.isValid()"
            if l4.endswith("udp"):
                cond += f" && hdr.{l4}.checksum != 0"
            fields = ", ".join(pseudo[:3]) + ",\n                " + ", ".join(pseudo[3:] + l4_fields)
            o(f"update_checksum_with_payload({cond},")
            o(f"    {{ {fields} }},")
            o(f"    hdr.{l4}.checksum, HashAlgorithm.csum16);")
        o.close()
        o.close()
        o()

    def deparser(self) -> None:
        o = self.out
        o.open("control P4genDeparser(packet_out packet, in headers_t hdr)")
        o.open("apply")
        o("packet.emit(hdr.p4gen);")
        if self.carried.fields:
            o("packet.emit(hdr.p4gen_meta);")
        for inst in self.deparse_order():
            o(f"packet.emit(hdr.{p4_ident(inst)});")
            if self.prog.instances[inst].type.varbit is not None:
                o(f"packet.emit(hdr.{p4_ident(inst)}_opt);")
        o.close()
        o.close()
        o()

    # ------------------------------------------------------------ ingress
    def ingress(self) -> None:
        o = self.out
        o.open("control P4genIngress(inout headers_t hdr, inout metadata_t meta, "
               "inout standard_metadata_t standard_metadata)")
        dc = self.m.drop_counter
        o(f'@name(".{dc.name}") @id({dc.id:#010x})')
        o(f"counter({dc.size}, CounterType.packets) {dc.p4name};")
        for c in self.m.counters.values():
            o(f'@name(".{c.name}") @id({c.id:#010x})')
            o(f"counter({c.size}, CounterType.packets_and_bytes) {c.p4name};")
        for t in self.m.tables.values():
            if t.direct_counter is not None:
                d = t.direct_counter
                o(f'@name(".{d.name}") @id({d.id:#010x})')
                o(f"direct_counter(CounterType.packets_and_bytes) {d.p4name};")
        o()
        da = self.m.drop_action
        o(f'@name(".{da.name}") @id({da.id:#010x})')
        o.open("action p4gen_drop(bit<32> reason)")
        o(f"{dc.p4name}.count(reason);")
        o("mark_to_drop(standard_metadata);")
        o("meta.p4gen_state = P4GEN_ST_DROP;")
        o.close()
        for r in self.m.registers:
            o(f'@name(".{r.name}") @id({r.id:#010x})')
            o(f"register<bit<{r.width}>>({r.size}) {r.p4name};")
        for a in sorted(self.m.actions.values(), key=lambda a: a.name):
            self.action(a)
        for t in self.m.tables.values():
            self.table(t)
        o()
        o.open("apply")
        self.ingress_entry()
        self.flow_lookup()
        for name, pl in self.prog.pipelines.items():
            idx = self.m.pipeline_index[name]
            o.open(f"if (meta.p4gen_pipeline == {idx})", pl.pos)
            o(f"// pipeline {name} ({pl.direction})")
            lay = self.m.flow_layouts.get(name)
            if lay is not None:
                o.open("if (meta.p4gen_fused == 1)")
                o("// a flow table hit: every lookup replaced by the flow's recorded decision")
                if lay.hv_first:
                    o(f"meta.p4gen_state = P4GEN_ST_RUN;  // from stage {lay.first_stage}, where the hypervisor "
                      "handed it over")
                self.fused_seq(stage_trees(self.g)[name].body, lay, lay.first_stage)
                o.close()
                o.open("else")
            self.seq(stage_trees(self.g)[name].body)
            if lay is not None:
                o.close()
            self.pipeline_end(name)
            o.close()
        self.ingress_exit()
        o.close()
        o.close()
        o()

    def action(self, a: P4Action) -> None:
        o = self.out
        if a.nf == "p4gen":  # the flow table's own actions: record what the entry says
            self.flow_action(a)
            return
        params = ", ".join(f"bit<{p.width}> {p.p4name}" for p in a.params)
        o(f'@name(".{a.name}") @id({a.id:#010x})', a.action.pos)
        o.open(f"action {a.p4name}({params})")
        pmap = {p.name: p.p4name for p in a.params}
        for s in a.action.body:
            self.simple_stmt(s, a.nf, pmap, a.name)
        o.close()

    def table(self, t: P4Table) -> None:
        o = self.out
        tbl = t.table
        doc = annotation_doc(tbl.annotations)
        if doc is not None:
            o(f"// {doc}")
        brief = f" @brief({json.dumps(doc, ensure_ascii=False)})" if doc is not None else ""
        o(f'@name(".{t.name}") @id({t.id:#010x}){brief}', tbl.pos)
        o.open(f"table {t.p4name}")
        if t.keys:
            o.open("key =")
            for k in t.keys:  # p4gen's own tables key on p4gen's own metadata, named as it is
                expr = str(k.field) if t.table.nf == "p4gen" else self.read(k.field)
                o(f'{expr}: {k.match_kind} @name("{k.name}");')
            o.close()
        o.open("actions =")
        for a in t.actions:
            o(f"{a.p4name};")
        o.close()
        args = ", ".join(f"{w}w{v}" for (_, w), v in zip(t.default_action.action.params, tbl.default_args,
                                                        strict=True))
        o(f"default_action = {t.default_action.p4name}({args});")
        o(f"size = {tbl.size};")
        if t.direct_counter is not None:
            o(f"counters = {t.direct_counter.p4name};")
        if tbl.idle_timeout:
            o("support_timeout = true;")
        o.close()

    # ------------------------------------------------------------ statements
    def simple_stmt(self, s: P.StmtT, nf: str, params: dict[str, str] | None = None, where: str | None = None) -> None:
        """`where`: the action ("NF.ACTION") whose body this is; None in an nf's apply block."""
        o = self.out
        if isinstance(s, P.AssignOp):
            self.out.mark(s.pos)
            self.core(C.Assign(s.target, s.value), params)
        elif isinstance(s, P.CallActionOp):
            a = self.m.actions[(nf, s.action)]
            args = ", ".join(self.cast(x, p.width, params) for x, p in zip(s.args, a.params, strict=True))
            o(f"{a.p4name}({args});", s.pos)
        elif isinstance(s, P.PrimOp):
            self.primitive(s, nf, params, where or nf)
        else:  # pragma: no cover - the checker keeps tables and ifs out of actions
            raise BackendError("not a simple statement", getattr(s, "pos", None))

    def primitive(self, s: P.PrimOp, nf: str, params=None, where: str | None = None) -> None:
        """A primitive, as its core operations (p4gen.midend.coreops) translated to P4."""
        self.out(f"// {s.name}({', '.join(C.show_operand(a) for a in s.args)})", s.pos)
        for op in C.expand(self.prog, s):
            self.core(op, params, where or nf)

    def core(self, op: C.CoreOp, params=None, where: str | None = None) -> None:
        o = self.out
        if isinstance(op, C.Assign):
            if isinstance(op.value, P.HashOf):
                fields = ", ".join(self.expr(a, None, params) for a in op.value.args)
                o(f"hash({self.field(op.target)}, HashAlgorithm.crc16, (bit<{op.target.width}>)0, {{ {fields} }}, "
                  f"(bit<32>){1 << min(op.target.width, 31)});")
            else:
                o(f"{self.field(op.target)} = {self.cast(op.value, op.target.width, params)};")
            if op.target.key in L4_PSEUDO:
                # only a write that happens marks the checksums (v1model ignores writes to an invalid
                # header, and so does the hypervisor); ternary: no `if` inside an action
                header = self.field(op.target).rsplit(".", 1)[0]
                o(f"meta.p4gen_l4_dirty = {header}.isValid() ? 1w1 : meta.p4gen_l4_dirty;")
        elif isinstance(op, C.Drop):
            o("mark_to_drop(standard_metadata);")
            o("meta.p4gen_state = P4GEN_ST_DROP;")
            if where in self.drop_sites:  # counted at the end, as the hypervisor counts its drops
                o(f"meta.p4gen_drop_cause = 32w{self.drop_sites[where] + 1};  // drop() in {where}")
        elif isinstance(op, C.Forward):
            o(f"standard_metadata.egress_spec = {self.cast(op.port, C.PORT_WIDTH, params)};")
            o("meta.p4gen_forwarded = 1;")
        elif isinstance(op, C.DropIf):  # ternaries: no `if` inside an action
            cond = self.cond(op.cond, params)
            cause = DROP_REASONS.index(op.reason) + 1
            o(f"meta.p4gen_drop_cause = ({cond}) ? 32w{cause} : meta.p4gen_drop_cause;  // {op.reason}")
            o(f"meta.p4gen_state = ({cond}) ? P4GEN_ST_DROP : meta.p4gen_state;")
        elif isinstance(op, C.ToHypervisor):
            o("meta.p4gen_state = P4GEN_ST_TO_HV;")
            o(f"meta.p4gen_code = {self.cast(op.code, C.CODE_WIDTH, params)};")
        elif isinstance(op, C.Count):
            c = self.m.counters[(op.counter.nf, op.counter.name)]
            o(f"{c.p4name}.count({self.cast(op.index, 32, params)});")
        elif isinstance(op, C.PushFront):
            stack = f"hdr.{p4_ident(op.stack)}"
            o(f"{stack}.push_front(1);")
            o(f"{stack}[0].setValid();")
            for f in self.prog.instances[op.stack].type.fields:  # element 0 starts zeroed
                o(f"{stack}[0].{p4_ident(f.name)} = 0;")
        elif isinstance(op, C.PopFront):
            o(f"hdr.{p4_ident(op.stack)}.pop_front(1);")
        elif isinstance(op, C.Encap):
            self.encap(op.tunnel, op.args, params)
        elif isinstance(op, C.Decap):
            self.decap(op.tunnel)
        else:  # pragma: no cover - every core operation is above
            raise BackendError(f"no P4 for core operation {op!r}")

    def encap(self, spec: TunnelSpec, a, params) -> None:
        """A tunnel's outer headers, from its one definition (p4gen.midend.protocols)."""
        o = self.out
        L = self.prog.instances  # noqa: N806
        size = {i: L[i].type.fixed_bytes for i in L}
        o("meta.p4gen_inner_len = meta.p4gen_rx_len;")
        vlan = L.get("vlan")
        if vlan is not None and vlan.stack:  # tags are stripped: the innermost EtherType stays
            for i in reversed(range(vlan.stack)):
                o.open(("if" if i == vlan.stack - 1 else "else if") + f" (hdr.vlan[{i}].isValid())")
                o(f"hdr.ethernet.ether_type = hdr.vlan[{i}].ether_type;")
                o(f"meta.p4gen_inner_len = meta.p4gen_rx_len - {size['vlan'] * (i + 1)};")
                o.close()
            for i in range(vlan.stack):
                o(f"hdr.vlan[{i}].setInvalid();")
        o("// the inner 5-tuple, hashed for the outer UDP source port")
        o("meta.p4gen_h_src = hdr.ipv4.isValid() ? (bit<128>)hdr.ipv4.src : "
          "(hdr.ipv6.isValid() ? hdr.ipv6.src : 128w0);")
        o("meta.p4gen_h_dst = hdr.ipv4.isValid() ? (bit<128>)hdr.ipv4.dst : "
          "(hdr.ipv6.isValid() ? hdr.ipv6.dst : 128w0);")
        o("meta.p4gen_h_proto = hdr.ipv4.isValid() ? hdr.ipv4.protocol : "
          "(hdr.ipv6.isValid() ? hdr.ipv6.next_hdr : 8w0);")
        o("meta.p4gen_h_tos = hdr.ipv4.isValid() ? hdr.ipv4.dscp ++ hdr.ipv4.ecn : "
          "(hdr.ipv6.isValid() ? hdr.ipv6.traffic_class : 8w0);  // DSCP and ECN of the inner header")
        o(f"meta.p4gen_inner_len = hdr.ipv4.isValid() ? {size['ethernet']} + hdr.ipv4.total_len : "
          f"(hdr.ipv6.isValid() ? {size['ethernet'] + size['ipv6']} + hdr.ipv6.payload_len : "
          "meta.p4gen_inner_len);")
        for outer, inner in self.moved_pairs():
            o(f"hdr.{inner} = hdr.{outer};")
        invalid, varparts = encap_cleared(self.prog, spec)
        for outer in invalid:
            o(f"hdr.{p4_ident(outer)}.setInvalid();")
        for outer in varparts:
            o(f"hdr.{p4_ident(outer)}_opt.setInvalid();")
        below = {inst: sum(size[x] for x in spec.pushes[spec.pushes.index(inst) + 1:]) for inst in spec.pushes}
        computed = {"ip_total_len": f"meta.p4gen_inner_len + {size['ipv4'] + below['ipv4']}",
                    "udp_length": f"meta.p4gen_inner_len + {size['udp'] + below['udp']}",
                    "inner_dscp": "meta.p4gen_h_tos[7:2]", "inner_ecn": "meta.p4gen_h_tos[1:0]"}
        for inst in spec.pushes:
            o(f"hdr.{p4_ident(inst)}.setValid();")
            values = spec.values(inst)
            for f in L[inst].type.fields:
                if f.is_varbit:
                    continue
                v = values.get(f.name, 0)
                target = f"hdr.{p4_ident(inst)}.{p4_ident(f.name)}"
                if isinstance(v, Arg):
                    o(f"{target} = {self.cast(a[v.index], f.width, params)};")
                elif isinstance(v, Computed) and v.what == "src_port":
                    o(f"hash({target}, HashAlgorithm.crc16, 16w0, {{ meta.p4gen_h_src, meta.p4gen_h_dst, "
                      "meta.p4gen_h_proto, meta.l4_src, meta.l4_dst }, 32w65536);")
                    o(f"{target} = {target} | {SRC_PORT_BASE:#x};")
                elif isinstance(v, Computed):
                    o(f"{target} = {computed[v.what]};")
                else:
                    o(f"{target} = {v:#x};" if v > 9 else f"{target} = {v};")

    def moved_pairs(self) -> list[tuple[str, str]]:
        """(outer, inner) header pairs a tunnel moves, option headers included."""
        out = []
        for outer, inner in INNER_OF.items():
            if outer in self.prog.instances and inner in self.prog.instances:
                out.append((outer, inner))
                if self.prog.instances[outer].type.varbit is not None:
                    out.append((outer + "_opt", inner + "_opt"))
        return out

    def decap(self, spec: TunnelSpec) -> None:
        o = self.out
        for outer, inner in self.moved_pairs():
            o(f"hdr.{outer} = hdr.{inner};")
            o(f"hdr.{inner}.setInvalid();")
        o(f"hdr.{spec.name}.setInvalid();")
        if self.prog.instances[spec.name].type.varbit is not None:
            o(f"hdr.{spec.name}_opt.setInvalid();")
        vlan = self.prog.instances.get("vlan")
        for i in range(vlan.stack if vlan is not None and vlan.stack else 0):
            o(f"hdr.vlan[{i}].setInvalid();  // the outer frame's 802.1Q tags go with it")

    # ------------------------------------------------------------ per-flow offload
    def flow_action(self, a: P4Action) -> None:
        """A flow table action: copy the entry's data (key copy, decisions, parameters) into
        metadata; the pipeline's fused code acts on it once the key copy matched."""
        o = self.out
        params = ", ".join(f"bit<{p.width}> {p.p4name}" for p in a.params)
        o(f'@name(".{a.name}") @id({a.id:#010x})')
        o.open(f"action {a.p4name}({params})")
        lay = next((x for x in self.m.flow_layouts.values() if x.action_name == a.name), None)
        if lay is not None:
            n = lay.number
            o(f"meta.p4gen_fhit = {n};")
            o("meta.p4gen_fslot = slot;")
            o(f"meta.p4gen_f{n}_copy = key;")
            for name, _w in lay.decision_params():
                o(f"meta.p4gen_f{n}_{name} = {name};")
        o.close()

    def key_value(self, k) -> str:
        """One flow key field as the DSL reads it (0 when its header is invalid)."""
        if k.field == "$valid":
            elem = f"hdr.{p4_ident(k.instance)}" + ("" if k.index is None else f"[{k.index}]")
            return f"({elem}.isValid() ? 1w1 : 1w0)"
        return self.read(k.ref)

    def flow_lookup(self) -> None:
        """The fused flow table, applied to packets that start a pipeline on the NIC: a verified
        hit marks the packet fused; a miss counts towards learning, and at the threshold (and
        every RELEARN_PACKETS after it) the packet itself goes to the hypervisor, unchanged,
        to be learnt from and run there from its first stage."""
        lays = self.m.flow_layouts
        if not lays:
            return
        o = self.out
        nic = self.m.placement.problem.nic
        policy = nic.offload
        o("// ---- per-flow offload: the fused flow table (p4gen.place.flowlayout)")
        o("meta.p4gen_fused = 0;")
        o("meta.p4gen_fhit = 0;")
        o("meta.p4gen_flow_hash = 0;")
        # looked up at a pipeline's start on the NIC, or where the hypervisor hands an offloaded
        # flow's packet over (a pipeline that starts there)
        where = [f"(meta.p4gen_state == P4GEN_ST_SKIP && meta.p4gen_pipeline == {lay.number} && "
                 f"meta.p4gen_resume == {lay.first_stage})" if lay.hv_first else
                 f"(meta.p4gen_state == P4GEN_ST_RUN && meta.p4gen_pipeline == {lay.number})"
                 for lay in lays.values() if lay.problem is None]
        if not where:
            return
        o.open(f"if ({' || '.join(where)})")
        for lay in lays.values():
            if lay.problem is not None:
                continue
            n = lay.number
            o.open(f"if (meta.p4gen_pipeline == {n})")
            o(f"// pipeline {lay.pipeline}: its flow key, each field as the DSL reads it, concatenated")
            o(f"meta.p4gen_f{n}_key = " + "\n    ++ ".join(self.key_value(k) for k in lay.key) + ";")
            o(f"hash(meta.p4gen_flow_hash, HashAlgorithm.crc32, 32w0, {{ meta.p4gen_pipeline, meta.p4gen_f{n}_key }}, "
              "32w0xffffffff);")
            o.close()
        o(f"{self.m.flow_table.p4name}.apply();")
        for lay in lays.values():
            if lay.problem is not None:
                continue
            n = lay.number
            o.open(f"if (meta.p4gen_fhit == {n} && meta.p4gen_pipeline == {n} && "
                   f"meta.p4gen_f{n}_key == meta.p4gen_f{n}_copy)")
            o("meta.p4gen_fused = 1;")
            o.close()
        flows = self.m.counters[("p4gen", "flow_packets")]
        o.open("if (meta.p4gen_fused == 1)")
        o(f"{flows.p4name}.count(meta.p4gen_fslot);")
        o.close()
        reg = self.m.registers[0]
        t, every = policy.threshold_packets, RELEARN_PACKETS
        o.open("else if (meta.p4gen_state == P4GEN_ST_RUN)")
        o("// a miss at the pipeline's start on the NIC: towards learning it (the hypervisor learns its own)")
        o(f"{reg.p4name}.read(meta.p4gen_learn_n, meta.p4gen_flow_hash & 32w{LEARN_BUCKETS - 1});")
        o("meta.p4gen_learn_n = meta.p4gen_learn_n + 1;")
        o(f"{reg.p4name}.write(meta.p4gen_flow_hash & 32w{LEARN_BUCKETS - 1}, meta.p4gen_learn_n);")
        o.open(f"if (meta.p4gen_learn_n == {t} || (meta.p4gen_learn_n > {t} && "
               f"(meta.p4gen_learn_n & 32w{every - 1}) == 0))")
        o("meta.p4gen_state = P4GEN_ST_PUNT;")
        o("meta.p4gen_reason = P4GEN_REASON_LEARN;")
        for lay in lays.values():
            if not lay.hv_first:
                o.open(f"if (meta.p4gen_pipeline == {lay.number})")
                o(f"meta.p4gen_resume = {lay.first_stage};")
                o.close()
        o.close()
        o.close()
        o.close()

    def handover(self, st: Stage, why: str) -> None:
        o = self.out
        o(f"// stage {st.order}: {st.name} ({st.kind}) -> hypervisor: a fused action lacks {why!r}", st.pos)
        o.open("if (meta.p4gen_state == P4GEN_ST_RUN)")
        o("meta.p4gen_state = P4GEN_ST_PUNT;")
        o(f"meta.p4gen_resume = {st.order};")
        o("meta.p4gen_reason = P4GEN_REASON_PLACEMENT;")
        o.close()

    def decided(self, lay, table: str) -> None:
        """A table's lookup replaced by the flow's recorded decision: its action with the
        entry's parameters, or (selector 0) the default action with its default arguments."""
        o = self.out
        slot = next(t for t in lay.tables if t.table == table)
        nf = self.prog.nfs[slot.nf]
        n = lay.number
        first = True
        for i, act in enumerate(slot.actions):
            o.open(("if" if first else "else if") + f" (meta.p4gen_f{n}_{slot.selector} == {i + 1})")
            first = False
            pmap = {p: f"meta.p4gen_f{n}_{slot.param_name(act, p)}" for p, _w in nf.actions[act].params}
            for s in nf.actions[act].body:
                self.simple_stmt(s, slot.nf, pmap, f"{slot.nf}.{act}")
            o.close()
        tbl = nf.tables[table]
        o.open("else")
        dflt = nf.actions[tbl.default_action]
        pmap = {p: f"{w}w{v}" for (p, w), v in zip(dflt.params, tbl.default_args, strict=True)}
        for s in dflt.body:
            self.simple_stmt(s, slot.nf, pmap, f"{slot.nf}.{tbl.default_action}")
        o.close()

    def fused_seq(self, seq: Seq, lay, start: int | None = None) -> None:
        """The pipeline's stages for a flow table hit: lookups replaced by decisions; a stage the
        NIC cannot run at all hands the packet to the hypervisor, resuming there. `start`: the
        top-level stage to begin at (the ones before it ran in the hypervisor)."""
        o = self.out
        items = seq.items
        if start is not None:
            at = next(i for i, it in enumerate(items) if (it.stage if isinstance(it, Branch) else it).order == start)
            items = items[at:]
        for it in items:
            if isinstance(it, Branch):
                st = it.stage
                self.tmp += 1
                var = f"p4gen_go{self.tmp}"
                o(f"bool {var} = false;")
                if st.order in lay.handover:
                    self.handover(st, lay.handover[st.order])
                else:
                    o(f"// stage {st.order}: {st.name} ({st.kind}) -> nic (fused)", st.pos)
                    o.open("if (meta.p4gen_state == P4GEN_ST_RUN)")
                    if it.hit is not None:
                        table, want_hit = it.hit
                        self.decided(lay, table)
                        sel = next(t.selector for t in lay.tables if t.table == table)
                        o(f"{var} = meta.p4gen_f{lay.number}_{sel} {'!=' if want_hit else '=='} 0;")
                    else:
                        o(f"{var} = {self.cond(st.cond)};")
                    o.close()
                o.open(f"if ({var})")
                self.fused_seq(it.then, lay)
                o.close()
                if it.orelse.items:
                    o.open("else")
                    self.fused_seq(it.orelse, lay)
                    o.close()
                continue
            assert isinstance(it, Stage)
            if it.order in lay.handover or it.kind in ("segment", "coalesce"):
                self.handover(it, lay.handover.get(it.order, it.kind))
                continue
            o(f"// stage {it.order}: {it.name} ({it.kind}) -> nic (fused)", it.pos)
            o.open("if (meta.p4gen_state == P4GEN_ST_RUN)")
            if it.kind == "action":
                for x in it.stmts:
                    self.simple_stmt(x, it.nf)
            elif it.kind == "table":
                self.decided(lay, it.table.name)
            o.close()

    # ------------------------------------------------------------ stage guards
    def stage_guard(self, st: Stage, body) -> None:
        """Enter at `resume`, run if RUN and placed here, punt if placed in the hypervisor."""
        o = self.out
        o(f"// stage {st.order}: {st.name} ({st.kind}) -> {self.m.placement.assignment.get(st.id, HYP)}", st.pos)
        o(f"if (meta.p4gen_state == P4GEN_ST_SKIP && meta.p4gen_resume == {st.order}) "
          "{ meta.p4gen_state = P4GEN_ST_RUN; }")
        if self.m.placement.assignment.get(st.id) == NIC:
            o.open("if (meta.p4gen_state == P4GEN_ST_RUN)")
            body()
            o.close()
        else:
            o.open("if (meta.p4gen_state == P4GEN_ST_RUN)")
            o("meta.p4gen_state = P4GEN_ST_PUNT;")
            o(f"meta.p4gen_resume = {st.order};")
            o("meta.p4gen_reason = P4GEN_REASON_PLACEMENT;")
            o.close()

    def resume_in(self, rng: tuple[int, int] | None) -> str:
        if rng is None:
            return "false"
        lo, hi = rng
        return f"(meta.p4gen_resume >= {lo} && meta.p4gen_resume <= {hi})"

    def seq(self, seq: Seq) -> None:
        """A sequence of the stage tree (p4gen.midend.stages), each stage guarded."""
        o = self.out
        for it in seq.items:
            if isinstance(it, Stage):
                if it.kind == "action":
                    self.stage_guard(it, lambda st=it: [self.simple_stmt(x, st.nf) for x in st.stmts])
                elif it.kind == "table":
                    # only tables placed on the NIC are in the model; the guard calls this only for them
                    self.stage_guard(it, lambda st=it: self.out(f"{self.m.tables[st.table.name].p4name}.apply();"))
                else:  # segmentation and coalescing: never on the NIC, a hand-over point
                    self.stage_guard(it, lambda: None)
                continue
            assert isinstance(it, Branch)
            st = it.stage
            self.tmp += 1
            var = f"p4gen_go{self.tmp}"
            o(f"bool {var} = false;")
            if it.hit is not None:
                table, want_hit = it.hit
                run = f"{var} = {self.m.tables[table].p4name}.apply().{'hit' if want_hit else 'miss'};" \
                    if self.m.on_nic(st.id) else None
            else:
                run = f"{var} = {self.cond(st.cond)};" if self.m.on_nic(st.id) else None
            o(f"// stage {st.order}: {st.name} ({st.kind}) -> {self.m.placement.assignment.get(st.id, HYP)}", st.pos)
            o(f"if (meta.p4gen_state == P4GEN_ST_SKIP && meta.p4gen_resume == {st.order}) "
              "{ meta.p4gen_state = P4GEN_ST_RUN; }")
            o.open("if (meta.p4gen_state == P4GEN_ST_RUN)")
            if run is not None:
                o(run)
            else:
                o("meta.p4gen_state = P4GEN_ST_PUNT;")
                o(f"meta.p4gen_resume = {st.order};")
                o("meta.p4gen_reason = P4GEN_REASON_PLACEMENT;")
            o.close()
            o.open("else if (meta.p4gen_state == P4GEN_ST_SKIP)")
            o(f"{var} = {self.resume_in(it.then.order_range())};")
            o.close()
            o.open(f"if ({var})")
            self.seq(it.then)
            o.close()
            if it.orelse.items:
                o.open("else if (meta.p4gen_state == P4GEN_ST_RUN || meta.p4gen_state == P4GEN_ST_SKIP)")
                self.seq(it.orelse)
                o.close()

    # ------------------------------------------------------------ entry and exit
    def ingress_entry(self) -> None:
        o = self.out
        o("meta.p4gen_state = P4GEN_ST_NONE;")
        o("meta.p4gen_rx_len = (bit<16>)standard_metadata.packet_length;")
        if "ingress_port" in self.prog.metadata:  # a resumed packet brings the port it entered on
            o("meta.ingress_port = standard_metadata.ingress_port;")
        o.open("if (standard_metadata.parser_error != error.NoError)")
        o("p4gen_drop(P4GEN_DROP_MALFORMED);")
        o.close()
        o.open("else if (standard_metadata.checksum_error == 1)")
        o("p4gen_drop(P4GEN_DROP_BAD_CHECKSUM);")
        o.close()
        o.open("else if (hdr.p4gen.isValid())")
        o(f"meta.p4gen_rx_len = (bit<16>)standard_metadata.packet_length - "
          f"{PUNT_HEADER.size + self.carried.size};  // the frame alone")
        o("meta.p4gen_pipeline = hdr.p4gen.pipeline;")
        o("meta.p4gen_flow = hdr.p4gen.flow;")
        o.open("if (hdr.p4gen.resume == P4GEN_RESUME_DONE)")
        o("meta.p4gen_state = P4GEN_ST_SEND;")
        o("meta.p4gen_egress_port = hdr.p4gen.egress_port;")
        o.close()
        o.open("else")
        o("meta.p4gen_state = P4GEN_ST_SKIP;")
        o("meta.p4gen_resume = hdr.p4gen.resume;")
        o.open("if ((hdr.p4gen.flags & P4GEN_FLAG_L4_DIRTY) != 0)")
        o("meta.p4gen_l4_dirty = 1;  // recompute TCP/UDP checksums at the end, as one pass would")
        o.close()
        o.open("if ((hdr.p4gen.flags & P4GEN_FLAG_FORWARDED) != 0)")
        o("// a forward() taken in the hypervisor stands unless a later stage changes it")
        o("standard_metadata.egress_spec = (bit<9>)hdr.p4gen.egress_port;")
        o("meta.p4gen_forwarded = 1;")
        o.close()
        o.close()
        o("hdr.p4gen.setInvalid();")
        if self.carried.fields:
            for name, _w in self.carried.fields:
                if name != CARRIED_PAD:
                    o(f"meta.{p4_ident(name)} = hdr.p4gen_meta.{p4_ident(name)};")
            o("hdr.p4gen_meta.setInvalid();")
        o.close()
        starts = {}
        for name, pl in self.prog.pipelines.items():
            start = self.m.placement.problem.pipelines[name][0]
            if start == NIC:
                port = "P4GEN_PORT_UPLINK" if pl.direction == "vm_ingress" else "P4GEN_PORT_VM0"
                starts.setdefault(port, []).append(name)
        for port, names in starts.items():
            o.open(f"else if (standard_metadata.ingress_port == {port})")
            first = True
            for name in names:
                flows = [(i + 1, f) for i, f in enumerate(self.prog.flows.values()) if f.pipeline == name]
                if not flows:
                    flows = [(0, None)]
                for idx, f in flows:
                    cond = self.cond(f.match) if f is not None else "true"
                    o.open(("if" if first else "else if") + f" ({cond})", f.pos if f else None)
                    o(f"meta.p4gen_pipeline = {self.m.pipeline_index[name]};")
                    o(f"meta.p4gen_flow = {idx};")
                    o("meta.p4gen_state = P4GEN_ST_RUN;")
                    o.close()
                    first = False
            o.open("else")
            o("p4gen_drop(P4GEN_DROP_NO_FLOW);")
            o.close()
            o.close()
        o.open("else")
        o("p4gen_drop(P4GEN_DROP_BAD_PORT);")
        o.close()

    def pipeline_end(self, name: str) -> None:
        o = self.out
        end = self.m.placement.problem.pipelines[name][1]
        pl = self.prog.pipelines[name]
        o.open("if (meta.p4gen_state == P4GEN_ST_RUN)")
        o("meta.p4gen_state = P4GEN_ST_DONE;")
        o.open("if (meta.p4gen_forwarded == 0)")
        if end == NIC:
            port = "P4GEN_PORT_UPLINK" if pl.direction == "vm_egress" else "P4GEN_PORT_VM0"
            o(f"standard_metadata.egress_spec = {port};")
        else:
            o("meta.p4gen_state = P4GEN_ST_PUNT;")
            o("meta.p4gen_resume = P4GEN_RESUME_DONE;")
            o("meta.p4gen_reason = P4GEN_REASON_FINISHED;")
        o.close()
        o.close()

    def ingress_exit(self) -> None:
        o = self.out
        o()
        o.open("if (meta.p4gen_state == P4GEN_ST_PUNT || meta.p4gen_state == P4GEN_ST_TO_HV)")
        o("hdr.p4gen.setValid();")
        o("hdr.p4gen.version = P4GEN_VERSION;")
        o("hdr.p4gen.pipeline = meta.p4gen_pipeline;")
        o("hdr.p4gen.flow = meta.p4gen_flow;")
        o.open("if (meta.p4gen_state == P4GEN_ST_TO_HV)")
        o("hdr.p4gen.resume = P4GEN_RESUME_DONE;")
        o("hdr.p4gen.reason = P4GEN_REASON_TO_HYPERVISOR;")
        o("hdr.p4gen.code = meta.p4gen_code;")
        o.close()
        o.open("else")
        o("hdr.p4gen.resume = meta.p4gen_resume;")
        o("hdr.p4gen.reason = meta.p4gen_reason;")
        o("hdr.p4gen.code = 0;")
        o.close()
        o("hdr.p4gen.egress_port = 0;")
        o("hdr.p4gen.flags = 0;")
        o("hdr.p4gen.reserved = 0;")
        o(f"hdr.p4gen.flow_hash = {'meta.p4gen_flow_hash' if self.m.flow_layouts else '0'};")
        o.open("if (meta.p4gen_forwarded == 1)")
        o("hdr.p4gen.egress_port = (bit<16>)standard_metadata.egress_spec;")
        o("hdr.p4gen.flags = P4GEN_FLAG_FORWARDED;")
        o.close()
        o.open("if (meta.p4gen_l4_dirty == 1)")
        o("hdr.p4gen.flags = hdr.p4gen.flags | P4GEN_FLAG_L4_DIRTY;")
        o.close()
        if self.carried.fields:
            o("hdr.p4gen_meta.setValid();")
            for name, _w in self.carried.fields:
                value = "0" if name == CARRIED_PAD else f"meta.{p4_ident(name)}"
                o(f"hdr.p4gen_meta.{name if name == CARRIED_PAD else p4_ident(name)} = {value};")
        o("standard_metadata.egress_spec = P4GEN_PORT_HOST;")
        o.close()
        o.open("else if (meta.p4gen_state == P4GEN_ST_SEND)")
        o("standard_metadata.egress_spec = (bit<9>)meta.p4gen_egress_port;")
        o.close()
        o.open("else if (meta.p4gen_state == P4GEN_ST_SKIP)")
        o("p4gen_drop(P4GEN_DROP_BAD_RESUME);")
        o.close()
        o.open("else if (meta.p4gen_state == P4GEN_ST_DROP && meta.p4gen_drop_cause != 0)")
        o("p4gen_drop(meta.p4gen_drop_cause - 1);  // a primitive's precondition failed (DROP_REASONS), or drop()")
        o.close()
        o.open("else if (meta.p4gen_state != P4GEN_ST_DONE)")
        o("mark_to_drop(standard_metadata);")
        o.close()
        o()
        # Lengths the checksum units need (they cannot compute them), taken from the headers
        # as they leave: after a decapsulation `ipv4` is the former inner header, after an
        # encapsulation the new outer one.
        o.open("if (hdr.ipv4.isValid())")
        o("meta.p4gen_l4_len = hdr.ipv4.total_len - ((bit<16>)hdr.ipv4.ihl << 2);")
        o.close()
        o.open("else if (hdr.ipv6.isValid())")
        o("meta.p4gen_l4_len = hdr.ipv6.payload_len;")
        o.close()
        # Packets leaving with their inner headers rewritten need the inner L4 length too.
        if "inner_ipv4" in self.prog.instances:
            o.open("if (hdr.inner_ipv4.isValid())")
            o("meta.p4gen_inner_l4_len = hdr.inner_ipv4.total_len - ((bit<16>)hdr.inner_ipv4.ihl << 2);")
            o.close()
            if "inner_ipv6" in self.prog.instances:
                o.open("else if (hdr.inner_ipv6.isValid())")
                o("meta.p4gen_inner_l4_len = hdr.inner_ipv6.payload_len;")
                o.close()


# ---------------------------------------------------------------- helpers


def _width(op: P.Operand) -> int | None:
    if isinstance(op, (P.FieldRef, P.ParamRef)):
        return op.width
    if isinstance(op, P.ConstVal):
        return op.width
    if isinstance(op, P.Arith):
        return op.width
    if isinstance(op, P.Select):
        return leaf_width(op)
    return None


def _length_fields(op: P.Operand | None) -> set[str]:
    if isinstance(op, P.FieldRef):
        return {op.field}
    if isinstance(op, P.Arith):
        return _length_fields(op.left) | _length_fields(op.right)
    return set()


def _nonnegative_guard(op: P.Operand | None) -> tuple[P.Operand, P.Operand] | None:
    """For `a - b`, the operands of the check `a >= b` (a negative varbit length is malformed)."""
    if isinstance(op, P.Arith) and op.op == "-":
        return op.left, op.right
    return None


def _carried_ident(name: str) -> str:
    return name if name == CARRIED_PAD else p4_ident(name)


def emit_program(model: NicModel, source: str) -> tuple[str, LineMap]:
    return Emitter(model, source).emit()


__all__ = ["emit_program", "BackendError", "LineMap"]
