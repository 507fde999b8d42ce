"""`p4gen push`: a build's pipeline and entries onto a P4Runtime target, idempotently.

1. become primary client (StreamChannel arbitration with the election id);
2. SetForwardingPipelineConfig (P4Info + BMv2 JSON), unless the target already
   runs this exact config (same cookie, a hash of both);
3. read back the table entries the target holds and write only the
   difference: deletes, modifications, inserts, in batches. After a target
   restart one push restores everything; a second push writes nothing.

A refused write names the gRPC status, each failing update's P4Runtime error,
the entry itself and the DSL line it came from.
"""

from __future__ import annotations

import hashlib
import json
import queue
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf import text_format
from google.rpc import code_pb2, status_pb2
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from p4gen.backend.entries import canonical
from p4gen.backend.manifest import ManifestError, check_program_json


class PushError(Exception):
    pass


@dataclass
class PushResult:
    pipeline_set: bool
    inserted: int
    modified: int
    deleted: int
    unchanged: int
    batches: int


def _grpc_error(e: grpc.RpcError, what: str, addr: str) -> PushError:
    code = e.code() if hasattr(e, "code") else None
    details = e.details() if hasattr(e, "details") else str(e)
    name = code.name if code is not None else "UNKNOWN"
    if code == grpc.StatusCode.UNAVAILABLE:
        return PushError(f"cannot reach the P4Runtime server at {addr}: {name}: {details}")
    return PushError(f"{what} failed: gRPC {name}: {details}")


# A refused Write reports one p4.v1.Error per update in the status details, which travel in
# gRPC trailing metadata (about 100 bytes an update on BMv2): gRPC's default limits (8 KiB
# soft, 16 KiB hard) would turn a batch of a few hundred refusals into RESOURCE_EXHAUSTED
# without them. Reads of many entries may come as one large message.
CHANNEL_OPTIONS = [("grpc.max_metadata_size", 4 << 20), ("grpc.max_receive_message_length", 64 << 20)]


