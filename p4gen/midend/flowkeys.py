"""Flow keys: which header fields decide what a pipeline does to a packet.

A flow cache (p4gen.runtime.flowcache) runs a packet through the full pipeline
once and replays the result on later packets with the same key. The key must
hold every field whose *value* can change the result:

  - what the parser decides on: select fields, variable-length fields, and the
    sources of the metadata it sets (they fix which headers exist, and where);
  - what the stages decide on: table keys, branch and drop conditions, the
    flows' classifiers;
  - what values are computed from: the operands of assignments, hashes,
    forward/punt ports, counter indices, and the inner fields an encapsulation
    copies outward (addresses, protocol, DSCP/ECN, ports for the UDP source port).

A field read after an encapsulation or decapsulation may be the packet's field
under the other name (headers move one level in or out), so the key holds both.
Everything else is carried, not decided on: copied in place (TTL aside, a
rewrite writes a constant) or recomputed per packet (checksums). Length
fields are the exception that is computed *from*: an encapsulation's outer
lengths follow the inner length, which the cache replays as "same delta".
A pipeline that decides on a length, or assigns from one, is not cached
(`problem`); segmentation decides on lengths too and is handled by the cache
with a guard (the largest IP length that still passes whole).

Defined once here, from the core operations, for every back end that needs it.
"""

from __future__ import annotations

from dataclasses import dataclass

from p4gen.frontend import program as P
from p4gen.frontend.primitives import INNER_OF
from p4gen.midend import coreops as C
from p4gen.midend.stages import PipelineTree, Stage

_LENGTHS = ("ipv4.total_len", "ipv6.payload_len", "udp.length")
LENGTH_FIELDS = frozenset(_LENGTHS) | frozenset(f"inner_{f}" for f in _LENGTHS)
# What an encapsulation reads of the packet it wraps (protocols.TunnelSpec's Computed values):
# the 5-tuple for the outer UDP source port, the inner DSCP/ECN copied outward, the inner length.
ENCAP_READS = frozenset(("ipv4.src", "ipv4.dst", "ipv4.protocol", "ipv4.dscp", "ipv4.ecn", "ipv6.src", "ipv6.dst",
                         "ipv6.next_hdr", "ipv6.traffic_class", "meta.l4_src", "meta.l4_dst", "ipv4.$valid",
                         "ipv6.$valid"))


@dataclass(frozen=True)
class FlowKey:
    fields: frozenset[str]  # field keys ("ipv4.dst", "vlan.vid", "ipv4.$valid")
    problem: str | None  # why packets of this scope are never cached (None: they can be)


def op_value_reads(op: C.CoreOp) -> set[str]:
    """Fields whose values a core operation's result depends on (moves excluded)."""
    if isinstance(op, C.Assign):
        if isinstance(op.value, P.HashOf):
            out: set[str] = set()
            for a in op.value.args:
                out |= P.operand_fields(a)
            return out
        return P.operand_fields(op.value)
    if isinstance(op, C.DropIf):
        return P.cond_fields(op.cond)
    if isinstance(op, C.Forward):
        return P.operand_fields(op.port)
    if isinstance(op, C.ToHypervisor):
        return P.operand_fields(op.code)
    if isinstance(op, C.Count):
        return P.operand_fields(op.index)
    if isinstance(op, C.Encap):
        out = set(ENCAP_READS)
        for a in op.args:
            out |= P.operand_fields(a)
        return out
    return set()


def _stmts_reads(prog: P.Program, nf: P.Nf, stmts) -> set[str]:
    out: set[str] = set()
    for s in stmts:
        if isinstance(s, P.AssignOp):
            out |= op_value_reads(C.Assign(s.target, s.value))
        elif isinstance(s, P.PrimOp):
            for op in C.expand(prog, s):
                out |= op_value_reads(op)
        elif isinstance(s, P.CallActionOp):
            for a in s.args:
                out |= P.operand_fields(a)
            out |= _stmts_reads(prog, nf, nf.actions[s.action].body)
    return out


def stage_value_reads(prog: P.Program, st: Stage) -> set[str]:
    if st.kind == "branch":
        return P.cond_fields(st.cond) if st.cond is not None else set(st.reads)
    if st.kind == "table" and st.table is not None:
        nf = prog.nfs[st.table.nf]
        out = set(st.key_reads)
        for a in st.table.actions:
            out |= _stmts_reads(prog, nf, nf.actions[a].body)
        return out
    if st.kind == "action" and st.nf:
        return _stmts_reads(prog, prog.nfs[st.nf], st.stmts)
    return set()


def parser_reads(prog: P.Program) -> set[str]:
    out: set[str] = set()
    for st in prog.parser.values():
        for e in st.selector:
            out |= P.operand_fields(e)
        for _ref, val in st.assigns:
            out |= P.operand_fields(val)
        for inst, _idx in st.extracts:
            vb = prog.instances[inst].type.varbit
            if vb is not None:
                out |= P.operand_fields(vb.varbit_length)
    return out


def flow_key(prog: P.Program, trees: list[PipelineTree]) -> FlowKey:
    """The key of packets entering any of `trees` (one pipeline, or every pipeline of a
    direction with their classifiers)."""
    fields = parser_reads(prog)
    names = {t.pipeline.name for t in trees}
    for f in prog.flows.values():
        if f.pipeline in names:
            fields |= P.cond_fields(f.match)
    problem = None
    for tree in trees:
        for st in tree.stages():
            reads = stage_value_reads(prog, st)
            hit = reads & LENGTH_FIELDS
            if hit and problem is None:
                problem = f"{st.name} computes from {', '.join(sorted(hit))}"
            fields |= reads
    # Encapsulation moves every header one level in (ipv4 → inner_ipv4), decapsulation one level
    # out: a field read under one name may be the packet's field under the other.
    for outer, inner in INNER_OF.items():
        for f in list(fields):
            inst, dot, rest = f.partition(".")
            if inst == outer:
                fields.add(f"{inner}.{rest}")
            elif inst == inner:
                fields.add(f"{outer}.{rest}")
    return FlowKey(frozenset(fields - LENGTH_FIELDS), problem)
