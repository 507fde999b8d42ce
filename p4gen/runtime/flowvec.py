"""Flow actions applied to a vector of packets at once (as VPP does), in numpy.

A batch of frames is cut into groups of one length; a group is one 2-D array
(a row per frame). Keys are read as columns, hashed as 64-bit words and found
in a `FlowIndex` of the cached flows with `np.searchsorted` (each match then
compared byte for byte); the parser's IPv4 header checksum check and the
length measure are column arithmetic; and all the rows whose flows share an action
*shape* (p4gen.runtime.flowcode) are rewritten together: the output headers
are the flows' constant bytes gathered per row, input columns copied in, the
lengths that follow the inner packet's and the IPv4 and TCP/UDP checksums
computed over the finished rows. The byte map is flowcode's (`byte_map`), so
the scalar and the vector replay read an action the same way; tests hold
them, and the full pipeline, to the same bytes.

What a vector cannot do (a miss, a train, a frame the check refuses, a group
of a few frames) goes through the scalar fast path, one frame at a time, and
`Outputs` keeps every output in input order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from p4gen.runtime.checksum import fold_rows, row_sums
from p4gen.runtime.flowcode import ActionBytes, byte_map, header_constants, shape
from p4gen.runtime.pcap import RECORD_HEADER, record_headers

if TYPE_CHECKING:
    from p4gen.runtime.pipeline import Output

MIN_GROUP = 16  # frames of one length below which the scalar path is cheaper
ROOM = RECORD_HEADER  # spare bytes before each output row (a pcap record header is written there)


@dataclass(frozen=True)
class Plan:
    """An action shape as column operations on (rows, bytes) arrays."""

    out_hdr: int  # output header bytes (the payload follows)
    hdr_end: int  # input: where the payload starts
    runs: tuple[tuple[int, int, int], ...]  # (output offset, input offset, length): copied input bytes
    bits: tuple[tuple[int, int, int], ...]  # (output offset, input offset, keep mask): part-written bytes
    lens: tuple[int, ...]  # output offsets of the 16-bit lengths that follow the inner packet's
    ipv4: tuple[tuple[int, int], ...]  # (offset, header length): IPv4 headers whose checksum is computed
    l4: tuple[tuple[int, int, int, int, bool], ...]  # as ActionBytes.l4: TCP/UDP checksums recomputed


_PLANS: dict[tuple, Plan] = {}


def plan_of(a: ActionBytes) -> Plan:
    key = shape(a)
    known = _PLANS.get(key)
    if known is None:
        known = _PLANS[key] = _plan(a)
    return known


def _plan(a: ActionBytes) -> Plan:
    src = byte_map(a)
    runs: list[list[int]] = []
    bits, lens = [], []
    for o, s in enumerate(src):
        if s[0] == "i":
            if runs and runs[-1][0] + runs[-1][2] == o and runs[-1][1] + runs[-1][2] == s[1]:
                runs[-1][2] += 1
            else:
                runs.append([o, s[1], 1])
        elif s[0] == "b":
            bits.append((o, s[1], s[2]))
        elif s[0] == "L" and s[2] == 0:
            lens.append(o)
    ipv4 = []
    for o, hl in a.ipv4:  # an untouched copied header keeps the checksum the parser verified
        first = src[o]
        if not (first[0] == "i" and all(src[o + j] == ("i", first[1] + j) for j in range(hl))):
            ipv4.append((o, hl))
    return Plan(len(src), a.hdr_end, tuple(tuple(r) for r in runs), tuple(bits), tuple(lens), tuple(ipv4), a.l4)


@dataclass(eq=False)
class VectorAction:
    """A flow action's per-flow part for the vector replay: its constant header bytes and the
    values its length fields have at the flow's first length."""

    plan: Plan
    const: np.ndarray
    bases: tuple[int, ...]


def vector_action(a: ActionBytes) -> VectorAction:
    return VectorAction(plan_of(a), np.frombuffer(bytes(header_constants(a)), np.uint8),
                        tuple(base for _off, base in a.len_fixes))


def _put16(out: np.ndarray, at: int, v: np.ndarray) -> None:
    out[:, at] = v >> 8
    out[:, at + 1] = v & 0xFF


