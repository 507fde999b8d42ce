"""PTF-style packet testing on two targets: the software pipeline and BMv2 + hypervisor.

A test is written once against `Target`:

    target.send("vm", frame)            # or "uplink"; from the VM, optionally with
                                        #   vnet=VnetHdr(...) (partial checksum, GSO)
    target.expect("uplink", frame)      # the next packet out of that port, byte for byte
    target.expect_nothing("vm")
    target.drops                        # drops by reason (both sides)

`SoftwareTarget` runs every stage in the hypervisor pipeline (the reference).
`ModelTarget` runs the split in Python: the NIC's stages in a Python model of the
NIC (p4gen.crossing.dispatch.NicModel) and the rest in the hypervisor, every
crossing as real p4gen_t frames through the same dispatcher as `p4gen up`.
`Bmv2Target` runs the placed program for real: `simple_switch_grpc` with the
build's P4 on veth pairs the target creates (uplink and host port), and the
hypervisor part in-process, exchanging packets with the NIC over the host
port with the p4gen punt header, exactly as a deployment would.
"""

from __future__ import annotations

import collections
import functools
import itertools
import os
import select
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import networkx as nx
from google.protobuf import text_format
from p4.config.v1 import p4info_pb2

from p4gen.crossing import DROP_REASONS, drop_sites
from p4gen.crossing.dispatch import NIC_PORT, SLOW_PATH, VM, Delivery, HostDispatcher, NicModel
from p4gen.frontend import program as P
from p4gen.frontend.program import Program
from p4gen.place import HYP, NIC, Placement
from p4gen.place.flowlayout import FLOW_TABLE
from p4gen.place.profiles import Ports
from p4gen.runtime.flowcache import DEFAULT_SIZE
from p4gen.runtime.pipeline import HypervisorPipeline, Output
from p4gen.runtime.virtio import VnetHdr


class ExpectationError(AssertionError):
    pass


class TargetDown(RuntimeError):
    """The target itself failed (the switch process died): no further packet means anything."""


class Target:
    """What a packet test needs from a target."""

    def __init__(self, uplink_port: int = 0) -> None:
        self.queues: dict[str, collections.deque[bytes]] = collections.defaultdict(collections.deque)
        self.uplink_port = uplink_port  # forward() to this NIC port is the wire

    def send(self, port: str, frame: bytes, vnet: VnetHdr | None = None) -> None:  # pragma: no cover
        """A frame into the system at `port` ("vm" or "uplink"); from the VM with the virtio-net
        header a Linux guest would give it (p4gen.runtime.virtio)."""
        raise NotImplementedError

    def received(self, port: str) -> list[bytes]:
        q = self.queues[port]
        out = list(q)
        q.clear()
        return out

    def expect(self, port: str, frame: bytes) -> None:
        q = self.queues[port]
        if not q:
            raise ExpectationError(f"expected a packet on {port}, got none")
        got = q.popleft()
        if got != frame:
            raise ExpectationError(f"packet on {port} differs:\n  expected {frame.hex()}\n  got      {got.hex()}")

    def counter(self, nf: str, name: str, index: int = 0) -> int:  # pragma: no cover - interface
        """Packets counted so far by the DSL counter `name` of `nf` (cell `index`), wherever it ran."""
        raise NotImplementedError

    def entry_packets(self, table: str) -> dict[str, int]:  # pragma: no cover - interface
        """Packets each entry of the DSL table `table` counted (its direct counter), wherever the
        table ran and whichever way the packet went (a NIC flow entry counts for the entries it
        stands for); keyed by `entry_label`."""
        raise NotImplementedError

    def expect_nothing(self, port: str) -> None:
        if self.queues[port]:
            raise ExpectationError(f"expected nothing on {port}, got {len(self.queues[port])} packet(s)")

    def close(self) -> None:
        pass

    def _deliver(self, outputs: list[Output]) -> list[Output]:
        """Queue what leaves the system; return what goes to the NIC."""
        rest = []
        for o in outputs:
            if o.kind in ("uplink", "vm"):
                self.queues[o.kind].append(o.data)
            elif o.kind == "port":
                self.queues["uplink" if o.port == self.uplink_port else f"port{o.port}"].append(o.data)
            elif o.kind == "slow_path":
                self.queues["slow_path"].append(o.data)
            else:
                rest.append(o)
        return rest


