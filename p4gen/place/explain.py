"""Why each stage runs where it runs, in words and as placement.json."""

from __future__ import annotations

from typing import TYPE_CHECKING

from p4gen.place.problem import HYP, NIC

if TYPE_CHECKING:
    from p4gen.place import Placement, StageDecision


def _delta_if_moved(pl: Placement, sid: str, target: str, incident: dict | None = None) -> float | None:
    """Extra cost of moving `sid` alone to `target` (None: that would break a constraint).

    Only the stage's own terms and its incident edges change, so this is exact for
    the single move and O(degree), which keeps explanations cheap on big programs.
    """
    prob, assign = pl.problem, pl.assignment
    s = prob.stage(sid)
    if target == NIC:
        if not s.nic_ok or s.fixed is not None:
            return None
        use = pl.resource_use()
        tables, max_tables = use["tables"]
        entries, max_entries = use["table_entries"]
        if s.is_table and ((max_tables is not None and tables + 1 > max_tables)
                           or (max_entries is not None and entries + s.entries > max_entries)):
            return None
    delta = 0.0
    sign = 1.0 if target == HYP else -1.0
    delta += sign * s.weight * s.hv_cost
    if s.prefer is not None:
        before = assign[sid] != s.prefer
        after = target != s.prefer
        delta += (after - before) * s.weight * prob.preference_cost
    for e in (incident or {}).get(sid, ()):
        other = e.v if e.u == sid else e.u
        before = assign[sid] != assign[other]
        after = target != assign[other]
        delta += (after - before) * e.weight * prob.crossing_cost
    return delta


def explain_all(pl: Placement) -> list[StageDecision]:
    from p4gen.place import StageDecision

    prob = pl.problem
    nic_name = prob.nic.name if prob.nic else "NIC"
    incident: dict[str, list] = {}
    for e in prob.edges:
        incident.setdefault(e.u, []).append(e)
        incident.setdefault(e.v, []).append(e)
    use = pl.resource_use()
    used_tables, max_tables = use["tables"]
    used_entries, max_entries = use["table_entries"]
    out = []
    for s in prob.stages:
        target = pl.assignment[s.id]
        if s.fixed is not None:
            where = {"parse": "the packet enters", "classify": "the packet enters", "deparse": "the packet leaves"}
            reason = f"anchor: {where[s.kind]} on the {target} side"
        elif prob.nic is None:
            reason = "no NIC target given"
        elif s.pin is not None:
            reason = f"pinned by @pin({s.pin}) at {s.pin_pos}"
        elif target == HYP and not s.nic_ok:
            reason = "; ".join(s.nic_reasons)
        elif target == HYP:
            free_entries = None if max_entries is None else max_entries - used_entries
            if s.is_table and max_tables is not None and used_tables >= max_tables:
                reason = f"NIC tables exhausted: {used_tables} of {max_tables} in use on {nic_name}"
                if free_entries is not None and s.entries > free_entries:
                    reason += f"; table memory too: needs {s.entries} entries, {free_entries} free"
            elif s.is_table and free_entries is not None and s.entries > free_entries:
                reason = f"NIC table memory exhausted: needs {s.entries} entries, {free_entries} free"
            else:
                delta = _delta_if_moved(pl, s.id, NIC, incident)
                if delta is None:
                    reason = f"{nic_name} has no room for it next to the stages it holds"
                else:
                    reason = f"cheaper in the hypervisor: moving it alone to {nic_name} costs +{delta:.3g}"
        else:
            delta = _delta_if_moved(pl, s.id, HYP, incident)
            extra = f"; moving it alone to the hypervisor costs +{delta:.3g}" if delta is not None else ""
            reason = f"{nic_name} can run it{extra}"
            if s.prefer == NIC:
                reason += " (and @prefer(nic))"
        if s.prefer is not None and s.prefer != target and s.pin is None and s.fixed is None:
            reason += f" (overrides @prefer({s.prefer}))"
        out.append(StageDecision(s.id, s.kind, s.pipeline, target, reason, str(s.pos) if s.pos else ""))
    return out


def target_name(pl: Placement, target: str) -> str:
    if target == NIC and pl.problem.nic is not None:
        return pl.problem.nic.name
    return pl.problem.hyp.name if pl.problem.hyp is not None else target


def to_json(pl: Placement, source: str) -> dict:
    prob = pl.problem
    use = pl.resource_use()
    return {
        "program": source,
        "targets": {
            "nic": prob.nic.name if prob.nic else None,
            "nic_profile": prob.nic.path if prob.nic else None,
            "hypervisor": prob.hyp.name if prob.hyp else "hypervisor",
        },
        "pipelines": {name: {"starts_on": a, "ends_on": b} for name, (a, b) in prob.pipelines.items()},
        "stages": [
            {"id": d.id, "kind": d.kind, "pipeline": d.pipeline, "target_kind": d.target,
             "target": target_name(pl, d.target), "reason": d.reason, "pos": d.pos}
            for d in pl.decisions
        ],
        "resources": {k: {"used": u, "limit": lim} for k, (u, lim) in use.items()},
        "crossings": pl.crossings(),
        "objective": {"total": pl.cost.total, "hypervisor": pl.cost.hypervisor, "crossings": pl.cost.crossings,
                      "preferences": pl.cost.preferences},
    }


def to_text(pl: Placement, source: str, explain: bool) -> str:
    prob = pl.problem
    names = f"{prob.nic.name} + {prob.hyp.name}" if prob.nic else f"{prob.hyp.name} only"
    lines = [f"placement of {source} on {names}"]
    for pipeline, (start, end) in prob.pipelines.items():
        lines.append("")
        lines.append(f"{pipeline}: enters on the {start} side, leaves on the {end} side")
        for d in pl.decisions:
            if d.pipeline != pipeline or d.kind in ("parse", "classify", "deparse"):
                continue
            short = d.id.split("/", 1)[1]
            line = f"  {short:<34} {d.kind:<9} → {d.target}"
            if explain:
                line += f": {d.reason}"
            lines.append(line)
    lines.append("")
    if prob.nic is not None:
        use = pl.resource_use()
        parts = [f"{k.replace('_', ' ')} {u}/{lim if lim is not None else '∞'}" for k, (u, lim) in use.items()]
        off = prob.nic.offload
        more = f" (besides a table of {off.flow_entries} entries for per-flow offload)" if off is not None else ""
        lines.append(f"resources on {prob.nic.name}: " + ", ".join(parts) + more)
    cross = pl.crossings()
    lines.append("crossings per packet: " + ", ".join(
        f"{p} {int(c['max_to_exit'])} (expected {c['expected']:.2f})" for p, c in cross.items()))
    c = pl.cost
    lines.append(f"objective: {c.total:.3f} = hypervisor {c.hypervisor:.3f} + crossings {c.crossings:.3f}"
                 f" + preferences {c.preferences:.3f}")
    return "\n".join(lines) + "\n"
