"""p4gen's own P4Info for the NIC program, built from the same model as the P4 text.

It states what p4c will report for the emitted program (names from @name,
ids from @id, aliases as p4c's shortest unique suffixes), so a controller can
be written against it before, or without, compiling; the p4c tests check
that the two are equal message for message.
"""

from __future__ import annotations

from p4.config.v1 import p4info_pb2

from p4gen.backend.entries import canonical
from p4gen.backend.model import NicModel, annotation_doc

MATCH_TYPES = {
    "exact": p4info_pb2.MatchField.EXACT,
    "lpm": p4info_pb2.MatchField.LPM,
    "ternary": p4info_pb2.MatchField.TERNARY,
    "range": p4info_pb2.MatchField.RANGE,
    "optional": p4info_pb2.MatchField.OPTIONAL,
}


def shortest_unique_suffixes(names: list[str]) -> dict[str, str]:
    """For each dotted name, the fewest trailing components no other name ends with (as p4c)."""
    split = {n: tuple(n.split(".")) for n in set(names)}
    counts: dict[tuple[str, ...], int] = {}
    for parts in split.values():
        for k in range(1, len(parts) + 1):
            counts[parts[-k:]] = counts.get(parts[-k:], 0) + 1
    out = {}
    for n, parts in split.items():
        k = next((k for k in range(1, len(parts) + 1) if counts[parts[-k:]] < 2), len(parts))
        out[n] = ".".join(parts[-k:])
    return out


def build_p4info(m: NicModel) -> p4info_pb2.P4Info:
    info = p4info_pb2.P4Info()
    info.pkg_info.arch = "v1model"
    info.type_info.SetInParent()  # p4c always writes it, empty for these programs
    actions = sorted(list(m.actions.values()) + [m.drop_action], key=lambda a: a.id)
    counters = sorted(list(m.counters.values()) + [m.drop_counter], key=lambda c: c.id)
    tables = sorted(m.tables.values(), key=lambda t: t.id)
    directs = sorted((t.direct_counter for t in tables if t.direct_counter), key=lambda c: c.id)
    registers = sorted(m.registers, key=lambda r: r.id)
    alias = shortest_unique_suffixes([x.name for x in (*actions, *counters, *tables, *directs, *registers)])

    for t in tables:
        pt = info.tables.add()
        pt.preamble.id, pt.preamble.name, pt.preamble.alias = t.id, t.name, alias[t.name]
        doc = annotation_doc(t.table.annotations)
        if doc is not None:
            pt.preamble.doc.brief = doc
        for k in t.keys:
            mf = pt.match_fields.add()
            mf.id, mf.name, mf.bitwidth, mf.match_type = k.id, k.name, k.field.width, MATCH_TYPES[k.match_kind]
        for a in t.actions:
            pt.action_refs.add().id = a.id
        if t.direct_counter is not None:
            pt.direct_resource_ids.append(t.direct_counter.id)
        pt.initial_default_action.action_id = t.default_action.id
        for prm, v in zip(t.default_action.params, t.table.default_args, strict=True):
            pt.initial_default_action.arguments.add(param_id=prm.id, value=canonical(v, prm.width))
        pt.size = t.table.size
        if t.table.idle_timeout:
            pt.idle_timeout_behavior = p4info_pb2.Table.NOTIFY_CONTROL
    in_tables = {a.id for t in tables for a in t.actions}
    for a in actions:
        pa = info.actions.add()
        pa.preamble.id, pa.preamble.name, pa.preamble.alias = a.id, a.name, alias[a.name]
        if a.id not in in_tables:
            # Only called directly from apply blocks: p4c's front end turns the
            # parameters of such actions into locals, so the control plane sees none.
            continue
        for p in a.params:
            pp = pa.params.add()
            pp.id, pp.name, pp.bitwidth = p.id, p.name, p.width
    for c in counters:
        pc = info.counters.add()
        pc.preamble.id, pc.preamble.name, pc.preamble.alias = c.id, c.name, alias[c.name]
        pc.spec.unit = p4info_pb2.CounterSpec.PACKETS if c is m.drop_counter else p4info_pb2.CounterSpec.BOTH
        pc.size = c.size
    for d in directs:
        pd = info.direct_counters.add()
        pd.preamble.id, pd.preamble.name, pd.preamble.alias = d.id, d.name, alias[d.name]
        pd.spec.unit = p4info_pb2.CounterSpec.BOTH
        pd.direct_table_id = next(t.id for t in tables if t.direct_counter is d)
    for r in registers:
        pr = info.registers.add()
        pr.preamble.id, pr.preamble.name, pr.preamble.alias = r.id, r.name, alias[r.name]
        pr.type_spec.bitstring.bit.bitwidth = r.width
        pr.size = r.size
    return info
