"""Goodput of a real TCP transfer (iperf3) through the reference scenario, four ways, in one run.

1. p4gen hypervisor-only: vm1 ↔ `p4gen up` (targets/hypervisor.toml) ↔ peer with a kernel vxlan device;
   and the scenario's Internet path (SNAT, no tunnel) with the kernel's GSO cutting at p4gen's MSS
   against p4gen's own segmenter (`--no-kernel-gso`); and the links' packet rings against a system
   call per frame (`--no-rings`);
2. the BMv2 split: the same with `p4gen up` of a bmv2-smartnic build (needs p4c-bm2-ss and simple_switch_grpc);
3. BMv2's own ceiling: simple_switch_grpc running benchmarks/trivial_fwd.p4 (one exact table, port 1 ↔ 2)
   between two namespaces, 1500-byte frames (the offloads a raw BMv2 port cannot honour switched off);
4. the anchor: the kernel's own VXLAN path between two namespaces (vxlan devices over a veth).

Goals (issue): hypervisor-only ≥ 1 Gbit/s upload on one core; the split ≥ 80 % of BMv2's ceiling.
Run as root:  python benchmarks/real_tcp.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from p4gen.backend.p4c import find_tool
from p4gen.testing import realnet
from p4gen.testing.realnet import sh

ROOT = Path(__file__).resolve().parents[1]


def iperf(client_ns: str, server_ns: str, addr: str, seconds: float, reverse: bool, port: int = 80) -> float:
    """Goodput in Gbit/s of one iperf3 run (client in client_ns, server in server_ns)."""
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-B", addr, "-p", str(port), "-1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        out = sh("iperf3", "-c", addr, "-p", str(port), "-t", str(seconds), "-J", *(["-R"] if reverse else []),
                 ns=client_ns)
        return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9
    finally:
        server.kill()
        server.wait()


def both_ways(client_ns: str, server_ns: str, addr: str, seconds: float, port: int = 80) -> tuple[float, float]:
    return (iperf(client_ns, server_ns, addr, seconds, False, port),
            iperf(client_ns, server_ns, addr, seconds, True, port))


def through_p4gen(target: str, seconds: float, tmp: Path, tag: str, internet: bool = False,
                  extra: tuple[str, ...] = ()) -> tuple[float, float]:
    out = realnet.build_scenario(tmp / f"out-{tag}", target)
    vm_ns, peer_ns = f"{tag}vm", f"{tag}peer"
    (tmp / f"{tag}.toml").write_text(realnet.VM_TOML.format(ns=vm_ns))
    realnet.make_peer(peer_ns)
    up = realnet.UpProcess(out, ["--prefix", tag, "--netns", f"{tag}nic", "--vm", str(tmp / f"{tag}.toml"),
                                 "--wire-netns", peer_ns, *extra])
    try:
        up.start()
        realnet.configure_peer(peer_ns, f"{tag}-wire")
        if internet:
            return both_ways(vm_ns, peer_ns, realnet.INTERNET_ADDR, seconds, realnet.INTERNET_PORT)
        return both_ways(vm_ns, peer_ns, realnet.PEER_ADDR, seconds)
    finally:
        up.stop()
        sh("ip", "netns", "del", peer_ns, check=False)


def two_namespaces(tag: str) -> tuple[str, str]:
    a, b = f"{tag}a", f"{tag}b"
    for ns in (a, b):
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", ns=ns)
    return a, b


def kernel_vxlan(seconds: float, tag: str) -> tuple[float, float]:
    a, b = two_namespaces(tag)
    try:
        sh("ip", "-n", a, "link", "add", "u0", "type", "veth", "peer", "name", "u0", "netns", b)
        for ns, me, other in ((a, "192.168.1.1", "192.168.1.2"), (b, "192.168.1.2", "192.168.1.1")):
            sh("ip", "-n", ns, "addr", "add", f"{me}/24", "dev", "u0")
            sh("ip", "-n", ns, "link", "set", "u0", "up")
            sh("ip", "-n", ns, "link", "add", "vx0", "type", "vxlan", "id", "5001", "remote", other, "local", me,
               "dstport", "4789", "dev", "u0")
            sh("ip", "-n", ns, "addr", "add", ("10.0.1.2/16" if ns == a else "10.0.2.2/16"), "dev", "vx0")
            sh("ip", "-n", ns, "link", "set", "vx0", "up")
        return both_ways(a, b, "10.0.2.2", seconds)
    finally:
        for ns in (a, b):
            sh("ip", "netns", "del", ns, check=False)


def bmv2_ceiling(seconds: float, tmp: Path, tag: str, p4c: str, bmv2: str) -> tuple[float, float]:
    json_out = tmp / "trivial.json"
    subprocess.run([p4c, "-o", str(json_out), str(ROOT / "benchmarks/trivial_fwd.p4")], check=True,
                   capture_output=True)
    a, b = two_namespaces(tag)
    sw = f"{tag}s"
    sh("ip", "netns", "add", sw)
    proc = None
    try:
        for ns, port, addr in ((a, "1", "10.0.1.2"), (b, "2", "10.0.1.3")):
            sh("ip", "-n", sw, "link", "add", f"p{port}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", sw, "link", "set", f"p{port}", "up")
            sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            # A raw BMv2 port reads frames without virtio metadata: whole checksums and 1500-byte frames only.
            sh("ethtool", "-K", "eth0", "tx", "off", "tso", "off", "gso", "off", ns=ns)
        proc = subprocess.Popen(["ip", "netns", "exec", sw, bmv2, "-i", "1@p1", "-i", "2@p2", str(json_out),
                                 "--", "--grpc-server-addr", "127.0.0.1:9559"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
        return both_ways(a, b, "10.0.1.3", seconds)
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        for ns in (a, b, sw):
            sh("ip", "netns", "del", ns, check=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="iperf3 run length per direction")
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("iperf3") or not shutil.which("ethtool"):
        print("needs root, iperf3 and ethtool (apt-get install iperf3 ethtool)")
        return 1
    p4c, bmv2 = find_tool("P4GEN_P4C", "p4c-bm2-ss"), find_tool("P4GEN_BMV2", "simple_switch_grpc")
    rows: dict[str, tuple[float, float] | str] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows["kernel VXLAN (anchor)"] = kernel_vxlan(args.seconds, "bk")
        rows["p4gen hypervisor-only"] = through_p4gen("hypervisor.toml", args.seconds, tmp, "bh")
        rows["  a system call per frame (--no-rings)"] = through_p4gen("hypervisor.toml", args.seconds, tmp, "bn",
                                                                      False, ("--no-rings",))
        rows["  Internet path, kernel GSO"] = through_p4gen("hypervisor.toml", args.seconds, tmp, "bg", True)
        rows["  Internet path, Python segmenter"] = through_p4gen("hypervisor.toml", args.seconds, tmp, "bp", True,
                                                                 ("--no-kernel-gso",))
        if p4c and bmv2:
            rows["BMv2 trivial forwarding (ceiling)"] = bmv2_ceiling(args.seconds, tmp, "bc", p4c, bmv2)
            rows["p4gen BMv2 split"] = through_p4gen("bmv2-smartnic.toml", args.seconds, tmp, "bs")
        else:
            rows["BMv2 trivial forwarding (ceiling)"] = rows["p4gen BMv2 split"] = "n/a: needs p4c-bm2-ss and " \
                                                                                  "simple_switch_grpc"
    anchor = rows["kernel VXLAN (anchor)"]
    print(f"{'path (overlay unless said)':38} {'upload Gbit/s':>14} {'download Gbit/s':>16}   vs anchor (up/down)")
    for name, r in rows.items():
        if isinstance(r, str):
            print(f"{name:38} {r}")
            continue
        print(f"{name:38} {r[0]:14.3f} {r[1]:16.3f}   {r[0] / anchor[0]:6.1%} / {r[1] / anchor[1]:6.1%}")
    hv = rows["p4gen hypervisor-only"]
    print(f"goal: hypervisor-only upload ≥ 1 Gbit/s: {hv[0]:.3f} Gbit/s "
          f"({'met' if hv[0] >= 1 else 'missed'})")
    split, ceiling = rows["p4gen BMv2 split"], rows["BMv2 trivial forwarding (ceiling)"]
    if not isinstance(split, str) and not isinstance(ceiling, str):
        for i, d in enumerate(("upload", "download")):
            print(f"goal: BMv2 split ≥ 80% of BMv2's ceiling, {d}: {split[i] / ceiling[i]:.0%} "
                  f"({'met' if split[i] >= 0.8 * ceiling[i] else 'missed'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
