"""Program-level differential fuzzing of p4gen (the Gauntlet idea, OSDI'20).

p4gen promises that a placed program, split between the NIC and the hypervisor, behaves
exactly like the all-software run: the same packets on the same ports, the same drops and the
same counters. This module checks that promise on random programs:

* `ProgramGen` writes random but valid DSL programs (seeded `random.Random`): custom headers
  after Ethernet (an EtherType) or after UDP (a port), metadata of random widths, tables of
  every match kind with entries, actions with arithmetic and rewrites (overflowing the field on
  purpose), TTL/DSCP/VLAN/tunnel primitives, counters, branches on validity, table hits and
  comparisons, and random `@pin` / `@prefer` annotations, for a vm_egress and/or vm_ingress
  pipeline. Every program is checked with p4gen's own loader; a rejected program is a
  generator bug, counted as a reject.
* `PacketGen` writes packets aimed at the program's entries and branches (scapy): tagged,
  tunnelled, IPv4/IPv6, custom headers, boundary TTLs.
* `SplitModel` runs a packet through the split: the hypervisor's stages and a Python model of
  the NIC's (`HypervisorPipeline(..., side=NIC)`), handing packets over at the placement's
  edges (with the resume stage and the carried metadata), as the NIC and the hypervisor do.
* `compare` checks the split against the all-software reference packet by packet: outputs
  (kind, port or to_hypervisor code, bytes), the drop total (reasons may be counted on either
  side), every indirect counter cell and every entry's direct counter (packets, and bytes unless
  relaxed), summed over both sides. `model_target_check` does the same through the library's
  own `p4gen.testing.ModelTarget` (real p4gen_t frames), and `compare_targets` through any
  p4gen.testing target (Bmv2Target in tests/test_progfuzz.py). `Divergence` holds what
  differed; `shrink` reduces a diverging case (one packet, then nfs, entries, tables and
  actions, ifs and statements removed while a divergence of the same kind remains).

Bugs found are kept in KNOWN_DIVERGENCES (minimal programs + packets, which side is wrong;
regression tests in tests/test_progfuzz_regressions.py, xfail(strict) while open). Generator
features that reach an open bug are switched off by name in the CI runs (CI_DISABLED, and
CI_RELAXED for comparisons) so they stay green while the bug is open; when a bug is fixed, flip
its status and delete its entries there.

Run it by hand:  python tests/progfuzz.py [N_PROGRAMS] [N_PACKETS] [SEED] [--ci]
(--ci: the CI feature set; without it every feature is on and known bugs show up.)
"""

from __future__ import annotations

import ipaddress
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------- generator features

# Every feature of the generator that can be switched off by name. Default: all on.
FEATURES: dict[str, str] = {
    "custom_header": "a user header after Ethernet (by EtherType) or after UDP (by port)",
    "custom_header_untagged_only": "now and then a user header after Ethernet that the parser does not expect "
                                   "after a VLAN tag",
    "custom_header_tunnel": "tunnel encapsulation and decapsulation in programs with a user header",
    "metadata": "user metadata fields of random widths",
    "arith_assign": "field = field (+ - * & |) value, wrapping at the field's width",
    "arith_shift": "field = field << n / >> n (P4 casts the operand to the target width first)",
    "arith_compare": "comparisons of arithmetic expressions (ipv4.ttl + 1 == 0)",
    "forward": "forward(port)",
    "to_hypervisor": "to_hypervisor(code)",
    "drop": "drop()",
    "dec_ttl": "dec_ttl()",
    "set_dscp": "set_dscp(d)",
    "vlan": "push_vlan / pop_vlan",
    "encap": "vxlan_encap / geneve_encap, behind a check that the packet is not a tunnel already",
    "nested_encap": "encapsulation anywhere in actions: of a tunnel packet, or twice",
    "encap_odd_port": "tunnel encapsulation to a UDP port the parser does not know",
    "decap": "vxlan_decap / geneve_decap under a validity check",
    "unguarded_decap": "decapsulation in actions without a validity check",
    "parse_field_writes": "rewrites of fields the parser selects on (ether_type, protocol, next_hdr, udp port)",
    "l4_field_writes": "rewrites inside a TCP/UDP checksum other than addresses and ports (TCP flags and "
                       "window, tunnel VNIs, inner headers, a user header after UDP)",
    "counters": "indirect counters and count()",
    "direct_counters": "counters = true on tables",
    "idle_timeout": "idle_timeout = true on tables (the constrained NIC lacks it)",
    "two_pipelines": "a second vm_ingress pipeline with a flow of its own",
    "hash": "field = hash(fields)",
    "pins": "@pin / @prefer on nfs and tables",
    "flows": "flow declarations matching the source MAC",
    "malformed": "truncated frames and bad IPv4 checksums",
    "tso": "a segment stage first in vm_egress, and TCP super-packets",
    "counter_index_field": "count(c, field): a counter index read from the packet (out of range too)",
    "tagged_tunnels": "packets: 802.1Q tags in front of VXLAN/Geneve tunnels",
    "vlan_overflow": "push_vlan anywhere (a third tag can overflow vlan[2]); off: only behind !vlan[1].isValid()",
    "custom_header_vlan": "802.1Q tags together with a user header after Ethernet (packets and push_vlan)",
    "vlan_with_tunnels": "push_vlan / pop_vlan in programs that also encapsulate or decapsulate",
    "bad_l4_checksum": "packets: a payload byte flipped, so the TCP/UDP checksums no longer verify",
    "lpm_odd_width": "lpm keys on fields whose width is not a multiple of 8 (ipv4.dscp, vlan[0].vid, …)",
}

# Features switched off in the bounded CI runs because they reach a known open bug (see
# KNOWN_DIVERGENCES); each names the bug. Remove an entry when the bug is fixed.
CI_DISABLED: dict[str, str] = {
    "parse_field_writes": "reparse-after-rewrite",
    "encap_odd_port": "reparse-after-rewrite",
    "custom_header_untagged_only": "reparse-after-rewrite",
    "vlan_with_tunnels": "encap-length-after-vlan-change",
    "lpm_odd_width": "lpm-odd-width-refused-by-bmv2",
}


# Comparisons the bounded CI runs leave out while a known bug makes them fail (bug id).
CI_RELAXED: dict[str, str] = {
    "counter_bytes": "counter-bytes-after-crossing",  # byte counts of counters (packet counts stay strict)
}


def features(disabled: dict[str, str] | set[str] | None = None) -> frozenset[str]:
    off = set(disabled or ())
    unknown = off - set(FEATURES)
    assert not unknown, f"unknown features {unknown}"
    return frozenset(set(FEATURES) - off)


def ci_features() -> frozenset[str]:
    return features(CI_DISABLED)


def describe_disabled(enabled: frozenset[str]) -> str:
    off = sorted(set(FEATURES) - enabled)
    if not off:
        return "progfuzz: all generator features enabled"
    return "progfuzz: generator features disabled (known open bugs): " + ", ".join(
        f"{f} [{CI_DISABLED.get(f, 'by request')}]" for f in off) + "; comparisons relaxed: " + ", ".join(
        f"{c} [{b}]" for c, b in CI_RELAXED.items())


# ---------------------------------------------------------------- fields


@dataclass(frozen=True)
class Fld:
    name: str  # DSL path, e.g. "ipv4.ttl", "vlan[0].vid", "meta.m0"
    width: int
    kind: str = "int"  # int | mac | ipv4 | ipv6
    write: str = "yes"  # yes | no | parse (a field the parser selects on)

    @property
    def inst(self) -> str:
        return self.name.split(".")[0].split("[")[0]


STD_FIELDS = [
    Fld("ethernet.src", 48, "mac"), Fld("ethernet.dst", 48, "mac"), Fld("ethernet.ether_type", 16, write="parse"),
    Fld("vlan[0].vid", 12), Fld("vlan[0].pcp", 3), Fld("vlan[1].vid", 12), Fld("vlan.last.ether_type", 16, write="no"),
    Fld("ipv4.ttl", 8), Fld("ipv4.dscp", 6), Fld("ipv4.ecn", 2), Fld("ipv4.identification", 16),
    Fld("ipv4.protocol", 8, write="parse"), Fld("ipv4.src", 32, "ipv4"), Fld("ipv4.dst", 32, "ipv4"),
    Fld("ipv6.hop_limit", 8), Fld("ipv6.traffic_class", 8), Fld("ipv6.flow_label", 20),
    Fld("ipv6.next_hdr", 8, write="parse"),
    Fld("ipv6.src", 128, "ipv6"), Fld("ipv6.dst", 128, "ipv6"),
    Fld("tcp.src_port", 16), Fld("tcp.dst_port", 16),
    Fld("tcp.flags", 8, write="l4"), Fld("tcp.window", 16, write="l4"),
    Fld("udp.src_port", 16), Fld("udp.dst_port", 16, write="parse"),
    Fld("icmp.type", 8), Fld("icmp.code", 8),
    Fld("vxlan.vni", 24, write="l4"), Fld("geneve.vni", 24, write="l4"),
    Fld("inner_ipv4.dst", 32, "ipv4", write="l4"), Fld("inner_ipv4.ttl", 8, write="l4"),
    Fld("meta.l4_src", 16), Fld("meta.l4_dst", 16), Fld("meta.ingress_port", 9, write="no"),
]

PORTS = (1, 2, 3, 4, 5)  # forward() targets: never the host port 255; 0 is the uplink
VALID_INSTANCES = ("ipv4", "ipv6", "tcp", "udp", "icmp", "vlan[0]", "vlan[1]", "vxlan", "geneve", "inner_ipv4")


def _mac(v: int) -> str:
    return ":".join(f"{b:02x}" for b in v.to_bytes(6, "big"))


def literal(f: Fld, v: int, rng: random.Random | None = None) -> str:
    """A DSL literal for value v of field f (addresses sometimes written as addresses)."""
    if rng is not None and rng.random() < 0.5:
        if f.kind == "mac":
            return _mac(v)
        if f.kind == "ipv4":
            return str(ipaddress.IPv4Address(v))
        if f.kind == "ipv6":
            return str(ipaddress.IPv6Address(v))
    return str(v) if v < 256 or (rng is not None and rng.random() < 0.3) else hex(v)


# ---------------------------------------------------------------- generated program


@dataclass
class CustomHeader:
    inst: str
    fields: list[tuple[str, int]]  # (name, width), in order; includes "nt" when after Ethernet
    after: str  # "ethernet" | "udp"
    selector: int  # EtherType or UDP port

    @property
    def size(self) -> int:
        return sum(w for _, w in self.fields) // 8


@dataclass
class GenProgram:
    seed: int
    text: str
    custom: CustomHeader | None
    directions: dict[str, str]  # pipeline → direction
    flow_macs: list[int]  # source MACs the vm_egress flows match (empty: every packet)
    pool: dict[str, list[int]]  # field → interesting values (entries', conditions', boundaries)
    aims: list[dict[str, int]]  # per entry: field values that hit it
    meta_fields: list[Fld] = field(default_factory=list)
    ingress_macs: list[int] = field(default_factory=list)  # destination MACs the vm_ingress flow matches


