"""`p4gen up` leaves nothing behind: links, namespaces and processes go on Ctrl-C, on
`p4gen down`, after a crash of `up` itself (then `down` cleans up), and when the switch dies.

Hypervisor-only here (runs in CI); the switch's death with -m bmv2.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import NEEDS_BMV2

from p4gen.control.links import netns_supported
from p4gen.testing import realnet

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not netns_supported(), reason="needs root and iproute2 for veths and namespaces")


def start(tmp_path: Path, target: str, tag: str) -> tuple[realnet.UpProcess, Path]:
    out = realnet.build_scenario(tmp_path / "out", target)
    vm = tmp_path / "vm.toml"
    vm.write_text(realnet.VM_TOML.format(ns=f"{tag}vm"))
    up = realnet.UpProcess(out, ["--prefix", tag, "--netns", f"{tag}nic", "--vm", str(vm)])
    up.start()
    state = json.loads((out / "up.json").read_text())
    assert realnet.leftovers(tag), "up created nothing?"
    assert sorted(state["netns"]) == sorted([f"{tag}nic", f"{tag}vm"])
    return up, out


def down(out: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "p4gen", "down", str(out)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def wait_gone(tag: str, seconds: float = 10) -> list[str]:
    end = time.time() + seconds
    while time.time() < end and realnet.leftovers(tag):
        time.sleep(0.1)
    return realnet.leftovers(tag)


def test_ctrl_c_removes_everything(tmp_path):
    tag = f"uc{os.getpid() % 1000}"
    up, out = start(tmp_path, "hypervisor.toml", tag)
    assert up.stop(signal.SIGINT) == 0
    assert wait_gone(tag) == [] and not (out / "up.json").exists()


def test_down_removes_everything(tmp_path):
    tag = f"ud{os.getpid() % 1000}"
    up, out = start(tmp_path, "hypervisor.toml", tag)
    text = down(out)
    assert f"deleted network namespace {tag}vm" in text or wait_gone(tag) == []
    assert up.proc.wait(timeout=20) == 0
    assert wait_gone(tag) == [] and not (out / "up.json").exists()


def test_down_after_up_crashed(tmp_path):
    """`up` killed outright (no cleanup of its own): `down` removes what up.json records."""
    tag = f"uk{os.getpid() % 1000}"
    up, out = start(tmp_path, "hypervisor.toml", tag)
    up.stop(signal.SIGKILL)
    assert realnet.leftovers(tag)  # nothing cleaned by a killed process
    down(out)
    assert wait_gone(tag) == [] and not (out / "up.json").exists()


@NEEDS_BMV2[0]
@NEEDS_BMV2[1]
@NEEDS_BMV2[2]
def test_switch_crash_takes_up_down_cleanly(tmp_path):
    """The switch dies under `up`: up says so, exits non-zero, and removes everything."""
    tag = f"us{os.getpid() % 1000}"
    up, out = start(tmp_path, "bmv2-smartnic.toml", tag)
    state = json.loads((out / "up.json").read_text())
    assert state["nic_netns"] == f"{tag}nic"  # where push and shell find the switch
    switch = [p for p in state["pids"] if p != up.proc.pid]
    assert switch, state
    os.kill(switch[0], signal.SIGKILL)
    assert up.proc.wait(timeout=30) == 1
    assert "simple_switch_grpc exited" in up.text() + up.proc.stdout.read()
    assert wait_gone(tag) == [] and not (out / "up.json").exists()
