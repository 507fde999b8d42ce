"""Where a packet goes next, on the hypervisor's side of the host port: one dispatcher.

`p4gen up` and `p4gen.testing` both use `HostDispatcher`: it takes frames from the
VM and from the NIC's host port, runs the hypervisor's stages, and says where
each resulting frame goes: to the VM, to the NIC (already wrapped in p4gen_t;
finished packets go out of the NIC with RESUME_DONE and the port), or to the
slow path (to_hypervisor()). Without a NIC (a hypervisor-only placement) the
hypervisor owns the wire link itself: frames come `from_wire` and go to WIRE.
`for_vm` is the last step towards the VM: with LRO, a batch's segments are
coalesced and each frame gets the virtio-net header it is written with.
`NicModel` is the NIC's side of the same protocol in Python (the placed
program's NIC stages run by the hypervisor's generator), for testing the
split without BMv2: it mirrors what the emitted P4 does with the punt header.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from p4gen.crossing.protocol import BadPunt, Crossing, Reason, crossing
from p4gen.runtime.virtio import PLAIN, VnetHdr

if TYPE_CHECKING:
    from p4gen.runtime.pipeline import HypervisorPipeline, Output

VM, NIC_PORT, SLOW_PATH, WIRE = "vm", "nic", "slow_path", "wire"


@dataclass(frozen=True)
class Delivery:
    to: str  # VM | NIC_PORT (a wrapped frame for the host port) | SLOW_PATH | WIRE (no NIC)
    data: bytes
    code: int = 0  # SLOW_PATH: to_hypervisor()'s argument
    pipeline: str = ""  # the pipeline that sent it (VM: whether it ends in a coalesce stage)
    vnet: VnetHdr = PLAIN  # WIRE: a super-packet for the kernel to cut (HypervisorPipeline.kernel_gso)


class HostDispatcher:
    """The hypervisor side of the host port for one placed program."""

    def __init__(self, hv: HypervisorPipeline, uplink_port: int, cross: Crossing | None = None, nic: bool = True):
        self.hv = hv
        self.prog = hv.prog
        self.cross = cross or crossing(hv.prog)
        self.uplink_port = uplink_port
        self.nic = nic  # False: hypervisor-only, the uplink is our own WIRE link
        self.drops: Counter[str] = hv.drops  # one tally with the pipeline's own
        self._gro: dict[str, object] = {}
        self.crossings: Counter[str] = Counter()  # frames from the NIC, by reason (Reason names)
        self.offload = None  # an OffloadManager (p4gen.control.offload): LEARN punts go to it
        self.resumed_at: Counter[str] = Counter()  # frames from the NIC by the stage the hypervisor resumes at
        self._names: dict[tuple[str, int], str] = {}

    def from_vm(self, frame: bytes, vnet: VnetHdr | None = None) -> list[Delivery]:
        """A frame the VM sent, with its virtio-net header (checksum and GSO requests)."""
        name, outputs = self.hv.run_direction("vm_egress", frame, vnet)
        return self.route(name, outputs) if name is not None else []

    def from_wire(self, frame: bytes) -> list[Delivery]:
        """A frame from the wire, when there is no NIC in front of the hypervisor."""
        name, outputs = self.hv.run_direction("vm_ingress", frame)
        return self.route(name, outputs) if name is not None else []

    def for_vm(self, deliveries: list[Delivery], lro: bool) -> list[tuple[bytes, VnetHdr]]:
        """The VM's frames of one batch as written to its link: with `lro` (the VM accepts
        coalesced packets), the segments of pipelines that end in a coalesce stage are
        merged (p4gen.runtime.gro) and go as GSO packets; everything else as it is."""
        if not lro:
            return [(d.data, PLAIN) for d in deliveries]
        out: list[tuple[bytes, VnetHdr]] = []
        by_pipeline: dict[str, list[bytes]] = {}
        for d in deliveries:
            by_pipeline.setdefault(d.pipeline, []).append(d.data)
        for name, frames in by_pipeline.items():
            gro = self._coalescer(name)
            out += gro.coalesce_vnet(frames) if gro is not None else [(f, PLAIN) for f in frames]
        return out

    def _coalescer(self, pipeline: str):
        if pipeline not in self._gro:
            from p4gen.runtime.gro import Coalescer

            stage = self.hv.coalesce_stage(pipeline) if pipeline in self.prog.pipelines else None
            self._gro[pipeline] = Coalescer(self.prog, stage.max_size) if stage is not None else None
        return self._gro[pipeline]

    def from_nic(self, frame: bytes) -> list[Delivery]:
        try:
            p = self.cross.unwrap(frame)
        except BadPunt as e:
            self.drops[e.reason] += 1
            return []
        try:
            self.crossings[Reason(p.reason).name.lower()] += 1
        except ValueError:
            self.crossings["unknown"] += 1
        if p.resume is not None:
            self.resumed_at[self._stage_name(p.pipeline, p.resume)] += 1
        if self.offload is not None:
            self.offload.seen(p)
        if p.reason == Reason.LEARN:
            # the packet as it arrived: learnt from, then run here from its first stage, every
            # stage (one pass, as the NIC would have run it; no second crossing, no reordering)
            if self.offload is not None:
                self.offload.learn(p)
            return self.route(p.pipeline, self.hv.run(p.pipeline, p.data, resume=p.resume, meta=p.meta,
                                                      whole=True))
        if p.reason == Reason.TO_HYPERVISOR:
            return [Delivery(SLOW_PATH, p.data, p.code)]
        if p.resume is None:  # the pipeline finished on the NIC: deliver where it ends
            if self.prog.pipelines[p.pipeline].direction == "vm_ingress":
                return [Delivery(VM, p.data, pipeline=p.pipeline)]
            return self._send(p.pipeline, p.data, self.uplink_port)
        return self.route(p.pipeline, self.hv.run(p.pipeline, p.data, resume=p.resume, meta=p.meta, port=p.port,
                                                  l4_dirty=p.l4_dirty))

    def _stage_name(self, pipeline: str, order: int) -> str:
        if not self._names:
            from p4gen.ir.lower import stage_trees

            self._names = {(name, st.order): st.name for name, tree in stage_trees(self.hv.g).items()
                           for st in tree.stages()}
        return f"{pipeline}:{self._names.get((pipeline, order), order)}"

    def route(self, pipeline: str, outputs: list[Output]) -> list[Delivery]:
        out: list[Delivery] = []
        for o in outputs:
            if o.kind == "to_nic":
                out.append(Delivery(NIC_PORT, self.cross.wrap(pipeline, o.resume, o.data, o.meta, o.port,
                                                              l4_dirty=o.l4_dirty)))
            elif o.kind == "vm":
                out.append(Delivery(VM, o.data, pipeline=pipeline))
            elif o.kind == "slow_path":
                out.append(Delivery(SLOW_PATH, o.data, o.code or 0))
            elif o.kind == "port":
                out += self._send(pipeline, o.data, o.port, o.vnet)
            else:  # "uplink": the wire, reached through the NIC when there is one
                out += self._send(pipeline, o.data, self.uplink_port, o.vnet)
        return out

    def _send(self, pipeline: str, data: bytes, port: int | None, vnet: VnetHdr | None = None) -> list[Delivery]:
        if self.nic:
            return [Delivery(NIC_PORT, self.cross.wrap(pipeline, None, data, port=port))]
        if port in (None, self.uplink_port):
            return [Delivery(WIRE, data, vnet=vnet or PLAIN)]
        self.drops["no_link"] += 1  # a NIC port that a hypervisor-only host does not have
        return []


class NicModel:
    """The NIC's side of the protocol in Python: what the emitted P4 does with p4gen_t."""

    def __init__(self, nic: HypervisorPipeline, host_port: int, uplink_port: int, cross: Crossing | None = None):
        self.nic = nic
        self.prog = nic.prog
        self.cross = cross or crossing(nic.prog)
        self.host_port, self.uplink_port = host_port, uplink_port
        self.drops: Counter[str] = nic.drops

    def receive(self, port: int, frame: bytes) -> list[tuple[int, bytes]]:
        """A frame in on `port`; the frames out as (port, bytes)."""
        if port != self.host_port:
            if port != self.uplink_port:
                self.drops["bad_port"] += 1
                return []
            name, outputs = self.nic.run_direction("vm_ingress", frame)
            return self._out(name, outputs) if name is not None else []
        try:
            p = self.cross.unwrap(frame)
        except BadPunt:
            self.drops["malformed"] += 1
            return []
        if p.resume is None:  # SEND: nothing left to run
            return [(self.uplink_port if p.port is None else p.port, p.data)]
        return self._out(p.pipeline, self.nic.run(p.pipeline, p.data, resume=p.resume, meta=p.meta, port=p.port,
                                                  l4_dirty=p.l4_dirty))

    def _out(self, pipeline: str, outputs: list[Output]) -> list[tuple[int, bytes]]:
        out = []
        for o in outputs:
            if o.kind == "to_hypervisor":
                out.append((self.host_port, self.cross.wrap(pipeline, o.resume, o.data, o.meta, o.port,
                                                            l4_dirty=o.l4_dirty)))
            elif o.kind == "slow_path":
                out.append((self.host_port, self.cross.wrap(pipeline, None, o.data, reason=Reason.TO_HYPERVISOR,
                                                            code=o.code or 0)))
            elif o.kind == "vm":  # the VM is behind the hypervisor
                out.append((self.host_port, self.cross.wrap(pipeline, None, o.data, reason=Reason.FINISHED)))
            elif o.kind == "port":
                out.append((o.port if o.port is not None else self.uplink_port, o.data))
            else:
                out.append((self.uplink_port, o.data))
        return out