class SoftwareTarget(Target):
    def __init__(self, prog: Program, graph: nx.DiGraph, uplink_port: int = 0, flow_cache: int = DEFAULT_SIZE):
        """`flow_cache`: flows the hypervisor's fast path keeps (0: every packet the full path)."""
        super().__init__(uplink_port)
        self.prog = prog
        self.hv = HypervisorPipeline(prog, graph, flow_cache=flow_cache, ports=Ports(uplink=uplink_port))

    @property
    def drops(self) -> collections.Counter:
        return collections.Counter(self.hv.drops)  # a snapshot, as BMv2's is

    def send(self, port: str, frame: bytes, vnet: VnetHdr | None = None) -> None:
        if port == "vm":
            self._deliver(self.hv.run_direction("vm_egress", frame, vnet)[1])
        else:
            self._deliver(self.hv.run_direction("vm_ingress", frame)[1])

    def counter(self, nf: str, name: str, index: int = 0) -> int:
        return self.hv.counters[(nf, name)][index][0]

    def entry_packets(self, table: str) -> dict[str, int]:
        _counted(self.prog, table)
        return {entry_label(e.keys, e.priority): e.packets for e in self.hv.tables[table].entries}


def _counted(prog: Program, table: str) -> None:
    if not any(t.name == table and t.counters for nf in prog.nfs.values() for t in nf.tables.values()):
        raise ValueError(f"table {table} declares no counters (counters = true): its entries count nothing")


def entry_label(keys, priority: int | None) -> str:
    """An entry named by its match (and priority), the same on every target."""
    return "(" + ", ".join(f"{k.kind}:{k.value}/{k.mask}/{k.prefix_len}/{k.high}" for k in keys) + \
        f") priority {priority or 0}"


class ModelTarget(Target):
    """The split without BMv2: NicModel (the NIC's stages) + HostDispatcher (the rest), over
    p4gen_t frames; a frame the NIC sends out of a port other than the host port leaves."""

    def __init__(self, prog: Program, graph: nx.DiGraph, placement: Placement):
        nic = placement.problem.nic
        if nic is None:
            raise ValueError("ModelTarget needs a placement with a NIC")
        super().__init__(nic.ports.uplink)
        self.prog, self.placement = prog, placement
        self.hv = HypervisorPipeline(prog, graph, placement.assignment, HYP, ports=nic.ports)
        self.nic_hv = HypervisorPipeline(prog, graph, placement.assignment, NIC, ports=nic.ports)
        self.host_port = nic.ports.host
        self.dispatch = HostDispatcher(self.hv, nic.ports.uplink)
        self.nic = NicModel(self.nic_hv, nic.ports.host, nic.ports.uplink)

    @property
    def drops(self) -> collections.Counter:
        return collections.Counter(self.hv.drops) + collections.Counter(self.nic_hv.drops)

    def counter(self, nf: str, name: str, index: int = 0) -> int:
        return self.hv.counters[(nf, name)][index][0] + self.nic_hv.counters[(nf, name)][index][0]

    def entry_packets(self, table: str) -> dict[str, int]:
        _counted(self.prog, table)
        nic = {entry_label(e.keys, e.priority): e.packets for e in self.nic_hv.tables[table].entries}
        return {entry_label(e.keys, e.priority): e.packets + nic[entry_label(e.keys, e.priority)]
                for e in self.hv.tables[table].entries}

    def send(self, port: str, frame: bytes, vnet: VnetHdr | None = None) -> None:
        pipeline = _pipeline_for(self.prog, port)
        if self.placement.problem.pipelines[pipeline][0] == HYP:
            pending = self._take(self.dispatch.from_vm(frame, vnet))
        else:
            pending = [(self.uplink_port, frame)]
        for _ in range(10_000):  # a frame crosses a bounded number of times; never loop forever
            if not pending:
                return
            port_in, data = pending.pop(0)
            for port_out, out in self.nic.receive(port_in, data):
                if port_out == self.host_port:
                    pending += self._take(self.dispatch.from_nic(out))
                else:
                    self.queues["uplink" if port_out == self.uplink_port else f"port{port_out}"].append(out)
        raise RuntimeError("a packet kept crossing between the NIC model and the hypervisor")

    def _take(self, deliveries: list[Delivery]) -> list[tuple[int, bytes]]:
        """Queue what reaches the VM or the slow path; return the frames for the NIC's host port."""
        to_nic = []
        for d in deliveries:
            if d.to == NIC_PORT:
                to_nic.append((self.host_port, d.data))
            else:
                self.queues[d.to].append(d.data)
        return to_nic


