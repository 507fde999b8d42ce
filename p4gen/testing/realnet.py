"""The reference scenario with real Linux TCP stacks: vm1 ↔ `p4gen up` ↔ a peer with a kernel VXLAN device.

    vm1 (netns, eth0 10.0.1.2, MTU 1500, TSO on)
      └─ veth ─ p4gen up (hypervisor only, or BMv2 + hypervisor) ─ veth ─┐
                                      peer (netns): PREFIX-wire 192.168.1.2, tx checksum off (a wire)
                                                    vx0: VXLAN VNI 5001 → 192.168.1.1, 10.0.2.2/24, MTU 1500

The peer is the scenario's remote VTEP and tenant host (docs/scenario.md). Its
vxlan device is created without `dev`, so its MTU is 1500 and it advertises
MSS 1460: only p4gen's MSS override keeps vm1's segments on the 1500-byte wire.
Its route back to vm1 carries the path MTU it would learn from the underlay
(1450, locked), so that its own segments fit without a first lost one. A
physical wire carries complete checksums and a veth does not: the peer's
transmit checksum offload is off on its wire link; vm1 keeps its offloads, as
a virtio guest does. Used by tests/test_real_tcp.py and benchmarks/real_tcp.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

VM_ADDR, PEER_ADDR, PORT = "10.0.1.2", "10.0.2.2", 80
INTERNET_ADDR, INTERNET_PORT, PUBLIC_ADDR = "8.8.8.8", 443, "203.0.113.10"
VM_TOML = """netns = "{ns}"
ifname = "eth0"
mac = "02:00:00:00:01:02"
mtu = 1500
addresses = ["10.0.1.2/24"]
routes = ["default via 10.0.1.1"]
neighbours = ["10.0.1.1 02:00:00:00:00:fe"]
"""


def build_scenario(out: Path, target: str) -> Path:
    """`p4gen build` of examples/vm_offload.nf for targets/TARGET into `out` (a subprocess, as a
    user runs it); AssertionError with p4gen's message when it fails."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "p4gen", "build", str(root / "examples/vm_offload.nf"), "--target",
                           str(root / "targets" / target), "-o", str(out)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return out


