"""P4 back end: golden P4 per example, P4Info and entries structure, names, and real p4c."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import ROOT, check_golden, example_files, find_tool
from google.protobuf import text_format
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2

from p4gen.backend.build import build
from p4gen.backend.entries import canonical
from p4gen.backend.model import build_model, jenkins_one_at_a_time
from p4gen.backend.names import P4_KEYWORDS, p4_ident
from p4gen.backend.p4info import shortest_unique_suffixes
from p4gen.cli import main
from p4gen.frontend import check_source, load_program
from p4gen.ir import build_ir
from p4gen.place import load_profile, place

EXAMPLES = [p for p in example_files() if p.name != "common.nf"]
P4C = find_tool("P4GEN_P4C", "p4c-bm2-ss")
needs_p4c = pytest.mark.skipif(P4C is None, reason="p4c-bm2-ss not found (P4GEN_P4C, PATH, /opt/p4/bin)")


def built(path: str, tmp_path: Path, target: str = "targets/bmv2-smartnic.toml", p4c=None):
    prog, sink = load_program([path])
    assert prog is not None, sink.render()
    g = build_ir(prog)
    pl = place(g, prog, load_profile(target))
    return build(prog, g, pl, path, tmp_path, p4c)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_golden_p4(path, tmp_path):
    built(f"examples/{path.name}", tmp_path)
    check_golden(f"p4/{path.stem}.p4", (tmp_path / "program.p4").read_text())


def _p4info(tmp_path) -> p4info_pb2.P4Info:
    return text_format.Parse((tmp_path / "program.p4info.txtpb").read_text(), p4info_pb2.P4Info())


def test_p4info_structure(tmp_path):
    built("examples/vm_offload.nf", tmp_path)
    info = _p4info(tmp_path)
    assert info.pkg_info.arch == "v1model"
    tables = {t.preamble.name: t for t in info.tables}
    assert set(tables) == {
        "acl_out.acl_out_v4", "acl_out.acl_out_v6", "snat.snat_v4", "flow_counters.flows_v4",
        "flow_counters.flows_v6", "overlay_encap.overlay_v4", "overlay_encap.overlay_v6", "overlay_decap.tunnels",
        "dnat.dnat_v4", "acl_in.acl_in_v4", "acl_in.acl_in_v6"}
    # no flow table although the profile has [offload]: here the static split already runs every
    # stage the NIC could fuse (tests/test_offload_manager.py checks the table where it is worth one)
    assert not info.registers
    acl = tables["acl_out.acl_out_v4"]
    assert acl.preamble.id >> 24 == 0x02 and acl.preamble.alias == "acl_out_v4"
    assert [(f.id, f.name, f.bitwidth, f.match_type) for f in acl.match_fields] == [
        (1, "ipv4.dst", 32, p4info_pb2.MatchField.TERNARY), (2, "ipv4.protocol", 8, p4info_pb2.MatchField.TERNARY),
        (3, "meta.l4_dst", 16, p4info_pb2.MatchField.RANGE)]
    assert acl.size == 256 and len(acl.direct_resource_ids) == 1
    direct = {d.preamble.id: d for d in info.direct_counters}
    assert direct[acl.direct_resource_ids[0]].direct_table_id == acl.preamble.id
    assert tables["flow_counters.flows_v4"].idle_timeout_behavior == p4info_pb2.Table.NOTIFY_CONTROL
    actions = {a.preamble.name: a for a in info.actions}
    encap = actions["overlay_encap.encap"]
    assert [(p.id, p.name, p.bitwidth) for p in encap.params] == [
        (1, "smac", 48), (2, "dmac", 48), (3, "sip", 32), (4, "dip", 32), (5, "vni", 24)]
    # "allow" exists in two nfs: aliases must keep them apart.
    assert actions["acl_in.allow"].preamble.alias == "acl_in.allow"
    assert actions["snat.snat_rewrite"].preamble.alias == "snat_rewrite"
    ids = [x.preamble.id for x in (*info.tables, *info.actions, *info.counters, *info.direct_counters,
                                   *info.registers)]
    assert len(ids) == len(set(ids))
    # The ids in program.p4's @id annotations are the P4Info's.
    text = (tmp_path / "program.p4").read_text()
    annotated = {int(v, 16) for v in re.findall(r"@id\((0x[0-9a-f]+)\)", text)}
    assert set(ids) == annotated


def test_ids_follow_p4c_hashing_and_dsl_id():
    assert jenkins_one_at_a_time(b"a") == 0xCA2E9442  # reference value of the one-at-a-time hash
    src = b"""
