"""Entries written per second by `p4gen push` (batched Write requests) against one Write per
entry, in the same run, on a local simple_switch_grpc (needs BMv2 and p4c).

    python benchmarks/p4runtime.py [--entries N]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from google.protobuf import text_format
from p4.v1 import p4runtime_pb2

from p4gen.backend.build import build
from p4gen.backend.p4c import find_p4c, find_tool
from p4gen.control.push import P4RuntimeClient, push
from p4gen.frontend import check_source
from p4gen.ir import build_ir
from p4gen.place import builtin_profile, load_profile, place

ROOT = Path(__file__).resolve().parent.parent


def program(n: int) -> str:
    rows = "\n".join(f"    ({(10 << 24) + i}) => set_mac({0x020000000000 + i});" for i in range(n))
    return f"""
nf fib {{
    action set_mac(mac: bit<48>) {{ ethernet.dst = mac; }}
    action miss() {{ }}
    table hosts {{ key = {{ ipv4.dst: exact; }} actions = {{ set_mac; miss; }} default_action = miss(); size = {n}; }}
    apply {{ if (ipv4.isValid()) {{ hosts.apply(); }} }}
}}
pipeline p : vm_ingress {{ fib; }}
entries fib.hosts {{
{rows}
}}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=2000)
    args = ap.parse_args()
    bmv2, p4c = find_tool("P4GEN_BMV2", "simple_switch_grpc"), find_p4c()
    if bmv2 is None or p4c is None:
        sys.exit("needs simple_switch_grpc and p4c-bm2-ss (P4GEN_BMV2 / P4GEN_P4C, PATH, /opt/p4/bin)")
    prog, sink = check_source("hosts.nf", program(args.entries).encode())
    assert prog is not None, sink.render()
    g = build_ir(prog)
    nic = load_profile(ROOT / "targets" / "bmv2-smartnic.toml")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        res = build(prog, g, place(g, prog, nic, builtin_profile("hypervisor")), "hosts.nf", out, p4c)
        assert res.p4c is not None and res.p4c.ok, res.p4c.output if res.p4c else ""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        addr = f"127.0.0.1:{port}"
        sw = subprocess.Popen([bmv2, "--no-p4", "--", "--grpc-server-addr", addr],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1.5)
            t0 = time.perf_counter()
            r = push(out, addr)
            t_batched = time.perf_counter() - t0
            assert r.inserted == args.entries
            updates = text_format.Parse((out / "entries.txtpb").read_text(), p4runtime_pb2.WriteRequest()).updates
            with P4RuntimeClient(addr) as client:
                deletes = []
                for u in updates:
                    d = p4runtime_pb2.Update(type=p4runtime_pb2.Update.DELETE)
                    d.entity.table_entry.CopyFrom(u.entity.table_entry)
                    deletes.append(d)
                client.write(deletes)
                t0 = time.perf_counter()
                for u in updates:
                    client.write([u])
                t_single = time.perf_counter() - t0
                client.write(deletes)
                t0 = time.perf_counter()
                for i in range(0, len(updates), 256):
                    client.write(list(updates[i:i + 256]))
                t_batches = time.perf_counter() - t0
        finally:
            sw.terminate()
            sw.wait(timeout=10)
    n = args.entries
    print(f"p4gen push, batched ({r.batches} Write requests): {n / t_batched:8.0f} entries/s "
          f"(includes arbitration, pipeline config, read-back)")
    print(f"batched Writes alone (256 per request): {n / t_batches:8.0f} entries/s")
    print(f"one Write per entry:                   {n / t_single:8.0f} entries/s")
    print(f"batched writes / one-by-one:           {t_single / t_batches:8.1f}x")


if __name__ == "__main__":
    main()
