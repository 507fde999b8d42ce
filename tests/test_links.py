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

from p4gen.control.up import delete_links, packet_socket, veth

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
        with packet_socket(a) as tx:
            tx.send(frame)
        time.sleep(0.05)
        for s in socks:
            got = []
            while True:
                try:
                    got.append(s.recv(65536))
                except BlockingIOError:
                    break
            assert got == [frame]
            s.close()
    finally:
        stop.set()
        delete_links([a])
