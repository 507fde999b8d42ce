"""The `p4gen` command line: check, graph (and later build, place, run, push)."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections import Counter

from p4gen.diagnostics import Diagnostic, DiagnosticSink, render
from p4gen.frontend import load_program


def _report(sink: DiagnosticSink) -> None:
    text = sink.render()
    if text:
        sys.stderr.write(text)


def _load(path: str):
    """The checked program and its IR, or (None, None) after printing the diagnostics."""
    from p4gen.ir import build_ir

    prog, sink = load_program([path])
    _report(sink)
    if prog is None:
        return None, None
    return prog, build_ir(prog)


def cmd_check(args: argparse.Namespace) -> int:
    status = 0
    for path in args.files:
        prog, sink = load_program([path])
        _report(sink)
        if prog is None:
            status = 1
        elif not args.quiet:
            n_tables = sum(len(nf.tables) for nf in prog.nfs.values())
            print(f"{path}: ok ({len(prog.pipelines)} pipeline(s), {n_tables} table(s), "
                  f"{len(prog.entries)} entr{'y' if len(prog.entries) == 1 else 'ies'})")
    return status


def _error(msg: str) -> int:
    print(f"p4gen: error: {msg}", file=sys.stderr)
    return 1


P4C_SEARCH = "P4GEN_P4C, p4c-bm2-ss on PATH, /opt/p4/bin; or --p4c docker"


def _os_reason(e: OSError) -> str:
    """`No such file or directory`, not `[Errno 2] No such file or directory: 'x'`."""
    return e.strerror or str(e)


def _output_problem(path: str, what: str = "") -> str | None:
    """Why `path` cannot be written as a file (checked before any work is done), or None."""
    what = what or path
    if os.path.isdir(path):
        return f"cannot write {what}: it is a directory"
    parent = os.path.dirname(path) or "."
    if not os.path.exists(parent):
        return f"cannot write {what}: directory {parent} does not exist"
    if not os.path.isdir(parent):
        return f"cannot write {what}: {parent} is not a directory"
    existed = os.path.exists(path)
    try:  # the only sure test (root passes os.access on read-only file systems)
        with open(path, "ab"):
            pass
    except OSError as e:
        return f"cannot write {what}: {_os_reason(e)}"
    if not existed:
        try:
            os.unlink(path)
        except OSError:
            pass
    return None


def _outdir_problem(path: str) -> str | None:
    """Why `path` cannot be (made) a directory to write files in, or None."""
    if os.path.exists(path) and not os.path.isdir(path):
        return f"cannot write to {path}: it exists and is not a directory"
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        return f"cannot create {path}: {probe} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"cannot write to {probe}: permission denied"
    return None


def _input_problem(path: str) -> str | None:
    """Why `path` cannot be read as a file, or None."""
    if not os.path.exists(path):
        return f"cannot read {path}: no such file"
    if os.path.isdir(path):
        return f"cannot read {path}: it is a directory"
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        return f"cannot read {path}: {_os_reason(e)}"
    return None


def _placement(args: argparse.Namespace, g, prog):
    """Run placement for --target/--rates; None after printing the error."""
    from p4gen.place import Infeasible, ProfileError, load_rates, place, resolve_targets

    try:
        nic, hyp = resolve_targets(args.target or [])
        rates = load_rates(args.rates, prog) if args.rates else None
        return place(g, prog, nic, hyp, rates)
    except Infeasible as e:
        if e.pos is None:
            _error(e.message)
        else:  # a @pin the target cannot honour: FILE:LINE:COL, the line and a caret
            _print_diagnostic(Diagnostic("error", e.message, e.pos))
        return None
    except ProfileError as e:
        msg = str(e)
        print(msg if ": error: " in msg else f"p4gen: error: {msg}", file=sys.stderr)
        return None


def _print_diagnostic(d: Diagnostic) -> None:
    """A diagnostic about a DSL file, with its source line and caret."""
    from pathlib import Path

    sources = {}
    if d.pos is not None:
        try:
            sources[d.pos.file] = Path(d.pos.file).read_bytes().decode("utf-8", "backslashreplace")
        except OSError:
            pass
    print(render(d, sources), end="", file=sys.stderr)


def cmd_place(args: argparse.Namespace) -> int:
    import json

    from p4gen.place import flowtable
    from p4gen.place.explain import to_json, to_text

    prog, g = _load(args.file)
    if prog is None:
        return 1
    if args.output and (problem := _output_problem(args.output)):
        return _error(problem)
    pl = _placement(args, g, prog)
    if pl is None:
        return 1
    data = to_json(pl, args.file)
    flows = flowtable.report(prog, pl, g)
    if args.json and flows is not None:
        data["flow_offload"] = flowtable.to_json(flows)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        text = to_text(pl, args.file, args.explain)
        if args.explain and flows is not None:
            text += "\n" + "\n".join(flowtable.to_lines(flows)) + "\n"
        sys.stdout.write(text)
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from p4gen.backend.build import build
    from p4gen.backend.emit import BackendError
    from p4gen.backend.manifest import ManifestError, check_outdir
    from p4gen.backend.p4c import find_p4c

    prog, g = _load(args.file)
    if prog is None:
        return 1
    if not prog.pipelines:
        return _error(f"{args.file} declares no pipeline: nothing to build")
    pl = _placement(args, g, prog)
    if pl is None:
        return 1
    p4c = None if args.no_p4c else (args.p4c or "auto")
    if p4c == "auto" and args.require_p4c and find_p4c() is None:
        return _error(f"--require-p4c: p4c not found ({P4C_SEARCH})")
    if p4c not in (None, "auto", "docker") and not (os.path.isfile(p4c) and os.access(p4c, os.X_OK)):
        return _error(f"--p4c {p4c}: p4c not found (no such executable file)")
    if p4c == "docker":
        import shutil

        from p4gen.backend.p4c import docker_problem

        docker = shutil.which("docker")
        why = "it is not installed" if docker is None else docker_problem(docker)
        if why is not None:
            return _error(f"--p4c docker: docker is unavailable: {why}")
    try:
        check_outdir(Path(args.output), args.force)
        res = build(prog, g, pl, args.file, Path(args.output), p4c, args.rates)
    except ManifestError as e:
        return _error(str(e))
    except OSError as e:
        return _error(f"cannot write {e.filename or args.output}: {_os_reason(e)}")
    except BackendError as e:
        if e.pos is None:
            return _error(str(e))
        _print_diagnostic(Diagnostic("error", str(e), e.pos))
        return 1
    print(f"wrote {args.output}/: " + ", ".join(res.files))
    if res.p4c_missing:
        print(f"note: no p4c found ({P4C_SEARCH}): skipped program.json")
    elif res.p4c is not None and res.p4c.unavailable:
        return _error(res.p4c.unavailable)
    elif res.p4c is not None and not res.p4c.ok:
        print(res.p4c.output, file=sys.stderr)
        return _error(f"p4c failed on {args.output}/program.p4 ({' '.join(res.p4c.command)})")
    elif res.p4c is not None and res.p4c.output:
        print(res.p4c.output, file=sys.stderr)
    return 0


def _output_label(o) -> str:
    """uplink, vm, slow_path, to_nic, or portN for forward(N): the name of an output in the summary
    and of its pcap under --out-dir."""
    return _fate_label((o.kind, o.port))


def _key_text(km, width: int) -> str:
    from p4gen.frontend.literals import format_value

    kind = {48: "mac", 128: "ipv6"}.get(width, "ipv4" if width == 32 else "int")

    def v(x: int) -> str:
        return format_value(kind, x, width)

    if km.wildcard:
        return "_"
    if km.kind == "lpm":
        return v(km.value) if km.prefix_len == width else f"{v(km.value)}/{km.prefix_len}"
    if km.kind == "ternary":
        full, mask = (1 << width) - 1, km.mask or 0
        if mask == full:
            return v(km.value)
        plen = bin(mask).count("1")
        if kind in ("ipv4", "ipv6") and mask == (full >> (width - plen)) << (width - plen):
            return f"{v(km.value)}/{plen}"  # a prefix-shaped mask, as the DSL wrote it
        return f"{v(km.value)} &&& {v(mask)}"
    if km.kind == "range":
        return v(km.value) if km.high == km.value else f"{v(km.value)}..{v(km.high or 0)}"
    return v(km.value)


def _program_counters(prog, hv, pipeline: str) -> dict:
    """The program's own counters after a run of `pipeline`, for the nfs in it: indirect ones
    (count(c, i)) and direct ones (tables with counters = true, per entry)."""
    nfs = [prog.nfs[n] for n in prog.pipelines[pipeline].stages if n in prog.nfs]
    indirect = {}
    for (nf, name), cells in hv.counters.items():
        if any(nf == x.name for x in nfs):
            indirect[f"{nf}.{name}"] = [{"index": i, "packets": p, "bytes": b} for i, (p, b) in enumerate(cells)]
    direct = {}
    for nf in nfs:
        for t in nf.tables.values():
            if not t.counters or t.name not in hv.tables:
                continue
            widths = [k.field.width for k in t.keys]
            rows = []
            for e in hv.tables[t.name].entries:
                keys = ", ".join(_key_text(k, w) for k, w in zip(e.keys, widths, strict=True))
                args = ", ".join(str(a) for a in e.args.values())
                rows.append({"entry": f"({keys}) => {e.action}({args})", "packets": e.packets, "bytes": e.bytes})
            direct[f"{nf.name}.{t.name}"] = rows
    return {"indirect": indirect, "direct": direct}


VECTOR_BATCH = 16384  # frames per batch when a batch is only a unit of work (p4gen run)


def _label_counts(res) -> Counter[str]:
    """Outputs per label (`_output_label`) of one batch's results (an Outputs or a list)."""
    import numpy as np

    if isinstance(res, list):
        return Counter(_output_label(o) for o in res)
    out: Counter[str] = Counter()
    for b in res.blocks:
        for f, k in enumerate(np.bincount(b.fates, minlength=len(res.fates)).tolist()):
            if k:
                out[_fate_label(res.fates[f])] += k
    for _i, outs in res.single:
        out.update(_output_label(o) for o in outs)
    return out


