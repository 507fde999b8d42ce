"""`p4gen flows OUTDIR`: every flow the offload manager knows, where it runs and why.

`p4gen up` (with a NIC profile that has [offload]) writes OUTDIR/flows.json about once
a second from the manager's state (`snapshot`); `p4gen flows` prints it. A flow is
known once one of its packets reached the hypervisor from the NIC (each such packet
carries the flow key's hash); its key is known once it was learnt.
"""

from __future__ import annotations

import ipaddress
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from p4gen.control.offload import OffloadManager
    from p4gen.runtime.pipeline import HypervisorPipeline

FLOWS_FILE = "flows.json"
WHERE = {"nic": "NIC", "hypervisor": "hypervisor fast path", "slow_path": "slow path"}


def _value(name: str, width: int, value: int) -> str:
    """A key field as people write it: addresses as addresses, the rest as numbers."""
    if width == 32 and name.rsplit(".", 1)[-1] in ("src", "dst"):
        return str(ipaddress.IPv4Address(value))
    if width == 128:
        return str(ipaddress.IPv6Address(value))
    if width == 48:
        return ":".join(f"{b:02x}" for b in value.to_bytes(6, "big"))
    return str(value)


LISTED = 500  # flows of the hypervisor's fast path listed (the busiest)


def fast_path_flows(hv: HypervisorPipeline, skip: set[str], m: OffloadManager | None = None) -> list[dict]:
    """The hypervisor fast path's flows, the busiest first, but those of the pipelines in `skip`
    (the manager lists them) and those the manager knows already."""
    from p4gen.ir.lower import stage_trees
    from p4gen.midend.flowkeys import flow_key
    from p4gen.place.flowlayout import key_fields
    from p4gen.runtime.packet import Malformed

    if hv.cache is None:
        return []
    hv.sync()
    flows = sorted((fa for fa in hv.cache.flows.values() if fa.pipeline not in skip), key=lambda fa: -fa.total[0])
    trees = stage_trees(hv.g)
    keys: dict[str, list] = {}
    nic = hv.assignment and any(v != "hypervisor" for v in hv.assignment.values())
    out = []
    for fa in flows[:LISTED]:
        lay = m.layouts.get(fa.pipeline) if m is not None else None
        if lay is not None:  # a pipeline whose flows the manager learns from these counts
            key = m._fa_keys.get(fa)
            if key is not None and (fa.pipeline, m.nic_hash(lay, key)) in m.flows:
                continue
        if fa.pipeline not in keys:
            keys[fa.pipeline] = key_fields(hv.prog, flow_key(hv.prog, [trees[fa.pipeline]]).fields)[0]
        try:
            pkt = hv.parser.parse(fa.head)
        except Malformed:
            key = {}
        else:
            key = {k.name: _value(k.name, k.width, v) for k in keys[fa.pipeline]
                   if k.field != "$valid" and (v := hv.parser.get(pkt, k.ref) if k.instance != "meta"
                                               else pkt.meta.get(k.field, 0))}
        why = (f"below threshold ({m.policy.threshold_packets} packets); fast path, " if lay is not None else
               "not offloaded: its pipeline has no flow table; fast path, " if nic else "fast path, ")
        fate = fa.fate
        where = "slow_path" if fate[0] == "out" and fate[1] == "slow_path" else "hypervisor"
        what = f"dropped ({fate[1]})" if fate[0] == "drop" else f"to {fate[1]}"
        out.append({"pipeline": fa.pipeline, "hash": "", "key": key, "where": where,
                    "why": why + what,
                    "packets": {"nic": 0, "hypervisor": fa.total[0]}, "bytes": {"nic": 0, "hypervisor": fa.total[1]},
                    "offloads": 0, "learnt": 0, "rate_pps": 0.0})
    return out


def snapshot(m: OffloadManager | None, hv: HypervisorPipeline | None = None) -> dict:
    """The manager's flows as plain data (what flows.json holds); with `hv`, also the fast
    path's flows of pipelines that have no flow table (all of them without a manager)."""
    flows = []
    for f in m.flows.values() if m is not None else ():
        lay = m.layouts[f.pipeline]
        key = {k.name: _value(k.name, k.width, v) for k, v in zip(lay.key, f.key, strict=False)
               if v and k.field != "$valid"}
        flows.append({
            "pipeline": f.pipeline, "hash": f"{f.hash:08x}", "key": key,
            "where": "slow_path" if f.fate == "to_hypervisor" and f.where != "nic" else f.where,
            "why": f.why, "packets": {"nic": f.packets_on_nic, "hypervisor": f.hv_packets},
            "bytes": {"nic": f.merged_bytes + f.nic_bytes, "hypervisor": f.hv_bytes},
            "offloads": f.offloads, "learnt": f.learnt, "rate_pps": round(f.rate, 1),
        })
    if hv is not None:
        flows += fast_path_flows(hv, {n for n, lay in m.layouts.items() if not lay.hv_first} if m is not None
                                 else set(), m)
    flows.sort(key=lambda x: -(x["packets"]["nic"] + x["packets"]["hypervisor"]))
    if m is None:
        return {"time": time.time(), "table": None, "stats": {}, "policy": None, "flows": flows}
    used = sum(1 for f in m.flows.values() if f.where == "nic")
    return {"time": time.time(), "table": {"size": m.size, "used": used}, "stats": dict(m.stats),
            "policy": {"threshold_packets": m.policy.threshold_packets,
                       "idle_timeout_ms": m.policy.idle_timeout_ms,
                       "idle": "notifications" if m.notifies else "counter polling"},
            "flows": flows}


def write_snapshot(m: OffloadManager | None, outdir: Path, hv: HypervisorPipeline | None = None) -> None:
    tmp = outdir / (FLOWS_FILE + ".tmp")
    tmp.write_text(json.dumps(snapshot(m, hv), indent=1))
    tmp.replace(outdir / FLOWS_FILE)  # readers never see half a file


def render(data: dict) -> list[str]:
    """flows.json as `p4gen flows` prints it."""
    t, pol = data["table"], data["policy"]
    lines = [f"as of {time.strftime('%H:%M:%S', time.localtime(data['time']))} (p4gen up writes this once a second)"]
    if t is None:
        lines.append("no flow table on the NIC (no NIC, or its profile has no [offload]): every flow runs in the "
                     "hypervisor")
    else:
        lines += [f"flow table: {t['used']} of {t['size']} entries; offloaded after {pol['threshold_packets']} "
                  f"packets, idle after {pol['idle_timeout_ms'] / 1000:g} s ({pol['idle']})",
                  "stats: " + ", ".join(f"{k} {v}" for k, v in data["stats"].items())]
    if not data["flows"]:
        lines.append("no flow has reached the hypervisor yet")
        return lines
    lines.append(f"{'pipeline':<12} {'hash':<8} {'where':<21} {'pkts NIC':>9} {'pkts hv':>8} {'bytes NIC':>10} "
                 f"{'bytes hv':>9}  why / key")
    for f in data["flows"]:
        p, b = f["packets"], f["bytes"]
        lines.append(f"{f['pipeline']:<12} {f['hash'] or '-':<8} {WHERE.get(f['where'], f['where']):<21} {p['nic']:>9} "
                     f"{p['hypervisor']:>8} {b['nic']:>10} {b['hypervisor']:>9}  {f['why']}")
        if f["key"]:
            lines.append(" " * 14 + "key: " + ", ".join(f"{k}={v}" for k, v in f["key"].items()))
    return lines
