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

A later packet with the same key gets the flow action applied to its raw bytes
(one generated function per action shape, p4gen.runtime.flowcode): copy and
patch the headers, prepend templates, fix lengths that follow the inner
packet's ("same delta"), compute IPv4 header checksums and, when a rewrite
covered them, TCP/UDP checksums. Its counts are kept per flow and folded into
the counters, entries and per-stage counts whenever anything reads them
(`fold`). Input IPv4 header checksums are verified on the way in, as the
parser does. A train (a super-packet a segmentation stage let through whole,
p4gen.midend.trains) or a VM's GSO super-packet is a flow too: its headers are
rewritten once and it is cut with them replicated. An action holds for the
lengths its segmentation stage decided the same way; a flow keeps one action
per such range. What the cache cannot replay exactly is never cached, and
counted by reason: a pipeline that computes from a length, a frame the parser
rejected, a packet cut before the pipeline ran, a resumed packet.

Bounded (a clock: the oldest flow not hit since the last pass goes first). A
table change invalidates exactly the flows whose first packet looked that
table up.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING

import numpy as np

from p4gen.midend.flowkeys import flow_key
from p4gen.midend.protocols import L4_CHECKSUM_PAIRS
from p4gen.runtime.flowcode import ActionBytes, compile_action
from p4gen.runtime.flowvec import MIN_GROUP, ROOM, Block, FlowIndex, Outputs, apply_plan, check_columns
from p4gen.runtime.tso import Frame, cut_rows

if TYPE_CHECKING:
    from p4gen.runtime.packet import Packet
    from p4gen.runtime.pipeline import HypervisorPipeline, Output

DEFAULT_SIZE = 65536
HEAD = 160  # bytes of a flow's first packet kept to show its key (every header of the examples' paths)
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
    exact: bool = False  # a segmentation stage decided on this packet's exact length
    state: int = 0
    drop_reason: str = ""
    pipeline: str = ""
    hdr_end: int = 0  # input: where the payload starts
    path: tuple = ()  # input: (instance, header bytes, variable-length tail bytes) in emit order
    train: TrainTrace | None = None  # a segmentation stage made it a train
    train_out: bytes | None = None  # the train's bytes at its fate, before the cut
    stages: list = field(default_factory=list)  # a prediction: the order numbers of the stages it ran


@dataclass(eq=False)
class Extractor:
    """One parse path: the key bytes' ranges, the bytes the path needs, the input IPv4 headers
    to verify, where the length measure is, and where the packet's own L4 checksum is. Its
    flows are keyed by the key bytes alone."""

    ranges: tuple[tuple[int, int], ...]
    min_len: int
    ipv4: tuple[tuple[int, int], ...]  # (offset, header length)
    length_at: tuple[int, int, int] | None  # (offset of the field, bytes, added): the input's IP length
    own_l4: tuple[int, int] | None  # (csum_start, csum_offset) of the outermost TCP/UDP
    key: object = None  # compiled: frame → the key bytes (a tuple)
    cols: object = None  # the key bytes' offsets (a numpy array), for the vector replay
    check: object = None  # compiled: frame → its length measure, or -1 (the full path must see it)
    flows: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        fmt, at = ">", 0  # the key bytes as one struct: pad over the rest (a tuple of byte strings)
        for a, b in self.ranges:
            fmt += (f"{a - at}x" if a > at else "") + f"{b - a}s"
            at = b
        self.key = struct.Struct(fmt).unpack_from
        cols = [i for a, b in self.ranges for i in range(a, b)]
        self.cols = np.array(cols + cols[:1] * (-len(cols) % 8), np.int64)  # whole 64-bit words
        # The parser's IPv4 header checksum check; and a checksum field of 0xFFFF (the
        # non-canonical zero) takes the full path, so a copied header may keep its checksum.
        lines = ["def check(f):"]
        for a, hl in self.ipv4:
            lines += [f"    v = int.from_bytes(f[{a}:{a + hl}], 'big')",
                      f"    if not v or v % 0xFFFF or f[{a + 10}] == 255 == f[{a + 11}]:",
                      "        return -1"]
        la = self.length_at
        lines.append("    return len(f)" if la is None else
                     f"    return (f[{la[0]}] << 8 | f[{la[0] + 1}]) + {la[2]}" if la[1] == 2 else
                     f"    return int.from_bytes(f[{la[0]}:{la[0] + la[1]}], 'big') + {la[2]}")
        ns: dict = {}
        exec("\n".join(lines) + "\n", ns)  # noqa: S102 - integers only
        self.check = ns["check"]

    def length(self, frame) -> int:
        if self.length_at is None:
            return len(frame)
        off, n, add = self.length_at
        return int.from_bytes(frame[off:off + n], "big") + add


