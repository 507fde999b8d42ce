"""A flow action compiled to one Python function: the output's bytes from the input's.

The flow cache (p4gen.runtime.flowcache) learns, for a flow, where every output
header byte comes from: a constant (a template, a value a stage wrote), a byte
of the input, a length that follows the inner packet's ("same delta"), or a
checksum. This module turns that byte map into the source of one function

    build(f, d) -> bytes     # f: the input frame; d: its length less the first packet's

that joins constants, slices of `f` and the few computed fields in one
`bytes.join` — the VXLAN encapsulation of a packet is a 50-byte constant with
three 16-bit fields spliced in, then the whole input. IPv4 header checksums are
computed from the header's parts (a constant word sum, input slices summed as
big integers modulo 0xFFFF, the lengths); a copied input header that nothing
wrote keeps the checksum the parser verified (the flow's extractor refuses the
one non-canonical encoding, 0xFFFF). TCP/UDP checksums that a rewrite
invalidated are recomputed over the finished bytes.

Functions are compiled once per *shape* (offsets and kinds; the constants are
arguments), so the thousands of flows of one rule share one code object.
"""

from __future__ import annotations

from dataclasses import dataclass

from p4gen.runtime.checksum import fold, pseudo_header_sum, word_sum

_SHAPES: dict[tuple, tuple] = {}  # shape → (code, how to get its constants)
_CODE: dict[str, object] = {}  # source → code (two shapes may give the same source)
_RUNTIME = {"fold": fold, "pseudo_header_sum": pseudo_header_sum, "word_sum": word_sum}


@dataclass(frozen=True)
class ActionBytes:
    """What a flow action does to the header bytes (output offsets; input offsets in pieces)."""

    pieces: tuple  # bytes (new headers) or (start, stop) of the input, in output order
    patches: tuple[tuple[int, bytes], ...]  # whole bytes a stage wrote into a copied header
    bit_patches: tuple[tuple[int, int, int], ...]  # (offset, mask, bits): writes of part of a byte
    len_fixes: tuple[tuple[int, int], ...]  # 16-bit lengths of new headers: (offset, value for d = 0)
    ipv4: tuple[tuple[int, int], ...]  # output IPv4 headers (offset, header length)
    l4: tuple[tuple[int, int, int, int, bool], ...]  # (ip offset, 4|6, l4 offset, checksum offset, udp)
    hdr_end: int  # input: where the payload starts (copied after the headers)


def compile_action(a: ActionBytes):
    """The builder `build(f, d) -> bytes` of `a`. The byte map is worked out once per shape;
    another flow of the same shape only reads its constants off its own header bytes."""
    key = shape(a)
    known = _SHAPES.get(key)
    if known is None:
        src, _consts, recipe = _source(a)
        make = _CODE.get(src)
        if make is None:
            ns = dict(_RUNTIME)
            exec(compile(src, "<p4gen flow action>", "exec"), ns)  # noqa: S102 - generated from integers
            make = _CODE[src] = ns["make"]
        known = _SHAPES[key] = (make, recipe)
    make, recipe = known
    return make(*_constants(a, recipe))


def shape(a: ActionBytes) -> tuple:
    """Everything that decides the generated code: offsets and kinds, no header values (but the
    bits of a partial write into an input byte, which the code holds)."""
    return (tuple(("k", len(p)) if isinstance(p, bytes) else p for p in a.pieces),
            tuple((off, len(v)) for off, v in a.patches), a.bit_patches, tuple(off for off, _ in a.len_fixes),
            a.ipv4, a.l4, a.hdr_end)


def header_constants(a: ActionBytes) -> bytearray:
    """The output header bytes that are constants (templates, patches); input bytes as 0."""
    out = bytearray()
    for p in a.pieces:
        out += p if isinstance(p, bytes) else bytes(p[1] - p[0])
    for off, val in a.patches:
        out[off:off + len(val)] = val
    for off, mask, bits in a.bit_patches:
        out[off] = (out[off] & ~mask & 0xFF) | bits
    return out


def _constants(a: ActionBytes, recipe: list[tuple]) -> list:
    hdr = header_constants(a)
    out: list = []
    for how in recipe:
        if how[0] == "len":
            out.append(a.len_fixes[how[1]][1])
        elif how[0] == "run":
            out.append(bytes(hdr[how[1]:how[2]]))
        else:  # "sum": the word sum of a header's constant bytes (modulo 0xFFFF, as it is used)
            _, o, hl, mask = how
            out.append((int.from_bytes(hdr[o:o + hl], "big") & mask) % 0xFFFF)
    return out


def byte_map(a: ActionBytes) -> list[tuple]:
    """Per output header byte, where it comes from: ("k", value) | ("i", input offset) |
    ("b", input offset, keep mask, bits) | ("L", fix, byte of the field). The one reading of
    an ActionBytes, for the generated function and the vector plan (p4gen.runtime.flowvec)."""
    src: list[tuple] = []
    for p in a.pieces:
        if isinstance(p, bytes):
            src += [("k", x) for x in p]
        else:
            src += [("i", x) for x in range(p[0], p[1])]
    for off, val in a.patches:
        for j, x in enumerate(val):
            src[off + j] = ("k", x)
    for off, mask, bits in a.bit_patches:
        s = src[off]
        src[off] = ("k", (s[1] & ~mask & 0xFF) | bits) if s[0] == "k" else ("b", s[1], ~mask & 0xFF, bits)
    for k, (off, _base) in enumerate(a.len_fixes):
        src[off], src[off + 1] = ("L", k, 0), ("L", k, 1)
    return src