class P4RuntimeClient:
    """The least a controller needs: arbitration, pipeline config, read, write."""

    def __init__(self, addr: str, device_id: int = 0, election_id: tuple[int, int] = (0, 1), timeout: float = 10):
        self.addr, self.device_id, self.timeout = addr, device_id, timeout
        self.election = p4runtime_pb2.Uint128(high=election_id[0], low=election_id[1])
        self.channel = grpc.insecure_channel(addr, options=CHANNEL_OPTIONS)
        self.stub = p4runtime_pb2_grpc.P4RuntimeStub(self.channel)
        self._requests: queue.Queue = queue.Queue()
        self._stream = None

    def __enter__(self) -> P4RuntimeClient:
        try:
            grpc.channel_ready_future(self.channel).result(timeout=self.timeout)
        except grpc.FutureTimeoutError:
            raise PushError(f"cannot reach the P4Runtime server at {self.addr} (no answer in {self.timeout:g} s)")\
                from None
        req = p4runtime_pb2.StreamMessageRequest()
        req.arbitration.device_id = self.device_id
        req.arbitration.election_id.CopyFrom(self.election)
        self._requests.put(req)
        self._stream = self.stub.StreamChannel(iter(self._requests.get, None))
        try:
            resp = next(self._stream)
        except grpc.RpcError as e:
            raise _grpc_error(e, "arbitration", self.addr) from None
        status = resp.arbitration.status
        if status.code != 0:
            raise PushError(f"not the primary client for device {self.device_id} at {self.addr} "
                            f"(election id {self.election.high},{self.election.low}): {status.message}")
        return self

    def __exit__(self, *exc) -> None:
        self._requests.put(None)
        self.channel.close()

    def config_cookie(self) -> int | None:
        req = p4runtime_pb2.GetForwardingPipelineConfigRequest(
            device_id=self.device_id, response_type=p4runtime_pb2.GetForwardingPipelineConfigRequest.COOKIE_ONLY)
        try:
            resp = self.stub.GetForwardingPipelineConfig(req, timeout=self.timeout)
        except grpc.RpcError:
            return None  # no pipeline yet
        return resp.config.cookie.cookie if resp.config.HasField("cookie") else None

    def set_pipeline(self, info: p4info_pb2.P4Info, device_config: bytes, cookie: int) -> None:
        req = p4runtime_pb2.SetForwardingPipelineConfigRequest(
            device_id=self.device_id, election_id=self.election,
            action=p4runtime_pb2.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT)
        req.config.p4info.CopyFrom(info)
        req.config.p4_device_config = device_config
        req.config.cookie.cookie = cookie
        try:
            self.stub.SetForwardingPipelineConfig(req, timeout=self.timeout)
        except grpc.RpcError as e:
            raise _grpc_error(e, "SetForwardingPipelineConfig", self.addr) from None

    def read_table_entries(self, table_id: int = 0, counters: bool = False) -> list[p4runtime_pb2.TableEntry]:
        """Every entry of every table (or of `table_id`); with `counters`, each with its direct
        counter (packets, bytes)."""
        req = p4runtime_pb2.ReadRequest(device_id=self.device_id)
        te = req.entities.add().table_entry
        te.table_id = table_id  # 0: every table
        if counters:
            te.counter_data.SetInParent()
        out = []
        try:
            for resp in self.stub.Read(req, timeout=self.timeout):
                out += [e.table_entry for e in resp.entities if e.HasField("table_entry")]
        except grpc.RpcError as e:
            raise _grpc_error(e, "Read", self.addr) from None
        return out

    def read_counter(self, counter_id: int, index: int | None = None) -> dict[int, tuple[int, int]]:
        """Index → (packets, bytes) of an indirect counter (one cell, or all of them)."""
        req = p4runtime_pb2.ReadRequest(device_id=self.device_id)
        ce = req.entities.add().counter_entry
        ce.counter_id = counter_id
        if index is not None:
            ce.index.index = index
        out = {}
        try:
            for resp in self.stub.Read(req, timeout=self.timeout):
                for e in resp.entities:
                    if e.HasField("counter_entry"):
                        c = e.counter_entry
                        out[c.index.index] = (c.data.packet_count, c.data.byte_count)
        except grpc.RpcError as e:
            raise _grpc_error(e, "Read", self.addr) from None
        return out

    def write(self, updates: list[p4runtime_pb2.Update]) -> None:
        req = p4runtime_pb2.WriteRequest(device_id=self.device_id, election_id=self.election)
        req.updates.extend(updates)
        self.stub.Write(req, timeout=self.timeout)


def _normalised(te: p4runtime_pb2.TableEntry) -> p4runtime_pb2.TableEntry:
    """Canonical bytestrings, matches sorted by field id, only the fields a push controls."""
    out = p4runtime_pb2.TableEntry(table_id=te.table_id, priority=te.priority)
    for fm in sorted(te.match, key=lambda f: f.field_id):
        n = out.match.add()
        n.CopyFrom(fm)
        kind = n.WhichOneof("field_match_type")
        msg = getattr(n, kind)
        for attr in ("value", "mask", "low", "high"):
            raw = getattr(msg, attr, None)
            if raw:
                setattr(msg, attr, canonical(int.from_bytes(raw, "big"), 8 * len(raw)))
    if te.action.HasField("action"):
        out.action.action.action_id = te.action.action.action_id
        for p in sorted(te.action.action.params, key=lambda p: p.param_id):
            out.action.action.params.add(param_id=p.param_id,
                                         value=canonical(int.from_bytes(p.value, "big"), 8 * len(p.value)))
    return out


def _key(te: p4runtime_pb2.TableEntry) -> bytes:
    n = _normalised(te)
    n.ClearField("action")
    return n.SerializeToString(deterministic=True)


