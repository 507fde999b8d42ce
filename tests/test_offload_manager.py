"""The per-flow offload without a switch: the flow table's layout, the prediction a flow is
learnt from, the hypervisor's whole run of a learnt packet, and the manager's decisions
against a recording stand-in for the P4Runtime client (writes, counter reads, their order).

The expectations come from the scenario's rules and from scapy's view of the packets (the
key copy a NIC entry holds must be the packet's own fields), not from the code under test.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import zlib

import pytest
from conftest import P4C, ROOT
from google.protobuf import text_format
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw
from test_backend import built

from p4gen.control.flows import render, snapshot
from p4gen.control.offload import OffloadManager
from p4gen.crossing import pipeline_numbers
from p4gen.crossing.protocol import Punted, Reason
from p4gen.frontend.program import KeyMatch, TableEntry
from p4gen.place import HYP, load_profile, place
from p4gen.place.flowlayout import flow_layouts
from p4gen.runtime.pipeline import HypervisorPipeline
from p4gen.testing import SoftwareTarget

TUNNEL = Ether(dst="02:00:c0:a8:01:01") / IP(src="192.168.1.2", dst="192.168.1.1") / UDP(sport=50000, dport=4789,
                                                                                          chksum=0)


def overlay(src="10.0.2.5", sport=443, seq=1) -> bytes:
    inner = (Ether(src="02:00:00:00:02:05", dst="02:00:00:00:01:02") / IP(src=src, dst="10.0.1.2")
             / TCP(sport=sport, dport=40000, seq=seq) / Raw(b"q" * 10))
    return bytes(TUNNEL / VXLAN(vni=5001) / inner)


def profile(tmp_path, name="constrained-nic", extra="", entries=2, idle_ms=1500) -> str:
    text = (ROOT / "targets" / f"{name}.toml").read_text() + extra
    if "[offload]" not in text:
        text += f"\n[offload]\nflow_entries = {entries}\nthreshold_packets = 8\nidle_timeout_ms = {idle_ms}\n"
    path = tmp_path / f"{name}-offload.toml"
    path.write_text(text)
    return str(path)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class FakeClient:
    """Records what the manager writes and reads; counters are set by the test."""

    def __init__(self) -> None:
        self.log: list[tuple] = []
        self.entries: dict[int, p4runtime_pb2.TableEntry] = {}  # flow hash → entry
        self.cells: dict[int, tuple[int, int]] = {}

    def write(self, updates) -> None:
        for u in updates:
            te = u.entity.table_entry
            h = int.from_bytes(te.match[1].exact.value, "big")
            self.log.append((p4runtime_pb2.Update.Type.Name(u.type), h))
            if u.type == p4runtime_pb2.Update.INSERT:
                self.entries[h] = te
            else:
                del self.entries[h]

    def read_counter(self, counter_id, index=None):
        self.log.append(("READ", index))
        return dict(self.cells) if index is None else {index: self.cells.get(index, (0, 0))}


@pytest.fixture(scope="module")
def program(scenario):
    return scenario


def manager(program, tmp_path, prof: str):
    prog, g = program
    built("examples/vm_offload.nf", tmp_path, prof)
    info = text_format.Parse((tmp_path / "program.p4info.txtpb").read_text(), p4info_pb2.P4Info())
    pl = place(g, prog, load_profile(prof))
    hv = HypervisorPipeline(prog, g, pl.assignment, HYP, ports=pl.problem.nic.ports)
    clock = Clock()
    m = OffloadManager(prog, g, pl, hv, info, "unused:0", clock=clock)
    m.client = FakeClient()
    return m, clock


def learn(m, frame: bytes, h: int):
    lay = m.layouts["vm_ingress"]
    return m.learn(Punted("vm_ingress", lay.first_stage, Reason.LEARN, 0, None, {"ingress_port": 0}, frame,
                          flow_hash=h))


def action_data(m, te) -> dict[str, int]:
    names = [n for n, _w in m.layouts["vm_ingress"].action_params()]
    return {names[p.param_id - 1]: int.from_bytes(p.value, "big") for p in te.action.action.params}


def test_layout_of_the_scenario_on_the_constrained_nic(program, tmp_path):
    prog, g = program
    pl = place(g, prog, load_profile(profile(tmp_path)))
    lays = flow_layouts(prog, g, pl, pipeline_numbers(prog))
    assert list(lays) == ["vm_egress", "vm_ingress"]
    # vm_egress starts in the hypervisor (the VM is attached to it): looked up after segmentation
    assert lays["vm_egress"].hv_first and not lays["vm_ingress"].hv_first
    lay = lays["vm_ingress"]
    assert [t.table for t in lay.tables] == ["tunnels", "dnat_v4", "acl_in_v4", "acl_in_v6"]
    assert lay.tables[1].params == (("dnat_rewrite", "private_ip", 32), ("dnat_rewrite", "vm_mac", 48))
    # only coalescing is beyond the NIC: it is where a fused packet goes to the hypervisor
    assert set(lay.handover.values()) == {"coalesce"} and lay.problem is None
    names = {k.name for k in lay.key}
    assert {"inner_ipv4.src", "ipv4.src", "vxlan.vni", "meta.l4_src", "ipv4.$valid", "vxlan.$valid"} <= names
    assert sum(k.width for k in lay.key) > 320  # wider than the NIC's key limit: hence the hash key


def test_a_learnt_flow_is_installed_with_its_key_and_decisions(program, tmp_path):
    m, _clock = manager(program, tmp_path, profile(tmp_path))
    flow = learn(m, overlay(), 0x1234)
    assert flow.where == "nic" and flow.why == "offloaded"
    assert flow.decisions == {"tunnels": ("decap", {}), "dnat_v4": (None, {}), "acl_in_v4": ("allow", {})}
    assert m.client.log == []  # batched: nothing written before flush
    assert m.flush() == 1 and m.client.log == [("INSERT", 0x1234)]
    te = m.client.entries[0x1234]
    data = action_data(m, te)
    lay = m.layouts["vm_ingress"]
    key, rest = {}, data["key"]  # the fields concatenated, the first at the top
    for k in reversed(lay.key):
        key[k.name], rest = rest & ((1 << k.width) - 1), rest >> k.width
    pkt = Ether(overlay())  # scapy's view of the same packet: the key copy is its fields
    assert key["ipv4.src"] == int(ipaddress.IPv4Address(pkt[IP].src))
    assert key["inner_ipv4.src"] == int(ipaddress.IPv4Address(pkt[VXLAN][IP].src))
    assert key["vxlan.vni"] == 5001 and key["inner_tcp.src_port"] == pkt[VXLAN][TCP].sport == 443
    assert key["meta.l4_src"] == 443  # the parser's transport ports are the innermost ones
    assert key["ipv6.$valid"] == 0 and key["vxlan.$valid"] == 1 and key["inner_ipv6.src"] == 0
    tunnels, acl = lay.tables[0], lay.tables[2]
    assert data[tunnels.selector] == tunnels.actions.index("decap") + 1
    assert data[acl.selector] == acl.actions.index("allow") + 1 and data["slot"] == 0
    assert [(m_.field_id, int.from_bytes(m_.exact.value, "big")) for m_ in te.match] == [(1, lay.number),
                                                                                         (2, 0x1234)]


def test_reasons_a_flow_stays_in_the_hypervisor(program, tmp_path):
    m, _ = manager(program, tmp_path, profile(tmp_path))
    assert learn(m, overlay(), 1).where == "nic"
    assert learn(m, overlay(src="10.0.2.6"), 2).where == "nic"
    full = learn(m, overlay(src="10.0.2.7"), 3)
    assert full.where == "hypervisor" and full.why.startswith("table full (2 entries)")
    clash = learn(m, overlay(src="10.0.2.8"), 1)  # the hash of an offloaded flow, another key
    assert clash is None and m.stats["collisions"] == 1
    assert learn(m, bytes(Ether() / IP())[:20], 9) is None and m.stats["malformed"] == 1
    # a tunnel the NIC refuses: dropped at decapsulation, which the static split runs on the NIC
    bad_vni = bytes(TUNNEL / VXLAN(vni=7) / Ether() / IP(src="10.0.2.5", dst="10.0.1.2") / TCP())
    assert learn(m, bad_vni, 4).why == "no gain: the static split runs as much of its path on the NIC"
    # a NIC that cannot branch cannot start the pipeline's path
    nob = tmp_path / "nobranch"
    nob.mkdir()
    text = (ROOT / "targets" / "constrained-nic.toml").read_text().replace(' "hash", "branch",', ' "hash",')
    (nob / "nb.toml").write_text(text + "\n[offload]\nflow_entries = 4\n")
    m3, _ = manager(program, nob, str(nob / "nb.toml"))
    assert learn(m3, overlay(), 5).why.startswith("capability: the NIC lacks 'branch' for overlay_decap.if1")


def test_idle_flows_leave_deleted_before_their_counts_are_read_and_merged(program, tmp_path):
    m, clock = manager(program, tmp_path, profile(tmp_path))
    flow = learn(m, overlay(), 7)
    m.flush()
    m.client.cells[flow.slot] = (22, 22 * 100)
    clock.t += 1
    m.poll()
    assert flow.nic_packets == 22 and flow.where == "nic"
    clock.t += 1.6  # no new packet for longer than the idle timeout
    m.client.log.clear()
    m.poll()
    assert flow.where == "hypervisor" and flow.why == "idle for 1.5 s (counter unchanged)"
    # the entry goes first; the read after it sees every packet that could ever hit it
    deleted = m.client.log.index(("DELETE", 7))
    assert ("READ", 0) in m.client.log[deleted + 1:]
    assert (flow.merged_packets, flow.merged_bytes) == (22, 2200) and m.stats["evicted_idle"] == 1
    allow = next(e for e in m.hv.tables["acl_in_v4"].entries if e.priority == 100 and e.keys[2].value == 443)
    assert m.merged_entry_packets("acl_in_v4", allow) == 22
    # the slot's counter keeps counting: the next flow there starts from its value
    again = learn(m, overlay(src="10.0.2.9"), 8)
    m.flush()
    assert again.slot == 0
    m.client.cells[0] = (25, 2500)
    clock.t += 1
    m.poll()
    assert again.nic_packets == 3


def test_a_hotter_flow_takes_the_coldest_entry(program, tmp_path):
    m, clock = manager(program, tmp_path, profile(tmp_path))
    a, b = learn(m, overlay(src="10.0.2.10"), 10), learn(m, overlay(src="10.0.2.11"), 11)
    m.flush()
    hot = learn(m, overlay(src="10.0.2.12"), 12)
    assert hot.where == "hypervisor"
    m.client.cells = {a.slot: (100, 0), b.slot: (5, 0)}
    clock.t += 1.0
    m.poll()  # rates: a 100/s, b 5/s on the NIC
    clock.t += 0.1
    learn(m, overlay(src="10.0.2.12"), 12)  # 64 more misses in 0.1 s: 640/s
    m.client.log.clear()
    m.poll()
    assert hot.where == "nic" and b.where == "hypervisor" and a.where == "nic"
    assert b.why == "table full; rebalanced out for a hotter flow" and m.stats["evicted_rebalance"] == 1
    assert [x[0] for x in m.client.log if x[0] != "READ"] == ["DELETE", "INSERT"]
    assert hot.slot == 1 and b.merged_packets == 5


def test_a_table_change_revalidates_the_flows_that_used_it(program, tmp_path):
    m, _ = manager(program, tmp_path, profile(tmp_path, entries=4))
    web = learn(m, overlay(), 20)
    dns = learn(m, bytes(TUNNEL / VXLAN(vni=5001) / Ether(dst="02:00:00:00:01:02") / IP(src="8.8.8.8", dst="10.0.1.2")
                         / UDP(sport=53, dport=3333)), 21)
    m.flush()
    assert web.where == dns.where == "nic"
    assert m.table_changed("dnat_v4") == 2  # both looked DNAT up (a miss is a decision too)
    assert web.where == "hypervisor" and web.why.startswith("revalidated: dnat_v4 changed")
    m.client.log.clear()
    assert learn(m, overlay(), 20).where == "nic"  # learnt again, from the tables as they are now
    assert m.table_changed("acl_in_v6") == 0  # no IPv4 flow looked it up


def test_forgetting_the_nic_after_a_restart(program, tmp_path):
    m, _ = manager(program, tmp_path, profile(tmp_path))
    f = learn(m, overlay(), 30)
    m.flush()
    m.forget_nic()
    assert f.where == "hypervisor" and f.why == "switch restarted" and len(m.free) == 2
    assert learn(m, overlay(), 30).where == "nic"


def test_flows_snapshot_and_cli(program, tmp_path):
    m, _ = manager(program, tmp_path, profile(tmp_path))
    f = learn(m, overlay(), 0xABC)
    m.seen(Punted("vm_ingress", 3, Reason.PLACEMENT, 0, None, {}, overlay(), flow_hash=0xABC))
    m.seen(Punted("vm_ingress", 3, Reason.PLACEMENT, 0, None, {}, overlay(src="10.0.2.50"), flow_hash=0xDEF))
    f.nic_packets, f.nic_bytes = 40, 4000
    data = snapshot(m)
    assert data["table"] == {"size": 2, "used": 1}
    rows = {r["hash"]: r for r in data["flows"]}
    assert rows["00000abc"]["where"] == "nic" and rows["00000abc"]["packets"] == {"nic": 40, "hypervisor": 1}
    assert rows["00000abc"]["key"]["inner_ipv4.src"] == "10.0.2.5"
    assert rows["00000def"]["why"] == "below threshold (8 packets)" and rows["00000def"]["key"] == {}
    (tmp_path / "flows.json").write_text(json.dumps(data))
    out = subprocess.run([sys.executable, "-m", "p4gen", "flows", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == render(data)
    assert "vm_ingress   00000abc NIC" in out.stdout and "hypervisor fast path" in out.stdout
    missing = subprocess.run([sys.executable, "-m", "p4gen", "flows", str(tmp_path / "nope")], capture_output=True,
                             text=True)
    assert missing.returncode == 1 and "is not a directory" in missing.stderr


@pytest.mark.parametrize("frame", [
    overlay(), overlay(src="10.0.3.9", sport=22),
    bytes(TUNNEL / VXLAN(vni=7) / Ether() / IP(src="10.0.2.5", dst="10.0.1.2") / TCP()),
    bytes(Ether(dst="02:00:c0:a8:01:01") / IP(src="198.51.100.7", dst="203.0.113.10") / TCP(sport=443, dport=5555)),
], ids=["allowed", "denied", "bad_vni", "dnat"])
def test_a_learnt_packet_run_whole_in_the_hypervisor_is_the_software_result(program, tmp_path, frame):
    """The LEARN packet runs every stage in the hypervisor, in one pass: its outputs and
    counts are the all-software run's."""
    prog, g = program
    pl = place(g, prog, load_profile(profile(tmp_path)))
    hv = HypervisorPipeline(prog, g, pl.assignment, HYP, ports=pl.problem.nic.ports)
    first = flow_layouts(prog, g, pl, pipeline_numbers(prog))["vm_ingress"].first_stage
    out = hv.run("vm_ingress", frame, resume=first, meta={"ingress_port": 0}, whole=True)
    soft = SoftwareTarget(prog, g)
    soft.send("uplink", frame)
    assert [o.data for o in out if o.kind == "vm"] == soft.received("vm")
    assert all(o.kind == "vm" for o in out)  # nothing left for the NIC: no second crossing
    for key, cells in soft.hv.counters.items():
        assert hv.counters[key] == cells, key
    assert {k: v for k, v in hv.drops.items() if v} == {k: v for k, v in soft.drops.items() if v}


