"""The sample captures the README's main job runs (examples/traffic/), checked with scapy.

They are regenerated here and must be byte-identical to the committed files, so
that the generator and the captures cannot drift apart; then the scenario's
software run of them is checked packet by packet."""

from __future__ import annotations

import importlib.util

from conftest import EXAMPLES
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN
from scapy.utils import rdpcap

from p4gen.cli import main

TRAFFIC = EXAMPLES / "traffic"


def _generator():
    spec = importlib.util.spec_from_file_location("make_traffic", TRAFFIC / "make_traffic.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_captures_are_what_the_generator_writes(tmp_path):
    for name, path in _generator().build(tmp_path).items():
        assert path.read_bytes() == (TRAFFIC / f"{name}.pcap").read_bytes(), f"regenerate {name}.pcap"


def test_egress_capture_through_the_scenario(tmp_path, capsys):
    out = tmp_path / "out.pcap"
    assert main(["run", "examples/vm_offload.nf", "--pipeline", "vm_egress",
                 "--in", str(TRAFFIC / "vm1_egress.pcap"), "--out", str(out)]) == 0
    # 65000 B / 1410 + 20000 B / 1398 (timestamps) + 30000 B / 1390 (IPv6) + 10000 B / 1460 (SNAT) + DNS
    assert "vm_egress: 7 packets in, 92 out (uplink 92)" in capsys.readouterr().out
    sent = rdpcap(str(TRAFFIC / "vm1_egress.pcap"))
    got = rdpcap(str(out))
    assert all(len(p[IP]) <= 1500 for p in got)
    tunnelled = [p for p in got if VXLAN in p]
    assert len(tunnelled) == 47 + 15 + 22 + 1 and {p[VXLAN].vni for p in tunnelled} == {5001}
    assert {(p[IP].src, p[IP].dst) for p in tunnelled} == {("192.168.1.1", "192.168.1.2")}
    snat = [p for p in got if VXLAN not in p]
    assert len(snat) == 7 and {p[IP].src for p in snat} == {"203.0.113.10"}
    assert b"".join(bytes(p[TCP].payload) for p in snat) == bytes(sent[3][TCP].payload)
    for i, mss in ((0, 1410), (1, 1398), (2, 1390)):
        inner = [p[VXLAN].payload for p in tunnelled
                 if TCP in p[VXLAN].payload and p[VXLAN].payload[TCP].sport == 40000 + i]
        assert max(len(p[TCP].payload) for p in inner) == mss
        assert b"".join(bytes(p[TCP].payload) for p in inner) == bytes(sent[i][TCP].payload)
    v6 = [p[VXLAN].payload for p in tunnelled if IPv6 in p[VXLAN].payload]
    assert len(v6) == 22 and all(len(p[IPv6]) <= 1450 for p in v6)


def test_ingress_capture_through_the_scenario_with_lro(tmp_path, capsys):
    out = tmp_path / "out.pcap"
    assert main(["run", "examples/vm_offload.nf", "--pipeline", "vm_ingress", "--lro",
                 "--in", str(TRAFFIC / "vm1_ingress.pcap"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "vm_ingress: 11 packets in, 2 out (vm 2)" in text
    assert "overlay_decap.reject_tunnel        1" in text and "acl_in.deny                        1" in text
    sent = rdpcap(str(TRAFFIC / "vm1_ingress.pcap"))
    merged, reply = rdpcap(str(out))
    assert bytes(merged[TCP].payload) == b"".join(bytes(p[VXLAN].payload[TCP].payload) for p in sent[:8])
    assert merged[IP].dst == "10.0.1.2" and UDP not in merged
    assert reply[IP].dst == "10.0.1.2" and reply[TCP].dport == 40003
    for pkt in (merged, reply):  # checksums as scapy computes them
        fresh = Ether(bytes(pkt))
        del fresh[IP].chksum, fresh[TCP].chksum
        fresh = Ether(bytes(fresh))
        assert (fresh[IP].chksum, fresh[TCP].chksum) == (pkt[IP].chksum, pkt[TCP].chksum)