INF = 1 << 30  # a length above every packet's


@dataclass(frozen=True)
class TrainTrace:
    """A segmentation stage made the packet a train (cut at its fate, p4gen.midend.trains): the
    MSS, the header bytes each segment repeats, the payload, the IP length there, the least IP
    length that is cut the same way, and how many counts and table hits came before it."""

    mss: int
    hdr: int
    payload: int
    ip_len: int
    min_ip_len: int
    n_counts: int
    n_entries: int


@dataclass(eq=False)
class FlowAction:
    """What every packet of a flow whose length lies in [lo, hi] gets (`alt`: the flow's action
    for other lengths, e.g. those a segmentation stage cuts)."""

    pipeline: str
    build: object  # p4gen.runtime.flowcode: (frame, length delta) → output bytes; None for a drop
    length0: int
    fate: tuple  # ("drop", reason) | ("out", kind, port, resume, code, meta, l4_dirty)
    counts: list  # (cells, index) bumped by one packet and its bytes
    entries: list
    stages: list[str]
    tables: frozenset[str]
    lo: int = 0
    hi: int = INF
    alt: FlowAction | None = None
    train: tuple | None = None  # (mss, header bytes per segment, payload at length0, layout): cut the output
    post: tuple = ((), (), ())  # counts, entries, stages after the cut: bumped by the segments
    pending: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # packets, bytes, segments, their bytes
    ref: bool = False  # hit since the eviction clock last passed it
    layout: ActionBytes | None = None  # what `build` was compiled from (the vector replay reads it too)
    vec: object = None  # p4gen.runtime.flowvec.VectorAction, made on the first vector hit
    total: list[int] = field(default_factory=lambda: [1, 0])  # packets, bytes so far (folded ones)
    head: bytes = b""  # the start of its first packet: its key, for `p4gen flows`

    def chain(self):
        fa = self
        while fa is not None:
            yield fa
            fa = fa.alt


def _without(fa: FlowAction | None, lo: int, hi: int) -> FlowAction | None:
    """The chain `fa` less the actions whose lengths overlap [lo, hi] (a newer action took them)."""
    keep = [o for o in (fa.chain() if fa is not None else ()) if o.hi < lo or o.lo > hi]
    for a, b in zip(keep, [*keep[1:], None]):  # noqa: B905 - one shorter on purpose: the last gets None
        a.alt = b
    return keep[0] if keep else None


