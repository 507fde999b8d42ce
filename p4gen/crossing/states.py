"""The stage state machine both targets run, and the NIC's drop reasons.

The P4 program keeps the state in `meta.p4gen_state` (constants P4GEN_ST_*,
generated from `State`); the hypervisor's generated Python compares the same
integers. A packet is in exactly one state:

    RUN       run the stages placed on this target as they come
    SKIP      entered from the other target: skip to the stage `resume`
    PUNT      a stage placed on the other target was reached: hand the packet over
    DROP      dropped (counted by reason)
    DONE      the pipeline finished here
    TO_HV     to_hypervisor(): the slow path
    SEND      injected by the hypervisor with nothing left to do: send it out
    CONSUMED  cut into segments, which travel on as packets of their own
"""

from __future__ import annotations

from enum import IntEnum


class State(IntEnum):
    NONE = 0
    RUN = 1
    SKIP = 2
    PUNT = 3
    DROP = 4
    DONE = 5
    TO_HV = 6
    SEND = 7
    CONSUMED = 8


# Indices of the NIC's `p4gen.drops` counter (P4GEN_DROP_* in P4): what the NIC drops
# before any stage runs (then the program's own drop()s, `drop_sites`). The hypervisor counts
# the same reasons by these names.
# vlan_overflow, no_tunnel and nested_tunnel are drops by a primitive's own semantics
# (p4gen.midend.coreops.DropIf): a third 802.1Q tag, a decap of a packet without that tunnel,
# an encap of a packet that already has one, an encap or decap of a packet with a header of
# the program's own (which a tunnel cannot carry: only the standard headers have inner names).
DROP_REASONS = ("malformed", "bad_checksum", "no_flow", "bad_resume", "bad_port", "vlan_overflow", "no_tunnel",
                "nested_tunnel", "unmovable_header")


def drop_sites(prog) -> tuple[str, ...]:
    """Where the program's own drop() can run, named as the hypervisor counts it: "NF.ACTION"
    for an action's body, "NF" for an nf's apply block. The NIC counts them in `p4gen.drops`
    too, in the cells after DROP_REASONS, in this order, so that a drop() counts wherever
    placement put it."""
    from p4gen.frontend import program as P
    from p4gen.midend import coreops as C

    def drops(stmts) -> bool:
        for s in stmts:
            if isinstance(s, P.PrimOp) and any(isinstance(op, C.Drop) for op in C.expand(prog, s)):
                return True
            if isinstance(s, P.IfOp) and (drops(s.then) or drops(s.orelse)):
                return True
        return False

    sites = []
    for name, nf in prog.nfs.items():
        if drops(nf.apply):
            sites.append(name)
        sites += [f"{name}.{a}" for a, act in nf.actions.items() if drops(act.body)]
    return tuple(sites)