def _source(a: ActionBytes) -> tuple[str, list, list[tuple]]:
    # The byte map, and ("C", header, byte) where a checksum is computed from the header's parts.
    src = byte_map(a)
    consts: list = []
    recipe: list[tuple] = []  # per constant: how `_constants` gets it for another flow of this shape

    def const(v, how: tuple) -> str:
        consts.append(v)
        recipe.append(how)
        return f"K{len(consts) - 1}"

    lines: list[str] = []
    for k, (_off, base) in enumerate(a.len_fixes):
        lines.append(f"L{k} = ({const(base, ('len', k))} + d) & 0xFFFF")
    post: list[tuple[int, int]] = []  # IPv4 headers recomputed over the finished bytes
    for h, (o, hl) in enumerate(a.ipv4):
        first = src[o]
        if first[0] == "i" and all(src[o + j] == ("i", first[1] + j) for j in range(hl)):
            continue  # an untouched copy: the verified (canonical) checksum stays
        terms, k_sum, k_pos, ok = [], 0, set(), True
        j = 0
        while j < hl:
            s = src[o + j]
            if j in (10, 11):
                j += 1
                continue
            if s[0] == "k":
                k_sum += s[1] << 8 if j % 2 == 0 else s[1]
                k_pos.add((o + j, j % 2 == 0))
                j += 1
            elif s[0] == "i":
                m = 1
                while j + m < hl and j + m not in (10, 11) and src[o + j + m] == ("i", s[1] + m):
                    m += 1
                t = f"int.from_bytes(f[{s[1]}:{s[1] + m}], 'big')"
                terms.append(t if (m - j) % 2 == 0 else f"({t} << 8)")
                j += m
            elif s[0] == "L" and s[2] == 0 and j % 2 == 0:
                terms.append(f"L{s[1]}")
                j += 2
            else:
                ok = False
                break
        if not ok:
            post.append((o, hl))
            continue
        mask = int.from_bytes(bytes(0xFF if (o + j, j % 2 == 0) in k_pos else 0 for j in range(hl)), "big")
        lines.append(f"v = ({' + '.join([const(k_sum % 0xFFFF, ('sum', o, hl, mask))] + terms)}) % 0xFFFF")
        lines.append(f"C{h} = 0xFFFF - v if v else 0")
        src[o + 10], src[o + 11] = ("C", h, 0), ("C", h, 1)

    parts: list[str] = []
    i, n = 0, len(src)
    while i < n:
        s = src[i]
        if s[0] == "k":
            j = i
            while j < n and src[j][0] == "k":
                j += 1
            parts.append(const(bytes(x[1] for x in src[i:j]), ("run", i, j)))
            i = j
        elif s[0] == "i":
            j = i + 1
            while j < n and src[j] == ("i", s[1] + j - i):
                j += 1
            stop = s[1] + j - i
            if j == n and stop == a.hdr_end:  # the last copied header runs on into the payload
                parts.append("f" if s[1] == 0 else f"f[{s[1]}:]")
                i = n + 1  # the payload is taken
                break
            parts.append(f"f[{s[1]}:{stop}]")
            i = j
        elif s[0] == "b":
            parts.append(f"bytes((f[{s[1]}] & {s[2]} | {s[3]},))")
            i += 1
        else:  # "L" / "C": a 16-bit field
            parts.append(f"{'L' if s[0] == 'L' else 'C'}{s[1]}.to_bytes(2, 'big')")
            i += 2
    if i == n:
        parts.append(f"f[{a.hdr_end}:]")
    joined = f"b''.join(({', '.join(parts)},))" if len(parts) > 1 else parts[0]
    if not post and not a.l4:
        lines.append(f"return {joined}")
    else:
        lines.append(f"out = bytearray({joined})")
        for o, hl in post:
            lines += [f"out[{o + 10}:{o + 12}] = b'\\0\\0'",
                      f"v = int.from_bytes(out[{o}:{o + hl}], 'big') % 0xFFFF",
                      f"out[{o + 10}:{o + 12}] = (0xFFFF - v if v else 0).to_bytes(2, 'big')"]
        for ip, version, l4, at, udp in a.l4:
            body = []
            if version == 4:
                body += [f"l4_len = (int.from_bytes(out[{ip + 2}:{ip + 4}], 'big') - (out[{ip}] & 0xF) * 4) & 0xFFFF",
                         f"pseudo = pseudo_header_sum(bytes(out[{ip + 12}:{ip + 20}]), out[{ip + 9}], l4_len)"]
            else:
                body += [f"pseudo = pseudo_header_sum(bytes(out[{ip + 8}:{ip + 40}]), out[{ip + 6}], "
                         f"int.from_bytes(out[{ip + 4}:{ip + 6}], 'big'))"]
            body += [f"out[{at}:{at + 2}] = b'\\0\\0'",
                     f"out[{at}:{at + 2}] = (~fold(pseudo + word_sum(bytes(out[{l4}:]))) & 0xFFFF).to_bytes(2, 'big')"]
            if udp:  # a zero UDP checksum means none, and stays
                lines.append(f"if out[{at}] or out[{at + 1}]:")
                lines += ["    " + b for b in body]
            else:
                lines += body
        lines.append("return bytes(out)")
    args = ", ".join(f"K{k}" for k in range(len(consts)))
    body = "".join(f"        {x}\n" for x in lines)
    text = f"def make({args}):\n    def build(f, d):\n{body}    return build\n"
    return text, consts, recipe