class ProgramGen:
    """Random valid DSL programs. `ProgramGen(seed, features).generate()` → GenProgram."""

    def __init__(self, seed: int, feats: frozenset[str] | None = None):
        self.seed = seed
        self.rng = random.Random(seed)
        self.f = feats if feats is not None else features()
        self.pool: dict[str, list[int]] = {}
        self.aims: list[dict[str, int]] = []
        self.counter = 0

    def on(self, feat: str, p: float = 1.0) -> bool:
        return feat in self.f and self.rng.random() < p

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    # ------------------------------------------------------------ values
    def values(self, f: Fld) -> list[int]:
        """The program's pool of interesting values for a field (created on first use)."""
        pool = self.pool.get(f.name)
        if pool is None:
            rng, full = self.rng, (1 << f.width) - 1
            if f.kind == "mac":
                pool = [0x020000000000 | rng.getrandbits(16) << 8 | rng.randrange(256) for _ in range(3)]
            elif f.kind == "ipv4":
                pool = [(10 << 24) | rng.getrandbits(16) << 8 | rng.randrange(256) for _ in range(3)]
                pool.append(0xC0A80000 | rng.getrandbits(16))
            elif f.kind == "ipv6":
                pool = [(0xFD00 << 112) | rng.getrandbits(64) for _ in range(3)]
            elif f.name.endswith("ttl") or f.name.endswith("hop_limit"):
                pool = [0, 1, 2, 64, 254, 255]
            elif f.name.endswith("protocol") or f.name.endswith("next_hdr"):
                pool = [6, 17, 1, 58]
            elif f.name in ("meta.ingress_port",):
                pool = [0, 255]
            else:
                pool = [0, 1, full, full - 1 if full > 1 else 0] + [rng.randint(0, full) for _ in range(3)]
                if f.width == 16 and "port" in f.name or f.name.startswith("meta.l4"):
                    pool += [53, 80, 443, 40000]
            pool = sorted({v & full for v in pool})
            self.pool[f.name] = pool
        return pool

    def value(self, f: Fld, p_pool: float = 0.85) -> int:
        rng = self.rng
        if rng.random() < p_pool:
            return rng.choice(self.values(f))
        v = rng.getrandbits(f.width)
        self.values(f).append(v)
        return v

    # ------------------------------------------------------------ program
    def generate(self) -> GenProgram:
        rng = self.rng
        out: list[str] = [f"// progfuzz seed {self.seed}"]
        self.fields = list(STD_FIELDS)
        self.custom = None
        # tunnel primitives (encap/decap) appear in about half of the programs
        self.tunnel_prog = rng.random() < 0.5 or "vlan_with_tunnels" in self.f
        if self.on("custom_header", 0.5):
            self.custom = self.custom_header(out)
        self.meta: list[Fld] = []
        if self.on("metadata", 0.7):
            out.append("metadata {")
            for i in range(rng.randint(1, 3)):
                w = rng.choice([1, 3, 4, 7, 8, 9, 12, 16, 20, 32, 48, 64, 128])
                self.meta.append(Fld(f"meta.m{i}", w))
                out.append(f"    m{i}: bit<{w}>;")
            out.append("}")
            self.fields += self.meta
        dirs = rng.choice([["vm_egress"], ["vm_ingress"], ["vm_egress", "vm_ingress"]])
        pipelines: dict[str, str] = {}
        stages: dict[str, list[str]] = {}
        self.entries: list[str] = []
        for d in dirs:
            pname = "pe" if d == "vm_egress" else "pi"
            pipelines[pname] = d
            stages[pname] = []
            if d == "vm_egress" and self.on("tso", 0.3):
                seg = self.fresh("seg")
                stages[pname].append(seg)
                mss = "auto" if rng.random() < 0.7 else str(rng.choice([500, 1000, 1400]))
                out.append(f"segment {seg} {{ mss = {mss}; max_mss = 1460; underlay_mtu = 1500; }}")
            for _ in range(rng.randint(1, 3)):
                name = self.fresh("nf")
                stages[pname].append(name)
                out += self.nf(name, d)
        for pname, d in pipelines.items():
            out.append(f"pipeline {pname} : {d} {{ {' -> '.join(stages[pname])}; }}")
        flow_macs: list[int] = []
        if "pe" in pipelines and self.on("flows", 0.4):
            mac = self.value(Fld("ethernet.src", 48, "mac"))
            flow_macs.append(mac)
            out.append(f"flow fe {{ match ethernet.src == {_mac(mac)}; pipeline pe; }}")
            if self.on("flows", 0.4):  # a second flow into the same pipeline (the flow index crosses too)
                mac2 = self.value(Fld("ethernet.src", 48, "mac"))
                if mac2 != mac:
                    flow_macs.append(mac2)
                    out.append(f"flow fe2 {{ match ethernet.src == {_mac(mac2)} || ipv6.isValid(); pipeline pe; }}")
        ingress_macs: list[int] = []
        two = "pi" in pipelines and self.on("two_pipelines", 0.2)
        if "pi" in pipelines and (two or self.on("flows", 0.3)):
            mac = self.value(Fld("ethernet.dst", 48, "mac"))
            ingress_macs.append(mac)
            out.append(f"flow fi {{ match ethernet.dst == {_mac(mac)} || vxlan.isValid(); pipeline pi; }}")
        if two:  # a second vm_ingress pipeline, chosen by its own flow
            name = self.fresh("nf")
            out += self.nf(name, "vm_ingress")
            out.append(f"pipeline pi2 : vm_ingress {{ {name}; }}")
            mac2 = self.value(Fld("ethernet.dst", 48, "mac"))
            if mac2 != ingress_macs[0]:
                ingress_macs.append(mac2)
                out.append(f"flow fi2 {{ match ethernet.dst == {_mac(mac2)}; pipeline pi2; }}")
        out += self.entries
        return GenProgram(self.seed, "\n".join(out) + "\n", self.custom, pipelines, flow_macs, self.pool,
                          self.aims, self.meta, ingress_macs)

    def custom_header(self, out: list[str]) -> CustomHeader:
        rng = self.rng
        inst = "x1"
        after = rng.choice(["ethernet", "udp"])
        fields: list[tuple[str, int]] = []
        bits = 0
        for i in range(rng.randint(1, 4)):
            w = rng.choice([1, 2, 3, 4, 5, 7, 8, 12, 16, 24, 32, 48])
            fields.append((f"f{i}", w))
            bits += w
        if bits % 8:
            fields.append(("pad", 8 - bits % 8))
        if after == "ethernet":
            fields.append(("nt", 16))
            selector = rng.choice([0x88B5, 0x88B6, 0x9000, 0x1234])
        else:
            selector = rng.choice([7777, 9999, 1234, 60000])
        out.append(f"header h_{inst} {{ " + " ".join(f"{n}: bit<{w}>;" for n, w in fields) + " }")
        out.append(f"packet {{ {inst}: h_{inst}; }}")
        out.append("parser {")
        if after == "ethernet":
            out += ["    override state start {", "        extract(ethernet);",
                    "        transition select(ethernet.ether_type) {",
                    f"            {hex(selector)}: s_{inst}; 0x8100: vlan; 0x0800: ipv4; 0x86dd: ipv6;",
                    "            default: accept;",
                    "        }", "    }",
                    f"    state s_{inst} {{ extract({inst}); transition select({inst}.nt) {{ 0x0800: ipv4; "
                    "0x86dd: ipv6; default: accept; } }"]
            if "custom_header_untagged_only" not in self.f or self.rng.random() < 0.7:
                # the header may follow 802.1Q tags too, so push_vlan / pop_vlan keep it reachable
                out += ["    override state vlan {", "        extract(vlan.next);",
                        "        transition select(vlan.last.ether_type) {",
                        f"            {hex(selector)}: s_{inst}; 0x8100: vlan; 0x0800: ipv4; 0x86dd: ipv6;",
                        "            default: accept;", "        }", "    }"]
        else:
            out += ["    override state udp {", "        extract(udp);", "        meta.l4_src = udp.src_port;",
                    "        meta.l4_dst = udp.dst_port;", "        transition select(udp.dst_port) {",
                    f"            4789: vxlan; 6081: geneve; {selector}: s_{inst}; default: accept;",
                    "        }", "    }", f"    state s_{inst} {{ extract({inst}); transition accept; }}"]
        out.append("}")
        for n, w in fields:
            self.fields.append(Fld(f"{inst}.{n}", w, write="parse" if n == "nt" else "l4" if after == "udp" else "yes"))
        return CustomHeader(inst, fields, after, selector)

    # ------------------------------------------------------------ nf
    def readable(self) -> list[Fld]:
        return self.fields

    def writable(self) -> list[Fld]:
        ok = ("yes",) + (("parse",) if "parse_field_writes" in self.f else ()) + \
            (("l4",) if "l4_field_writes" in self.f else ())
        return [f for f in self.fields if f.write in ok]

    def nf(self, name: str, direction: str) -> list[str]:
        rng = self.rng
        lines: list[str] = []
        ann = self.annotation()
        lines.append(f"{ann}nf {name} {{")
        self.counters: list[tuple[str, int]] = []
        if self.on("counters", 0.6):
            for _ in range(rng.randint(1, 2)):
                c = self.fresh("c")
                size = rng.choice([1, 1, 4])
                self.counters.append((c, size))
                lines.append(f"    counter {c}[{size}];" if size > 1 else f"    counter {c};")
        self.actions: dict[str, list[tuple[str, Fld | str, int]]] = {}  # action → params (name, role, width)
        for _ in range(rng.randint(1, 4)):
            lines += self.action(self.fresh("a"))
        if self.encap_ok() and self.on("decap", 0.25):
            tun = rng.choice(["vxlan", "geneve"])
            a = self.fresh("dec")
            self.actions[a] = []
            lines.append(f"    action {a}() {{ {tun}_decap(); }}")
            self.decap_action = (a, tun)
        else:
            self.decap_action = None
        self.tables: list[str] = []
        for _ in range(rng.randint(0, 3)):
            lines += self.table(name, self.fresh("t"))
        self.applied: set[str] = set()
        body = self.block(1, rng.randint(1, 4))
        if "nested_encap" not in self.f and self.encap_ok() and self.on("encap", 0.3):
            # one encapsulation, of packets that are not tunnels yet, after everything else
            a = self.fresh("enc")
            params: list = []
            stmt = self.action_stmt_encap(params)
            self.actions[a] = params
            plist = ", ".join(f"{n}: bit<{w}>" for n, _r, w in params)
            lines.append(f"    action {a}({plist}) {{ {stmt} }}")
            body += ["if (!vxlan.isValid() && !geneve.isValid()) {", f"    {a}({', '.join(self.args(params))});",
                     "}"]
        if "vlan" in self.f and "vlan_overflow" not in self.f and self.push_ok(guarded=True) and rng.random() < 0.3:
            a = self.fresh("tag")
            vid = rng.randrange(4096)
            self.actions[a] = []
            lines.append(f"    action {a}() {{ push_vlan({vid}, {rng.randrange(8)}); }}")
            body += ["if (!vlan[1].isValid()) {", f"    {a}();", "}"]
        for t in self.tables:
            if t not in self.applied:
                body.append(f"{t}.apply();")
        lines.append("    apply {")
        lines += ["        " + s for s in body]
        lines.append("    }")
        lines.append("}")
        return lines

    def annotation(self) -> str:
        if not self.on("pins", 0.5):
            return ""
        kind = self.rng.choice(["pin", "pin", "prefer"])
        return f"@{kind}({self.rng.choice(['nic', 'hypervisor'])})\n"

    # ------------------------------------------------------------ actions
    def action(self, name: str) -> list[str]:
        rng = self.rng
        params: list[tuple[str, Fld | str, int]] = []
        body: list[str] = []
        for _ in range(rng.randint(1, 4)):
            s = self.action_stmt(params)
            if s:
                body.append(s)
        self.actions[name] = params
        plist = ", ".join(f"{n}: bit<{w}>" for n, _r, w in params)
        return [f"    action {name}({plist}) {{"] + ["        " + s for s in body] + ["    }"]

    def param(self, params, role: Fld | str, width: int) -> str:
        n = f"p{len(params)}"
        params.append((n, role, width))
        return n

    def action_stmt(self, params) -> str | None:
        """One statement of an action body (params may be added)."""
        rng = self.rng
        kinds = ["assign", "assign", "assign"]
        for feat, kind in (("forward", "forward"), ("to_hypervisor", "punt"), ("drop", "drop"), ("dec_ttl", "ttl"),
                           ("set_dscp", "dscp"), ("vlan", "vlan"), ("nested_encap", "encap"), ("counters", "count"),
                           ("unguarded_decap", "decap"), ("hash", "hash")):
            if feat in self.f:
                kinds.append(kind)
        k = rng.choice(kinds)
        if k == "assign":
            return self.assign(params)
        if k == "forward":
            if rng.random() < 0.5:
                return f"forward({self.param(params, 'port', 9)});"
            return f"forward({rng.choice(PORTS)});"
        if k == "punt":
            return f"to_hypervisor({rng.randrange(256)});" if rng.random() < 0.8 else "to_hypervisor();"
        if k == "drop":
            return "drop();" if rng.random() < 0.5 else None
        if k == "ttl":
            return "dec_ttl();"
        if k == "dscp":
            return f"set_dscp({rng.randrange(64) if rng.random() < 0.6 else self.param(params, 'dscp', 6)});"
        if k == "vlan":
            if not self.vlan_ok():
                return None
            if rng.random() < 0.5 or not self.push_ok(guarded=False):
                return "pop_vlan();"
            vid = rng.randrange(4096) if rng.random() < 0.6 else self.param(params, "vid", 12)
            return f"push_vlan({vid}, {rng.randrange(8)});" if rng.random() < 0.5 else f"push_vlan({vid});"
        if k == "encap" or k == "decap" and not self.encap_ok():
            return self.action_stmt_encap(params) if k == "encap" else None
        if k == "count":
            if not self.counters:
                return None
            c, size = rng.choice(self.counters)
            if "counter_index_field" in self.f and rng.random() < 0.2:  # an index from the packet, maybe too big
                idx = rng.choice([f for f in self.readable() if f.width <= 32])
                return f"count({c}, {idx.name});"
            return f"count({c});" if size == 1 or rng.random() < 0.3 else f"count({c}, {rng.randrange(size)});"
        if k == "decap":
            return f"{rng.choice(['vxlan', 'geneve'])}_decap();"
        if k == "hash":
            tgt = rng.choice([f for f in self.writable() if f.width <= 32])
            srcs = rng.sample([f.name for f in self.readable() if f.width <= 32], 2)
            return f"{tgt.name} = hash({', '.join(srcs)});"
        return None

    def push_ok(self, guarded: bool) -> bool:
        """push_vlan allowed here: anywhere with vlan_overflow, else only behind a !vlan[1].isValid()
        guard; never with a user header after Ethernet unless custom_header_vlan."""
        if self.custom is not None and self.custom.after == "ethernet" and "custom_header_vlan" not in self.f:
            return False
        if not self.vlan_ok():
            return False
        return guarded or "vlan_overflow" in self.f

    def vlan_ok(self) -> bool:
        """VLAN primitives in this program: not in a program with tunnels unless vlan_with_tunnels."""
        return not self.tunnel_prog or "vlan_with_tunnels" in self.f

    def encap_ok(self) -> bool:
        """Tunnel primitives in this program (encap and decap)."""
        return self.tunnel_prog and (self.custom is None or "custom_header_tunnel" in self.f)

    def action_stmt_encap(self, params) -> str | None:
        rng = self.rng
        if not self.encap_ok():
            return None
        tun = rng.choice(["vxlan", "geneve"])
        vni = rng.randrange(1 << 24) if rng.random() < 0.5 else self.param(params, "vni", 24)
        args = ["0x020000000a01", "0x020000000a02", "192.168.7.1", "192.168.7.2", str(vni)]
        if rng.random() < 0.3:
            args.append(str(rng.choice([1, 64, 255])))
            if self.on("encap_odd_port", 0.3):
                args.append(str(rng.choice([4789, 6081, 1000])))
        return f"{tun}_encap({', '.join(args)});"

    def assign(self, params) -> str:
        rng = self.rng
        tgt = rng.choice(self.writable())
        r = rng.random()
        if r < 0.3:
            return f"{tgt.name} = {literal(tgt, self.value(tgt), rng)};"
        if r < 0.5:
            w = rng.choice([w for w in (tgt.width, max(1, tgt.width // 2)) if w >= 1])
            return f"{tgt.name} = {self.param(params, tgt, w)};"
        if r < 0.65:
            srcs = [f for f in self.readable() if f.width <= tgt.width and f.kind in ("int", tgt.kind)]
            if srcs:
                return f"{tgt.name} = {rng.choice(srcs).name};"
        if "arith_assign" not in self.f:
            return f"{tgt.name} = {literal(tgt, self.value(tgt), rng)};"
        return f"{tgt.name} = {self.arith(tgt, params)};"

    def arith(self, tgt: Fld, params=None) -> str:
        """An arithmetic expression for `tgt` (operands: the target itself, or another field)."""
        rng = self.rng
        ops = ["+", "+", "-", "-", "*", "&", "|"]
        if "arith_shift" in self.f:
            ops += ["<<", ">>"]
        op = rng.choice(ops)
        left = tgt if rng.random() < 0.6 else rng.choice([f for f in self.readable() if f.kind == "int"])
        if op in ("<<", ">>"):
            right = str(rng.randint(0, 4))
        elif params is not None and rng.random() < 0.2:
            right = self.param(params, "arith", rng.choice([4, 8, 16]))
        else:
            right = str(rng.choice([1, 1, 2, 3, 7, 255, 256, 1000]))
        return f"{left.name} {op} {right}"

    # ------------------------------------------------------------ tables
    def table(self, nf: str, name: str) -> list[str]:
        rng = self.rng
        kinds = ["exact", "exact", "lpm", "ternary", "range", "optional"]
        keys: list[tuple[Fld, str]] = []
        used: set[str] = set()
        for _ in range(rng.randint(1, 3)):
            f = rng.choice(self.readable())
            if f.name in used:
                continue
            used.add(f.name)
            k = rng.choice(kinds)
            if k == "lpm" and (any(kk == "lpm" for _, kk in keys) or f.width % 8 and "lpm_odd_width" not in self.f):
                k = "exact"
            keys.append((f, k))
        plain = sorted(a for a in self.actions if not self.decap_action or a != self.decap_action[0])
        acts = rng.sample(plain, rng.randint(1, min(3, len(plain))))
        if self.decap_action and self.decap_action[0] not in acts and "unguarded_decap" in self.f \
                and rng.random() < 0.5:  # a table's decap action runs without a validity check
            acts.append(self.decap_action[0])
        default = rng.choice(acts)
        counters = "direct_counters" in self.f and rng.random() < 0.5
        ann = self.annotation().replace("\n", " ")
        lines = [f"    {ann}table {name} {{",
                 "        key = { " + " ".join(f"{f.name}: {k};" for f, k in keys) + " }",
                 "        actions = { " + " ".join(f"{a};" for a in acts) + " }",
                 f"        default_action = {default}({', '.join(self.args(self.actions[default]))});",
                 f"        size = {rng.choice([16, 64, 1024])};"]
        if counters:
            lines.append("        counters = true;")
        if self.on("idle_timeout", 0.1):
            lines.append("        idle_timeout = true;")
        lines.append("    }")
        self.tables.append(name)
        prio = any(k in ("ternary", "range", "optional") for _, k in keys)
        seen: set[tuple] = set()
        entries: list[str] = []
        priorities = rng.sample(range(1, 1000), 8)
        for i in range(rng.randint(0, 6)):
            texts, norm, aim = [], [], {}
            for f, k in keys:
                t, nk, v = self.key_value(f, k)
                texts.append(t)
                norm.append(nk)
                if v is not None:
                    aim[f.name] = v
            if tuple(norm) in seen:
                continue
            seen.add(tuple(norm))
            a = rng.choice(acts)
            pr = f" priority {priorities[i]}" if prio else ""
            entries.append(f"    ({', '.join(texts)}) => {a}({', '.join(self.args(self.actions[a]))}){pr};")
            self.aims.append(aim)
        if entries:
            self.entries += [f"entries {nf}.{name} {{", *entries, "}"]
        return lines

    def args(self, params) -> list[str]:
        out = []
        for _n, role, w in params:
            if role == "port":
                out.append(str(self.rng.choice(PORTS)))
            elif isinstance(role, Fld):
                v = self.value(role) & ((1 << w) - 1)
                out.append(str(v))
            else:
                out.append(str(self.rng.getrandbits(w)))
        return out

    def key_value(self, f: Fld, kind: str) -> tuple[str, tuple, int | None]:
        """(entry text, normalised key, a value that matches it) for one key."""
        rng, w = self.rng, f.width
        full = (1 << w) - 1
        v = self.value(f)
        if kind == "exact":
            return literal(f, v, rng), (v,), v
        if kind == "lpm":
            if f.kind in ("ipv4", "ipv6") and rng.random() < 0.8:
                plen = rng.choice([0, w // 4, w // 2, w - 8, w, rng.randint(0, w)])
                mask = (full >> (w - plen)) << (w - plen) if plen else 0
                pv = v & mask
                addr = ipaddress.IPv4Address(pv) if f.kind == "ipv4" else ipaddress.IPv6Address(pv)
                return f"{addr}/{plen}", (pv, plen), v
            if rng.random() < 0.2:
                return "_", (0, 0), None
            return literal(f, v, rng), (v, w), v
        if kind == "ternary":
            r = rng.random()
            if r < 0.15:
                return "_", ("t", 0, 0), None
            if r < 0.35:
                return literal(f, v, rng), ("t", v, full), v
            mask = rng.choice([full, full ^ 1, full >> 1, (full >> (w // 2)) << (w // 2), rng.getrandbits(w)])
            return f"{hex(v & mask)} &&& {hex(mask)}", ("t", v & mask, mask), v
        if kind == "range":
            if rng.random() < 0.15:
                return "_", ("r", 0, full), None
            lo = max(0, v - rng.choice([0, 1, 10]))
            hi = min(full, v + rng.choice([0, 1, 100]))
            return f"{lo}..{hi}", ("r", lo, hi), v
        # optional
        if rng.random() < 0.3:
            return "_", ("o", None), None
        return literal(f, v, rng), ("o", v), v

    # ------------------------------------------------------------ apply blocks
    def block(self, depth: int, n: int) -> list[str]:
        out: list[str] = []
        for _ in range(n):
            out += self.apply_stmt(depth)
        return out

    def apply_stmt(self, depth: int) -> list[str]:
        rng = self.rng
        free = [t for t in self.tables if t not in self.applied]
        r = rng.random()
        if free and r < 0.35:
            t = rng.choice(free)
            self.applied.add(t)
            return [f"{t}.apply();"]
        if depth < 3 and r < 0.75:
            if free and rng.random() < 0.35:
                t = rng.choice(free)
                self.applied.add(t)
                cond = f"{t}.apply().{rng.choice(['hit', 'miss'])}"
            elif self.decap_action and rng.random() < 0.3:
                tun = self.decap_action[1]
                return [f"if ({tun}.isValid()) {{", f"    {self.decap_action[0]}();", "}"]
            else:
                cond = self.cond(2)
            then = self.block(depth + 1, rng.randint(1, 2))
            out = [f"if ({cond}) {{"] + ["    " + s for s in then]
            if rng.random() < 0.5:
                els = self.block(depth + 1, rng.randint(1, 2))
                out += ["} else {"] + ["    " + s for s in els]
            return out + ["}"]
        callable_ = sorted(a for a in self.actions if "unguarded_decap" in self.f or not self.decap_action
                           or a != self.decap_action[0])
        if r < 0.9 and callable_:
            a = rng.choice(callable_)
            return [f"{a}({', '.join(self.args(self.actions[a]))});"]
        s = self.action_stmt([])  # no parameters in an apply block: a statement without them
        while s is None or "p0" in s:
            s = self.action_stmt([])
        return [s]

    def cond(self, depth: int) -> str:
        rng = self.rng
        r = rng.random()
        if depth > 0 and r < 0.2:
            op = rng.choice(["&&", "||"])
            return f"({self.cond(depth - 1)}) {op} ({self.cond(depth - 1)})"
        if depth > 0 and r < 0.27:
            return f"!({self.cond(depth - 1)})"
        if r < 0.5:
            inst = rng.choice(list(VALID_INSTANCES) + ([self.custom.inst] if self.custom else []))
            return f"{inst}.isValid()"
        if r < 0.52:
            return rng.choice(["true", "false"])
        f = rng.choice(self.readable())
        op = rng.choice(["==", "!=", "<", "<=", ">", ">="])
        if "arith_compare" in self.f and f.kind == "int" and rng.random() < 0.3:
            a = rng.choice(["+", "-"])
            c = rng.choice([1, 2, 255])
            k = rng.choice([v for v in (0, 1, 254, 255, 256) if v < 1 << f.width])  # fits the comparison's width
            return f"{f.name} {a} {c} {op} {k}"
        if rng.random() < 0.2:
            others = [g for g in self.readable() if g.width == f.width and g.name != f.name]
            if others:
                return f"{f.name} {op} {rng.choice(others).name}"
        return f"{f.name} {op} {literal(f, self.value(f), rng)}"


# ---------------------------------------------------------------- packets


class PacketGen:
    """Packets for one generated program: (port, frame bytes), aimed at its entries and values."""

    def __init__(self, gp: GenProgram, seed: int, feats: frozenset[str] | None = None):
        self.gp, self.rng = gp, random.Random(seed)
        self.f = feats if feats is not None else features()
        self.ports = sorted({"vm" if d == "vm_egress" else "uplink" for d in gp.directions.values()})

    def take(self, n: int) -> list[tuple[str, bytes]]:
        return [self.one(self.ports[i % len(self.ports)]) for i in range(n)]

    def want(self) -> dict[str, int]:
        """Field values: an entry's (now and then) plus values from the program's pools."""
        rng, gp = self.rng, self.gp
        w: dict[str, int] = {}
        if gp.aims and rng.random() < 0.7:
            for _ in range(rng.randint(1, 2)):
                for k, v in rng.choice(gp.aims).items():
                    w.setdefault(k, v)
        for name, pool in gp.pool.items():
            if name not in w and rng.random() < 0.4 and pool:
                w[name] = rng.choice(pool)
        return w

    def one(self, port: str) -> tuple[str, bytes]:
        from scapy.layers.inet import ICMP, IP, TCP, UDP
        from scapy.layers.inet6 import IPv6
        from scapy.layers.l2 import Dot1Q, Ether
        from scapy.layers.vxlan import VXLAN
        from scapy.packet import Raw

        rng, gp = self.rng, self.gp
        w = self.want()
        if port == "vm" and gp.flow_macs and rng.random() < 0.9:
            w["ethernet.src"] = rng.choice(gp.flow_macs)
        if port == "uplink" and gp.ingress_macs and rng.random() < 0.8:
            w["ethernet.dst"] = rng.choice(gp.ingress_macs)
        custom = gp.custom

        def g(name: str, default):
            return w.get(name, default)

        def custom_bytes(nt: int | None) -> bytes:
            assert custom is not None
            v = 0
            for n, fw in custom.fields:
                x = nt if n == "nt" and nt is not None else g(f"{custom.inst}.{n}", rng.getrandbits(fw))
                v = (v << fw) | (x & ((1 << fw) - 1))
            return v.to_bytes(custom.size, "big")

        made = {"tunnel": False}

        def l3l4(prefix: str, depth: int):
            """IP + L4 (+ a tunnel when depth 0 and the dice say so) for instance prefix ''/'inner_'."""
            if prefix == "":
                six = (f"{prefix}ipv6.src" in w or rng.random() < 0.35) and f"{prefix}ipv4.src" not in w
            else:  # inner IPv6 takes the values aimed at ipv6.*, which name the inner header after a decap
                six = rng.random() < 0.3
            if six:
                ip = IPv6(src=str(ipaddress.IPv6Address(g("ipv6.src", 0xFD00 << 112 | 1))),
                          dst=str(ipaddress.IPv6Address(g("ipv6.dst", 0xFD00 << 112 | 2))),
                          hlim=g("ipv6.hop_limit", rng.choice([0, 1, 2, 64, 255])),
                          tc=g("ipv6.traffic_class", 0), fl=g("ipv6.flow_label", 0))
                proto = g("ipv6.next_hdr", None)
            else:
                ip = IP(src=str(ipaddress.IPv4Address(g(f"{prefix}ipv4.src", 0x0A000001))),
                        dst=str(ipaddress.IPv4Address(g(f"{prefix}ipv4.dst", 0x0A000002))),
                        ttl=g(f"{prefix}ipv4.ttl", rng.choice([0, 1, 2, 64, 255])),
                        tos=(g(f"{prefix}ipv4.dscp", 0) << 2) | g(f"{prefix}ipv4.ecn", 0),
                        id=g(f"{prefix}ipv4.identification", 1))
                if rng.random() < 0.1:
                    ip.options = b"\x01\x01\x01\x00"
                proto = g(f"{prefix}ipv4.protocol", None)
            if proto is None:
                proto = rng.choice([6, 6, 17, 17, 1 if not six else 58, 47])
            l4src = g("meta.l4_src", None)
            l4dst = g("meta.l4_dst", None)
            if proto == 6:
                l4 = TCP(sport=g("tcp.src_port", l4src or rng.choice([80, 443, 40000])),
                         dport=g("tcp.dst_port", l4dst or rng.choice([80, 443, 22])),
                         flags=g("tcp.flags", rng.choice([2, 16, 24])), window=g("tcp.window", 8192))
                size = rng.randint(0, 24)
                if "tso" in self.f and prefix == "" and rng.random() < 0.15:
                    size = rng.randint(1400, 4000)  # a super-packet for a segment stage (or an oversize drop)
                body = l4 / Raw(bytes((i * 7 + size) & 0xFF for i in range(size)))
            elif proto == 17:
                dport = g("udp.dst_port", l4dst or rng.choice([53, 123, 40000]))
                choices = ["plain"]
                if depth == 0:
                    choices += ["vxlan", "geneve"]
                if custom is not None and custom.after == "udp":
                    choices += ["custom", "custom"]
                shape = rng.choice(choices)
                if shape == "vxlan":
                    dport = 4789
                elif shape == "geneve":
                    dport = 6081
                elif shape == "custom":
                    dport = custom.selector
                l4 = UDP(sport=g("udp.src_port", l4src or rng.choice([53, 50000])), dport=dport)
                if dport in (4789, 6081) and depth == 0:
                    made["tunnel"] = True
                if dport == 4789 and depth == 0:
                    body = l4 / VXLAN(vni=g("vxlan.vni", rng.choice([5001, 7])), flags=0x08) / inner()
                    l4.chksum = 0
                elif dport == 6081 and depth == 0:
                    opt = rng.choice([0, 0, 1, 2])  # option words
                    gen = bytes((opt, 0, 0x65, 0x58)) + (g("geneve.vni", 7001) << 8).to_bytes(4, "big") + \
                        rng.randbytes(4 * opt)
                    body = l4 / Raw(gen) / inner()
                    l4.chksum = 0
                elif custom is not None and custom.after == "udp" and dport == custom.selector:
                    body = l4 / Raw(custom_bytes(None)) / Raw(rng.randbytes(rng.randint(0, 16)))
                else:
                    body = l4 / Raw(rng.randbytes(rng.randint(0, 24)))
            elif proto in (1, 58):
                if six and proto == 58:
                    from scapy.layers.inet6 import ICMPv6EchoRequest
                    body = ICMPv6EchoRequest()
                else:
                    body = ICMP(type=g("icmp.type", 8), code=g("icmp.code", 0))
                    if six:
                        ip.nh = proto
                if not six and proto == 58:
                    ip.proto = 58
            else:
                body = Raw(rng.randbytes(rng.randint(0, 20)))
                if six:
                    ip.nh = proto
                else:
                    ip.proto = proto
            return ip / body

        def inner():
            return Ether(src="02:00:00:00:0b:01", dst="02:00:00:00:0b:02") / l3l4("inner_", 1)

        eth = Ether(src=_mac(g("ethernet.src", 0x020000000001)), dst=_mac(g("ethernet.dst", 0x020000000002)))
        r = rng.random()
        if r < 0.08:
            frame = bytes(eth / Raw(rng.randbytes(30)))
            frame = frame[:12] + rng.choice([b"\x88\xcc", b"\x08\x06"]) + frame[14:]
        else:
            l3 = l3l4("", 0)
            etype = 0x86DD if isinstance(l3, IPv6) else 0x0800
            use_custom = custom is not None and custom.after == "ethernet" and rng.random() < 0.5
            tags = rng.choice([0, 0, 0, 1, 1, 2])
            if "tagged_tunnels" not in self.f and made["tunnel"]:
                tags = 0
            if "custom_header_vlan" not in self.f and use_custom:
                tags = 0
            frame_tail = bytes(l3)
            if use_custom:
                frame_tail = custom_bytes(etype) + frame_tail
                etype = custom.selector
            for i in range(tags):
                vid = g("vlan[0].vid", rng.randrange(1, 4095)) if i == tags - 1 else rng.randrange(1, 4095)
                pcp = g("vlan[0].pcp", 0) if i == tags - 1 else 0
                frame_tail = bytes(Dot1Q(prio=pcp, vlan=vid, type=etype))[:4] + frame_tail
                etype = 0x8100
            frame = bytes(eth)[:12] + etype.to_bytes(2, "big") + frame_tail
        if "malformed" in self.f and rng.random() < 0.04:
            if rng.random() < 0.5:
                frame = frame[: rng.randint(10, max(11, len(frame) - 1))]
            elif len(frame) > 30 and frame[12:14] == b"\x08\x00":
                b = bytearray(frame)
                b[24] ^= 0xFF  # the IPv4 header checksum of an untagged IPv4 frame
                frame = bytes(b)
        if "bad_l4_checksum" in self.f and rng.random() < 0.05 and len(frame) > 60:
            frame = frame[:-1] + bytes((frame[-1] ^ 0x5A,))  # the payload: TCP/UDP checksums no longer verify
        return port, frame


# ---------------------------------------------------------------- running


@dataclass
class Outcome:
    outputs: list[tuple]  # (kind, port or slow-path code, bytes)
    drops: Counter
    counters: dict[tuple, tuple[int, int]]  # ("ctr", nf, name, cell) / ("direct", table, order) → (packets, bytes)


def _normal(outputs) -> list[tuple]:
    return [(o.kind, o.port if o.kind == "port" else o.code if o.kind == "slow_path" else None, o.data)
            for o in outputs]


def _direction(port: str) -> str:
    return "vm_egress" if port == "vm" else "vm_ingress"


def _pipeline_for(prog, port: str) -> str:
    direction = "vm_egress" if port == "vm" else "vm_ingress"
    return next(name for name, pl in prog.pipelines.items() if pl.direction == direction)


class SplitModel:
    """The split (NIC + hypervisor) in Python: the hypervisor's stages in one HypervisorPipeline,
    the NIC's in another (`side=NIC`, a Python model of the NIC program), packets handed over at
    the placement's crossings with their resume stage and metadata.

    `send(port_name, frame)` ("vm" or "uplink") → [(kind, port, bytes)]: kind "uplink" / "vm" /
    "port" (port = the NIC port) / "slow_path" (port = the to_hypervisor() code) / "loop" (the
    packet crossed too many times). Meant to be replaceable by a library dispatcher."""

    MAX_CROSSINGS = 64

    def __init__(self, prog, g, placement):
        from p4gen.place import HYP, NIC
        from p4gen.runtime.pipeline import HypervisorPipeline

        self.prog, self.placement = prog, placement
        ports = placement.problem.nic.ports
        self.side = {HYP: HypervisorPipeline(prog, g, placement.assignment, HYP, ports=ports),
                     NIC: HypervisorPipeline(prog, g, placement.assignment, NIC, ports=ports)}
        self.start = {name: ends[0] for name, ends in placement.problem.pipelines.items()}
        self.crossings = 0

    def send(self, port_name: str, frame: bytes) -> list[tuple]:
        from p4gen.place import HYP, NIC

        pipeline = _pipeline_for(self.prog, port_name)
        pending, done, hops = [(self.start[pipeline], frame, None, None, None, {})], [], 0
        first = True
        while pending:
            where, data, resume, meta, port, extra = pending.pop(0)
            if first and hasattr(self.side[where], "run_direction"):
                # the first pipeline of the direction whose flows match takes the packet
                pipeline, outputs = self.side[where].run_direction(_direction(port_name), data)
            else:
                outputs = self.side[where].run(pipeline, data, resume, meta, port=port, **extra)
            first = False
            for o in outputs:
                if o.kind in ("to_nic", "to_hypervisor"):
                    hops += 1
                    self.crossings += 1
                    if hops > self.MAX_CROSSINGS:
                        done.append(("loop", None, b""))
                        continue
                    pending.append((NIC if o.kind == "to_nic" else HYP, o.data, o.resume, o.meta, o.port,
                                    self._carried(o)))
                else:
                    done += _normal([o])
        return done

    # Crossing state beyond metadata and port that the runtime hands over (p4gen.crossing), passed
    # on when this version of HypervisorPipeline.run takes it.
    CARRIED = ("l4_dirty",)

    def _carried(self, o) -> dict:
        import inspect

        if not hasattr(self, "_run_params"):
            self._run_params = set(inspect.signature(next(iter(self.side.values())).run).parameters)
        return {k: getattr(o, k) for k in self.CARRIED if k in self._run_params and hasattr(o, k)}

    @property
    def drops(self) -> Counter:
        return sum((Counter(s.drops) for s in self.side.values()), Counter())

    def counters(self) -> dict[tuple, tuple[int, int]]:
        return _counters(list(self.side.values()))


class SoftwareModel:
    """The all-software reference with the same interface as SplitModel: the full path for
    every packet (no flow cache), so that the split, which caches, is checked against it."""

    def __init__(self, prog, g):
        from p4gen.runtime.pipeline import HypervisorPipeline

        self.prog, self.hv = prog, HypervisorPipeline(prog, g, flow_cache=0)

    def send(self, port_name: str, frame: bytes) -> list[tuple]:
        if hasattr(self.hv, "run_direction"):
            return _normal(self.hv.run_direction(_direction(port_name), frame)[1])
        return _normal(self.hv.run(_pipeline_for(self.prog, port_name), frame))

    @property
    def drops(self) -> Counter:
        return Counter(self.hv.drops)

    def counters(self) -> dict[tuple, tuple[int, int]]:
        return _counters([self.hv])


def _counters(sides) -> dict[tuple, tuple[int, int]]:
    out: dict[tuple, list[int]] = {}
    for hv in sides:
        for (nf, name), cells in hv.counters.items():
            for i, (p, b) in enumerate(cells):
                c = out.setdefault(("ctr", nf, name, i), [0, 0])
                c[0] += p
                c[1] += b
        for tname, t in hv.tables.items():
            for e in t.entries:
                c = out.setdefault(("direct", tname, e.order), [0, 0])
                c[0] += e.packets
                c[1] += e.bytes
    return {k: (v[0], v[1]) for k, v in out.items()}


@dataclass
class Divergence:
    text: str
    profile: str
    packets: list[tuple[str, bytes]]
    what: str  # "outputs" | "drops" | "counters" | "crash"
    index: int  # the packet that first diverged (outputs), or -1
    expected: object
    got: object
    assignment: dict[str, str] = field(default_factory=dict)
    how: str = "split"  # "split" (SplitModel) | "model_target" (p4gen.testing.ModelTarget)

    def report(self) -> str:
        lines = [f"DIVERGENCE ({self.what}, {self.how}) on {self.profile}", "---- program", self.text.rstrip(),
                 "---- placement"]
        lines += [f"  {k}: {v}" for k, v in self.assignment.items() if not k.endswith(("/parse", "/classify"))]
        pk = self.packets if self.index < 0 else [self.packets[self.index]]
        lines.append("---- packet(s)")
        for port, frame in pk[:5]:
            lines.append(f"  into {port}: {frame.hex()}")
            lines.append(f"    {_summary(frame)}")
        lines += ["---- expected (software)", f"  {_show(self.expected)}", "---- got (split)", f"  {_show(self.got)}"]
        return "\n".join(lines)


def _summary(frame: bytes) -> str:
    try:
        from scapy.layers.l2 import Ether

        return Ether(frame).summary()
    except Exception as e:  # noqa: BLE001 - a summary is best effort
        return f"(scapy: {e})"


def _show(x) -> str:
    if isinstance(x, list):
        return "\n  ".join(f"{k} {p} {d.hex()}  [{_summary(d) if d else ''}]" for k, p, d in x) or "(nothing)"
    return repr(x)


def _crash(e: BaseException) -> str:
    """An exception and where it was raised (the innermost frame of p4gen)."""
    import traceback

    frames = [f for f in traceback.extract_tb(e.__traceback__) if "p4gen" in f.filename]
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno} ({frames[-1].line})" if frames else ""
    return f"{e!r}{where}"


class Rejected(Exception):
    pass


def load(text: str):
    """Check a program with p4gen's own front end; (Program, IR graph) or Rejected."""
    from p4gen.frontend import check_source
    from p4gen.ir import build_ir

    prog, sink = check_source("<progfuzz>", text.encode())
    if prog is None:
        raise Rejected(sink.render() if hasattr(sink, "render") else str(sink))
    return prog, build_ir(prog)


def placed(prog, g, profile: str):
    """The placement on a NIC profile, or None when the pins cannot be met on it."""
    from p4gen.place import Infeasible, load_profile, place

    try:
        return place(g, prog, load_profile(ROOT / profile), explain=False)
    except Infeasible:
        return None


def compare(prog, g, pl, packets: list[tuple[str, bytes]], text: str = "", profile: str = "",
            stop_at_first: bool = True, counter_bytes: bool = True) -> list[Divergence]:
    """Run `packets` through software and through the split; the differences."""
    soft, split = SoftwareModel(prog, g), SplitModel(prog, g, pl)
    out: list[Divergence] = []
    for i, (port, frame) in enumerate(packets):
        try:
            want = soft.send(port, frame)
        except Exception as e:  # noqa: BLE001 - a crash of the reference is reported, not raised
            out.append(Divergence(text, profile, packets, "crash(software)", i, _crash(e), None, pl.assignment))
            return out
        try:
            got = split.send(port, frame)
        except Exception as e:  # noqa: BLE001
            out.append(Divergence(text, profile, packets, "crash(split)", i, want, _crash(e), pl.assignment))
            return out
        if want != got:
            out.append(Divergence(text, profile, packets, "outputs", i, want, got, pl.assignment))
            if stop_at_first:
                return out
    if sum(soft.drops.values()) != sum(split.drops.values()):
        out.append(Divergence(text, profile, packets, "drops", -1, dict(soft.drops), dict(split.drops),
                              pl.assignment))
    a, b = soft.counters(), split.counters()
    if not counter_bytes:
        a, b = ({k: (v[0], 0) for k, v in x.items()} for x in (a, b))
    diff = {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
    if diff:
        packets_differ = any((x or (0, 0))[0] != (y or (0, 0))[0] for x, y in diff.values())
        what = "counters" if packets_differ else "counter bytes"
        out.append(Divergence(text, profile, packets, what, -1, {k: v[0] for k, v in diff.items()},
                              {k: v[1] for k, v in diff.items()}, pl.assignment))
    return out


def diverges(text: str, profile: str, packets: list[tuple[str, bytes]], counter_bytes: bool = True,
             how: str = "split") -> list[Divergence]:
    """Load, place and compare; [] when the program is rejected or cannot be placed."""
    try:
        prog, g = load(text)
    except Rejected:
        return []
    pl = placed(prog, g, profile)
    if pl is None:
        return []
    if how == "model_target":
        found = model_target_check(prog, g, pl, packets, text, profile)
        for d in found:
            d.how = how
        return found
    return compare(prog, g, pl, packets, text, profile, counter_bytes=counter_bytes)


def _block_end(lines: list[str], i: int) -> int:
    """The line closing the block that line i opens (braces counted)."""
    depth = 0
    for j in range(i, len(lines)):
        depth += lines[j].count("{") - lines[j].count("}")
        if depth <= 0:
            return j
    return len(lines) - 1


def _candidates(lines: list[str]):
    """Smaller versions of a program, coarse first: whole nfs, entries blocks, tables and
    actions, then ifs (unwrapped to their then arm, or removed), then single statements."""
    ranked: list[tuple[int, int, list[str]]] = []
    fixed: set[int] = set()  # the parser, header and metadata declarations stay as they are
    for i, line in enumerate(lines):
        if line.startswith(("parser", "header", "metadata", "packet")):
            fixed.update(range(i, _block_end(lines, i) + 1))
    for i in range(len(lines) - 1, -1, -1):
        if i in fixed:
            continue
        s = lines[i].strip()
        words = s.split()
        if s.endswith("{") and not s.startswith(("parser", "override state", "metadata", "header", "packet")):
            j = _block_end(lines, i)
            cand = lines[:i] + lines[j + 1:]
            rank = 3
            if s.startswith("} else"):  # drop an else arm: keep the closing brace
                cand, rank = lines[:i] + ["}"] + lines[j + 1:], 3
            elif words[0] == "nf" or words[0].startswith("@") and "nf" in words:
                name = words[words.index("nf") + 1]
                cand = [ln.replace(f"{name} -> ", "").replace(f" -> {name};", ";")
                        if ln.startswith("pipeline") else ln for ln in cand]
                if i > 0 and lines[i - 1].startswith("@"):
                    cand = cand[:i - 1] + cand[i:]
                rank = 0
            elif words[0] == "entries":
                rank = 1
            elif "table" in words or "action" in words:
                rank = 2
            elif s.startswith("if (") and not s.startswith(("if (vxlan.isValid", "if (geneve.isValid", "if (!vlan[1]",
                                                             "if (!vxlan.isValid")):
                # keep the then arm only, without the if around it (a decap keeps its guard)
                depth, k = 0, i
                for k in range(i, j + 1):
                    depth += lines[k].count("{") - lines[k].count("}")
                    if k > i and depth == 1 and lines[k].strip().startswith("} else"):
                        break
                ranked.append((3, -i, lines[:i] + lines[i + 1:k if k < j else j] + lines[j + 1:]))
            ranked.append((rank, -i, cand))
        elif s.endswith(";") and not s.startswith(("key =", "actions =", "default_action", "size =", "pipeline",
                                                   "header", "packet", "counter", "const", "extract", "meta.l4",
                                                   "transition")):
            ranked.append((4, -i, lines[:i] + lines[i + 1:]))
    ranked.sort(key=lambda x: (x[0], x[1]))
    for _r, _i, cand in ranked:
        yield cand


def shrink(d: Divergence, budget: float = 20.0) -> Divergence:
    """A smaller case with a divergence of the same kind: the one packet first, then blocks,
    statements and entries removed while it still diverges (greedy, within `budget` seconds)."""
    end = time.monotonic() + budget
    same: list[Divergence] = []
    for packets in ([[d.packets[d.index]]] if d.index >= 0 else [[p] for p in d.packets]):
        same = [x for x in diverges(d.text, d.profile, packets, how=d.how) if x.what == d.what]
        if same:
            break
    if not same:
        packets, same = d.packets, [d]
    best = same[0]
    lines = best.text.splitlines()
    progress = True
    while progress and time.monotonic() < end:
        progress = False
        for cand in _candidates(lines):
            if time.monotonic() > end:
                break
            text = "\n".join(cand) + "\n"
            got = [x for x in diverges(text, d.profile, packets, how=d.how) if x.what == d.what]
            if got:
                lines, best, progress = cand, got[0], True
                break
    return best


# ---------------------------------------------------------------- whole targets (p4gen.testing)

OUT_QUEUES = ("uplink", "vm", "slow_path")


def target_queues(target, ports) -> dict[str, list[bytes]]:
    """What a p4gen.testing target delivered since the last call, per queue (empty ones left out)."""
    out = {}
    for q in (*OUT_QUEUES, *(f"port{n}" for n in ports)):
        got = target.received(q)
        if got:
            out[q] = got
    return out


def target_counters(prog, target) -> dict[tuple, int]:
    """Every indirect counter cell's packet count, through the target's own counter()."""
    return {(nf, c.name, i): target.counter(nf, c.name, i) for nf, n in prog.nfs.items()
            for c in n.counters.values() for i in range(c.size or 1)}


def compare_targets(prog, reference, target, packets: list[tuple[str, bytes]], text: str = "", profile: str = "",
                    assignment=None, counters: bool = True) -> list[Divergence]:
    """Software target vs another p4gen.testing target (ModelTarget, Bmv2Target): the packets on
    every queue, per packet; then the drop totals and every DSL counter's packet count."""
    ports = set(PORTS) | {0}
    for i, (port, frame) in enumerate(packets):
        reference.send(port, frame)
        try:
            target.send(port, frame)
        except Exception as e:  # noqa: BLE001 - a crash (or a dead switch) is reported with the case
            return [Divergence(text, profile, packets, "crash(target)", i, None, _crash(e), assignment or {})]
        want, got = target_queues(reference, ports), target_queues(target, ports)
        if want != got:
            return [Divergence(text, profile, packets, "outputs", i, _flat(want), _flat(got), assignment or {})]
    out = []
    if sum(reference.drops.values()) != sum(target.drops.values()):
        out.append(Divergence(text, profile, packets, "drops", -1, dict(reference.drops), dict(target.drops),
                              assignment or {}))
    if counters:
        a, b = target_counters(prog, reference), target_counters(prog, target)
        if a != b:
            diff = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
            out.append(Divergence(text, profile, packets, "counters", -1, {k: v[0] for k, v in diff.items()},
                                  {k: v[1] for k, v in diff.items()}, assignment or {}))
    return out


def _flat(queues: dict[str, list[bytes]]) -> list[tuple]:
    return [(q, None, d) for q, ds in sorted(queues.items()) for d in ds]


def model_target_check(prog, g, pl, packets, text: str = "", profile: str = "") -> list[Divergence]:
    """The library's own split model (p4gen.testing.ModelTarget, over real p4gen_t frames) vs
    software; also exercises the punt header's encoding, which SplitModel skips."""
    from p4gen.testing import ModelTarget, SoftwareTarget

    ref = SoftwareTarget(prog, g, pl.problem.nic.ports.uplink if pl.problem.nic else 0, flow_cache=0)
    return compare_targets(prog, ref, ModelTarget(prog, g, pl), packets, text, profile, pl.assignment)


# ---------------------------------------------------------------- known divergences


def _eth():
    from scapy.layers.l2 import Ether

    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def _pk_udp4(ttl: int = 64) -> bytes:
    from scapy.layers.inet import IP, UDP
    from scapy.packet import Raw

    return bytes(_eth() / IP(src="10.0.0.1", dst="10.0.0.2", ttl=ttl) / UDP(sport=1, dport=2) / Raw(b"x"))


def _pk_tcp4() -> bytes:
    from scapy.layers.inet import IP, TCP
    from scapy.packet import Raw

    return bytes(_eth() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1000, dport=80, window=100) / Raw(b"x"))


def _pk_double_tagged() -> bytes:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Dot1Q
    from scapy.packet import Raw

    return bytes(_eth() / Dot1Q(vlan=1) / Dot1Q(vlan=2) / IP(src="10.0.0.1", dst="10.0.0.2") /
                 UDP(sport=1, dport=2) / Raw(b"x"))


def _pk_custom_tag() -> bytes:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x88B5) / Raw(b"\x00\x07\x08\x00") /
                 IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) / Raw(b"x"))


def _pk_tagged_custom() -> bytes:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Dot1Q
    from scapy.packet import Raw

    return bytes(_eth() / Dot1Q(vlan=5, type=0x88B5) / Raw(b"\x00\x07\x08\x00") / IP(src="10.0.0.1", dst="10.0.0.2") /
                 UDP(sport=1, dport=2) / Raw(b"x"))


def _pk_lldp() -> bytes:
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x88CC) / Raw(bytes(range(30))))


def _pk_vxlan_bad_inner_checksum() -> bytes:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN
    from scapy.packet import Raw

    return bytes(_eth() / IP(src="192.168.1.2", dst="192.168.1.1") / UDP(sport=50000, dport=4789) / VXLAN(vni=5) /
                 Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5, dport=6, chksum=0x1234) /
                 Raw(b"hello"))


def _pk_tagged_vxlan() -> bytes:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Dot1Q, Ether
    from scapy.layers.vxlan import VXLAN
    from scapy.packet import Raw

    return bytes(_eth() / Dot1Q(vlan=100) / IP(src="192.168.1.2", dst="192.168.1.1") /
                 UDP(sport=50000, dport=4789, chksum=0) / VXLAN(vni=5001) /
                 Ether(src="02:00:00:00:0b:01", dst="02:00:00:00:0b:02") / IP(src="10.0.0.1", dst="10.0.0.2") /
                 UDP(sport=1, dport=2) / Raw(b"x"))


@dataclass(frozen=True)
class KnownBug:
    """A bug the fuzzer found, as a minimal program and packets.

    check: "split" (the split must equal software on both NIC profiles, through SplitModel
    and through p4gen.testing.ModelTarget), "no_crash" (the software run must not raise),
    "delivers" (the software target must deliver each packet somewhere),
    "v1model_drop" (the software run must drop the packets, as v1model does), "accepts" (the
    front end must accept the program). status: "open", or "fixed in <commit>"."""

    id: str
    title: str
    wrong: str  # which side is wrong w.r.t. P4/v1model semantics, in the finder's judgment
    program: str
    packets: tuple  # (port, callable → frame bytes)
    check: str
    status: str = "open"
    counter_bytes: bool = False  # compare counters' byte counts too (only the bug about them does)

    def frames(self) -> list[tuple[str, bytes]]:
        return [(port, make()) for port, make in self.packets]

    @property
    def is_open(self) -> bool:
        return self.status == "open"


KNOWN_DIVERGENCES: list[KnownBug] = [
    KnownBug(
        "forward-lost-on-crossing",
        "forward(port) in a hypervisor stage followed by a NIC stage: the port was lost at the crossing "
        "(the packet left on the uplink instead of port 3)",
        "split (the egress port chosen by forward() must survive later stages, as in one v1model pass)",
        """@pin(hypervisor)
nf a { action fwd() { forward(3); } apply { fwd(); } }
@pin(nic)
nf b { counter seen; action n() { count(seen); } apply { n(); } }
pipeline pe : vm_egress { a -> b; }
""", (("vm", _pk_udp4),), "split", "fixed in 65df585 (found by progfuzz on 111307e)"),
    KnownBug(
        "unbounded-arith-compare",
        "ipv4.ttl + 1 == 0 with ttl 255 was false in Python (unbounded integers) while P4 wraps bit<8> to 0",
        "software (hypervisor pipeline and the NIC model: P4 arithmetic wraps at the width)",
        """nf a { action d() { drop(); } apply { if (ipv4.ttl + 1 == 0) { d(); } } }
pipeline pe : vm_egress { a; }
""", (("vm", lambda: _pk_udp4(255)),), "v1model_drop", "fixed in acc9ae3"),
    KnownBug(
        "shift-operators-unparsable",
        "'<<' and '>>', in the grammar's MULOP, did not lex: meta.m = meta.m << 1; was a syntax error",
        "front end (the grammar documents shifts)",
        """metadata { m: bit<8>; }
nf a { action s() { meta.m = meta.m << 1; ipv4.ttl = ipv4.ttl >> 1; } apply { s(); } }
pipeline pe : vm_egress { a; }
""", (), "accepts", "fixed in acc9ae3 (found by progfuzz on 111307e)"),
    KnownBug(
        "decap-without-tunnel",
        "vxlan_decap() on a packet without VXLAN moves the (invalid) inner headers out: Ethernet/IPv4/UDP "
        "vanish and software sends a 1-byte frame; the split re-parses it at the crossing and drops it",
        "both targets' decap (software is the reference, but a decap without the tunnel should leave the "
        "packet alone, or the checker should require a vxlan.isValid() guard)",
        """@pin(nic)
nf a { action dec() { vxlan_decap(); } apply { dec(); } }
@pin(hypervisor)
nf b { counter seen; action n() { count(seen); } apply { n(); } }
pipeline pe : vm_egress { a -> b; }
""", (("vm", _pk_udp4),), "split", "fixed in e55e1a3 (found by progfuzz)"),
    KnownBug(
        "decap-without-tunnel-crash",
        "after a decap of a packet without the tunnel, push_vlan() (or a following encap of a tagged "
        "packet) raises TypeError in the hypervisor pipeline (it writes ethernet.ether_type of a missing "
        "Ethernet header)",
        "software (a valid program and packet must never raise; v1model ignores writes to invalid headers)",
        """nf a { action dec() { vxlan_decap(); } action tag() { push_vlan(7); } apply { dec(); tag(); } }
pipeline pe : vm_egress { a; }
""", (("vm", _pk_udp4),), "no_crash", "fixed in 9a3601a (found by progfuzz)"),
    KnownBug(
        "decap-keeps-outer-vlan",
        "decapsulating an 802.1Q-tagged VXLAN packet keeps the outer tag: the result is the inner Ethernet "
        "(EtherType 0x0800) followed by the tag's 4 bytes and then IPv4, a corrupt frame that the split "
        "re-parses as a bad IPv4 header and drops, while software delivers it",
        "both targets' decap (the outer tags belong to the outer headers it removes, as encap removes the "
        "inner tags); the split's drop is the consequence",
        """@pin(nic)
nf a { action dec() { vxlan_decap(); } apply { if (vxlan.isValid()) { dec(); } } }
@pin(hypervisor)
nf b { counter seen; action n() { count(seen); } apply { n(); } }
pipeline pi : vm_ingress { a -> b; }
""", (("uplink", _pk_tagged_vxlan),), "split", "fixed in 9a3601a (found by progfuzz)"),
    KnownBug(
        "reparse-after-rewrite",
        "a crossing re-parses the frame, so a rewrite of a field the parser selects on (ipv4.protocol, "
        "ether_type, udp.dst_port, an encap to an unusual UDP port, a pop_vlan that uncovers a custom "
        "EtherType) changes which headers exist after the crossing: here tcp.window = 7 in the hypervisor "
        "is lost because the NIC set ipv4.protocol = 17 and the hypervisor parsed UDP",
        "split (within one v1model pass the header set does not change when a field is rewritten)",
        """@pin(nic)
nf a { action p() { ipv4.protocol = 17; } apply { p(); } }
@pin(hypervisor)
nf b { action w() { tcp.window = 7; } apply { w(); } }
pipeline pe : vm_egress { a -> b; }
""", (("vm", _pk_tcp4),), "split"),
    KnownBug(
        "counter-bytes-after-crossing",
        "counters after a crossing count the bytes of the frame as it crossed (after push_vlan: +4 bytes; "
        "on BMv2 also the p4gen_t header), software counts the packet as it entered (v1model "
        "packet_length)",
        "split (the byte counts of a counter must not depend on the placement)",
        """@pin(hypervisor)
nf a { action t() { push_vlan(5); } apply { t(); } }
@pin(nic)
nf b { counter seen; action n() { count(seen); } apply { n(); } }
pipeline pe : vm_egress { a -> b; }
""", (("vm", _pk_udp4),), "split", counter_bytes=True),
]


KNOWN_DIVERGENCES += [
    KnownBug(
        "nested-encap",
        "an encapsulation of a packet that already has a tunnel (a second encap, or an encap of a received "
        "VXLAN/Geneve packet) overwrites the inner headers with the outer ones and leaves the first tunnel "
        "header in place: Ethernet/IPv4/UDP(6081)/VXLAN/Geneve/…, the original Ethernet and IPv4 lost; after "
        "a crossing the re-parse reads that as different headers",
        "both targets' encap (a new outer header must be pushed in front of the whole packet); the split "
        "then diverges from software",
        """@pin(nic)
nf a {
    action e() {
        vxlan_encap(0x020000000a01, 0x020000000a02, 192.168.7.1, 192.168.7.2, 5001);
        geneve_encap(0x020000000b01, 0x020000000b02, 192.168.8.1, 192.168.8.2, 7001);
    }
    apply { e(); }
}
@pin(hypervisor)
nf b { action w() { inner_ipv4.ttl = 9; } apply { w(); } }
pipeline pe : vm_egress { a -> b; }
""", (("vm", _pk_udp4),), "split", "fixed in e55e1a3 (found by progfuzz)"),
    KnownBug(
        "tunnel-leaves-custom-header",
        "encap and decap do not move a user header (here after Ethernet, EtherType 0x88b5): after an encap "
        "the frame is outer Ethernet / user header / outer IPv4 … / inner Ethernet (0x88b5) / inner IPv4; "
        "after a decap the inner Ethernet (0x0800) is followed by the outer packet's user header; corrupt "
        "frames that the split's re-parse drops",
        "both targets' encap/decap (user headers between Ethernet and IP belong to the packet they sit in)",
        """header h_x1 { f0: bit<16>; nt: bit<16>; }
packet { x1: h_x1; }
parser {
    override state start {
        extract(ethernet);
        transition select(ethernet.ether_type) {
            0x88b5: s_x1; 0x8100: vlan; 0x0800: ipv4; 0x86dd: ipv6; default: accept;
        }
    }
    state s_x1 { extract(x1); transition select(x1.nt) { 0x0800: ipv4; 0x86dd: ipv6; default: accept; } }
}
@pin(nic)
nf a { action e() { vxlan_encap(0x020000000a01, 0x020000000a02, 192.168.7.1, 192.168.7.2, 5001); } apply { e(); } }
@pin(hypervisor)
nf b { action w() { inner_ipv4.ttl = 9; } apply { w(); } }
pipeline pe : vm_egress { a -> b; }
""", (("vm", _pk_custom_tag),), "split", "fixed in 28966be (unmovable_header drop on both targets)"),
    KnownBug(
        "push-vlan-full-stack",
        "push_vlan() on a packet that has two tags (vlan[2] is full) shifts the inner tag out but keeps the "
        "EtherType chain: the middle tag now says 0x8100 in front of IPv4; software sends that corrupt frame, "
        "the split's re-parse sees a third tag (stack overflow) and drops it",
        "both targets (P4 push_front on a full stack); the DSL should drop the packet or refuse a third tag",
        """@pin(nic)
nf a { action t() { push_vlan(9); } apply { t(); } }
@pin(hypervisor)
nf b { action w() { ipv4.ttl = 9; } apply { w(); } }
pipeline pe : vm_egress { a -> b; }
""", (("vm", _pk_double_tagged),), "split", "fixed in e55e1a3 (found by progfuzz)"),
]


KNOWN_DIVERGENCES += [
    KnownBug(
        "deparse-order-reorders-headers",
        "a user header the parser reaches both after Ethernet and after an 802.1Q tag is always deparsed "
        "in one place (the deparser's fixed order: breadth-first from start), so Ethernet/VLAN/x1/IPv4 "
        "leaves as Ethernet/x1/VLAN/IPv4, a corrupt frame; the split re-parses it and drops it",
        "both targets' deparser (the order must follow the parse, or the checker must refuse a header "
        "reachable at two depths); software's output is already wrong",
        """header h_x1 { f0: bit<16>; nt: bit<16>; }
packet { x1: h_x1; }
parser {
    override state start {
        extract(ethernet);
        transition select(ethernet.ether_type) {
            0x88b5: s_x1; 0x8100: vlan; 0x0800: ipv4; 0x86dd: ipv6; default: accept;
        }
    }
    override state vlan {
        extract(vlan.next);
        transition select(vlan.last.ether_type) {
            0x88b5: s_x1; 0x8100: vlan; 0x0800: ipv4; 0x86dd: ipv6; default: accept;
        }
    }
    state s_x1 { extract(x1); transition select(x1.nt) { 0x0800: ipv4; 0x86dd: ipv6; default: accept; } }
}
@pin(nic)
nf a { action w() { ipv4.ttl = 9; } apply { w(); } }
@pin(hypervisor)
nf b { counter seen; action n() { count(seen); } apply { n(); } }
pipeline pe : vm_egress { a -> b; }
""", (("vm", _pk_tagged_custom),), "split", "fixed in 9a3601a (found by progfuzz)"),
]


KNOWN_DIVERGENCES += [
    KnownBug(
        "l4-checksum-dirty-lost-on-crossing",
        "an address or port rewrite marks the TCP/UDP checksum for recomputation only on the side that made "
        "it: the NIC rewrites ipv4.dst (and recomputes at the crossing), the hypervisor then writes "
        "tcp.window and does not, so the split sends a stale TCP checksum where software's is right",
        "split (the 'L4 checksum dirty' state must cross with the packet, like the metadata)",
        """@pin(nic)
nf a { action r() { ipv4.dst = 10.9.9.9; } apply { r(); } }
@pin(hypervisor)
nf b { action w() { tcp.window = 7; } apply { w(); } }
pipeline pe : vm_egress { a -> b; }
""", (("vm", _pk_tcp4),), "split", "fixed in 2c1a21a (found by progfuzz)"),
]


KNOWN_DIVERGENCES += [
    KnownBug(
        "encap-length-after-vlan-change",
        "the encapsulation of a non-IP frame takes the inner length from the length as received minus the "
        "tags it has now: after a push_vlan (or pop_vlan) earlier in the pass the outer IPv4 total length "
        "and UDP length are 4 bytes short (or long); the split re-receives the frame at the crossing and "
        "gets them right. (The same switch keeps push_vlan before a decap out of CI: decap-keeps-outer-vlan.)",
        "software (and the P4 emitter's meta.p4gen_rx_len - 4*tags): the length must be the frame's "
        "current length",
        """@pin(hypervisor)
nf a { action t() { push_vlan(5); } apply { t(); } }
@pin(nic)
nf b { action e() { vxlan_encap(0x020000000a01, 0x020000000a02, 192.168.7.1, 192.168.7.2, 5001); } apply { e(); } }
pipeline pe : vm_egress { a -> b; }
""", (("vm", _pk_lldp),), "split"),
    KnownBug(
        "l4-checksum-outer-before-inner",
        "with the L4 checksums marked for recomputation, the outer UDP checksum of a tunnel packet is "
        "computed before the inner TCP/UDP checksum it covers is recomputed: when the inner one changes "
        "(here it arrived wrong), software's outer checksum is stale; the split recomputes twice (once per "
        "side) and ends up right",
        "software (recompute inner checksums before the outer ones); the P4 emitter has the same order",
        """@pin(hypervisor)
nf a { action r() { udp.src_port = 1; } apply { r(); } }
@pin(nic)
nf b { action r2() { udp.src_port = 2; } apply { r2(); } }
pipeline pe : vm_egress { a -> b; }
""", (("vm", _pk_vxlan_bad_inner_checksum),), "split", "fixed in 46bc60e (found by progfuzz)"),
]


def _pk_from(src: str) -> bytes:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    return bytes(Ether(src=src, dst="02:00:00:00:00:02") / IP(src="10.0.0.1", dst="10.0.0.2") /
                 UDP(sport=1, dport=2) / Raw(b"x"))


KNOWN_DIVERGENCES += [
    KnownBug(
        "second-pipeline-unreachable",
        "a program may declare two pipelines of one direction, each with its flows, but the software "
        "pipeline (SoftwareTarget, HostDispatcher.from_vm) feeds every packet of that direction to the "
        "first one only: a packet of p2's flow is dropped as no_flow, while the NIC's classifier (emitted "
        "P4) chooses among the flows of every pipeline starting on the NIC",
        "software/dispatcher (a flow names its pipeline); for vm_ingress BMv2 would differ from software",
        """nf a { action m() { ipv4.ttl = 1; } apply { m(); } }
nf b { action m() { ipv4.ttl = 2; } apply { m(); } }
pipeline p1 : vm_egress { a; }
pipeline p2 : vm_egress { b; }
flow f1 { match ethernet.src == 02:00:00:00:00:01; pipeline p1; }
flow f2 { match ethernet.src == 02:00:00:00:00:03; pipeline p2; }
""", (("vm", lambda: _pk_from("02:00:00:00:00:01")), ("vm", lambda: _pk_from("02:00:00:00:00:03"))),
        "delivers", "fixed in 06b134d (HypervisorPipeline.run_direction)"),
]


KNOWN_DIVERGENCES += [
    KnownBug(
        "lpm-odd-width-refused-by-bmv2",
        "an lpm entry on a field whose width is not a multiple of 8 (here ipv4.dscp, bit<6>, value 46, "
        "prefix 6) is encoded as P4Runtime specifies (the value in the low 6 bits of one byte: 0x2e), and "
        "BMv2's P4Runtime server (PI) refuses the write: 'Invalid LPM value, incorrect number of trailing "
        "zeros'. PI checks the trailing zeros against the byte-padded width and BMv2 matches such keys "
        "left-aligned in their bytes (p4lang/PI#625, open); `p4gen push` and Bmv2Target fail",
        "BMv2/PI (p4gen's encoding follows the P4Runtime spec); p4gen could refuse such keys or encode them "
        "left-aligned for BMv2",
        """nf a {
    action n() { ipv4.ttl = 9; }
    table t { key = { ipv4.dscp: lpm; } actions = { n; } default_action = n(); size = 16; }
    apply { t.apply(); }
}
pipeline pe : vm_egress { a; }
entries a.t { (46) => n(); }
""", (("vm", _pk_udp4),), "bmv2_push"),
]


def reproduce(bug: KnownBug) -> list[str]:
    """What is still wrong for a known bug ([] when it behaves)."""
    problems: list[str] = []
    if bug.check == "bmv2_push":
        return _bmv2_push_problems(bug)
    if bug.check == "accepts":
        try:
            load(bug.program)
        except Rejected as e:
            problems.append(f"rejected: {e}")
        return problems
    prog, g = load(bug.program)
    frames = bug.frames()
    if bug.check == "no_crash":
        soft = SoftwareModel(prog, g)
        for port, frame in frames:
            try:
                soft.send(port, frame)
            except Exception as e:  # noqa: BLE001 - the finding
                problems.append(f"software crashed: {_crash(e)}")
        return problems
    if bug.check == "delivers":
        from p4gen.testing import SoftwareTarget

        soft_t = SoftwareTarget(prog, g)
        for port, frame in frames:
            soft_t.send(port, frame)
            if not any(soft_t.received(q) for q in ("uplink", "vm", "slow_path")):
                problems.append(f"software delivered nothing for {_summary(frame)} into {port} "
                                f"(drops {dict(soft_t.drops)})")
        return problems
    if bug.check == "v1model_drop":
        soft = SoftwareModel(prog, g)
        for port, frame in frames:
            out = soft.send(port, frame)
            if out:
                problems.append(f"software did not drop: {_show(out)}")
    for profile in PROFILES:
        for how in ("split", "model_target"):
            for d in diverges(bug.program, profile, frames, counter_bytes=bug.counter_bytes, how=how):
                problems.append(d.report())
    return problems


def _bmv2_push_problems(bug: KnownBug) -> list[str]:
    """Build with the real p4c and push to BMv2 (the test skips without the tools or root)."""
    import os
    import shutil
    import tempfile

    import pytest

    from p4gen.backend.build import build
    from p4gen.backend.p4c import find_tool
    from p4gen.testing import Bmv2Target

    p4c, bmv2 = find_tool("P4GEN_P4C", "p4c-bm2-ss"), find_tool("P4GEN_BMV2", "simple_switch_grpc")
    if p4c is None or bmv2 is None or os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs p4c-bm2-ss, simple_switch_grpc, root and iproute2")
    prog, g = load(bug.program)
    problems = []
    with tempfile.TemporaryDirectory(prefix="p4gen-known-") as tmp:
        for profile in PROFILES:
            pl = placed(prog, g, profile)
            out = Path(tmp) / profile.rsplit("/", 1)[-1]
            res = build(prog, g, pl, "<known>", out, p4c)
            if res.p4c is None or not res.p4c.ok:
                problems.append(f"{profile}: p4c failed: {res.p4c}")
                continue
            try:
                Bmv2Target(prog, g, pl, out, bmv2).close()
            except Exception as e:  # noqa: BLE001 - the finding
                problems.append(f"{profile}: BMv2 refused the push: {e}")
    return problems


# ---------------------------------------------------------------- the campaign


PROFILES = ("targets/bmv2-smartnic.toml", "targets/constrained-nic.toml")


@dataclass
class Stats:
    programs: int = 0
    rejected: int = 0
    unplaceable: int = 0
    runs: int = 0
    packets: int = 0
    delivered: int = 0
    crossings: int = 0
    split_runs: int = 0  # runs whose placement actually splits the program
    seconds: float = 0.0
    divergences: list[Divergence] = field(default_factory=list)
    rejects: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> str:
        acc = 100.0 * (self.programs - self.rejected) / max(1, self.programs)
        return (f"progfuzz: {self.programs} programs ({self.rejected} rejected, {acc:.1f}% accepted), "
                f"{self.runs} placed runs ({self.split_runs} split, {self.unplaceable} unplaceable), "
                f"{self.packets} packets ({self.delivered} delivered, {self.crossings} crossings), "
                f"{len(self.divergences)} divergences, {self.seconds:.1f} s")


def fuzz(n_programs: int, n_packets: int, seed: int = 0, feats: frozenset[str] | None = None,
         profiles=PROFILES, shrink_budget: float = 10.0, log=None, counter_bytes: bool = True,
         model_target_every: int = 1) -> Stats:
    """The campaign: n_programs random programs × n_packets packets on every profile."""
    feats = feats if feats is not None else features()
    st = Stats()
    t0 = time.monotonic()
    for k in range(n_programs):
        pseed = seed * 100003 + k
        gp = ProgramGen(pseed, feats).generate()
        st.programs += 1
        try:
            prog, g = load(gp.text)
        except Rejected as e:
            st.rejected += 1
            st.rejects.append((pseed, str(e)))
            if log:
                log(f"REJECTED seed {pseed}:\n{e}\n{gp.text}")
            continue
        packets = PacketGen(gp, pseed, feats).take(n_packets)
        for profile in profiles:
            pl = placed(prog, g, profile)
            if pl is None:
                st.unplaceable += 1
                continue
            st.runs += 1
            st.split_runs += len(set(pl.assignment.values())) > 1
            soft, split = SoftwareModel(prog, g), SplitModel(prog, g, pl)
            found: list[Divergence] = []
            for i, (port, frame) in enumerate(packets):
                st.packets += 1
                try:
                    want = soft.send(port, frame)
                except Exception as e:  # noqa: BLE001 - a crash is a finding
                    found.append(Divergence(gp.text, profile, packets, "crash(software)", i, _crash(e), None,
                                            pl.assignment))
                    break
                try:
                    got = split.send(port, frame)
                except Exception as e:  # noqa: BLE001
                    found.append(Divergence(gp.text, profile, packets, "crash(split)", i, want, _crash(e),
                                            pl.assignment))
                    break
                st.delivered += len(want)
                if want != got:
                    found.append(Divergence(gp.text, profile, packets, "outputs", i, want, got, pl.assignment))
                    break
            st.crossings += split.crossings
            if not found:
                found = compare(prog, g, pl, packets, gp.text, profile, counter_bytes=counter_bytes)
            if not found and model_target_every and k % model_target_every == 0:
                found = model_target_check(prog, g, pl, packets, gp.text, profile)
                for d in found:
                    d.how = "model_target"
            for d in found[:1]:
                d = shrink(d, shrink_budget) if shrink_budget else d
                st.divergences.append(d)
                if log:
                    log(d.report())
    st.seconds = time.monotonic() - t0
    return st


def main(argv: list[str]) -> int:
    n = int(argv[1]) if len(argv) > 1 else 40
    p = int(argv[2]) if len(argv) > 2 else 20
    seed = int(argv[3]) if len(argv) > 3 else 0
    ci = "--ci" in argv
    feats = ci_features() if ci else features()
    print(describe_disabled(feats))
    st = fuzz(n, p, seed, feats, log=print, counter_bytes=not ci)
    print(st.summary())
    return 1 if st.divergences or st.rejected else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main(sys.argv))
