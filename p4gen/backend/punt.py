"""The punt header, read from its one definition in p4src/p4gen_punt.p4.

The hypervisor pipeline packs and unpacks p4gen_t with the layout and
constants found here, so it always agrees with the P4 program.
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

    @property
    def size(self) -> int:
        return sum(w for _, w in self.fields) // 8

    def pack(self, **values: int) -> bytes:
        acc = 0
        for name, width in self.fields:
            v = values.pop(name, 0)
            if not 0 <= v < (1 << width):
                raise ValueError(f"p4gen_t.{name} = {v} does not fit bit<{width}>")
            acc = (acc << width) | v
        if values:
            raise ValueError(f"p4gen_t has no field(s) {', '.join(values)}")
        return acc.to_bytes(self.size, "big")

    def unpack(self, data: bytes) -> dict[str, int]:
        if len(data) < self.size:
            raise ValueError(f"punt header needs {self.size} bytes, got {len(data)}")
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