def sh(*cmd: str, ns: str | None = None, check: bool = True) -> str:
    full = (["ip", "netns", "exec", ns] if ns else []) + list(cmd)
    proc = subprocess.run(full, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(full)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def nstat(ns: str) -> dict[str, int]:
    """The namespace's absolute SNMP counters (nstat -az)."""
    out = {}
    for line in sh("nstat", "-az", "--json", ns=ns).splitlines():
        if line.strip().startswith("{"):
            data = json.loads(line)
            for v in data.values():
                out.update({k: int(x) for k, x in v.items()})
    return out


def make_peer(ns: str) -> None:
    sh("ip", "netns", "add", ns)
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", ns=ns)
    sh("sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", ns=ns)


def configure_peer(ns: str, wire: str) -> None:
    """The remote VTEP on `wire` (already in `ns`) and the tenant host behind its vxlan device;
    and, on a macvlan with the gateway's MAC, an Internet host (8.8.8.8) that vm1 reaches
    through SNAT (its replies go to the public address 203.0.113.10)."""
    ip = ("ip", "-n", ns)
    sh(*ip, "link", "set", wire, "address", "02:00:c0:a8:01:02")
    sh(*ip, "addr", "add", "192.168.1.2/24", "dev", wire)
    sh(*ip, "link", "set", wire, "up")
    sh(*ip, "neigh", "replace", "192.168.1.1", "lladdr", "02:00:c0:a8:01:01", "dev", wire, "nud", "permanent")
    sh("ethtool", "-K", wire, "tx", "off", ns=ns)
    sh(*ip, "link", "add", "vx0", "type", "vxlan", "id", "5001", "remote", "192.168.1.1", "local", "192.168.1.2",
       "dstport", "4789")
    sh(*ip, "link", "set", "vx0", "address", "02:00:00:00:00:fe")
    sh(*ip, "addr", "add", f"{PEER_ADDR}/24", "dev", "vx0")
    sh(*ip, "link", "set", "vx0", "up")
    sh(*ip, "route", "replace", "10.0.1.0/24", "dev", "vx0", "mtu", "lock", "1450", "advmss", "1460")
    sh(*ip, "neigh", "replace", VM_ADDR, "lladdr", "02:00:00:00:01:02", "dev", "vx0", "nud", "permanent")
    sh(*ip, "link", "add", "gw0", "link", wire, "type", "macvlan", "mode", "bridge")
    sh(*ip, "link", "set", "gw0", "address", "02:00:00:00:00:fe")
    sh(*ip, "addr", "add", f"{INTERNET_ADDR}/32", "dev", "gw0")
    sh(*ip, "link", "set", "gw0", "up")
    sh("ethtool", "-K", "gw0", "tx", "off", ns=ns)
    sh(*ip, "route", "replace", f"{PUBLIC_ADDR}/32", "dev", "gw0")
    sh(*ip, "neigh", "replace", PUBLIC_ADDR, "lladdr", "02:00:c0:a8:01:01", "dev", "gw0", "nud", "permanent")


def link_mtu(ns: str, dev: str) -> int:
    return json.loads(sh("ip", "-j", "-n", ns, "link", "show", dev))[0]["mtu"]


@dataclass
class UpProcess:
    """`p4gen up` as a child process, started and waited for, stopped with SIGINT."""

    outdir: Path
    args: list[str]
    proc: subprocess.Popen | None = None
    output: list[str] = field(default_factory=list)

    def start(self, timeout: float = 60) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "p4gen", "up", str(self.outdir), *self.args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if line.startswith("up:"):
                return
        self.stop()
        raise RuntimeError("p4gen up did not come up:\n" + "".join(self.output))

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rest, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rest, _ = self.proc.communicate()
        self.output.append(rest or "")
        return self.proc.returncode

    def text(self) -> str:
        return "".join(self.output)


def transfer(vm_ns: str, peer_ns: str, upload: bool, nbytes: int, seed: int, port: int = PORT,
             timeout: float = 120, addr: str = PEER_ADDR) -> tuple[dict, dict]:
    """One connection from vm1 to the peer; upload: vm1 sends, else the peer sends.
    Returns (vm1's result, the peer's result) from p4gen.testing.tcpxfer."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    server_role = "recv" if upload else "send"
    server = subprocess.Popen(["ip", "netns", "exec", peer_ns, sys.executable, "-m", "p4gen.testing.tcpxfer",
                               "serve", addr, str(port), server_role, str(nbytes), str(seed), str(timeout)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = server.stdout.readline()
        if "listening" not in first:
            raise RuntimeError(f"server did not start: {first}{server.stderr.read()}")
        client = subprocess.run(["ip", "netns", "exec", vm_ns, sys.executable, "-m", "p4gen.testing.tcpxfer",
                                 "connect", addr, str(port), "send" if upload else "recv", str(nbytes),
                                 str(seed), str(timeout)], capture_output=True, text=True, env=env,
                                timeout=timeout + 10, check=False)
        if client.returncode != 0:
            raise RuntimeError(f"client failed: {client.stderr.strip()}")
        out, err = server.communicate(timeout=timeout)
        if server.returncode != 0:
            raise RuntimeError(f"server failed: {err.strip()}")
        return json.loads(client.stdout.strip().splitlines()[-1]), json.loads(out.strip().splitlines()[-1])
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def connect_fails(vm_ns: str, port: int, seconds: float = 1.5) -> str:
    """Try vm1 → peer:port; 'timeout' when something dropped the SYN, 'refused' when the peer
    answered with RST, 'connected' otherwise."""
    code = (f"import socket\ns=socket.socket();s.settimeout({seconds!r})\n"
            f"try:\n s.connect(({PEER_ADDR!r},{port}));print('connected')\n"
            "except socket.timeout:print('timeout')\nexcept ConnectionRefusedError:print('refused')\n")
    return sh(sys.executable, "-c", code, ns=vm_ns).strip()


def leftovers(tag: str) -> list[str]:
    """Links and namespaces whose names carry `tag` (what `up --prefix TAG` would create)."""
    links = [line for line in sh("ip", "-o", "link").splitlines() if f"{tag}-" in line]
    spaces = [line for line in sh("ip", "netns", "list").splitlines() if line and tag in line.split()[0]]
    return links + spaces
