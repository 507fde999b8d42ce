"""Front end: parsing, literals, header layouts (scapy as the oracle), checks."""

from __future__ import annotations

import ipaddress

import pytest
from conftest import example_files

from p4gen.frontend import check_source, load_program
from p4gen.frontend import program as P
from p4gen.frontend.literals import LiteralError, parse_colon_addr, parse_ipv4


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_examples_check_clean(path):
    prog, sink = load_program([str(path.relative_to(path.parent.parent))])
    assert sink.render() == ""
    assert prog is not None


def test_vm_offload_matches_the_scenario():
    prog, _ = load_program(["examples/vm_offload.nf"])
    assert prog is not None
    assert [(p.name, p.direction, p.stages) for p in prog.pipelines.values()] == [
        ("vm_egress", "vm_egress", ["tso", "acl_out", "snat", "flow_counters", "overlay_encap"]),
        ("vm_ingress", "vm_ingress", ["overlay_decap", "dnat", "acl_in", "gro"]),
    ]
    seg = prog.segments["tso"]
    assert (seg.mss, seg.max_mss, seg.underlay_mtu) == (None, 1460, 1500)
    encap = [e for e in prog.entries if e.table == "overlay_v4"]
    assert len(encap) == 1
    e = encap[0]
    assert e.keys == [P.KeyMatch("lpm", int(ipaddress.IPv4Address("10.0.0.0")), prefix_len=8)]
    assert e.args == [0x0200C0A80101, 0x0200C0A80102, int(ipaddress.IPv4Address("192.168.1.1")),
                      int(ipaddress.IPv4Address("192.168.1.2")), 5001]
    snat = {e.action: e for e in prog.entries if e.table == "snat_v4"}
    assert snat["snat_rewrite"].args == [int(ipaddress.IPv4Address("203.0.113.10")), 0x0200000000FE]
    acl = [e for e in prog.entries if e.table == "acl_out_v4"]
    first = acl[0]
    assert first.priority == 100
    assert first.keys[0] == P.KeyMatch("ternary", int(ipaddress.IPv4Address("10.0.2.0")), mask=0xFFFFFF00)
    assert first.keys[1] == P.KeyMatch("ternary", 6, mask=0xFF)
    assert first.keys[2] == P.KeyMatch("range", 80, high=80)
    udp = acl[2]
    assert udp.keys[0] == P.KeyMatch("ternary", 0, mask=0, wildcard=True)


# ------------------------------------------------------------ literals


@pytest.mark.parametrize("text", ["10.0.1.2", "0.0.0.0", "255.255.255.255", "203.0.113.10/32", "10.0.0.0/8"])
def test_ipv4_literals_agree_with_ipaddress(text):
    value, plen = parse_ipv4(text)
    net = ipaddress.IPv4Interface(text)
    assert value == int(net.ip)
    assert plen == (net.network.prefixlen if "/" in text else None)


@pytest.mark.parametrize("text", ["300.1.1.1", "1.2.3", "010.0.0.1", "1.2.3.4/33"])
def test_bad_ipv4_literals(text):
    with pytest.raises(LiteralError):
        parse_ipv4(text)


@pytest.mark.parametrize("text", ["fd00:1::2", "::", "fd00:2::/64", "2001:db8::1:0:0:1", "fe80::1/128"])
def test_ipv6_literals_agree_with_ipaddress(text):
    kind, value, plen = parse_colon_addr(text)
    assert kind == "ipv6"
    assert value == int(ipaddress.IPv6Interface(text).ip)


def test_mac_literal():
    assert parse_colon_addr("02:00:c0:a8:01:02") == ("mac", 0x0200C0A80102, None)
    with pytest.raises(LiteralError):
        parse_colon_addr("fd00:::1")


# ------------------------------------------------------------ header layouts


def _std_program() -> P.Program:
    prog, sink = check_source("empty.nf", b"")
    assert prog is not None, sink.render()
    return prog


def test_header_sizes_match_scapy():
    from scapy.contrib.geneve import GENEVE
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Dot1Q, Ether
    from scapy.layers.vxlan import VXLAN

    prog = _std_program()
    oracle = {"ethernet": Ether(), "vlan": Dot1Q(), "ipv4": IP(), "ipv6": IPv6(), "tcp": TCP(), "udp": UDP(),
              "icmp": ICMP(), "vxlan": VXLAN(), "geneve": GENEVE()}
    for name, pkt in oracle.items():
        assert prog.headers[name].fixed_bytes == len(bytes(pkt)), name


