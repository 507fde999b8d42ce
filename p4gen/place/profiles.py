"""Target profiles: TOML files declaring what a target can do and what it has.

Validation is strict (unknown keys, wrong types and missing fields are
errors naming the file and the key) because a typo in a profile would
otherwise silently change where stages run.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

MATCH_KINDS = ("exact", "lpm", "ternary", "range", "optional")
CAPABILITIES = (
    "drop", "forward", "punt", "ttl", "rewrite", "vlan",
    "vxlan_encap", "vxlan_decap", "geneve_encap", "geneve_decap",
    "counter", "direct_counter", "idle_timeout", "checksum", "hash", "branch",
    "segment", "coalesce",
)
STAGE_KINDS = ("table", "action", "branch", "segment", "coalesce")


class ProfileError(Exception):
    """A profile that cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class Resources:
    tables: int | None = None  # None: unlimited
    table_entries: int | None = None
    max_table_size: int | None = None
    header_stack_depth: int | None = None
    max_key_bits: int | None = None


@dataclass(frozen=True)
class Ports:
    uplink: int = 0
    host: int = 255
    vm_ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class OffloadPolicy:
    """A NIC's share for per-flow offload (docs/offload-design.md): one table of `flow_entries`
    entries, reserved before the static placement; a flow is offloaded after `threshold_packets`
    packets, and leaves the table after `idle_timeout_ms` without one."""

    flow_entries: int
    threshold_packets: int = 8
    idle_timeout_ms: int = 10_000


@dataclass(frozen=True)
class Profile:
    name: str
    kind: str  # "nic" | "hypervisor"
    architecture: str
    description: str
    match_kinds: frozenset[str]
    capabilities: frozenset[str]
    lacks: frozenset[str]
    resources: Resources
    ports: Ports
    vm_attachment: str  # "hypervisor" | "nic"
    crossing_cost: float
    stage_costs: dict[str, float] = field(default_factory=dict)
    match_kind_costs: dict[str, float] = field(default_factory=dict)
    primitive_costs: dict[str, float] = field(default_factory=dict)
    preference_cost: float = 2.0
    offload: OffloadPolicy | None = None  # [offload]: a flow table reserved for per-flow offload
    path: str = ""
    builtin: bool = field(default=False, compare=False)  # shipped with p4gen (builtin_profile), not read from `path`

    @property
    def is_nic(self) -> bool:
        return self.kind == "nic"


# ---------------------------------------------------------------- schema checking


class _Section:
    def __init__(self, path: str, name: str, data: object, known: dict[str, str]):
        if not isinstance(data, dict):
            raise ProfileError(f"{path}: [{name}] must be a table")
        self.path, self.name, self.data = path, name, data
        for key in data:
            if key not in known:
                raise ProfileError(f"{path}: unknown key '{key}' in [{name}]; expected one of {', '.join(known)}")

    def _where(self, key: str) -> str:
        return f"{self.path}: [{self.name}].{key}"

    def get(self, key: str, typ: type | tuple[type, ...], default: object = ..., what: str = "") -> object:
        if key not in self.data:
            if default is ...:
                raise ProfileError(f"{self._where(key)} is missing")
            return default
        value = self.data[key]
        ok = isinstance(value, typ) and not (isinstance(value, bool) and bool not in _as_tuple(typ))
        if not ok:
            raise ProfileError(f"{self._where(key)} must be {what or _type_name(typ)}, not {type(value).__name__} "
                               f"({value!r})")
        return value

    def names(self, key: str, allowed: tuple[str, ...], default: object = ...) -> frozenset[str]:
        value = self.get(key, list, default, "a list of names")
        if not isinstance(value, list):
            return frozenset()
        out = set()
        for v in value:
            if not isinstance(v, str) or v not in allowed:
                raise ProfileError(f"{self._where(key)}: unknown name {v!r}; known: {', '.join(allowed)}")
            out.add(v)
        return frozenset(out)

    def count(self, key: str) -> int | None:
        value = self.get(key, int, None, "a whole number")
        if value is not None and value < 0:  # type: ignore[operator]
            raise ProfileError(f"{self._where(key)} must not be negative")
        return value  # type: ignore[return-value]

    def costs(self, key: str, allowed: tuple[str, ...]) -> dict[str, float]:
        value = self.get(key, dict, {}, "a table of costs")
        out = {}
        for k, v in value.items():  # type: ignore[union-attr]
            if k not in allowed:
                raise ProfileError(f"{self._where(key)}: unknown name '{k}'; known: {', '.join(allowed)}")
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise ProfileError(f"{self._where(key)}.{k} must be a non-negative number, not {v!r}")
            out[k] = float(v)
        return out


