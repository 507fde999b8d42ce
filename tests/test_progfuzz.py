"""Program-level differential fuzzing (tests/progfuzz.py): random valid programs, aimed packets,
the split (NIC + hypervisor) against the all-software run.

* bounded, in the normal suite: the Python model of the NIC (SplitModel, and the library's
  ModelTarget over real p4gen_t frames for some programs), both NIC profiles;
* `fuzz` (opt-in, `pytest -m fuzz`): the same, longer (P4GEN_FUZZ_PROGRAMS, default 300);
* `bmv2` + `p4c`: each program compiled with the real p4c-bm2-ss and run on simple_switch_grpc
  (p4gen.testing.Bmv2Target) against SoftwareTarget (P4GEN_FUZZ_PROGRAMS, default 10).

Generator features that reach a known open bug are switched off by name in these runs
(progfuzz.CI_DISABLED); the run prints which.
"""

from __future__ import annotations

import os

import pytest
from conftest import BMV2, NEEDS_BMV2, P4C
from progfuzz import (
    PROFILES,
    Divergence,
    PacketGen,
    ProgramGen,
    Rejected,
    _pipeline_for,
    ci_features,
    compare_targets,
    describe_disabled,
    fuzz,
    load,
    placed,
)

SEED = 20261201
ETHERNET_HEADER = 14  # bytes: the shortest frame a packet socket sends on an Ethernet link
VLAN_TPIDS = (b"\x81\x00", b"\x88\xa8")
VLAN_UNTAG_NEEDS = 20  # bytes: Linux's receive path (skb_vlan_untag) pulls the tag and 2 more, or frees the frame


def linux_delivers(frame: bytes) -> bool:
    """Whether a frame sent into a veth reaches the program on the other end (BMv2's libpcap):
    the sender refuses one shorter than an Ethernet header (EINVAL), and the receiver frees a
    tagged one too short to untag. No wire carries either (its minimum frame is 60 bytes)."""
    if len(frame) < ETHERNET_HEADER:
        return False
    return not (frame[12:14] in VLAN_TPIDS and len(frame) < VLAN_UNTAG_NEEDS)


def _fail_on(st) -> None:
    if st.divergences:
        index = "\n".join(f"  {d.what} ({d.how}) on {d.profile}: {d.text.splitlines()[0]}" for d in st.divergences)
        pytest.fail(f"{st.summary()}\n{index}\n\n" + "\n\n".join(d.report() for d in st.divergences[:3]))


def test_generated_programs_are_valid():
    """The generator writes programs p4gen's checker accepts (≥ 95 %; a reject is a generator bug)."""
    feats = ci_features()
    rejects = []
    n = 60
    for k in range(n):
        gp = ProgramGen(SEED + k, feats).generate()
        try:
            load(gp.text)
        except Rejected as e:
            rejects.append((SEED + k, str(e)))
    assert len(rejects) <= n * 0.05, "\n\n".join(f"seed {s}:\n{e}" for s, e in rejects[:3])


def test_split_equals_software_on_random_programs(capsys):
    """40 random programs × 20 packets, both NIC profiles: the split (Python NIC model + hypervisor)
    gives the same packets, drops and counter packet counts as the all-software run."""
    feats = ci_features()
    with capsys.disabled():
        print("\n" + describe_disabled(feats))
    st = fuzz(40, 20, SEED, feats, shrink_budget=5.0, counter_bytes=False, model_target_every=4)
    with capsys.disabled():
        print(st.summary())
    _fail_on(st)
    assert st.rejected <= 2, st.rejects[:2]
    # the comparison means something only if packets got through and placements really split
    assert st.delivered >= st.packets // 4 and st.split_runs >= st.runs // 2 and st.crossings > 100, st.summary()


