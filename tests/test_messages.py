"""Diagnostics as a person would write them (issue 11): exact stderr of `p4gen check` / `place`."""

from __future__ import annotations

import pytest

from p4gen.cli import main


def check(tmp_path, capsys, text: str | bytes, *extra: str, command: str = "check") -> str:
    f = tmp_path / "m.nf"
    if isinstance(text, bytes):
        f.write_bytes(text)
    else:
        f.write_text(text)
    status = main([command, str(f), *extra])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    return err.replace(str(f), "m.nf")


TABLE_WITH_ERROR = """\
nf fw {
    action deny() { drop(); }
    action allow() { }
    table acl {
        key = { ipv4.nosuch: exact; }
        actions = { deny; allow; }
        default_action = allow();
    }
    apply { acl.apply(); }
}
pipeline p : vm_egress { fw; }
entries fw.acl {
    (10.0.0.1) => deny();
}
"""


def test_error_in_a_table_does_not_cascade_to_its_entries(tmp_path, capsys):
    assert check(tmp_path, capsys, TABLE_WITH_ERROR) == (
        "m.nf:5:17: error: unknown field 'nosuch' in header 'ipv4'\n"
        "            key = { ipv4.nosuch: exact; }\n"
        "                    ^\n")


def test_entries_of_a_table_that_does_not_exist_still_an_error(tmp_path, capsys):
    err = check(tmp_path, capsys, TABLE_WITH_ERROR.replace("ipv4.nosuch", "ipv4.dst").replace("fw.acl {", "fw.acx {"))
    assert "m.nf:12:12: error: unknown table 'acx' in nf 'fw'" in err


def test_mac_address_with_five_octets(tmp_path, capsys):
    assert check(tmp_path, capsys, "const M = 02:00:00:00:aa;\n") == (
        "m.nf:1:11: error: '02:00:00:00:aa' looks like a MAC address, but has 5 octets; a MAC address has 6 "
        "(e.g. 02:00:00:00:00:aa)\n"
        "    const M = 02:00:00:00:aa;\n"
        "              ^\n")
    # Real IPv6 mistakes are still called IPv6.
    assert "bad IPv6 address 'fd00:::1'" in check(tmp_path, capsys, "const A = fd00:::1;\n")


@pytest.mark.parametrize("word", ["bits", "int", "bit8"])
def test_wrong_bit_type_suggests_bit_n(tmp_path, capsys, word):
    err = check(tmp_path, capsys, f"header h {{ a: {word}<6>; b: bit<2>; }}\n")
    assert err.splitlines()[0] == (f"m.nf:1:15: error: unknown type '{word}'; field and parameter types are "
                                   "written bit<N> (e.g. bit<6>)")
    assert err.splitlines()[2] == "    " + " " * 14 + "^"


def test_missing_semicolon_points_at_the_end_of_the_previous_line(tmp_path, capsys):
    assert check(tmp_path, capsys, "const A = 1   // one\n\nconst B = 2;\n") == (
        "m.nf:1:12: error: expected ';' at the end of this line (found 'const' on the next)\n"
        "    const A = 1   // one\n"
        "               ^\n")
    # On the same line it stays where the parser stopped.
    err = check(tmp_path, capsys, "const A = 1 const B = 2;\n")
    assert err.startswith("m.nf:1:13: error: unexpected 'const'; expected ';'")


def test_unclosed_brace_points_at_the_brace(tmp_path, capsys):
    text = ("nf x {\n"
            "    action a() {\n"
            "        drop();\n"
            "\n"
            "    action b() { }\n"
            "    apply { a(); }\n"
            "}\n"
            "pipeline p : vm_egress { x; }\n")
    assert check(tmp_path, capsys, text) == (
        "m.nf:2:16: error: unclosed '{': its '}' is missing\n"
        "        action a() {\n"
        "                   ^\n"
        "m.nf:5:5: note: the block was still open at 'action' on line 5\n"
        "        action b() { }\n"
        "        ^\n")
    err = check(tmp_path, capsys, "nf x {\n    action a() { drop(); }\n    apply { a(); }\n")
    assert err == ("m.nf:1:6: error: unclosed '{': its '}' is missing\n"
                   "    nf x {\n"
                   "         ^\n"
                   "m.nf:3:19: note: the block was still open at the end of the file\n"
                   "        apply { a(); }\n"
                   "                      ^\n")


def test_non_utf8_bytes_are_escaped_in_the_source_line(tmp_path, capsys):
    assert check(tmp_path, capsys, b"const A = 1;\nconst B = 2; // caf\xe9 \xff\n") == (
        "m.nf:2:20: error: file is not UTF-8 text (byte 0xe9)\n"
        "    const B = 2; // caf\\xe9 \\xff\n"
        "                       ^\n")


def test_pin_the_target_cannot_honour_has_a_position_and_caret(tmp_path, capsys):
    text = ("nf enc {\n"
            "    action e() { geneve_encap(02:00:00:00:00:01, 02:00:00:00:00:02, 10.0.0.1, 10.0.0.2, 5); }\n"
            "    @pin(nic)\n"
            "    table t {\n"
            "        key = { ipv4.dst: exact; }\n"
            "        actions = { e; }\n"
            "        default_action = e();\n"
            "    }\n"
            "    apply { t.apply(); }\n"
            "}\n"
            "pipeline p : vm_egress { enc; }\n")
    assert check(tmp_path, capsys, text, "--target", "targets/constrained-nic.toml", command="place") == (
        "m.nf:3:5: error: stage 'p/enc.t' is pinned to the NIC, but constrained-nic lacks 'geneve_encap'\n"
        "        @pin(nic)\n"
        "        ^\n")
