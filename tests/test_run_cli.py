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