def _error_report(e: grpc.RpcError, updates: list, origins: list[str]) -> str:
    lines = [f"Write failed: gRPC {e.code().name}: {e.details()}"]
    details = None
    for k, v in e.trailing_metadata() or ():
        if k == "grpc-status-details-bin":
            details = status_pb2.Status.FromString(v)
    if details is not None:
        for i, anyd in enumerate(details.details):
            err = p4runtime_pb2.Error()
            anyd.Unpack(err)
            if err.canonical_code == 0:
                continue
            try:
                code = code_pb2.Code.Name(err.canonical_code)
            except ValueError:
                code = str(err.canonical_code)
            origin = origins[i] if i < len(origins) else "?"
            lines.append(f"  update {i} from {origin}: {code}: {err.message}")
            lines.append("    " + text_format.MessageToString(updates[i], as_one_line=True))
    else:
        for i, u in enumerate(updates[:5]):
            origin = origins[i] if i < len(origins) else "?"
            lines.append(f"  update {i} from {origin}: " + text_format.MessageToString(u, as_one_line=True))
    return "\n".join(lines)


def push(outdir: Path, addr: str, device_id: int = 0, election_id: tuple[int, int] = (0, 1),
         batch_size: int = 256, timeout: float = 10) -> PushResult:
    try:
        info = text_format.Parse((outdir / "program.p4info.txtpb").read_text(), p4info_pb2.P4Info())
        desired = text_format.Parse((outdir / "entries.txtpb").read_text(), p4runtime_pb2.WriteRequest())
    except OSError as e:
        if not outdir.is_dir():
            why = "not a directory" if outdir.exists() else "no such directory"
            raise PushError(f"{outdir} is not a p4gen build output: {why}") from None
        raise PushError(f"{outdir} is not a p4gen build output: cannot read {e.filename}: {e.strerror or e}") \
            from None
    except text_format.ParseError as e:
        raise PushError(f"{outdir} is not a p4gen build output: {e}") from None
    json_path = outdir / "program.json"
    if not json_path.exists():
        raise PushError(f"{json_path} is missing: build with a p4c (p4gen build --require-p4c, or --p4c docker)")
    try:
        check_program_json(outdir)
    except ManifestError as e:
        raise PushError(str(e)) from None
    device_config = json_path.read_bytes()
    origins_path = outdir / "entries_origin.json"
    origins = json.loads(origins_path.read_text()) if origins_path.exists() else []
    origin_of = {_key(u.entity.table_entry): origins[i] if i < len(origins) else "?"
                 for i, u in enumerate(desired.updates)}
    cookie = int.from_bytes(hashlib.sha256(info.SerializeToString(deterministic=True) + device_config)
                            .digest()[:8], "big")
    with P4RuntimeClient(addr, device_id, election_id, timeout) as client:
        pipeline_set = client.config_cookie() != cookie
        if pipeline_set:
            client.set_pipeline(info, device_config, cookie)
        want = {_key(u.entity.table_entry): u.entity.table_entry for u in desired.updates}
        # The flow table's entries belong to the offload manager (p4gen.control.offload), not to
        # the build: a push leaves them alone.
        runtime_owned = {t.preamble.id for t in info.tables if t.preamble.name.startswith("p4gen.")}
        have = {_key(te): te for te in client.read_table_entries() if te.table_id not in runtime_owned}
        updates: list[p4runtime_pb2.Update] = []
        for k, te in have.items():
            if k not in want:
                u = p4runtime_pb2.Update(type=p4runtime_pb2.Update.DELETE)
                u.entity.table_entry.CopyFrom(te)
                updates.append(u)
        deleted = len(updates)
        modified = unchanged = 0
        for k, te in want.items():
            if k in have:
                if _normalised(have[k]) == _normalised(te):
                    unchanged += 1
                    continue
                kind, modified = p4runtime_pb2.Update.MODIFY, modified + 1
            else:
                kind = p4runtime_pb2.Update.INSERT
            u = p4runtime_pb2.Update(type=kind)
            u.entity.table_entry.CopyFrom(te)
            updates.append(u)
        batches = 0
        for start in range(0, len(updates), batch_size):
            chunk = updates[start:start + batch_size]
            try:
                client.write(chunk)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.UNAVAILABLE:
                    raise _grpc_error(e, "Write", addr) from None
                raise PushError(_error_report(e, chunk, [origin_of.get(_key(u.entity.table_entry), "?")
                                                         for u in chunk])) from None
            batches += 1
    inserted = len(updates) - deleted - modified
    return PushResult(pipeline_set, inserted, modified, deleted, unchanged, batches)
