"""`p4gen push` against a real simple_switch_grpc on loopback (skipped where BMv2 or p4c is absent)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BMV2, NEEDS_BMV2, P4C
from google.protobuf import text_format
from p4.v1 import p4runtime_pb2
from test_backend import built

from p4gen.control.links import packet_socket
from p4gen.control.push import P4RuntimeClient, PushError, push

pytestmark = NEEDS_BMV2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def switch(tmp_path):
    port = free_port()
    addr = f"127.0.0.1:{port}"
    log = open(tmp_path / "switch.log", "w")
    proc = subprocess.Popen([BMV2, "--no-p4", "--log-file", str(tmp_path / "bmv2"), "--",
                             "--grpc-server-addr", addr], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 20
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield addr
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


@pytest.fixture()
def build_dir(tmp_path) -> Path:
    out = tmp_path / "out"
    res = built("examples/vm_offload.nf", out, "targets/bmv2-smartnic.toml", P4C)
    assert res.p4c is not None and res.p4c.ok, res.p4c.output if res.p4c else ""
    return out


def test_push_is_idempotent_and_restores_state(switch, build_dir):
    first = push(build_dir, switch)
    assert first.pipeline_set and first.inserted == 22 and first.batches == 1
    again = push(build_dir, switch)
    assert not again.pipeline_set and (again.inserted, again.modified, again.deleted, again.unchanged) == (0, 0, 0, 22)
    desired = text_format.Parse((build_dir / "entries.txtpb").read_text(), p4runtime_pb2.WriteRequest())
    with P4RuntimeClient(switch) as client:
        gone = p4runtime_pb2.Update(type=p4runtime_pb2.Update.DELETE)
        gone.entity.table_entry.CopyFrom(desired.updates[0].entity.table_entry)
        changed = p4runtime_pb2.Update(type=p4runtime_pb2.Update.MODIFY)
        with_params = next(u for u in desired.updates if u.entity.table_entry.action.action.params)
        changed.entity.table_entry.CopyFrom(with_params.entity.table_entry)
        changed.entity.table_entry.action.action.params[0].value = b"\x01\x02\x03\x04"
        client.write([gone, changed])
        assert len(client.read_table_entries()) == 21
    fixed = push(build_dir, switch)
    assert (fixed.inserted, fixed.modified, fixed.deleted, fixed.unchanged) == (1, 1, 0, 20)
    with P4RuntimeClient(switch) as client:
        assert len(client.read_table_entries()) == 22


def test_refused_write_names_status_entry_and_dsl_line(switch, build_dir):
    push(build_dir, switch)
    # An entry the switch refuses: its action id does not exist in the pipeline.
    req = text_format.Parse((build_dir / "entries.txtpb").read_text(), p4runtime_pb2.WriteRequest())
    req.updates[0].entity.table_entry.action.action.action_id = 0x01ABCDEF
    (build_dir / "entries.txtpb").write_text(text_format.MessageToString(req))
    with pytest.raises(PushError) as e:
        push(build_dir, switch)
    msg = str(e.value)
    assert msg.startswith("Write failed: gRPC ")
    assert "from examples/vm_offload.nf:" in msg
    assert "action_id: 28036591" in msg


def test_a_large_refused_batch_keeps_its_error_details(switch, build_dir):
    """300 refused updates in one Write: every per-update error reaches the client (gRPC's
    default metadata limits would drop them all and report RESOURCE_EXHAUSTED)."""
    import grpc
    from google.rpc import status_pb2

    push(build_dir, switch)
    req = text_format.Parse((build_dir / "entries.txtpb").read_text(), p4runtime_pb2.WriteRequest())
    bad = req.updates[0]
    bad.entity.table_entry.action.action.action_id = 0x01ABCDEF
    with P4RuntimeClient(switch) as client, pytest.raises(grpc.RpcError) as e:
        client.write([bad] * 300)
    assert e.value.code() != grpc.StatusCode.RESOURCE_EXHAUSTED, e.value.details()
    blobs = [v for k, v in e.value.trailing_metadata() or () if k == "grpc-status-details-bin"]
    assert blobs and len(status_pb2.Status.FromString(blobs[0]).details) == 300


def test_unreachable_target_is_a_clear_error(build_dir):
    with pytest.raises(PushError, match="cannot reach the P4Runtime server at 127.0.0.1:"):
        push(build_dir, f"127.0.0.1:{free_port()}", timeout=1)


@pytest.mark.parametrize("netns", [True, False], ids=["own-netns", "current-netns"])
def test_up_forwards_both_ways_and_down_cleans_up(build_dir, netns):
    import os
    import select
    import sys

    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN
    from scapy.packet import Raw

    prefix = f"pt{os.getpid() % 100000}"
    addr = f"127.0.0.1:{free_port()}"
    up = subprocess.Popen([sys.executable, "-m", "p4gen", "up", str(build_dir), "--grpc-addr", addr,
                           "--prefix", prefix, *([] if netns else ["--no-netns"])],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = up.stdout.readline()
        assert line.startswith("up: "), line + up.stdout.read()
        here = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout.split()
        if netns:
            assert f"in network namespace {prefix}" in line
            inside = subprocess.run(["ip", "-n", prefix, "-br", "link"], capture_output=True, text=True).stdout
            # The NIC's ports and the hypervisor's ends are in the namespace; the user's ends are here.
            for name in ("up", "host", "hv", "vmh"):
                assert f"{prefix}-{name}" in inside and not any(w.startswith(f"{prefix}-{name}@") for w in here)
            # push (and shell) find the namespace from OUTDIR/up.json.
            again = subprocess.run([sys.executable, "-m", "p4gen", "push", str(build_dir), "--grpc-addr", addr],
                                   capture_output=True, text=True, check=False)
            assert again.returncode == 0 and "0 inserted, 0 modified, 0 deleted, 22 unchanged" in again.stdout, \
                again.stdout + again.stderr
        else:
            assert any(w.startswith(f"{prefix}-up@") for w in here)
        vm, wire = packet_socket(f"{prefix}-vm"), packet_socket(f"{prefix}-wire")

        def collect(s, seconds=2.0, skip=()):
            got, end = [], time.time() + seconds
            while time.time() < end:
                if select.select([s], [], [], 0.1)[0]:
                    data = s.recv()
                    if data not in skip:
                        got.append(data)
            return got

        sent = bytes(Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:fe") / IP(src="10.0.1.2", dst="10.0.2.9") /
                     TCP(dport=443, flags="PA") / Raw(bytes(20000)))
        vm.send(sent)
        out = collect(wire)
        assert len(out) == 15 and max(len(p) for p in out) == 1514
        assert all(Ether(p)[VXLAN].vni == 5001 for p in out)
        inner = (Ether(src="02:00:00:00:02:09", dst="02:00:00:00:01:02") / IP(src="10.0.2.9", dst="10.0.1.2") /
                 TCP(sport=443, dport=40000, flags="A") / Raw(b"r"))
        collect(vm, 0.3)
        wire.send(bytes(Ether(dst="02:00:c0:a8:01:01") / IP(src="192.168.1.2", dst="192.168.1.1") /
                        UDP(sport=5, dport=4789, chksum=0) / VXLAN(vni=5001) / inner))
        assert collect(vm, skip=(sent,)) == [bytes(inner)]
        vm.close()
        wire.close()
    finally:
        done = subprocess.run([sys.executable, "-m", "p4gen", "down", str(build_dir)], capture_output=True,
                              text=True, check=False)
        up.wait(timeout=20)
    assert done.returncode == 0 and up.returncode == 0
    assert not (build_dir / "up.json").exists()
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert prefix not in links
    assert prefix not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_up_refuses_a_namespace_it_did_not_create(build_dir):
    import os
    import sys

    name = f"pn{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        r = subprocess.run([sys.executable, "-m", "p4gen", "up", str(build_dir), "--prefix", name,
                            "--grpc-addr", f"127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert r.stderr.startswith(f"p4gen: error: ip netns add {name}:"), r.stderr
        assert name in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout  # left alone
        assert not (build_dir / "up.json").exists()
        assert f"{name}-" not in subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
