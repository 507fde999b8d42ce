"""A VM for `p4gen up`: the VM's end of its link in a network namespace configured as a guest.

The namespace gets the link (renamed, e.g. eth0), its MAC, addresses, MTU,
routes and static neighbours, so that a user runs real programs in it
(`ip netns exec vm1 iperf3 -c …`) and they reach p4gen as a virtio guest's
traffic would: Linux leaves checksums and segmentation to the "device"
(the veth keeps TSO and checksum offload on), and p4gen reads that metadata
through PACKET_VNET_HDR. Neighbours are static because nothing answers ARP
on the hypervisor's side. The spec comes from a small TOML file (see
examples/vm1.toml), from the command line, or both (the command line wins).
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from p4gen.control.links import LinkError, run_ip

_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


@dataclass(frozen=True)
class VmSpec:
    netns: str
    ifname: str = "eth0"
    mac: str | None = None
    mtu: int = 1500
    addresses: tuple[str, ...] = ()  # CIDR: "10.0.1.2/24", "fd00:1::2/64"
    routes: tuple[str, ...] = ()  # `ip route` arguments: "default via 10.0.1.1", "10.0.2.0/24 dev eth0"
    neighbours: tuple[str, ...] = ()  # "IP MAC": "10.0.1.1 02:00:00:00:00:fe"
    offloads: dict[str, str] = field(default_factory=dict)  # ethtool -K: {"tso": "off"}

    def check(self) -> VmSpec:
        """The spec itself, or a LinkError naming the first bad value."""
        if not _NAME.match(self.netns) or not _NAME.match(self.ifname):
            raise LinkError(f"vm: bad name {self.netns!r}/{self.ifname!r} (letters, digits, _.-; at most 15)")
        if self.mac is not None and not _MAC.match(self.mac):
            raise LinkError(f"vm: bad MAC address {self.mac!r}")
        if not 68 <= self.mtu <= 65535:
            raise LinkError(f"vm: MTU {self.mtu} out of range 68..65535")
        for a in self.addresses:
            try:
                ipaddress.ip_interface(a)
            except ValueError:
                raise LinkError(f"vm: bad address {a!r} (want CIDR, e.g. 10.0.1.2/24)") from None
        for n in self.neighbours:
            parts = n.split()
            if len(parts) != 2 or not _MAC.match(parts[1]):
                raise LinkError(f"vm: bad neighbour {n!r} (want 'IP MAC')")
            try:
                ipaddress.ip_address(parts[0])
            except ValueError:
                raise LinkError(f"vm: bad neighbour address {parts[0]!r}") from None
        return self


_LISTS = ("addresses", "routes", "neighbours")


def load_vm_spec(path: str | Path | None, **overrides) -> VmSpec | None:
    """The VM from a TOML file and/or overrides (None values ignored); None when neither
    names a namespace."""
    data: dict = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except OSError as e:
            raise LinkError(f"cannot read {path}: {e.strerror or e}") from None
        except tomllib.TOMLDecodeError as e:
            raise LinkError(f"{path}: {e}") from None
        data = data.get("vm", data)
        unknown = set(data) - {f.name for f in fields(VmSpec)}
        if unknown:
            raise LinkError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    for k, v in overrides.items():
        if v not in (None, [], ()):
            data[k] = v
    if "netns" not in data:
        if data:
            raise LinkError("vm: no namespace given (netns in the file, or --vm-netns)")
        return None
    for k in _LISTS:
        if k in data:
            data[k] = tuple(data[k]) if isinstance(data[k], (list, tuple)) else (data[k],)
    try:
        spec = VmSpec(**data)
    except TypeError as e:
        raise LinkError(f"vm: {e}") from None
    if not isinstance(spec.mtu, int):
        raise LinkError(f"vm: MTU must be a number, not {spec.mtu!r}")
    return replace(spec, offloads={str(k): str(v) for k, v in spec.offloads.items()}).check()


def configure(spec: VmSpec, link: str) -> None:
    """Move `link` (in this namespace) into the existing namespace spec.netns and set it up."""
    ns = spec.netns
    run_ip("ip", "link", "set", link, "netns", ns)
    if link != spec.ifname:
        run_ip("ip", "-n", ns, "link", "set", link, "name", spec.ifname)
    dev = spec.ifname
    if spec.mac:
        run_ip("ip", "-n", ns, "link", "set", dev, "address", spec.mac)
    run_ip("ip", "-n", ns, "link", "set", dev, "mtu", str(spec.mtu))
    v6 = any(ipaddress.ip_interface(a).version == 6 for a in spec.addresses)
    if not v6:  # no router solicitations or MLD reports from a guest that has no IPv6
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"],
                       capture_output=True, check=False)
    for a in spec.addresses:
        extra = ["nodad"] if ipaddress.ip_interface(a).version == 6 else []
        run_ip("ip", "-n", ns, "addr", "add", a, "dev", dev, *extra)
    run_ip("ip", "-n", ns, "link", "set", dev, "up")
    for n in spec.neighbours:
        ip, mac = n.split()
        run_ip("ip", "-n", ns, "neigh", "replace", ip, "lladdr", mac, "dev", dev, "nud", "permanent")
    for r in spec.routes:
        run_ip("ip", "-n", ns, "route", "replace", *r.split(), *([] if " dev " in f" {r} " else ["dev", dev]))
    if spec.offloads:
        args = [x for kv in spec.offloads.items() for x in kv]
        proc = subprocess.run(["ip", "netns", "exec", ns, "ethtool", "-K", dev, *args], capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0:
            raise LinkError(f"ethtool -K {dev} {' '.join(args)} in {ns}: {proc.stderr.strip() or 'failed'}")
