"""Every filesystem problem a user can cause is one line `p4gen: error: …` and exit 1 (issue 11)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from p4gen.cli import main

EX = "examples/vm_offload.nf"
IN = "examples/traffic/vm1_egress.pcap"


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "p4gen", *args], capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {})})


def one_line_error(status: int, err: str) -> str:
    """The whole of stderr: one `p4gen: error:` line, exit 1."""
    assert status == 1, err
    assert len(err.splitlines()) == 1 and err.startswith("p4gen: error: "), err
    assert "Errno" not in err and "internal error" not in err
    return err.strip()


@pytest.fixture
def afile(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    return f


def cases(tmp_path, afile) -> list[tuple[list[str], str]]:
    t = str(tmp_path)
    return [
        (["run", EX, "--pipeline", "vm_egress", "--in", IN, "--out", f"{t}/nodir/o.pcap"],
         f"cannot write {t}/nodir/o.pcap: directory {t}/nodir does not exist"),
        (["run", EX, "--pipeline", "vm_egress", "--in", IN, "--out", t], f"cannot write {t}: it is a directory"),
        (["run", EX, "--pipeline", "vm_egress", "--in", IN, "--out", f"{afile}/o.pcap"],
         f"cannot write {afile}/o.pcap: {afile} is not a directory"),
        (["run", EX, "--pipeline", "vm_egress", "--in", f"{t}/nonexist.pcap", "--out", f"{t}/o.pcap"],
         f"cannot read {t}/nonexist.pcap: no such file"),
        (["run", EX, "--pipeline", "vm_egress", "--in", t, "--out", f"{t}/o.pcap"],
         f"cannot read {t}: it is a directory"),
        (["build", EX, "-o", str(afile), "--no-p4c"], f"{afile} exists and is not a directory"),
        (["build", EX, "-o", f"{afile}/sub", "--no-p4c"], f"cannot create {afile}/sub: {afile} is not a directory"),
        (["place", EX, "-o", f"{t}/nodir/p.json"],
         f"cannot write {t}/nodir/p.json: directory {t}/nodir does not exist"),
        (["place", EX, "-o", t], f"cannot write {t}: it is a directory"),
        (["graph", EX, "-o", f"{t}/nodir/g.dot"],
         f"cannot write {t}/nodir/g.dot: directory {t}/nodir does not exist"),
        (["graph", EX, "-o", f"{t}/g.dot", "--placement", f"{t}/nope.json"],
         f"cannot read placement {t}/nope.json: No such file or directory"),
        (["check", f"{t}/nope.nf"], f"cannot read '{t}/nope.nf': No such file or directory"),
        (["place", f"{t}/nope.nf"], f"cannot read '{t}/nope.nf': No such file or directory"),
        (["push", f"{t}/nope"], f"{t}/nope is not a p4gen build output: no such directory"),
        (["shell", f"{t}/nope"], f"{t}/nope is not a p4gen build output: no such directory"),
        (["up", f"{t}/nope"], f"{t}/nope is not a p4gen build output: no such directory"),
        (["down", str(afile)], f"{afile} is not a directory (give the OUTDIR of 'p4gen up')"),
        (["up", str(afile)], f"{afile} is not a p4gen build output: not a directory"),
        (["push", str(afile)], f"{afile} is not a p4gen build output: not a directory"),
    ]


def test_filesystem_problems_are_one_line_errors(tmp_path, afile, capsys):
    (tmp_path / "g.dot").mkdir()
    for argv, message in cases(tmp_path, afile):
        status = main(argv)
        assert one_line_error(status, capsys.readouterr().err) == f"p4gen: error: {message}", argv
    assert not (tmp_path / "o.pcap").exists()  # nothing was run, nothing written
    assert sorted(os.listdir(tmp_path)) == ["afile", "g.dot"]
    status = main(["graph", EX, "-o", str(tmp_path / "g.dot")])
    err = one_line_error(status, capsys.readouterr().err)
    assert err == f"p4gen: error: cannot write {tmp_path}/g.dot: it is a directory"


@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="needs a read-only /sys")
def test_unwritable_paths(tmp_path, capsys):
    # As root os.access() says yes to anything: the output is checked by really opening it.
    status = main(["run", EX, "--pipeline", "vm_egress", "--in", IN, "--out", "/sys/p4gen-test.pcap"])
    err = one_line_error(status, capsys.readouterr().err)
    assert err.startswith("p4gen: error: cannot write /sys/p4gen-test.pcap: ")
    status = main(["build", EX, "-o", "/sys/p4gen-test-out", "--no-p4c"])
    assert one_line_error(status, capsys.readouterr().err).startswith("p4gen: error: cannot write /sys/p4gen-test-out")


def test_check_missing_file_has_the_p4gen_prefix(tmp_path):
    r = run("check", str(tmp_path / "nope.nf"))
    err = one_line_error(r.returncode, r.stderr)
    assert err == f"p4gen: error: cannot read '{tmp_path}/nope.nf': No such file or directory"


def test_require_p4c_without_p4c(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    r = run("build", EX, "-o", str(tmp_path / "out"), "--require-p4c",
            env={"P4GEN_P4C": str(tmp_path / "no-p4c"), "PATH": str(empty)})
    err = one_line_error(r.returncode, r.stderr)
    assert err.startswith("p4gen: error: --require-p4c: p4c not found (") and "skipped" not in err
    assert not (tmp_path / "out").exists()


def test_p4c_docker_without_a_daemon(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    docker = fake / "docker"
    docker.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                      "Is the docker daemon running?' >&2\nexit 1\n")
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    r = run("build", EX, "-o", str(tmp_path / "out"), "--p4c", "docker", env={"PATH": f"{fake}:{os.environ['PATH']}"})
    err = one_line_error(r.returncode, r.stderr)
    assert err == ("p4gen: error: --p4c docker: docker is unavailable: cannot connect to the Docker daemon; "
                   "is it running?")
    assert "p4c failed" not in err
    r = run("build", EX, "-o", str(tmp_path / "out"), "--p4c", "docker", env={"PATH": str(tmp_path / "none")})
    err = one_line_error(r.returncode, r.stderr)
    assert err == "p4gen: error: --p4c docker: docker is unavailable: it is not installed"


def test_shell_against_an_unreachable_switch(tmp_path):
    fake_p4c = tmp_path / "fake-p4c"
    fake_p4c.write_text("#!/bin/sh\necho '{}' > program.json\necho '' > program.p4c.p4info.txtpb\n")
    fake_p4c.chmod(fake_p4c.stat().st_mode | stat.S_IEXEC)
    out = tmp_path / "out"
    assert run("build", EX, "-o", str(out), "--p4c", str(fake_p4c)).returncode == 0
    r = run("shell", str(out), "--grpc-addr", "127.0.0.1:1")
    assert "CRITICAL" not in r.stderr
    assert one_line_error(r.returncode, r.stderr).startswith("p4gen: error: cannot reach the P4Runtime server at "
                                                             "127.0.0.1:1")


def test_version_and_help_texts():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("p4gen 0.")
    top = run("--help").stdout
    down_line = next(line for line in top.splitlines() if line.strip().startswith("down"))
    assert "stop what 'p4gen up OUTDIR' started" in down_line
    assert "Stop what 'p4gen up OUTDIR' started" in run("down", "--help").stdout
    push = " ".join(run("push", "--help").stdout.split())
    assert "(default: 127.0.0.1:9559)" in push


def test_p4c_path_that_does_not_exist(tmp_path, capsys):
    status = main(["build", EX, "-o", str(tmp_path / "out"), "--p4c", str(tmp_path / "nope")])
    assert one_line_error(status, capsys.readouterr().err) == (f"p4gen: error: --p4c {tmp_path}/nope: p4c not found "
                                                               "(no such executable file)")
