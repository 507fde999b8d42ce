"""P4 identifiers for DSL names: never P4 text, never a keyword or a v1model name.

DSL identifiers are already `[A-Za-z_][A-Za-z0-9_]*` (the grammar allows
nothing else), so they cannot carry P4 syntax. They can still collide with
P4 keywords (`type`, `key`, `action`), with names core.p4 and v1model.p4
declare (`counter`, `hash`, `standard_metadata`), or with names the emitter
itself generates (prefix `p4gen`). Such names get a `u_` prefix; the
control-plane names in @name annotations keep the DSL spelling.
"""

from __future__ import annotations

import re

P4_KEYWORDS = frozenset("""
abstract action actions apply bool bit const control default else entries enum error exit extern false
header header_union if in inout int key list match_kind out package parser priority return select state
string struct switch table this transition true tuple type typedef value_set varbit verify void
""".split())

ARCH_NAMES = frozenset("""
packet_in packet_out NoAction exact ternary lpm range optional selector accept reject
standard_metadata standard_metadata_t V1Switch Parser VerifyChecksum Ingress Egress ComputeChecksum Deparser
counter direct_counter meter direct_meter register action_profile action_selector CounterType MeterType
HashAlgorithm CloneType random digest mark_to_drop hash verify_checksum update_checksum
verify_checksum_with_payload update_checksum_with_payload clone clone3 resubmit recirculate truncate
assert assume log_msg Checksum16 PortId_t hdr meta packet main
""".split())

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def p4_ident(name: str) -> str:
    """The P4 identifier for a DSL name."""
    if not _IDENT.match(name):  # cannot happen for names from the grammar; refuse rather than emit
        raise ValueError(f"not an identifier: {name!r}")
    if name in P4_KEYWORDS or name in ARCH_NAMES or name.lower().startswith("p4gen") or name.startswith("u_"):
        return "u_" + name
    return name