nf n { action a() { } @id(77) table t { key = { ipv4.dst: exact; } actions = { a; } default_action = a(); }
       apply { t.apply(); } }
pipeline p : vm_ingress { n; }
"""
    prog, sink = check_source("i.nf", src)
    g = build_ir(prog)
    m = build_model(prog, g, place(g, prog, load_profile("targets/bmv2-smartnic.toml")))
    assert m.tables["t"].id == 0x0200004D
    assert m.actions[("n", "a")].id == 0x01000000 | (jenkins_one_at_a_time(b"n.a") & 0xFFFFFF)


def test_entries_encoding(tmp_path):
    built("examples/vm_offload.nf", tmp_path)
    info = _p4info(tmp_path)
    req = text_format.Parse((tmp_path / "entries.txtpb").read_text(), p4runtime_pb2.WriteRequest())
    tables = {t.preamble.id: t.preamble.name for t in info.tables}
    by_table: dict[str, list] = {}
    for u in req.updates:
        assert u.type == p4runtime_pb2.Update.INSERT
        by_table.setdefault(tables[u.entity.table_entry.table_id], []).append(u.entity.table_entry)
    snat = by_table["snat.snat_v4"]
    assert len(snat) == 2
    assert snat[0].match[0].lpm.value == b"\x0a\x00\x00\x00" and snat[0].match[0].lpm.prefix_len == 8
    assert len(snat[1].match) == 0  # 0.0.0.0/0 is a don't-care: omitted
    assert snat[1].action.action.params[0].value == bytes([203, 0, 113, 10])
    assert snat[0].priority == 0
    acl = by_table["acl_out.acl_out_v4"]
    assert all(e.priority > 0 for e in acl)
    udp_rule = acl[2]  # (_, UDP, 53..53)
    assert [m.field_id for m in udp_rule.match] == [2, 3]
    assert udp_rule.match[1].range.low == b"\x35" == udp_rule.match[1].range.high
    deny = acl[3]  # (10.0.0.0/8, TCP, _)
    assert deny.match[0].ternary.mask == b"\xff\x00\x00\x00" and len(deny.match) == 2
    tunnels = by_table["overlay_decap.tunnels"]
    assert tunnels[0].match[1].exact.value == canonical(5001, 24) == b"\x13\x89"
    assert canonical(0, 16) == b"\x00"


def test_hypervisor_only_placement_keeps_no_tables_on_the_nic(tmp_path):
    prog, _ = load_program(["examples/vm_offload.nf"])
    g = build_ir(prog)
    res = build(prog, g, place(g, prog, None), "examples/vm_offload.nf", tmp_path, None)
    info = _p4info(tmp_path)
    assert len(info.tables) == 0
    req = text_format.Parse((tmp_path / "entries.txtpb").read_text(), p4runtime_pb2.WriteRequest())
    assert len(req.updates) == 0
    assert "P4GEN_ST_PUNT" in (tmp_path / "program.p4").read_text()
    assert res.files[:3] == ["program.p4", "program.p4info.txtpb", "entries.txtpb"]


def test_identifiers_never_become_p4_keywords(tmp_path):
    src = b"""
