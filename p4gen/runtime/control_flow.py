"""The hypervisor's control flow, generated as Python source once per entry point.

The stage state machine (the emitter's `stage_guard`, see pipeline.py) is
resolved at generation time instead of per packet. An entry point is
(pipeline, resume stage or None, dry run or not):

* the stages before the resume stage are left out, and each `if` on the way to
  it is steered statically into the arm that holds it (the arms' stages have
  contiguous order numbers: `Seq.order_range`);
* a stage placed on the other target becomes `state = PUNT; resume = N; return`
  (in a dry run, which predicts the whole path, it runs here instead);
* the rest is straight-line code: per-stage counters, calls to the compiled
  table appliers and action closures, `if`s on compiled conditions, and a
  return as soon as a stage leaves the RUN state (drop, punt, segmentation).

Entry points are generated lazily (a program with N stages has up to 2N+2), and
arms nested deeper than MAX_DEPTH become functions of their own, so any program
the front end accepts compiles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from p4gen.ir.lower import stage_trees
from p4gen.midend.stages import Branch, Seq, Stage

if TYPE_CHECKING:
    from p4gen.runtime.pipeline import HypervisorPipeline

MAX_DEPTH = 24  # indentation levels before an arm becomes a function of its own


class EntryPoint:
    """Generates one entry point's function; `source` keeps the text (for debugging and tests)."""

    def __init__(self, hv: HypervisorPipeline, pipeline: str, resume: int | None, dry: bool):
        from p4gen.runtime import pipeline as rt  # the state names live with the state machine

        self.hv, self.pipeline, self.resume, self.dry = hv, pipeline, resume, dry
        self.found = resume is None  # generating RUN code (True) or still looking for the resume stage
        self.ns: dict[str, object] = {"RUN": rt.RUN, "PUNT": rt.PUNT, "SP": hv.stage_packets}
        self.functions: list[list[str]] = []
        lines = self._function("run")
        self._seq(lines, stage_trees(hv.g)[pipeline].body, 1)
        self.source = "\n\n".join("\n".join(f) for f in reversed(self.functions)) + "\n"
        code = compile(self.source, f"<p4gen {pipeline} resume={resume} dry={dry}>", "exec")
        exec(code, self.ns)  # noqa: S102 - our own generated source, names and integers only
        self.function: Callable = self.ns["run"]  # type: ignore[assignment]

    # ------------------------------------------------------------ helpers
    def _function(self, name: str) -> list[str]:
        lines = [f"def {name}(ctx):", "    pkt = ctx.pkt", "    params = None"]
        self.functions.append(lines)
        return lines

    def _name(self, obj: object, prefix: str) -> str:
        name = f"{prefix}{len(self.ns)}"
        self.ns[name] = obj
        return name

    @staticmethod
    def _call(lines: list[str], ind: int, call: str) -> None:
        """A call that may change the packet's state: stop unless it is still RUN."""
        pad = "    " * ind
        lines += [f"{pad}{call}", f"{pad}if ctx.state != RUN:", f"{pad}    return"]

    def _enter(self, lines: list[str], st, ind: int) -> str:
        """Before a stage: "skip" if it is left out (the resume stage is further on), "gone" if
        the packet is handed over here (the stage runs on the other target), else "run" with
        the switch to RUN at the resume stage and the stage's count emitted."""
        pad = "    " * ind
        if not self.found:
            if st.order != self.resume:
                return "skip"
            self.found = True
            lines.append(f"{pad}ctx.state = RUN")
        if not self.hv.here(st.id) and not self.dry:
            lines += [f"{pad}ctx.state = PUNT", f"{pad}ctx.resume = {st.order}", f"{pad}return"]
            return "gone"
        if not self.dry:
            lines.append(f"{pad}SP[{st.id!r}] += 1")
        return "run"

    def _stage(self, lines: list[str], st, ind: int, body) -> bool:
        """Emit one stage; True when the code after it is unreachable (handed over)."""
        entered = self._enter(lines, st, ind)
        if entered == "run" and body is not None:
            body(lines, ind)
        return entered == "gone"

    # ------------------------------------------------------------ the stage tree
    def _seq(self, lines: list[str], seq: Seq, ind: int) -> bool:
        """Emit a sequence of the stage tree; True when it ends in an unconditional hand-over."""
        if ind > MAX_DEPTH and seq.items:
            name = f"_arm{len(self.functions)}"
            gone = self._seq(self._function(name), seq, 1)
            if self.found:
                self._call(lines, ind, f"{name}(ctx)")
            else:
                lines.append(f"{'    ' * ind}{name}(ctx)")
            return gone
        for it in seq.items:
            if isinstance(it, Branch):
                gone = self._if(lines, it, ind)
            else:
                gone = self._stage(lines, it, ind, self._body(it))
            if gone:
                return True
        return False

    def _body(self, st: Stage):
        """What a stage does here, as an emitter of lines (None: nothing but its count)."""
        hv = self.hv
        if st.kind == "action":
            nf = hv.prog.nfs[st.nf]
            fn = self._name(hv.simple(nf, st.stmts, None), "B")
            return lambda ls, k: self._call(ls, k, f"{fn}(ctx, {{}})")
        if st.kind == "table":
            fn = self._name(hv.applier(hv.prog.nfs[st.nf], hv.tables[st.table.name]), "A")
            return lambda ls, k: self._call(ls, k, f"{fn}(ctx)")
        if st.kind == "segment":
            fn = self._name(hv.segment_body(st), "SEG")
            return lambda ls, k: self._call(ls, k, f"{fn}(ctx)")
        return None  # coalescing works on batches (HypervisorPipeline.run_batch)

    def _if(self, lines: list[str], br: Branch, ind: int) -> bool:
        st = br.stage
        pad = "    " * ind
        if not self.found and st.order != self.resume:
            # Steer towards the resume stage: into the then arm if it holds it, else the else arm.
            rng = br.then.order_range()
            inside = rng is not None and rng[0] <= (self.resume or 0) <= rng[1]
            return self._seq(lines, br.then if inside else br.orelse, ind)
        entered = self._enter(lines, st, ind)
        if entered != "run":
            return entered == "gone"
        if br.hit is not None:
            apply = self._name(self.hv.applier(self.hv.prog.nfs[st.nf], self.hv.tables[br.hit[0]]), "A")
            self._call(lines, ind, f"_hit = {apply}(ctx) is not None")
            test = "_hit" if br.hit[1] else "not _hit"
        else:
            test = self.hv.condition_source(st.cond, self.ns)
        lines.append(f"{pad}if {test}:")
        n = len(lines)
        self._seq(lines, br.then, ind + 1)
        if len(lines) == n:
            lines.append(f"{pad}    pass")
        if br.orelse.items:
            lines.append(f"{pad}else:")
            n = len(lines)
            self._seq(lines, br.orelse, ind + 1)
            if len(lines) == n:
                lines.append(f"{pad}    pass")
        return False