def apply_plan(p: Plan, rows: np.ndarray, sel, const: np.ndarray, bases: np.ndarray, d: np.ndarray,
               checksums: bool = True) -> np.ndarray:
    """The output rows of rows[sel] (`sel`: an index array, or a slice for all), each after
    ROOM spare bytes (where a pcap record header goes: Outputs.pcap_records); `const` each
    row's flow's constant header bytes, `bases` its length fields' values at its first length,
    `d` how much longer each row's inner packet is than that. Without `checksums`, the
    checksum fields keep what the constants and copied bytes put there (a train's headers:
    the cut computes them, and `rows` may end with the headers)."""
    n, width = len(d), rows.shape[1]
    if not isinstance(sel, slice):  # the rows gathered once (numpy's take beats a fancy index per slice)
        rows = np.take(rows, sel, axis=0)
    size = ROOM + p.out_hdr + width - p.hdr_end
    whole = np.empty((n, -(-size // 8) * 8), np.uint8)[:, :size]  # rows 8-byte aligned: word sums
    out = whole[:, ROOM:]
    out[:, :p.out_hdr] = const  # (one row broadcasts: a single flow)
    for o, i, m in p.runs:
        out[:, o:o + m] = rows[:, i:i + m]
    for o, i, keep in p.bits:
        out[:, o] = const[:, o] | (rows[:, i] & keep)
    out[:, p.out_hdr:] = rows[:, p.hdr_end:]
    for k, o in enumerate(p.lens):
        _put16(out, o, (bases[:, k] + d) & 0xFFFF)
    if not checksums:
        return whole
    for o, hl in p.ipv4:
        out[:, o + 10:o + 12] = 0
        v = row_sums(out, o, o + hl) % 0xFFFF  # (as flowcode's: 0 stays 0)
        _put16(out, o + 10, np.where(v != 0, 0xFFFF - v, 0))
    for ip, version, l4, at, udp in p.l4:
        live = (out[:, at] | out[:, at + 1]) != 0 if udp else None  # a zero UDP checksum means none
        if version == 4:
            hdr = out[:, ip:ip + 20].astype(np.int64)
            l4_len = ((hdr[:, 2] << 8 | hdr[:, 3]) - (hdr[:, 0] & 0xF) * 4) & 0xFFFF
            pseudo = row_sums(out, ip + 12, ip + 20) + hdr[:, 9] + l4_len
        else:
            pseudo = (row_sums(out, ip + 8, ip + 40) + out[:, ip + 6].astype(np.int64)
                      + (out[:, ip + 4].astype(np.int64) << 8 | out[:, ip + 5]))
        out[:, at:at + 2] = 0
        c = ~fold_rows(pseudo + row_sums(out, l4, out.shape[1])) & 0xFFFF
        _put16(out, at, c if live is None else np.where(live, c, 0))
    return whole


_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93],
                np.uint64)


def key_hash(words: np.ndarray) -> np.ndarray:
    """One 64-bit hash per row of key words (the same mixing for stored and arriving keys)."""
    h = words[:, 0].copy()
    for j in range(1, words.shape[1]):
        h = h * _MIX[j % 4] ^ words[:, j]
    if words.shape[1] > 1:
        h ^= h >> np.uint64(29)
    return h


MAX_ALT = 4  # a flow's actions for different lengths that the index holds (more: the scalar path)


class FlowIndex:
    """One parse path's cached flows as arrays, so that a group of frames finds its flows and
    actions without a Python step per flow: the key words' hashes sorted (`np.searchsorted`),
    the stored key words (every match is checked byte for byte), up to MAX_ALT actions per
    flow with the lengths each holds for, and per action its plan, constants and fate. Hits
    are counted in arrays (`pk`, `by`) until the flow cache moves them into its actions.

    The flow cache tells it of every flow learnt (`add`) and forgotten (`remove`); the arrays
    are brought up to date (`refresh`) before a lookup. Action numbers only grow, so counts
    of a replaced action still reach it."""

    def __init__(self, cols: np.ndarray, fate_id) -> None:
        self.nw = len(cols) // 8
        self.width = len(cols)
        self.fate_id = fate_id
        self.actions: list = []
        self.slot_of: dict[tuple, int] = {}  # key bytes → slot (live flows)
        self._keys: list[bytes] = []
        self._alts: list[list[int]] = []
        self._live: list[bool] = []
        # per action: lo, hi, length0, plan, row, fate, train kind, a train's payload and IP length
        self._act: list[list[int]] = [[], [], [], [], [], [], [], [], []]
        self.trains: list[tuple] = []
        self._train_ids: dict[tuple, int] = {}
        self.plans: list[Plan] = []
        self._plan_ids: dict[Plan, int] = {}
        self._new_rows: list[list[tuple[np.ndarray, tuple]]] = []
        self.consts: list[np.ndarray] = []
        self.bases: list[np.ndarray] = []
        # packets, bytes, segments and their bytes not yet moved into the actions
        self.pk, self.by, self.ps, self.pb = (np.zeros(0, np.int64) for _ in range(4))
        self.pending = False
        self.stale = True
        self.dead = 0

    def add(self, kb: tuple, fa) -> None:
        """A flow learnt (or relearnt: its old slot goes) with its chain of actions."""
        self.remove(kb)
        raw = b"".join(kb)
        self.slot_of[kb] = len(self._keys)
        self._keys.append(raw + raw[:1] * (self.width - len(raw)))
        mine = []
        lo, hi, length0, plan_of, row_of, fate_of, train_of, payload0, ip_len0 = self._act
        for o in fa.chain():
            mine.append(len(self.actions))
            self.actions.append(o)
            lo.append(o.lo)
            hi.append(o.hi)
            length0.append(o.length0)
            train = -1
            if o.train is not None and o.layout is not None:
                # A train: rewritten as a row like any action, then cut (tso.cut_rows). Trains
                # of one kind share the MSS, the header bytes and where the layers are.
                mss, hdr, pay0, f0, tcp_hlen, outer, hdr_end = o.train
                tk = (mss, hdr, f0.l3, f0.version, f0.ip_hlen, f0.protocol, f0.l4, tcp_hlen, tuple(outer), hdr_end)
                train = self._train_ids.get(tk)
                if train is None:
                    train = self._train_ids[tk] = len(self.trains)
                    self.trains.append(tk)
            train_of.append(train)
            payload0.append(o.train[2] if o.train is not None else 0)
            ip_len0.append(o.train[3].ip_len if o.train is not None else 0)
            if (o.train is not None and train < 0) or (o.build is not None and o.layout is None):
                plan, row, fate = -1, 0, -1  # the scalar path
            elif o.build is None:
                plan, row, fate = -2, 0, -1  # a drop
            else:
                if o.vec is None:
                    o.vec = vector_action(o.layout)
                plan = self._plan_ids.get(o.vec.plan)
                if plan is None:
                    plan = self._plan_ids[o.vec.plan] = len(self.plans)
                    self.plans.append(o.vec.plan)
                    self._new_rows.append([])
                    self.consts.append(np.zeros((0, o.vec.plan.out_hdr), np.uint8))
                    self.bases.append(np.zeros((0, len(o.vec.bases)), np.int64))
                row = len(self.consts[plan]) + len(self._new_rows[plan])
                self._new_rows[plan].append((o.vec.const, o.vec.bases))
                fate = self.fate_id((*o.fate[1:6], False) if train >= 0 else o.fate[1:])  # (segments: no dirty L4)
            plan_of.append(plan)
            row_of.append(row)
            fate_of.append(fate)
        self._alts.append((mine + [-1] * MAX_ALT)[:MAX_ALT] if len(mine) <= MAX_ALT else [-3] * MAX_ALT)
        self._live.append(True)
        self.stale = True

    def remove(self, kb: tuple) -> None:
        slot = self.slot_of.pop(kb, None)
        if slot is not None:
            self._live[slot] = False
            self.dead += 1
            self.stale = True

    def refresh(self) -> None:
        """The arrays from what was added and removed since the last refresh."""
        if not self.stale:
            return
        n = len(self._keys)
        words = np.frombuffer(b"".join(self._keys), np.uint64).reshape(n, self.nw) if n else \
            np.zeros((0, self.nw), np.uint64)
        live = np.flatnonzero(np.array(self._live, bool)) if n else np.zeros(0, np.int64)
        h = key_hash(words[live]) if len(live) else np.zeros(0, np.uint64)
        order = np.argsort(h, kind="stable")
        self.words, self.hashes, self.slots = words, h[order], live[order]
        dup = self.hashes[1:] == self.hashes[:-1]
        self.clash = np.unique(self.hashes[1:][dup])  # hashes two live flows share: the scalar path
        self.alts = np.array(self._alts, np.int64).reshape(n, MAX_ALT)
        self.one_each = bool(n) and bool((self.alts[:, 0] >= 0).all() and (self.alts[:, 1] == -1).all())
        lo, hi, length0, plan_of, row_of, fate_of, train_of, payload0, ip_len0 = (np.array(v, np.int64)
                                                                                for v in self._act)
        self.lo, self.hi, self.length0, self.plan_of, self.row_of = lo, hi, length0, plan_of, row_of
        self.train_of, self.payload0, self.ip_len0 = train_of, payload0, ip_len0
        self.fate_of = fate_of.astype(np.int32)
        for p, new in enumerate(self._new_rows):
            if new:
                self.consts[p] = np.concatenate([self.consts[p], np.stack([c for c, _b in new])])
                self.bases[p] = np.concatenate([self.bases[p],
                                                np.array([b for _c, b in new], np.int64).reshape(len(new), -1)])
                new.clear()
        grow = len(self.actions) - len(self.pk)
        if grow:
            self.pk, self.by, self.ps, self.pb = (np.concatenate([c, np.zeros(grow, np.int64)])
                                                  for c in (self.pk, self.by, self.ps, self.pb))
        self.stale = False

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Each row's flow (a slot), -1 for none, -2 for a key the scalar path must decide."""
        n = len(keys)
        if not len(self.hashes):
            return np.full(n, -1, np.int64)
        words = np.ascontiguousarray(keys).view(np.uint64)
        h = key_hash(words)
        at = np.minimum(np.searchsorted(self.hashes, h), len(self.hashes) - 1)
        slot = self.slots[at]
        hit = (self.hashes[at] == h) & (self.words[slot] == words).all(axis=1)
        out = np.where(hit, slot, -1)
        if len(self.clash):
            out[np.isin(h, self.clash)] = -2
        return out

    def choose(self, slot: np.ndarray, length: np.ndarray) -> np.ndarray:
        """Each row's action: the one of its flow whose lengths hold `length`; -1: none does
        (the scalar path: it misses and learns), -3: a flow with more actions than the index holds."""
        if not len(self.actions):
            return np.full(len(slot), -1, np.int64)
        if self.one_each:  # one action per flow (the common case): no choosing
            a = self.alts[slot, 0]
            return np.where((self.lo[a] <= length) & (length <= self.hi[a]), a, -1)
        alts = self.alts[slot]
        a = np.maximum(alts, 0)
        fits = (alts >= 0) & (self.lo[a] <= length[:, None]) & (length[:, None] <= self.hi[a])
        j = fits.argmax(axis=1)
        pick = alts[np.arange(len(slot)), j]
        return np.where(fits.any(axis=1), pick, np.where(alts[:, 0] == -3, -3, -1))


def check_columns(rows: np.ndarray, sel: np.ndarray, ipv4: tuple,
                  length_at: tuple | None) -> tuple[np.ndarray, np.ndarray]:
    """Extractor.check over rows[sel] of a group: which pass the parser's IPv4 header checksum
    check (and are not the non-canonical 0xFFFF), and each one's length measure. Only the
    columns it reads are gathered."""
    n, width = len(rows[sel, :1]), rows.shape[1]
    ok = np.ones(n, bool)
    for a, hl in ipv4:
        h = rows[sel, a:a + hl]
        v = row_sums(h, 0, hl)
        ok &= (v % 0xFFFF == 0) & (v != 0) & ~((h[:, 10] == 255) & (h[:, 11] == 255))  # v = 0: all zero
    if length_at is None:
        return ok, np.full(n, width, np.int64)
    o, nb, add = length_at
    v = np.zeros(n, np.int64)
    for j in range(nb):
        v = v << 8 | rows[sel, o + j]
    return ok, v + add


class Block(NamedTuple):
    """Output rows the vector replay made: the input each came from, its fate (a number in
    Outputs.fates), the rows (after ROOM spare bytes each), and each row's place among its
    input's outputs (a train's segments: 0, 1, …)."""

    idx: np.ndarray
    fates: np.ndarray
    rows: np.ndarray
    sub: np.ndarray | int = 0


@dataclass
class Outputs:
    """A batch's outputs, kept as the vector replay made them and listed in input order on
    demand: `blocks` (input indices, fate per row, output rows after ROOM spare bytes each:
    `apply_plan`) and `single` outputs of frames
    that took the scalar path (input index, outputs). A fate is (kind, port, resume, code,
    meta, l4_dirty), as in FlowAction.fate without its tag."""

    fates: list[tuple] = field(default_factory=list)  # the flow cache's (FlowCache.fates), by number
    blocks: list[Block] = field(default_factory=list)
    single: list[tuple[int, list]] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(len(b.rows) for b in self.blocks) + sum(len(o) for _i, o in self.single)

    def _order(self) -> list[tuple[int, int, object]]:
        """(input index, place in the input's outputs, where it is) for every output, in order."""
        out: list[tuple[int, int, object]] = []
        for b, blk in enumerate(self.blocks):
            subs = np.broadcast_to(blk.sub, blk.idx.shape).tolist()
            out += [(i, s, (b, j)) for j, (i, s) in enumerate(zip(blk.idx.tolist(), subs, strict=True))]
        for i, outs in self.single:
            out += [(i, j, o) for j, o in enumerate(outs)]
        out.sort(key=lambda t: (t[0], t[1]))
        return out

    def to_list(self) -> list[Output]:
        from p4gen.runtime.pipeline import Output

        rows = [(b.fates.tolist(), b.rows[:, ROOM:]) for b in self.blocks]
        lst: list[Output] = []
        for _i, _j, where in self._order():
            if not isinstance(where, tuple):
                lst.append(where)
                continue
            fates, r = rows[where[0]]
            kind, port, resume, code, meta, l4_dirty = self.fates[fates[where[1]]]
            lst.append(Output(kind, r[where[1]].tobytes(), port, resume, code,
                              dict(meta) if meta is not None else None, l4_dirty))
        return lst

    def pcap_records(self, keep_fate, keep_single, first: int) -> tuple[bytes, int]:
        """The pcap records (16-byte header, data) of the outputs selected (`keep_fate`: a bool
        per fate id, for vector rows; `keep_single(output)`), in input order, numbered (the
        timestamp) from `first`; and how many. A block's rows become records in one numpy step."""
        keep_fate = np.asarray(keep_fate, bool)
        keys, lens, picks = [], [], []
        for b in self.blocks:
            m = keep_fate[b.fates] if len(self.fates) else np.zeros(len(b.idx), bool)
            picks.append(m)
            keys.append(b.idx[m].astype(np.int64) * _PER_INPUT + np.broadcast_to(b.sub, b.idx.shape)[m])
            lens.append(np.full(int(m.sum()), b.rows.shape[1] - ROOM, np.int64))
        chosen = [(i * _PER_INPUT + j, o.data) for i, outs in self.single for j, o in enumerate(outs)
                  if keep_single(o)]
        keys.append(np.array([k for k, _d in chosen], np.int64))
        lens.append(np.array([len(d) for _k, d in chosen], np.int64))
        all_keys, all_lens = np.concatenate(keys), np.concatenate(lens)
        n = len(all_keys)
        if not n:
            return b"", 0
        order = np.argsort(all_keys, kind="stable")
        head = np.empty((n, 16), np.uint8)
        head[order] = record_headers(all_lens[order], first)
        # Every record laid out block by block, then picked in input order by slices.
        parts: list[bytes] = []
        src = np.empty(n, np.int64)  # where each record lies in the parts joined
        base = at = 0
        for (_idx, _f, rows, _s), m in zip(self.blocks, picks, strict=True):
            k = int(m.sum())
            if k:
                w = rows.shape[1]
                recs = np.ascontiguousarray(rows) if k == len(rows) else rows[m]
                recs[:, :ROOM] = head[at:at + k]  # the record headers go in the spare bytes
                parts.append(recs)
                src[at:at + k] = base + np.arange(k) * w
                base += k * w
            at += k
        for j, (_k, data) in enumerate(chosen):
            parts.append(head[at + j].tobytes())
            parts.append(data)
            src[at + j] = base
            base += 16 + len(data)
        whole = memoryview(b"".join(parts)) if len(parts) > 1 else memoryview(parts[0]).cast("B")
        starts = src[order]
        ends = starts + 16 + all_lens[order]
        return b"".join(map(whole.__getitem__, map(slice, starts.tolist(), ends.tolist()))), n


_PER_INPUT = 1 << 20  # outputs of one input, at most (the order key: input index · this + place)
