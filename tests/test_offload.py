"""Per-flow offload on BMv2: the fused flow table, learning, table exhaustion, rebalancing,
idle eviction and revalidation, each against the all-software run of the same packets.

The NIC is the constrained profile with a small flow table (2 entries) and a short idle
timeout, so every case happens within seconds. The constrained NIC cannot look up the ACL
(range match), so the static split sends vm_ingress packets to the hypervisor at acl_in;
an offloaded flow runs decap, DNAT and its ACL decision on the NIC and reaches the
hypervisor only at gro (the VM sits behind it). Expectations are the software target's
outputs and counters for the same frames, and the crossings counted by where the
hypervisor resumed.
"""

from __future__ import annotations

import time

import pytest
from conftest import BMV2, NEEDS_BMV2, P4C
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw
from test_backend import built

from p4gen.frontend import load_program
from p4gen.frontend.program import KeyMatch, TableEntry
from p4gen.ir import build_ir
from p4gen.place import load_profile, place
from p4gen.testing import Bmv2Target, SoftwareTarget

pytestmark = NEEDS_BMV2

TUNNEL = Ether(dst="02:00:c0:a8:01:01") / IP(src="192.168.1.2", dst="192.168.1.1") / UDP(sport=50000, dport=4789,
                                                                                          chksum=0)
ACL_STAGE, GRO_STAGE, FIRST_STAGE = "vm_ingress:acl_in.acl_in_v4", "vm_ingress:gro", "vm_ingress:overlay_decap.if1"


def frame(seq: int, src: str = "10.0.2.5", sport: int = 443) -> bytes:
    inner = (Ether(src="02:00:00:00:02:05", dst="02:00:00:00:01:02") / IP(src=src, dst="10.0.1.2")
             / TCP(sport=sport, dport=40000, seq=seq) / Raw(b"p" * 24))
    return bytes(TUNNEL / VXLAN(vni=5001) / inner)


@pytest.fixture(scope="module")
def program():
    prog, sink = load_program(["examples/vm_offload.nf"])
    assert prog is not None, sink.render()
    return prog, build_ir(prog)


@pytest.fixture(scope="module")
def small_nic(tmp_path_factory):
    """The constrained NIC with a flow table of 2 entries (one of its 4 tables) and a 1.5 s
    idle timeout (it has no idle-timeout notifications: idle flows are found by polling)."""
    text = open("targets/constrained-nic.toml").read()
    assert "[offload]" not in text
    text += "\n[offload]\nflow_entries = 2\nthreshold_packets = 8\nidle_timeout_ms = 1500\n"
    path = tmp_path_factory.mktemp("profile") / "small-nic.toml"
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def notifying_nic(small_nic, tmp_path_factory):
    """The same NIC with idle-timeout support: idle flows are reported by the switch."""
    text = open(small_nic).read().replace('"hash", "branch",', '"hash", "branch", "idle_timeout",')
    text = text.replace(', "idle_timeout"]', "]")
    path = tmp_path_factory.mktemp("profile") / "notifying-nic.toml"
    path.write_text(text)
    assert '"idle_timeout"' in text and "lacks" in text
    return str(path)


def start(program, profile, tmp_path):
    prog, g = program
    built("examples/vm_offload.nf", tmp_path, profile, P4C)
    return Bmv2Target(prog, g, place(g, prog, load_profile(profile)), tmp_path, BMV2), SoftwareTarget(prog, g)


@pytest.fixture()
def pair(program, small_nic, tmp_path):
    t, s = start(program, small_nic, tmp_path)
    yield t, s
    t.close()


def run_both(t, s, frames: list[bytes], into: str = "uplink") -> None:
    """The same frames into both, from the wire (or the VM); what comes out of either side must
    be equal, in order (no reordering)."""
    t.send_many(into, frames)
    for f in frames:
        s.send(into, f)
    out, other = ("vm", "uplink") if into == "uplink" else ("uplink", "vm")
    got, want = t.received(out), s.received(out)
    assert len(got) == len(want) and got == want, f"{len(got)} frames vs {len(want)} in software"
    assert t.received(other) == s.received(other)


def counters_equal(t, s) -> None:
    for nf, name in (("acl_in", "acl_in_drops"), ("overlay_decap", "bad_tunnel")):
        assert t.counter(nf, name) == s.counter(nf, name), (nf, name)
    t.offload.poll()  # the live counts of flows on the NIC
    # per entry (the tables that count): a flow entry counted for the entries it stands for
    assert t.entry_packets("acl_in_v4") == s.entry_packets("acl_in_v4")
    assert {k: v for k, v in t.drops.items() if v} == {k: v for k, v in s.drops.items() if v}


