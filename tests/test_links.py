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


def test_which_short_frames_a_veth_delivers():
    """The progfuzz BMv2 harness leaves out the frames a Linux link does not deliver
    (`linux_delivers`): checked here against the kernel itself, frame by frame."""
    import errno
    import select
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    from test_progfuzz import linux_delivers

    a, b = f"p4r{os.getpid() % 100000}a", f"p4r{os.getpid() % 100000}b"
    veth(a, b)
    try:
        rx, tx = packet_socket(a, blocking=False), packet_socket(b)
        time.sleep(0.05)
        while select.select([rx], [], [], 0.05)[0]:
            rx.recv()  # anything the link said when it came up
        eth = bytes.fromhex("020000000002020000000001")
        frames = [eth[:10], eth + b"\x08\x00", eth + b"\x81\x00" + bytes(3), eth + b"\x81\x00" + bytes(5),
                  eth + b"\x81\x00" + bytes(6), eth + b"\x88\xa8" + bytes(4), eth + b"\x88\xa8\x00\x05\x08\x00\x45\x00",
                  eth + b"\x90\x00\xa8", eth + b"\x86\xdd" + bytes(3)]
        for f in frames:
            try:
                tx.send(f)
                sent = True
            except OSError as e:
                assert e.errno == errno.EINVAL, e
                sent = False
            got = rx.recv() if select.select([rx], [], [], 0.3)[0] else None
            assert (sent and got is not None) == linux_delivers(f), (f.hex(), sent, got)
            if got is not None:
                assert got == f
    finally:
        rx.close()
        tx.close()
        delete_links([a])