def test_vector_replay_equals_reference_on_random_programs():
    """The flow cache's vector replay under the program fuzzer: 30 random programs, their
    packets each repeated 40 times and shuffled, in two batches through `run_vector`, against
    the uncached full path frame by frame: the same outputs in the same order, the same drops,
    counters, per-entry counts and per-stage counts."""
    import random

    from p4gen.runtime.pipeline import HypervisorPipeline

    def state(hv):
        return ({k: [list(c) for c in v] for k, v in hv.counters.items()}, dict(+hv.drops),
                dict(+hv.stage_packets), {n: [(e.packets, e.bytes) for e in t.entries] for n, t in hv.tables.items()})

    feats = ci_features()
    rng = random.Random(SEED)
    checked = rows = 0
    for k in range(30):
        seed = SEED + 500 + k
        gp = ProgramGen(seed, feats).generate()
        try:
            prog, g = load(gp.text)
        except Rejected:
            continue
        by_pipeline: dict[str, list[bytes]] = {}
        for port, frame in PacketGen(gp, seed, feats).take(12):
            by_pipeline.setdefault(_pipeline_for(prog, port), []).append(frame)
        for pipeline, frames in by_pipeline.items():
            frames = frames * 40
            rng.shuffle(frames)
            cached, plain = HypervisorPipeline(prog, g), HypervisorPipeline(prog, g, flow_cache=0)
            part = len(frames) // 4  # (the first batch learns the flows; the second is mostly vectors)
            for batch in (frames[:part], frames[part:]):
                ov = cached.run_vector(pipeline, batch)
                assert ov.to_list() == [o for f in batch for o in plain.run(pipeline, f)], f"seed {seed}"
                rows += sum(len(b.rows) for b in ov.blocks)
            assert state(cached) == state(plain), f"seed {seed}"
            checked += 1
    assert checked >= 20 and rows > 1000, (checked, rows)


@pytest.mark.fuzz
def test_split_equals_software_long(capsys):
    """The same, long: P4GEN_FUZZ_PROGRAMS programs (default 300) × 30 packets, ModelTarget on every
    program, seed from P4GEN_FUZZ_SEED."""
    feats = ci_features()
    n = int(os.environ.get("P4GEN_FUZZ_PROGRAMS", "300"))
    seed = int(os.environ.get("P4GEN_FUZZ_SEED", "1"))
    with capsys.disabled():
        print("\n" + describe_disabled(feats))
    st = fuzz(n, 30, seed, feats, shrink_budget=30.0, counter_bytes=False, model_target_every=1,
              log=None)
    with capsys.disabled():
        print(st.summary())
    _fail_on(st)
    assert st.rejected <= n * 0.05


def test_random_programs_build(tmp_path):
    """p4gen build (P4, P4Info, entries; no p4c) succeeds for random programs on both NIC profiles:
    a valid, placed program the back end refuses or crashes on is a bug."""
    from p4gen.backend.build import build

    feats = ci_features()
    failures = []
    for k in range(20):
        gp = ProgramGen(SEED + 5000 + k, feats).generate()
        prog, g = load(gp.text)
        for i, profile in enumerate(PROFILES):
            pl = placed(prog, g, profile)
            if pl is not None:
                try:
                    build(prog, g, pl, "<progfuzz>", tmp_path / f"p{k}_{i}", None)
                except Exception as e:  # noqa: BLE001 - the finding
                    failures.append(f"{profile}: {e!r}\n{gp.text}")
    assert not failures, "\n\n".join(failures[:3])