def _fate_label(fate: tuple) -> str:
    """The label of outputs of a fate (kind, port, …): portN for forward(N), else the kind."""
    kind, port = fate[0], fate[1]
    return f"port{port}" if kind == "port" else kind


def _records(results: list, label: str | None):
    """The pcap records of every batch's outputs (those of `label`, or all), numbered on."""
    from p4gen.runtime.flowvec import Outputs

    count = 0
    for res in results:
        if isinstance(res, list):
            res = Outputs(single=[(i, [o]) for i, o in enumerate(res)])
        keep = [label is None or _fate_label(f) == label for f in res.fates]
        blob, n = res.pcap_records(keep, lambda o: label is None or _output_label(o) == label, count)
        count += n
        yield blob


def cmd_run(args: argparse.Namespace) -> int:
    import json

    from p4gen.runtime.pcap import PcapError, read_pcap_chunks, write_records
    from p4gen.runtime.pipeline import HypervisorPipeline

    if args.output is None and args.out_dir is None:
        return _error("run needs --out OUT.pcap (every output in one file) or --out-dir DIR (one pcap per output)")
    prog, g = _load(args.file)
    if prog is None:
        return 1
    if args.pipeline not in prog.pipelines:
        return _error(f"no pipeline '{args.pipeline}'; {args.file} has {', '.join(prog.pipelines) or 'none'}")
    problem = _input_problem(args.input)
    if problem is None and args.output is not None:
        problem = _output_problem(args.output)
    if problem is None and args.out_dir is not None:
        problem = _outdir_problem(args.out_dir)
    if problem:
        return _error(problem)
    assignment = ports = None
    if args.target:
        pl = _placement(args, g, prog)
        if pl is None:
            return 1
        assignment = dict(pl.assignment)
        ports = pl.problem.nic.ports if pl.problem.nic else None
    vnets = None
    if args.vnet:
        from p4gen.runtime.virtio import read_sidecar

        try:
            vnets = iter(read_sidecar(args.vnet))
        except OSError as e:
            return _error(f"cannot read {args.vnet}: {_os_reason(e)}")
        except ValueError as e:
            return _error(str(e))
    from p4gen.runtime.flowcache import DEFAULT_SIZE

    hv = HypervisorPipeline(prog, g, assignment, flow_cache=0 if args.no_flow_cache else DEFAULT_SIZE, ports=ports)
    # What the program's compilation made stays: the collector need not walk it again and again
    # while a million frames come and go.
    import gc

    gc.freeze()
    # Without coalescing (--lro) or virtio headers, a batch is only a unit of work: the cached
    # flows of a large one are replayed as vectors (p4gen.runtime.flowvec), outputs in arrays.
    vector = not args.lro and vnets is None
    size = max(args.batch, VECTOR_BATCH) if vector else args.batch
    results: list = []  # per batch: an Outputs (vector) or a list of Output
    n_in = lines = 0
    batch: list[bytes] = []
    batch_vnet: list | None = [] if vnets is not None else None
    progress = sys.stderr.isatty()
    read, total = 24, os.path.getsize(args.input) if os.path.isfile(args.input) else 0  # pcap header: 24 bytes

    def flush() -> None:
        if vector:
            results.append(hv.run_vector(args.pipeline, batch))
        else:
            results.append(hv.run_batch(args.pipeline, batch, lro=args.lro, vnets=batch_vnet))

    try:
        for chunk in read_pcap_chunks(args.input):
            if progress:  # a line per thousand frames
                at = read
                for k, f in enumerate(chunk, n_in + 1):
                    at += 16 + len(f)
                    if k % 1000 == 0:
                        print("\r" + _progress_bar(at, total, k), end="", file=sys.stderr, flush=True)
            n_in += len(chunk)
            read += 16 * len(chunk) + sum(map(len, chunk))
            if batch_vnet is not None:
                for _f in chunk:
                    v = next(vnets, None)
                    if v is None:
                        return _error(f"{args.vnet} has fewer lines than {args.input} has frames ({lines})")
                    lines += 1
                    batch_vnet.append(v)
            batch += chunk
            while len(batch) >= size:
                if vector:  # any size will do
                    flush()
                    batch = []
                    break
                rest, batch = batch[size:], batch[:size]
                rest_vnet = None
                if batch_vnet is not None:
                    rest_vnet, batch_vnet = batch_vnet[size:], batch_vnet[:size]
                flush()
                batch, batch_vnet = rest, rest_vnet
        flush()
        if vnets is not None and next(vnets, None) is not None:
            return _error(f"{args.vnet} has more lines than {args.input} has frames ({n_in})")
    except PcapError as e:
        return _error(str(e))
    except OSError as e:
        return _error(f"cannot read {args.input}: {_os_reason(e)}")
    if progress:
        print("\r" + " " * 60 + "\r", end="", file=sys.stderr)
    by_output: Counter[str] = Counter()
    for res in results:
        by_output.update(_label_counts(res))
    n_out = sum(by_output.values())
    written: list[str] = []
    try:
        if args.output is not None:
            write_records(args.output, _records(results, None))
            written.append(args.output)
        if args.out_dir is not None:
            os.makedirs(args.out_dir, exist_ok=True)
            for label in by_output:
                path = os.path.join(args.out_dir, f"{label}.pcap")
                write_records(path, _records(results, label))
                written.append(path)
    except OSError as e:
        return _error(f"cannot write {e.filename or args.output or args.out_dir}: {_os_reason(e)}")
    stages = {sid.split("/", 1)[1]: count for sid, count in
              sorted(hv.stage_packets.items(), key=lambda kv: g.nodes[kv[0]]["stage"].order)}
    counters = _program_counters(prog, hv, args.pipeline)
    cache = hv.cache.summary() if hv.cache is not None else None
    if args.json:
        print(json.dumps({"pipeline": args.pipeline, "packets_in": n_in, "packets_out": n_out,
                          "outputs": dict(by_output), "files": written,
                          "stages": stages, "drops": dict(sorted(hv.drops.items())), "counters": counters,
                          "flow_cache": cache}, indent=2))
        return 0
    summary = ", ".join(f"{k} {v}" for k, v in by_output.items())
    print(f"{args.pipeline}: {n_in} packets in, {n_out} out ({summary or 'none'})")
    if args.out_dir is not None:
        print(f"wrote {args.out_dir}/: " + (", ".join(f"{k}.pcap" for k in by_output) or "nothing (no output)"))
    print("per stage:")
    for name, count in stages.items():
        print(f"  {name:<34} {count}")
    print("drops by reason:" + ("" if hv.drops else " none"))
    for reason, count in sorted(hv.drops.items()):
        print(f"  {reason:<34} {count}")
    if cache is None:
        print("flow cache: off (--no-flow-cache)")
    else:
        looked = cache["hits"] + cache["misses"]
        print(f"flow cache: {cache['hits']} hits, {cache['misses']} misses"
              + (f" ({cache['hits'] / looked:.1%} hit)" if looked else "")
              + f", {cache['flows']} flows, {cache['evictions']} evicted, {cache['invalidated']} invalidated")
        if args.stats:
            for reason, count in sorted(cache["uncacheable"].items()):
                print(f"  not cached: {reason:<22} {count}")
    if counters["indirect"] or counters["direct"]:
        print("counters:")
    for name, cells in counters["indirect"].items():
        if len(cells) == 1:
            print(f"  {name:<34} {cells[0]['packets']} packets, {cells[0]['bytes']} bytes")
            continue
        print(f"  {name:<34} {sum(c['packets'] for c in cells)} packets in {len(cells)} cells")
        for c in cells:
            if c["packets"]:
                print(f"    [{c['index']}]{'':<{29 - len(str(c['index']))}} {c['packets']} packets, {c['bytes']} bytes")
    for name, rows in counters["direct"].items():
        print(f"  {name:<34} {sum(r['packets'] for r in rows)} packets (direct, {len(rows)} entries)")
        for r in rows:
            if r["packets"]:
                print(f"    {r['packets']:>6} packets {r['bytes']:>9} bytes  {r['entry']}")
    return 0