def _pipeline_for(prog: Program, port: str) -> str:
    direction = "vm_egress" if port == "vm" else "vm_ingress"
    for name, pl in prog.pipelines.items():
        if pl.direction == direction:
            return name
    raise ValueError(f"the program has no {direction} pipeline")


_TARGETS = itertools.count()


class Bmv2Target(Target):
    """BMv2 on veths (created here, removed by close()) plus the hypervisor part in-process."""

    QUIET = 0.25  # seconds without a packet before a send is considered complete

    def __init__(self, prog: Program, graph: nx.DiGraph, placement: Placement, build_dir: Path, bmv2: str,
                 offload: bool = True):
        """`offload`: run the per-flow offload manager when the build has a flow table (the NIC
        profile's [offload]); `self.offload` is the manager (None without one)."""
        from p4gen.control.links import packet_socket, veth
        from p4gen.control.push import push
        from p4gen.control.up import wait_for_switch
        from p4gen.frontend.ports import forwarded_ports

        super().__init__(placement.problem.nic.ports.uplink if placement.problem.nic else 0)
        if os.geteuid() != 0 or shutil.which("ip") is None:
            raise RuntimeError("Bmv2Target needs root and iproute2 to create veth pairs")
        self.prog, self.placement = prog, placement
        nic = placement.problem.nic
        assert nic is not None
        self.hv = HypervisorPipeline(prog, graph, placement.assignment, HYP, ports=nic.ports)
        self.dispatch = HostDispatcher(self.hv, nic.ports.uplink)
        tag = f"{os.getpid() % 10000:04d}{next(_TARGETS) % 1000:03d}"  # unique per process; names ≤ 15 chars
        self.links = {"uplink": (f"p4u{tag}", f"p4U{tag}"), "host": (f"p4h{tag}", f"p4H{tag}")}
        # Every other port the program forwards to gets a veth too (queue "portN", as in software).
        self.ports = {nic.ports.uplink: "uplink", nic.ports.host: "host"}
        for port in forwarded_ports(prog):
            if port not in self.ports:
                self.ports[port] = f"port{port}"
                self.links[f"port{port}"] = (f"p4p{port}x{tag}", f"p4P{port}x{tag}")
        for nic_side, peer in self.links.values():
            veth(nic_side, peer, 9000)  # room for the punt header on full-size segments, and VLAN tags
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.addr = f"127.0.0.1:{s.getsockname()[1]}"
        self.logdir = Path(tempfile.mkdtemp(prefix="p4gen-bmv2-"))
        self.build_dir = build_dir
        self._argv = [bmv2, *(a for port, name in self.ports.items() for a in ("-i", f"{port}@{self.links[name][0]}")),
                      "--no-p4", "--", "--grpc-server-addr", self.addr]
        self.switch = subprocess.Popen(self._argv, stdout=open(self.logdir / "switch.out", "w"),
                                       stderr=subprocess.STDOUT)
        try:
            wait_for_switch(self.switch, self.addr, self.logdir / "switch.out")
            push(build_dir, self.addr)
            info = text_format.Parse((build_dir / "program.p4info.txtpb").read_text(), p4info_pb2.P4Info())
            self.counter_ids = {c.preamble.name: c.preamble.id for c in info.counters}
            self.offload = None
            if offload and nic.offload is not None and any(t.preamble.name == FLOW_TABLE for t in info.tables):
                from p4gen.control.offload import OffloadManager

                self.offload = OffloadManager(prog, graph, placement, self.hv, info, self.addr)
                self.offload.connect()
                self.dispatch.offload = self.offload
            self.sock = {}
            for name, (_nic_side, peer) in self.links.items():
                self.sock[name] = packet_socket(peer, blocking=False)
        except Exception:
            self.close()
            raise

    @property
    def drops(self) -> collections.Counter:
        """Drops by reason: the hypervisor's, plus the NIC's (p4gen.drops, read over P4Runtime): its
        own reasons, and the program's drop()s by where they ran (as the hypervisor names them)."""
        total = collections.Counter(self.hv.drops)
        cells = self._nic_counter("p4gen.drops")
        for i, reason in enumerate(DROP_REASONS + drop_sites(self.prog)):
            if cells.get(i, (0, 0))[0]:
                total[reason] += cells[i][0]
        return total

    def counter(self, nf: str, name: str, index: int = 0) -> int:
        hv = self.hv.counters[(nf, name)][index][0]
        return hv + self._nic_counter(f"{nf}.{name}", index).get(index, (0, 0))[0]

    def entry_packets(self, table: str) -> dict[str, int]:
        """The hypervisor's counts (its own tables, and learnt packets it ran whole), the NIC's
        direct counters (tables placed there), and what flow entries counted for the entry."""
        from p4gen.backend.entries import table_entry
        from p4gen.control.push import P4RuntimeClient, _key

        _counted(self.prog, table)
        entries = self.hv.tables[table].entries
        out = {entry_label(e.keys, e.priority): e.packets for e in entries}
        if self.offload is not None:
            for e in entries:
                out[entry_label(e.keys, e.priority)] += self.offload.merged_entry_packets(table, e)
        m = self.model
        if table in m.tables:
            want = {}
            for e in entries:
                te = table_entry(m, P.TableEntry(m.tables[table].table.nf, table, e.keys, e.action,
                                                 list(e.args.values()), e.priority, None))
                want[_key(te)] = entry_label(e.keys, e.priority)
            client = P4RuntimeClient(self.addr)
            try:
                for te in client.read_table_entries(m.tables[table].id, counters=True):
                    label = want.get(_key(te))
                    if label is not None:
                        out[label] += te.counter_data.packet_count
            finally:
                client.channel.close()
        return out

    @functools.cached_property
    def model(self):
        """What the NIC program holds (p4gen.backend.model): for encoding entries."""
        from p4gen.backend.model import build_model

        return build_model(self.prog, self.hv.g, self.placement)

    def _nic_counter(self, name: str, index: int | None = None) -> dict[int, tuple[int, int]]:
        from p4gen.control.push import P4RuntimeClient

        counter_id = self.counter_ids.get(name)
        if counter_id is None:
            return {}  # the counter is not in the NIC's program: it only counts in the hypervisor
        client = P4RuntimeClient(self.addr)
        try:
            return client.read_counter(counter_id, index)
        finally:
            client.channel.close()

    def send(self, port: str, frame: bytes, vnet: VnetHdr | None = None) -> None:
        self._check_alive()
        pipeline = _pipeline_for(self.prog, port)
        start = self.placement.problem.pipelines[pipeline][0]
        if start == HYP:
            self._take(self.dispatch.from_vm(frame, vnet))
        else:
            self.sock["uplink"].send(frame)
        self._pump()
        self._check_alive()

    def _check_alive(self) -> None:
        if self.switch.poll() is not None:
            out = (self.logdir / "switch.out").read_text(errors="replace")[-2000:]
            self.keep_logs = True
            raise TargetDown(f"simple_switch_grpc exited with status {self.switch.returncode} "
                             f"(logs kept in {self.logdir}):\n{out}")

    PACE = 0.002  # seconds between packets handed to BMv2: its queues drop bursts of ~40 and more

    def _take(self, deliveries: list[Delivery]) -> None:
        """The dispatcher's decisions: frames to the NIC's host port (paced), the rest queued."""
        for d in deliveries:
            if d.to == NIC_PORT:
                self.sock["host"].send(d.data)
                self._collect_wire(self.PACE)
            else:
                assert d.to in (VM, SLOW_PATH)
                self.queues[d.to].append(d.data)

    def _collect_wire(self, wait: float) -> None:
        """Take what the NIC sent out of its ports while pacing (the host port is serviced by _pump)."""
        end = time.time() + wait
        wire = {sock: name for name, sock in self.sock.items() if name != "host"}
        while True:
            left = end - time.time()
            ready, _, _ = select.select(list(wire), [], [], max(left, 0))
            if not ready:
                if left <= 0:
                    return
                continue
            for sock in ready:
                self.queues[wire[sock]].append(sock.recv())

    def _pump(self) -> None:
        """Move packets until the system is quiet: NIC → host port → hypervisor → NIC …"""
        quiet_until = time.time() + self.QUIET * 2
        while time.time() < quiet_until:
            ready, _, _ = select.select(list(self.sock.values()), [], [], 0.02)
            for s in ready:
                data = s.recv()
                quiet_until = time.time() + self.QUIET
                if s is not self.sock["host"]:
                    self.queues[next(n for n, sock in self.sock.items() if sock is s)].append(data)
                    continue
                self._take(self.dispatch.from_nic(data))
                if self.offload is not None:
                    self.offload.flush()  # what this punt taught goes in before the next packet

    def send_many(self, port: str, frames: list[bytes]) -> None:
        """Frames from the wire ("uplink") or the VM ("vm"), paced as BMv2 needs, then one pump."""
        self._check_alive()
        for f in frames:
            if port == "uplink":
                self.sock["uplink"].send(f)
                self._collect_host(self.PACE)
            else:  # from the VM: the hypervisor first (paced towards the NIC), the host port served
                self._take(self.dispatch.from_vm(f))
                self._collect_host(0)
        self._pump()
        self._check_alive()

    def _collect_host(self, wait: float) -> None:
        """While pacing frames in: serve the host port too, so nothing waits in the veth."""
        end = time.time() + wait
        while (left := end - time.time()) > 0:
            ready, _, _ = select.select(list(self.sock.values()), [], [], left)
            for s in ready:
                data = s.recv()
                if s is self.sock["host"]:
                    self._take(self.dispatch.from_nic(data))
                    if self.offload is not None:
                        self.offload.flush()
                else:
                    self.queues[next(n for n, sock in self.sock.items() if sock is s)].append(data)

    def change_entry(self, e, delete: bool = False) -> None:
        """A control-plane change mid-stream: insert (or delete) a table entry wherever its table
        runs (the NIC over P4Runtime, and the hypervisor's copy), and revalidate the offloaded
        flows that looked the table up."""
        from p4.v1 import p4runtime_pb2

        from p4gen.backend.entries import table_entry
        from p4gen.control.push import P4RuntimeClient

        if self.offload is not None:  # first: no flow entry may outlive the decision it recorded
            self.offload.table_changed(e.table)
        te = table_entry(self.model, e)
        if te is not None:
            u = p4runtime_pb2.Update(type=p4runtime_pb2.Update.DELETE if delete else p4runtime_pb2.Update.INSERT)
            u.entity.table_entry.CopyFrom(te)
            if self.offload is not None:
                self.offload._write([u])
            else:
                with P4RuntimeClient(self.addr) as client:
                    client.write([u])
        if delete:
            self.hv.delete_entry(e)
        else:
            self.hv.insert_entry(e)

    def restart_switch(self) -> None:
        """The NIC restarts (its tables, counters and flow entries gone): start it again and
        reconcile with `push`; the offload manager forgets its entries and learns flows again."""
        from p4gen.control.push import push
        from p4gen.control.up import stop_switch, wait_for_switch

        if self.offload is not None:
            self.offload.close()
        stop_switch(self.switch)
        self.switch = subprocess.Popen(self._argv, stdout=open(self.logdir / "switch.out", "a"),
                                       stderr=subprocess.STDOUT)
        wait_for_switch(self.switch, self.addr, self.logdir / "switch.out")
        push(self.build_dir, self.addr)
        if self.offload is not None:
            self.offload.forget_nic()
            self.offload.connect()

    def poll_offload(self) -> None:
        """The offload manager's periodic work (idle flows out, hotter flows in), then a pump."""
        if self.offload is not None:
            self.offload.poll()
        self._pump()

    def close(self) -> None:
        if getattr(self, "offload", None) is not None:
            self.offload.close()
        for s in getattr(self, "sock", {}).values():
            s.close()
        from p4gen.control.links import delete_links
        from p4gen.control.up import stop_switch

        stop_switch(getattr(self, "switch", None))
        if hasattr(self, "logdir") and not getattr(self, "keep_logs", False):
            shutil.rmtree(self.logdir, ignore_errors=True)
        delete_links(nic_side for nic_side, _peer in getattr(self, "links", {}).values())
