"""The command line as users run it: exit codes, messages, files written."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from p4gen.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "p4gen", *args], capture_output=True, text=True, check=False)


def test_check_ok_and_error_exit_codes():
    ok = run("check", "examples/vm_offload.nf")
    assert ok.returncode == 0, ok.stderr
    assert "examples/vm_offload.nf: ok" in ok.stdout
    bad = run("check", "examples/vm_offload.nf", "tests/bad/unknown_field.nf")
    assert bad.returncode == 1
    assert "tests/bad/unknown_field.nf:6:13: error: unknown field 'time_to_live' in header 'ipv4'" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("cmd", [["--help"], ["check", "--help"], ["graph", "--help"]])
def test_help(cmd):
    r = run(*cmd)
    assert r.returncode == 0 and "usage: p4gen" in r.stdout


def test_missing_and_binary_files(tmp_path):
    missing = run("check", str(tmp_path / "nope.nf"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr and "Traceback" not in missing.stderr
    garbage = tmp_path / "garbage.nf"
    garbage.write_bytes(bytes(range(256)))
    r = run("check", str(garbage))
    assert r.returncode == 1 and f"{garbage}:2:118: error: file is not UTF-8 text (byte 0x80)" in r.stderr
    assert "Traceback" not in r.stderr
    directory = run("check", str(tmp_path))
    assert directory.returncode == 1 and "is a directory" in directory.stderr


def test_graph_dot(tmp_path, capsys):
    out = tmp_path / "vm.dot"
    assert main(["graph", "examples/vm_offload.nf", "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("digraph p4gen {")
    assert '"vm_egress/tso" [label="tso\\nsegment", shape=parallelogram];' in text
    assert 'style=dashed' in text  # dependency edges are drawn
    assert '[label="parse", shape=invhouse]' in text and "parse\\nparse" not in text  # no doubled labels
    assert "legend" not in text  # no colours, no legend
    assert main(["graph", "examples/vm_offload.nf", "--placement", "--target", "targets/bmv2-smartnic.toml",
                 "-o", str(out)]) == 0
    text = out.read_text()
    assert '"legend_nic" [label="runs on nic"' in text and '"legend_hypervisor"' in text


def test_graph_svg(tmp_path, capsys):
    out = tmp_path / "vm.svg"
    status = main(["graph", "examples/vm_offload.nf", "-o", str(out)])
    if shutil.which("dot"):
        assert status == 0 and out.read_bytes().lstrip().startswith((b"<?xml", b"<svg"))
    else:
        assert status == 1 and "Graphviz" in capsys.readouterr().err


def test_graph_rejects_unknown_format(tmp_path, capsys):
    assert main(["graph", "examples/vm_offload.nf", "-o", str(tmp_path / "x.pdf")]) == 1
    assert "unknown output format" in capsys.readouterr().err


HOST_PORT_PROGRAM = """\
nf fwd {
    action out(port: bit<9>) { forward(port); }
    table t {
        key = { ipv4.dst: exact; }
        actions = { out; }
        default_action = out(0);
        size = 4;
    }
    apply { t.apply(); }
}
pipeline p : vm_ingress { fwd; }
entries fwd.t {
    (10.0.0.1) => out(3);
    (10.0.0.2) => out(255);
}
"""


def test_build_refuses_forwarding_to_the_host_port(tmp_path):
    src = tmp_path / "hp.nf"
    src.write_text(HOST_PORT_PROGRAM)
    r = run("build", str(src), "-o", str(tmp_path / "out"), "--target", "targets/bmv2-smartnic.toml", "--no-p4c")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert lines[0].startswith(f"{src}:14:5: error: forward(255) reaches NIC port 255, the host (punt) port")
    assert lines[1:] == ["        (10.0.0.2) => out(255);", "        ^"]
    assert not (tmp_path / "out").exists()
    # All in software there is no host port: the same program builds.
    ok = run("build", str(src), "-o", str(tmp_path / "sw"), "--no-p4c")
    assert ok.returncode == 0, ok.stderr


def test_push_and_shell_enter_the_nics_namespace_only(tmp_path, monkeypatch):
    """up.json lists every namespace `down` deletes (the VM's too); push and shell rerun
    themselves in the NIC's alone ("nic_netns"), and not at all when it is already entered."""
    import json

    from p4gen import cli

    calls = []
    monkeypatch.setattr("subprocess.call", lambda cmd, env=None: calls.append(cmd) or 0)
    monkeypatch.delenv("P4GEN_NETNS", raising=False)
    state = tmp_path / "up.json"
    state.write_text(json.dumps({"netns": ["p4gvm", "p4g"], "nic_netns": None}))  # hypervisor-only up
    assert cli._enter_up_netns(str(tmp_path)) is None and calls == []
    state.write_text(json.dumps({"netns": ["p4g", "p4gvm"], "nic_netns": "p4g"}))
    assert cli._enter_up_netns(str(tmp_path)) == 0
    assert calls[0][:4] == ["ip", "netns", "exec", "p4g"]
    monkeypatch.setenv("P4GEN_NETNS", "p4g")
    assert cli._enter_up_netns(str(tmp_path)) is None and len(calls) == 1