def _progress_bar(done: int, total: int, packets: int, width: int = 30) -> str:
    """`[#######.......]  45%  12000 packets` (bytes of the capture read so far)."""
    frac = min(1.0, done / total) if total else 0.0
    filled = int(frac * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {frac:4.0%}  {packets} packets"


def _election(text: str) -> tuple[int, int]:
    try:
        high, low = (int(x, 0) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"election id must be HIGH,LOW (e.g. 0,1), not {text!r}") from None
    return high, low


def _enter_up_netns(outdir: str) -> int | None:
    """When `p4gen up OUTDIR` runs its NIC in a network namespace, rerun this command inside it
    (the switch's gRPC address is that namespace's loopback); None: run it here."""
    import json
    import subprocess
    from pathlib import Path

    try:
        ns = json.loads((Path(outdir) / "up.json").read_text()).get("nic_netns")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(ns, str) or not ns or os.environ.get("P4GEN_NETNS") == ns:
        return None
    return subprocess.call(["ip", "netns", "exec", ns, sys.executable, "-m", "p4gen", *sys.argv[1:]],
                           env={**os.environ, "P4GEN_NETNS": ns})


def _election_beside_up(outdir: str, election: tuple[int, int]) -> tuple[int, int]:
    """While `p4gen up OUTDIR` runs its offload manager (the primary client), a push or shell
    with the same election id takes the next one: primary while it runs, the manager after."""
    import json
    from pathlib import Path

    try:
        held = json.loads((Path(outdir) / "up.json").read_text()).get("controller_election_id")
    except (OSError, ValueError, AttributeError):
        return election
    if isinstance(held, list) and tuple(held) == tuple(election):
        return (election[0], election[1] + 1)
    return election


def cmd_push(args: argparse.Namespace) -> int:
    from pathlib import Path

    from p4gen.control.push import PushError, push

    rc = _enter_up_netns(args.outdir)
    if rc is not None:
        return rc
    args.election_id = _election_beside_up(args.outdir, args.election_id)

    try:
        r = push(Path(args.outdir), args.grpc_addr, args.device_id, args.election_id, args.batch)
    except PushError as e:
        return _error(str(e))
    print(f"pushed {args.outdir} to {args.grpc_addr} (device {args.device_id}): "
          f"{'pipeline set' if r.pipeline_set else 'pipeline unchanged'}; {r.inserted} inserted, "
          f"{r.modified} modified, {r.deleted} deleted, {r.unchanged} unchanged, in {r.batches} batch(es)")
    return 0


SHELL_TIMEOUT = 5.0


def _reachable(addr: str, timeout: float = SHELL_TIMEOUT) -> bool:
    """Whether a gRPC server answers at addr (p4runtime-shell would only log CRITICAL lines)."""
    import grpc

    channel = grpc.insecure_channel(addr)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
        return True
    except grpc.FutureTimeoutError:
        return False
    finally:
        channel.close()


def cmd_shell(args: argparse.Namespace) -> int:
    import subprocess
    from pathlib import Path

    from p4gen.backend.manifest import ManifestError, check_program_json

    rc = _enter_up_netns(args.outdir)
    if rc is not None:
        return rc
    args.election_id = _election_beside_up(args.outdir, args.election_id)
    out = Path(args.outdir)
    if not out.is_dir():
        why = "not a directory" if out.exists() else "no such directory"
        return _error(f"{out} is not a p4gen build output: {why}")
    for need in ("program.p4info.txtpb", "program.json"):
        if not (out / need).is_file():
            return _error(f"{out / need} is missing (p4gen build --require-p4c writes it)")
    try:
        check_program_json(out)
    except ManifestError as e:
        return _error(str(e))
    if not _reachable(args.grpc_addr):
        return _error(f"cannot reach the P4Runtime server at {args.grpc_addr} (no answer in {SHELL_TIMEOUT:g} s)")
    cmd = [sys.executable, "-m", "p4runtime_sh", "--grpc-addr", args.grpc_addr, "--device-id", str(args.device_id),
           "--election-id", ",".join(map(str, args.election_id)),
           "--config", f"{out / 'program.p4info.txtpb'},{out / 'program.json'}"]
    return subprocess.call(cmd)


def cmd_up(args: argparse.Namespace) -> int:
    import signal
    from pathlib import Path

    from p4gen.backend.manifest import ManifestError, load_built_placement
    from p4gen.backend.p4c import find_tool
    from p4gen.control.links import LinkError, netns_supported
    from p4gen.control.push import PushError
    from p4gen.control.up import Up
    from p4gen.control.vmns import load_vm_spec

    out = Path(args.outdir)
    try:
        prog, g, pl = load_built_placement(out)
    except ManifestError as e:
        return _error(str(e))
    if args.target:  # run the build's program as this target set places it (e.g. hypervisor-only)
        args.rates = None
        pl = _placement(args, g, prog)
        if pl is None:
            return 1
        if pl.problem.nic is not None:
            return _error("up --target takes a hypervisor profile (targets/hypervisor.toml); "
                          "for a NIC, build with it and run 'p4gen up OUTDIR'")
    try:
        vm = load_vm_spec(args.vm, netns=args.vm_netns, mac=args.vm_mac, mtu=args.vm_mtu,
                          addresses=args.vm_addr, routes=args.vm_route, neighbours=args.vm_neigh)
    except LinkError as e:
        return _error(str(e))
    bmv2 = None
    if pl.problem.nic is not None:
        bmv2 = find_tool("P4GEN_BMV2", "simple_switch_grpc")
        if bmv2 is None:
            return _error("simple_switch_grpc not found (P4GEN_BMV2, PATH, /opt/p4/bin); "
                          "'p4gen up OUTDIR --target targets/hypervisor.toml' runs without a NIC")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    # A shell starts background jobs with SIGINT ignored, and Python then leaves it so: Ctrl-C
    # (or `kill -INT`) must stop `up` wherever it was started from.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    netns = None if args.no_netns else (args.netns or args.prefix)
    if netns and not netns_supported():
        print("note: network namespaces unavailable (needs root and iproute2): the NIC runs in this one")
        netns = None
    try:
        up = Up(prog, g, pl, out, args.prefix, bmv2=bmv2, grpc_addr=args.grpc_addr, netns=netns, vm=vm,
                wire_netns=args.wire_netns, lro=args.lro, switch_log=args.switch_log,
                kernel_gso=not args.no_kernel_gso, flow_cache=not args.no_flow_cache, rings=not args.no_rings,
                offload=not args.no_offload)
    except (LinkError, PushError) as e:  # UpError is a LinkError
        return _error(str(e))
    where = f" in network namespace {netns}" if netns else ""
    what = f"NIC {args.grpc_addr}{where}" if bmv2 else f"hypervisor only{where}"
    vm_side = f"{vm.ifname} in network namespace {vm.netns}" if vm else f"{args.prefix}-vm"
    wire_side = f"{args.prefix}-wire" + (f" in network namespace {args.wire_netns}" if args.wire_netns else "")
    code = 0
    import gc

    try:  # from the "up:" line on, Ctrl-C stops cleanly: whoever saw the line may send it at once
        print(f"up: {what}; VM side {vm_side}, wire side {wire_side}; logs in {out}. "
              f"Ctrl-C or 'p4gen down {out}' to stop.", flush=True)
        gc.freeze()  # the program, the pipeline and gRPC's objects: not walked again on every collection
        up.serve(args.seconds)
    except KeyboardInterrupt:
        up.note("interrupted: stopping")
    except LinkError as e:
        code = _error(str(e))
    finally:
        up.close()
    print("down", flush=True)
    return code


def cmd_flows(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from p4gen.control.flows import FLOWS_FILE, render

    path = Path(args.outdir) / FLOWS_FILE
    if not Path(args.outdir).is_dir():
        return _error(f"{args.outdir} is not a directory (give the OUTDIR of 'p4gen up')")
    try:
        text = path.read_text()
        data = json.loads(text)
    except FileNotFoundError:
        return _error(f"{path} does not exist: is 'p4gen up {args.outdir}' running? (it writes the file "
                      "once a second)")
    except ValueError as e:
        return _error(f"{path} is not p4gen's flows file: {e}")
    if args.json:
        print(text)
        return 0
    for line in render(data):
        print(line)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from pathlib import Path

    from p4gen.control.up import UpError, down

    if os.path.exists(args.outdir) and not os.path.isdir(args.outdir):
        return _error(f"{args.outdir} is not a directory (give the OUTDIR of 'p4gen up')")
    try:
        for line in down(Path(args.outdir)):
            print(line)
    except UpError as e:
        return _error(str(e))
    return 0


def cmd_headers(args: argparse.Namespace) -> int:
    from p4gen.frontend import check_source
    from p4gen.frontend.reference import headers_markdown

    if args.file:
        prog, sink = load_program([args.file])
        _report(sink)
        if prog is None:
            return 1
        print(headers_markdown(prog, f"Headers of {args.file} (with std.nf)"), end="")
        return 0
    prog, sink = check_source("<std>", b"")
    assert prog is not None, sink.render()
    print(headers_markdown(prog), end="")
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    from p4gen.ir.dot import GraphvizMissing, render, to_dot

    prog, g = _load(args.file)
    if prog is None:
        return 1
    placement = None
    if args.placement is True:
        pl = _placement(args, g, prog)
        if pl is None:
            return 1
        placement = dict(pl.assignment)
    elif args.placement:
        import json

        try:
            with open(args.placement, encoding="utf-8") as fh:
                data = json.load(fh)
            placement = {s["id"]: s["target_kind"] for s in data["stages"]}
        except OSError as e:
            return _error(f"cannot read placement {args.placement}: {_os_reason(e)}")
        except (ValueError, KeyError, TypeError) as e:
            return _error(f"cannot read placement {args.placement}: not a placement.json ({e})")
    ext = os.path.splitext(args.output)[1].lower().lstrip(".")
    problem = _output_problem(args.output)
    if problem:
        return _error(problem)
    if ext not in ("dot", "svg", "png"):
        return _error(f"unknown output format '.{ext}' (use .dot, .svg or .png)")
    dot_text = to_dot(g, placement)
    if ext == "dot":
        data_out = dot_text.encode()
    elif ext in ("svg", "png"):
        try:
            data_out = render(dot_text, ext)
        except (GraphvizMissing, RuntimeError) as e:
            return _error(str(e))
    else:
        return _error(f"unknown output format '.{ext}' (use .dot, .svg or .png)")
    with open(args.output, "wb") as fh:
        fh.write(data_out)
    print(f"wrote {args.output} ({g.number_of_nodes()} stages)")
    return 0


def _target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", action="append", metavar="PROFILE.toml",
                   help="a target profile (repeatable): one NIC (e.g. targets/bmv2-smartnic.toml) and optionally "
                        "a hypervisor profile (default: the built-in targets/hypervisor.toml)")
    p.add_argument("--rates", metavar="RATES.toml", help="packets per second per flow: [rates] FLOW = PPS")


def make_parser() -> argparse.ArgumentParser:
    from p4gen.backend.manifest import p4gen_version

    p = argparse.ArgumentParser(prog="p4gen", description="Network functions to P4 for programmable NICs.")
    p.add_argument("--version", action="version", version=f"p4gen {p4gen_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("check", help="parse and check .nf files; print diagnostics",
                       description="Parse and check DSL files. Exit 0 when all are valid, 1 otherwise.")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("-q", "--quiet", action="store_true", help="print diagnostics only")
    c.set_defaults(func=cmd_check)

    hd = sub.add_parser("headers", help="print the header types, instances and metadata fields",
                        description="A reference of the built-in headers (std.nf): types with their fields, widths "
                                    "and offsets, the instances and metadata. With FILE, the program's own too.")
    hd.add_argument("file", metavar="FILE", nargs="?")
    hd.set_defaults(func=cmd_headers)

    gr = sub.add_parser("graph", help="draw the IR graph (.dot, .svg, .png)",
                        description="Write the IR of FILE as a picture. .dot needs nothing extra; "
                                    ".svg and .png need Graphviz's 'dot'.")
    gr.add_argument("file", metavar="FILE")
    gr.add_argument("-o", "--output", required=True, metavar="OUT")
    gr.add_argument("--placement", nargs="?", const=True, metavar="JSON",
                    help="colour stages by target: computed from --target profiles, or read from a placement.json")
    _target_args(gr)
    gr.set_defaults(func=cmd_graph)

    pc = sub.add_parser("place", help="decide per stage: NIC or hypervisor, and explain",
                        description="Optimal placement of every stage on the NIC or in the hypervisor, from the "
                                    "targets' capabilities and resources. Without a NIC profile everything runs "
                                    "in the hypervisor (the reference behaviour).")
    pc.add_argument("file", metavar="FILE")
    _target_args(pc)
    pc.add_argument("--explain", action="store_true", help="say why each stage runs where it runs")
    pc.add_argument("--json", action="store_true", help="print placement.json to stdout instead of text")
    pc.add_argument("-o", "--output", metavar="placement.json", help="also write the JSON form to this file")
    pc.set_defaults(func=cmd_place)

    b = sub.add_parser("build", help="emit P4 (v1model), P4Info and P4Runtime entries for the NIC part",
                       description="Place FILE's stages and write to OUTDIR: program.p4 (the NIC part), "
                                   "program.p4info.txtpb, entries.txtpb (initial entries), entries_origin.json (their "
                                   "DSL lines), placement.json (the split and its reasons), hypervisor_plan.json, "
                                   "hypervisor.py (the hypervisor's generated code), line_map.json (P4 line -> DSL "
                                   "line) and build.json (input and output hashes); with p4c, also program.json and "
                                   "program.p4c.p4info.txtpb.")
    b.add_argument("file", metavar="FILE")
    b.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    _target_args(b)
    b.add_argument("--p4c", metavar="PATH|docker", help="the p4c-bm2-ss to use, or 'docker' for the p4lang/p4c image")
    b.add_argument("--require-p4c", action="store_true", help="fail when no p4c is found")
    b.add_argument("--no-p4c", action="store_true", help="do not run p4c")
    b.add_argument("--force", action="store_true",
                   help="build into OUTDIR even when it holds files p4gen did not write (they are kept)")
    b.set_defaults(func=cmd_build)

    r = sub.add_parser("run", help="run packets from a pcap through the software pipeline",
                       description="Run IN.pcap through a pipeline in the hypervisor pipeline and write OUT.pcap "
                                   "(--out) and/or one pcap per output (--out-dir). "
                                   "Without --target every stage runs in software (the reference behaviour); with "
                                   "--target only the stages placed in the hypervisor run, and packets for the NIC "
                                   "are written with the resume point left to the NIC.")
    r.add_argument("file", metavar="FILE")
    r.add_argument("--pipeline", required=True)
    r.add_argument("--in", dest="input", required=True, metavar="IN.pcap")
    r.add_argument("--out", dest="output", metavar="OUT.pcap", help="every packet that leaves, in one pcap")
    r.add_argument("--out-dir", metavar="DIR",
                   help="one pcap per output: uplink.pcap, vm.pcap, portN.pcap (forward(N)), slow_path.pcap, "
                        "to_nic.pcap")
    r.add_argument("--json", action="store_true",
                   help="print the summary (outputs, stages, drops, the program's counters) as JSON")
    _target_args(r)
    r.add_argument("--lro", action="store_true", help="the VM advertises LRO: coalesce segments for it")
    r.add_argument("--no-flow-cache", action="store_true", help="every packet through the full pipeline (the "
                   "reference path), no flow cache")
    r.add_argument("--stats", action="store_true", help="also say why packets were not cached")
    r.add_argument("--vnet", metavar="IN.vnet", help="each input frame's virtio-net header, one JSON object per "
                   "line (pcap has no place for it), e.g. {\"flags\": 1, \"csum_start\": 34, \"csum_offset\": 16}"
                   " for a partial checksum, {\"gso_type\": 1, \"gso_size\": 1448, ...} for a TSO super-packet")
    r.add_argument("--batch", type=int, default=64, help="packets per batch (coalescing flushes per batch)")
    r.set_defaults(func=cmd_run)

    for name, func, text in (("push", cmd_push, "install a build on a P4Runtime target (idempotent)"),
                             ("shell", cmd_shell, "open p4runtime-shell on the target with the build's P4Info")):
        c = sub.add_parser(name, help=text, description=text + ".")
        c.add_argument("outdir", metavar="OUTDIR", help="a p4gen build output directory")
        c.add_argument("--grpc-addr", default="127.0.0.1:9559", metavar="HOST:PORT",
                       help="the target's P4Runtime server (default: %(default)s)")
        c.add_argument("--device-id", type=int, default=0, help="P4Runtime device id (default: %(default)s)")
        c.add_argument("--election-id", type=_election, default=(0, 1), metavar="HIGH,LOW",
                       help="election id for primary arbitration (default: 0,1)")
        if name == "push":
            c.add_argument("--batch", type=int, default=256, help="updates per Write request (default: %(default)s)")
        c.set_defaults(func=func)
    u = sub.add_parser("up", help="run a build locally: BMv2 NIC + hypervisor (or the hypervisor alone) on veths",
                       description="Create veth pairs, start simple_switch_grpc on loopback gRPC, push OUTDIR and "
                                   "run the hypervisor part over AF_PACKET until Ctrl-C or 'p4gen down OUTDIR'. "
                                   "A build without a NIC part (or --target targets/hypervisor.toml) runs the "
                                   "whole program in the hypervisor, with no switch.")
    u.add_argument("outdir", metavar="OUTDIR")
    u.add_argument("--target", action="append", metavar="PROFILE",
                   help="run the build's program placed on this profile instead (a hypervisor profile: no NIC)")
    u.add_argument("--vm", metavar="VM.toml", help="put the VM's end into a network namespace configured as this "
                   "VM (see examples/vm1.toml)")
    u.add_argument("--vm-netns", metavar="NAME", help="the VM's namespace (created; deleted on down)")
    u.add_argument("--vm-mac", metavar="MAC", help="the VM's MAC address")
    u.add_argument("--vm-mtu", type=int, metavar="N", help="the VM's MTU (default 1500)")
    u.add_argument("--vm-addr", action="append", metavar="CIDR", help="an address of the VM (repeatable)")
    u.add_argument("--vm-route", action="append", metavar="ROUTE", help="an 'ip route' of the VM, e.g. "
                   "'default via 10.0.1.1' (repeatable)")
    u.add_argument("--vm-neigh", action="append", metavar="'IP MAC'", help="a static neighbour of the VM "
                   "(repeatable; nothing answers ARP on p4gen's side)")
    u.add_argument("--wire-netns", metavar="NAME", help="move the wire end into this existing namespace (a peer)")
    u.add_argument("--lro", action="store_true", help="the VM accepts coalesced (GSO) packets: coalesce for it")
    u.add_argument("--switch-log", action="store_true", help="let BMv2 log every packet to OUTDIR/bmv2.log (slow)")
    u.add_argument("--no-flow-cache", action="store_true", help="every packet through the full pipeline")
    u.add_argument("--no-offload", action="store_true", help="no per-flow offload, even where the NIC profile "
                   "reserves a flow table ([offload])")
    u.add_argument("--no-rings", action="store_true", help="one system call per frame instead of the links' "
                   "memory-mapped packet rings (PACKET_RX_RING/TX_RING)")
    u.add_argument("--no-kernel-gso", action="store_true", help="without a NIC, cut every super-packet in Python "
                   "(default: plain TCP ones leave whole for the kernel's GSO, at p4gen's MSS)")
    u.add_argument("--grpc-addr", default="127.0.0.1:9559", metavar="HOST:PORT",
                   help="where the switch serves P4Runtime (default: %(default)s)")
    u.add_argument("--prefix", default="p4g", help="name prefix of the veth interfaces (default p4g)")
    u.add_argument("--netns", metavar="NAME",
                   help="network namespace for the NIC and the hypervisor's ends (default: the prefix)")
    u.add_argument("--no-netns", action="store_true", help="run everything in the current network namespace")
    u.add_argument("--seconds", type=float, default=None, help=argparse.SUPPRESS)  # tests: stop by itself
    u.set_defaults(func=cmd_up)
    fl = sub.add_parser("flows", help="the flows of a running 'p4gen up OUTDIR': where each runs and why",
                        description="Every flow the per-flow offload knows (NIC profiles with [offload]): its key, "
                                    "where it runs (the NIC's flow table, the hypervisor's fast path, the slow "
                                    "path), why, and its packets and bytes on each side. 'p4gen up' writes "
                                    "OUTDIR/flows.json once a second.")
    fl.add_argument("outdir", metavar="OUTDIR")
    fl.add_argument("--json", action="store_true", help="print flows.json as it is")
    fl.set_defaults(func=cmd_flows)
    d = sub.add_parser("down", help="stop what 'p4gen up OUTDIR' started and remove its veths",
                       description="Stop what 'p4gen up OUTDIR' started (the switch, the hypervisor process) and "
                                   "remove what it created (veth pairs, its network namespace), as recorded in "
                                   "OUTDIR/up.json. Nothing to do when OUTDIR is not up.")
    d.add_argument("outdir", metavar="OUTDIR", help="the build directory given to 'p4gen up'")
    d.set_defaults(func=cmd_down)
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:  # a file the user named that cannot be read or written
        where = f"{e.filename}: " if e.filename else ""
        print(f"p4gen: error: {where}{_os_reason(e)}", file=sys.stderr)
        return 1
    except Exception:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("P4GEN_DEBUG"):
            raise
        print("p4gen: internal error (a bug in p4gen; set P4GEN_DEBUG=1 for the traceback):", file=sys.stderr)
        print("  " + traceback.format_exc().strip().splitlines()[-1], file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