class FlowCache:
    def __init__(self, hv: HypervisorPipeline, size: int = DEFAULT_SIZE):
        self.hv = hv
        self.size = size
        self.flows: dict[tuple[Extractor, tuple], FlowAction] = {}  # insertion order: the eviction clock
        self.extractors: dict[tuple[str, bool], list[Extractor]] = {}  # (scope, NEEDS_CSUM) → parse paths
        self._known: dict[tuple, Extractor] = {}
        self._by_path: dict[tuple, Extractor] = {}
        self._computed_memo: dict[tuple[str, bool], set[int]] = {}
        self.hits = 0
        self.stats: Counter[str] = Counter()
        self.uncacheable: Counter[str] = Counter()
        self.by_table: dict[str, set[tuple]] = {}
        self.dirty: list[FlowAction] = []  # flows with pending counts (folded when anything reads them)
        self._indexes: dict[Extractor, FlowIndex] = {}  # the vector replay's arrays (p4gen.runtime.flowvec)
        self.vector_pending = False  # an index holds hits not yet moved into `dirty`
        self.fates: list[tuple] = []  # the fates vector outputs refer to by number
        self._fate_ids: dict[tuple, int] = {}
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
        may be (the flow then recomputes it). Counters are bumped lazily (`fold`)."""
        exts = self.extractors.get((scope, csum is not None))
        if not exts:
            return None
        n = len(frame)
        for ext in exts:
            if n < ext.min_len:
                continue
            fa = ext.flows.get(ext.key(frame))
            if fa is None:
                continue
            if csum is not None and csum != ext.own_l4:
                return None
            length = ext.check(frame)
            while fa is not None and not fa.lo <= length <= fa.hi:
                fa = fa.alt
            if length < 0 or fa is None:
                return None
            out: list[Output] = []
            if fa.train is not None:
                if not self._train(fa, frame, length, n, out):
                    return None
                self.hits += 1
                return fa.pipeline, out
            self.hits += 1
            self._tally(fa, n)
            fate = fa.fate
            if fate[0] == "drop":
                self.hv.drops[fate[1]] += 1
                return fa.pipeline, out
            _, kind, port, resume, code, meta, l4_dirty = fate
            out.append(_output()(kind, fa.build(frame, length - fa.length0), port, resume, code,
                                 dict(meta) if meta is not None else None, l4_dirty))
            return fa.pipeline, out
        return None

    def run_many(self, scope: str, frames, miss) -> list[Output]:
        """`apply` over a batch (plain frames, no NEEDS_CSUM) in one loop; `miss(frame)` runs
        the full path (and learns) for a frame no cached flow takes."""
        output = _output()
        dirty, drops, flows_of = self.dirty, self.hv.drops, self.extractors
        exts = flows_of.get((scope, False), ())
        out: list[Output] = []
        hits = 0
        for frame in frames:
            n = len(frame)
            fa = None
            for ext in exts:
                if n >= ext.min_len:
                    fa = ext.flows.get(ext.key(frame))
                    if fa is not None:
                        break
            if fa is not None:
                length = ext.check(frame)
                while fa is not None and not fa.lo <= length <= fa.hi:
                    fa = fa.alt
                if fa is not None and length >= 0 and (fa.train is None or self._train(fa, frame, length, n, out)):
                    hits += 1
                    if fa.train is not None:
                        continue
                    fa.ref = True  # FlowCache._tally, inline
                    p = fa.pending
                    if not p[0]:
                        dirty.append(fa)
                    p[0] += 1
                    p[1] += n
                    fate = fa.fate
                    if fate[0] == "drop":
                        drops[fate[1]] += 1
                    else:
                        _, kind, port, resume, code, meta, l4_dirty = fate
                        out.append(output(kind, fa.build(frame, length - fa.length0), port, resume, code,
                                          dict(meta) if meta is not None else None, l4_dirty))
                    continue
            out += miss(frame)
            exts = flows_of.get((scope, False), ())
        self.hits += hits
        return out

    def run_vector(self, scope: str, frames: list[bytes], miss) -> Outputs:
        """`run_many` over a batch as vectors (p4gen.runtime.flowvec): frames of one length whose
        flows are cached are replayed together, the rest one at a time; the same outputs, in
        the same order, and the same counts."""
        ov = Outputs(self.fates)
        n = len(frames)
        exts = self.extractors.get((scope, False), ())
        rest: list = []
        if exts and n >= MIN_GROUP:
            lens = np.fromiter(map(len, frames), np.int64, n)
            order = np.argsort(lens, kind="stable")
            for g in np.split(order, np.flatnonzero(np.diff(lens[order])) + 1):
                if len(g) < MIN_GROUP:
                    rest.append(g)
                    continue
                width = int(lens[g[0]])
                joined = b"".join(frames if len(g) == n else itemgetter(*g.tolist())(frames))  # (all: in order)
                rows = np.frombuffer(joined, np.uint8).reshape(len(g), width)
                rest.append(g[self._vector_group(exts, frames, g, rows, ov)])
            rest = np.sort(np.concatenate(rest)).tolist() if rest else []
        else:
            rest = range(n)
        single = ov.single
        for i in rest:
            outs = self.run_many(scope, (frames[i],), miss)
            if outs:
                single.append((i, outs))
        return ov

    def _vector_group(self, exts: list[Extractor], frames: list[bytes], g: np.ndarray, rows: np.ndarray,
                      ov: Outputs) -> np.ndarray:
        """Replay the rows of one length (frames[g]) whose flows are cached; the positions (in
        g) of the rest, for the scalar path (which tries the same extractors in the same order)."""
        width = rows.shape[1]
        todo = np.ones(len(g), bool)
        scalar = np.zeros(len(g), bool)
        for ext in exts:
            if width < ext.min_len:
                continue
            pos = np.flatnonzero(todo)
            if not len(pos):
                break
            idx = self._index(ext)
            every = len(pos) == len(rows)  # (then plain column slices, not gathers)
            slot = idx.lookup(rows[:, ext.cols] if every else rows[pos[:, None], ext.cols])
            undecided = pos[slot == -2]  # a hash two stored flows share
            scalar[undecided] = True
            todo[undecided] = False
            found = slot >= 0
            if not found.any():
                continue
            mine, slot = pos[found], slot[found]
            todo[mine] = False  # these rows' flows are this extractor's: decided here
            ok, length = check_columns(rows, slice(None) if len(mine) == len(rows) else mine, ext.ipv4,
                                       ext.length_at)
            act = idx.choose(slot, length)
            act[~ok] = -1
            plan = np.where(act >= 0, idx.plan_of[np.maximum(act, 0)], -1)
            scalar[mine[plan == -1]] = True
            take = plan != -1
            if not take.any():
                continue
            act, plan, length, rows_at = act[take], plan[take], length[take], mine[take]
            train = idx.train_of[act] >= 0
            if train.any():  # trains: rewritten, then cut; counted there
                scalar[self._vector_trains(idx, rows, g, width, act[train], plan[train], length[train],
                                           rows_at[train], ov)] = True
                act, plan, length, rows_at = act[~train], plan[~train], length[~train], rows_at[~train]
                if not len(act):
                    continue
            self.hits += len(act)
            counts = np.bincount(act, minlength=len(idx.actions))
            idx.pk += counts
            idx.by += counts * width
            idx.pending = self.vector_pending = True
            drop = plan == -2
            if drop.any():
                drops = self.hv.drops
                for a, k in zip(*np.unique(act[drop], return_counts=True), strict=True):
                    drops[idx.actions[a].fate[1]] += int(k)
            for pid in np.unique(plan[~drop]).tolist():
                at = np.flatnonzero(plan == pid)
                a = act[at]
                r = idx.row_of[a]
                const, bases = idx.consts[pid], idx.bases[pid]
                if len(const) == 1:  # one flow: its constants broadcast
                    const_rows, base_rows = const, bases
                else:
                    const_rows, base_rows = np.take(const, r, axis=0), np.take(bases, r, axis=0)
                d = length[at] - idx.length0[a]
                sel = rows_at[at]
                ov.blocks.append(Block(g[sel], idx.fate_of[a], apply_plan(
                    idx.plans[pid], rows, slice(None) if len(sel) == len(rows) else sel, const_rows, base_rows, d)))
        return np.flatnonzero(scalar | todo)

    def _vector_trains(self, idx: FlowIndex, rows: np.ndarray, g: np.ndarray, width: int, act: np.ndarray,
                       plan: np.ndarray, length: np.ndarray, rows_at: np.ndarray, ov: Outputs) -> np.ndarray:
        """The rows whose actions are trains: rewritten as rows, then cut together per kind of
        train and IP length (tso.cut_rows); the segments counted as `_train` counts them. The
        rows (positions in the group) the scalar path must take: a frame shorter than its IP
        length says, which the full path drops."""
        a_all = act
        train = idx.train_of[a_all]
        d_all = length - idx.length0[a_all]
        holds = width - np.array([t[9] for t in idx.trains], np.int64)[train] >= idx.payload0[a_all] + d_all
        back = rows_at[~holds]
        mine = np.flatnonzero(holds)
        if not len(mine):
            return back
        ip_len = idx.ip_len0[a_all[mine]] + d_all[mine]
        kinds = plan[mine].astype(np.int64) << 40 | train[mine].astype(np.int64) << 20 | ip_len  # (IP lengths < 2^20)
        if (kinds == kinds[0]).all():  # (the common case: one kind, no sort)
            groups = [(int(kinds[0]), mine)]
        else:
            groups = [(int(kind), mine[kinds == kind]) for kind in np.unique(kinds).tolist()]
        for kind, at in groups:
            pid, tid, ipl = kind >> 40, kind >> 20 & 0xFFFFF, kind & 0xFFFFF
            a, d, sel = a_all[at], d_all[at], rows_at[at]
            mss, hdr, l3, version, ip_hlen, protocol, l4, tcp_hlen, outer, _hdr_end = idx.trains[tid]
            f = Frame(l3, version, ip_hlen, ipl, protocol, l4)
            if -(-(l3 + ipl - l4 - tcp_hlen) // mss) < 2:  # (a train is cut: never one segment)
                back = np.concatenate([back, sel])
                continue
            r = idx.row_of[a]
            const, bases, p = idx.consts[pid], idx.bases[pid], idx.plans[pid]
            # Only the headers are rewritten (the cut computes the checksums); the payload is
            # cut straight from the input rows.
            hdr_in = l4 + tcp_hlen - (p.out_hdr - p.hdr_end)
            every = len(sel) == len(rows)
            heads = apply_plan(p, rows[:, :hdr_in], slice(None) if every else sel,
                               const if len(const) == 1 else const[r], bases if len(bases) == 1 else bases[r], d,
                               checksums=False)[:, ROOM:]
            segs, count, last = cut_rows(self.hv.segmenter, heads, f, tcp_hlen, mss, list(outer), room=ROOM,
                                         payload=(rows if every else np.take(rows, sel, axis=0), hdr_in))
            k = len(at)
            self.hits += k
            np.add.at(idx.pk, a, 1)
            np.add.at(idx.by, a, width)
            np.add.at(idx.ps, a, count)
            np.add.at(idx.pb, a, count * hdr + idx.payload0[a] + d)
            idx.pending = self.vector_pending = True
            nf = k * (count - 1)  # (cut_rows: the full segments first, then the last ones)
            ov.blocks.append(Block(np.repeat(g[sel], count - 1), np.repeat(idx.fate_of[a], count - 1), segs[:nf],
                                   np.tile(np.arange(count - 1), k)))
            ov.blocks.append(Block(g[sel], idx.fate_of[a], segs[nf:, :ROOM + last], count - 1))
        return back

    def _index(self, ext: Extractor) -> FlowIndex:
        """The extractor's flows as arrays (p4gen.runtime.flowvec.FlowIndex), up to date; made
        from its flows on first use and compacted when most of its slots are dead."""
        idx = self._indexes.get(ext)
        if idx is None or idx.dead > max(1024, len(idx.slot_of)):
            if idx is not None:
                self._sync(idx)
            idx = self._indexes[ext] = FlowIndex(ext.cols, self._fate_id)
            for kb, fa in ext.flows.items():
                idx.add(kb, fa)
        idx.refresh()
        return idx

    def _sync(self, idx: FlowIndex) -> None:
        """Move an index's counted hits into its actions' pending counts (and the clock's bit)."""
        if not idx.pending:
            return
        acts, pk, by, ps, pb = idx.actions, idx.pk, idx.by, idx.ps, idx.pb
        for a in np.flatnonzero(pk).tolist():
            fa = acts[a]
            fa.ref = True
            p = fa.pending
            if not p[0]:
                self.dirty.append(fa)
            p[0] += int(pk[a])
            p[1] += int(by[a])
            p[2] += int(ps[a])
            p[3] += int(pb[a])
        for c in (pk, by, ps, pb):
            c[:] = 0
        idx.pending = False

    def _fate_id(self, fate: tuple) -> int:
        key = (*fate[:4], None if fate[4] is None else tuple(sorted(fate[4].items())), fate[5])
        i = self._fate_ids.get(key)
        if i is None:
            i = self._fate_ids[key] = len(self.fates)
            self.fates.append(fate)
        return i

    def _train(self, fa: FlowAction, frame: bytes, length: int, n: int, out: list[Output]) -> bool:
        """A cached train: the headers rewritten once on the super-packet, then cut with them
        replicated (p4gen.runtime.tso); the stages after the cut count its segments. False
        (nothing done): an IP length the frame does not hold, which the full path drops."""
        mss, hdr, payload0, f0, tcp_hlen, outer, hdr_end = fa.train
        d = length - fa.length0
        if n - hdr_end < payload0 + d:
            return False
        f = Frame(f0.l3, f0.version, f0.ip_hlen, f0.ip_len + d, f0.protocol, f0.l4)
        segments = self.hv.segmenter.cut(fa.build(frame, d), f, tcp_hlen, mss, outer)
        self._tally(fa, n, len(segments), len(segments) * hdr + payload0 + d)
        _, kind, port, resume, code, meta, _dirty = fa.fate
        output = _output()
        out += [output(kind, seg, port, resume, code, dict(meta) if meta is not None else None, False)
                for seg in segments]
        return True

    def _tally(self, fa: FlowAction, n: int, segs: int = 0, seg_bytes: int = 0) -> None:
        """One hit of `fa` (`run_many` does the same inline: its loop is the hot path)."""
        fa.ref = True
        p = fa.pending
        if not p[0]:
            self.dirty.append(fa)
        p[0] += 1
        p[1] += n
        p[2] += segs
        p[3] += seg_bytes

    def fold(self) -> None:
        """Add the hits of cached flows to the counters, table entries and per-stage counts they
        stand for (done before anything reads those: HypervisorPipeline's properties)."""
        for idx in self._indexes.values():
            self._sync(idx)
        self.vector_pending = False
        for fa in self.dirty:
            self._settle(fa)
        self.dirty.clear()

    def _settle(self, fa: FlowAction) -> None:
        """Fold one action's pending counts (it may stay in `dirty`: its counts are now zero)."""
        p = fa.pending
        if not p[0]:
            return
        sp = self.hv._stage_packets
        for (k, b), (counts, entries, stages) in (((p[0], p[1]), (fa.counts, fa.entries, fa.stages)),
                                                  ((p[2], p[3]), fa.post)):
            if not k:
                continue
            for cells, i in counts:
                c = cells[i]
                c[0] += k
                c[1] += b
            for e in entries:
                e.packets += k
                e.bytes += b
            for sid in stages:
                sp[sid] += k
        fa.total[0] += p[0]
        fa.total[1] += p[1]
        p[0] = p[1] = p[2] = p[3] = 0

    # ------------------------------------------------------------ learning
    def begin(self, pkt: Packet, t: Trace) -> None:
        """Start tracing the packet just parsed: its header buffers and where they were."""
        off = 0
        opt = pkt.opt
        path = []
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
                path.append((name, len(b), len(tail) if tail else 0))
        t.hdr_end = off
        t.path = tuple(path)

    def learn(self, scope: str, frame: bytes, csum: tuple[int, int] | None, t: Trace, outputs: list[Output],
              stages: dict[str, int]) -> None:
        key = self.keys.get(scope.partition("/")[0])  # (a GSO scope's key is its pipeline's)
        if key is None:
            return
        problem = key.problem or t.problem
        tr = t.train
        if problem is None and t.pkt is None:
            problem = "not parsed"
        if problem is None and len(outputs) > 1 and tr is None:
            problem = "several outputs"
        if problem is None and tr is not None and t.train_out is None:
            problem = "a train that did not reach its fate"
        segs = len(outputs) if tr is not None else 1
        if problem is None and any(v != 1 and v != segs for v in stages.values()):
            problem = "a stage ran twice"
        if problem is not None:
            self.uncacheable[problem] += 1
            return
        ext = self._extractor(scope, csum is not None, t.path, key.fields, t.hdr_end)
        if csum is not None and csum != ext.own_l4:
            self.uncacheable["partial checksum not at the L4 header"] += 1
            return
        if ext.check(frame) < 0:
            self.uncacheable["IPv4 checksum field 0xFFFF"] += 1
            return
        length0 = ext.length(frame)
        fa = self._action(t, frame, outputs, [sid for sid, v in stages.items() if v == 1 or tr is None], length0)
        if fa is None:
            return
        if tr is not None:
            # Lengths follow the input's ("same delta"): the cut happens for every IP length
            # from min_ip_len on, with the same MSS and headers.
            fa.lo, fa.hi = tr.min_ip_len - (tr.ip_len - length0), INF
            # Where the innermost IP/TCP and the outer length fields are: this flow's, once.
            f0, tcp_hlen, outer = self.hv.segmenter.train_layout(t.train_out)
            fa.train = (tr.mss, tr.hdr, tr.payload, f0, tcp_hlen, outer, t.hdr_end)
            fa.post = (fa.counts[tr.n_counts:], fa.entries[tr.n_entries:],
                       [sid for sid, v in stages.items() if v != 1])
            fa.counts, fa.entries = fa.counts[:tr.n_counts], fa.entries[:tr.n_entries]
        elif t.exact:
            fa.lo = fa.hi = length0
        elif t.slack is not None:
            fa.hi = length0 + t.slack
        fa.total[1], fa.head = len(frame), bytes(frame[:HEAD])
        kb = ext.key(frame)
        k = (ext, kb)
        old = self.flows.get(k)
        if old is not None:  # the flow's actions for other lengths stay; overlapping ones go
            for o in old.chain():
                self._settle(o)
            fa.alt = _without(old, fa.lo, fa.hi)
            for tbl in (t for o in old.chain() for t in o.tables):
                self.by_table.get(tbl, set()).discard(k)
        ext.flows[kb] = fa
        idx = self._indexes.get(ext)
        if idx is not None:
            idx.add(kb, fa)
        self.flows[k] = fa
        for tbl in (t for o in fa.chain() for t in o.tables):
            self.by_table.setdefault(tbl, set()).add(k)
        self.stats["flows_learnt"] += 1
        if len(self.flows) > self.size:
            self._evict()

    def _evict(self) -> None:
        """Down to `size` flows, by the clock: the oldest flow goes unless it was hit since the
        clock last passed it (then it gets another round)."""
        for idx in self._indexes.values():
            self._sync(idx)
        flows = self.flows
        while len(flows) > self.size:
            k = next(iter(flows))
            fa = flows[k]
            if any(o.ref for o in fa.chain()):
                for o in fa.chain():
                    o.ref = False
                del flows[k]
                flows[k] = fa
                continue
            self._forget(k)
            self.stats["evictions"] += 1

    def _forget(self, k: tuple) -> FlowAction | None:
        fa = self.flows.pop(k, None)
        if fa is None:
            return None
        for o in fa.chain():
            self._settle(o)
        k[0].flows.pop(k[1], None)
        idx = self._indexes.get(k[0])
        if idx is not None:
            idx.remove(k[1])
        for tbl in (t for o in fa.chain() for t in o.tables):
            self.by_table.get(tbl, set()).discard(k)
        return fa

    def _extractor(self, scope: str, csum: bool, path: tuple, fields: frozenset[str], hdr_end: int) -> Extractor:
        """The extractor of a parse path (the headers in emit order with their lengths)."""
        ext = self._by_path.get((scope, csum, path))
        if ext is not None:
            return ext
        ranges: set[int] = set()
        ipv4, length_at, own_l4 = [], None, None
        off = 0
        for name, size, tail in path:
            lay = self._lay[name]
            for f in lay.fields.values():
                if f"{name}.{f.name}" in fields:
                    ranges.update(range(off + f.byte, off + f.byte + f.nbytes))
            if lay.name == "ipv4":
                ipv4.append((off, size + tail))
                if length_at is None:
                    length_at = (off + lay["total_len"].byte, 2, 0)
            elif lay.name == "ipv6" and length_at is None:
                length_at = (off + lay["payload_len"].byte, 2, lay.size)
            elif lay.name in ("tcp", "udp") and own_l4 is None:
                own_l4 = (off, lay["checksum"].byte)
            off += size + tail
            if tail and f"{name}.{lay.varbit}" in fields:
                ranges.update(range(off - tail, off))
        spans: list[tuple[int, int]] = []
        for i in sorted(ranges):
            if spans and spans[-1][1] == i:
                spans[-1] = (spans[-1][0], i + 1)
            else:
                spans.append((i, i + 1))
        sig = (scope, csum, tuple(spans), hdr_end, tuple(ipv4), length_at, own_l4)
        ext = self._known.get(sig)
        if ext is None:
            ext = self._known[sig] = Extractor(tuple(spans), hdr_end, tuple(ipv4), length_at, own_l4)
            self.extractors.setdefault((scope, csum), []).append(ext)
        self._by_path[(scope, csum, path)] = ext
        return ext

    def _action(self, t: Trace, frame: bytes, outputs: list[Output], stages: list[str],
                length0: int) -> FlowAction | None:
        from p4gen.runtime.pipeline import DROP

        common = dict(counts=list(t.counts), entries=list(t.entries), stages=stages, tables=frozenset(t.tables),
                      length0=length0, pipeline=t.pipeline)
        if not outputs:
            if t.state != DROP or t.train is not None:
                self.uncacheable["no output" if t.state != DROP else "a dropped train"] += 1
                return None
            return FlowAction(build=None, fate=("drop", t.drop_reason or "dropped"), **common)
        o = outputs[0]
        expect = o.data if t.train is None else t.train_out
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
                    spans = written.get(id(b), ())
                    if not spans and b == old:  # copied as it was: nothing to patch
                        masks = ()
                    else:
                        masks = [0] * len(b)
                        for _wb, span in spans:
                            for i, m in span:
                                masks[i] |= m
                        for i in range(len(b)):
                            masks[i] |= b[i] ^ old[i]
                    i = 0
                    while i < len(masks):
                        if masks[i] == 0xFF and i not in computed:
                            j = i
                            while j < len(masks) and masks[j] == 0xFF and j not in computed:
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
        if not (expect.endswith(payload) and len(expect) - len(payload) == out_off):
            self.uncacheable["unexplained output"] += 1
            return None
        shape = ActionBytes(tuple(pieces), tuple(patches), tuple(bit_patches), tuple(len_fixes), tuple(ipv4),
                            tuple(l4), t.hdr_end)
        fa = FlowAction(build=compile_action(shape), layout=shape, fate=("out", o.kind, o.port, o.resume, o.code,
                                                          dict(o.meta) if o.meta is not None else None, o.l4_dirty),
                        **common)
        if fa.build(frame, 0) != expect:  # the action must give this packet's bytes
            self.uncacheable["unexplained output"] += 1
            return None
        return fa

    @staticmethod
    def _length_fields(lay) -> list:
        names = {"ipv4": ("total_len",), "ipv6": ("payload_len",), "udp": ("length",)}.get(lay.name, ())
        return [lay[n] for n in names]

    def _computed(self, lay, l4_dirty: bool) -> set[int]:
        """Byte positions of a header that the replay computes per packet (never patched)."""
        known = self._computed_memo.get((lay.name, l4_dirty))
        if known is not None:
            return known
        out: set[int] = self._computed_memo.setdefault((lay.name, l4_dirty), set())
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
        n = 0
        for k in list(self.by_table.pop(table, ())):
            if self._forget(k) is not None:
                n += 1
        self.stats["invalidated"] += n
        return n

    def clear(self) -> None:
        self.fold()
        self.flows.clear()
        self.by_table.clear()
        for exts in self.extractors.values():
            for ext in exts:
                ext.flows.clear()
        self._indexes.clear()  # (fold above moved their counts)

    def summary(self) -> dict:
        return {"hits": self.hits, "misses": self.stats["misses"], "flows": len(self.flows),
                "learnt": self.stats["flows_learnt"], "evictions": self.stats["evictions"],
                "invalidated": self.stats["invalidated"], "uncacheable": dict(self.uncacheable)}
