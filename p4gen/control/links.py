"""veth pairs and raw packet sockets: the wiring of `p4gen up` and of the BMv2 test target.

Two Linux details matter for exchanging exact bytes with BMv2 over veths:

- A packet socket opened with ETH_P_ALL receives every interface's frames
  until bind() narrows it (packet(7)), so our own gRPC traffic on loopback
  would leak into a veth's queue. Sockets here open with protocol 0 (nothing
  received) and bind to the interface with ETH_P_ALL.
- With VLAN receive offload (on for veths), the kernel strips the 802.1Q tag
  into the skb's metadata and a packet socket reads the frame untagged. The
  tag comes back through PACKET_AUXDATA (tp_vlan_tci, tp_vlan_tpid), and
  `recv()` puts it back where it was, so a tagged frame reads as sent.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from p4gen.runtime.virtio import PLAIN, VnetHdr
from p4gen.runtime.virtio import SIZE as VNET_SIZE

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_VNET_HDR = 15
PACKET_STATISTICS = 6
SO_RCVBUFFORCE, SO_SNDBUFFORCE = 33, 32
TPACKET_STATS = struct.Struct("=II")  # struct tpacket_stats: tp_packets, tp_drops
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
AUXDATA = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata
MAX_FRAME = 1 << 17


class LinkError(Exception):
    pass


def run_ip(*cmd: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LinkError(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.stdout.strip()}")


def veth(a: str, b: str, mtu: int = 1500) -> None:
    """A veth pair in the current namespace, up, with IPv6 off (no router solicitations or MLD
    reports on our wires)."""
    veth_across(a, b, None, None, mtu)


def delete_links(links: Iterable[str]) -> None:
    """Delete veths (deleting one end removes the pair); missing ones are not an error."""
    for link in links:
        subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)


def with_tag(frame: bytes, status: int, tci: int, tpid: int) -> bytes:
    """The frame with the VLAN tag the kernel took off (TP_STATUS_VLAN_VALID in `status`) put
    back where it was (csum_start already counts it: packet(7))."""
    if not status & TP_STATUS_VLAN_VALID:
        return frame
    tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID and tpid else 0x8100
    return frame[:12] + struct.pack("!HH", tpid, tci) + frame[12:]


def receive(sock: socket.socket, vnet: bool) -> tuple[bytes, VnetHdr]:
    """One frame read with recvmsg from a packet socket with PACKET_AUXDATA on, and its
    virtio-net header (PLAIN without `vnet`); BlockingIOError when none waits."""
    data, ancillary, _flags, _addr = sock.recvmsg(MAX_FRAME, socket.CMSG_SPACE(AUXDATA.size))
    hdr = PLAIN
    if vnet:
        hdr, data = VnetHdr.unpack(data), data[VNET_SIZE:]
    for level, kind, blob in ancillary:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(blob) >= AUXDATA.size:
            status, _len, _snap, _mac, _net, tci, tpid = AUXDATA.unpack_from(blob)
            data = with_tag(data, status, tci, tpid)
    return data, hdr


class PacketSocket:
    """A raw AF_PACKET socket on one interface that reads frames exactly as they were sent.

    With `vnet`, every frame travels with its virtio-net header (PACKET_VNET_HDR,
    p4gen.runtime.virtio): what a Linux stack behind the link left to its device
    (partial checksums, GSO super-packets) comes with each frame read, and frames
    written carry what the device tells the stack (GSO packets, verified checksums)."""

    def __init__(self, ifname: str, blocking: bool = True, vnet: bool = False, buffer: int = 0):
        self.ifname = ifname
        self.vnet = vnet
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            if buffer:  # a switch's queue: room for bursts (root may exceed net.core.rmem_max)
                for force, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
                    try:
                        self.sock.setsockopt(socket.SOL_SOCKET, force, buffer)
                    except OSError:
                        self.sock.setsockopt(socket.SOL_SOCKET, plain, buffer)
            self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            if vnet:
                self.sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
            self.sock.bind((ifname, ETH_P_ALL))  # CPython puts the protocol in network order
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(blocking)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, frame: bytes, vnet: VnetHdr = PLAIN) -> int:
        if self.vnet:
            return self.sock.send(vnet.pack() + frame) - VNET_SIZE
        return self.sock.send(frame)

    def recv(self) -> bytes:
        """One frame, with a VLAN tag the kernel took off put back (BlockingIOError if none waits)."""
        return self.recv_vnet()[0]

    def recv_batch(self, limit: int) -> list[tuple[bytes, VnetHdr]]:
        """Up to `limit` waiting frames with their virtio-net headers (a call each: rings.RingSocket
        reads them without)."""
        out: list[tuple[bytes, VnetHdr]] = []
        while len(out) < limit:
            try:
                out.append(self.recv_vnet())
            except BlockingIOError:
                break
        return out

    def flush(self) -> int:
        """Nothing waits here: every send went out at once (rings.RingSocket's interface)."""
        return 0

    def recv_vnet(self) -> tuple[bytes, VnetHdr]:
        """One frame and its virtio-net header (PLAIN on a socket without `vnet`)."""
        return receive(self.sock, self.vnet)

    def stats(self) -> tuple[int, int]:
        """(frames received, frames the kernel dropped because the queue was full) since the
        last call (PACKET_STATISTICS resets on read)."""
        return TPACKET_STATS.unpack(self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, TPACKET_STATS.size))

    def drops(self) -> dict[str, int]:
        """What the socket dropped since the last call, by reason: queue_full."""
        return {"queue_full": self.stats()[1]}

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> PacketSocket:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def packet_socket(ifname: str, blocking: bool = True, vnet: bool = False, buffer: int = 0) -> PacketSocket:
    return PacketSocket(ifname, blocking, vnet, buffer)


