"""The veth and AF_PACKET helpers that `p4gen up` and the BMv2 test target share (need root and iproute2)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from p4gen.control.links import delete_links, packet_socket, veth

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="creating veth pairs needs root and iproute2")


def test_packet_socket_sees_only_its_interface():
    a, b = f"p4t{os.getpid() % 100000}a", f"p4t{os.getpid() % 100000}b"
    veth(a, b)
    stop = threading.Event()

    def loopback_noise():  # what our own gRPC does on loopback while sockets open
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            while not stop.is_set():
                u.sendto(b"noise" * 20, ("127.0.0.1", 9))

    noise = threading.Thread(target=loopback_noise)
    noise.start()
    try:
        socks = [packet_socket(b, blocking=False) for _ in range(50)]
        time.sleep(0.05)
        stop.set()
        noise.join()
        frame = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.9.9.1", dst="10.9.9.2") /
                      UDP(sport=1, dport=2) / (b"x" * 30))
        # VLAN receive offload takes tags off into metadata: they must read back in place,
        # for both TPIDs, and for two tags (only the outer one is offloaded).
        tagged = [frame[:12] + b"\x81\x00\x20\x05" + frame[12:], frame[:12] + b"\x88\xa8\x00\x07" + frame[12:],
                  frame[:12] + b"\x81\x00\x00\x0a\x81\x00\x00\x0b" + frame[12:]]
        with packet_socket(a) as tx:
            for f in [frame, *tagged]:
                tx.send(f)
        time.sleep(0.05)
        for s in socks:
            got = []
            while True:
                try:
                    got.append(s.recv())
                except BlockingIOError:
                    break
            assert got == [frame, *tagged]
            s.close()
    finally:
        stop.set()
        delete_links([a])
