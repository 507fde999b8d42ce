"""Pass: the paths through a pipeline, what a per-flow offload would fuse into one action.

A packet takes one path through its pipeline's stage tree: one action per table it applies,
one arm per branch, and a segmentation stage either passes it whole or cuts it. Every packet
of a flow takes the same path: the flow key (p4gen.midend.flowkeys) holds every field a
decision reads. A NIC that runs a flow in one step needs one action per path, with the
parameters of the path's table entries as action data.

That action is what the per-flow offload installs (docs/offload-design.md). This pass lists
the paths and the capabilities each step needs. Placement reports from them which paths a NIC
could run (p4gen.place.flowtable).

A path ends where a step drops the packet or hands it to the hypervisor's slow path
(`to_hypervisor`), and may end where a step drops it on a condition (a decapsulation of a
packet without the tunnel, a segmentation stage's oversize non-TCP packet): both ways are
paths, unless the path has decided that condition already. A branch that tests a condition already
decided on the path, on fields nothing has written since, takes the same arm: `if
(ipv4.isValid())` in one function and again in the next is one decision, not two.
"""

from __future__ import annotations

from dataclasses import dataclass

from p4gen.frontend import program as P
from p4gen.ir.effects import Effect
from p4gen.midend import coreops as C
from p4gen.midend.coreops import show_cond
from p4gen.midend.stages import Branch, PipelineTree, Stage

PATH_LIMIT = 4096  # more paths than this: the pipeline is not enumerated (reported as such)
WHOLE, CUT, OVERSIZE = "whole", "cut", "oversize"  # a segmentation stage's outcomes (oversize: dropped)


@dataclass(frozen=True)
class Step:
    stage: Stage
    choice: str  # the action run (tables), "true"/"false" (branches), WHOLE/CUT, "next"
    hit: bool | None = None  # tables: whether an entry matched (None: either)
    effect: Effect | None = None  # what the choice does (None: nothing, e.g. a branch or a whole pass)


@dataclass(frozen=True)
class Path:
    pipeline: str
    steps: tuple[Step, ...]
    end: str = ""  # how the last step ends the packet early: "dropped", "dropped if …", "to the hypervisor"

    def show(self) -> str:
        parts = []
        for s in self.steps:
            name = s.stage.id.split("/", 1)[1]
            hit = "" if s.hit is None else (" hit" if s.hit else " miss")
            parts.append(name if s.choice == "next" else f"{name}={s.choice}{hit}")
        return " → ".join(parts) + (f" ({self.end})" if self.end else "")


class TooManyPaths(Exception):
    pass


def _choices(st: Stage) -> list[tuple[str, bool | None, Effect | None]]:
    """(choice, hit, effect) of a stage that is not a branch's condition."""
    if st.kind == "segment":
        return [(WHOLE, None, None), (CUT, None, st.effects.get("next")), (OVERSIZE, None, None)]
    if st.kind == "table" and st.table is not None:
        return [(a, None, st.effects[a]) for a in st.table.actions] + \
            ([(st.table.default_action, False, st.effects[st.table.default_action])]
             if st.table.default_action not in st.table.actions else [])
    return [("next", None, st.effects.get("next"))]


def _table_hits(st: Stage) -> list[tuple[str, bool, Effect]]:
    """A table whose hit or miss a branch tests: each action on a hit, the default on a miss."""
    assert st.table is not None
    t = st.table
    return [(a, True, st.effects[a]) for a in t.actions] + [(t.default_action, False, st.effects[t.default_action])]


def _ops(prog: P.Program, st: Stage, choice: str) -> list[C.CoreOp]:
    if st.nf is None:
        return []
    nf = prog.nfs[st.nf]
    if st.table is not None:
        return C.stmts_ops(prog, nf, nf.actions[choice].body)
    return C.stmts_ops(prog, nf, st.stmts) if st.kind == "action" else []


def _decided(c: P.CondT, known: dict[str, tuple[bool, frozenset[str]]]) -> bool | None:
    """The value of a condition the path has decided (None: not known)."""
    got = known.get(show_cond(c))
    if got is not None:
        return got[0]
    if isinstance(c, P.NotC):
        inner = _decided(c.operand, known)
        return None if inner is None else not inner
    if isinstance(c, (P.OrC, P.AndC)):
        values = [_decided(o, known) for o in c.operands]
        if isinstance(c, P.OrC) and True in values or isinstance(c, P.AndC) and False in values:
            return isinstance(c, P.OrC)
        return None if None in values else isinstance(c, P.AndC)
    return None