def test_ipv4_field_offsets_match_scapy_bytes():
    """Place distinct values in each IPv4 field via scapy, read them back by our offsets."""
    from scapy.layers.inet import IP

    prog = _std_program()
    pkt = bytes(IP(version=4, ihl=5, tos=(0x2E << 2) | 1, len=0x1234, id=0xBEEF, flags=2, frag=0x0ABC, ttl=63,
                   proto=17, chksum=0xCAFE, src="10.0.1.2", dst="203.0.113.10"))
    as_int = int.from_bytes(pkt, "big")
    total = len(pkt) * 8

    def get(field: str) -> int:
        f = prog.headers["ipv4"].field(field)
        return (as_int >> (total - f.offset - f.width)) & ((1 << f.width) - 1)

    assert get("version") == 4 and get("ihl") == 5
    assert get("dscp") == 0x2E and get("ecn") == 1
    assert get("total_len") == 0x1234 and get("identification") == 0xBEEF
    assert get("flags") == 2 and get("frag_offset") == 0x0ABC
    assert get("ttl") == 63 and get("protocol") == 17 and get("hdr_checksum") == 0xCAFE
    assert get("src") == int(ipaddress.IPv4Address("10.0.1.2"))
    assert get("dst") == int(ipaddress.IPv4Address("203.0.113.10"))


def test_tcp_flags_and_options_layout():
    from scapy.layers.inet import TCP

    prog = _std_program()
    tcp = prog.headers["tcp"]
    raw = bytes(TCP(sport=1, dport=2, seq=3, ack=4, dataofs=5, flags="CF", window=7, urgptr=9))
    as_int = int.from_bytes(raw, "big")

    def get(name: str) -> int:
        f = tcp.field(name)
        return (as_int >> (160 - f.offset - f.width)) & ((1 << f.width) - 1)

    assert get("flags") == 0x81  # CWR | FIN, most significant first
    assert get("data_offset") == 5 and get("window") == 7 and get("urgent_ptr") == 9
    assert tcp.varbit is not None and tcp.varbit.width == 320


# ------------------------------------------------------------ semantics


def _errors(src: str) -> list[str]:
    prog, sink = check_source("t.nf", src.encode())
    return [d.headline() for d in sink.sorted() if d.severity == "error"]


def test_every_error_of_a_file_is_reported():
    src = """
const A = 300;
nf n {
    action a(x: bit<8>) { ipv4.ttl = 300; ipv4.dstt = 1; }
    table t { key = { ipv4.dst: lpm; } actions = { a; } default_action = a(A); }
    apply { t.apply(); }
}
entries n.t { (10.0.0.0/33) => a(1); (1.2.3.4) => b(); }
"""
    errs = _errors(src)
    assert "t.nf:4:38: error: value 300 does not fit in 'ipv4.ttl' (bit<8>)" in errs
    assert "t.nf:4:43: error: unknown field 'dstt' in header 'ipv4'" in errs
    assert "t.nf:5:76: error: value 300 does not fit in parameter 'x' of action 'a' (bit<8>)" in errs
    assert "t.nf:8:16: error: prefix length /33 is longer than the 32 bits of an IPv4 address" in errs
    assert "t.nf:8:51: error: unknown action 'b'" in errs
    assert len(errs) == 5


def test_error_rendering_has_source_line_and_caret():
    prog, sink = check_source("t.nf", b"nf n {\n    apply { ipv4.ttll = 1; }\n}\n")
    assert prog is None
    assert sink.render() == (
        "t.nf:2:13: error: unknown field 'ttll' in header 'ipv4'\n"
        "        apply { ipv4.ttll = 1; }\n"
        "                ^\n"
    )


def test_boolean_conditions_and_constants_in_masks():
    src = b"""
const M = 0xff00;
nf n {
    action a() { }
    table t { key = { meta.l4_dst: ternary; } actions = { a; } default_action = a(); }
    apply { if (true && ipv4.ttl == 1 || !(ipv6.hop_limit == 2)) { t.apply(); } }
}
entries n.t { (0x1200 &&& M) => a() priority 5; }
"""
    prog, sink = check_source("t.nf", src)
    assert prog is not None, sink.render()
    assert prog.entries[0].keys == [P.KeyMatch("ternary", 0x1200, mask=0xFF00)]
    cond = prog.nfs["n"].apply[0].cond
    assert isinstance(cond, P.OrC) and isinstance(cond.operands[0], P.AndC)