def test_prediction_counts_nothing_and_names_the_path(program, tmp_path):
    prog, g = program
    pl = place(g, prog, load_profile(profile(tmp_path)))
    hv = HypervisorPipeline(prog, g, pl.assignment, HYP, ports=pl.problem.nic.ports)
    trace = hv.predict("vm_ingress", overlay(), {"ingress_port": 0})
    assert trace.tables == {"tunnels", "dnat_v4", "acl_in_v4"}
    assert [e.action for e in trace.entries] == ["decap", "allow"]
    names = {st.order: st.name for st in __import__("p4gen.ir.lower", fromlist=["x"]).stage_trees(g)["vm_ingress"]
             .stages()}
    assert [names[s] for s in trace.stages][-1] == "gro" and "acl_in.acl_in_v4" in [names[s] for s in trace.stages]
    assert not any(hv.stage_packets.values()) and not any(c[0] for cells in hv.counters.values() for c in cells)
    assert all(e.packets == 0 for t in hv.tables.values() for e in t.entries)
    deny = TableEntry("acl_in", "acl_in_v4", [KeyMatch("ternary", 0x0A000205, mask=0xFFFFFFFF),
                                                KeyMatch("ternary", 6, mask=0xFF), KeyMatch("range", 0, high=0xFFFF)],
                      "deny", [], 300, prog.entries[0].pos)
    hv.insert_entry(deny)
    assert [e.action for e in hv.predict("vm_ingress", overlay(), {"ingress_port": 0}).entries] == ["decap", "deny"]