header weird { type: bit<8>; key: bit<8>; }
packet { weird: weird; }
nf control_nf {
    counter register;
    action counter(apply_: bit<8>) { weird.type = apply_; count(register); }
    table table_ { key = { weird.key: exact; } actions = { counter; } default_action = counter(1); }
    apply { table_.apply(); }
}
pipeline p : vm_ingress { control_nf; }
"""
    prog, sink = check_source("k.nf", src)
    assert prog is not None, sink.render()
    g = build_ir(prog)
    build(prog, g, place(g, prog, load_profile("targets/bmv2-smartnic.toml")), "k.nf", tmp_path, None)
    text = (tmp_path / "program.p4").read_text()
    assert "bit<8> u_type;" in text and "bit<8> u_key;" in text
    assert "counter(1, CounterType.packets_and_bytes) control_nf_register;" in text
    assert '@name(".control_nf.counter")' in text
    for kw in P4_KEYWORDS:
        assert p4_ident(kw) != kw


def test_shortest_unique_suffixes():
    assert shortest_unique_suffixes(["a.b.c", "d.b.c", "x.y"]) == {"a.b.c": "a.b.c", "d.b.c": "d.b.c", "x.y": "y"}
    assert shortest_unique_suffixes(["d.a.c", "e.b.c"]) == {"d.a.c": "a.c", "e.b.c": "b.c"}


def test_build_cli_without_p4c(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("P4GEN_P4C", str(tmp_path / "no-such-p4c"))
    out = tmp_path / "out"
    assert main(["build", "examples/vm_offload.nf", "-o", str(out), "--target", "targets/bmv2-smartnic.toml"]) == 0
    stdout = capsys.readouterr().out
    assert "note: no p4c found" in stdout
    assert (out / "program.p4").exists() and not (out / "program.json").exists()
    assert main(["build", "examples/vm_offload.nf", "-o", str(out), "--require-p4c"]) == 1
    err = capsys.readouterr().err
    assert "p4gen: error: --require-p4c: p4c not found" in err and "skipped" not in err


def _normalised(info: p4info_pb2.P4Info) -> p4info_pb2.P4Info:
    """Order-insensitive: repeated top-level objects sorted by id."""
    out = p4info_pb2.P4Info()
    out.CopyFrom(info)
    for name in ("tables", "actions", "counters", "direct_counters", "registers"):
        items = sorted(getattr(out, name), key=lambda x: x.preamble.id)
        copies = [type(x)() for x in items]
        for c, x in zip(copies, items, strict=True):
            c.CopyFrom(x)
        del getattr(out, name)[:]
        getattr(out, name).extend(copies)
    return out


@pytest.mark.p4c
@needs_p4c
@pytest.mark.parametrize("target", ["targets/bmv2-smartnic.toml", "targets/constrained-nic.toml"])
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_p4c_compiles_and_agrees_on_p4info(path, target, tmp_path):
    res = built(f"examples/{path.name}", tmp_path, target, P4C)
    assert res.p4c is not None and res.p4c.ok, res.p4c.output if res.p4c else "p4c did not run"
    ours = _p4info(tmp_path)
    theirs = text_format.Parse((tmp_path / "program.p4c.p4info.txtpb").read_text(), p4info_pb2.P4Info())
    assert _normalised(theirs) == _normalised(ours), text_format.MessageToString(theirs)
    assert (tmp_path / "program.json").stat().st_size > 0


@pytest.mark.p4c
@needs_p4c
def test_p4c_errors_point_at_the_dsl(tmp_path, capsys):
    from p4gen.backend.emit import LineMap
    from p4gen.backend.p4c import run_p4c
    from p4gen.diagnostics import Pos

    (tmp_path / "program.p4").write_text("#include <core.p4>\n#include <v1model.p4>\nthis is not P4;\n")
    lm = LineMap({3: Pos("examples/vm_offload.nf", 24, 5)})
    res = run_p4c(P4C, tmp_path, lm)
    assert not res.ok
    assert "program.p4(3)" in res.output
    assert "generated line 3: this is not P4;" in res.output
    assert "examples/vm_offload.nf:24:5: note: the DSL code it came from" in res.output


def test_docker_p4c_without_docker(tmp_path, monkeypatch):
    if shutil.which("docker"):
        pytest.skip("docker is installed here")
    res = built("examples/vm_offload.nf", tmp_path, p4c="docker")
    assert res.p4c is not None and not res.p4c.ok and "docker is unavailable: it is not installed" in res.p4c.output
    assert res.p4c.unavailable is not None


def test_build_needs_a_pipeline(capsys):
    assert main(["build", "examples/common.nf", "-o", "/tmp/p4gen-none", "--no-p4c"]) == 1
    assert "declares no pipeline: nothing to build" in capsys.readouterr().err
    assert main(["place", "examples/common.nf", "--target", "targets/bmv2-smartnic.toml"]) == 0


@pytest.mark.parametrize("n", [1, 3, 7, 20])
@pytest.mark.parametrize("target", ["targets/bmv2-smartnic.toml", "targets/constrained-nic.toml"])
def test_build_synthetic_programs(n, target, tmp_path):
    """Every match kind, placed on both NICs: the build writes consistent P4, P4Info and entries."""
    from p4gen.synth import synth_program

    prog, sink = check_source("s.nf", synth_program(n).encode())
    assert prog is not None, sink.render()
    g = build_ir(prog)
    res = build(prog, g, place(g, prog, load_profile(target)), "s.nf", tmp_path, None)
    info = _p4info(tmp_path)
    assert {t.preamble.name for t in info.tables} == {t.name for t in res.model.tables.values()}
    text = (tmp_path / "program.p4").read_text()
    for t in res.model.tables.values():
        assert f"table {t.p4name} {{" in text and f"{t.p4name}.apply()" in text


def test_unconditional_transitions_reach_the_inner_headers(tmp_path):
    """`transition inner_ethernet;` after VXLAN: the NIC must parse the tenant's headers."""
    built("examples/vm_offload.nf", tmp_path)
    text = (tmp_path / "program.p4").read_text()
    vxlan = text[text.index("state parse_vxlan {"):]
    assert vxlan.split("}", 1)[0].strip().endswith("transition parse_inner_ethernet;")


