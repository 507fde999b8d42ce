"""Target profiles: the shipped ones load; mistakes are clear errors naming file and key."""

from __future__ import annotations

import pytest

from p4gen.place.profiles import ProfileError, builtin_profile, load_profile, parse_profile, resolve_targets

GOOD = """
[target]
name = "x"
kind = "nic"
architecture = "v1model"
[capabilities]
match_kinds = ["exact"]
primitives = ["drop"]
[resources]
tables = 2
[costs]
crossing = 1.0
"""


@pytest.mark.parametrize("name", ["bmv2-smartnic", "constrained-nic", "hypervisor"])
def test_shipped_profiles_load(name):
    prof = load_profile(f"targets/{name}.toml")
    assert prof.name == name
    assert prof == builtin_profile(name).__class__(**{**prof.__dict__, "path": prof.path})


def test_bmv2_profile_facts():
    p = load_profile("targets/bmv2-smartnic.toml")
    assert p.is_nic and p.architecture == "v1model" and p.vm_attachment == "hypervisor"
    assert {"segment", "coalesce"} <= p.lacks and "segment" not in p.capabilities
    assert p.ports.uplink == 0 and p.ports.host != p.ports.uplink
    c = load_profile("targets/constrained-nic.toml")
    assert "range" not in c.match_kinds and "geneve_encap" not in c.capabilities
    assert c.resources.tables == 4 and c.resources.table_entries == 4096


@pytest.mark.parametrize("change,message", [
    (("[resources]\ntables = 2", "[resources]\ntables = 2\nbogus = 1"), "unknown key 'bogus' in [resources]"),
    (("tables = 2", 'tables = "two"'), "[resources].tables must be a whole number, not str"),
    (('name = "x"\n', ""), "[target].name is missing"),
    (('kind = "nic"', 'kind = "fpga"'), "[target].kind must be \"nic\" or \"hypervisor\""),
    (('["exact"]', '["exact", "fuzzy"]'), "unknown name 'fuzzy'"),
    (('primitives = ["drop"]', 'primitives = ["drop"]\nlacks = ["drop"]'), "both in primitives and lacks"),
    (("crossing = 1.0", "crossing = 0"), "[costs].crossing must be positive"),
    (("[costs]", "[costs\n"), "not valid TOML"),
    (('architecture = "v1model"', 'architecture = "tna"'), "is not supported"),
    (("tables = 2", "tables = -1"), "must not be negative"),
])
def test_profile_errors(change, message):
    old, new = change
    assert old in GOOD
    with pytest.raises(ProfileError) as e:
        parse_profile(GOOD.replace(old, new), "p.toml")
    assert str(e.value).startswith("p.toml: ") and message in str(e.value)


@pytest.mark.parametrize("section,message", [
    ("[offload]\nthreshold_packets = 4", "[offload].flow_entries must be given"),
    ("[offload]\nflow_entries = 0", "[offload].flow_entries must be given, and at least 1"),
    ("[resources]\nmax_table_size = 100\n[offload]\nflow_entries = 101", "exceeds [resources].max_table_size = 100"),
    ("[offload]\nflow_entries = 10\nidle_timeout_ms = 500", "idle_timeout_ms must be at least 1000"),
    ("[offload]\nflow_entries = 10\nthreshold_packets = 0", "threshold_packets must be at least 1"),
    ("[offload]\nflow_entries = 10\nidle = 5", "unknown key 'idle' in [offload]"),
])
def test_offload_section_errors(section, message):
    text = GOOD.replace("[resources]\ntables = 2\n", "") + section + "\n"
    with pytest.raises(ProfileError) as e:
        parse_profile(text, "p.toml")
    assert str(e.value).startswith("p.toml: ") and message in str(e.value)


def test_offload_section():
    p = parse_profile(GOOD + "[offload]\nflow_entries = 100\nidle_timeout_ms = 2000\n", "p.toml")
    assert p.offload is not None
    assert (p.offload.flow_entries, p.offload.threshold_packets, p.offload.idle_timeout_ms) == (100, 8, 2000)
    assert parse_profile(GOOD, "p.toml").offload is None
    hyp = open("targets/hypervisor.toml").read() + "\n[offload]\nflow_entries = 10\n"
    with pytest.raises(ProfileError, match="is for NIC profiles"):
        parse_profile(hyp, "h.toml")


def test_two_nics_rejected():
    with pytest.raises(ProfileError, match="only one NIC profile"):
        resolve_targets(["targets/bmv2-smartnic.toml", "targets/constrained-nic.toml"])


def test_missing_profile_file():
    with pytest.raises(ProfileError, match="cannot read profile"):
        load_profile("targets/nope.toml")
