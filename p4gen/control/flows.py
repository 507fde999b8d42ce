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


def snapshot(m: OffloadManager) -> dict:
    """The manager's flows as plain data (what flows.json holds)."""
    flows = []
    for f in m.flows.values():
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
    flows.sort(key=lambda x: -(x["packets"]["nic"] + x["packets"]["hypervisor"]))
    used = sum(1 for f in m.flows.values() if f.where == "nic")
    return {"time": time.time(), "table": {"size": m.size, "used": used}, "stats": dict(m.stats),
            "policy": {"threshold_packets": m.policy.threshold_packets,
                       "idle_timeout_ms": m.policy.idle_timeout_ms,
                       "idle": "notifications" if m.notifies else "counter polling"},
            "flows": flows}


def write_snapshot(m: OffloadManager, outdir: Path) -> None:
    tmp = outdir / (FLOWS_FILE + ".tmp")
    tmp.write_text(json.dumps(snapshot(m), indent=1))
    tmp.replace(outdir / FLOWS_FILE)  # readers never see half a file


def render(data: dict) -> list[str]:
    """flows.json as `p4gen flows` prints it."""
    t, pol = data["table"], data["policy"]
    lines = [f"flow table: {t['used']} of {t['size']} entries; offloaded after {pol['threshold_packets']} packets, "
             f"idle after {pol['idle_timeout_ms'] / 1000:g} s ({pol['idle']})",
             "stats: " + ", ".join(f"{k} {v}" for k, v in data["stats"].items())]
    if not data["flows"]:
        lines.append("no flow has reached the hypervisor yet")
        return lines
    lines.append(f"{'pipeline':<12} {'hash':<8} {'where':<21} {'pkts NIC':>9} {'pkts hv':>8} {'bytes NIC':>10} "
                 f"{'bytes hv':>9}  why / key")
    for f in data["flows"]:
        p, b = f["packets"], f["bytes"]
        lines.append(f"{f['pipeline']:<12} {f['hash']:<8} {WHERE.get(f['where'], f['where']):<21} {p['nic']:>9} "
                     f"{p['hypervisor']:>8} {b['nic']:>10} {b['hypervisor']:>9}  {f['why']}")
        if f["key"]:
            lines.append(" " * 14 + "key: " + ", ".join(f"{k}={v}" for k, v in f["key"].items()))
    return lines
