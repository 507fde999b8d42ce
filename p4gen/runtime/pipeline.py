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

import copy
from collections import Counter
from dataclasses import dataclass, field

import networkx as nx

from p4gen.backend.punt import CARRIED_PAD, carried_layout
from p4gen.frontend import program as P
from p4gen.frontend.primitives import INNER_OF
from p4gen.ir.lower import arm_order_range, hit_condition
from p4gen.place import HYP
from p4gen.runtime.packet import BadChecksum, Malformed, Packet, PacketParser, crc16
from p4gen.runtime.tables import TableRuntime
from p4gen.runtime.tso import Drop, Segmenter

RUN, SKIP, DROP, DONE, PUNT, TO_HV, CONSUMED = "run", "skip", "drop", "done", "punt", "to_hypervisor", "consumed"


@dataclass
class Output:
    """Where a packet leaves the hypervisor pipeline, and its bytes."""

    kind: str  # "uplink" | "vm" | "port" | "to_nic" (or "to_hypervisor" from the NIC side) | "slow_path"
    data: bytes
    port: int | None = None
    resume: int | None = None  # to_nic: the stage the NIC continues at
    code: int | None = None  # slow_path: the to_hypervisor() argument
    meta: dict[str, int] | None = None  # to_nic / to_hypervisor: the metadata that travels along (p4gen_meta_t)


@dataclass
class _Ctx:
    pkt: Packet
    state: str
    resume: int | None
    pipeline: str
    dry: bool = False
    port: int | None = None
    code: int = 0
    outputs: list[Output] = field(default_factory=list)
    drop_reason: str = ""


