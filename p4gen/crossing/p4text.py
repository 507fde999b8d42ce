"""The P4 text of the crossing protocol, generated from its Python definition."""

from __future__ import annotations

from p4gen.crossing.protocol import FLAG_FORWARDED, FLAG_L4_DIRTY, PUNT_HEADER, RESUME_DONE, VERSION, PuntLayout, Reason
from p4gen.crossing.states import DROP_REASONS, State


def _header(layout: PuntLayout, ident=lambda n: n) -> list[str]:
    lines = [f"header {layout.name} {{"]
    for i, (name, width) in enumerate(layout.fields):
        comment = f"  // {layout.comments[i]}" if i < len(layout.comments) and layout.comments[i] else ""
        lines.append(f"    bit<{width}> {ident(name)};{comment}")
    return lines + ["}"]


def punt_p4() -> str:
    """Constants and header p4gen_t (what p4src/p4gen_punt.p4 holds, for readers)."""
    lines = ["// p4gen punt path: the header between the NIC's host port and the hypervisor.",
             "// Generated from p4gen/crossing/protocol.py (the one definition); do not edit.",
             "",
             f"const bit<8>  P4GEN_VERSION = {VERSION};",
             f"const bit<16> P4GEN_RESUME_DONE = {RESUME_DONE:#x};",
             f"const bit<8>  P4GEN_FLAG_FORWARDED = {FLAG_FORWARDED:#x};",
             f"const bit<8>  P4GEN_FLAG_L4_DIRTY = {FLAG_L4_DIRTY:#x};"]
    lines += [f"const bit<8>  P4GEN_REASON_{r.name} = {int(r)};" for r in Reason]
    lines.append("")
    lines += _header(PUNT_HEADER)
    return "\n".join(lines) + "\n"


def states_p4() -> list[str]:
    """The state machine's and the drop counter's constants."""
    lines = [f"const bit<8> P4GEN_ST_{s.name} = {int(s)};" for s in State]
    lines += [f"const bit<32> P4GEN_DROP_{r.upper()} = {i};" for i, r in enumerate(DROP_REASONS)]
    return lines


def carried_p4(layout: PuntLayout, ident) -> list[str]:
    """header p4gen_meta_t for one program (empty when it has no metadata)."""
    return _header(layout, ident) if layout.fields else []