@pytest.mark.p4c
@pytest.mark.skipif(P4C is None, reason="p4c-bm2-ss not found (P4GEN_P4C, PATH, /opt/p4/bin)")
@pytest.mark.parametrize("variant", ["offload", "offload-no-branch"])
@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.nf")), ids=lambda p: p.stem)
def test_p4c_compiles_the_flow_table_on_the_constrained_nic(path, variant, tmp_path):
    """The fused code for every example on a small NIC (and on one that cannot branch, where
    every fused packet hands over at once): p4c accepts it and its P4Info is ours."""
    from test_backend import _normalised

    text = (ROOT / "targets" / "constrained-nic.toml").read_text()
    if variant == "offload-no-branch":
        text = text.replace(' "hash", "branch",', ' "hash",')
    prof = tmp_path / "nic.toml"
    prof.write_text(text + "\n[offload]\nflow_entries = 64\n")
    res = built(f"examples/{path.name}", tmp_path / "out", str(prof), P4C)
    assert res.p4c is not None and res.p4c.ok, res.p4c.output if res.p4c else "p4c did not run"
    ours = text_format.Parse((tmp_path / "out" / "program.p4info.txtpb").read_text(), p4info_pb2.P4Info())
    theirs = text_format.Parse((tmp_path / "out" / "program.p4c.p4info.txtpb").read_text(), p4info_pb2.P4Info())
    assert _normalised(theirs) == _normalised(ours)


