"""What a stage needs from a target, and why a target cannot run it."""

from __future__ import annotations

from p4gen.frontend.primitives import PRIMITIVES
from p4gen.frontend.program import Program
from p4gen.ir.effects import Effect
from p4gen.ir.lower import Stage
from p4gen.place.profiles import Profile

CHECKSUMMED = ("ipv4.", "inner_ipv4.")


def effect_capabilities(eff: Effect) -> set[str]:
    """What running one action (or block) needs: its primitives' capabilities, and checksum
    updates where it writes under an IPv4 header checksum."""
    caps = set(eff.capabilities)
    if any(w.startswith(CHECKSUMMED) and not w.endswith((".hdr_checksum", ".$valid")) for w in eff.writes):
        caps.add("checksum")
    return caps


def needed_capabilities(stage: Stage) -> set[str]:
    caps: set[str] = set()
    if stage.kind in ("segment", "coalesce"):
        return {stage.kind}
    if stage.kind == "branch":
        return {"branch"}
    for eff in stage.effects.values():
        caps |= effect_capabilities(eff)
    if stage.table is not None:
        if stage.table.counters:
            caps.add("direct_counter")
        if stage.table.idle_timeout:
            caps.add("idle_timeout")
    return caps


def table_entries(stage: Stage) -> int:
    return stage.table.size if stage.table is not None else 0


def key_bits(stage: Stage) -> int:
    return sum(k.field.width for k in stage.table.keys) if stage.table is not None else 0


def why_not(stage: Stage, prof: Profile, prog: Program) -> list[str]:
    """Every reason `prof` cannot run `stage` (empty: it can)."""
    reasons = []
    for cap in sorted(needed_capabilities(stage)):
        if cap not in prof.capabilities:
            reasons.append(f"{prof.name} lacks '{cap}'")
    t = stage.table
    if t is not None:
        for k in t.keys:
            if k.match_kind not in prof.match_kinds:
                reasons.append(f"{prof.name} has no '{k.match_kind}' match (key {k.field})")
        res = prof.resources
        if res.max_table_size is not None and t.size > res.max_table_size:
            reasons.append(f"table size {t.size} exceeds {prof.name}'s per-table limit of {res.max_table_size}")
        if res.max_key_bits is not None and key_bits(stage) > res.max_key_bits:
            reasons.append(f"key of {key_bits(stage)} bits exceeds {prof.name}'s limit of {res.max_key_bits}")
    depth = prof.resources.header_stack_depth
    if depth is not None:
        touched = {f.split(".")[0] for f in stage.reads | stage.writes}
        for inst in sorted(touched):
            i = prog.instances.get(inst)
            if i is not None and i.stack is not None and i.stack > depth:
                reasons.append(f"header stack {inst}[{i.stack}] is deeper than {prof.name}'s limit of {depth}")
    return reasons


def hypervisor_cost(stage: Stage, hyp: Profile) -> float:
    """Per-packet cost of running `stage` in the hypervisor (profile units)."""
    cost = hyp.stage_costs.get(stage.kind, 0.0)
    if stage.table is not None:
        cost += sum(hyp.match_kind_costs.get(k.match_kind, 0.0) for k in stage.table.keys)
    if stage.effects:
        per_label = [sum(hyp.primitive_costs.get(_capability(p), 0.0) for p in e.primitives)
                     for e in stage.effects.values()]
        cost += sum(per_label) / len(per_label)
    return cost


def _capability(primitive: str) -> str:
    prim = PRIMITIVES.get(primitive)
    return prim.capability if prim is not None else primitive
