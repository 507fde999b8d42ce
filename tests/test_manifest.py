"""build.json: a build's inputs and outputs by hash; `up` and `push` trust the build's own files."""

from __future__ import annotations

import hashlib
import json
import os
import stat

import pytest
from conftest import ROOT

from p4gen.backend.manifest import ManifestError, load_built_placement
from p4gen.cli import main

LIB = """\
const VM1_MAC = 02:00:00:00:01:02;
"""

PROGRAM = """\
import "lib.nf";
nf out_acl {
    action deny() { drop(); }
    action allow() { }
    table acl_tx {
        key = { ipv4.dst: exact; }
        actions = { deny; allow; }
        default_action = allow();
    }
    apply { acl_tx.apply(); }
}
nf in_acl {
    action deny() { drop(); }
    action allow() { }
    table acl_rx {
        key = { ipv4.src: exact; }
        actions = { deny; allow; }
        default_action = allow();
    }
    apply { acl_rx.apply(); }
}
pipeline tx : vm_egress { out_acl; }
pipeline rx : vm_ingress { in_acl; }
flow f_tx { match ethernet.src == VM1_MAC; pipeline tx; }
flow f_rx { match ipv4.isValid(); pipeline rx; }
"""


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def project(tmp_path):
    """A program with an import, a one-table NIC and rates under which the NIC's table goes to tx
    (without the rates it goes to rx)."""
    (tmp_path / "lib.nf").write_text(LIB)
    (tmp_path / "prog.nf").write_text(PROGRAM)
    nic = (ROOT / "targets/constrained-nic.toml").read_text()
    (tmp_path / "nic.toml").write_text(nic.replace("tables = 4", "tables = 1"))
    (tmp_path / "rates.toml").write_text("[rates]\nf_tx = 100000\nf_rx = 10\n")
    return tmp_path


def build(p, out, *extra) -> int:
    return main(["build", str(p / "prog.nf"), "-o", str(out), "--target", str(p / "nic.toml"),
                 "--rates", str(p / "rates.toml"), "--no-p4c", *extra])


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("p4gen: error: "), err
    return err.strip()


def test_build_records_inputs_and_outputs(project, capsys):
    out = project / "out"
    assert build(project, out) == 0
    m = json.loads((out / "build.json").read_text())
    sources = {os.path.basename(s["path"]): s["sha256"] for s in m["inputs"]["sources"]}
    assert sources == {"prog.nf": sha(project / "prog.nf"), "lib.nf": sha(project / "lib.nf")}
    targets = {t["role"]: t for t in m["inputs"]["targets"]}
    assert targets["nic"]["sha256"] == sha(project / "nic.toml")
    assert targets["hypervisor"]["builtin"] == "hypervisor"
    assert m["inputs"]["rates"]["sha256"] == sha(project / "rates.toml")
    assert m["p4gen_version"]
    for name in ("program.p4", "program.p4info.txtpb", "entries.txtpb", "placement.json", "hypervisor_plan.json"):
        assert m["outputs"][name] == sha(out / name)
    assert m["p4c"] is None


def test_load_built_placement_is_the_builds_own(project, capsys):
    out = project / "out"
    assert build(project, out) == 0
    prog, g, pl = load_built_placement(out)
    built = {s["id"]: s["target_kind"] for s in json.loads((out / "placement.json").read_text())["stages"]}
    assert dict(pl.assignment) == built
    # The rates put tx's table on the NIC; placing again without them (what `up` did) would not.
    assert pl.assignment["tx/out_acl.acl_tx"] == "nic" and pl.assignment["rx/in_acl.acl_rx"] == "hypervisor"
    assert pl.problem.nic.name == "constrained-nic" and set(prog.pipelines) == {"tx", "rx"}
    assert g.number_of_nodes() == len(built)


def test_up_accepts_an_unchanged_build_made_with_rates(project, capsys, monkeypatch):
    out = project / "out"
    assert build(project, out) == 0
    capsys.readouterr()
    monkeypatch.setenv("P4GEN_BMV2", str(project / "no-bmv2"))
    assert main(["up", str(out)]) == 1  # past the build's checks: stopped only by the missing switch
    assert one_error(capsys) == ("p4gen: error: simple_switch_grpc not found (P4GEN_BMV2, PATH, /opt/p4/bin); "
                                 "'p4gen up OUTDIR --target targets/hypervisor.toml' runs without a NIC")


@pytest.mark.parametrize("changed", ["lib.nf", "prog.nf", "nic.toml", "rates.toml"])
def test_up_refuses_a_changed_input_and_names_it(project, capsys, changed):
    out = project / "out"
    assert build(project, out) == 0
    capsys.readouterr()
    with open(project / changed, "a") as fh:
        fh.write("\n# changed\n" if changed.endswith(".toml") else "\n// changed\n")
    assert main(["up", str(out)]) == 1
    assert one_error(capsys) == (f"p4gen: error: {project / changed} has changed since {out} was built: "
                                 "rebuild it with p4gen build")