@pytest.mark.p4c
@pytest.mark.skipif(P4C is None, reason="p4c-bm2-ss not found (P4GEN_P4C, PATH, /opt/p4/bin)")
def test_random_programs_compile_with_p4c(tmp_path):
    """Every random program p4gen accepts and places compiles with the real p4c-bm2-ss, and p4c's
    P4Info agrees with p4gen's: P4GEN_FUZZ_PROGRAMS programs (default 10) on both NIC profiles."""
    from google.protobuf import text_format
    from p4.config.v1 import p4info_pb2

    from p4gen.backend.build import build

    feats = ci_features()
    n = int(os.environ.get("P4GEN_FUZZ_PROGRAMS", "10"))
    seed = int(os.environ.get("P4GEN_FUZZ_SEED", str(SEED)))
    failures = []
    for k in range(n):
        gp = ProgramGen(seed + k, feats).generate()
        try:
            prog, g = load(gp.text)
        except Rejected:
            continue
        for i, profile in enumerate(PROFILES):
            pl = placed(prog, g, profile)
            if pl is None:
                continue
            out = tmp_path / f"p{k}_{i}"
            try:
                build(prog, g, pl, "<progfuzz>", out, P4C)
            except Exception as e:  # noqa: BLE001 - the finding
                failures.append(f"{profile}: {e!r}\n{gp.text}")
                continue
            if not (out / "program.json").exists():
                failures.append(f"{profile}: p4c wrote no program.json\n{gp.text}")
                continue
            ours = text_format.Parse((out / "program.p4info.txtpb").read_text(), p4info_pb2.P4Info())
            theirs = text_format.Parse((out / "program.p4c.p4info.txtpb").read_text(), p4info_pb2.P4Info())
            names = lambda info: sorted(t.preamble.name for t in info.tables)  # noqa: E731
            if names(ours) != names(theirs):
                failures.append(f"{profile}: P4Info tables differ {names(ours)} != {names(theirs)}\n{gp.text}")
    assert not failures, "\n\n".join(failures[:3])


@pytest.mark.p4c
@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.split("/")[-1].removesuffix(".toml"))
def test_split_equals_software_on_bmv2(profile, tmp_path, capsys):
    """Random programs compiled by the real p4c and run on BMv2 + the in-process hypervisor,
    against SoftwareTarget: P4GEN_FUZZ_PROGRAMS programs (default 10) × 12 packets."""
    from p4gen.backend.build import build
    from p4gen.testing import Bmv2Target, SoftwareTarget, TargetDown

    feats = ci_features()
    n = int(os.environ.get("P4GEN_FUZZ_PROGRAMS", "10"))
    seed = int(os.environ.get("P4GEN_FUZZ_SEED", str(SEED)))
    with capsys.disabled():
        print("\n" + describe_disabled(feats))
    found: list[Divergence] = []
    runs = packets = 0
    for k in range(n):
        gp = ProgramGen(seed + k, feats).generate()
        try:
            prog, g = load(gp.text)
        except Rejected:
            continue
        pl = placed(prog, g, profile)
        if pl is None:
            continue
        out = tmp_path / f"p{k}"
        try:
            build(prog, g, pl, "<progfuzz>", out, P4C)
        except Exception as e:  # noqa: BLE001 - a program p4gen accepts must compile: a finding
            found.append(Divergence(gp.text, profile, [], "build", -1, "a build", repr(e), pl.assignment))
            continue
        if not (out / "program.json").exists():
            found.append(Divergence(gp.text, profile, [], "p4c", -1, "program.json", "none", pl.assignment))
            continue
        # Frames a Linux link does not deliver (runts, truncated VLAN tags) are compared on the
        # Python targets only.
        frames = [(p, f) for p, f in PacketGen(gp, seed + k, feats).take(12) if linux_delivers(f)]
        soft = SoftwareTarget(prog, g, pl.problem.nic.ports.uplink)
        bmv2 = Bmv2Target(prog, g, pl, out, BMV2)
        try:
            runs += 1
            packets += len(frames)
            found += compare_targets(prog, soft, bmv2, frames, gp.text, profile, pl.assignment)
        except TargetDown as e:
            pytest.fail(f"{e}\nprogram:\n{gp.text}")
        finally:
            bmv2.close()
        if found:
            break
    with capsys.disabled():
        print(f"progfuzz/bmv2 on {profile}: {runs} programs, {packets} packets, {len(found)} divergences")
    if found:
        pytest.fail("\n\n".join(d.report() for d in found[:3]))


# The BMv2 variant needs both tools (conftest's lookup); it skips with the reason when one is absent.
for _mark in NEEDS_BMV2:
    test_split_equals_software_on_bmv2 = _mark(test_split_equals_software_on_bmv2)
