"""build.json: what a build was made from and what it wrote, each file by its sha256.

`p4gen build` writes it last into OUTDIR:

    p4gen_version   the p4gen that built it
    program         FILE as given on the command line, and the directory it was given in
    inputs          every DSL file loaded (imports included), the standard library, the target
                    profiles and the rates file, each with its sha256
    outputs         every file the build wrote, with its sha256
    p4c             when p4c ran: the sha256 of the program.p4 it compiled and of what it wrote

Commands that use a build (`up`, `push`, `p4gen.testing`) trust the build's own
placement.json instead of placing again, and refuse only when an input changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

MANIFEST = "build.json"
P4C_FILES = ("program.json", "program.p4c.p4info.txtpb")
# What `p4gen up` writes next to a build (its state and logs): p4gen's too.
RUNTIME_FILES = ("up.json", "hypervisor.log", "switch.log")
# What builds made before build.json existed wrote.
LEGACY_OUTPUTS = ("program.p4", "program.p4info.txtpb", "entries.txtpb", "entries_origin.json", "placement.json",
                  "hypervisor_plan.json", "hypervisor.py", "line_map.json", *P4C_FILES)
FORMAT = 1


class ManifestError(Exception):
    """A build directory that cannot be used as it is; the message says why (one line where possible)."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str | None:
    """The file's sha256, or None when it cannot be read."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def p4gen_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("p4gen")
    except PackageNotFoundError:  # pragma: no cover - running from an uninstalled checkout
        return "unknown"


def stdlib_hash() -> str:
    from importlib import resources

    return sha256_bytes(resources.files("p4gen.stdlib").joinpath("std.nf").read_bytes())


def _file_input(path: str) -> dict:
    return {"path": path, "abs": os.path.abspath(path), "sha256": sha256_file(path)}


def _shown(entry: dict) -> str:
    """The path as the user gave it when it still means the same file from here, else absolute."""
    path = entry.get("path") or entry.get("abs") or "?"
    if entry.get("abs") and os.path.abspath(path) != entry["abs"]:
        return entry["abs"]
    return path


def _where(entry: dict) -> str:
    return entry.get("abs") or entry.get("path") or "?"


def make_manifest(prog, placement, source: str, rates: str | None, outputs: dict[str, str],
                  p4c: dict[str, str] | None) -> dict:
    from p4gen.frontend.loader import STD_NAME
    from p4gen.place.profiles import builtin_profile_text

    targets = []
    for role, prof in (("nic", placement.problem.nic), ("hypervisor", placement.problem.hyp)):
        if prof is None:
            continue
        if not prof.builtin and prof.path and os.path.isfile(prof.path):
            targets.append({"role": role, **_file_input(prof.path)})
        else:  # a profile shipped with p4gen
            name = Path(prof.path or "hypervisor").stem
            targets.append({"role": role, "builtin": name, "sha256": sha256_bytes(builtin_profile_text(name).encode())})
    return {
        "format": FORMAT,
        "p4gen_version": p4gen_version(),
        "program": {"path": source, "abs": os.path.abspath(source)},
        "inputs": {
            "sources": [_file_input(f) for f in prog.files if f != STD_NAME],
            "stdlib": stdlib_hash(),
            "targets": targets,
            "rates": _file_input(rates) if rates else None,
        },
        "outputs": outputs,
        "p4c": p4c,
    }


def write_manifest(outdir: Path, manifest: dict) -> None:
    (outdir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def read_manifest(outdir: Path) -> dict:
    path = outdir / MANIFEST
    if not outdir.is_dir():
        why = "not a directory" if outdir.exists() else "no such directory"
        raise ManifestError(f"{outdir} is not a p4gen build output: {why}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{outdir} has no {MANIFEST} (not a p4gen build output, or built by an older p4gen): "
                            "rebuild it with p4gen build") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ManifestError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("inputs"), dict):
        raise ManifestError(f"{path} is not a build manifest this p4gen understands: rebuild {outdir}")
    return data


def changed_inputs(outdir: Path, manifest: dict) -> list[str]:
    """Why the build is out of date: one sentence per changed input (empty: it is current)."""
    out: list[str] = []
    built_by, here = manifest.get("p4gen_version"), p4gen_version()
    if built_by != here:
        out.append(f"{outdir} was built by p4gen {built_by}; this is p4gen {here}")
    inputs = manifest["inputs"]
    if inputs.get("stdlib") != stdlib_hash():
        out.append("p4gen's standard library (std.nf) has changed")
    files = list(inputs.get("sources") or []) + [t for t in inputs.get("targets") or [] if "builtin" not in t]
    if inputs.get("rates"):
        files.append(inputs["rates"])
    for entry in files:
        now = sha256_file(_where(entry))
        if now is None:
            out.append(f"{_shown(entry)} is missing (it was read to build {outdir})")
        elif now != entry.get("sha256"):
            out.append(f"{_shown(entry)} has changed since {outdir} was built")
    from p4gen.place.profiles import builtin_profile_text

    for t in inputs.get("targets") or []:
        if "builtin" in t:
            try:
                text = builtin_profile_text(t["builtin"])
            except OSError:
                out.append(f"the built-in profile '{t['builtin']}' no longer exists")
                continue
            if sha256_bytes(text.encode()) != t.get("sha256"):
                out.append(f"the built-in profile targets/{t['builtin']}.toml has changed since {outdir} was built")
    return out


def check_inputs(outdir: Path, manifest: dict | None = None) -> dict:
    """The manifest, after making sure no input changed (ManifestError naming the first that did)."""
    manifest = manifest if manifest is not None else read_manifest(outdir)
    changes = changed_inputs(outdir, manifest)
    if changes:
        more = f" (and {len(changes) - 1} more change(s))" if len(changes) > 1 else ""
        raise ManifestError(f"{changes[0]}{more}: rebuild it with p4gen build")
    return manifest


def load_built_placement(outdir: str | Path, check: bool = True):
    """(prog, graph, placement) of a build, from its own placement.json and recorded profiles and rates.

    Raises ManifestError when an input changed since the build (with `check`), when the program
    no longer checks, or when placement.json does not fit the program."""
    from p4gen.frontend import load_program
    from p4gen.ir import build_ir
    from p4gen.place import Placement, ProfileError, StageDecision, builtin_profile, load_profile, load_rates
    from p4gen.place.problem import HYP, NIC, build_problem
    from p4gen.place.solve import cost_of, is_feasible

    outdir = Path(outdir)
    manifest = read_manifest(outdir)
    if check:
        check_inputs(outdir, manifest)
    source = _shown(manifest["program"])
    prog, sink = load_program([source])
    if prog is None:
        raise ManifestError(f"{source} (the program of {outdir}) does not check:\n" + sink.render().rstrip())
    g = build_ir(prog)
    try:
        data = json.loads((outdir / "placement.json").read_text(encoding="utf-8"))
        stages = data["stages"]
        recorded = {s["id"]: s for s in stages}
    except (OSError, ValueError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise ManifestError(f"cannot read {outdir / 'placement.json'}: {getattr(e, 'strerror', None) or e}") \
            from None
    nic = hyp = None
    rates = None
    try:
        for t in manifest["inputs"].get("targets") or []:
            prof = builtin_profile(t["builtin"]) if "builtin" in t else load_profile(_where(t))
            if t.get("role") == "nic":
                nic = prof
            else:
                hyp = prof
        if manifest["inputs"].get("rates"):
            rates = load_rates(_where(manifest["inputs"]["rates"]), prog)
    except ProfileError as e:
        raise ManifestError(str(e)) from None
    hyp = hyp or builtin_profile("hypervisor")
    prob = build_problem(g, prog, nic, hyp, rates)
    ids = [s.id for s in prob.stages]
    missing = [i for i in ids if i not in recorded]
    unknown = [i for i in recorded if i not in set(ids)]
    if missing or unknown:
        parts = []
        if missing:
            parts.append("no placement for " + ", ".join(missing[:5]) + (" …" if len(missing) > 5 else ""))
        if unknown:
            parts.append("stages the program does not have: " + ", ".join(unknown[:5])
                         + (" …" if len(unknown) > 5 else ""))
        raise ManifestError(f"{outdir / 'placement.json'} does not match {source}: {'; '.join(parts)}: "
                            "rebuild it with p4gen build")
    assignment = {}
    for i in ids:
        kind = recorded[i].get("target_kind")
        if kind not in (NIC, HYP):
            raise ManifestError(f"{outdir / 'placement.json'}: stage '{i}' has target_kind {kind!r}; "
                                "expected 'nic' or 'hypervisor'")
        assignment[i] = kind
    if not is_feasible(prob, assignment):
        raise ManifestError(f"{outdir / 'placement.json'} is not a valid placement of {source} on the recorded "
                            "targets: rebuild it with p4gen build")
    decisions = [StageDecision(s.id, s.kind, s.pipeline, assignment[s.id], str(recorded[s.id].get("reason", "")),
                               str(recorded[s.id].get("pos", ""))) for s in prob.stages]
    return prog, g, Placement(prob, assignment, cost_of(prob, assignment), decisions)


def foreign_files(outdir: Path) -> list[str]:
    """Files in outdir that no p4gen build (or `p4gen up`) wrote there."""
    if not outdir.is_dir():
        return []
    ours = set(RUNTIME_FILES) | {MANIFEST}
    try:
        old = json.loads((outdir / MANIFEST).read_text(encoding="utf-8"))
        ours |= set(old.get("outputs") or {}) | set((old.get("p4c") or {}).get("outputs") or {})
    except (OSError, ValueError, UnicodeDecodeError, AttributeError, TypeError):
        try:  # a build from before build.json
            legacy = json.loads((outdir / "placement.json").read_text(encoding="utf-8"))
            if isinstance(legacy, dict) and "stages" in legacy and "program" in legacy:
                ours |= set(LEGACY_OUTPUTS)
        except (OSError, ValueError, UnicodeDecodeError):
            pass
    return sorted(n for n in os.listdir(outdir) if n not in ours and not n.startswith("bmv2"))


def check_outdir(outdir: Path, force: bool = False) -> None:
    """Refuse an output directory that is not one (or not writable), or that holds others' files."""
    if outdir.exists() and not outdir.is_dir():
        raise ManifestError(f"{outdir} exists and is not a directory")
    probe = outdir
    while not probe.exists():
        parent = probe.parent
        if parent == probe:
            break
        probe = parent
    if not probe.is_dir():
        raise ManifestError(f"cannot create {outdir}: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ManifestError(f"cannot write to {probe}: permission denied")
    if force:
        return
    foreign = foreign_files(outdir)
    if foreign:
        shown = ", ".join(foreign[:8]) + (f" and {len(foreign) - 8} more" if len(foreign) > 8 else "")
        raise ManifestError(f"{outdir} holds files p4gen did not write ({shown}): choose an empty directory, "
                            "or use --force to build there anyway")


def check_program_json(outdir: Path) -> None:
    """Refuse a program.json that was not compiled from the current program.p4."""
    json_path, p4_path = outdir / "program.json", outdir / "program.p4"
    try:
        manifest = json.loads((outdir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        manifest = None
    if isinstance(manifest, dict):
        made_from = (manifest.get("p4c") or {}).get("program.p4")
        if made_from is None or made_from != sha256_file(p4_path):
            raise ManifestError(f"{json_path} was not made from the current {p4_path}: rebuild with p4c "
                                "(p4gen build --require-p4c)")
        return
    try:  # no manifest (an older build): at least program.json must be newer than program.p4
        if json_path.stat().st_mtime < p4_path.stat().st_mtime:
            raise ManifestError(f"{json_path} is older than {p4_path}: rebuild with p4c (p4gen build --require-p4c)")
    except OSError:
        pass