def test_an_entry_freed_by_an_idle_flow_goes_to_a_waiting_flow(program, tmp_path):
    m, clock = manager(program, tmp_path, profile(tmp_path))
    a, b = learn(m, overlay(src="10.0.2.20"), 40), learn(m, overlay(src="10.0.2.21"), 41)
    waiting = learn(m, overlay(src="10.0.2.22"), 42)
    m.flush()
    assert waiting.where == "hypervisor"
    m.client.cells = {a.slot: (0, 0), b.slot: (9, 900)}
    clock.t += 1.0
    m.poll()
    m.client.cells[b.slot] = (20, 2000)  # b keeps going; a has been quiet since it went in
    clock.t += 0.6
    m.poll()
    assert a.where == "hypervisor" and a.why.startswith("idle") and b.where == "nic"
    assert waiting.where == "nic" and waiting.slot == 0  # at the same poll, without waiting for a LEARN
    assert [x for x in m.client.log if x[0] != "READ"][-2:] == [("DELETE", 40), ("INSERT", 42)]


def test_the_flow_table_in_the_p4info(program, tmp_path):
    """Where a flow could gain (the constrained NIC with [offload]): the table, its action, the
    counter of flow slots and the learning register, as the manager and the P4 both expect."""
    built("examples/vm_offload.nf", tmp_path, profile(tmp_path, entries=2))
    info = text_format.Parse((tmp_path / "program.p4info.txtpb").read_text(), p4info_pb2.P4Info())
    flows = next(t for t in info.tables if t.preamble.name == "p4gen.flows")
    assert [(f.name, f.bitwidth, f.match_type) for f in flows.match_fields] == [
        ("meta.p4gen_pipeline", 8, p4info_pb2.MatchField.EXACT),
        ("meta.p4gen_flow_hash", 32, p4info_pb2.MatchField.EXACT)]
    assert flows.size == 2 and flows.idle_timeout_behavior == p4info_pb2.Table.NO_TIMEOUT  # lacks idle_timeout
    actions = {a.preamble.id: a for a in info.actions}
    (fused,) = [actions[r.id] for r in flows.action_refs if actions[r.id].preamble.name == "p4gen.flow_vm_ingress"]
    params = [(p.name, p.bitwidth) for p in fused.params]
    prog, g = program
    pl = place(g, prog, load_profile(profile(tmp_path, entries=2)))
    lay = flow_layouts(prog, g, pl, pipeline_numbers(prog))["vm_ingress"]
    assert params[:2] == [("slot", 32), ("key", lay.key_width)] and ("sel_tunnels", 8) in params
    assert ("dnat_v4__dnat_rewrite__private_ip", 32) in params
    assert {c.preamble.name: c.size for c in info.counters}["p4gen.flow_packets"] == 2
    assert [(r.preamble.name, r.size) for r in info.registers] == [("p4gen.learn", 16384)]
    assert len(flows.direct_resource_ids) == 1


