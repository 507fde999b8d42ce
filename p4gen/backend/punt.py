"""The punt header, read from its one definition in p4src/p4gen_punt.p4, and the
program's metadata that travels behind it.

The hypervisor pipeline packs and unpacks p4gen_t with the layout and
constants found here, so it always agrees with the P4 program. Behind p4gen_t
comes p4gen_meta_t, whose layout depends on the program: every metadata field
(except the target's ingress_port) in declaration order, padded to whole
bytes. A packet that crosses between NIC and hypervisor keeps its metadata,
as it would if one target ran the whole pipeline: a value a stage wrote
(meta.nexthop_id) and parser-set values that later rewrites must not change
(meta.l4_src after a port rewrite).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

_CONST = re.compile(r"^\s*const\s+bit<(\d+)>\s+(\w+)\s*=\s*(0x[0-9a-fA-F]+|\d+)\s*;", re.M)
_HEADER = re.compile(r"header\s+p4gen_t\s*\{(.*?)\}", re.S)
_FIELD = re.compile(r"bit<(\d+)>\s+(\w+)\s*;")


def p4src_text(name: str) -> str:
    try:
        return resources.files("p4gen.p4src").joinpath(name).read_text(encoding="utf-8")
    except ModuleNotFoundError:  # a source checkout without install
        return (Path(__file__).resolve().parents[2] / "p4src" / name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class PuntLayout:
    fields: tuple[tuple[str, int], ...]  # (name, bits) in wire order
    constants: dict[str, int]
    name: str = "p4gen_t"

    @property
    def size(self) -> int:
        return sum(w for _, w in self.fields) // 8

    def pack(self, **values: int) -> bytes:
        """The header's bytes (fields not given are 0)."""
        acc = 0
        for name, width in self.fields:
            v = values.pop(name, 0)
            if not 0 <= v < (1 << width):
                raise ValueError(f"{self.name}.{name} = {v} does not fit bit<{width}>")
            acc = (acc << width) | v
        if values:
            raise ValueError(f"{self.name} has no field(s) {', '.join(values)}")
        return acc.to_bytes(self.size, "big")

    def unpack(self, data: bytes) -> dict[str, int]:
        if len(data) < self.size:
            raise ValueError(f"punt header needs {self.size} bytes, got {len(data)}")
        if not self.fields:
            return {}
        acc = int.from_bytes(data[: self.size], "big")
        out = {}
        shift = self.size * 8
        for name, width in self.fields:
            shift -= width
            out[name] = (acc >> shift) & ((1 << width) - 1)
        return out


@functools.lru_cache(maxsize=1)
def punt_layout() -> PuntLayout:
    text = p4src_text("p4gen_punt.p4")
    body = _HEADER.search(text)
    if body is None:  # pragma: no cover - the shipped file has it
        raise RuntimeError("p4src/p4gen_punt.p4 has no header p4gen_t")
    fields = tuple((name, int(w)) for w, name in _FIELD.findall(body.group(1)))
    consts = {name: int(v, 0) for _w, name, v in _CONST.findall(text)}
    return PuntLayout(fields, consts)


CARRIED_PAD = "p4gen_pad"


def carried_layout(prog) -> PuntLayout:
    """p4gen_meta_t for `prog`: its metadata fields in declaration order, then padding to a byte."""
    fields = [(name, width) for name, (width, _pos) in prog.metadata.items() if name != "ingress_port"]
    bits = sum(w for _, w in fields)
    if bits % 8:
        fields.append((CARRIED_PAD, 8 - bits % 8))
    return PuntLayout(tuple(fields), {}, "p4gen_meta_t")


def carried_values(layout: PuntLayout, data: bytes) -> dict[str, int]:
    """The metadata values in a p4gen_meta_t (padding left out)."""
    return {k: v for k, v in layout.unpack(data).items() if k != CARRIED_PAD}


@dataclass(frozen=True)
class PuntFraming:
    """Frames on the host port, both ways: p4gen_t, then p4gen_meta_t, then the packet."""

    header: PuntLayout
    carried: PuntLayout

    @property
    def size(self) -> int:
        return self.header.size + self.carried.size

    def wrap(self, pipeline: int, resume: int, data: bytes, meta: dict[str, int] | None = None) -> bytes:
        """A hypervisor → NIC frame: continue `pipeline` at stage `resume`."""
        hdr = self.header.pack(version=self.header.constants["P4GEN_VERSION"], pipeline=pipeline, resume=resume)
        return hdr + self.carried.pack(**(meta or {})) + data

    def unwrap(self, data: bytes) -> tuple[dict[str, int], dict[str, int], bytes]:
        """A NIC → hypervisor frame: (p4gen_t fields, metadata, packet); ValueError when too short."""
        if len(data) < self.size:
            raise ValueError(f"a punted frame needs {self.size} header bytes, got {len(data)}")
        return (self.header.unpack(data), carried_values(self.carried, data[self.header.size:]),
                data[self.size:])


def punt_framing(prog) -> PuntFraming:
    return PuntFraming(punt_layout(), carried_layout(prog))