def _as_tuple(t):
    return t if isinstance(t, tuple) else (t,)


def _type_name(t) -> str:
    names = {int: "a whole number", float: "a number", str: "a string", list: "a list", dict: "a table",
             bool: "true or false"}
    return " or ".join(names.get(x, x.__name__) for x in _as_tuple(t))


TOP_KEYS = {"target": "", "capabilities": "", "resources": "", "ports": "", "attachment": "", "costs": "",
            "offload": ""}


def parse_profile(text: str, path: str) -> Profile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{path}: not valid TOML: {e}") from None
    top = _Section(path, "top level", data, TOP_KEYS)
    target = _Section(path, "target", top.get("target", dict),
                      {"name": "", "kind": "", "architecture": "", "description": ""})
    name = target.get("name", str)
    kind = target.get("kind", str)
    if kind not in ("nic", "hypervisor"):
        raise ProfileError(f"{path}: [target].kind must be \"nic\" or \"hypervisor\", not {kind!r}")
    arch = target.get("architecture", str)
    if kind == "nic" and arch != "v1model":
        raise ProfileError(f"{path}: [target].architecture {arch!r} is not supported; p4gen emits v1model")
    caps = _Section(path, "capabilities", top.get("capabilities", dict),
                    {"match_kinds": "", "primitives": "", "lacks": ""})
    match_kinds = caps.names("match_kinds", MATCH_KINDS)
    capabilities = caps.names("primitives", CAPABILITIES)
    lacks = caps.names("lacks", CAPABILITIES, [])
    both = capabilities & lacks
    if both:
        raise ProfileError(f"{path}: [capabilities] lists {', '.join(sorted(both))} both in primitives and lacks")
    res_sec = _Section(path, "resources", top.get("resources", dict, {}),
                       {k: "" for k in Resources.__dataclass_fields__})
    res = Resources(**{k: res_sec.count(k) for k in Resources.__dataclass_fields__})
    ports_sec = _Section(path, "ports", top.get("ports", dict, {}), {"uplink": "", "host": "", "vm_ports": ""})
    vm_ports = ports_sec.get("vm_ports", list, [])
    if not all(isinstance(p, int) and not isinstance(p, bool) for p in vm_ports):  # type: ignore[union-attr]
        raise ProfileError(f"{path}: [ports].vm_ports must be a list of port numbers")
    ports = Ports(ports_sec.count("uplink") or 0, ports_sec.count("host") if "host" in ports_sec.data else 255,
                  tuple(vm_ports))  # type: ignore[arg-type]
    for p in (ports.uplink, ports.host, *ports.vm_ports):
        if not 0 <= p < 511:
            raise ProfileError(f"{path}: [ports] port {p} is out of range (0 to 510; 511 is the v1model drop port)")
    if kind == "nic" and len({ports.uplink, ports.host, *ports.vm_ports}) != 2 + len(ports.vm_ports):
        raise ProfileError(f"{path}: [ports] uplink, host and vm_ports must all be different ports")
    att = _Section(path, "attachment", top.get("attachment", dict, {}), {"vms": ""})
    vms = att.get("vms", str, "hypervisor")
    if vms not in ("hypervisor", "nic"):
        raise ProfileError(f"{path}: [attachment].vms must be \"hypervisor\" or \"nic\", not {vms!r}")
    if vms == "nic" and not ports.vm_ports:
        raise ProfileError(f"{path}: [attachment].vms = \"nic\" needs [ports].vm_ports")
    costs = _Section(path, "costs", top.get("costs", dict, {}),
                     {"crossing": "", "stage": "", "match_kind": "", "primitive": "", "preference": ""})
    crossing = float(costs.get("crossing", (int, float), 0.0 if kind == "hypervisor" else ...))  # type: ignore[arg-type]
    if kind == "nic" and crossing <= 0:
        raise ProfileError(f"{path}: [costs].crossing must be positive")
    stage_costs = costs.costs("stage", STAGE_KINDS)
    if kind == "hypervisor":
        missing = [k for k in STAGE_KINDS if k not in stage_costs]
        if missing:
            raise ProfileError(f"{path}: [costs.stage] needs a cost for {', '.join(missing)}")
    offload = _offload(path, top, kind, res)
    return Profile(
        name=name, kind=kind, architecture=arch,  # type: ignore[arg-type]
        description=target.get("description", str, ""),  # type: ignore[arg-type]
        match_kinds=match_kinds, capabilities=capabilities, lacks=lacks, resources=res, ports=ports,
        vm_attachment=vms,  # type: ignore[arg-type]
        crossing_cost=crossing, stage_costs=stage_costs,
        match_kind_costs=costs.costs("match_kind", MATCH_KINDS),
        primitive_costs=costs.costs("primitive", CAPABILITIES),
        preference_cost=float(costs.get("preference", (int, float), 2.0)),  # type: ignore[arg-type]
        offload=offload, path=path,
    )