# ---------------------------------------------------------------- network namespaces

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")


def netns_supported() -> bool:
    """Whether `ip netns` can be used here (root, iproute2, a kernel with network namespaces)."""
    return os.geteuid() == 0 and shutil.which("ip") is not None and Path("/proc/self/ns/net").exists()


def netns_add(name: str) -> None:
    run_ip("ip", "netns", "add", name)
    run_ip("ip", "-n", name, "link", "set", "lo", "up")


def netns_delete(name: str) -> bool:
    """Delete a namespace and, with it, every interface inside it (veth peers outside go too)."""
    return subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False).returncode == 0


def veth_across(a: str, b: str, netns: str | None, b_netns: str | None, mtu: int = 1500) -> None:
    """A veth pair with end `a` in `netns` and end `b` in `b_netns` (None: the current namespace),
    up, with IPv6 off."""
    create = ["ip"] + (["-n", netns] if netns else []) + ["link", "add", a, "type", "veth", "peer", "name", b]
    if b_netns != netns:
        create += ["netns", b_netns or str(os.getpid())]  # a pid names that process's namespace
    run_ip(*create)
    for dev, ns in ((a, netns), (b, b_netns)):
        where = ["-n", ns] if ns else []
        run_ip("ip", *where, "link", "set", dev, "mtu", str(mtu))
        run_ip("ip", *where, "link", "set", dev, "up")
        sysctl = ["sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"]
        subprocess.run((["ip", "netns", "exec", ns] if ns else []) + sysctl, check=False, capture_output=True)


def _setns(fd: int) -> None:
    if hasattr(os, "setns"):  # Python 3.12+
        os.setns(fd, CLONE_NEWNET)
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextmanager
def in_netns(name: str | None) -> Iterator[None]:
    """Run the block in network namespace `name` (this thread only); sockets made there stay there.

    None runs it where we are. Only sockets are made inside: threads started in the block
    would stay in the namespace, so gRPC clients run as subprocesses instead."""
    if name is None:
        yield
        return
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(NETNS_DIR / name, os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)