def test_carried_metadata_layout_and_framing():
    from scapy.fields import BitField
    from scapy.packet import Packet

    from p4gen.crossing import FLAG_FORWARDED, VERSION, Reason, carried_layout, crossing
    from p4gen.crossing.protocol import BadPunt

    prog, _ = load_program(["examples/ipv6_only.nf"])
    layout = carried_layout(prog)
    # ingress_port crosses too (a resumed packet keeps the port it entered the system on)
    assert layout.fields == (("ingress_port", 9), ("l4_src", 16), ("l4_dst", 16), ("nexthop_id", 16),
                             ("p4gen_pad", 7)) and layout.size == 8
    prog9 = check_source("m.nf", b"metadata { vrf: bit<9>; }\n")[0]
    assert carried_layout(prog9).fields[-2:] == (("vrf", 9), ("p4gen_pad", 6)) and carried_layout(prog9).size == 7

    class PuntHdr(Packet):  # scapy as the oracle of the bit packing
        fields_desc = [BitField("version", 0, 8), BitField("pipeline", 0, 8), BitField("resume", 0, 16),
                       BitField("flow", 0, 16), BitField("reason", 0, 8), BitField("code", 0, 8),
                       BitField("egress_port", 0, 16), BitField("flags", 0, 8), BitField("reserved", 0, 8),
                       BitField("flow_hash", 0, 32)]

    class Carried(Packet):
        fields_desc = [BitField("ingress_port", 0, 9), BitField("l4_src", 0, 16), BitField("l4_dst", 0, 16),
                       BitField("nexthop_id", 0, 16), BitField("pad", 0, 7)]

    cross = crossing(prog)
    name = list(prog.pipelines)[0]
    meta = {"ingress_port": 255, "l4_src": 40000, "l4_dst": 443, "nexthop_id": 2}
    frame = cross.wrap(name, 7, b"packet", meta, port=3, flow_hash=0xDEADBEEF)
    assert frame[:16] == bytes(PuntHdr(version=VERSION, pipeline=1, resume=7, egress_port=3, flags=FLAG_FORWARDED,
                                       flow_hash=0xDEADBEEF))
    assert frame[16:24] == bytes(Carried(ingress_port=255, l4_src=40000, l4_dst=443, nexthop_id=2))
    assert frame[24:] == b"packet"
    p = cross.unwrap(frame)
    assert (p.pipeline, p.resume, p.port, p.meta, p.data, p.flow_hash) == (name, 7, 3, meta, b"packet", 0xDEADBEEF)
    done = cross.unwrap(cross.wrap(name, None, b"x", reason=Reason.TO_HYPERVISOR, code=9))
    assert (done.resume, done.port, done.reason, done.code) == (None, None, Reason.TO_HYPERVISOR, 9)
    with pytest.raises(BadPunt, match="needs 24 header bytes"):
        cross.unwrap(frame[:23])
    with pytest.raises(BadPunt, match="pipeline 9"):
        cross.unwrap(frame[:1] + b"\x09" + frame[2:])