def _ends(prog: P.Program, st: Stage, choice: str, known) -> tuple[str, list[str]]:
    """How a step ends the packet: (always: "dropped" / "to the hypervisor" / "", the reasons
    it may be dropped on a condition the path has not decided)."""
    if st.kind == "segment":
        return ("dropped" if choice == OVERSIZE else ""), []
    maybe = []
    for op in _ops(prog, st, choice):
        if isinstance(op, C.Drop):
            return "dropped", maybe
        if isinstance(op, C.ToHypervisor):
            return "to the hypervisor", maybe
        if isinstance(op, C.DropIf):
            value = _decided(op.cond, known)
            if value is True:
                return f"dropped: {op.reason}", maybe
            if value is None:
                maybe.append(op.reason)
        elif not isinstance(op, (C.Count, C.Forward)):
            known = {}  # it may write what a decided condition read: the rest of the step decides nothing
    return "", maybe


def pipeline_paths(tree: PipelineTree, prog: P.Program, limit: int = PATH_LIMIT) -> list[Path]:
    """Every path through the pipeline's body, in statement order (TooManyPaths past `limit`)."""
    out: list[Path] = []
    name = tree.pipeline.name

    def step(st: Stage, choice: str, hit, eff, rest: tuple, steps: tuple, known) -> None:
        steps = steps + (Step(st, choice, hit, eff),)
        end, maybe = _ends(prog, st, choice, known)
        for reason in maybe:
            out.append(Path(name, steps, f"dropped if {reason}"))
        if end:
            out.append(Path(name, steps, end))
        else:
            walk(rest, steps, _forget(known, eff))

    def walk(rest: tuple, steps: tuple[Step, ...], known: dict[str, tuple[bool, frozenset[str]]]) -> None:
        if len(out) > limit:
            raise TooManyPaths(f"{name} has more than {limit} paths")
        if not rest:
            out.append(Path(name, steps))
            return
        item, rest = rest[0], rest[1:]
        if isinstance(item, Stage):
            for choice, hit, eff in _choices(item):
                step(item, choice, hit, eff, rest, steps, known)
            return
        assert isinstance(item, Branch)
        st = item.stage
        if item.hit is None:
            cond = show_cond(st.cond) if st.cond is not None else st.id
            decided = _decided(st.cond, known) if st.cond is not None else None
            for value, label, arm in ((True, "true", item.then), (False, "false", item.orelse)):
                if decided is not None and decided != value:
                    continue  # the same test, on fields nothing wrote since: the same outcome
                now = {**known, cond: (value, frozenset(st.reads))}
                walk(tuple(arm.items) + rest, steps + (Step(st, label),), now)
            return
        want = item.hit[1]
        for action, hit, eff in _table_hits(st):
            step(st, action, hit, eff, tuple((item.then if hit == want else item.orelse).items) + rest, steps, known)

    walk(tuple(tree.body.items), (), {})
    return out


def _forget(known: dict[str, tuple[bool, frozenset[str]]], eff: Effect | None) -> dict:
    """The decided conditions that an effect's writes leave standing."""
    if eff is None or not eff.writes or not known:
        return known
    return {c: v for c, v in known.items() if not v[1] & eff.writes}


def dump(paths: list[Path]) -> str:
    """One path per line (for golden files)."""
    return "".join(p.show() + "\n" for p in paths)


def parse_paths(prog: P.Program, limit: int = PATH_LIMIT) -> list[frozenset[str]]:
    """The sets of headers a packet can hold on input: one per path of the parser from `start`
    to `accept` (a header stack's state visited at most as often as the stack is deep)."""
    out: set[frozenset[str]] = set()

    def walk(state: str, held: frozenset[str], visits: dict[str, int]) -> None:
        if len(out) > limit:
            raise TooManyPaths(f"the parser has more than {limit} paths")
        if state == "accept":
            out.add(held)
            return
        st = prog.parser.get(state)
        if st is None:  # reject
            return
        deepest = max((prog.instances[i].stack or 1 for i, _ in st.extracts), default=1)
        if visits.get(state, 0) >= deepest:
            return
        now = held | {i for i, _ in st.extracts}
        for nxt in dict.fromkeys(target for _key, target in st.cases) or ("accept",):
            walk(nxt, now, {**visits, state: visits.get(state, 0) + 1})

    walk("start", frozenset(), {})
    return sorted(out, key=lambda h: (len(h), sorted(h)))