def test_an_offloaded_flow_stops_crossing_for_its_acl(pair):
    t, s = pair
    run_both(t, s, [frame(i) for i in range(8)])  # the 8th is the threshold: it is learnt
    flow = next(iter(t.offload.flows.values()))
    assert flow.where == "nic", flow.why
    assert flow.decisions == {"tunnels": ("decap", {}), "dnat_v4": (None, {}), "acl_in_v4": ("allow", {})}
    acl_before = t.dispatch.resumed_at[ACL_STAGE]
    assert acl_before == 7  # every packet so far: the ACL in the hypervisor
    # the learnt one came as it arrived, and ran here whole (no second crossing)
    assert t.dispatch.crossings["learn"] == 1 and t.dispatch.resumed_at[FIRST_STAGE] == 1
    run_both(t, s, [frame(i) for i in range(8, 28)])
    assert t.dispatch.resumed_at[ACL_STAGE] == acl_before  # no longer: decided on the NIC
    assert t.dispatch.resumed_at[GRO_STAGE] == 20  # handed over only where the VM is reached
    t.offload.poll()
    assert flow.nic_packets == 20
    # a flow the ACL refuses: dropped on the NIC once offloaded, counted as in software
    denied = [frame(i, src="10.0.3.9", sport=22) for i in range(20)]
    run_both(t, s, denied)
    assert sum(f.where == "nic" for f in t.offload.flows.values()) == 2
    counters_equal(t, s)
    assert t.counter("acl_in", "acl_in_drops") == 20


def test_a_full_table_keeps_flows_in_the_hypervisor_and_rebalances_to_the_hottest(pair):
    t, s = pair
    flows = [[frame(i, sport=443, src=f"10.0.2.{n + 10}") for i in range(200)] for n in range(4)]
    for n in range(4):  # four flows, two entries: the first two learnt take them
        run_both(t, s, flows[n][:10])
    where = {f.key: f.where for f in t.offload.flows.values()}
    assert sorted(where.values()) == ["hypervisor", "hypervisor", "nic", "nic"]
    assert all(f.why.startswith("table full") for f in t.offload.flows.values() if f.where != "nic")
    counters_equal(t, s)
    # the last flow turns hot; the offloaded ones go quiet (for less than the idle timeout)
    run_both(t, s, flows[3][10:200])
    t.poll_offload()
    hot = next(f for f in t.offload.flows.values() if f.learnt > 1 and f.where == "nic")
    assert hot.offloads == 1 and t.offload.stats["evicted_rebalance"] == 1
    run_both(t, s, flows[3][:20])  # still right after the move, nothing lost or duplicated
    counters_equal(t, s)


def test_an_idle_flow_leaves_with_its_counts_and_comes_back(pair):
    t, s = pair
    run_both(t, s, [frame(i) for i in range(30)])
    flow = next(iter(t.offload.flows.values()))
    assert flow.where == "nic"
    t.offload.poll()
    deadline = time.time() + 6
    while flow.where == "nic" and time.time() < deadline:
        time.sleep(0.3)
        t.offload.poll()
    assert flow.where == "hypervisor" and flow.why.startswith("idle"), flow.why
    assert flow.merged_packets == 22 and t.offload.stats["evicted_idle"] == 1
    entry = next(e for e in t.hv.tables["acl_in_v4"].entries if e.priority == 100 and e.keys[2].value == 443)
    assert t.offload.merged_entry_packets("acl_in_v4", entry) == 22
    run_both(t, s, [frame(i) for i in range(30, 100)])  # back: learnt again on the next threshold
    assert flow.where == "nic" and flow.offloads == 2
    counters_equal(t, s)


