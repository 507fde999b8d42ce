"""Real Linux TCP stacks through `p4gen up`: the reference scenario end to end.

vm1 (a network namespace with TSO and checksum offload on, as a virtio guest)
talks to a peer namespace holding a kernel VXLAN device, through p4gen: SYNs
with partial checksums, 64 KiB GSO super-packets, segments coalesced for the
VM with --lro. The expectation is independent of p4gen: the bytes a seeded
stream hashes to, and the kernel's own counters (nstat) on both ends — no
checksum errors, no IP fragments, no retransmission, no oversize frame dropped
by the 1500-byte wire.

Hypervisor-only in CI (no p4c or BMv2 needed); the BMv2 split with -m bmv2.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import NEEDS_BMV2

from p4gen.control.links import netns_supported
from p4gen.testing import realnet
from p4gen.testing.tcpxfer import expected_sha256

ROOT = Path(__file__).resolve().parents[1]
NBYTES = 20 << 20

pytestmark = pytest.mark.skipif(
    not netns_supported() or not shutil.which("ethtool") or not shutil.which("nstat"),
    reason="needs root, iproute2 (ip, nstat) and ethtool for network namespaces")


def rx_dropped(ns: str, dev: str) -> int:
    stats = json.loads(realnet.sh("ip", "-j", "-s", "-n", ns, "link", "show", dev))[0]["stats64"]["rx"]
    return stats["dropped"] + stats.get("over_errors", 0)


def run_scenario(tmp_path: Path, target: str, extra: list[str], tag: str, lossless: bool = True) -> dict:
    """The scenario through `up`; with `lossless`, no segment may be lost at all (else the
    losses are returned, for the report: the checksum and size checks stay exact)."""
    losses: dict = {}
    out = realnet.build_scenario(tmp_path / "out", target)
    vm_ns, peer_ns = f"{tag}vm", f"{tag}peer"
    vm_toml = tmp_path / "vm.toml"
    vm_toml.write_text(realnet.VM_TOML.format(ns=vm_ns))
    realnet.make_peer(peer_ns)
    up = realnet.UpProcess(out, ["--prefix", tag, "--netns", f"{tag}nic", "--vm", str(vm_toml),
                                 "--wire-netns", peer_ns, *extra])
    try:
        up.start()
        wire = f"{tag}-wire"
        realnet.configure_peer(peer_ns, wire)
        assert realnet.link_mtu(vm_ns, "eth0") == 1500 and realnet.link_mtu(peer_ns, "vx0") == 1500
        before = {ns: realnet.nstat(ns) for ns in (vm_ns, peer_ns)}
        wire_drops = rx_dropped(peer_ns, wire)
        # The overlay (VXLAN to 10.0.2.2:80), then the Internet path (SNAT to 8.8.8.8:443).
        paths = [(realnet.PEER_ADDR, realnet.PORT, NBYTES), (realnet.INTERNET_ADDR, realnet.INTERNET_PORT, NBYTES // 4)]
        for (addr, port, nbytes), upload, seed in [(p, u, s) for p in paths for u, s in ((True, 1), (False, 2))]:
            vm_side, peer_side = realnet.transfer(vm_ns, peer_ns, upload, nbytes, seed, port=port, addr=addr)
            want = expected_sha256(nbytes, seed)
            for side in (vm_side, peer_side):
                assert side["bytes"] == nbytes and side["sha256"] == want, (addr, upload, side)
        after = {ns: realnet.nstat(ns) for ns in (vm_ns, peer_ns)}
        delta = {ns: {k: after[ns].get(k, 0) - before[ns].get(k, 0) for k in after[ns]} for ns in after}
        for ns in (vm_ns, peer_ns):
            d = delta[ns]
            assert d.get("TcpInCsumErrors", 0) == 0, (ns, d)
            assert d.get("IpFragCreates", 0) == 0 and d.get("IpReasmReqds", 0) == 0, (ns, d)
            # No segment lost (a bad checksum or an oversize frame loses one): no fast retransmit,
            # no retransmission timeout; retransmitted tail loss probes (sent when an ACK is late,
            # not for a loss) are all the retransmissions there are.
            why = {k: v for k, v in d.items() if v and any(w in k for w in ("Retrans", "Loss", "Timeout", "Drop"))}
            if lossless:
                assert d.get("TcpExtTCPFastRetrans", 0) == 0 and d.get("TcpExtTCPTimeouts", 0) == 0, (ns, why)
                assert d.get("TcpRetransSegs", 0) <= d.get("TcpExtTCPLossProbes", 0), (ns, why)
            else:  # BMv2's queues (64 packets) drop bursts: losses happen, none for a checksum or a size
                losses[ns] = why
        assert rx_dropped(peer_ns, wire) == wire_drops  # nothing over the wire's MTU
        # `p4gen flows` (flows.json, written once a second) lists the transfer's flows with their keys
        time.sleep(1.3)
        shown = subprocess.run([sys.executable, "-m", "p4gen", "flows", str(out), "--json"], capture_output=True,
                               text=True)
        assert shown.returncode == 0, shown.stderr
        flows = json.loads(shown.stdout)["flows"]
        up_flow = [f for f in flows if f["pipeline"] == "vm_egress" and f["key"].get("ipv4.dst") == "10.0.2.2"
                   and f["key"].get("meta.l4_dst") == "80"]
        assert up_flow and up_flow[0]["where"] == "hypervisor" and up_flow[0]["packets"]["hypervisor"] > 10, flows
        assert "fast path" in up_flow[0]["why"]
        # The ACL lets TCP to port 80 through and drops the rest: no RST comes back from port 22.
        assert realnet.connect_fails(vm_ns, 22) == "timeout"
    finally:
        code = up.stop()
        subprocess.run(["ip", "netns", "del", peer_ns], capture_output=True, check=False)
    assert code == 0, up.text() + "\n" + "".join(p.read_text() for p in out.glob("*.log"))
    if lossless:  # the hypervisor dropped only what the ACL refused (the probe to port 22)
        (down,) = [line for line in (out / "hypervisor.log").read_text().splitlines() if " down; drops: " in line]
        drops = ast.literal_eval(down.split(" down; drops: ", 1)[1].split("; flow cache: ", 1)[0])
        assert set(drops) <= {"acl_out.deny"}, drops
    assert "down" in up.text()
    assert realnet.leftovers(tag) == []
    assert not (out / "up.json").exists()
    return losses


@pytest.mark.parametrize("lro", [False, True], ids=["no-lro", "lro"])
def test_real_transfer_hypervisor_only(tmp_path, lro):
    tag = f"rt{os.getpid() % 1000}{'l' if lro else 'n'}"
    run_scenario(tmp_path, "hypervisor.toml", ["--lro"] if lro else [], tag)


@pytest.mark.parametrize("target", ["bmv2-smartnic.toml", "constrained-nic.toml"])
@pytest.mark.parametrize("lro", [False, True], ids=["no-lro", "lro"])
@NEEDS_BMV2[0]
@NEEDS_BMV2[1]
@NEEDS_BMV2[2]
def test_real_transfer_bmv2_split(tmp_path, target, lro):
    tag = f"rb{os.getpid() % 1000}{target[0]}{'l' if lro else 'n'}"
    losses = run_scenario(tmp_path, target, ["--lro"] if lro else [], tag, lossless=False)
    print(f"losses through BMv2 ({target}, lro={lro}): {losses}")