def test_a_flow_from_the_vm_is_learnt_in_the_hypervisor_and_handed_over(program, tmp_path):
    """vm_egress starts in the hypervisor: its flows are learnt from the fast path's counts, the
    entry's hash is the NIC's CRC-32 of the key, and once the entry is in, the hypervisor hands
    the flow's packets over after segmentation; when it leaves, it keeps them again."""
    m, clock = manager(program, tmp_path, profile(tmp_path, entries=4))
    lay = m.layouts["vm_egress"]
    assert lay.hv_first and lay.first_stage == 3  # acl_out.if1, after tso
    frame = bytes(Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe") / IP(src="10.0.1.2", dst="10.0.2.9")
                  / TCP(sport=40000, dport=443) / Raw(b"e" * 20))

    def out():
        _name, outputs = m.hv.run_direction("vm_egress", frame)
        (o,) = outputs
        return o.kind, o.resume

    static = out()
    assert static[0] == "to_nic" and static[1] > lay.first_stage  # the static split: overlay_encap on the NIC
    for _ in range(9):
        out()
    m.poll()
    (h,) = [h for (name, h) in m.flows if name == "vm_egress"]
    flow = m.flows[("vm_egress", h)]
    assert flow.where == "nic" and [x for x in m.client.log if x[0] != "READ"] == [("INSERT", h)]
    # the NIC's hash, built independently: the key's bits after the pipeline's, as a bit string
    bits = format(lay.number, "08b") + "".join(format(v, f"0{k.width}b") for k, v in zip(lay.key, flow.key,
                                                                                         strict=True))
    bits += "0" * (-len(bits) % 8)
    assert h == zlib.crc32(int(bits, 2).to_bytes(len(bits) // 8, "big"))
    assert out() == ("to_nic", lay.first_stage)  # handed over where the flow table is looked up
    m.client.cells[flow.slot] = (0, 0)
    clock.t += 20  # idle
    m.poll()
    assert flow.where == "hypervisor" and out() == static  # the hypervisor keeps it again


def test_flows_lists_a_vm_flow_once_before_and_after_it_is_learnt(program, tmp_path):
    m, _clock = manager(program, tmp_path, profile(tmp_path, entries=4))
    frame = bytes(Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe") / IP(src="10.0.1.2", dst="8.8.8.8")
                  / TCP(sport=40001, dport=443) / Raw(b"e" * 20))
    for _ in range(5):
        m.hv.run_direction("vm_egress", frame)
    m.poll()
    (row,) = [f for f in snapshot(m, m.hv)["flows"] if f["pipeline"] == "vm_egress"]
    assert row["why"].startswith("below threshold (8 packets); fast path") and row["packets"]["hypervisor"] == 5
    assert row["key"]["ipv4.dst"] == "8.8.8.8" and row["key"]["meta.l4_dst"] == "443"
    for _ in range(5):
        m.hv.run_direction("vm_egress", frame)
    m.poll()
    (row,) = [f for f in snapshot(m, m.hv)["flows"] if f["pipeline"] == "vm_egress"]
    assert row["where"] == "nic" and row["why"] == "offloaded" and row["hash"]
