"""The hypervisor's flow cache: run a flow's first packet through the pipeline, replay the rest.

The first packet of a flow runs the full pipeline, traced: which tables it
looked up (and which entries it hit), which counters it bumped, which stages it
passed, its fate, and, by following the identity of the header buffers from
the parser to the deparser, where each output header came from — an input
header (copied, with the bytes the stages wrote) or a new one (a template:
encapsulation). That is its *flow action*. Its *flow key* is the bytes of every
field that decides anything (p4gen.midend.flowkeys), read at the offsets the
packet's parse path fixed (an *extractor* per parse path: the parser's own
select bytes are in the key, so a packet whose key matches has the same path).

A later packet with the same key gets the flow action applied to its raw bytes:
copy and patch the headers, prepend templates, fix lengths that follow the
inner packet's ("same delta"), recompute IPv4 header checksums and, when a
rewrite covered them, TCP/UDP checksums — and bump the same counters by one
packet and its length. Input IPv4 header checksums are verified on the way
in, as the parser does. What the cache cannot replay exactly is never cached,
and counted by reason: a pipeline that computes from a length, a packet that
was segmented, a frame the parser rejected, a resumed or GSO packet.

Bounded (least recently used first out). A table change invalidates exactly
the flows whose first packet looked that table up.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from p4gen.midend.flowkeys import flow_key
from p4gen.midend.protocols import L4_CHECKSUM_PAIRS
from p4gen.runtime.checksum import fold, pseudo_header_sum, word_sum

if TYPE_CHECKING:
    from p4gen.runtime.packet import Packet
    from p4gen.runtime.pipeline import HypervisorPipeline, Output

DEFAULT_SIZE = 65536
_OUTPUT: list = []


def _output():
    """runtime.pipeline.Output (imported on first use: the pipeline imports this module)."""
    if not _OUTPUT:
        from p4gen.runtime.pipeline import Output

        _OUTPUT.append(Output)
    return _OUTPUT[0]


@dataclass
class Trace:
    """What one full run did, for `FlowCache.learn` (filled in by the pipeline)."""

    inputs: dict[int, tuple[int, int]] = field(default_factory=dict)  # id(header bytes) → (offset, length)
    keep: list = field(default_factory=list)  # the input buffers themselves (ids stay unique)
    pkt: Packet | None = None
    tables: set[str] = field(default_factory=set)
    entries: list = field(default_factory=list)
    counts: list = field(default_factory=list)  # (cells, index)
    written: list = field(default_factory=list)  # (header bytes, [(byte, bit mask)]) an assignment wrote
    problem: str | None = None
    slack: int | None = None  # a segmentation stage passed the packet whole: by how many bytes it fit
    state: int = 0
    drop_reason: str = ""
    pipeline: str = ""
    hdr_end: int = 0  # input: where the payload starts


@dataclass
class Extractor:
    """One parse path: the key bytes' ranges, the bytes the path needs, the input IPv4 headers
    to verify, where the length measure is, and where the packet's own L4 checksum is."""

    ranges: tuple[tuple[int, int], ...]
    min_len: int
    ipv4: tuple[tuple[int, int], ...]  # (offset, header length)
    length_at: tuple[int, int, int] | None  # (offset of the field, bytes, added): the input's IP length
    own_l4: tuple[int, int] | None  # (csum_start, csum_offset) of the outermost TCP/UDP
    key: object = None  # compiled: frame → bytes

    def __post_init__(self) -> None:
        parts = " + ".join(f"f[{a}:{b}]" for a, b in self.ranges) or "b''"
        self.key = eval(f"lambda f: {parts}")  # noqa: S307 - integers only

    def length(self, frame) -> int:
        if self.length_at is None:
            return len(frame)
        off, n, add = self.length_at
        return int.from_bytes(frame[off:off + n], "big") + add