def test_p4src_punt_header_is_the_generated_one():
    """p4src/p4gen_punt.p4 is for readers; the emitter generates the same text from p4gen.crossing."""
    from p4gen.crossing.p4text import punt_p4

    assert (ROOT / "p4src" / "p4gen_punt.p4").read_text() == punt_p4()


DOC = b"""
nf fw {
    action allow() { }
    action deny() { drop(); }
    @doc("IPv4 allow list: the first match decides")
    table acl { key = { ipv4.dst: lpm; } actions = { allow; deny; } default_action = deny(); }
    apply { acl.apply(); }
}
pipeline out : vm_egress { fw; }
"""


def test_doc_annotation_reaches_p4_and_p4info(tmp_path):
    """@doc("...") is the control plane's documentation: a comment and @brief in program.p4,
    preamble.doc.brief in P4Info (as p4c makes it from @brief)."""
    src = tmp_path / "doc.nf"
    src.write_bytes(DOC)
    built(str(src), tmp_path / "out")
    text = (tmp_path / "out" / "program.p4").read_text()
    assert "// IPv4 allow list: the first match decides" in text
    assert '@brief("IPv4 allow list: the first match decides")' in text
    (table,) = _p4info(tmp_path / "out").tables
    assert table.preamble.doc.brief == "IPv4 allow list: the first match decides"


def test_dsl_constant_names_and_primitive_arguments_in_the_p4(tmp_path):
    """The P4 a user reads uses the DSL's names: `const bit<32> PUBLIC_IP`, compared by name,
    and each primitive's comment keeps its arguments."""
    src = tmp_path / "names.nf"
    src.write_bytes(b"const UPLINK1 = 1;\nconst DNS_SERVER = 10.9.9.9;\n"
                    b"nf steer { apply { if (ipv4.dst == DNS_SERVER) { forward(UPLINK1); } } }\n"
                    b"pipeline out : vm_egress { steer; }\n")
    built(str(src), tmp_path / "out")
    text = (tmp_path / "out" / "program.p4").read_text()
    assert "const bit<32> DNS_SERVER = 32w0xa090909;  // 10.9.9.9" in text
    assert "== DNS_SERVER)" in text and "// forward(UPLINK1)" in text


def test_stack_last_in_a_control_is_the_highest_valid_element(tmp_path):
    """P4 allows `.last` in parsers only: reads and isValid() of `vlan.last` in an apply block
    become the highest valid element (writes to `.last` the checker refuses)."""
    src = tmp_path / "last.nf"
    src.write_bytes(b"nf t { apply { if (vlan.last.isValid() && vlan.last.vid == 7) { vlan[0].pcp = 5; } } }\n"
                    b"pipeline out : vm_egress { t; }\n")
    built(str(src), tmp_path / "out")
    text = (tmp_path / "out" / "program.p4").read_text()
    control = text[text.index("control P4genIngress"):text.index("control P4genEgress")]
    assert ".last" not in control
    assert "(hdr.vlan[1].isValid() ? hdr.vlan[1].vid : (hdr.vlan[0].isValid() ? hdr.vlan[0].vid : 12w0))" in control
    assert "hdr.vlan[0].isValid() && ((hdr.vlan[1].isValid()" in control
