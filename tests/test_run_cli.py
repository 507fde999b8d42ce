"""`p4gen run` and the pcap reader/writer, with scapy's pcap code as the oracle."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import rdpcap, wrpcap

from p4gen.cli import main
from p4gen.runtime.pcap import PcapError, read_pcap, write_pcap

VM = "02:00:00:00:01:02"


def test_pcap_roundtrip_with_scapy(tmp_path):
    frames = [bytes(Ether() / IP() / TCP() / Raw(b"x" * n)) for n in (0, 1, 1500)]
    wrpcap(str(tmp_path / "a.pcap"), [Ether(f) for f in frames])
    assert list(read_pcap(str(tmp_path / "a.pcap"))) == frames
    write_pcap(str(tmp_path / "b.pcap"), frames)
    assert [bytes(p) for p in rdpcap(str(tmp_path / "b.pcap"))] == frames


def test_pcap_errors(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a pcap file at all, sorry")
    with pytest.raises(PcapError, match="not a pcap file"):
        list(read_pcap(str(bad)))
    write_pcap(str(tmp_path / "t.pcap"), [b"\x00" * 60])
    data = (tmp_path / "t.pcap").read_bytes()
    (tmp_path / "t.pcap").write_bytes(data[:-10])
    with pytest.raises(PcapError, match="truncated packet"):
        list(read_pcap(str(tmp_path / "t.pcap")))


def test_run_reference_pipeline(tmp_path, capsys):
    frames = [Ether(src=VM) / IP(src="10.0.1.2", dst="10.0.2.9") / TCP(dport=443, flags="PA") / Raw(bytes(65495)),
              Ether(src=VM) / IP(src="10.0.1.2", dst="10.0.2.9") / TCP(dport=22)]
    wrpcap(str(tmp_path / "in.pcap"), frames)
    assert main(["run", "examples/vm_offload.nf", "--pipeline", "vm_egress", "--in", str(tmp_path / "in.pcap"),
                 "--out", str(tmp_path / "out.pcap")]) == 0
    out = capsys.readouterr().out
    assert "vm_egress: 2 packets in, 47 out (uplink 47)" in out
    assert "acl_out.deny                       1" in out
    packets = rdpcap(str(tmp_path / "out.pcap"))
    assert len(packets) == 47 and max(len(p[IP]) for p in packets) == 1500


def test_run_errors(tmp_path, capsys):
    assert main(["run", "examples/vm_offload.nf", "--pipeline", "nope", "--in", "x", "--out", "y"]) == 1
    assert "no pipeline 'nope'" in capsys.readouterr().err
    assert main(["run", "examples/vm_offload.nf", "--pipeline", "vm_egress", "--in", str(tmp_path / "missing"),
                 "--out", str(tmp_path / "o.pcap")]) == 1
    assert "p4gen: error:" in capsys.readouterr().err


def test_progress_bar_on_a_terminal(tmp_path, capsys, monkeypatch):
    from p4gen.cli import _progress_bar

    assert _progress_bar(50, 100, 7, width=10) == "[#####.....]  50%  7 packets"
    assert _progress_bar(10, 0, 0, width=4) == "[....]   0%  0 packets"
    frames = [bytes(Ether(src=VM) / IP(src="10.0.1.2", dst="10.0.2.9") / TCP(dport=443))] * 2500
    write_pcap(str(tmp_path / "in.pcap"), frames)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert main(["run", "examples/vm_offload.nf", "--pipeline", "vm_egress", "--in", str(tmp_path / "in.pcap"),
                 "--out", str(tmp_path / "out.pcap")]) == 0
    err = capsys.readouterr().err
    assert "[############..................]  40%  1000 packets" in err and "2000 packets" in err


PORTS_PROGRAM = """\
const VM1_MAC = 02:00:00:00:01:02;
nf fw {
    counter telnet_drops;
    action deny_telnet() { count(telnet_drops); drop(); }
    action allow() { }
    action to_port(port: bit<9>) { forward(port); }
    action slow() { to_hypervisor(7); }
    table acl {
        key = { ipv4.dst: lpm; }
        actions = { allow; to_port; slow; }
        default_action = allow();
        counters = true;
    }
    apply {
        if (meta.l4_dst == 23) { deny_telnet(); } else { acl.apply(); }
    }
}
pipeline tx : vm_egress { fw; }
flow f { match ethernet.src == VM1_MAC; pipeline tx; }
entries fw.acl {
    (10.0.3.0/24) => to_port(3);
    (10.0.9.0/24) => slow();
}
"""


@pytest.fixture
def ports_run(tmp_path):
    (tmp_path / "p.nf").write_text(PORTS_PROGRAM)
    frames = ([Ether(src=VM) / IP(src="10.0.1.2", dst="10.0.2.9") / TCP(dport=443)] * 4
              + [Ether(src=VM) / IP(src="10.0.1.2", dst="10.0.3.7") / TCP(dport=80)] * 3
              + [Ether(src=VM) / IP(src="10.0.1.2", dst="10.0.9.1") / TCP(dport=80)]
              + [Ether(src=VM) / IP(src="10.0.1.2", dst="10.0.2.9") / TCP(dport=23)] * 2)
    wrpcap(str(tmp_path / "in.pcap"), frames)
    return tmp_path


def test_run_names_ports_and_writes_one_pcap_per_output(ports_run, capsys):
    t = ports_run
    assert main(["run", str(t / "p.nf"), "--pipeline", "tx", "--in", str(t / "in.pcap"),
                 "--out-dir", str(t / "out")]) == 0
    out = capsys.readouterr().out
    assert "tx: 10 packets in, 8 out (uplink 4, port3 3, slow_path 1)" in out
    assert f"wrote {t / 'out'}/: uplink.pcap, port3.pcap, slow_path.pcap" in out
    assert sorted(p.name for p in (t / "out").iterdir()) == ["port3.pcap", "slow_path.pcap", "uplink.pcap"]
    assert [p[IP].dst for p in rdpcap(str(t / "out" / "port3.pcap"))] == ["10.0.3.7"] * 3
    assert len(rdpcap(str(t / "out" / "uplink.pcap"))) == 4
    assert [p[IP].dst for p in rdpcap(str(t / "out" / "slow_path.pcap"))] == ["10.0.9.1"]
    # The program's own counters: indirect and direct (per entry hit).
    lines = out.splitlines()
    assert lines[lines.index("counters:") + 1] == f"  {'fw.telnet_drops':<34} 2 packets, 108 bytes"
    assert f"  {'fw.acl':<34} 4 packets (direct, 2 entries)" in lines
    assert "         3 packets       162 bytes  (10.0.3.0/24) => to_port(3)" in lines
    assert "         1 packets        54 bytes  (10.0.9.0/24) => slow()" in lines


def test_run_json(ports_run, capsys):
    import json

    t = ports_run
    assert main(["run", str(t / "p.nf"), "--pipeline", "tx", "--in", str(t / "in.pcap"),
                 "--out", str(t / "all.pcap"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["packets_in"] == 10 and data["packets_out"] == 8
    assert data["outputs"] == {"uplink": 4, "port3": 3, "slow_path": 1}
    assert data["files"] == [str(t / "all.pcap")] and len(rdpcap(str(t / "all.pcap"))) == 8
    assert data["drops"] == {"fw.deny_telnet": 2}
    assert data["counters"]["indirect"]["fw.telnet_drops"] == [{"index": 0, "packets": 2, "bytes": 108}]
    assert data["counters"]["direct"]["fw.acl"] == [
        {"entry": "(10.0.3.0/24) => to_port(3)", "packets": 3, "bytes": 162},
        {"entry": "(10.0.9.0/24) => slow()", "packets": 1, "bytes": 54}]


def test_run_needs_an_output(ports_run, capsys):
    t = ports_run
    assert main(["run", str(t / "p.nf"), "--pipeline", "tx", "--in", str(t / "in.pcap")]) == 1
    assert capsys.readouterr().err == ("p4gen: error: run needs --out OUT.pcap (every output in one file) or "
                                       "--out-dir DIR (one pcap per output)\n")
    (t / "afile").write_text("x")
    assert main(["run", str(t / "p.nf"), "--pipeline", "tx", "--in", str(t / "in.pcap"),
                 "--out-dir", str(t / "afile")]) == 1
    assert capsys.readouterr().err == f"p4gen: error: cannot write to {t / 'afile'}: it exists and is not a directory\n"


def test_run_vectors_equal_the_reference_path(ports_run, capsys, monkeypatch):
    """Batches of 40 (so that later ones find their flows cached and go as vectors, with every
    fate: uplink, a port, the slow path, a drop): the same pcaps, per output and all in one,
    and the same summary as --no-flow-cache."""
    from p4gen import cli

    t = ports_run
    frames = rdpcap(str(t / "in.pcap"))
    wrpcap(str(t / "many.pcap"), [p for _ in range(30) for p in frames])
    monkeypatch.setattr(cli, "VECTOR_BATCH", 40)
    runs = {}
    for name, extra in (("vec", []), ("ref", ["--no-flow-cache"])):
        assert main(["run", str(t / "p.nf"), "--pipeline", "tx", "--in", str(t / "many.pcap"), "--out",
                     str(t / f"{name}.pcap"), "--out-dir", str(t / name), *extra]) == 0
        runs[name] = [x for x in capsys.readouterr().out.splitlines() if not x.startswith(("flow cache", "wrote"))]
    assert runs["vec"] == runs["ref"]
    assert (t / "vec.pcap").read_bytes() == (t / "ref.pcap").read_bytes()
    for label in ("uplink", "port3", "slow_path"):
        assert (t / "vec" / f"{label}.pcap").read_bytes() == (t / "ref" / f"{label}.pcap").read_bytes()
    assert "tx: 300 packets in, 240 out (uplink 120, port3 90, slow_path 30)" in runs["vec"]
