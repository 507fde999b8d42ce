"""The DSL's initial entries as P4Runtime updates, encoded as the spec requires.

* integers as canonical binary strings: the shortest big-endian string, 0 as b"\\x00";
* "don't care" matches omitted: lpm /0, ternary mask 0, the full range, optional wildcards;
* lpm values and ternary values with the masked-off bits zero;
* a priority on every entry of a table with ternary, range or optional keys.

Every update is validated against the P4Info it is meant for; a mismatch is an
error naming the entry's DSL position.
"""

from __future__ import annotations

from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2

from p4gen.backend.emit import BackendError
from p4gen.backend.model import NicModel
from p4gen.frontend import program as P


def canonical(value: int, width: int) -> bytes:
    if value < 0 or value >= (1 << width):
        raise ValueError(f"{value} does not fit bit<{width}>")
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def decode(data: bytes) -> int:
    return int.from_bytes(data, "big")


def _field_match(fm: p4runtime_pb2.FieldMatch, km: P.KeyMatch, width: int) -> bool:
    """Fill `fm`; False when the match is a don't-care and must be omitted."""
    full = (1 << width) - 1
    if km.kind == "exact":
        fm.exact.value = canonical(km.value, width)
    elif km.kind == "lpm":
        if km.prefix_len == 0:
            return False
        mask = (full >> (width - km.prefix_len)) << (width - km.prefix_len)
        fm.lpm.value = canonical(km.value & mask, width)
        fm.lpm.prefix_len = km.prefix_len
    elif km.kind == "ternary":
        mask = km.mask if km.mask is not None else full
        if mask == 0:
            return False
        fm.ternary.value = canonical(km.value & mask, width)
        fm.ternary.mask = canonical(mask, width)
    elif km.kind == "range":
        high = km.high if km.high is not None else km.value
        if km.value == 0 and high == full:
            return False
        if km.value > high:
            raise ValueError(f"range {km.value}..{high} is empty")
        fm.range.low = canonical(km.value, width)
        fm.range.high = canonical(high, width)
    elif km.kind == "optional":
        if km.wildcard:
            return False
        fm.optional.value = canonical(km.value, width)
    return True


def build_updates(m: NicModel) -> p4runtime_pb2.WriteRequest:
    """INSERT updates for every DSL entry of a table placed on the NIC."""
    req = p4runtime_pb2.WriteRequest()
    for e in m.prog.entries:
        te = table_entry(m, e)
        if te is None:  # the table runs in the hypervisor
            continue
        u = req.updates.add()
        u.type = p4runtime_pb2.Update.INSERT
        u.entity.table_entry.CopyFrom(te)
    return req


def table_entry(m: NicModel, e: P.TableEntry) -> p4runtime_pb2.TableEntry | None:
    """One DSL entry as P4Runtime encodes it; None when its table is not on the NIC."""
    t = m.tables.get(e.table)
    if t is None:
        return None
    te = p4runtime_pb2.TableEntry(table_id=t.id)
    for key, km in zip(t.keys, e.keys, strict=True):
        fm = p4runtime_pb2.FieldMatch(field_id=key.id)
        try:
            if _field_match(fm, km, key.field.width):
                te.match.append(fm)
        except ValueError as err:
            raise BackendError(f"entry of table '{e.table}', key {key.name}: {err}", e.pos) from None
    action = m.actions[(e.nf, e.action)]
    te.action.action.action_id = action.id
    for p, v in zip(action.params, e.args, strict=True):
        te.action.action.params.add(param_id=p.id, value=canonical(v, p.width))
    if t.table.needs_priority:
        te.priority = e.priority or 0
    return te


def entry_positions(m: NicModel) -> list:
    """The DSL position of each update, in order (for error messages on push)."""
    return [e.pos for e in m.prog.entries if e.table in m.tables]


def validate_updates(req: p4runtime_pb2.WriteRequest, info: p4info_pb2.P4Info, positions: list) -> list[str]:
    """Every problem of `req` against `info`, as 'FILE:LINE:COL: error: …' lines."""
    tables = {t.preamble.id: t for t in info.tables}
    actions = {a.preamble.id: a for a in info.actions}
    problems = []
    for u, pos in zip(req.updates, positions, strict=True):
        te = u.entity.table_entry

        def bad(msg: str, pos=pos) -> None:
            problems.append(f"{pos}: error: {msg}")

        t = tables.get(te.table_id)
        if t is None:
            bad(f"table id {te.table_id:#x} is not in the P4Info")
            continue
        fields = {f.id: f for f in t.match_fields}
        for fm in te.match:
            f = fields.get(fm.field_id)
            if f is None:
                bad(f"table {t.preamble.name} has no match field {fm.field_id}")
                continue
            kind = fm.WhichOneof("field_match_type")
            want = p4info_pb2.MatchField.MatchType.Name(f.match_type).lower()
            if kind != want:
                bad(f"{t.preamble.name}.{f.name} is {want}, the entry gives {kind}")
                continue
            msg = getattr(fm, kind)
            for attr in ("value", "mask", "low", "high"):
                raw = getattr(msg, attr, None)
                if raw is None:
                    continue
                if decode(raw) >> f.bitwidth:
                    bad(f"{t.preamble.name}.{f.name}: {attr} does not fit bit<{f.bitwidth}>")
                if raw != canonical(decode(raw), f.bitwidth):
                    bad(f"{t.preamble.name}.{f.name}: {attr} is not a canonical binary string")
            if kind == "lpm" and decode(msg.value) & ((1 << (f.bitwidth - msg.prefix_len)) - 1):
                bad(f"{t.preamble.name}.{f.name}: lpm value has bits set beyond /{msg.prefix_len}")
            if kind == "ternary" and decode(msg.value) & ~decode(msg.mask):
                bad(f"{t.preamble.name}.{f.name}: ternary value has bits outside the mask")
            if kind == "range" and decode(msg.low) > decode(msg.high):
                bad(f"{t.preamble.name}.{f.name}: range low > high")
        needs_priority = any(f.match_type in (p4info_pb2.MatchField.TERNARY, p4info_pb2.MatchField.RANGE,
                                              p4info_pb2.MatchField.OPTIONAL) for f in t.match_fields)
        if needs_priority and te.priority <= 0:
            bad(f"table {t.preamble.name} needs a priority > 0")
        if not needs_priority and te.priority:
            bad(f"table {t.preamble.name} takes no priority")
        a = actions.get(te.action.action.action_id)
        if a is None or te.action.action.action_id not in {r.id for r in t.action_refs}:
            bad(f"action id {te.action.action.action_id:#x} is not an action of {t.preamble.name}")
            continue
        params = {p.id: p for p in a.params}
        if len(te.action.action.params) != len(params):
            bad(f"action {a.preamble.name} takes {len(params)} parameter(s)")
        for p in te.action.action.params:
            spec = params.get(p.param_id)
            if spec is None or decode(p.value) >> spec.bitwidth:
                bad(f"action {a.preamble.name}: parameter {p.param_id} is missing or too wide")
    return problems
