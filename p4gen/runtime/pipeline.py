"""The hypervisor pipeline: the stages placed in the hypervisor, run on raw packets.

The program's structured code is compiled once into Python closures; each
packet then runs through them with the same state machine as the NIC
program the emitter writes (p4gen.backend.emit):

    RUN   run stages placed here; at a stage placed on the NIC, hand the packet
          over (`to_nic`, with the stage's order number to resume at)
    SKIP  arrived from the NIC: skip to the stage `resume`, steering every
          branch into the arm that holds it
    DROP / DONE   dropped (counted by reason) / reached the end of the pipeline

With no placement (everything here) this is the all-software reference
behaviour of a program. Segmentation stages cut TCP super-packets with an
MSS for the path the packet is about to take: a dry run of the downstream
stages on a copy (no counters, no output) measures how many bytes they add
inside the outer IP packet.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import networkx as nx

from p4gen.crossing.protocol import CARRIED_PAD, carried_layout
from p4gen.crossing.states import State
from p4gen.frontend import program as P
from p4gen.frontend.primitives import INNER_OF
from p4gen.ir.lower import stage_trees
from p4gen.midend import coreops as C
from p4gen.midend.coreops import encap_cleared
from p4gen.midend.protocols import (
    IPPROTO_TCP,
    IPPROTO_UDP,
    SRC_PORT_BASE,
    SRC_PORT_HASH_WIDTHS,
    TUNNELS,
    Arg,
    Computed,
    TunnelSpec,
)
from p4gen.midend.trains import train_problem
from p4gen.place import HYP
from p4gen.place.profiles import Ports
from p4gen.runtime.checksum import complete_partial
from p4gen.runtime.control_flow import EntryPoint
from p4gen.runtime.flowcache import DEFAULT_SIZE, FlowCache, Trace, TrainTrace
from p4gen.runtime.flowvec import Outputs
from p4gen.runtime.packet import BadChecksum, Malformed, Packet, PacketParser, crc16
from p4gen.runtime.tables import TableRuntime
from p4gen.runtime.tso import Drop, Segmenter
from p4gen.runtime.virtio import F_NEEDS_CSUM, VnetHdr

# The state machine's states (p4gen.crossing.states), as plain ints for the generated code.
RUN, SKIP, DROP, DONE, PUNT, TO_HV, CONSUMED = (int(State.RUN), int(State.SKIP), int(State.DROP), int(State.DONE),
                                                int(State.PUNT), int(State.TO_HV), int(State.CONSUMED))


@dataclass(slots=True)
class Output:
    """Where a packet leaves the hypervisor pipeline, and its bytes."""

    kind: str  # "uplink" | "vm" | "port" | "to_nic" (or "to_hypervisor" from the NIC side) | "slow_path"
    data: bytes
    port: int | None = None  # "port"; to_nic / to_hypervisor: a forward() decision that crosses with it
    resume: int | None = None  # to_nic: the stage the NIC continues at
    code: int | None = None  # slow_path: the to_hypervisor() argument
    meta: dict[str, int] | None = None  # to_nic / to_hypervisor: the metadata that travels along (p4gen_meta_t)
    l4_dirty: bool = False  # to_nic / to_hypervisor: a rewrite under a TCP/UDP checksum happened
    vnet: VnetHdr | None = None  # a super-packet left whole for the kernel's GSO to cut (kernel_gso)


@dataclass(slots=True)
class _Ctx:
    pkt: Packet
    state: int
    resume: int | None
    pipeline: str
    dry: bool = False
    port: int | None = None
    code: int = 0
    outputs: list[Output] = field(default_factory=list)
    drop_reason: str = ""
    trace: Trace | None = None  # the flow cache learns from this run (p4gen.runtime.flowcache)


class HypervisorPipeline:
    def __init__(self, prog: P.Program, graph: nx.DiGraph, assignment: dict[str, str] | None = None,
                 side: str = HYP, flow_cache: int = DEFAULT_SIZE, ports: Ports | None = None):
        """`side`: which target's stages this instance runs. HYP is the hypervisor; NIC gives a
        Python model of the NIC's program (the same state machine), for testing the split.
        `flow_cache`: flows the fast path keeps (0: every packet takes the full path).
        `ports`: the NIC's ports (the profile's; defaults without one): `meta.ingress_port` is
        the host port for what the VM sends and the uplink for what the wire brings."""
        ports = ports or Ports()
        self.ingress_port = {"vm_egress": ports.host, "vm_ingress": ports.uplink}
        self.prog = prog
        self.g = graph
        self.assignment = assignment or {}
        self.side = side
        self.parser = PacketParser(prog)
        self.carried = carried_layout(prog)
        self.segmenter = Segmenter(prog, self.parser)
        self._tables: dict[str, TableRuntime] = {}
        for nf in prog.nfs.values():
            params = {a.name: a.params for a in nf.actions.values()}
            for t in nf.tables.values():
                self._tables[t.name] = TableRuntime(t, params)
        for e in prog.entries:
            self._tables[e.table].insert(e)
        self.key_readers = {name: self.parser.fields_tuple([k.field for k in t.table.keys])
                            for name, t in self._tables.items()}
        self._counters: dict[tuple[str, str], list[list[int]]] = {
            (nf.name, c.name): [[0, 0] for _ in range(c.size or 1)] for nf in prog.nfs.values()
            for c in nf.counters.values()}
        self.drops: Counter[str] = Counter()
        self._stage_packets: Counter[str] = Counter()
        L = self.parser.inst_layout  # noqa: N806
        self._eth_size = L["ethernet"].size if "ethernet" in L else 0
        self._ipv6_size = L["ipv6"].size if "ipv6" in L else 0
        # What encapsulation reads of the inner packet: addresses, protocol and length.
        self._tuple_of = {  # header bytes → (src, dst, protocol, length field)
            ip: self.parser.header_fields(ip, fields)
            for ip, fields in (("ipv4", ("src", "dst", "protocol", "total_len", "dscp", "ecn")),
                               ("ipv6", ("src", "dst", "next_hdr", "payload_len", "traffic_class"))) if ip in L}
        self._actions: dict[tuple[str, str], Callable] = {}
        self._vlan_size = L["vlan"].size if "vlan" in L else 0
        # Encap: what each tunnel invalidates once the outer headers moved inward.
        self._cleared = {name: encap_cleared(prog, spec) for name, spec in TUNNELS.items()
                         if set(spec.pushes) <= set(prog.instances)}
        self._fillers = {name: self._filler(TUNNELS[name]) for name in self._cleared}
        self._flow_ports: dict[tuple[int, ...], int] = {}  # inner 5-tuple → outer UDP source port
        self._templates: dict[tuple[str, tuple[int, ...]], tuple[bytes, ...]] = {}
        self.moved = [(o, i) for o, i in INNER_OF.items() if o in prog.instances and i in prog.instances]
        self.direction = {name: pl.direction for name, pl in prog.pipelines.items()}
        self.by_direction: dict[str, tuple[str, ...]] = {
            d: tuple(n for n, pl in prog.pipelines.items() if pl.direction == d) for d in ("vm_egress", "vm_ingress")}
        self.classifiers = {name: self._compile_classifier(name) for name in prog.pipelines}
        self._entries: dict[tuple[str, int | None, bool, bool], Callable[[_Ctx], None]] = {}
        # pipeline → (stage, decide): from its start, a packet `decide(ctx)` picks goes to the NIC at
        # that stage (per-flow offload, p4gen.control.offload; `hand_over`)
        self.handovers: dict[str, tuple[int, Callable[[_Ctx], bool]]] = {}
        self._keeps_super_packets = self._super_packet_stages()
        self.trains = True  # False: always the reference path (cut first, every segment runs every stage)
        self.kernel_gso = False  # set by a runner whose wire is a Linux link: plain TCP trains leave whole
        self.cache: FlowCache | None = FlowCache(self, flow_cache) if flow_cache else None
        trees = stage_trees(graph)
        self.train_problems = {st.id: train_problem(prog, tree, st) for tree in trees.values()
                               for st in tree.stages() if st.kind == "segment"}
        self._l4_csum_at = {proto: L[inst]["checksum"].byte
                            for proto, inst in ((IPPROTO_TCP, "tcp"), (IPPROTO_UDP, "udp")) if inst in L}

    # ------------------------------------------------------------ what ran (cached flows folded in)
    @property
    def counters(self) -> dict[tuple[str, str], list[list[int]]]:
        """(nf, counter) → cells of [packets, bytes]."""
        self.sync()
        return self._counters

    @property
    def stage_packets(self) -> Counter[str]:
        """Stage id → packets that ran it."""
        self.sync()
        return self._stage_packets

    @property
    def tables(self) -> dict[str, TableRuntime]:
        """Table name → its entries (with their direct counters)."""
        self.sync()
        return self._tables

    def sync(self) -> None:
        """Fold the flow cache's pending hits into the counters (the fast path counts per flow)."""
        if self.cache is not None and (self.cache.dirty or self.cache.vector_pending):
            self.cache.fold()

    # ------------------------------------------------------------ public
    def here(self, stage_id: str) -> bool:
        return self.assignment.get(stage_id, HYP) == self.side

    def run(self, pipeline: str, frame: bytes, resume: int | None = None,
            meta: dict[str, int] | None = None, port: int | None = None, l4_dirty: bool = False,
            vnet: VnetHdr | None = None, whole: bool = False) -> list[Output]:
        """One packet through `pipeline` (from the start, or from stage `resume` with the
        metadata it had when it left the other side and the port a forward() there chose).

        `vnet`: what the VM's virtio-net header asked of the device (p4gen.runtime.virtio):
        a checksum to complete, a super-packet to cut at its `gso_size`. Packets from the
        start go through the flow cache when there is one."""
        if whole:  # a flow being learnt (p4gen.control.offload): all of it here, as one pass
            return self._run(pipeline, frame, resume, meta, port, l4_dirty, vnet, whole=True)
        cache = self.cache
        if cache is not None and resume is None and meta is None and port is None and not l4_dirty:
            csum = self._csum_request(vnet)
            scope = _gso_scope(f"pl:{pipeline}", vnet)
            hit = cache.apply(scope, frame, csum)
            if hit is not None:
                return hit[1]
            return self._traced(scope, pipeline, frame, vnet, csum)
        return self._run(pipeline, frame, resume, meta, port, l4_dirty, vnet)

    @staticmethod
    def _csum_request(vnet: VnetHdr | None):
        """The VM's NEEDS_CSUM (start, offset); None without one."""
        if vnet is None:
            return None
        return (vnet.csum_start, vnet.csum_offset) if vnet.flags & F_NEEDS_CSUM else None

    def _traced(self, scope: str, pipeline: str, frame: bytes, vnet: VnetHdr | None, csum) -> list[Output]:
        """The full path for a cache miss, traced, then learnt as a flow."""
        cache = self.cache
        cache.stats["misses"] += 1
        trace = Trace(pipeline=pipeline)
        sp = self._stage_packets
        before = dict(sp)
        outputs = self._run(pipeline, frame, vnet=vnet, trace=trace)
        stages = {sid: n - before.get(sid, 0) for sid, n in sp.items() if n != before.get(sid, 0)}
        cache.learn(scope, frame, csum, trace, outputs, stages)
        return outputs

    def _run(self, pipeline: str, frame: bytes, resume: int | None = None,
             meta: dict[str, int] | None = None, port: int | None = None, l4_dirty: bool = False,
             vnet: VnetHdr | None = None, trace: Trace | None = None, whole: bool = False) -> list[Output]:
        """The full path (the reference behaviour)."""
        gso_size = 0
        if vnet is not None and (vnet.flags & F_NEEDS_CSUM or vnet.gso_type):
            taken = self._offloads(pipeline, frame, vnet)
            if taken is None:
                return []
            frame, dirty, gso_size, segments = taken
            l4_dirty = l4_dirty or dirty
            if segments is not None:  # cut here already: each segment runs as the VM's own packet
                out: list[Output] = []
                for f in segments:
                    out += self.run(pipeline, f, resume, meta, port, whole=whole)
                return out
        try:
            pkt = self.parser.parse(frame)
        except BadChecksum:
            self.drops["bad_checksum"] += 1
            return []
        except Malformed:
            self.drops["malformed"] += 1
            return []
        if meta:
            pkt.meta.update(meta)
        else:
            pkt.meta["ingress_port"] = self.ingress_port[self.direction[pipeline]]
        pkt.l4_dirty = l4_dirty
        pkt.gso_size = gso_size
        if trace is not None:
            self.cache.begin(pkt, trace)
            trace.pkt = pkt
        ctx = _Ctx(pkt, RUN if resume is None else SKIP, resume, pipeline, port=port, trace=trace)
        if resume is None and not self.classifiers[pipeline](pkt):
            self.drops["no_flow"] += 1
            if trace is not None:
                trace.state, trace.drop_reason = DROP, "no_flow"
            return []
        self.entry(pipeline, resume, whole=whole)(ctx)
        if trace is not None:
            trace.pkt, trace.state, trace.drop_reason = ctx.pkt, ctx.state, ctx.drop_reason
        return self._finish(ctx)

    def hand_over(self, pipeline: str, stage: int, decide: Callable[[_Ctx], bool]) -> None:
        """From now on, a packet of `pipeline` from its start that `decide(ctx)` picks when it
        reaches `stage` goes to the NIC there (what an offloaded flow does). `decide` runs on the
        full path only: the flow cache replays its answer, so whoever changes an answer
        invalidates the table FLOW_TABLE (`decide` adds it to the trace)."""
        self.handovers[pipeline] = (stage, decide)
        self._entries.clear()
        if self.cache is not None:
            self.cache.clear()

    def predict(self, pipeline: str, frame: bytes, meta: dict[str, int] | None = None) -> Trace | None:
        """What `pipeline` would do to a packet from its start, every stage run here and
        nothing counted (a dry run): the stages it runs, the tables it looks up and the
        entries it hits, and its fate. None when the packet does not parse. The per-flow
        offload (p4gen.control.offload) learns a flow's decisions from this."""
        try:
            pkt = self.parser.parse(frame)
        except Malformed:
            return None
        pkt.meta["ingress_port"] = self.ingress_port[self.direction[pipeline]]
        if meta:
            pkt.meta.update(meta)
        trace = Trace(pipeline=pipeline)
        ctx = _Ctx(pkt, RUN, None, pipeline, dry=True, trace=trace)
        self.entry(pipeline, None, dry=True)(ctx)
        trace.pkt, trace.state, trace.drop_reason = ctx.pkt, ctx.state, ctx.drop_reason
        return trace

    def run_direction(self, direction: str, frame: bytes, vnet: VnetHdr | None = None
                      ) -> tuple[str | None, list[Output]]:
        """A packet entering the system from the VM ("vm_egress", with the VM's virtio-net
        header when it has one) or the wire ("vm_ingress"): the first pipeline of that
        direction (in declaration order) one of whose flows matches it, or that has no flows,
        takes it, as the NIC program's classifier does; none: dropped as `no_flow`. Returns
        the pipeline's name (None when dropped) and the outputs."""
        names = self.by_direction.get(direction, ())
        cache = self.cache
        csum = self._csum_request(vnet)
        scope = _gso_scope(f"dir:{direction}", vnet)
        if cache is not None:
            hit = cache.apply(scope, frame, csum)
            if hit is not None:
                return hit
        if len(names) == 1:
            name = names[0]
        else:
            try:
                pkt = self.parser.parse(frame)
            except Malformed as e:
                self.drops["bad_checksum" if isinstance(e, BadChecksum) else "malformed"] += 1
                return None, []
            pkt.meta["ingress_port"] = self.ingress_port[direction]
            name = next((n for n in names if self.classifiers[n](pkt)), None)
            if name is None:
                self.drops["no_flow"] += 1
                return None, []
        if cache is None:
            return name, self._run(name, frame, vnet=vnet)
        return name, self._traced(scope, name, frame, vnet, csum)

    # ------------------------------------------------------------ the VM's offload requests
    def _offloads(self, pipeline: str, frame: bytes, vnet: VnetHdr
                  ) -> tuple[bytes, bool, int, list[bytes] | None] | None:
        """Take over what a virtio guest left to its device (None: dropped, counted).

        NEEDS_CSUM on the packet's own TCP/UDP checksum marks it L4-dirty: whichever target
        finishes the packet computes that checksum once, after every rewrite under it (the
        flag crosses with the packet in p4gen_t). A partial checksum anywhere else is
        completed now. A TCP super-packet keeps its `gso_size` for the pipeline's
        segmentation stage when the hypervisor reaches one before anything else; otherwise
        it is cut here at `gso_size`, as the VM would have sent it without TSO."""
        try:
            f = self.segmenter.locate(frame)
        except Drop:
            self.drops["malformed"] += 1
            return None
        dirty = False
        if vnet.needs_csum:
            own = f is not None and vnet.csum_start == f.l4 and vnet.csum_offset == self._l4_csum_at.get(f.protocol)
            if own:
                dirty = True
            else:
                try:
                    frame = complete_partial(frame, vnet.csum_start, vnet.csum_offset)
                except ValueError:
                    self.drops["bad_offload"] += 1
                    return None
        if not vnet.gso_type:
            return frame, dirty, 0, None
        if not vnet.tcp_gso or f is None or f.protocol != IPPROTO_TCP:
            self.drops["unsupported_gso"] += 1
            return None
        if self._keeps_super_packets.get(pipeline, False):
            return frame, dirty, vnet.gso_size, None
        try:
            return frame, False, 0, self.segmenter.cut(frame, f, self.segmenter.tcp_header_len(frame, f),
                                                       vnet.gso_size)
        except Drop as e:
            self.drops[e.reason] += 1
            return None

    def _super_packet_stages(self) -> dict[str, bool]:
        """Per pipeline: whether its first stages in the hypervisor include a segmentation stage
        before any stage placed elsewhere (so a super-packet may travel as one until there)."""
        out = {}
        for name, tree in stage_trees(self.g).items():
            keeps = False
            for st in tree.stages():
                if st.kind in ("parse", "classify"):
                    continue
                if not self.here(st.id):
                    break
                if st.kind == "segment":
                    keeps = True
                    break
            out[name] = keeps
        return out

    def run_vector(self, pipeline: str, frames: list[bytes]) -> Outputs:
        """Plain frames through `pipeline`, the cached flows' as vectors (p4gen.runtime.flowvec):
        `run_batch`'s outputs, kept in arrays (`Outputs.to_list`, `Outputs.pcap_records`)."""
        if self.cache is None:
            ov = Outputs()
            for i, f in enumerate(frames):
                outs = self.run(pipeline, f)
                if outs:
                    ov.single.append((i, outs))
            return ov
        scope = f"pl:{pipeline}"
        return self.cache.run_vector(scope, frames, lambda f: self._traced(scope, pipeline, f, None, None))

    def run_batch(self, pipeline: str, frames, lro: bool = False, vnets=None) -> list[Output]:
        """Packets through `pipeline`; with `lro` (the VM advertises LRO), a coalesce stage merges
        the batch's segments for the VM (flushing at the end of the batch). `vnets`: each
        frame's virtio-net header, for frames from a VM (p4gen.runtime.virtio)."""
        out: list[Output] = []
        if vnets is None and self.cache is not None:
            scope = f"pl:{pipeline}"
            out = self.cache.run_many(scope, frames, lambda f: self._traced(scope, pipeline, f, None, None))
        elif vnets is None:
            for f in frames:
                out += self.run(pipeline, f)
        else:
            for f, v in zip(frames, vnets, strict=True):
                out += self.run(pipeline, f, vnet=v)
        stage = self.coalesce_stage(pipeline)
        if not lro or stage is None:
            return out
        from p4gen.runtime.gro import Coalescer

        gro = Coalescer(self.prog, stage.max_size)
        to_vm = [o.data for o in out if o.kind == "vm"]
        return [o for o in out if o.kind != "vm"] + [Output("vm", d) for d in gro.coalesce(to_vm)]

    # ------------------------------------------------------------ the control plane
    def insert_entry(self, e: P.TableEntry) -> int:
        """Add a table entry (a checked one, e.g. from the program's `entries`); the flows
        whose first packet looked the table up are forgotten. How many were."""
        self._tables[e.table].insert(e)
        return self.cache.invalidate_table(e.table) if self.cache is not None else 0

    def delete_entry(self, e: P.TableEntry) -> int:
        """Remove the table entry with `e`'s keys (and priority); forget the flows as above."""
        if self._tables[e.table].remove(e.keys, e.priority or 0) is None:
            raise KeyError(f"{e.table}: no such entry")
        return self.cache.invalidate_table(e.table) if self.cache is not None else 0

    def coalesce_stage(self, pipeline: str) -> P.Coalesce | None:
        """The pipeline's receive-coalescing stage, if it has one (applied when the VM has LRO)."""
        stages = [self.prog.coalesces[s] for s in self.prog.pipelines[pipeline].stages if s in self.prog.coalesces]
        return stages[0] if stages else None

    # ------------------------------------------------------------ control
    def _compile_classifier(self, pipeline: str) -> Callable[[Packet], bool]:
        """Whether a packet belongs to one of the flows steered into `pipeline` (no flows: all)."""
        ns: dict[str, object] = {}
        conds = [self.condition_source(f.match, ns) for f in self.prog.flows.values() if f.pipeline == pipeline]
        return eval(f"lambda pkt: {' or '.join(conds) if conds else 'True'}", ns)  # noqa: S307

    def condition(self, c: P.CondT) -> Callable[[Packet, dict[str, int] | None], bool]:
        """A condition (no table hits: those are the `if` stage's own) as one closure."""
        ns: dict[str, object] = {}
        return eval(f"lambda pkt, params: {self.condition_source(c, ns)}", ns)  # noqa: S307

    def condition_source(self, c: P.CondT, ns: dict[str, object]) -> str:
        """Python source of a condition where `pkt` is in scope (see PacketParser.operand_source)."""
        if isinstance(c, P.ValidC):
            if c.instance in self.parser.stack_size:
                return f"pkt.valid({c.instance!r}, {c.index!r})"
            return f"(pkt.hdr[{c.instance!r}] is not None)"
        if isinstance(c, P.CmpC) and c.op in _COMPARE:
            left, right = self.parser.operand_source(c.left, ns), self.parser.operand_source(c.right, ns)
            return f"({left} {c.op} {right})"
        if isinstance(c, P.BoolC):
            return "True" if c.value else "False"
        if isinstance(c, P.NotC):
            return f"(not {self.condition_source(c.operand, ns)})"
        if isinstance(c, (P.AndC, P.OrC)):
            joiner = " and " if isinstance(c, P.AndC) else " or "
            return f"({joiner.join(self.condition_source(o, ns) for o in c.operands)})"
        raise ValueError(f"a table hit cannot be evaluated here: {c!r}")

    def _finish(self, ctx: _Ctx) -> list[Output]:
        if ctx.state == RUN:
            ctx.state = DONE
        if ctx.state == CONSUMED:
            return ctx.outputs
        if ctx.state == DROP:
            self.drops[ctx.drop_reason or "dropped"] += ctx.pkt.segs
            return ctx.outputs
        if ctx.state == SKIP:
            self.drops["bad_resume"] += 1
            return ctx.outputs
        if ctx.pkt.segs > 1:
            return self._finish_train(ctx)
        data = self.parser.deparse(ctx.pkt)
        if ctx.state == PUNT:
            carried = {name: ctx.pkt.meta.get(name, 0) for name, _w in self.carried.fields if name != CARRIED_PAD}
            ctx.outputs.append(Output("to_nic" if self.side == HYP else "to_hypervisor", data, port=ctx.port,
                                      resume=ctx.resume, meta=carried, l4_dirty=ctx.pkt.l4_dirty))
        elif ctx.state == TO_HV:
            ctx.outputs.append(Output("slow_path", data, code=ctx.code))
        elif ctx.port is not None:
            ctx.outputs.append(Output("port", data, port=ctx.port))
        else:
            ctx.outputs.append(Output("uplink" if self.direction[ctx.pipeline] == "vm_egress" else "vm", data))
        return ctx.outputs

    def _finish_train(self, ctx: _Ctx) -> list[Output]:
        """A train reached its fate: cut it now, the headers rewritten once for all segments
        (p4gen.midend.trains); each segment leaves as the reference path would send it. With
        `kernel_gso`, a plain TCP train for the wire leaves whole, for the kernel to cut."""
        pkt = ctx.pkt
        mss, pkt.segs, pkt.train_mss, pkt.l4_dirty = pkt.train_mss, 1, 0, False  # the cut sets the checksums
        data = self.parser.deparse(pkt)
        if ctx.trace is not None:
            ctx.trace.train_out = data
        if self.kernel_gso and ctx.state == DONE and self.direction[ctx.pipeline] == "vm_egress":
            whole = self.segmenter.gso_frame(data, mss)
            if whole is not None:
                if ctx.trace is not None:
                    ctx.trace.problem = "left whole for the kernel's GSO"
                kind = "port" if ctx.port is not None else "uplink"
                ctx.outputs.append(Output(kind, whole[0], port=ctx.port, vnet=whole[1]))
                return ctx.outputs
        segments = self.segmenter.replicate(data, mss)
        if ctx.state == PUNT:
            carried = {name: pkt.meta.get(name, 0) for name, _w in self.carried.fields if name != CARRIED_PAD}
            kind = "to_nic" if self.side == HYP else "to_hypervisor"
            ctx.outputs += [Output(kind, seg, port=ctx.port, resume=ctx.resume, meta=dict(carried))
                            for seg in segments]
        elif ctx.state == TO_HV:
            ctx.outputs += [Output("slow_path", seg, code=ctx.code) for seg in segments]
        elif ctx.port is not None:
            ctx.outputs += [Output("port", seg, port=ctx.port) for seg in segments]
        else:
            kind = "uplink" if self.direction[ctx.pipeline] == "vm_egress" else "vm"
            ctx.outputs += [Output(kind, seg) for seg in segments]
        return ctx.outputs

    def entry(self, pipeline: str, resume: int | None, dry: bool = False, whole: bool = False
              ) -> Callable[[_Ctx], None]:
        """The generated control flow for packets entering `pipeline` at stage `resume` (None:
        from the start); built on first use (p4gen.runtime.control_flow). `whole`: every stage
        runs here, wherever placement put it."""
        key = (pipeline, resume, dry, whole)
        fn = self._entries.get(key)
        if fn is None:
            fn = self._entries[key] = EntryPoint(self, pipeline, resume, dry, whole).function
        return fn

    def applier(self, nf: P.Nf, table: TableRuntime):
        """A table's apply as one closure: read the key, look up, count, run the action;
        returns the entry hit (None on a miss)."""
        read_key = self.key_readers[table.table.name]
        lookup = table.lookup
        actions = {name: self._action(nf, name) for name in table.table.actions}
        default_action, default_args = self._action(nf, table.default[0]), table.default[1]

        tname = table.table.name

        def apply(ctx: _Ctx):
            pkt = ctx.pkt
            entry = lookup(read_key(pkt))
            if ctx.trace is not None:
                ctx.trace.tables.add(tname)
                if entry is not None:
                    ctx.trace.entries.append(entry)
            if entry is None:
                default_action(ctx, default_args)
                return None
            if not ctx.dry:
                entry.packets += pkt.segs
                entry.bytes += pkt.length
            actions[entry.action](ctx, entry.args)
            return entry
        return apply

    def _action(self, nf: P.Nf, name: str):
        key = (nf.name, name)
        cache = self._actions
        if key not in cache:
            cache[key] = self.simple(nf, nf.actions[name].body, name)
        return cache[key]

    def simple(self, nf: P.Nf, stmts, action: str | None):
        ops = [self._op(nf, s, action) for s in stmts]

        def run(ctx: _Ctx, params: dict[str, int]) -> None:
            for op in ops:
                op(ctx, params)
        return run

    def _op(self, nf: P.Nf, s: P.StmtT, action: str | None):
        if isinstance(s, P.AssignOp):
            return self._core(C.Assign(s.target, s.value), "")
        if isinstance(s, P.CallActionOp):
            act = nf.actions[s.action]
            named = [(n, self.parser.operand(a)) for (n, _w), a in zip(act.params, s.args, strict=True)]

            def call(ctx, params):
                values = {n: get(ctx.pkt, params) for n, get in named}
                self._action(nf, s.action)(ctx, values)
            return call
        assert isinstance(s, P.PrimOp)
        where = f"{nf.name}.{action}" if action else f"{nf.name}"
        ops = [self._core(op, where) for op in C.expand(self.prog, s)]
        if len(ops) == 1:
            return ops[0]

        def primitive(ctx, params):
            for op in ops:
                op(ctx, params)
        return primitive

    def _core(self, op: C.CoreOp, where: str):
        """One core operation (p4gen.midend.coreops) as a closure (ctx, params) → None."""
        ps = self.parser
        if isinstance(op, C.Assign):
            put = ps.setter(op.target)
            written = self._write_note(op.target)
            if isinstance(op.value, P.HashOf):
                # The data is the fields' bits back to back, zero bits after the last up to a whole
                # byte: v1model's hash over a field list as BMv2 builds it (BufBuilder deparses
                # each field at the bit where the previous one ended), not byte per field.
                parts = [(ps.operand(a), _width(a)) for a in op.value.args]
                nbits = sum(w for _, w in parts)
                pad, nbytes = -nbits % 8, (nbits + 7) // 8
                modulus = 1 << min(op.target.width, 31)

                def assign_hash(ctx, params):
                    acc = 0
                    for get, w in parts:
                        acc = (acc << w) | (get(ctx.pkt, params) & ((1 << w) - 1))
                    put(ctx.pkt, crc16((acc << pad).to_bytes(nbytes, "big")) % modulus)
                    if ctx.trace is not None:
                        written(ctx)
                return assign_hash
            value = ps.operand(op.value)

            def assign(ctx, params):
                put(ctx.pkt, value(ctx.pkt, params))
                if ctx.trace is not None:
                    written(ctx)
            return assign
        if isinstance(op, C.Drop):
            def drop(ctx, params):
                ctx.state, ctx.drop_reason = DROP, where
            return drop
        if isinstance(op, C.DropIf):
            holds, reason = self.condition(op.cond), op.reason

            def drop_if(ctx, params):
                if holds(ctx.pkt, params):
                    ctx.state, ctx.drop_reason = DROP, reason
            return drop_if
        if isinstance(op, C.Forward):
            port, pmask = ps.operand(op.port), (1 << C.PORT_WIDTH) - 1

            def forward(ctx, params):
                ctx.port = port(ctx.pkt, params) & pmask
            return forward
        if isinstance(op, C.ToHypervisor):
            code, cmask = ps.operand(op.code), (1 << C.CODE_WIDTH) - 1

            def punt(ctx, params):
                ctx.state, ctx.code = TO_HV, code(ctx.pkt, params) & cmask
            return punt
        if isinstance(op, C.Count):
            cells = self._counters[(op.counter.nf, op.counter.name)]
            index = ps.operand(op.index)

            def count(ctx, params):
                if ctx.dry:
                    return
                i = index(ctx.pkt, params)
                if i < len(cells):
                    cells[i][0] += ctx.pkt.segs
                    cells[i][1] += ctx.pkt.length
                    if ctx.trace is not None:
                        ctx.trace.counts.append((cells, i))
            return count
        if isinstance(op, C.PushFront):
            name, depth, size = op.stack, ps.stack_size[op.stack], ps.inst_layout[op.stack].size

            def push_front(ctx, params):
                stack = ctx.pkt.stacks[name]
                stack.insert(0, bytearray(size))
                del stack[depth:]  # push_front shifts the last element out
            return push_front
        if isinstance(op, C.PopFront):
            name = op.stack

            def pop_front(ctx, params):
                stack = ctx.pkt.stacks[name]
                if stack:
                    del stack[0]
            return pop_front
        if isinstance(op, C.Encap):
            args7 = ps.operands_tuple(op.args[:7])
            spec = op.tunnel
            return lambda ctx, params: self._encap(ctx, spec, args7(ctx.pkt, params))
        if isinstance(op, C.Decap):
            spec = op.tunnel
            return lambda ctx, params: self._decap(ctx.pkt, spec.name)
        raise ValueError(f"no hypervisor implementation of {op!r}")  # pragma: no cover

    # ------------------------------------------------------------ tunnels (p4gen.midend.protocols)
    def _write_note(self, ref: P.FieldRef) -> Callable[[_Ctx], None]:
        """For the flow cache's trace: which header bytes (and bits) an assignment wrote."""
        if ref.instance == "meta":
            return lambda ctx: None
        locate = self.parser._locator(ref.instance, ref.index)
        fl = self.parser.inst_layout[ref.instance][ref.field]
        bits = fl.mask << fl.shift
        span = [(fl.byte + k, (bits >> (8 * (fl.nbytes - 1 - k))) & 0xFF) for k in range(fl.nbytes)]

        def note(ctx: _Ctx) -> None:
            buf = locate(ctx.pkt)
            if buf is not None:
                ctx.trace.written.append((buf, span))
        return note

    def _new_header(self, inst: str) -> bytearray:
        return bytearray(self.parser.inst_layout[inst].size)

    def _strip_vlans(self, pkt: Packet) -> int:
        """Remove every 802.1Q tag, the innermost tag's EtherType going to Ethernet; how many."""
        stack = pkt.stacks.get("vlan")
        if not stack:
            return 0
        L = self.parser.inst_layout  # noqa: N806
        L["ethernet"]["ether_type"].set(pkt.hdr["ethernet"], L["vlan"]["ether_type"].get(stack[-1]))
        n = len(stack)
        stack.clear()
        return n

    def _encap(self, ctx: _Ctx, spec: TunnelSpec, args: tuple[int, ...]) -> None:
        pkt = ctx.pkt
        tags = self._strip_vlans(pkt)
        ip4, ip6 = pkt.hdr.get("ipv4"), pkt.hdr.get("ipv6")
        if ip4 is not None:
            src, dst, proto, length, dscp, ecn = self._tuple_of["ipv4"](ip4)
            inner_len = self._eth_size + length
            tos = (dscp << 2) | ecn
        elif ip6 is not None:
            src, dst, proto, length, tos = self._tuple_of["ipv6"](ip6)
            inner_len = self._eth_size + self._ipv6_size + length
        else:
            src = dst = proto = tos = 0
            inner_len = pkt.length - self._vlan_size * tags
        meta = pkt.meta
        flow = (src, dst, proto, meta.get("l4_src", 0), meta.get("l4_dst", 0))
        sport = self._flow_ports.get(flow)
        if sport is None:  # the inner 5-tuple's hash, once per flow (the NIC's hash)
            key = b"".join(v.to_bytes(w // 8, "big") for v, w in zip(flow, SRC_PORT_HASH_WIDTHS, strict=True))
            if len(self._flow_ports) >= 65536:
                self._flow_ports.clear()
            sport = self._flow_ports[flow] = crc16(key) | SRC_PORT_BASE
        hdr, opt = pkt.hdr, pkt.opt
        for outer, inner in self.moved:
            hdr[inner] = hdr.get(outer)
        if opt:  # variable-length tails move with their headers
            for outer, inner in self.moved:
                if outer in opt:
                    opt[inner] = opt.pop(outer)
                else:
                    opt.pop(inner, None)
        invalid, varparts = self._cleared[spec.name]
        for outer in invalid:
            hdr[outer] = None
        for outer in varparts:
            opt.pop(outer, None)
        self._fillers[spec.name](hdr, self._outer_templates(spec, args), sport, inner_len, tos)

    def _outer_templates(self, spec: TunnelSpec, args: tuple[int, ...]) -> tuple[bytes, ...]:
        """The outer headers' bytes for one set of encap arguments, built once from the tunnel's
        definition: constants and arguments filled in, computed fields 0 (the filler's)."""
        cache = self._templates
        found = cache.get((spec.name, args))
        if found is not None:
            return found
        L = self.parser.inst_layout  # noqa: N806
        out = []
        for inst in spec.pushes:
            buf = self._new_header(inst)
            for name, v in spec.values(inst).items():
                if isinstance(v, Arg):
                    L[inst][name].set(buf, args[v.index])
                elif not isinstance(v, Computed):
                    L[inst][name].set(buf, v)
            out.append(bytes(buf))
        if len(cache) >= 4096:  # arguments come from table entries: few; bound it anyway
            cache.clear()
        found = cache[(spec.name, args)] = tuple(out)
        return found

    def _filler(self, spec: TunnelSpec):
        """Generated once per tunnel: copy the templates into the packet's outer headers and
        write the per-packet fields (lengths, the UDP source port, the inner DSCP/ECN). The IPv4
        header checksum is computed at deparse."""
        L = self.parser.inst_layout  # noqa: N806
        size = {i: L[i].size for i in spec.pushes}
        lines = ["def fill(hdr, templates, sport, inner_len, tos):"]
        for k, inst in enumerate(spec.pushes):
            below = sum(size[x] for x in spec.pushes[k + 1:])
            lines.append(f"    b = bytearray(templates[{k}])")
            for name, v in spec.values(inst).items():
                if isinstance(v, Computed):
                    value = {"src_port": "sport", "inner_dscp": "tos >> 2", "inner_ecn": "tos & 3"}.get(
                        v.what, f"inner_len + {size[inst] + below}")
                    lines.append("    " + L[inst][name].set_source("b", value))
            lines.append(f"    hdr[{inst!r}] = b")
        ns: dict[str, object] = {}
        exec(compile("\n".join(lines) + "\n", f"<p4gen encap {spec.name}>", "exec"), ns)  # noqa: S102
        return ns["fill"]

    def _decap(self, pkt: Packet, tunnel: str) -> None:
        for outer, inner in self.moved:
            pkt.hdr[outer] = pkt.hdr.get(inner)
            pkt.hdr[inner] = None
            if inner in pkt.opt:
                pkt.opt[outer] = pkt.opt.pop(inner)
            else:
                pkt.opt.pop(outer, None)
        pkt.hdr[tunnel] = None
        pkt.opt.pop(tunnel, None)
        if "vlan" in pkt.stacks:  # 802.1Q tags in front of the outer IP belong to the outer frame
            pkt.stacks["vlan"].clear()

    # ------------------------------------------------------------ segmentation
    def segment_body(self, st):
        seg: P.Segment = st.segment
        succ = [v for _, v, d in self.g.out_edges(st.id, data=True) if d["control"]]
        nxt = self.g.nodes[succ[0]]["stage"]

        most = self.g.nodes[st.id]["downstream_overhead"].max  # from the IR's overhead pass
        train_ok = self.train_problems.get(st.id) is None
        ip4, ip6 = self.parser.inst_layout.get("ipv4"), self.parser.inst_layout.get("ipv6")

        def body(ctx: _Ctx) -> None:
            if ctx.dry:
                return
            pkt = ctx.pkt
            if pkt.hdr.get("ipv4") is not None:
                ip_len = ip4["total_len"].get(pkt.hdr["ipv4"])
            elif pkt.hdr.get("ipv6") is not None:
                ip_len = ip6.size + ip6["payload_len"].get(pkt.hdr["ipv6"])
            else:
                ip_len = None
            vm_mss, pkt.gso_size = pkt.gso_size, 0  # past this stage, segments are plain packets
            tr = ctx.trace
            if ip_len is not None and ip_len + most <= seg.underlay_mtu and not vm_mss:
                if tr is not None:  # the flow cache may replay this for packets up to that long
                    slack = seg.underlay_mtu - most - ip_len
                    tr.slack = slack if tr.slack is None else min(tr.slack, slack)
                return  # fits on every path: no need to predict this packet's path
            if tr is not None:
                tr.exact = True  # decided on this packet's own length: valid for that length only
            dirty, pkt.l4_dirty = pkt.l4_dirty, False  # segments get fresh checksums anyway
            frame = self.parser.deparse(pkt)
            pkt.l4_dirty = dirty
            try:
                overhead = self._predict_overhead(ctx, frame, nxt.order)
                plan = self.segmenter.plan(frame, seg.max_mss if seg.mss is None else seg.mss,
                                           seg.underlay_mtu, overhead, vm_mss)
            except Drop as e:
                ctx.state, ctx.drop_reason = DROP, e.reason
                if tr is not None and e.reason != "oversize":  # decided on the frame's own bytes
                    tr.problem = f"segmentation: {e.reason}"
                return
            if plan is None:
                return  # nothing to cut: carry on with this packet
            if train_ok and self.trains:  # run the rest once; cut at the end (p4gen.midend.trains)
                if tr is not None:  # the flow cache replays this for every length that is cut so
                    f = plan.frame
                    hdr = f.l4 + plan.tcp_hlen
                    tr.train = TrainTrace(plan.mss, hdr, plan.total_bytes - plan.count * hdr, f.ip_len,
                                          max(seg.underlay_mtu - overhead, f.ip_hlen + plan.tcp_hlen + plan.mss) + 1,
                                          len(tr.counts), len(tr.entries))
                pkt.segs, pkt.length, pkt.train_mss = plan.count, plan.total_bytes, plan.mss
                return
            if tr is not None:
                tr.problem = "segmented"
            frames = self.segmenter.cut(frame, plan.frame, plan.tcp_hlen, plan.mss)
            ctx.state = CONSUMED
            for f in frames:
                if nxt.kind == "deparse":
                    sub = _Ctx(self.parser.parse(f), DONE, None, ctx.pipeline, port=ctx.port)
                    ctx.outputs += self._finish(sub)
                    continue
                # each segment as the super-packet was: its metadata and its forward() decision
                ctx.outputs += self.run(ctx.pipeline, f, resume=nxt.order, meta=ctx.pkt.meta, port=ctx.port)
        return body

    def _predict_overhead(self, ctx: _Ctx, frame: bytes, resume: int) -> int:
        """Bytes the rest of the pipeline will add inside the outer IP packet (dry run on a copy).

        Measured on real bytes above L2, not on length fields: a 64 KiB super-packet
        encapsulated overflows the outer IPv4 total length, which segments will not."""
        if self.segmenter.locate(frame) is None:
            return 0
        dry = _Ctx(ctx.pkt.copy(), SKIP, resume, ctx.pipeline, dry=True)
        dry.pkt.l4_dirty = False  # only lengths matter here
        self.entry(ctx.pipeline, resume, dry=True)(dry)
        if dry.state not in (RUN, DONE, PUNT):
            return 0  # dropped or sent elsewhere: it will not reach the underlay
        after = self.parser.deparse(dry.pkt)
        grown = (len(after) - self.segmenter.l2_length(after)) - (len(frame) - self.segmenter.l2_length(frame))
        return max(0, grown)


def _gso_scope(scope: str, vnet: VnetHdr | None) -> str:
    """The flow cache's scope of a packet: a VM's GSO super-packets of one kind and segment size
    are flows of their own (the segment size decides where they are cut)."""
    if vnet is None or not vnet.gso_type:
        return scope
    return f"{scope}/gso{vnet.gso_type}:{vnet.gso_size}"


_COMPARE = frozenset(("==", "!=", "<", "<=", ">", ">="))


def _width(op: P.Operand) -> int:
    if isinstance(op, (P.FieldRef, P.ParamRef)):
        return op.width
    if isinstance(op, P.ConstVal):
        return op.width or max(8, op.value.bit_length())
    return 32
