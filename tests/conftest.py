"""Shared fixtures: paths, the checked examples, and finding the real P4 tools."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from p4gen.backend.p4c import find_tool  # noqa: F401 - the tests' tool lookup is the product's

# Property tests draw the same examples on every run (a change lands or not on its own merits,
# not on the luck of the draw); P4GEN_HYPOTHESIS=explore draws new ones, to look for trouble.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("explore" if os.environ.get("P4GEN_HYPOTHESIS") == "explore" else "repeatable")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BAD = Path(__file__).resolve().parent / "bad"
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE_GOLDEN = bool(os.environ.get("P4GEN_UPDATE_GOLDEN"))


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.nf"))


@pytest.fixture(autouse=True)
def _run_from_root(monkeypatch):
    """Diagnostics name files relative to the repository root, as users see them."""
    monkeypatch.chdir(ROOT)


def check_golden(name: str, text: str) -> None:
    """Compare with tests/golden/NAME; P4GEN_UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    if UPDATE_GOLDEN or not path.exists():
        if not UPDATE_GOLDEN:
            pytest.fail(f"golden file {path} is missing; run P4GEN_UPDATE_GOLDEN=1 pytest to create it")
        path.write_text(text)
        return
    assert text == path.read_text(), f"output differs from {path}; if intended, run P4GEN_UPDATE_GOLDEN=1 pytest"


BMV2 = find_tool("P4GEN_BMV2", "simple_switch_grpc")
P4C = find_tool("P4GEN_P4C", "p4c-bm2-ss")
NEEDS_BMV2 = [
    pytest.mark.bmv2,
    pytest.mark.skipif(BMV2 is None, reason="simple_switch_grpc not found (P4GEN_BMV2, PATH, /opt/p4/bin)"),
    pytest.mark.skipif(P4C is None, reason="p4c-bm2-ss not found (P4GEN_P4C, PATH, /opt/p4/bin): no program.json"),
]


VM1_MAC, GATEWAY_MAC = "02:00:00:00:01:02", "02:00:00:00:00:fe"  # the scenario's (docs/scenario.md)
TCP_TIMESTAMPS = [("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]  # scapy TCP options: 12 bytes


@pytest.fixture(scope="module")
def scenario():
    """examples/vm_offload.nf, checked and lowered: (program, IR graph)."""
    from p4gen.frontend import load_program
    from p4gen.ir import build_ir

    prog, sink = load_program([str(EXAMPLES / "vm_offload.nf")])
    assert prog is not None, sink.render()
    return prog, build_ir(prog)
