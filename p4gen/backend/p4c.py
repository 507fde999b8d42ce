"""Finding and running p4c-bm2-ss, and showing its errors against the DSL.

Tools are looked for in $P4GEN_P4C, then `p4c-bm2-ss` on PATH, then
/opt/p4/bin; `docker` runs the public p4lang/p4c image instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from p4gen.backend.emit import LineMap
from p4gen.diagnostics import DiagnosticSink, render

P4C_IMAGE = "p4lang/p4c:latest"
_LOCATION = re.compile(r"(?P<file>[^\s(]+\.p4)\((?P<line>\d+)\)")


def find_tool(env: str, name: str) -> str | None:
    explicit = os.environ.get(env)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    found = shutil.which(name)
    if found:
        return found
    fallback = Path("/opt/p4/bin") / name
    return str(fallback) if os.access(fallback, os.X_OK) else None


def find_p4c() -> str | None:
    return find_tool("P4GEN_P4C", "p4c-bm2-ss")


@dataclass
class P4cResult:
    ok: bool
    command: list[str]
    output: str  # p4c's stdout+stderr, with DSL context added to each located message
    unavailable: str | None = None  # the tool could not be run at all (not p4c's fault): why


def run_p4c(p4c: str, outdir: Path, line_map: LineMap, sources: DiagnosticSink | None = None) -> P4cResult:
    """Compile outdir/program.p4 into program.json and program.p4c.p4info.txtpb."""
    args = ["--arch", "v1model", "--std", "p4-16", "-o", "program.json",
            "--p4runtime-files", "program.p4c.p4info.txtpb", "program.p4"]
    if p4c == "docker":
        docker = shutil.which("docker")
        if docker is None:
            why = "docker is unavailable: it is not installed (needed by --p4c docker)"
            return P4cResult(False, ["docker"], why, unavailable=why)
        why = docker_problem(docker)
        if why is not None:
            why = f"docker is unavailable: {why} (needed by --p4c docker)"
            return P4cResult(False, [docker], why, unavailable=why)
        cmd = [docker, "run", "--rm", "-v", f"{outdir.resolve()}:/work", "-w", "/work", P4C_IMAGE, "p4c-bm2-ss", *args]
    else:
        cmd = [p4c, *args]
    try:
        proc = subprocess.run(cmd, cwd=outdir, capture_output=True, text=True, timeout=600, check=False)
    except OSError as e:
        why = f"cannot run p4c {cmd[0]}: {e.strerror or e}"
        return P4cResult(False, cmd, why, unavailable=why)
    except subprocess.TimeoutExpired:
        return P4cResult(False, cmd, "p4c did not finish in 600 s")
    text = (proc.stdout + proc.stderr).strip()
    ok = proc.returncode == 0 and (outdir / "program.json").exists()
    return P4cResult(ok, cmd, annotate(text, outdir / "program.p4", line_map, sources))


def docker_problem(docker: str) -> str | None:
    """Why docker cannot run containers here (no daemon, no permission), or None."""
    try:
        proc = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"'docker info' failed: {getattr(e, 'strerror', None) or e}"
    if proc.returncode == 0:
        return None
    lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
    daemon = next((ln for ln in lines if "daemon" in ln.lower()), None)
    return "cannot connect to the Docker daemon; is it running?" if daemon else (lines[0] if lines else
                                                                                 "'docker info' failed")


def annotate(text: str, program: Path, line_map: LineMap, sources: DiagnosticSink | None) -> str:
    """After each p4c message that names a line of program.p4, show that line and its DSL origin."""
    try:
        generated = program.read_text().splitlines()
    except OSError:
        generated = []
    out = []
    for line in text.splitlines():
        out.append(line)
        m = _LOCATION.search(line)
        if m is None or not Path(m.group("file")).name == program.name:
            continue
        n = int(m.group("line"))
        if 0 < n <= len(generated):
            out.append(f"  generated line {n}: {generated[n - 1].strip()}")
        pos = line_map.lookup(n)
        if pos is not None and pos.line > 0:
            from p4gen.diagnostics import Diagnostic

            shown = render(Diagnostic("note", "the DSL code it came from", pos), sources.sources if sources else {})
            out.extend("  " + x for x in shown.rstrip("\n").splitlines())
    return "\n".join(out)
