"""The offload manager: which flows run on the NIC's fused flow table, per flow.

A flow reaches the manager when the NIC punts one of its packets with `Reason.LEARN`: the
packet as it arrived, after `threshold_packets` misses of its hash bucket (and every
RELEARN_PACKETS misses after that), with the NIC's hash of its flow key. The manager then

1. predicts the flow's path in the hypervisor (`HypervisorPipeline.predict`: every stage run
   here, nothing counted): the stages it runs, each table's decision (the entry hit, or a
   miss), and where the NIC would have to hand it over (a stage it cannot run at all);
2. decides the flow's place from *capability* (the path's first stage must be one the NIC
   can run; a flow whose whole static path is on the NIC already gains nothing) and
   *resources* (a free entry; when the table is full, a flow hotter than the coldest one
   takes its place: `rebalance`);
3. installs the entry over P4Runtime (batched in `flush`), its action data being the flow key
   copy, the decisions and the entries' parameters (p4gen.place.flowlayout);
4. removes it when the flow is idle (an idle-timeout notification, or its counter unchanged
   for the idle timeout where the NIC has no idle timeout), when a table on its path changes
   (`table_changed`), or when a hotter flow needs the room; the entry is deleted first and its
   counter read after, so that no packet is lost between the read and the delete.

The program's own counters need no merging: the fused code counts on the NIC's counters as
the static code does. What a flow table hit replaces is the lookups: the direct counters of
the entries on its path. Those counts are merged into `entry_counts` when a flow leaves
the table and read live while it is there.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
import weakref
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import networkx as nx
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2

from p4gen.backend.entries import canonical
from p4gen.control.push import P4RuntimeClient
from p4gen.crossing import pipeline_numbers
from p4gen.crossing.protocol import Punted
from p4gen.crossing.states import State
from p4gen.frontend.program import Program
from p4gen.ir.lower import stage_trees
from p4gen.place import HYP, Placement
from p4gen.place.flowlayout import FLOW_COUNTER, FLOW_TABLE, RELEARN_PACKETS, FlowLayout, flow_layouts
from p4gen.runtime.packet import Malformed
from p4gen.runtime.pipeline import HypervisorPipeline

log = logging.getLogger("p4gen.offload")

NIC, FAST_PATH = "nic", "hypervisor"
REBALANCE_MARGIN = 1.5  # a pending flow must be this much hotter than the coldest offloaded one
RATE_WINDOW = 2.0  # seconds: the time constant of an offloaded flow's moving-average rate


@dataclass
class Flow:
    """One flow the NIC asked about: its key, where it runs and why, and its counts."""

    pipeline: str
    hash: int
    key: tuple[int, ...]
    where: str = FAST_PATH  # NIC: an entry of the flow table; FAST_PATH: the static split
    why: str = ""
    decisions: dict = field(default_factory=dict)  # table → (action or None, args)
    entries: list = field(default_factory=list)  # (table, entry) hit on the NIC-run part of the path
    handover: int | None = None  # the stage the NIC hands the flow to the hypervisor at (None: it finishes)
    slot: int | None = None
    learnt: int = 0  # LEARN punts seen (threshold, then one every RELEARN_PACKETS misses)
    first_learn: float = 0.0
    last_learn: float = 0.0
    installed_at: float | None = None
    offloads: int = 0  # times it went onto the NIC
    nic_packets: int = 0  # on the NIC: this stay, as last read
    nic_bytes: int = 0
    merged_packets: int = 0  # earlier stays, merged when they ended
    merged_bytes: int = 0
    last_change: float = 0.0  # when its NIC count last moved (idle without notifications)
    rate: float = 0.0  # packets/s: on the NIC from its counter, pending from its LEARN punts
    hv_packets: int = 0  # frames of it that reached the hypervisor from the NIC (crossings)
    hv_bytes: int = 0
    last_seen: float = 0.0
    fate: str = ""  # "to_hypervisor": the program sends it to the slow path
    written_at: float | None = None  # when its entry's INSERT came back from the switch
    last_read: float = 0.0  # when its NIC counter was last read (for its rate)

    @property
    def packets_on_nic(self) -> int:
        return self.merged_packets + self.nic_packets


class OffloadError(RuntimeError):
    pass


class OffloadManager:
    """Per-flow offload for one placed program on one P4Runtime target."""

    def __init__(self, prog: Program, graph: nx.DiGraph, placement: Placement, hv: HypervisorPipeline,
                 info: p4info_pb2.P4Info, addr: str, election_id: tuple[int, int] = (0, 1),
                 clock: Callable[[], float] = time.monotonic):
        nic = placement.problem.nic
        if nic is None or nic.offload is None:
            raise OffloadError("per-flow offload needs a NIC profile with an [offload] section")
        self.prog, self.placement, self.hv, self.clock = prog, placement, hv, clock
        self.policy = nic.offload
        self.layouts: dict[str, FlowLayout] = flow_layouts(prog, graph, placement, pipeline_numbers(prog))
        self.trees = stage_trees(graph)
        self.stage_at = {name: {st.order: st for st in tree.stages()} for name, tree in self.trees.items()}
        tables = {t.preamble.name: t for t in info.tables}
        if FLOW_TABLE not in tables:
            raise OffloadError(f"the NIC program has no {FLOW_TABLE} table (built without [offload]?)")
        ft = tables[FLOW_TABLE]
        self.table_id = ft.preamble.id
        self.notifies = ft.idle_timeout_behavior == p4info_pb2.Table.NOTIFY_CONTROL
        actions = {a.preamble.name: a.preamble.id for a in info.actions}
        self.action_id = {name: actions[lay.action_name] for name, lay in self.layouts.items()}
        self.counter_id = next(c.preamble.id for c in info.counters if c.preamble.name == FLOW_COUNTER)
        self.size = ft.size
        self.free = list(range(self.size - 1, -1, -1))  # slots; pop() gives the lowest
        self.slot_base: dict[int, tuple[int, int]] = {}  # a slot's counter when its flow went in (else 0)
        self.flows: dict[tuple[str, int], Flow] = {}
        self.entry_counts: dict[tuple[str, int], list[int]] = {}  # (table, id(entry)) → [packets, bytes] merged
        self._entry_of: dict[tuple[str, int], object] = {}
        self.stats = {"learnt": 0, "offloaded": 0, "evicted_idle": 0, "evicted_rebalance": 0,
                      "revalidated": 0, "install_failed": 0, "collisions": 0, "malformed": 0}
        self.events: list[tuple[float, str, str]] = []  # (time, what, flow) for `up`'s log and tests
        self._writes: list[tuple[p4runtime_pb2.Update, Flow]] = []
        self._notes: queue.Queue = queue.Queue()
        self._readers: dict[str, Callable] = {}
        # Pipelines that start in the hypervisor: it hands an offloaded flow's packets to the NIC
        # where the table is looked up, and learns those flows from its own fast path's counts.
        self.hv_installed: dict[tuple[str, tuple[int, ...]], Flow] = {}
        self._fa_keys: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # FlowAction → key
        self._seen_totals: dict[tuple[str, tuple[int, ...]], int] = {}
        for lay in self.layouts.values():
            if lay.hv_first and lay.problem is None:
                hv.hand_over(lay.pipeline, lay.first_stage, self._decider(lay))
        self.addr, self.election_id = addr, election_id
        self.client: P4RuntimeClient | None = None
        self._reader: threading.Thread | None = None

    # ------------------------------------------------------------ connection
    def connect(self) -> None:
        """Become the primary client (after `push`) and listen for idle-timeout notifications."""
        self.client = P4RuntimeClient(self.addr, election_id=self.election_id).__enter__()
        stream = self.client._stream

        def read() -> None:
            try:
                for resp in stream:
                    if resp.HasField("idle_timeout_notification"):
                        self._notes.put(resp.idle_timeout_notification)
            except grpc.RpcError:
                self._notes.put(None)  # the switch went away: its flow entries with it

        self._reader = threading.Thread(target=read, name="p4gen-offload-stream", daemon=True)
        self._reader.start()

    def close(self) -> None:
        if self.client is not None:
            self.client.__exit__(None, None, None)
            self.client = None

    def forget_nic(self) -> None:
        """The switch restarted: its flow table is empty. Offloaded flows are learnt again
        (their counts since the last read went with the switch)."""
        for f in self.flows.values():
            if f.where == NIC:
                f.where, f.why, f.slot, f.nic_packets, f.nic_bytes = FAST_PATH, "switch restarted", None, 0, 0
        self.free = list(range(self.size - 1, -1, -1))
        self.slot_base.clear()
        self._writes.clear()
        if self.hv_installed:
            self.hv_installed.clear()
            self._invalidate_hv()
        self._log("restart", "every offloaded flow forgotten")

    # ------------------------------------------------------------ learning
    def seen(self, p: Punted) -> None:
        """Any frame from the NIC: counted for its flow (the NIC puts the flow key's hash on it)."""
        if not p.flow_hash or p.pipeline not in self.layouts:
            return
        k = (p.pipeline, p.flow_hash)
        f = self.flows.get(k)
        if f is None:
            f = self.flows[k] = Flow(p.pipeline, p.flow_hash, (),
                                     why=f"below threshold ({self.policy.threshold_packets} packets)")
        f.hv_packets += 1
        f.hv_bytes += len(p.data)
        f.last_seen = self.clock()

    def learn(self, p: Punted) -> Flow | None:
        """A LEARN punt: decide the flow's place; an install waits for `flush`."""
        lay = self.layouts.get(p.pipeline)
        if lay is None:
            return None
        now = self.clock()
        self.stats["learnt"] += 1
        k = (p.pipeline, p.flow_hash)
        try:
            key = self._key(lay, p)
        except Malformed:
            self.stats["malformed"] += 1  # the hypervisor drops it too, counted by reason
            return None
        flow = self.flows.get(k)
        if flow is not None and not flow.key:
            flow.key, flow.first_learn = key, now  # known by its hash until now
        if flow is not None and flow.key != key:
            self.stats["collisions"] += 1
            if flow.where == NIC:
                return None  # another flow with the same hash owns the entry; this one stays as it is
            flow = None
        if flow is None:
            flow = self.flows[k] = Flow(p.pipeline, p.flow_hash, key, first_learn=now)
        else:
            gap = now - flow.last_learn
            if gap > 0 and flow.where != NIC:
                flow.rate = RELEARN_PACKETS / gap
        flow.learnt += 1
        flow.last_learn = now
        if flow.where == NIC:
            return flow  # in the table already (a LEARN sent before the entry went in)
        if lay.problem is not None:
            flow.why = f"uncacheable: the pipeline {lay.problem}"
            return flow
        why = self._specialise(lay, p, flow)
        if why is not None:
            flow.why = why
            return flow
        if self.free:
            self._install(flow)
        else:
            flow.why = f"table full ({self.size} entries); waiting for a colder flow to leave"
        return flow

    def _key(self, lay: FlowLayout, p: Punted) -> tuple[int, ...]:
        """The flow key as the NIC read it at the pipeline's start (the packet is unchanged)."""
        pkt = self.hv.parser.parse(p.data)
        pkt.meta.update(p.meta)  # the parser's metadata, and what crossed with the packet
        return self._pkt_key(lay, pkt)

    def _pkt_key(self, lay: FlowLayout, pkt) -> tuple[int, ...]:
        """The flow key of a parsed packet, each field as the DSL reads it."""
        parser = self.hv.parser
        read = self._readers.get(lay.pipeline)
        if read is None:  # header fields in one compiled reader; validity bits and metadata apart
            fields = [k.ref for k in lay.key if k.field != "$valid" and k.instance != "meta"]
            read = self._readers[lay.pipeline] = parser.fields_tuple(fields)
        values = iter(read(pkt))
        out = []
        for kf in lay.key:
            if kf.field == "$valid":
                out.append(int(parser.header_bytes(pkt, kf.instance, kf.index) is not None))
            elif kf.instance == "meta":
                out.append(pkt.meta.get(kf.field, 0))
            else:
                out.append(next(values))
        return tuple(out)

    def _specialise(self, lay: FlowLayout, p: Punted, flow: Flow) -> str | None:
        return self._specialise_frame(lay, p.data, p.meta, flow)

    def _specialise_frame(self, lay: FlowLayout, frame: bytes, meta: dict | None, flow: Flow) -> str | None:
        """The flow's decisions and hand-over point from a prediction; why not, if it cannot
        or need not be offloaded. A pipeline that starts in the hypervisor counts from where
        it hands flows over (`first_stage`)."""
        trace = self.hv.predict(lay.pipeline, frame, meta)
        if trace is None:
            return "malformed"
        flow.fate = "to_hypervisor" if trace.state == State.TO_HV else ""
        stages = [s for s in trace.stages if s >= lay.first_stage]
        handover = next((s for s in stages if s in lay.handover), None)
        run = stages if handover is None else stages[:stages.index(handover)]
        at = self.stage_at[lay.pipeline]
        if not run:
            st = at[handover]
            return f"capability: the NIC lacks {lay.handover[handover]!r} for {st.name}, the path's first stage"
        if all(self.placement.assignment.get(at[s].id, HYP) != HYP for s in run):
            # the static split runs the same stages on the NIC and hands over no earlier
            return "no gain: the static split runs as much of its path on the NIC"
        tables = self.hv.tables
        run_set = set(run)
        looked = {at[s].table.name if at[s].table is not None else None for s in run_set}
        decisions, entries = {}, []
        for slot in lay.tables:
            if slot.table not in trace.tables or slot.table not in looked:
                continue
            hit = next((e for e in trace.entries if any(e is x for x in tables[slot.table].entries)), None)
            if hit is None:
                decisions[slot.table] = (None, {})
            else:
                decisions[slot.table] = (hit.action, dict(hit.args))
                entries.append((slot.table, hit))
        flow.decisions, flow.entries, flow.handover = decisions, entries, handover
        return None

    def _decider(self, lay: FlowLayout) -> Callable:
        def offloaded(ctx) -> bool:
            """On the hypervisor's full path, where the flow table is looked up: is this packet's
            flow in it? (The fast path replays the answer until the table changes.)"""
            if ctx.trace is not None:
                ctx.trace.tables.add(FLOW_TABLE)
            return (lay.pipeline, self._pkt_key(lay, ctx.pkt)) in self.hv_installed
        return offloaded

    def nic_hash(self, lay: FlowLayout, key: tuple[int, ...]) -> int:
        """The hash the NIC computes of a flow key: CRC-32 of the pipeline's number and the key,
        their bits concatenated, left-aligned in whole bytes (docs/offload-facts.md)."""
        bits = 8 + lay.key_width
        value = (lay.number << lay.key_width) | lay.pack_key(key)
        nbytes = (bits + 7) // 8
        return zlib.crc32((value << (8 * nbytes - bits)).to_bytes(nbytes, "big"))

    def _invalidate_hv(self) -> None:
        if self.hv.cache is not None:
            self.hv.cache.invalidate_table(FLOW_TABLE)

    def learn_hypervisor_flows(self) -> None:
        """Flows of pipelines that start in the hypervisor, from its fast path's counts: one that
        reached the threshold (or is busy again) is specialised and installed like a learnt one."""
        cache = self.hv.cache
        lays = {n: lay for n, lay in self.layouts.items() if lay.hv_first and lay.problem is None}
        if cache is None or not lays:
            return
        self.hv.sync()
        now = self.clock()
        totals: dict[tuple[str, tuple[int, ...]], list] = {}
        for fa in list(cache.flows.values()):
            lay = lays.get(fa.pipeline)
            if lay is None:
                continue
            key = self._fa_keys.get(fa)
            if key is None:
                try:
                    pkt = self.hv.parser.parse(fa.head)
                except Malformed:
                    continue
                key = self._fa_keys[fa] = self._pkt_key(lay, pkt)
            cell = totals.setdefault((fa.pipeline, key), [0, fa])
            cell[0] += sum(a.total[0] for a in fa.chain())
        seen, self._seen_totals = self._seen_totals, {k: v[0] for k, v in totals.items()}
        for (name, key), (total, fa) in totals.items():
            lay = lays[name]
            before = seen.get((name, key), 0)
            h = self.nic_hash(lay, key)
            flow = self.flows.get((name, h))
            if flow is None:
                if total < self.policy.threshold_packets:
                    continue
                flow = self.flows[(name, h)] = Flow(name, h, key, first_learn=now)
            elif flow.key != key:
                self.stats["collisions"] += 1
                continue
            dt = now - (flow.last_learn or now)
            if dt > 0:
                flow.rate = (total - before) / dt
            flow.hv_packets, flow.last_seen = total, now
            if flow.where == NIC or total == before:
                flow.last_learn = now
                continue
            if flow.why.startswith(("capability", "no gain", "uncacheable", "malformed")):
                continue  # it will not change (short of a table change, which clears it)
            flow.learnt += 1
            flow.last_learn = now
            self.stats["learnt"] += 1
            why = self._specialise_frame(lay, fa.head, None, flow)
            if why is not None:
                flow.why = why
            elif self.free:
                self._install(flow)
            else:
                flow.why = f"table full ({self.size} entries); waiting for a colder flow to leave"

    # ------------------------------------------------------------ writes
    def _update(self, kind: int, flow: Flow) -> p4runtime_pb2.Update:
        """An INSERT (with the flow's action) or a DELETE of its entry, built in place (the
        pure-Python protobuf makes every copy count)."""
        u = p4runtime_pb2.Update(type=kind)
        self._fill(u.entity.table_entry, flow, kind != p4runtime_pb2.Update.DELETE)
        return u

    def _fill(self, te: p4runtime_pb2.TableEntry, flow: Flow, with_action: bool) -> None:
        lay = self.layouts[flow.pipeline]
        te.table_id = self.table_id
        te.match.add(field_id=1).exact.value = canonical(lay.number, 8)
        te.match.add(field_id=2).exact.value = canonical(flow.hash, 32)
        if with_action:
            te.action.action.action_id = self.action_id[flow.pipeline]
            values = lay.action_values(flow.slot or 0, flow.key, flow.decisions)
            for i, ((_name, width), v) in enumerate(zip(lay.action_params(), values, strict=True)):
                te.action.action.params.add(param_id=i + 1, value=canonical(v, width))
            if self.notifies:
                te.idle_timeout_ns = self.policy.idle_timeout_ms * 1_000_000

    def _install(self, flow: Flow) -> None:
        flow.slot = self.free.pop()
        flow.where, flow.why = NIC, "offloaded"
        flow.installed_at = flow.last_change = flow.last_read = self.clock()
        flow.nic_packets = flow.nic_bytes = 0
        flow.offloads += 1
        self.stats["offloaded"] += 1
        self._writes.append((self._update(p4runtime_pb2.Update.INSERT, flow), flow))
        self._log("offload", self._name(flow))

    def _remove(self, flow: Flow, why: str) -> None:
        """Delete the entry now (then read its counter: nothing can hit it any more), merge."""
        if flow.where != NIC or flow.slot is None:
            return
        self.flush()
        if self.hv_installed.pop((flow.pipeline, flow.key), None) is not None:
            self._invalidate_hv()  # the hypervisor keeps its packets again, before the entry goes
        try:
            self._write([self._update(p4runtime_pb2.Update.DELETE, flow)])
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:  # e.g. not the primary client for a moment
                self._log("refused", f"{self._name(flow)}: delete failed: gRPC {e.code().name}: {e.details()}; "
                                     "tried again later")
                return
        self._read_slots([flow])
        base = self.slot_base.get(flow.slot, (0, 0))  # the slot's count is the next occupant's start
        self.slot_base[flow.slot] = (base[0] + flow.nic_packets, base[1] + flow.nic_bytes)
        self._merge(flow)
        self.free.append(flow.slot)
        flow.slot, flow.where, flow.why = None, FAST_PATH, why
        self._log("evict", f"{self._name(flow)}: {why}")

    def _merge(self, flow: Flow) -> None:
        flow.merged_packets += flow.nic_packets
        flow.merged_bytes += flow.nic_bytes
        for table, entry in flow.entries:
            cell = self.entry_counts.setdefault((table, id(entry)), [0, 0])
            self._entry_of[(table, id(entry))] = entry
            cell[0] += flow.nic_packets
            cell[1] += flow.nic_bytes
        flow.nic_packets = flow.nic_bytes = 0

    def flush(self) -> int:
        """Write the pending installs in one batch; a refused one leaves its flow in the
        hypervisor's fast path, with the switch's reason. How many went in."""
        if not self._writes:
            return 0
        writes, self._writes = self._writes, []
        try:
            self._write([u for u, _f in writes])
            now = self.clock()
            for _u, flow in writes:
                flow.written_at = now
                self._hand_over(flow)
            return len(writes)
        except grpc.RpcError as e:
            errors = _update_errors(e)
            ok = 0
            for i, (_u, flow) in enumerate(writes):
                err = errors[i] if i < len(errors) else f"gRPC {e.code().name}: {e.details()}"
                if err is None:
                    ok += 1
                    flow.written_at = self.clock()
                    self._hand_over(flow)
                    continue
                self.stats["install_failed"] += 1
                if flow.slot is not None:
                    self.free.append(flow.slot)
                flow.slot, flow.where, flow.why = None, FAST_PATH, f"install refused: {err}"
                self._log("refused", f"{self._name(flow)}: {err}")
            return ok

    def _hand_over(self, flow: Flow) -> None:
        """Its entry is in: a flow that starts in the hypervisor goes to the NIC from now on."""
        if self.layouts[flow.pipeline].hv_first and flow.where == NIC:
            self.hv_installed[(flow.pipeline, flow.key)] = flow
            self._invalidate_hv()

    def _write(self, updates: list[p4runtime_pb2.Update]) -> None:
        if self.client is None:
            self.connect()
        assert self.client is not None
        self.client.write(updates)

    # ------------------------------------------------------------ counters, idle, rebalance
    def _read_slots(self, flows: list[Flow] | None = None) -> None:
        """Each offloaded flow's packets and bytes since it went in (the slot's counter minus
        its value then)."""
        if self.client is None:
            self.connect()
        assert self.client is not None
        want = flows if flows is not None else [f for f in self.flows.values() if f.where == NIC]
        if not want:
            return
        if len(want) <= 4:
            cells = {}
            for f in want:
                cells.update(self.client.read_counter(self.counter_id, f.slot))
        else:
            cells = self.client.read_counter(self.counter_id)
        now = self.clock()
        for f in want:
            pk, by = cells.get(f.slot, (0, 0))
            base = self.slot_base.get(f.slot, (0, 0))
            packets, nbytes = pk - base[0], by - base[1]
            dt = now - (f.last_read or f.installed_at or now)
            if dt > 0:  # a moving average of the rate: a quiet second lowers it, not to 0 at once
                w = math.exp(-dt / RATE_WINDOW)
                f.rate = w * f.rate + (1 - w) * (packets - f.nic_packets) / dt
            if packets != f.nic_packets:
                f.last_change = now
            f.nic_packets, f.nic_bytes, f.last_read = packets, nbytes, now

    def poll(self) -> None:
        """Idle flows out, hotter flows in; call it about once a second."""
        self.flush()
        while True:
            try:
                note = self._notes.get_nowait()
            except queue.Empty:
                break
            if note is None:
                continue
            for te in note.table_entry:
                h = int.from_bytes(te.match[1].exact.value if len(te.match) > 1 else b"", "big")
                number = int.from_bytes(te.match[0].exact.value, "big") if te.match else 0
                name = next((n for n, lay in self.layouts.items() if lay.number == number), None)
                flow = self.flows.get((name, h)) if name is not None else None
                if flow is not None and flow.where == NIC:
                    self.stats["evicted_idle"] += 1
                    self._remove(flow, "idle (timeout notification)")
        self.learn_hypervisor_flows()
        self._read_slots()
        now = self.clock()
        idle = self.policy.idle_timeout_ms / 1000
        for flow in [f for f in self.flows.values() if f.where == NIC]:
            if now - flow.last_change >= idle and not self.notifies:
                self.stats["evicted_idle"] += 1
                self._remove(flow, f"idle for {idle:g} s (counter unchanged)")
        self.rebalance()
        self.flush()
        stale = 2 * idle  # flows not on the NIC and not seen for a while are forgotten
        for k in [k for k, f in self.flows.items() if f.where != NIC and now - max(f.last_seen, f.last_learn) > stale]:
            del self.flows[k]

    def rebalance(self) -> None:
        """Free entries go to the hottest flows waiting for one; then a waiting flow hotter than
        the coldest offloaded one takes its entry."""
        pending = sorted((f for f in self.flows.values() if f.where == FAST_PATH and f.why.startswith("table full")
                          and f.decisions), key=lambda f: -f.rate)
        while self.free and pending:
            self._install(pending.pop(0))
        for cand in pending:
            on = [f for f in self.flows.values() if f.where == NIC]
            if not on:
                return
            coldest = min(on, key=lambda f: f.rate)
            if cand.rate <= coldest.rate * REBALANCE_MARGIN or cand.rate == 0:
                return
            self.stats["evicted_rebalance"] += 1
            why = f"rebalanced: {self._name(cand)} is hotter ({cand.rate:.0f} > {coldest.rate:.0f} pkt/s)"
            self._remove(coldest, why)
            coldest.why = "table full; rebalanced out for a hotter flow"
            self._install(cand)

    def table_changed(self, table: str) -> int:
        """A control-plane change to `table`: every flow whose decisions include it leaves the
        NIC (its counts merged) and is learnt again. How many left."""
        n = 0
        for flow in list(self.flows.values()):
            if table in flow.decisions:
                if flow.where == NIC:
                    self._remove(flow, f"revalidated: {table} changed")
                    n += 1
                flow.decisions, flow.entries = {}, []
                flow.why = f"revalidated: {table} changed; learnt again on its next LEARN"
        self.stats["revalidated"] += n
        return n

    # ------------------------------------------------------------ reading
    def merged_entry_packets(self, table: str, entry) -> int:
        """Packets a table entry would have counted for flows while they ran on the NIC."""
        live = sum(f.nic_packets for f in self.flows.values() if f.where == NIC
                   for t, e in f.entries if t == table and e is entry)
        return self.entry_counts.get((table, id(entry)), [0, 0])[0] + live

    def _name(self, flow: Flow) -> str:
        return f"{flow.pipeline}#{flow.hash:08x}"

    def _log(self, what: str, text: str) -> None:
        self.events.append((self.clock(), what, text))
        log.info("%s %s", what, text)


def _update_errors(e: grpc.RpcError) -> list[str | None]:
    """One entry per update of a refused batch: None where it went in, else its error."""
    from google.rpc import code_pb2, status_pb2

    out: list[str | None] = []
    for k, v in e.trailing_metadata() or ():
        if k == "grpc-status-details-bin":
            for anyd in status_pb2.Status.FromString(v).details:
                err = p4runtime_pb2.Error()
                anyd.Unpack(err)
                if err.canonical_code == 0:
                    out.append(None)
                else:
                    try:
                        code = code_pb2.Code.Name(err.canonical_code)
                    except ValueError:
                        code = str(err.canonical_code)
                    out.append(f"{code}: {err.message}")
    return out
