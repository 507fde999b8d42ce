"""Match-action tables in the hypervisor, with P4Runtime's matching rules.

* exact keys only: one dict lookup;
* an lpm key (with exact others): the longest matching prefix wins, probed
  from the longest prefix length present down;
* any ternary, range or optional key: the matching entry with the highest
  priority wins (P4Runtime: larger number first), ties in insertion order.

Each entry carries its direct counter (packets, bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from p4gen.frontend import program as P


@dataclass
class Entry:
    keys: list[P.KeyMatch]
    action: str
    args: dict[str, int]
    priority: int
    packets: int = 0
    bytes: int = 0
    order: int = 0
    matches: object = None  # predicate on the key values (priority tables)


def _test(km: P.KeyMatch, width: int, i: int) -> str:
    """One key's test on the key values `v`, as a Python expression over integers only."""
    full = (1 << width) - 1
    if km.kind == "lpm":
        plen = km.prefix_len or 0
        mask = (full >> (width - plen)) << (width - plen) if plen else 0
        return f"v[{i}] & {mask} == {km.value & mask}" if mask else "True"
    if km.kind == "ternary":
        m = km.mask if km.mask is not None else full
        return f"v[{i}] & {m} == {km.value & m}" if m else "True"
    if km.kind == "range":
        hi = km.high if km.high is not None else km.value
        return f"{km.value} <= v[{i}] <= {hi}"
    if km.kind == "optional" and km.wildcard:
        return "True"
    return f"v[{i}] == {km.value}"


def _matcher(keys: list[P.KeyMatch], widths: list[int]):
    """An entry's keys compiled into one predicate on the list of key values: the expression
    is made of the entry's integers only, so it is built once with eval and costs one call
    per entry at lookup."""
    tests = [_test(k, w, i) for i, (k, w) in enumerate(zip(keys, widths, strict=True))]
    return eval(f"lambda v: {' and '.join(tests) or 'True'}")  # noqa: S307 - integers and 'v' only


class TableRuntime:
    def __init__(self, table: P.Table, action_params: dict[str, list[tuple[str, int]]]):
        self.table = table
        self.widths = [k.field.width for k in table.keys]
        kinds = [k.match_kind for k in table.keys]
        self.mode = ("priority" if table.needs_priority else "lpm" if "lpm" in kinds else "exact")
        self.lpm_index = kinds.index("lpm") if "lpm" in kinds else -1
        self.action_params = action_params
        self.entries: list[Entry] = []
        self.exact: dict[tuple[int, ...], Entry] = {}
        self.by_prefix: dict[int, dict[tuple[int, ...], Entry]] = {}
        self.prefix_lengths: list[int] = []
        self.probes: list[tuple[int, int, dict[tuple[int, ...], Entry]]] = []  # (lpm key, mask, entries)
        self.default = (table.default_action, dict(zip((n for n, _ in action_params[table.default_action]),
                                                        table.default_args, strict=True)))

    def insert(self, e: P.TableEntry) -> None:
        args = dict(zip((n for n, _ in self.action_params[e.action]), e.args, strict=True))
        entry = Entry(list(e.keys), e.action, args, e.priority or 0, order=len(self.entries))
        entry.matches = _matcher(entry.keys, self.widths)
        self.entries.append(entry)
        if self.mode == "exact":
            self.exact[tuple(k.value for k in e.keys)] = entry
        elif self.mode == "lpm":
            plen = e.keys[self.lpm_index].prefix_len or 0
            key = tuple(self._masked(k.value, i, plen) for i, k in enumerate(e.keys))
            self.by_prefix.setdefault(plen, {})[key] = entry
            self.prefix_lengths = sorted(self.by_prefix, reverse=True)
            w = self.widths[self.lpm_index]
            self.probes = [(self.lpm_index, ((1 << w) - 1) >> (w - p) << (w - p) if p else 0, self.by_prefix[p])
                           for p in self.prefix_lengths]
        else:
            self.entries.sort(key=lambda x: (-x.priority, x.order))

    def remove(self, keys: Sequence[P.KeyMatch], priority: int = 0) -> Entry | None:
        """Delete the entry with these keys (and priority, for priority tables); it, or None."""
        keys = list(keys)
        hit = next((e for e in self.entries if e.keys == keys and (self.mode != "priority" or
                                                                   e.priority == (priority or 0))), None)
        if hit is None:
            return None
        self.entries.remove(hit)
        if self.mode == "exact":
            self.exact.pop(tuple(k.value for k in keys), None)
        elif self.mode == "lpm":
            plen = keys[self.lpm_index].prefix_len or 0
            self.by_prefix.get(plen, {}).pop(tuple(self._masked(k.value, i, plen) for i, k in enumerate(keys)), None)
        return hit

    def _masked(self, value: int, i: int, plen: int) -> int:
        if i != self.lpm_index:
            return value
        w = self.widths[i]
        return value & (((1 << w) - 1) >> (w - plen) << (w - plen)) if plen else 0

    def lookup(self, values: Sequence[int]) -> Entry | None:
        """The entry a key hits (None: miss); `values` in key order, a tuple on the fast path."""
        if self.mode == "exact":
            return self.exact.get(values if type(values) is tuple else tuple(values))
        if self.mode == "lpm":  # longest prefix first: mask the lpm key, look the rest up exactly
            key = list(values)
            for i, mask, entries in self.probes:
                key[i] = values[i] & mask
                hit = entries.get(tuple(key))
                if hit is not None:
                    return hit
            return None
        for e in self.entries:
            if e.matches(values):
                return e
        return None