def test_override_parser_state_for_custom_ethertype():
    src = b"""
header mytag { kind: bit<8>; next_type: bit<16>; pad: bit<8>; }
packet { mytag: mytag; }
parser {
    override state start {
        extract(ethernet);
        transition select(ethernet.ether_type) { 0x88b5: mytag; 0x0800: ipv4; default: accept; }
    }
    state mytag { extract(mytag); transition select(mytag.next_type) { 0x0800: ipv4; default: accept; } }
}
"""
    prog, sink = check_source("t.nf", src)
    assert prog is not None, sink.render()
    start = prog.parser["start"]
    assert [(k[0].value if k[0] else None, n) for k, n in start.cases] == [(0x88B5, "mytag"), (0x0800, "ipv4"),
                                                                          (None, "accept")]
    assert prog.headers["mytag"].fixed_bytes == 4


def test_imports_diamond_and_cycle(tmp_path):
    (tmp_path / "base.nf").write_text("const X = 1;\n")
    (tmp_path / "a.nf").write_text('import "base.nf";\nconst A = 2;\n')
    (tmp_path / "b.nf").write_text('import "base.nf";\nconst B = 3;\n')
    (tmp_path / "main.nf").write_text('import "a.nf";\nimport "b.nf";\n')
    prog, sink = load_program([str(tmp_path / "main.nf")])
    assert prog is not None, sink.render()
    assert {"X", "A", "B"} <= set(prog.consts)

    (tmp_path / "c1.nf").write_text('import "c2.nf";\n')
    (tmp_path / "c2.nf").write_text('\nimport "c1.nf";\n')
    prog, sink = load_program([str(tmp_path / "c1.nf")])
    assert prog is None
    (err,) = sink.errors
    assert err.pos.file.endswith("c1.nf") and (err.pos.line, err.pos.col) == (1, 1)
    assert "import cycle" in err.message and "c1.nf -> " in err.message


@pytest.mark.parametrize("data", [b"", b"\n\n", b"// only a comment\n"])
def test_empty_programs_are_valid(data):
    prog, sink = check_source("e.nf", data)
    assert prog is not None and not sink.items


def test_binary_garbage_and_huge_input_are_clean_errors():
    prog, sink = check_source("g.nf", bytes(range(256)) * 4)
    assert prog is None and sink.errors[0].pos.line >= 1
    big = b"const X = 1;\n" * (6 * 1024 * 1024 // 13)
    prog, sink = check_source("big.nf", big)
    assert prog is None and "too large" in sink.errors[0].message


def test_deep_nesting_is_an_error_not_a_crash():
    depth = 5000
    src = "nf n { apply { " + "if (true) { " * depth + "drop();" + " }" * depth + " } }"
    prog, sink = check_source("deep.nf", src.encode())
    assert prog is None
    assert "nested too deeply" in sink.errors[0].message
    assert sink.errors[0].pos.file == "deep.nf"


def test_forwarded_ports_follow_constants_parameters_and_entries():
    from p4gen.frontend.ports import forwarded_ports

    prog, sink = load_program(["examples/ipv6_only.nf"])
    assert prog is not None, sink.render()
    ports = forwarded_ports(prog)
    assert sorted(ports) == [0, 1, 3, 4]  # UPLINK0/1 via nexthops, VM1_PORT twice, the neighbour's port
    assert [p.line for p in ports[3]] == [258, 259] and ports[4][0].line == 235
    prog, _ = load_program(["examples/vm_offload.nf"])
    assert forwarded_ports(prog) == {}  # its pipelines end on their default ports
    prog, sink = check_source("a.nf", b"nf steer { apply { if (ipv4.ttl == 1) { forward(3); } else { forward(5); } } }"
                                      b"\npipeline out : vm_egress { steer; }\n")
    assert prog is not None, sink.render()
    assert {p: [w.line for w in ws] for p, ws in forwarded_ports(prog).items()} == {3: [1], 5: [1]}  # in apply