def test_a_table_change_mid_stream_leaves_no_flow_with_the_old_decision(pair, program):
    t, s = pair
    run_both(t, s, [frame(i, src="10.0.2.7", sport=80) for i in range(20)])
    flow = next(iter(t.offload.flows.values()))
    assert flow.where == "nic"
    prog, _g = program
    # the ACL now refuses TCP from 10.0.2.7 outright (a higher priority than any allow)
    deny = TableEntry("acl_in", "acl_in_v4", [KeyMatch("ternary", 0x0A000207, mask=0xFFFFFFFF),
                                                KeyMatch("ternary", 6, mask=0xFF),
                                                KeyMatch("range", 0, high=0xFFFF)], "deny", [], 200,
                      prog.entries[0].pos)
    t.change_entry(deny)
    s.hv.insert_entry(deny)
    assert flow.where == "hypervisor" and flow.why.startswith("revalidated")
    run_both(t, s, [frame(i, src="10.0.2.7", sport=80) for i in range(20, 40)])
    assert t.counter("acl_in", "acl_in_drops") == s.counter("acl_in", "acl_in_drops") == 20
    counters_equal(t, s)


def test_idle_timeout_notifications_evict_where_the_nic_has_them(program, notifying_nic, tmp_path):
    t, s = start(program, notifying_nic, tmp_path)
    try:
        assert t.offload.notifies
        run_both(t, s, [frame(i) for i in range(30)])
        flow = next(iter(t.offload.flows.values()))
        assert flow.where == "nic"
        deadline = time.time() + 8  # 1.5 s, then BMv2's sweep (once a second)
        while flow.where == "nic" and time.time() < deadline:
            time.sleep(0.3)
            t.offload.poll()
        assert flow.why == "idle (timeout notification)" and flow.merged_packets == 22
        # handled by the static split again, and learnt again at its bucket's next relearn tick
        run_both(t, s, [frame(i) for i in range(30, 100)])
        assert flow.where == "nic" and flow.offloads == 2
        counters_equal(t, s)
    finally:
        t.close()


def test_a_switch_restart_loses_no_flow_for_good(pair):
    t, s = pair
    run_both(t, s, [frame(i) for i in range(20)])
    flow = next(iter(t.offload.flows.values()))
    assert flow.where == "nic"
    t.restart_switch()
    assert flow.where == "hypervisor" and flow.why == "switch restarted"
    run_both(t, s, [frame(i) for i in range(20, 40)])  # the static entries are back (push), then it is learnt again
    assert flow.where == "nic" and flow.offloads == 2


