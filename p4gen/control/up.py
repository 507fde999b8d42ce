"""`p4gen up` / `p4gen down`: a local NIC (simple_switch_grpc) and hypervisor, wired with veths.

    VM side  <-veth->  hypervisor pipeline  <-veth (host port)->  BMv2 NIC  <-veth (uplink)->  wire side

or, for a hypervisor-only build (targets/hypervisor.toml), with no NIC at all:

    VM side  <-veth->  hypervisor pipeline  <-veth (uplink)->  wire side

`up` creates the veth pairs, starts simple_switch_grpc on loopback gRPC (without
per-packet logging unless asked), pushes the build, and runs the hypervisor part
in the foreground over AF_PACKET: frames from the VM go through the hypervisor's
stages and on to the NIC's host port with the punt header; frames the NIC punts
continue in the hypervisor and go to the VM (or back to the NIC). The VM's link
speaks virtio-net (PACKET_VNET_HDR): partial checksums are completed and GSO
super-packets cut where the program says; towards the VM, with `lro`, segments
are coalesced into GSO packets. Every link is read and written through
memory-mapped rings (p4gen.control.rings): the loop takes a batch of frames from
each receive ring without a system call, runs them, and hands each link's
transmit ring to the kernel with one call per batch; it sleeps in `select` only
when every ring is empty. (`rings=False`, or a kernel that refuses them: one
call per frame.)

Everything it creates is recorded in OUTDIR/up.json; Ctrl-C, SIGTERM, the
switch dying, or `p4gen down OUTDIR` removes it. Logs go to OUTDIR
(switch.log, hypervisor.log). The user's ends of the links are `PREFIX-vm`
(or, with a VM spec, the VM's interface inside its namespace) and `PREFIX-wire`
(optionally moved into an existing namespace, e.g. a peer's).
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

from p4gen.control.links import (
    NETNS_DIR,
    LinkError,
    _setns,
    delete_links,
    in_netns,
    netns_add,
    netns_delete,
    packet_socket,
    veth_across,
)
from p4gen.control.push import push
from p4gen.control.rings import RingSocket
from p4gen.control.vmns import VmSpec, configure
from p4gen.crossing.dispatch import NIC_PORT, VM, WIRE, Delivery, HostDispatcher
from p4gen.place import HYP, Placement
from p4gen.runtime.pipeline import HypervisorPipeline

STATE = "up.json"
CONTROLLER_ELECTION = (0, 1)  # the offload manager's P4Runtime election id
BATCH = 64  # frames read from one socket before the others get a turn
SOCKET_BUFFER = 8 << 20  # bytes queued per link before the kernel drops (counted as <link>_queue_full)
RING_SLOTS = 4096  # MTU-sized frames each link's rings hold (a burst; larger frames queue on the socket)


class UpError(LinkError):
    pass


def wait_for_switch(proc: subprocess.Popen, addr: str, log: Path, seconds: float = 20,
                    netns: str | None = None) -> None:
    """Until simple_switch_grpc listens on `addr` in `netns` (or exits, or time runs out)."""
    host, port = addr.rsplit(":", 1)
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise UpError(f"simple_switch_grpc exited ({proc.returncode}); see {log}")
        with in_netns(netns):
            s = socket.socket()
        with s:
            if s.connect_ex((host, int(port))) == 0:
                return
        time.sleep(0.1)
    raise UpError(f"simple_switch_grpc did not open {addr}; see {log}")


def stop_switch(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def down(outdir: Path) -> list[str]:
    """Stop what `up` started and delete its links; what was done, line by line."""
    path = outdir / STATE
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return [f"nothing to do: {path} does not exist"]
    except ValueError as e:
        raise UpError(f"{path} is not p4gen's state file: {e}") from None
    done = []
    for pid in state.get("pids", []):
        try:
            os.kill(pid, signal.SIGTERM)
            done.append(f"stopped process {pid}")
        except ProcessLookupError:
            pass
    for link in state.get("links", []):
        if subprocess.run(["ip", "link", "del", link], capture_output=True, check=False).returncode == 0:
            done.append(f"deleted {link}")
    namespaces = state.get("netns") or []
    for ns in [namespaces] if isinstance(namespaces, str) else namespaces:
        if netns_delete(ns):
            done.append(f"deleted network namespace {ns}")
    path.unlink(missing_ok=True)  # `up` removes it too when it exits on our SIGTERM
    return done


class Up:
    """The NIC (in network namespace `netns` when given) and the hypervisor, wired and running;
    without a NIC in the placement, the hypervisor alone between the VM's link and the wire's.

    With a namespace, the switch, its gRPC server, its ports and the hypervisor's ends
    live in it, so nothing else on the host sees or disturbs them; only the user's two
    ends stay outside: PREFIX-wire (here, or in `wire_netns`) and the VM's (PREFIX-vm
    here, or inside the namespace of `vm`, configured as that VM)."""

    def __init__(self, prog, graph, placement: Placement, outdir: Path, prefix: str, *, bmv2: str | None = None,
                 grpc_addr: str = "127.0.0.1:9559", netns: str | None = None, vm: VmSpec | None = None,
                 wire_netns: str | None = None, lro: bool = False, switch_log: bool = False,
                 kernel_gso: bool = True, flow_cache: bool = True, rings: bool = True, offload: bool = True):
        self.prog, self.placement, self.outdir = prog, placement, outdir
        nic = placement.problem.nic
        if nic is not None and bmv2 is None:
            raise UpError("this build has a NIC part: simple_switch_grpc is needed")
        if os.geteuid() != 0:
            raise UpError("p4gen up creates veth pairs: run it as root")
        if (outdir / STATE).exists():
            raise UpError(f"{outdir / STATE} exists: already up? run p4gen down {outdir} first")
        self.lro = lro
        self.hv = HypervisorPipeline(prog, graph, placement.assignment, HYP,
                                     ports=placement.problem.nic.ports if placement.problem.nic else None,
                                     **({} if flow_cache else {"flow_cache": 0}))
        # With no NIC the wire is a Linux link: plain TCP super-packets may leave whole, for the
        # kernel's GSO to cut at the MSS the segmentation stage chose (Linux as the NIC).
        kernel_gso = kernel_gso and nic is None
        self.hv.kernel_gso = kernel_gso
        hyp = placement.problem.hyp
        uplink = (nic or hyp).ports.uplink if (nic or hyp) is not None else 0  # forward(uplink): the wire
        self.dispatch = HostDispatcher(self.hv, uplink, nic=nic is not None)
        self.names = {"uplink": (f"{prefix}-up", f"{prefix}-wire"), "vm": (f"{prefix}-vmh", f"{prefix}-vm")}
        if nic is not None:
            self.names["host"] = (f"{prefix}-host", f"{prefix}-hv")
        self.netns = netns
        self.switch: subprocess.Popen | None = None
        # "netns": the namespaces `down` deletes (ours: the NIC's unless it existed, the VM's);
        # "nic_netns": where the switch and its gRPC server run, for `push` and `shell`.
        self.state: dict = {"links": [], "pids": [os.getpid()], "grpc_addr": grpc_addr if nic else None,
                            "netns": [], "nic_netns": netns if nic else None}
        self.log = open(outdir / "hypervisor.log", "a")
        self.errors = 0
        self.offload = None  # the per-flow offload manager, with a NIC profile's [offload]
        self._home_netns: int | None = None
        self._logged = 0  # offload events written to the log so far
        try:
            if netns:
                netns_add(netns)
                self.state["netns"].append(netns)  # ours to delete from now on (not one that was there)
                self.save()
            if vm is not None:
                netns_add(vm.netns)
                self.state["netns"].append(vm.netns)
                self.save()
            # The VM's link: its MTU (the VM hands over super-packets as GSO, with their
            # metadata); without a VM spec the user's end takes raw 64 KiB frames too. The
            # host port carries segments plus the punt header; the wire, plain 1500-byte IP.
            mtus = {"vm": vm.mtu if vm else 65535, "host": 9000, "uplink": 1500}
            user_ns = {"uplink": wire_netns, "vm": None}
            for role, (a, b) in self.names.items():
                b_ns = user_ns[role] if role in user_ns else netns
                veth_across(a, b, netns, b_ns, mtus[role])
                # delete from our end (in netns) when there is one, else from the user's
                self.state["links"].append(b if netns and role in user_ns and b_ns is None else a)
                self.save()
            if vm is not None:
                configure(vm, self.names["vm"][1])
            if nic is not None:
                self._start_switch(bmv2, grpc_addr, nic, switch_log)
            self.sock = {}
            ends = {"vm": (self.names["vm"][0], True)}
            if nic is not None:
                ends["host"] = (self.names["host"][1], False)
            else:
                ends["wire"] = (self.names["uplink"][0], kernel_gso)
            with in_netns(netns):
                for role, (ifname, vnet) in ends.items():
                    self.sock[role] = self._open(role, ifname, vnet, rings)
            if nic is not None and nic.offload is not None and offload:
                self._start_offload(prog, graph, placement, grpc_addr)
        except Exception:
            self.close()
            raise

    def _start_offload(self, prog, graph, placement: Placement, grpc_addr: str) -> None:
        """The per-flow offload manager (p4gen.control.offload), when the build has a flow table.
        Its gRPC client must reach the switch in the NIC's namespace, and gRPC's threads stay
        where they start: from here on this thread (and every thread it starts) lives there.
        Our sockets are open already; `close` comes back before it deletes anything."""
        from google.protobuf import text_format
        from p4.config.v1 import p4info_pb2

        from p4gen.control.offload import OffloadManager
        from p4gen.place.flowlayout import FLOW_TABLE

        info = text_format.Parse((self.outdir / "program.p4info.txtpb").read_text(), p4info_pb2.P4Info())
        if not any(t.preamble.name == FLOW_TABLE for t in info.tables):
            return
        if self.netns:
            self._home_netns = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
            fd = os.open(NETNS_DIR / self.netns, os.O_RDONLY)
            try:
                _setns(fd)
            finally:
                os.close(fd)
        self.offload = OffloadManager(prog, graph, placement, self.hv, info, grpc_addr, election_id=CONTROLLER_ELECTION)
        self.offload.connect()
        # `p4gen push` / `shell` on OUTDIR meanwhile take the next election id: primary while they
        # run, the manager again after (its writes in between are refused and tried again)
        self.state["controller_election_id"] = list(CONTROLLER_ELECTION)
        self.save()
        self.dispatch.offload = self.offload
        self.note(f"per-flow offload: a flow table of {self.offload.size} entries; "
                  f"'p4gen flows {self.outdir}' lists the flows")

    def _open(self, role: str, ifname: str, vnet: bool, rings: bool):
        """A link's socket: with rings, unless the kernel refuses them (then one call per frame)."""
        if rings:
            try:
                return RingSocket(ifname, vnet=vnet, slots=RING_SLOTS, buffer=SOCKET_BUFFER)
            except OSError as e:
                self.note(f"{role}: no packet rings ({e}): one system call per frame")
        return packet_socket(ifname, blocking=False, vnet=vnet, buffer=SOCKET_BUFFER)

    def _start_switch(self, bmv2: str, grpc_addr: str, nic, switch_log: bool) -> None:
        netns = self.netns
        logging = ["--log-file", str(self.outdir / "bmv2"), "--log-flush"] if switch_log else []
        self.switch = subprocess.Popen(
            (["ip", "netns", "exec", netns] if netns else []) +
            [bmv2, "-i", f"{nic.ports.uplink}@{self.names['uplink'][0]}",
             "-i", f"{nic.ports.host}@{self.names['host'][0]}", "--no-p4", *logging,
             "--", "--grpc-server-addr", grpc_addr],
            stdout=open(self.outdir / "switch.log", "w"), stderr=subprocess.STDOUT)
        self.state["pids"].append(self.switch.pid)
        self.save()
        wait_for_switch(self.switch, grpc_addr, self.outdir / "switch.log", netns=netns)
        self.note(self._push(grpc_addr))

    def _push(self, grpc_addr: str) -> str:
        if self.netns is None:
            r = push(self.outdir, grpc_addr)
            return f"pushed: {r.inserted} entries"
        # gRPC's threads would stay in whichever namespace they started in: push from a
        # process that runs wholly inside ours.
        proc = subprocess.run(["ip", "netns", "exec", self.netns, sys.executable, "-m", "p4gen", "push",
                               str(self.outdir), "--grpc-addr", grpc_addr], capture_output=True, text=True,
                              check=False, env={**os.environ, "P4GEN_NETNS": self.netns})
        if proc.returncode != 0:
            raise UpError(f"push into {self.netns} failed:\n{proc.stderr.strip() or proc.stdout.strip()}")
        return proc.stdout.strip()

    def save(self) -> None:
        (self.outdir / STATE).write_text(json.dumps(self.state, indent=2))

    def note(self, text: str) -> None:
        self.log.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        self.log.flush()

    # ------------------------------------------------------------ forwarding
    def _take(self, deliveries: list[Delivery], to_vm: list[Delivery]) -> None:
        """The dispatcher's decisions (p4gen.crossing.dispatch), carried out on the sockets;
        the VM's frames wait for the end of the batch (coalescing)."""
        for d in deliveries:
            if d.to == NIC_PORT:
                self._send("host", d.data)
            elif d.to == WIRE:
                self._send("wire", d.data, d.vnet)
            elif d.to == VM:
                to_vm.append(d)
            else:  # the slow path: to_hypervisor() packets, for the operator to see
                self.note(f"slow path (code {d.code}): {len(d.data)} bytes")

    def _send(self, role: str, data: bytes, vnet=None) -> None:
        sock = self.sock[role]
        try:
            if vnet is None:
                sock.send(data)
            else:
                sock.send(data, vnet)
        except BlockingIOError:
            self.dispatch.drops[f"{role}_busy"] += 1  # the link's queue is full: dropped, as a NIC would
        except OSError as e:
            self.dispatch.drops[f"{role}_{errno.errorcode.get(e.errno, 'error').lower()}"] += 1

    def _receive(self, role: str, sock, to_vm: list[Delivery]) -> int:
        """Up to BATCH frames from one socket, through the dispatcher; how many were read."""
        batch = sock.recv_batch(BATCH)
        for frame, vnet in batch:
            try:
                if role == "vm":
                    deliveries = self.dispatch.from_vm(frame, vnet)
                elif role == "host":
                    deliveries = self.dispatch.from_nic(frame)
                else:
                    deliveries = self.dispatch.from_wire(frame)
            except Exception:  # a bug of ours must not take the host's traffic down: count, log once
                self.dispatch.drops["internal_error"] += 1
                self.errors += 1
                if self.errors <= 3:
                    self.note(f"internal error on a {len(frame)}-byte frame from {role}:\n{traceback.format_exc()}")
                continue
            self._take(deliveries, to_vm)
        return len(batch)

    def serve(self, stop_after: float | None = None) -> None:
        """Forward until a signal (or `stop_after` seconds, for tests); raises UpError when the
        switch dies."""
        end = time.time() + stop_after if stop_after else None
        socks = list(self.sock.items())
        next_poll = time.time() + 1
        while end is None or time.time() < end:
            busy = 0
            to_vm: list[Delivery] = []
            for role, s in socks:
                busy += self._receive(role, s, to_vm)
            if self.offload is not None:
                self.offload.flush()  # what this batch taught, in one write
            if time.time() >= next_poll:
                next_poll = time.time() + 1
                self._poll_flows()
            if to_vm:
                for data, vnet in self.dispatch.for_vm(to_vm, self.lro):
                    self._send("vm", data, vnet)
            for _, s in socks:  # the batch's frames, one call per link
                s.flush()
            if busy:
                continue
            if self.switch is not None and self.switch.poll() is not None:
                raise UpError(f"simple_switch_grpc exited ({self.switch.returncode}); see "
                              f"{self.outdir / 'switch.log'}")
            select.select([s for _, s in socks], [], [], 0.2)

    def _poll_flows(self) -> None:
        """Once a second: idle flows out, hotter flows in, every offload and eviction in the log,
        and OUTDIR/flows.json for `p4gen flows`."""
        from p4gen.control.flows import write_snapshot

        m = self.offload
        if m is not None:
            try:
                m.poll()
            except Exception:  # the switch went away, or a bug of ours: forwarding goes on
                self.note(f"offload: poll failed:\n{traceback.format_exc()}")
            for _t, what, text in m.events[self._logged:]:
                self.note(f"offload: {what} {text}")
            self._logged = len(m.events)
        write_snapshot(m, self.outdir, self.hv)

    def link_drops(self) -> None:
        """Add what each link's socket dropped since the last call to the drop counts, by reason
        (`<link>_queue_full`: we were too slow)."""
        for role, s in getattr(self, "sock", {}).items():
            for why, n in s.drops().items():
                if n:
                    self.dispatch.drops[f"{role}_{why}"] += n

    def close(self) -> None:
        if getattr(self, "offload", None) is not None:
            try:
                self._poll_flows()  # the last counts, merged and written
            except Exception as e:  # the switch may be gone already
                self.note(f"offload: final poll failed: {e}")
            self.offload.close()
        if getattr(self, "_home_netns", None) is not None:
            _setns(self._home_netns)  # back home before deleting links and namespaces
            os.close(self._home_netns)
            self._home_netns = None
        if getattr(self, "sock", None):
            self.link_drops()
        for s in getattr(self, "sock", {}).values():
            s.close()
        stop_switch(self.switch)
        self.state["pids"] = [p for p in self.state["pids"] if p != os.getpid()]
        delete_links(self.state["links"])
        for ns in self.state["netns"]:
            netns_delete(ns)
        (self.outdir / STATE).unlink(missing_ok=True)
        cache = self.hv.cache.summary() if self.hv.cache is not None else "off"
        self.note(f"down; drops: {dict(self.hv.drops)}; flow cache: {cache}")
        self.log.close()