class HypervisorPipeline:
    def __init__(self, prog: P.Program, graph: nx.DiGraph, assignment: dict[str, str] | None = None,
                 side: str = HYP):
        """`side`: which target's stages this instance runs. HYP is the hypervisor; NIC gives a
        Python model of the NIC's program (the same state machine), for testing the split."""
        self.prog = prog
        self.g = graph
        self.assignment = assignment or {}
        self.side = side
        self.parser = PacketParser(prog)
        self.carried = carried_layout(prog)
        self.segmenter = Segmenter(prog)
        self.stmt_stage: dict[int, str] = graph.graph.get("stmt_stage", {})
        self.tables: dict[str, TableRuntime] = {}
        for nf in prog.nfs.values():
            params = {a.name: a.params for a in nf.actions.values()}
            for t in nf.tables.values():
                self.tables[t.name] = TableRuntime(t, params)
        for e in prog.entries:
            self.tables[e.table].insert(e)
        self.counters: dict[tuple[str, str], list[list[int]]] = {
            (nf.name, c.name): [[0, 0] for _ in range(c.size or 1)] for nf in prog.nfs.values()
            for c in nf.counters.values()}
        self.drops: Counter[str] = Counter()
        self.stage_packets: Counter[str] = Counter()
        self.compiled = {name: self._compile_pipeline(pl) for name, pl in prog.pipelines.items()}

    # ------------------------------------------------------------ public
    def here(self, stage_id: str) -> bool:
        return self.assignment.get(stage_id, HYP) == self.side

    def run(self, pipeline: str, frame: bytes, resume: int | None = None,
            meta: dict[str, int] | None = None) -> list[Output]:
        """One packet through `pipeline` (from the start, or from stage `resume` with the
        metadata it had when it left the other side)."""
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
        ctx = _Ctx(pkt, RUN if resume is None else SKIP, resume, pipeline)
        if resume is None and not self._classified(pkt, pipeline):
            self.drops["no_flow"] += 1
            return []
        self.compiled[pipeline](ctx)
        return self._finish(ctx)

    def run_batch(self, pipeline: str, frames, lro: bool = False) -> list[Output]:
        """Packets through `pipeline`; with `lro` (the VM advertises LRO), a coalesce stage merges
        the batch's segments for the VM (flushing at the end of the batch)."""
        out: list[Output] = []
        for f in frames:
            out += self.run(pipeline, f)
        stages = [self.prog.coalesces[s] for s in self.prog.pipelines[pipeline].stages if s in self.prog.coalesces]
        if not lro or not stages:
            return out
        from p4gen.runtime.gro import Coalescer

        gro = Coalescer(self.prog, stages[0].max_size)
        to_vm = [o.data for o in out if o.kind == "vm"]
        return [o for o in out if o.kind != "vm"] + [Output("vm", d) for d in gro.coalesce(to_vm)]

    # ------------------------------------------------------------ control
    def _classified(self, pkt: Packet, pipeline: str) -> bool:
        flows = [f for f in self.prog.flows.values() if f.pipeline == pipeline]
        return not flows or any(self._cond(pkt, f.match, None) for f in flows)

    def _cond(self, pkt: Packet, c: P.CondT, params: dict[str, int] | None) -> bool:
        if isinstance(c, P.ValidC):
            return pkt.valid(c.instance, c.index)
        if isinstance(c, P.CmpC):
            a, b = self.parser.eval(pkt, c.left, params), self.parser.eval(pkt, c.right, params)
            return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[c.op]
        if isinstance(c, P.BoolC):
            return c.value
        if isinstance(c, P.NotC):
            return not self._cond(pkt, c.operand, params)
        if isinstance(c, P.AndC):
            return all(self._cond(pkt, o, params) for o in c.operands)
        if isinstance(c, P.OrC):
            return any(self._cond(pkt, o, params) for o in c.operands)
        raise ValueError(f"a table hit cannot be evaluated here: {c!r}")

    def _finish(self, ctx: _Ctx) -> list[Output]:
        if ctx.state == RUN:
            ctx.state = DONE
        if ctx.state == CONSUMED:
            return ctx.outputs
        if ctx.state == DROP:
            self.drops[ctx.drop_reason or "dropped"] += 1
            return ctx.outputs
        if ctx.state == SKIP:
            self.drops["bad_resume"] += 1
            return ctx.outputs
        data = self.parser.deparse(ctx.pkt)
        if ctx.state == PUNT:
            carried = {name: ctx.pkt.meta.get(name, 0) for name, _w in self.carried.fields if name != CARRIED_PAD}
            ctx.outputs.append(Output("to_nic" if self.side == HYP else "to_hypervisor", data, resume=ctx.resume,
                                      meta=carried))
        elif ctx.state == TO_HV:
            ctx.outputs.append(Output("slow_path", data, code=ctx.code))
        elif ctx.port is not None:
            ctx.outputs.append(Output("port", data, port=ctx.port))
        else:
            direction = self.prog.pipelines[ctx.pipeline].direction
            ctx.outputs.append(Output("uplink" if direction == "vm_egress" else "vm", data))
        return ctx.outputs

    def _guard(self, st, body):
        """The per-stage state machine (the emitter's stage_guard, in Python)."""
        order, sid = st.order, st.id
        here = self.here(sid)

        def run(ctx: _Ctx) -> None:
            if ctx.state == SKIP and ctx.resume == order:
                ctx.state = RUN
            if ctx.state != RUN:
                return
            if not here and not ctx.dry:  # a dry run predicts the whole path, wherever it runs
                ctx.state, ctx.resume = PUNT, order
                return
            if not ctx.dry:
                self.stage_packets[sid] += 1
            body(ctx)
        return run

    def _compile_pipeline(self, pl: P.Pipeline):
        steps = []
        for name in pl.stages:
            if name in self.prog.nfs:
                steps.append(self._block(self.prog.nfs[name], self.prog.nfs[name].apply))
            elif name in self.prog.segments:
                st = self._stage(self.prog.segments[name])
                steps.append(self._guard(st, self._segment_body(pl, st)))
            else:
                st = self._stage(self.prog.coalesces[name])
                steps.append(self._guard(st, lambda ctx: None))  # coalescing runs per batch, after the pipeline

        def pipeline(ctx: _Ctx) -> None:
            for step in steps:
                if ctx.state in (DROP, PUNT, TO_HV, CONSUMED):
                    return
                step(ctx)
        return pipeline

    def _stage(self, stmt: object):
        return self.g.nodes[self.stmt_stage[id(stmt)]]["stage"]

    def _block(self, nf: P.Nf, stmts):
        steps = []
        stmts = list(stmts)
        i = 0
        while i < len(stmts):
            s = stmts[i]
            if isinstance(s, (P.AssignOp, P.PrimOp, P.CallActionOp)):
                j = i
                while j < len(stmts) and isinstance(stmts[j], (P.AssignOp, P.PrimOp, P.CallActionOp)):
                    j += 1
                body = self._simple(nf, stmts[i:j], None)
                steps.append(self._guard(self._stage(s), lambda ctx, b=body: b(ctx, {})))
                i = j
                continue
            i += 1
            if isinstance(s, P.ApplyOp):
                table = self.tables[s.table]
                steps.append(self._guard(self._stage(s), lambda ctx, t=table, n=nf: self._apply(ctx, n, t)))
            else:
                steps.append(self._if(nf, s))

        def block(ctx: _Ctx) -> None:
            for step in steps:
                if ctx.state not in (RUN, SKIP):
                    return
                step(ctx)
        return block

    def _if(self, nf: P.Nf, s: P.IfOp):
        st = self._stage(s)
        order, here = st.order, self.here(st.id)
        then_block = self._block(nf, s.then)
        else_block = self._block(nf, s.orelse)
        rng = arm_order_range(self.g, s.then)
        hit = hit_condition(s.cond)
        table = self.tables[hit[0]] if hit else None

        def run(ctx: _Ctx) -> None:
            if ctx.state == SKIP and ctx.resume == order:
                ctx.state = RUN
            go = False
            if ctx.state == RUN:
                if not here and not ctx.dry:
                    ctx.state, ctx.resume = PUNT, order
                    return
                if not ctx.dry:
                    self.stage_packets[st.id] += 1
                if hit is not None:
                    entry = self._apply(ctx, nf, table)
                    go = (entry is not None) == hit[1]
                else:
                    go = self._cond(ctx.pkt, s.cond, None)
            elif ctx.state == SKIP:
                go = rng is not None and rng[0] <= (ctx.resume or 0) <= rng[1]
            else:
                return
            if go:
                then_block(ctx)
            elif ctx.state in (RUN, SKIP):
                else_block(ctx)
        return run

    # ------------------------------------------------------------ tables and actions
    def _apply(self, ctx: _Ctx, nf: P.Nf, table: TableRuntime):
        pkt = ctx.pkt
        values = [self.parser.get(pkt, k.field) for k in table.table.keys]
        entry = table.lookup(values)
        if entry is not None:
            if not ctx.dry:
                entry.packets += 1
                entry.bytes += pkt.length
            action, args = entry.action, entry.args
        else:
            action, args = table.default
        self._action(nf, action)(ctx, args)
        return entry

    def _action(self, nf: P.Nf, name: str):
        key = (nf.name, name)
        cache = self.__dict__.setdefault("_actions", {})
        if key not in cache:
            cache[key] = self._simple(nf, nf.actions[name].body, name)
        return cache[key]

    def _simple(self, nf: P.Nf, stmts, action: str | None):
        ops = [self._op(nf, s, action) for s in stmts]

        def run(ctx: _Ctx, params: dict[str, int]) -> None:
            for op in ops:
                op(ctx, params)
        return run

    def _op(self, nf: P.Nf, s: P.StmtT, action: str | None):
        ps = self.parser
        if isinstance(s, P.AssignOp):
            tgt, val = s.target, s.value
            if isinstance(val, P.HashOf):
                def assign_hash(ctx, params):
                    data = b"".join(ps.eval(ctx.pkt, a, params).to_bytes((_width(a) + 7) // 8, "big")
                                    for a in val.args)
                    ps.set(ctx.pkt, tgt, crc16(data) % (1 << min(tgt.width, 31)))
                return assign_hash
            return lambda ctx, params: ps.set(ctx.pkt, tgt, ps.eval(ctx.pkt, val, params))
        if isinstance(s, P.CallActionOp):
            act = nf.actions[s.action]
            args = s.args

            def call(ctx, params):
                values = {n: ps.eval(ctx.pkt, a, params) for (n, _w), a in zip(act.params, args, strict=True)}
                self._action(nf, s.action)(ctx, values)
            return call
        assert isinstance(s, P.PrimOp)
        return self._primitive(nf, s, action)

    def _primitive(self, nf: P.Nf, s: P.PrimOp, action: str | None):
        ps = self.parser
        name, a = s.name, s.args
        where = f"{nf.name}.{action}" if action else f"{nf.name}"

        def ev(ctx, params, i):
            return ps.eval(ctx.pkt, a[i], params)

        if name == "drop":
            def drop(ctx, params):
                ctx.state, ctx.drop_reason = DROP, where
            return drop
        if name == "forward":
            def forward(ctx, params):
                ctx.port = ev(ctx, params, 0) & 0x1FF
            return forward
        if name == "to_hypervisor":
            def punt(ctx, params):
                ctx.state, ctx.code = TO_HV, ev(ctx, params, 0) & 0xFF
            return punt
        if name == "dec_ttl":
            ttl, hop = P.FieldRef("ipv4", "ttl", 8), P.FieldRef("ipv6", "hop_limit", 8)

            def dec_ttl(ctx, params):
                ps.set(ctx.pkt, ttl, ps.get(ctx.pkt, ttl) - 1)
                ps.set(ctx.pkt, hop, ps.get(ctx.pkt, hop) - 1)
            return dec_ttl
        if name == "set_dscp":
            dscp, tc = P.FieldRef("ipv4", "dscp", 6), P.FieldRef("ipv6", "traffic_class", 8)

            def set_dscp(ctx, params):
                d = ev(ctx, params, 0) & 0x3F
                ps.set(ctx.pkt, dscp, d)
                ps.set(ctx.pkt, tc, (d << 2) | (ps.get(ctx.pkt, tc) & 3))
            return set_dscp
        if name == "push_vlan":
            return lambda ctx, params: self._push_vlan(ctx.pkt, ev(ctx, params, 0), ev(ctx, params, 1))
        if name == "pop_vlan":
            return lambda ctx, params: self._pop_vlan(ctx.pkt)
        if name in ("vxlan_encap", "geneve_encap"):
            tunnel = name.split("_")[0]
            return lambda ctx, params: self._encap(ctx, tunnel, [ev(ctx, params, i) for i in range(7)])
        if name in ("vxlan_decap", "geneve_decap"):
            tunnel = name.split("_")[0]
            return lambda ctx, params: self._decap(ctx.pkt, tunnel)
        if name == "count":
            ctr = a[0]
            assert isinstance(ctr, P.CounterRef)
            cells = self.counters[(ctr.nf, ctr.name)]

            def count(ctx, params):
                if ctx.dry:
                    return
                i = ev(ctx, params, 1)
                if i < len(cells):
                    cells[i][0] += 1
                    cells[i][1] += ctx.pkt.length
            return count
        raise ValueError(f"no hypervisor implementation of primitive {name}")

    # ------------------------------------------------------------ header surgery (mirrors emit.py)
    def _new_header(self, inst: str) -> bytearray:
        return bytearray(self.parser.inst_layout[inst].size)

    def _push_vlan(self, pkt: Packet, vid: int, pcp: int) -> None:
        ps, lay = self.parser, self.parser.inst_layout["vlan"]
        tag = self._new_header("vlan")
        lay["pcp"].set(tag, pcp)
        lay["vid"].set(tag, vid)
        lay["ether_type"].set(tag, ps.inst_layout["ethernet"]["ether_type"].get(pkt.hdr["ethernet"]))
        stack = pkt.stacks["vlan"]
        stack.insert(0, tag)
        del stack[ps.stack_size["vlan"]:]  # push_front shifts the last element out
        ps.inst_layout["ethernet"]["ether_type"].set(pkt.hdr["ethernet"], 0x8100)

    def _pop_vlan(self, pkt: Packet) -> None:
        stack = pkt.stacks["vlan"]
        if stack:
            etype = self.parser.inst_layout["vlan"]["ether_type"].get(stack[0])
            self.parser.inst_layout["ethernet"]["ether_type"].set(pkt.hdr["ethernet"], etype)
            del stack[0]

    def _moved(self) -> list[tuple[str, str]]:
        return [(o, i) for o, i in INNER_OF.items() if o in self.prog.instances and i in self.prog.instances]

    def _encap(self, ctx: _Ctx, tunnel: str, args: list[int]) -> None:
        pkt, ps = ctx.pkt, self.parser
        smac, dmac, sip, dip, vni, ttl, dport = args
        # 802.1Q tags are local to the host side: the tunnel carries the frame untagged (as a
        # VTEP's access port does), with the innermost tag's EtherType on its Ethernet header.
        tags = len(pkt.stacks.get("vlan", ()))
        for _ in range(tags):
            self._pop_vlan(pkt)
        ip4, ip6 = pkt.hdr.get("ipv4"), pkt.hdr.get("ipv6")
        L = ps.inst_layout  # noqa: N806 - short: the lines below are long enough
        if ip4 is not None:
            src, dst, proto = L["ipv4"]["src"].get(ip4), L["ipv4"]["dst"].get(ip4), L["ipv4"]["protocol"].get(ip4)
            inner_len = 14 + L["ipv4"]["total_len"].get(ip4)
        elif ip6 is not None:
            src, dst, proto = L["ipv6"]["src"].get(ip6), L["ipv6"]["dst"].get(ip6), L["ipv6"]["next_hdr"].get(ip6)
            inner_len = 54 + L["ipv6"]["payload_len"].get(ip6)
        else:
            src = dst = proto = 0
            inner_len = pkt.length - 4 * tags
        key = (src.to_bytes(16, "big") + dst.to_bytes(16, "big") + bytes([proto]) +
               pkt.meta.get("l4_src", 0).to_bytes(2, "big") + pkt.meta.get("l4_dst", 0).to_bytes(2, "big"))
        for outer, inner in self._moved():
            pkt.hdr[inner] = pkt.hdr.get(outer)
            if outer in pkt.opt:
                pkt.opt[inner] = pkt.opt.pop(outer)
            else:
                pkt.opt.pop(inner, None)
        for outer in ("ipv6", "tcp", "icmp"):
            pkt.hdr[outer] = None
        pkt.opt.pop("ipv4", None)
        eth, ip, udp, tun = (self._new_header(x) for x in ("ethernet", "ipv4", "udp", tunnel))
        L["ethernet"]["src"].set(eth, smac)
        L["ethernet"]["dst"].set(eth, dmac)
        L["ethernet"]["ether_type"].set(eth, 0x0800)
        ipl = L["ipv4"]
        for f, v in (("version", 4), ("ihl", 5), ("total_len", inner_len + ipl.size + L["udp"].size + L[tunnel].size),
                     ("flags", 0b010), ("ttl", ttl), ("protocol", 17), ("src", sip), ("dst", dip)):
            ipl[f].set(ip, v)
        ul = L["udp"]
        ul["src_port"].set(udp, crc16(key) | 0xC000)
        ul["dst_port"].set(udp, dport)
        ul["length"].set(udp, inner_len + ul.size + L[tunnel].size)
        tl = L[tunnel]
        if tunnel == "vxlan":
            tl["flags"].set(tun, 0x08)
        else:
            tl["protocol_type"].set(tun, 0x6558)
        tl["vni"].set(tun, vni)
        pkt.hdr.update({"ethernet": eth, "ipv4": ip, "udp": udp, tunnel: tun})
        pkt.opt.pop(tunnel, None)

    def _decap(self, pkt: Packet, tunnel: str) -> None:
        for outer, inner in self._moved():
            pkt.hdr[outer] = pkt.hdr.get(inner)
            pkt.hdr[inner] = None
            if inner in pkt.opt:
                pkt.opt[outer] = pkt.opt.pop(inner)
            else:
                pkt.opt.pop(outer, None)
        pkt.hdr[tunnel] = None
        pkt.opt.pop(tunnel, None)

    # ------------------------------------------------------------ segmentation
    def _segment_body(self, pl: P.Pipeline, st):
        seg: P.Segment = st.segment
        succ = [v for _, v, d in self.g.out_edges(st.id, data=True) if d["control"]]
        nxt = self.g.nodes[succ[0]]["stage"]
        pipeline = self.compiled_lazy(pl.name)

        most = self.g.nodes[st.id]["downstream_overhead"].max  # from the IR's overhead pass
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
            if ip_len is not None and ip_len + most <= seg.underlay_mtu:
                return  # fits on every path: no need to predict this packet's path
            frame = self.parser.deparse(ctx.pkt)
            try:
                overhead = self._predict_overhead(ctx, frame, pipeline, nxt.order)
                if seg.mss is not None:
                    frames = self.segmenter.segment(frame, seg.mss, seg.underlay_mtu, overhead)
                else:
                    frames = self.segmenter.segment(frame, seg.max_mss, seg.underlay_mtu, overhead)
            except Drop as e:
                ctx.state, ctx.drop_reason = DROP, e.reason
                return
            if len(frames) == 1 and frames[0] == frame:
                return  # nothing to cut: carry on with this packet
            ctx.state = CONSUMED
            for f in frames:
                if nxt.kind == "deparse":
                    sub = _Ctx(self.parser.parse(f), DONE, None, ctx.pipeline)
                    ctx.outputs += self._finish(sub)
                    continue
                ctx.outputs += self.run(ctx.pipeline, f, resume=nxt.order, meta=ctx.pkt.meta)  # as one packet had
        return body

    def compiled_lazy(self, name: str):
        return lambda ctx: self.compiled[name](ctx)

    def _predict_overhead(self, ctx: _Ctx, frame: bytes, pipeline, resume: int) -> int:
        """Bytes the rest of the pipeline will add inside the outer IP packet (dry run on a copy).

        Measured on real bytes above L2, not on length fields: a 64 KiB super-packet
        encapsulated overflows the outer IPv4 total length, which segments will not."""
        if self.segmenter.locate(frame) is None:
            return 0
        dry = _Ctx(copy.deepcopy(ctx.pkt), SKIP, resume, ctx.pipeline, dry=True)
        pipeline(dry)
        if dry.state not in (RUN, DONE, PUNT):
            return 0  # dropped or sent elsewhere: it will not reach the underlay
        after = self.parser.deparse(dry.pkt)
        grown = (len(after) - self.segmenter.l2_length(after)) - (len(frame) - self.segmenter.l2_length(frame))
        return max(0, grown)


def _width(op: P.Operand) -> int:
    if isinstance(op, (P.FieldRef, P.ParamRef)):
        return op.width
    if isinstance(op, P.ConstVal):
        return op.width or max(8, op.value.bit_length())
    return 32