def _offload(path: str, top: _Section, kind: str, res: Resources) -> OffloadPolicy | None:
    if "offload" not in top.data:
        return None
    if kind != "nic":
        raise ProfileError(f"{path}: [offload] is for NIC profiles (it reserves a NIC table)")
    sec = _Section(path, "offload", top.get("offload", dict), {"flow_entries": "", "threshold_packets": "",
                                                                 "idle_timeout_ms": ""})
    entries = sec.count("flow_entries")
    if not entries:
        raise ProfileError(f"{path}: [offload].flow_entries must be given, and at least 1")
    for limit, what in ((res.max_table_size, "[resources].max_table_size"),
                        (res.table_entries, "[resources].table_entries")):
        if limit is not None and entries > limit:
            raise ProfileError(f"{path}: [offload].flow_entries = {entries} exceeds {what} = {limit}")
    if res.tables is not None and res.tables < 1:
        raise ProfileError(f"{path}: [offload] reserves a table, and [resources].tables is 0")
    threshold = sec.count("threshold_packets")
    idle = sec.count("idle_timeout_ms")
    if threshold == 0:
        raise ProfileError(f"{path}: [offload].threshold_packets must be at least 1")
    if idle is not None and idle < 1000:  # (BMv2 checks idle entries once a second)
        raise ProfileError(f"{path}: [offload].idle_timeout_ms must be at least 1000")
    return OffloadPolicy(entries, threshold or 8, idle or 10_000)


def load_profile(path: str | Path) -> Profile:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ProfileError(f"{path}: cannot read profile: {getattr(e, 'strerror', None) or e}") from None
    return parse_profile(text, str(path))


def builtin_profile_text(name: str) -> str:
    """The text of a profile shipped with p4gen (targets/NAME.toml)."""
    try:
        return resources.files("p4gen.targets").joinpath(f"{name}.toml").read_text(encoding="utf-8")
    except ModuleNotFoundError:  # running from a source checkout without install
        return (Path(__file__).resolve().parents[2] / "targets" / f"{name}.toml").read_text(encoding="utf-8")


def builtin_profile(name: str) -> Profile:
    """A profile shipped with p4gen (targets/NAME.toml)."""
    import dataclasses

    return dataclasses.replace(parse_profile(builtin_profile_text(name), f"targets/{name}.toml"), builtin=True)


def resolve_targets(paths: list[str]) -> tuple[Profile | None, Profile]:
    """The NIC (if any) and the hypervisor for a list of --target profiles."""
    nic: Profile | None = None
    hyp: Profile | None = None
    for p in paths:
        prof = load_profile(p)
        if prof.is_nic:
            if nic is not None:
                raise ProfileError(f"{p}: only one NIC profile may be given ({nic.path} is one already)")
            nic = prof
        else:
            if hyp is not None:
                raise ProfileError(f"{p}: only one hypervisor profile may be given ({hyp.path} is one already)")
            hyp = prof
    return nic, hyp or builtin_profile("hypervisor")
