"""Documentation a user needs inside the repository, generated where it could drift."""

from __future__ import annotations

from conftest import ROOT

from p4gen.cli import main


def test_headers_reference_is_generated_from_std(capsys):
    """docs/headers.md is `p4gen headers` for std.nf: regenerate it when std.nf changes."""
    assert main(["headers"]) == 0
    out = capsys.readouterr().out
    assert "| `ttl` | 8 | 64 |" in out and "| `vni` | 24 |" in out
    assert (ROOT / "docs" / "headers.md").read_text() == out, "run: p4gen headers > docs/headers.md"


def test_headers_of_a_program_include_its_own(tmp_path, capsys):
    src = tmp_path / "own.nf"
    src.write_text("header mytag { tenant: bit<16>; qos: bit<4>; pad: bit<4>; ether_type: bit<16>; }\n"
                   "packet { mytag: mytag; }\nmetadata { class: bit<8>; }\n")
    assert main(["headers", str(src)]) == 0
    out = capsys.readouterr().out
    assert "## header `mytag` (5 bytes)" in out and "| `qos` | 4 | 16 |" in out and "| `meta.class` | 8 |" in out


def test_the_reference_scenario_is_in_the_repository():
    """A clone has the scenario the README and the main example point to."""
    assert "VNI 5001" in (ROOT / "docs" / "scenario.md").read_text()
    for path in (ROOT / "README.md", ROOT / "examples" / "vm_offload.nf"):
        text = path.read_text()
        assert "docs/scenario.md" in text and "shared/scenario" not in text, path
