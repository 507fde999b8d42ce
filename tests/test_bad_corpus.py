"""Every program in tests/bad/ yields its `// EXPECT:` diagnostic through the CLI."""

from __future__ import annotations

import pytest
from conftest import BAD

from p4gen.cli import main

CASES = sorted(BAD.glob("*.nf"))


def expected_line(path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode()
    assert first.startswith("// EXPECT: "), f"{path.name} lacks its EXPECT line"
    return f"tests/bad/{path.name}:" + first[len("// EXPECT: "):]


def test_corpus_is_large_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_bad_program(path, capsys):
    status = main(["check", f"tests/bad/{path.name}"])
    err = capsys.readouterr().err
    assert status == 1
    assert expected_line(path) in err.splitlines(), err
    assert "Traceback" not in err and "internal error" not in err
    # Every headline is followed by the offending source line and a caret.
    lines = err.splitlines()
    for i, line in enumerate(lines):
        if ": error: " in line and line.startswith("tests/bad/"):
            col = int(line.split(":")[2])
            assert lines[i + 2].strip() == "^" and len(lines[i + 2]) - 4 == col, line
