"""The generated control flow (p4gen.runtime.control_flow): what each entry point contains,
and that programs of any nesting depth compile and branch as written."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from p4gen.frontend import check_source, load_program
from p4gen.ir import build_ir
from p4gen.place import HYP, NIC, load_profile, place
from p4gen.runtime.control_flow import MAX_DEPTH, EntryPoint
from p4gen.runtime.pipeline import HypervisorPipeline


def code(src: str) -> list[str]:
    """The generated lines without comments and docstrings."""
    return [line for line in src.splitlines() if not line.strip().startswith(("#", '"""'))]


@pytest.fixture(scope="module")
def vm():
    prog, sink = load_program(["examples/vm_offload.nf"])
    assert prog is not None, sink.render()
    return prog, build_ir(prog)


def test_software_entry_runs_every_stage_in_order(vm):
    prog, g = vm
    src = EntryPoint(HypervisorPipeline(prog, g), "vm_egress", None, False).source
    counted = [line.split("'")[1] for line in src.splitlines() if "SP[" in line]
    stages = sorted((d["stage"] for _, d in g.nodes(data=True)
                     if d["stage"].pipeline == "vm_egress" and d["stage"].kind not in ("parse", "classify", "deparse")),
                    key=lambda s: s.order)
    assert counted == [s.id for s in stages]
    assert "PUNT" not in src.split("def vm_egress__from_start")[1].replace("SP[", "")  # nothing handed over


def test_split_entry_hands_over_at_the_first_nic_stage(vm):
    prog, g = vm
    pl = place(g, prog, load_profile("targets/bmv2-smartnic.toml"))
    hyp = EntryPoint(HypervisorPipeline(prog, g, pl.assignment, HYP), "vm_egress", None, False).source
    first_nic = min((g.nodes[s]["stage"] for s, t in pl.assignment.items()
                     if t == NIC and g.nodes[s]["stage"].pipeline == "vm_egress"), key=lambda s: s.order)
    assert "SP['vm_egress/tso'] += ctx.pkt.segs" in hyp  # segmentation stays in the hypervisor
    assert f"ctx.resume = {first_nic.order}" in hyp and hyp.count("ctx.state = PUNT") == 1
    # The NIC model resuming there: earlier stages left out, no counting of the hypervisor's stages.
    nic = EntryPoint(HypervisorPipeline(prog, g, pl.assignment, NIC), "vm_egress", first_nic.order, False).source
    assert "tso" not in code(nic) and code(nic)[3].strip() == "ctx.state = RUN"


def test_resume_inside_an_else_arm_is_steered_statically(vm):
    prog, g = vm
    hv = HypervisorPipeline(prog, g)
    v6 = next(d["stage"] for _, d in g.nodes(data=True) if d["stage"].id == "vm_egress/acl_out.acl_out_v6")
    src = EntryPoint(hv, "vm_egress", v6.order, False).source
    body = [line.strip() for line in code(src)[3:]]
    assert body[:3] == ["ctx.state = RUN", "SP['vm_egress/acl_out.acl_out_v6'] += ctx.pkt.segs", body[2]]
    assert "acl_out_v4" not in src and "acl_out.if" not in src
    # A resume stage that does not exist leaves the packet in SKIP: counted as bad_resume.
    frame = bytes(Ether() / IP(src="10.0.1.2", dst="10.0.2.9") / TCP(dport=443))
    assert hv.run("vm_egress", frame, resume=10_000) == [] and hv.drops["bad_resume"] == 1


def test_dry_entry_counts_nothing_and_never_hands_over(vm):
    prog, g = vm
    pl = place(g, prog, load_profile("targets/bmv2-smartnic.toml"))
    src = EntryPoint(HypervisorPipeline(prog, g, pl.assignment, HYP), "vm_egress", 3, True).source
    assert "SP[" not in src and "PUNT =" not in src and "ctx.state = PUNT" not in src


def deep_program(depth: int) -> str:
    """An else-if chain `depth` deep on the IPv4 TTL: TTL t (1 ≤ t ≤ depth) sets DSCP t."""
    chain = "drop();"
    for t in range(depth, 0, -1):
        chain = f"if (ipv4.ttl == {t}) {{ set_dscp({t}); }} else {{ {chain} }}"
    return f"""
nf deep {{
    apply {{ {chain} }}
}}
pipeline out : vm_egress {{ deep; }}
"""


@pytest.mark.parametrize("depth", [3, MAX_DEPTH + 30])  # DSCP is 6 bits: depth < 64
def test_nesting_of_any_depth_compiles_and_branches(depth):
    prog, sink = check_source("deep.nf", deep_program(depth).encode())
    assert prog is not None, sink.render()
    hv = HypervisorPipeline(prog, build_ir(prog))
    src = EntryPoint(hv, "out", None, False).source
    assert ("def _arm" in src) == (depth > MAX_DEPTH)
    for ttl in (1, depth // 2 + 1, depth):
        out = hv.run("out", bytes(Ether() / IP(ttl=ttl) / TCP()))
        assert len(out) == 1 and Ether(out[0].data)[IP].tos >> 2 == ttl
    assert hv.run("out", bytes(Ether() / IP(ttl=depth + 1) / TCP())) == []
    assert hv.drops["deep"] == 1


def test_build_writes_the_generated_code_and_tracebacks_show_it(vm, tmp_path):
    """OUTDIR/hypervisor.py: one function per entry point, stage comments with the DSL line;
    a failure inside generated code shows the generated line (linecache)."""
    import traceback

    from p4gen.backend.build import build

    prog, g = vm
    pl = place(g, prog, load_profile("targets/bmv2-smartnic.toml"))
    build(prog, g, pl, "examples/vm_offload.nf", tmp_path, None)
    text = (tmp_path / "hypervisor.py").read_text()
    assert "def vm_egress__from_start(ctx):" in text and "def vm_ingress__from_start(ctx):" in text
    assert "segment_tso(ctx)" in text
    assert "examples/vm_offload.nf:" in text and "# stage " in text
    compile(text, "hypervisor.py", "exec")  # a real Python file
    hv = HypervisorPipeline(prog, g)

    def broken(ctx):
        raise RuntimeError("boom")

    entry = EntryPoint(hv, "vm_egress", None, False)
    name = next(n for n in entry.ns if n.startswith("apply_acl_out"))
    entry.ns[name] = broken
    try:
        from p4gen.runtime.pipeline import RUN, _Ctx

        frame = bytes(Ether(src="02:00:00:00:01:02") / IP(src="10.0.1.2", dst="10.0.2.9") / TCP(dport=443))
        entry.function(_Ctx(hv.parser.parse(frame), RUN, None, "vm_egress"))
    except RuntimeError:
        tb = traceback.format_exc()
    assert '<p4gen:vm_egress__from_start>' in tb and f"{name}(ctx)" in tb
