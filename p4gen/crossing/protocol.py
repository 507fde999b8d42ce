"""The punt header p4gen_t and the metadata behind it: the one definition.

On the NIC's host port, both ways, a frame is  p4gen_t | p4gen_meta_t | packet.

NIC → hypervisor: `resume` is the stage (IR order number) the hypervisor
continues at, or RESUME_DONE when nothing is left to run; `reason` says why
(Reason); `code` is to_hypervisor()'s argument.
Hypervisor → NIC: `resume` is the stage the NIC continues at, or RESUME_DONE:
"send it out of `egress_port`".
Both ways, FLAG_FORWARDED in `flags` carries a forward() decision already
taken (the port in `egress_port`), so that a later stage on the other target
does not lose it, and FLAG_L4_DIRTY that a rewrite under a TCP/UDP checksum
happened, so that the target finishing the packet recomputes the checksum
after its own later rewrites too (as one pass would). p4gen_meta_t carries the program's metadata fields.

The P4 text of all this is generated (p4gen.crossing.p4text); the Python side
packs and unpacks with the layouts below.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from p4gen.crossing.numbering import pipeline_name, pipeline_numbers
from p4gen.frontend.program import Program

VERSION = 3
RESUME_DONE = 0xFFFF
FLAG_FORWARDED = 0x01
FLAG_L4_DIRTY = 0x02  # a field under a TCP/UDP checksum was rewritten: recompute it at the end


class Reason(IntEnum):
    PLACEMENT = 0  # the next stage runs on the other target
    FINISHED = 1  # the pipeline ended on the NIC; deliver where it ends
    TO_HYPERVISOR = 2  # a to_hypervisor() primitive; `code` has its argument
    LEARN = 3  # a flow missed the flow table often enough: the original packet, from its first stage


@dataclass(frozen=True)
class PuntLayout:
    fields: tuple[tuple[str, int], ...]  # (name, bits) in wire order
    name: str = "p4gen_t"
    comments: tuple[str, ...] = ()  # one per field, for the generated P4

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
            raise ValueError(f"{self.name} needs {self.size} bytes, got {len(data)}")
        if not self.fields:
            return {}
        acc = int.from_bytes(data[: self.size], "big")
        out = {}
        shift = self.size * 8
        for name, width in self.fields:
            shift -= width
            out[name] = (acc >> shift) & ((1 << width) - 1)
        return out


PUNT_HEADER = PuntLayout(
    (("version", 8), ("pipeline", 8), ("resume", 16), ("flow", 16), ("reason", 8), ("code", 8),
     ("egress_port", 16), ("flags", 8), ("reserved", 8), ("flow_hash", 32)),
    "p4gen_t",
    ("P4GEN_VERSION", "1-based number of the pipeline in the program", "stage to continue at, or P4GEN_RESUME_DONE",
     "1-based index of the flow that classified the packet (0: none)", "P4GEN_REASON_* (NIC -> hypervisor)",
     "to_hypervisor(code) argument", "with P4GEN_FLAG_FORWARDED: the port forward() chose",
     "P4GEN_FLAG_*", "0", "NIC -> hypervisor: the flow key's hash (the flow table's key), 0 if none"),
)

CARRIED_PAD = "p4gen_pad"


def carried_layout(prog: Program) -> PuntLayout:
    """p4gen_meta_t for `prog`: its metadata fields in declaration order, then padding to a byte.
    `ingress_port` crosses too: it is the port the packet entered the system on, not the host
    port a resumed packet arrives on."""
    fields = [(name, width) for name, (width, _pos) in prog.metadata.items()]
    bits = sum(w for _, w in fields)
    if bits % 8:
        fields.append((CARRIED_PAD, 8 - bits % 8))
    return PuntLayout(tuple(fields), "p4gen_meta_t")


@dataclass(frozen=True)
class Punted:
    """A frame on the host port, decoded."""

    pipeline: str
    resume: int | None  # None: RESUME_DONE
    reason: Reason | int
    code: int
    port: int | None  # a forward() decision taken before the crossing
    meta: dict[str, int]
    data: bytes
    l4_dirty: bool = False
    flow_hash: int = 0  # the NIC's hash of the flow key (p4gen.place.flowlayout), with Reason.LEARN


class BadPunt(ValueError):
    """A host-port frame that is not a p4gen frame of this program (counted, never a crash)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Crossing:
    """Frames on the host port of one program, both ways."""

    prog: Program
    carried: PuntLayout

    @property
    def size(self) -> int:
        return PUNT_HEADER.size + self.carried.size

    def wrap(self, pipeline: str, resume: int | None, data: bytes, meta: dict[str, int] | None = None,
             port: int | None = None, reason: int = Reason.PLACEMENT, code: int = 0, l4_dirty: bool = False,
             flow_hash: int = 0) -> bytes:
        numbers = pipeline_numbers(self.prog)
        flags = (FLAG_FORWARDED if port is not None else 0) | (FLAG_L4_DIRTY if l4_dirty else 0)
        hdr = PUNT_HEADER.pack(version=VERSION, pipeline=numbers[pipeline],
                               resume=RESUME_DONE if resume is None else resume, reason=int(reason), code=code,
                               egress_port=port or 0, flags=flags, flow_hash=flow_hash)
        values = {k: v for k, v in (meta or {}).items() if any(k == n for n, _ in self.carried.fields)}
        return hdr + self.carried.pack(**values) + data

    def unwrap(self, frame: bytes) -> Punted:
        if len(frame) < self.size:
            raise BadPunt("malformed_punt", f"a punted frame needs {self.size} header bytes, got {len(frame)}")
        h = PUNT_HEADER.unpack(frame)
        if h["version"] != VERSION:
            raise BadPunt("malformed_punt", f"p4gen_t version {h['version']}, expected {VERSION}")
        name = pipeline_name(self.prog, h["pipeline"])
        if name is None:
            raise BadPunt("bad_pipeline", f"p4gen_t names pipeline {h['pipeline']}: the program has "
                                          f"{len(self.prog.pipelines)}")
        meta = {k: v for k, v in self.carried.unpack(frame[PUNT_HEADER.size:]).items() if k != CARRIED_PAD}
        return Punted(name, None if h["resume"] == RESUME_DONE else h["resume"], h["reason"], h["code"],
                      h["egress_port"] if h["flags"] & FLAG_FORWARDED else None, meta, frame[self.size:],
                      bool(h["flags"] & FLAG_L4_DIRTY), h["flow_hash"])


def crossing(prog: Program) -> Crossing:
    return Crossing(prog, carried_layout(prog))
