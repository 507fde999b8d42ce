"""Byte-level layouts of the program's headers, compiled from their one definition.

The hypervisor side never spells out an offset: every field position comes
from the header declarations in p4gen/stdlib/std.nf (or the program's own
headers), the same declarations the P4 emitter turns into P4 header types.
A layout is compiled once into plain integers (byte offset, shift, mask) so
that reading or writing a field in the data path is one slice and a few
integer operations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from p4gen.frontend.program import HeaderType, Program


@dataclass(frozen=True)
class FieldLayout:
    name: str
    width: int  # bits
    byte: int  # first byte holding the field, from the header start
    nbytes: int  # bytes the field spans
    shift: int  # right shift of the span's integer value to reach the field
    mask: int
    aligned: bool = field(init=False)  # whole bytes: read and written without shifting

    def __post_init__(self) -> None:
        object.__setattr__(self, "aligned", self.shift == 0 and self.width == self.nbytes * 8)

    def source(self, buf: str) -> str:
        """Python source reading this field from the bytearray named `buf` (for the generated
        parser and field readers: the same offsets, shift and mask as `get`)."""
        if self.nbytes == 1:
            value = f"{buf}[{self.byte}]"
        elif self.nbytes == 2:
            value = f"({buf}[{self.byte}] << 8 | {buf}[{self.byte + 1}])"
        else:
            value = f"int.from_bytes({buf}[{self.byte}:{self.byte + self.nbytes}], 'big')"
        if self.shift:
            value = f"({value} >> {self.shift})"
        if not self.aligned:
            value = f"({value} & {self.mask})"
        return value

    def set_source(self, buf: str, value: str) -> str:
        """Python source writing `value` (an expression) into this field of the bytearray
        named `buf`: the same offsets, shift and mask as `set`, for generated code."""
        b, e, n = self.byte, self.byte + self.nbytes, self.nbytes
        if self.aligned:
            if n == 1:
                return f"{buf}[{b}] = ({value}) & {self.mask}"
            return f"{buf}[{b}:{e}] = (({value}) & {self.mask}).to_bytes({n}, 'big')"
        keep = ((1 << (8 * n)) - 1) & ~(self.mask << self.shift)
        span = f"int.from_bytes({buf}[{b}:{e}], 'big')" if n > 1 else f"{buf}[{b}]"
        new = f"({span} & {keep}) | ((({value}) & {self.mask}) << {self.shift})"
        return f"{buf}[{b}] = {new}" if n == 1 else f"{buf}[{b}:{e}] = ({new}).to_bytes({n}, 'big')"

    def get(self, buf, base: int = 0) -> int:
        start = base + self.byte
        value = int.from_bytes(buf[start:start + self.nbytes], "big")
        return (value >> self.shift) & self.mask

    def set(self, buf: bytearray, value: int, base: int = 0) -> None:
        start = base + self.byte
        if self.aligned:
            buf[start:start + self.nbytes] = (value & self.mask).to_bytes(self.nbytes, "big")
            return
        span = int.from_bytes(buf[start:start + self.nbytes], "big")
        span = (span & ~(self.mask << self.shift)) | ((value & self.mask) << self.shift)
        buf[start:start + self.nbytes] = span.to_bytes(self.nbytes, "big")


@dataclass(frozen=True)
class HeaderLayout:
    name: str
    size: int  # fixed part, bytes
    fields: dict[str, FieldLayout]
    varbit: str | None  # name of the variable-length tail, if any

    def __getitem__(self, name: str) -> FieldLayout:
        return self.fields[name]


def compile_header(ht: HeaderType) -> HeaderLayout:
    fields = {}
    for f in ht.fields:
        if f.is_varbit:
            continue
        first = f.offset // 8
        last = (f.offset + f.width - 1) // 8
        nbytes = last - first + 1
        shift = nbytes * 8 - (f.offset - first * 8) - f.width
        fields[f.name] = FieldLayout(f.name, f.width, first, nbytes, shift, (1 << f.width) - 1)
    return HeaderLayout(ht.name, ht.fixed_bytes, fields, ht.varbit.name if ht.varbit else None)


def compile_layouts(prog: Program) -> dict[str, HeaderLayout]:
    """Layouts of every header type of the program, by type name."""
    return {name: compile_header(ht) for name, ht in prog.headers.items()}
