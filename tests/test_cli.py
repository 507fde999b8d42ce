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
