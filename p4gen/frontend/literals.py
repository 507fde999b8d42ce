"""Parsing of the DSL's number and address literals into integers."""

from __future__ import annotations

import ipaddress
import re

_MAC = re.compile(r"^[0-9a-fA-F]{1,2}(:[0-9a-fA-F]{1,2}){5}$")


class LiteralError(ValueError):
    """A literal that lexes but is not a valid value; message is user-facing."""


def parse_int(text: str) -> int:
    t = text.replace("_", "")
    if t[:2] in ("0x", "0X"):
        return int(t[2:], 16)
    if t[:2] in ("0b", "0B"):
        return int(t[2:], 2)
    return int(t, 10)


def _split_prefix(text: str, maxlen: int, what: str) -> tuple[str, int | None]:
    if "/" not in text:
        return text, None
    addr, _, plen = text.partition("/")
    n = int(plen)
    if n > maxlen:
        raise LiteralError(f"prefix length /{n} is longer than the {maxlen} bits of an {what} address")
    return addr, n


def parse_ipv4(text: str) -> tuple[int, int | None]:
    """`a.b.c.d` or `a.b.c.d/len` → (value, prefix length or None)."""
    addr, plen = _split_prefix(text, 32, "IPv4")
    parts = addr.split(".")
    if len(parts) != 4 or any(not p.isdigit() or int(p) > 255 or (len(p) > 1 and p[0] == "0") for p in parts):
        raise LiteralError(f"bad IPv4 address '{text}'")
    value = 0
    for p in parts:
        value = (value << 8) | int(p)
    return value, plen


def parse_colon_addr(text: str) -> tuple[str, int, int | None]:
    """A MAC (`02:00:00:00:01:02`) or IPv6 (`fd00::1/64`) literal → (kind, value, prefix)."""
    if "/" not in text and _MAC.match(text):
        return "mac", _mac_groups(text), None
    addr, plen = _split_prefix(text, 128, "IPv6")
    try:
        value = int(ipaddress.IPv6Address(addr))
    except ValueError:
        if "::" not in addr and addr.count(":") == 5:
            raise LiteralError(f"bad MAC address '{text}'") from None
        groups = text.split(":")
        if "/" not in text and "::" not in text and all(1 <= len(g) <= 2 for g in groups):
            raise LiteralError(f"'{text}' looks like a MAC address, but has {len(groups)} octets; "
                               "a MAC address has 6 (e.g. 02:00:00:00:00:aa)") from None
        raise LiteralError(f"bad IPv6 address '{text}'") from None
    return "ipv6", value, plen


def _mac_groups(text: str) -> int:
    value = 0
    for g in text.split(":"):
        value = (value << 8) | int(g, 16)
    return value


def format_value(kind: str, value: int, width: int) -> str:
    """Human form of a value for messages and generated comments."""
    if kind == "ipv4" or (kind == "int" and width == 32 and value > 0xFFFFFF):
        return str(ipaddress.IPv4Address(value))
    if kind == "ipv6":
        return str(ipaddress.IPv6Address(value))
    if kind == "mac":
        return ":".join(f"{(value >> s) & 0xFF:02x}" for s in range(40, -8, -8))
    return str(value)