@dataclass
class FlowAction:
    pipeline: str
    pieces: list  # bytes (new headers) or (start, stop) of the input, in output order
    patches: list[tuple[int, bytes]]  # output offset → whole bytes a stage wrote into a copied header
    bit_patches: list[tuple[int, int, int]]  # (output offset, mask, bits) for writes of part of a byte
    len_fixes: list[tuple[int, int]]  # output offset of a 16-bit length in a new header, its value then
    ipv4: list[tuple[int, int]]  # output IPv4 headers: (offset, header length), checksums recomputed
    l4: list[tuple[int, int, int, int, bool]]  # (ip offset, 4|6, l4 offset, checksum offset, is udp)
    hdr_end: int
    length0: int
    max_len: int | None
    fate: tuple  # ("drop", reason) | ("out", kind, port, resume, code, meta, l4_dirty)
    counts: list
    entries: list
    stages: list[str]
    tables: frozenset[str]


class FlowCache:
    def __init__(self, hv: HypervisorPipeline, size: int = DEFAULT_SIZE):
        self.hv = hv
        self.size = size
        self.flows: OrderedDict[tuple, FlowAction] = OrderedDict()
        self.extractors: dict[str, list[Extractor]] = {}
        self._known: dict[tuple, Extractor] = {}
        self.stats: Counter[str] = Counter()
        self.uncacheable: Counter[str] = Counter()
        self.by_table: dict[str, set[tuple]] = {}
        ps = hv.parser
        self.parser = ps
        self._lay = ps.inst_layout
        trees = self._trees()
        self.keys = {scope: flow_key(hv.prog, ts) for scope, ts in trees.items()}

    def _trees(self) -> dict[str, list]:
        from p4gen.ir.lower import stage_trees

        trees = stage_trees(self.hv.g)
        out = {f"pl:{n}": [t] for n, t in trees.items()}
        for d in ("vm_egress", "vm_ingress"):
            out[f"dir:{d}"] = [trees[n] for n in self.hv.by_direction.get(d, ()) if n in trees]
        return out

    # ------------------------------------------------------------ the fast path
    def apply(self, scope: str, frame: bytes, csum: tuple[int, int] | None) -> tuple[str, list[Output]] | None:
        """The outputs of a cached flow (and its pipeline), or None: run the full path.
        `csum`: the VM's NEEDS_CSUM (start, offset), which only the packet's own L4 checksum
        may be (the flow then recomputes it)."""
        exts = self.extractors.get(scope)
        if not exts:
            return None
        n = len(frame)
        for ext in exts:
            if n < ext.min_len:
                continue
            k = (scope, id(ext), csum is not None, ext.key(frame))
            fa = self.flows.get(k)
            if fa is None:
                continue
            if csum is not None and csum != ext.own_l4:
                return None
            for a, hl in ext.ipv4:  # the parser's check: a bad header checksum takes the full path
                v = int.from_bytes(frame[a:a + hl], "big")
                if v == 0 or v % 0xFFFF:
                    return None
            la = ext.length_at
            length = n if la is None else int.from_bytes(frame[la[0]:la[0] + la[1]], "big") + la[2]
            if fa.max_len is not None and length > fa.max_len:
                return None
            self.flows.move_to_end(k)
            self.stats["hits"] += 1
            return fa.pipeline, self._replay(fa, frame, length, n)
        return None

    def _replay(self, fa: FlowAction, frame: bytes, length: int, n: int) -> list[Output]:
        hv = self.hv
        for cells, i in fa.counts:
            c = cells[i]
            c[0] += 1
            c[1] += n
        for e in fa.entries:
            e.packets += 1
            e.bytes += n
        sp = hv.stage_packets
        for sid in fa.stages:
            sp[sid] += 1
        fate = fa.fate
        if fate[0] == "drop":
            hv.drops[fate[1]] += 1
            return []
        out = bytearray()
        for p in fa.pieces:
            if p.__class__ is bytes:
                out += p
            else:
                out += frame[p[0]:p[1]]
        for off, val in fa.patches:
            out[off:off + len(val)] = val
        for off, mask, bits in fa.bit_patches:
            out[off] = (out[off] & ~mask & 0xFF) | bits
        if fa.len_fixes:
            d = length - fa.length0
            for off, base in fa.len_fixes:
                out[off:off + 2] = ((base + d) & 0xFFFF).to_bytes(2, "big")
        out += frame[fa.hdr_end:]
        for off, hl in fa.ipv4:
            out[off + 10:off + 12] = b"\0\0"
            v = int.from_bytes(out[off:off + hl], "big") % 0xFFFF
            out[off + 10:off + 12] = ((0xFFFF - v) if v else 0).to_bytes(2, "big")
        for ip, version, l4, at, udp in fa.l4:
            if udp and out[at] == 0 and out[at + 1] == 0:
                continue
            if version == 4:
                l4_len = (int.from_bytes(out[ip + 2:ip + 4], "big") - (out[ip] & 0xF) * 4) & 0xFFFF
                pseudo = pseudo_header_sum(bytes(out[ip + 12:ip + 20]), out[ip + 9], l4_len)
            else:
                pseudo = pseudo_header_sum(bytes(out[ip + 8:ip + 40]), out[ip + 6],
                                           int.from_bytes(out[ip + 4:ip + 6], "big"))
            out[at:at + 2] = b"\0\0"
            out[at:at + 2] = (~fold(pseudo + word_sum(bytes(out[l4:]))) & 0xFFFF).to_bytes(2, "big")
        _, kind, port, resume, code, meta, l4_dirty = fate
        return [_output()(kind, bytes(out), port, resume, code, dict(meta) if meta is not None else None, l4_dirty)]

    # ------------------------------------------------------------ learning
    def begin(self, pkt: Packet, t: Trace) -> None:
        """Start tracing the packet just parsed: its header buffers and where they were."""
        off = 0
        opt = pkt.opt
        for name, stacked in self.parser._emit_order:
            bufs = pkt.stacks[name] if stacked else ([pkt.hdr[name]] if pkt.hdr[name] is not None else [])
            for b in bufs:
                t.inputs[id(b)] = (off, len(b))
                t.keep.append(b)
                off += len(b)
                tail = None if stacked else opt.get(name)
                if tail:
                    t.inputs[id(tail)] = (off, len(tail))
                    t.keep.append(tail)
                    off += len(tail)
        t.hdr_end = off

    def learn(self, scope: str, frame: bytes, csum: tuple[int, int] | None, t: Trace, outputs: list[Output],
              stages: dict[str, int]) -> None:
        key = self.keys.get(scope)
        if key is None:
            return
        problem = key.problem or t.problem
        if problem is None and t.pkt is None:
            problem = "not parsed"
        if problem is None and len(outputs) > 1:
            problem = "several outputs"
        if problem is None and any(v != 1 for v in stages.values()):
            problem = "a stage ran twice"
        if problem is not None:
            self.uncacheable[problem] += 1
            return
        pkt0 = self.parser.parse(frame)  # the input as it was (the traced one has been rewritten)
        ext = self._extractor(scope, pkt0, key.fields, t.hdr_end)
        if csum is not None and csum != ext.own_l4:
            self.uncacheable["partial checksum not at the L4 header"] += 1
            return
        length0 = ext.length(frame)
        fa = self._action(t, frame, outputs, list(stages), length0)
        if fa is None:
            return
        if t.slack is not None:
            fa.max_len = length0 + t.slack
        k = (scope, id(ext), csum is not None, ext.key(frame))
        self.flows[k] = fa
        for tbl in fa.tables:
            self.by_table.setdefault(tbl, set()).add(k)
        self.stats["flows_learnt"] += 1
        while len(self.flows) > self.size:
            old, ofa = self.flows.popitem(last=False)
            for tbl in ofa.tables:
                self.by_table.get(tbl, set()).discard(old)
            self.stats["evictions"] += 1

    def _extractor(self, scope: str, pkt: Packet, fields: frozenset[str], hdr_end: int) -> Extractor:
        ps = self.parser
        ranges: set[int] = set()
        ipv4, length_at, own_l4 = [], None, None
        offsets: dict[str, int] = {}
        off = 0
        for name, stacked in ps._emit_order:
            bufs = pkt.stacks[name] if stacked else ([pkt.hdr[name]] if pkt.hdr[name] is not None else [])
            for b in bufs:
                offsets.setdefault(name, off)
                lay = self._lay[name]
                for f in lay.fields.values():
                    if f"{name}.{f.name}" in fields:
                        ranges.update(range(off + f.byte, off + f.byte + f.nbytes))
                tail = None if stacked else pkt.opt.get(name)
                if lay.name == "ipv4":
                    ipv4.append((off, len(b) + (len(tail) if tail else 0)))
                    if length_at is None:
                        length_at = (off + lay["total_len"].byte, 2, 0)
                elif lay.name == "ipv6" and length_at is None:
                    length_at = (off + lay["payload_len"].byte, 2, lay.size)
                elif lay.name in ("tcp", "udp") and own_l4 is None:
                    own_l4 = (off, lay["checksum"].byte)
                off += len(b) + (len(tail) if tail else 0)
                if tail and f"{name}.{lay.varbit}" in fields:
                    ranges.update(range(off - len(tail), off))
        spans: list[tuple[int, int]] = []
        for i in sorted(ranges):
            if spans and spans[-1][1] == i:
                spans[-1] = (spans[-1][0], i + 1)
            else:
                spans.append((i, i + 1))
        sig = (scope, tuple(spans), hdr_end, tuple(ipv4), length_at, own_l4)
        ext = self._known.get(sig)
        if ext is None:
            ext = self._known[sig] = Extractor(tuple(spans), hdr_end, tuple(ipv4), length_at, own_l4)
            self.extractors.setdefault(scope, []).append(ext)
        return ext

    def _action(self, t: Trace, frame: bytes, outputs: list[Output], stages: list[str],
                length0: int) -> FlowAction | None:
        from p4gen.runtime.pipeline import DROP

        common = dict(counts=list(t.counts), entries=list(t.entries), stages=stages, tables=frozenset(t.tables),
                      hdr_end=t.hdr_end, length0=length0, max_len=None, pipeline=t.pipeline)
        if not outputs:
            if t.state != DROP:
                self.uncacheable["no output"] += 1
                return None
            return FlowAction(pieces=[], patches=[], bit_patches=[], len_fixes=[], ipv4=[], l4=[],
                              fate=("drop", t.drop_reason or "dropped"), **common)
        (o,) = outputs
        pkt = t.pkt
        ps = self.parser
        pieces, patches, bit_patches, len_fixes, ipv4, l4 = [], [], [], [], [], []
        written: dict[int, list] = {}
        for wb, span in t.written:
            written.setdefault(id(wb), []).append((wb, span))
        where: dict[str, tuple[int, str]] = {}  # instance → (output offset, header type)
        out_off = 0
        l4_dirty = pkt.l4_dirty
        for name, stacked in ps._emit_order:
            bufs = pkt.stacks[name] if stacked else ([pkt.hdr[name]] if pkt.hdr[name] is not None else [])
            for b in bufs:
                lay = self._lay[name]
                where.setdefault(name, (out_off, lay.name))
                tail = None if stacked else pkt.opt.get(name)
                computed = self._computed(lay, l4_dirty)
                src = t.inputs.get(id(b))
                if src is not None and src[1] == len(b):
                    a = src[0]
                    pieces.append((a, a + len(b)))
                    old = frame[a:a + len(b)]
                    # Every bit an assignment wrote (the value is the flow's, even where it equals
                    # this packet's), and any other byte that changed.
                    masks = [0] * len(b)
                    for _wb, span in written.get(id(b), ()):
                        for i, m in span:
                            masks[i] |= m
                    for i in range(len(b)):
                        masks[i] |= b[i] ^ old[i]
                    i = 0
                    while i < len(b):
                        if masks[i] == 0xFF and i not in computed:
                            j = i
                            while j < len(b) and masks[j] == 0xFF and j not in computed:
                                j += 1
                            patches.append((out_off + i, bytes(b[i:j])))
                            i = j
                            continue
                        if masks[i] and i not in computed:
                            bit_patches.append((out_off + i, masks[i], b[i] & masks[i]))
                        i += 1
                else:  # a new header: its bytes as the template; its lengths follow the packet's
                    pieces.append(bytes(b))
                    for lf in self._length_fields(lay):
                        len_fixes.append((out_off + lf.byte, lf.get(b)))
                if lay.name == "ipv4":
                    ipv4.append((out_off, len(b) + (len(tail) if tail else 0)))
                out_off += len(b)
                if tail:
                    ts = t.inputs.get(id(tail))
                    pieces.append((ts[0], ts[0] + len(tail)) if ts is not None else bytes(tail))
                    out_off += len(tail)
        if l4_dirty:
            for ip, l4n in L4_CHECKSUM_PAIRS:
                if ip in where and l4n in where:
                    ip_off, ip_kind = where[ip]
                    l4_off, l4_kind = where[l4n]
                    l4.append((ip_off, 4 if ip_kind == "ipv4" else 6, l4_off,
                               l4_off + self._lay[l4n]["checksum"].byte, l4_kind == "udp"))
        payload = frame[t.hdr_end:]
        if not (o.data.endswith(payload) and len(o.data) - len(payload) == out_off):
            self.uncacheable["unexplained output"] += 1
            return None
        fa = FlowAction(pieces=pieces, patches=patches, bit_patches=bit_patches, len_fixes=len_fixes, ipv4=ipv4, l4=l4,
                        fate=("out", o.kind, o.port, o.resume, o.code,
                              dict(o.meta) if o.meta is not None else None, o.l4_dirty), **common)
        if self._replay_check(fa, frame, length0) != o.data:  # the action must give this packet's bytes
            self.uncacheable["unexplained output"] += 1
            return None
        return fa

    def _replay_check(self, fa: FlowAction, frame: bytes, length: int) -> bytes:
        """The bytes `fa` gives for `frame`, with no counter touched."""
        saved = fa.counts, fa.entries, fa.stages, fa.fate
        fa.counts, fa.entries, fa.stages = [], [], []
        try:
            return self._replay(fa, frame, length, len(frame))[0].data
        finally:
            fa.counts, fa.entries, fa.stages, fa.fate = saved

    @staticmethod
    def _length_fields(lay) -> list:
        names = {"ipv4": ("total_len",), "ipv6": ("payload_len",), "udp": ("length",)}.get(lay.name, ())
        return [lay[n] for n in names]

    def _computed(self, lay, l4_dirty: bool) -> set[int]:
        """Byte positions of a header that the replay computes per packet (never patched)."""
        out: set[int] = set()
        fields = []
        if lay.name == "ipv4":
            fields.append(lay["hdr_checksum"])
        if l4_dirty and lay.name in ("tcp", "udp"):
            fields.append(lay["checksum"])
        for f in fields:
            out.update(range(f.byte, f.byte + f.nbytes))
        return out

    # ------------------------------------------------------------ control
    def invalidate_table(self, table: str) -> int:
        """Forget every flow whose first packet looked `table` up (an entry was added, changed or
        removed); how many."""
        keys = self.by_table.pop(table, set())
        n = 0
        for k in keys:
            fa = self.flows.pop(k, None)
            if fa is not None:
                n += 1
                for other in fa.tables:
                    if other != table:
                        self.by_table.get(other, set()).discard(k)
        self.stats["invalidated"] += n
        return n

    def clear(self) -> None:
        self.flows.clear()
        self.by_table.clear()

    def summary(self) -> dict:
        return {"hits": self.stats["hits"], "misses": self.stats["misses"], "flows": len(self.flows),
                "learnt": self.stats["flows_learnt"], "evictions": self.stats["evictions"],
                "invalidated": self.stats["invalidated"], "uncacheable": dict(self.uncacheable)}
