"""Which segmentation stages may cut late: a super-packet runs the rest once, as a "train".

Cutting a TCP super-packet into N segments and running every later stage on
each segment is the reference behaviour. The segments differ only in fields
the segmenter itself sets: IP lengths, identification and header checksum,
TCP sequence number, flags and checksum (PER_SEGMENT). When no later stage
decides on any of them (table keys, conditions, the values assigned, hashed,
counted or forwarded by) nor writes one, every segment takes the same path and
gets the same rewrites: the stages can run once on the super-packet and the
segments be cut at the end with the headers already rewritten, encapsulation
included ("encapsulate once, replicate headers", as Linux GSO does for UDP
tunnels). Counters then count N packets and the bytes of the N segments.

A second segmentation stage, a coalesce stage or a decapsulation downstream
keeps the reference path. This pass decides it once per segmentation stage,
with the reason, from the stage tree and the core operations.
"""

from __future__ import annotations

from p4gen.frontend import program as P
from p4gen.midend import coreops as C
from p4gen.midend.stages import PipelineTree, Stage

_IP_TCP = ("ipv4.total_len", "ipv4.identification", "ipv4.hdr_checksum", "ipv6.payload_len",
           "tcp.seq_no", "tcp.flags", "tcp.checksum")
PER_SEGMENT = frozenset(_IP_TCP) | frozenset(f"inner_{f}" for f in _IP_TCP)


def _stmts_problem(prog: P.Program, nf: P.Nf, stmts) -> str | None:
    for s in stmts:
        if isinstance(s, P.AssignOp):
            ops: list = [C.Assign(s.target, s.value)]
        elif isinstance(s, P.PrimOp):
            ops = C.expand(prog, s)
        elif isinstance(s, P.CallActionOp):
            for a in s.args:
                if P.operand_fields(a) & PER_SEGMENT:
                    return f"action {s.action} is called with a per-segment field"
            problem = _stmts_problem(prog, nf, nf.actions[s.action].body)
            if problem:
                return problem
            continue
        else:
            return f"unexpected statement {type(s).__name__}"
        for op in ops:
            problem = _op_problem(op)
            if problem:
                return problem
    return None


def _op_problem(op: C.CoreOp) -> str | None:
    reads: set[str] = set()
    if isinstance(op, C.Assign):
        if op.target.key in PER_SEGMENT:
            return f"writes {op.target.key}"
        value = op.value
        if isinstance(value, P.HashOf):
            for a in value.args:
                reads |= P.operand_fields(a)
        else:
            reads = P.operand_fields(value)
    elif isinstance(op, C.DropIf):
        reads = P.cond_fields(op.cond)
    elif isinstance(op, C.Forward):
        reads = P.operand_fields(op.port)
    elif isinstance(op, C.ToHypervisor):
        reads = P.operand_fields(op.code)
    elif isinstance(op, C.Count):
        reads = P.operand_fields(op.index)
    elif isinstance(op, C.Encap):
        for a in op.args:
            reads |= P.operand_fields(a)
    elif isinstance(op, C.Decap):
        return "decapsulates"
    hit = reads & PER_SEGMENT
    return f"reads {', '.join(sorted(hit))}" if hit else None


def _stage_problem(prog: P.Program, st: Stage) -> str | None:
    if st.kind in ("segment", "coalesce"):
        return f"another {st.kind} stage ({st.name}) follows"
    if st.kind == "branch":
        hit = (P.cond_fields(st.cond) if st.cond is not None else st.reads) & PER_SEGMENT
        return f"{st.name} decides on {', '.join(sorted(hit))}" if hit else None
    if st.kind == "table" and st.table is not None:
        hit = st.key_reads & PER_SEGMENT
        if hit:
            return f"{st.name} matches on {', '.join(sorted(hit))}"
        nf = prog.nfs[st.table.nf]
        for a in st.table.actions:
            problem = _stmts_problem(prog, nf, nf.actions[a].body)
            if problem:
                return f"{st.name}, action {a}: {problem}"
        return None
    if st.kind == "action":
        problem = _stmts_problem(prog, prog.nfs[st.nf], st.stmts) if st.nf else None
        return f"{st.name}: {problem}" if problem else None
    return None


def train_problem(prog: P.Program, tree: PipelineTree, segment: Stage) -> str | None:
    """Why the stages after `segment` cannot run once for all its segments (None: they can)."""
    after = False
    for st in tree.stages():
        if st is segment:
            after = True
            continue
        if after:
            problem = _stage_problem(prog, st)
            if problem:
                return problem
    return None
