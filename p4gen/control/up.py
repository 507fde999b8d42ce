"""`p4gen up` / `p4gen down`: a local NIC (simple_switch_grpc) and hypervisor, wired with veths.

    VM side  <-veth->  hypervisor pipeline  <-veth (host port)->  BMv2 NIC  <-veth (uplink)->  wire side

`up` creates the veth pairs, starts simple_switch_grpc on loopback gRPC, pushes
the build, and runs the hypervisor part in the foreground over AF_PACKET:
frames from the VM go through the hypervisor's stages and on to the NIC's host
port with the punt header; frames the NIC punts continue in the hypervisor and
go to the VM (or back to the NIC). Everything it creates is recorded in
OUTDIR/up.json; Ctrl-C, SIGTERM or `p4gen down OUTDIR` removes it. Logs go to
OUTDIR (switch.log, hypervisor.log). The test side of each veth pair (`*-vm`,
`*-wire`) is for the user: send into `p4g-vm` as the VM, watch `p4g-wire`.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from p4gen.control.links import (
    LinkError,
    delete_links,
    in_netns,
    netns_add,
    netns_delete,
    packet_socket,
    veth_across,
)
from p4gen.control.push import push
from p4gen.crossing.dispatch import NIC_PORT, VM, HostDispatcher
from p4gen.place import HYP, Placement
from p4gen.runtime.pipeline import HypervisorPipeline

STATE = "up.json"


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
    if state.get("netns") and netns_delete(state["netns"]):
        done.append(f"deleted network namespace {state['netns']}")
    path.unlink(missing_ok=True)  # `up` removes it too when it exits on our SIGTERM
    return done


class Up:
    """The NIC (in network namespace `netns` when given) and the hypervisor, wired and running.

    With a namespace, the switch, its gRPC server, its ports and the hypervisor's ends
    live in it, so nothing else on the host sees or disturbs them; only the user's two
    ends (PREFIX-vm, PREFIX-wire) are in the current namespace."""

    def __init__(self, prog, graph, placement: Placement, outdir: Path, bmv2: str, grpc_addr: str, prefix: str,
                 netns: str | None = None):
        self.prog, self.placement, self.outdir = prog, placement, outdir
        nic = placement.problem.nic
        if nic is None:
            raise UpError("p4gen up needs a NIC placement (--target targets/bmv2-smartnic.toml)")
        if os.geteuid() != 0:
            raise UpError("p4gen up creates veth pairs: run it as root")
        if (outdir / STATE).exists():
            raise UpError(f"{outdir / STATE} exists: already up? run p4gen down {outdir} first")
        self.hv = HypervisorPipeline(prog, graph, placement.assignment, HYP)
        self.dispatch = HostDispatcher(self.hv, nic.ports.uplink)
        self.names = {"uplink": (f"{prefix}-up", f"{prefix}-wire"), "host": (f"{prefix}-host", f"{prefix}-hv"),
                      "vm": (f"{prefix}-vmh", f"{prefix}-vm")}
        self.netns = netns
        self.state = {"links": [], "pids": [os.getpid()], "grpc_addr": grpc_addr, "netns": None}
        self.log = open(outdir / "hypervisor.log", "a")
        try:
            if netns:
                netns_add(netns)
                self.state["netns"] = netns  # ours to delete from now on (not one that was there)
                self.save()
            # The VM hands the hypervisor TSO super-frames (virtio GSO): its link takes 64 KiB.
            # The host port carries segments plus the punt header; the wire, plain 1500-byte IP.
            mtus = {"vm": 65535, "host": 9000, "uplink": 1500}
            user_side = {"uplink": 1, "vm": 1}  # which end of the pair is the user's (stays out here)
            for role, (a, b) in self.names.items():
                veth_across(a, b, netns, None if role in user_side else netns, mtus[role])
                self.state["links"].append(b if netns and role in user_side else a)
                self.save()
            self.switch = subprocess.Popen(
                (["ip", "netns", "exec", netns] if netns else []) +
                [bmv2, "-i", f"{nic.ports.uplink}@{self.names['uplink'][0]}",
                 "-i", f"{nic.ports.host}@{self.names['host'][0]}", "--no-p4", "--log-file",
                 str(outdir / "bmv2"), "--", "--grpc-server-addr", grpc_addr],
                stdout=open(outdir / "switch.log", "w"), stderr=subprocess.STDOUT)
            self.state["pids"].append(self.switch.pid)
            self.save()
            wait_for_switch(self.switch, grpc_addr, outdir / "switch.log", netns=netns)
            self.note(self._push(grpc_addr))
            self.sock = {}
            with in_netns(netns):
                for role, ifname in (("host", self.names["host"][1]), ("vm", self.names["vm"][0])):
                    self.sock[role] = packet_socket(ifname)
        except Exception:
            self.close()
            raise

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

    def _take(self, deliveries) -> None:
        """The dispatcher's decisions (p4gen.crossing.dispatch), carried out on the sockets."""
        for d in deliveries:
            if d.to == NIC_PORT:
                self.sock["host"].send(d.data)
            elif d.to == VM:
                self.sock["vm"].send(d.data)
            else:  # the slow path: to_hypervisor() packets, for the operator to see
                self.note(f"slow path (code {d.code}): {len(d.data)} bytes")

    def serve(self, stop_after: float | None = None) -> None:
        """Forward until a signal (or `stop_after` seconds, for tests)."""
        end = time.time() + stop_after if stop_after else None
        while end is None or time.time() < end:
            ready, _, _ = select.select(list(self.sock.values()), [], [], 0.2)
            for s in ready:
                data = s.recv()
                if s is self.sock["vm"]:
                    self._take(self.dispatch.from_vm(data))
                else:
                    self._take(self.dispatch.from_nic(data))

    def close(self) -> None:
        for s in getattr(self, "sock", {}).values():
            s.close()
        stop_switch(getattr(self, "switch", None))
        self.state["pids"] = [p for p in self.state["pids"] if p != os.getpid()]
        delete_links(self.state["links"])
        if self.state["netns"]:
            netns_delete(self.state["netns"])
        (self.outdir / STATE).unlink(missing_ok=True)
        self.note(f"down; drops: {dict(self.hv.drops)}")
        self.log.close()
