"""Where a packet goes next, on the hypervisor's side of the host port: one dispatcher.

`p4gen up` and `p4gen.testing` both use `HostDispatcher`: it takes frames from the
VM and from the NIC's host port, runs the hypervisor's stages, and says where
each resulting frame goes: to the VM, to the NIC (already wrapped in p4gen_t;
finished packets go out of the NIC with RESUME_DONE and the port), or to the
slow path (to_hypervisor()). `NicModel` is the NIC's side of the same protocol
in Python (the placed program's NIC stages run by the hypervisor's generator),
for testing the split without BMv2: it mirrors what the emitted P4 does with
the punt header.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from p4gen.crossing.protocol import BadPunt, Crossing, Reason, crossing

if TYPE_CHECKING:
    from p4gen.runtime.pipeline import HypervisorPipeline, Output

VM, NIC_PORT, SLOW_PATH = "vm", "nic", "slow_path"


@dataclass(frozen=True)
class Delivery:
    to: str  # VM | NIC_PORT (a wrapped frame for the host port) | SLOW_PATH
    data: bytes
    code: int = 0  # SLOW_PATH: to_hypervisor()'s argument


class HostDispatcher:
    """The hypervisor side of the host port for one placed program."""

    def __init__(self, hv: HypervisorPipeline, uplink_port: int, cross: Crossing | None = None):
        self.hv = hv
        self.prog = hv.prog
        self.cross = cross or crossing(hv.prog)
        self.uplink_port = uplink_port
        self.drops: Counter[str] = hv.drops  # one tally with the pipeline's own

    def from_vm(self, frame: bytes) -> list[Delivery]:
        name, outputs = self.hv.run_direction("vm_egress", frame)
        return self.route(name, outputs) if name is not None else []

    def from_nic(self, frame: bytes) -> list[Delivery]:
        try:
            p = self.cross.unwrap(frame)
        except BadPunt as e:
            self.drops[e.reason] += 1
            return []
        if p.reason == Reason.TO_HYPERVISOR:
            return [Delivery(SLOW_PATH, p.data, p.code)]
        if p.resume is None:  # the pipeline finished on the NIC: deliver where it ends
            if self.prog.pipelines[p.pipeline].direction == "vm_ingress":
                return [Delivery(VM, p.data)]
            return [self._send(p.pipeline, p.data, self.uplink_port)]
        return self.route(p.pipeline, self.hv.run(p.pipeline, p.data, resume=p.resume, meta=p.meta, port=p.port,
                                                  l4_dirty=p.l4_dirty))

    def route(self, pipeline: str, outputs: list[Output]) -> list[Delivery]:
        out = []
        for o in outputs:
            if o.kind == "to_nic":
                out.append(Delivery(NIC_PORT, self.cross.wrap(pipeline, o.resume, o.data, o.meta, o.port,
                                                              l4_dirty=o.l4_dirty)))
            elif o.kind == "vm":
                out.append(Delivery(VM, o.data))
            elif o.kind == "slow_path":
                out.append(Delivery(SLOW_PATH, o.data, o.code or 0))
            elif o.kind == "port":
                out.append(self._send(pipeline, o.data, o.port))
            else:  # "uplink": the wire is reached through the NIC
                out.append(self._send(pipeline, o.data, self.uplink_port))
        return out

    def _send(self, pipeline: str, data: bytes, port: int | None) -> Delivery:
        return Delivery(NIC_PORT, self.cross.wrap(pipeline, None, data, port=port))


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
