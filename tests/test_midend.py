"""Core operations: primitives defined once, both back ends translating them.

Per-pass golden tests on small programs (as p4c's testdata does): the core operations
each primitive expands to, and the P4 each one becomes. And the one-home rule: no
protocol number is written in the P4 emitter or the hypervisor runtime.
"""

from __future__ import annotations

import re
from pathlib import Path

from conftest import check_golden

from p4gen.frontend import load_program
from p4gen.frontend import program as P
from p4gen.midend.coreops import expand, show

ROOT = Path(__file__).resolve().parent.parent

PRIMS = """
nf prims {
    counter hits;
    action all(port: bit<9>, vid: bit<12>) {
        dec_ttl(); set_dscp(46); push_vlan(vid, 3); pop_vlan(); forward(port); count(hits, 0);
        vxlan_encap(02:00:00:00:00:01, 02:00:00:00:00:02, 192.168.1.1, 192.168.1.2, 5001);
        geneve_decap(); to_hypervisor(7); drop();
    }
    apply { all(1, 10); }
}
pipeline out : vm_egress { prims; }
"""


def test_primitives_expand_to_core_operations(tmp_path):
    path = tmp_path / "prims.nf"
    path.write_text(PRIMS)
    prog, sink = load_program([str(path)])
    assert prog is not None, sink.render()
    body = prog.nfs["prims"].actions["all"].body
    text = "\n".join(f"{s.name}:\n" + "".join(f"    {show(op)}\n" for op in expand(prog, s))
                     for s in body if isinstance(s, P.PrimOp))
    check_golden("coreops/prims.txt", text + "\n")


# Protocol numbers that have one home (p4gen.midend.protocols, std.nf, p4gen.crossing).
STRAY = re.compile(r"\b(0x0800|0x8100|0x86dd|0x6558|0xc000|4789|6081)\b|\bprotocol\"?, 17\b", re.I)


def test_no_protocol_constant_outside_its_home():
    offenders = []
    for path in [ROOT / "p4gen/backend/emit.py", *sorted((ROOT / "p4gen/runtime").glob("*.py"))]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if STRAY.search(line.split("#", 1)[0]):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


TREE = """
nf a {
    table t { key = { ipv4.dst: exact; } actions = { NoAction; } default_action = NoAction(); }
    action NoAction() { }
    apply {
        meta.l4_src = 1; dec_ttl();
        if (t.apply().hit) { set_dscp(1); } else if (ipv4.ttl + 1 == 0) { drop(); } else { forward(2); }
        if (!ipv6.isValid()) { set_dscp(3); }
    }
}
segment tso { mss = auto; max_mss = 1460; underlay_mtu = 1500; }
pipeline out : vm_egress { tso -> a; }
"""


def test_stage_tree_golden(tmp_path):
    """The midend's stage tree pass: grouping, numbering and arm ranges of a small program."""
    from p4gen.midend.stages import build_stage_trees, dump

    path = tmp_path / "tree.nf"
    path.write_text(TREE)
    prog, sink = load_program([str(path)])
    assert prog is not None, sink.render()
    check_golden("stages/tree.txt", dump(build_stage_trees(prog)["out"]))
