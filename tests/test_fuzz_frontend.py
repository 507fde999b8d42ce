"""Property: whatever bytes come in, the front end answers with diagnostics, never a traceback.

Inputs are the real examples, truncated and mutated (byte edits, line
shuffles, token swaps), so that the fuzzer reaches deep into the checker
rather than failing at the first character.
"""

from __future__ import annotations

import re

import pytest
from conftest import example_files
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p4gen.frontend import check_source

SOURCES = [p.read_bytes() for p in example_files()]
TOKENS = sorted({t for src in SOURCES for t in re.findall(rb"[A-Za-z_][A-Za-z0-9_]*|\d+|[^\sA-Za-z0-9_]", src)})
SPECIAL = [b"", b"\x00", b"\xff", b"{", b"}", b";", b"(", b")", b"=>", b"&&&", b"..", b"/129", b"99999999999",
           b"0x", b"300.1.1.1", b"::::", b"@pin(", b"override state", b"import \"x.nf\";"]


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(SOURCES)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "delete", "insert", "replace_token", "dup_line", "swap_lines"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "truncate":
            del data[i:]
        elif op == "delete":
            del data[i:i + draw(st.integers(1, 40))]
        elif op == "insert":
            blob = draw(st.one_of(st.sampled_from(SPECIAL + TOKENS), st.binary(max_size=8)))
            data[i:i] = blob
        elif op == "replace_token":
            m = re.search(rb"[A-Za-z_0-9]+", bytes(data[i:]))
            if m:
                s, e = i + m.start(), i + m.end()
                data[s:e] = draw(st.sampled_from(TOKENS + SPECIAL))
        else:
            lines = bytes(data).split(b"\n")
            j = draw(st.integers(0, len(lines) - 1))
            k = draw(st.integers(0, len(lines) - 1))
            if op == "dup_line":
                lines.insert(k, lines[j])
            else:
                lines[j], lines[k] = lines[k], lines[j]
            data = bytearray(b"\n".join(lines))
    return bytes(data)


def _assert_clean(data: bytes) -> None:
    prog, sink = check_source("fuzz.nf", data)
    text = sink.render()  # rendering must not fail either
    if prog is None:
        assert sink.errors, "no program and no error"
    for d in sink.errors:
        assert d.pos is not None and d.pos.line >= 1 and d.pos.col >= 1, d
        assert f"{d.pos}: error: " in text


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_examples_never_crash(data):
    _assert_clean(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_never_crash(data):
    _assert_clean(data)


@pytest.mark.parametrize("cut", range(0, 4000, 7))
def test_truncated_vm_offload(cut):
    src = (example_files()[0].parent / "vm_offload.nf").read_bytes()
    _assert_clean(src[:cut])


@pytest.mark.fuzz
@settings(max_examples=50000, deadline=None)
@given(mutated())
def test_mutated_examples_long(data):
    """Opt-in: pytest -m fuzz."""
    _assert_clean(data)