@pytest.mark.parametrize("netns", [True, False], ids=["own-netns", "current-netns"])
def test_up_offloads_logs_and_p4gen_flows_lists_the_flow(small_nic, tmp_path, netns):
    """`p4gen up` runs the manager (its gRPC client reaches the switch in the NIC's namespace),
    logs the offload, and `p4gen flows` shows the flow on the NIC with its key and counts."""
    import os
    import select
    import socket as pysocket
    import subprocess
    import sys

    from p4gen.control.links import packet_socket

    out = tmp_path / "out"
    built("examples/vm_offload.nf", out, small_nic, P4C)
    prefix = f"po{os.getpid() % 100000}"
    with pysocket.socket() as s:
        s.bind(("127.0.0.1", 0))
        addr = f"127.0.0.1:{s.getsockname()[1]}"
    up = subprocess.Popen([sys.executable, "-m", "p4gen", "up", str(out), "--grpc-addr", addr, "--prefix", prefix,
                           *([] if netns else ["--no-netns"])], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    try:
        line = up.stdout.readline()
        assert line.startswith("up: "), line + up.stdout.read()
        vm, wire = packet_socket(f"{prefix}-vm"), packet_socket(f"{prefix}-wire")
        soft = SoftwareTarget(*load_program_and_graph())

        def through(frames: list[bytes]) -> None:
            """Frames onto the wire, paced; the VM gets the software run's frames, once, in order."""
            for f in frames:
                wire.send(f)
                time.sleep(0.003)
            got, end = [], time.time() + 3
            while time.time() < end and len(got) < len(frames):
                if select.select([vm], [], [], 0.1)[0]:
                    got.append(vm.recv())
            for f in frames:
                soft.send("uplink", f)
            assert got == soft.received("vm")

        through([frame(i) for i in range(40)])
        time.sleep(1.5)  # a poll: counters read, flows.json written
        shown = subprocess.run([sys.executable, "-m", "p4gen", "flows", str(out)], capture_output=True, text=True)
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert lines[1].startswith("flow table: 1 of 2 entries; offloaded after 8 packets")
        row = next(x for x in lines if x.startswith("vm_ingress"))
        where, nic, hv = row.split()[2:5]
        # 8 before it was learnt; then the NIC's entry, but for frames already in flight while it went in
        assert where == "NIC" and 24 <= int(nic) <= 32 and row.endswith("offloaded"), row
        assert int(hv) == 40  # each frame reached the hypervisor once (the VM is behind it): none twice
        assert "ipv4.src=192.168.1.2" in shown.stdout and "inner_ipv4.src=10.0.2.5" in shown.stdout
        # a push beside the running manager (the primary client): it takes the next election id,
        # changes nothing (the flow table's entries are the manager's), and traffic goes on
        again = subprocess.run([sys.executable, "-m", "p4gen", "push", str(out), "--grpc-addr", addr],
                               capture_output=True, text=True)
        assert again.returncode == 0 and "0 inserted, 0 modified, 0 deleted" in again.stdout, again.stderr
        through([frame(i) for i in range(40, 50)])
        vm.close()
        wire.close()
    finally:
        down = subprocess.run([sys.executable, "-m", "p4gen", "down", str(out)], capture_output=True, text=True)
        up.wait(timeout=20)
    assert down.returncode == 0 and up.returncode == 0
    log = (out / "hypervisor.log").read_text()
    assert "per-flow offload: a flow table of 2 entries" in log and "offload: offload vm_ingress#" in log


def load_program_and_graph():
    prog, sink = load_program(["examples/vm_offload.nf"])
    assert prog is not None, sink.render()
    return prog, build_ir(prog)


def vm_frame(seq: int, dst: str = "10.0.2.9", size: int = 30) -> bytes:
    return bytes(Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe") / IP(src="10.0.1.2", dst=dst)
                 / TCP(sport=40000, dport=443, seq=seq) / Raw(b"v" * size))


def test_a_flow_from_the_vm_runs_on_the_nic_after_segmentation(pair):
    """vm_egress starts in the hypervisor (the VM is attached to it). The constrained NIC cannot
    look up its ACL (range) and has no table left for SNAT or the flow counters, so the static
    split runs all of that in Python. Offloaded, the hypervisor runs segmentation only and
    hands the packet over where the flow table is looked up; the NIC does the rest."""
    from p4gen.runtime.virtio import F_NEEDS_CSUM, GSO_TCPV4, VnetHdr

    t, s = pair
    for dst in ("10.0.2.9", "8.8.8.8"):  # the overlay (VXLAN), and the Internet (SNAT)
        run_both(t, s, [vm_frame(i, dst) for i in range(10)], into="vm")
        t.offload.poll()  # learnt from the fast path's counts
    flows = {f.key: f for f in t.offload.flows.values() if f.pipeline == "vm_egress"}
    assert len(flows) == 2 and all(f.where == "nic" for f in flows.values()), [f.why for f in flows.values()]
    overlay = next(f for f in flows.values() if "overlay_v4" in f.decisions and f.decisions["overlay_v4"][0])
    assert overlay.decisions["acl_out_v4"] == ("allow", {}) and overlay.decisions["flows_v4"] == (None, {})
    before = dict(t.hv.stage_packets)
    run_both(t, s, [vm_frame(i, dst) for dst in ("10.0.2.9", "8.8.8.8") for i in range(10, 20)], into="vm")
    ran = {k: v - before.get(k, 0) for k, v in t.hv.stage_packets.items() if v != before.get(k, 0)}
    assert ran == {"vm_egress/tso": 20}  # all the hypervisor still does for them
    # a TSO super-packet of the offloaded overlay flow: cut here, each segment onto the NIC's entry
    big = bytes(Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe") / IP(src="10.0.1.2", dst="10.0.2.9")
                / TCP(sport=40000, dport=443, seq=99) / Raw(bytes(range(256)) * 16))
    vnet = VnetHdr(flags=F_NEEDS_CSUM, gso_type=GSO_TCPV4, hdr_len=54, gso_size=1448, csum_start=34, csum_offset=16)
    t._take(t.dispatch.from_vm(big, vnet))
    t._pump()
    s.send("vm", big, vnet)
    got, want = t.received("uplink"), s.received("uplink")
    assert len(want) == 3 and got == want
    t.offload.poll()
    assert overlay.nic_packets == 10 + 3  # the NIC's entry counted them: the key and the hash agree
    for nf, name in (("acl_out", "acl_out_drops"), ("flow_counters", "unknown_flows")):
        assert t.counter(nf, name) == s.counter(nf, name), (nf, name)
    for table in ("acl_out_v4", "flows_v4"):
        assert t.entry_packets(table) == s.entry_packets(table), table