def test_up_refuses_a_missing_input(project, capsys):
    out = project / "out"
    assert build(project, out) == 0
    capsys.readouterr()
    (project / "lib.nf").unlink()
    assert main(["up", str(out)]) == 1
    assert f"{project / 'lib.nf'} is missing" in one_error(capsys)


def test_placement_that_does_not_match_the_program(project, capsys):
    out = project / "out"
    assert build(project, out) == 0
    data = json.loads((out / "placement.json").read_text())
    data["stages"] = [s for s in data["stages"] if s["id"] != "tx/out_acl.acl_tx"]
    data["stages"].append({"id": "tx/nosuch", "target_kind": "nic"})
    (out / "placement.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"placement.json does not match .*prog.nf: no placement for "
                                            r"tx/out_acl.acl_tx; stages the program does not have: tx/nosuch"):
        load_built_placement(out)
    capsys.readouterr()
    assert main(["up", str(out)]) == 1
    assert "does not match" in one_error(capsys)


def test_up_on_a_directory_without_manifest(tmp_path, capsys):
    assert main(["up", str(tmp_path)]) == 1
    assert "has no build.json" in one_error(capsys)
    assert main(["up", str(tmp_path / "nope")]) == 1
    assert "no such directory" in one_error(capsys)


# ------------------------------------------------------------ stale p4c output, foreign files (issue 11)


@pytest.fixture
def fake_p4c(tmp_path):
    """A stand-in for p4c-bm2-ss that writes the two files p4c writes."""
    exe = tmp_path / "fake-p4c"
    exe.write_text("#!/bin/sh\necho '{\"fake\": true}' > program.json\necho '' > program.p4c.p4info.txtpb\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe)


def test_rebuild_without_p4c_removes_stale_program_json(project, fake_p4c, capsys):
    out = project / "out"
    assert main(["build", str(project / "prog.nf"), "-o", str(out), "--p4c", fake_p4c]) == 0
    m = json.loads((out / "build.json").read_text())
    assert m["p4c"]["program.p4"] == sha(out / "program.p4")
    assert m["p4c"]["outputs"]["program.json"] == sha(out / "program.json")
    assert main(["build", str(project / "prog.nf"), "-o", str(out), "--no-p4c"]) == 0
    assert not (out / "program.json").exists() and not (out / "program.p4c.p4info.txtpb").exists()
    assert json.loads((out / "build.json").read_text())["p4c"] is None


def test_push_refuses_program_json_not_made_from_program_p4(project, fake_p4c, capsys):
    out = project / "out"
    assert main(["build", str(project / "prog.nf"), "-o", str(out), "--p4c", fake_p4c]) == 0
    with open(out / "program.p4", "a") as fh:
        fh.write("// edited\n")
    capsys.readouterr()
    assert main(["push", str(out), "--grpc-addr", "127.0.0.1:1"]) == 1
    assert one_error(capsys) == (f"p4gen: error: {out / 'program.json'} was not made from the current "
                                 f"{out / 'program.p4'}: rebuild with p4c (p4gen build --require-p4c)")
    # A program.json dropped next to a build p4c never ran for is refused too.
    assert main(["build", str(project / "prog.nf"), "-o", str(out), "--no-p4c"]) == 0
    (out / "program.json").write_text("{}")
    capsys.readouterr()
    assert main(["push", str(out), "--grpc-addr", "127.0.0.1:1"]) == 1
    assert "was not made from the current" in one_error(capsys)


def test_build_refuses_a_directory_with_foreign_files(project, capsys):
    out = project / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "zz.pcap").write_bytes(b"")
    assert build(project, out) == 1
    assert one_error(capsys) == (f"p4gen: error: {out} holds files p4gen did not write (notes.txt, zz.pcap): "
                                 "choose an empty directory, or use --force to build there anyway")
    assert not (out / "program.p4").exists()
    assert build(project, out, "--force") == 0
    assert (out / "notes.txt").read_text() == "mine"
    # A previous build's own files are overwritten without a word.
    (out / "notes.txt").unlink()
    (out / "zz.pcap").unlink()
    capsys.readouterr()
    assert build(project, out) == 0
    assert capsys.readouterr().err == ""


def test_a_build_from_before_build_json_may_be_rebuilt(project, capsys):
    out = project / "out"
    assert build(project, out) == 0
    (out / "build.json").unlink()  # as an older p4gen left it
    capsys.readouterr()
    assert build(project, out) == 0 and capsys.readouterr().err == ""
    (out / "build.json").unlink()
    (out / "mine.txt").write_text("x")
    assert build(project, out) == 1
    assert "holds files p4gen did not write (mine.txt)" in one_error(capsys)
