"""Mutations shared by the fuzz targets: structural ones over JSON-like values (also TOML tables
and extra-spec dicts), byte-level ones over any encoding, and free-form input.

Pure functions of a ``random.Random`` that hypothesis draws, so every case is reproducible from
the run's seed.  ``words`` are names of the input's own vocabulary (register names, properties,
model names...): swapping them in reaches deeper than random text does.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from typing import Any

#: Numbers around every boundary the inputs have (field widths, 64-bit registers, JSON doubles).
INTS = (0, 1, -1, 2, 7, 15, 16, 255, 256, 4095, 2**31 - 1, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64,
        -(2**63), 2**128, 10**40, -(10**40))
FLOATS = (0.5, -0.0, 1e308, -1e308, 1.5e-323, math.inf, -math.inf, math.nan, 6.12, 1.1)
#: Text that breaks parsers: empty, lookalike digits, escapes, controls, surrogates, markup.
TEXTS = ("", " ", "0x", "0xZZ", "0x" + "f" * 17, "0x-1", "-0x1", " 0x1 ", "0X1", "0b102", "1e309", "NaN", "-1",
         "0x" + "0" * 40 + "1", "０ｘ１", "٣", "𝟘", "é", "İ", "ı", "ß", "\u202e", "\ufeff", "\u200b", "\x00", "\x01",
         "\x1b[2J", "\x7f", "\x85", "\u2028", "\ud800", "\udfff", "\ufffe", "\U0010ffff", "😀", "\t", "\n", "\r\n",
         "'", '"', "\\", "<", ">", "&", "&amp;", "]]>", "<!--", "%s", "{}", "[]", "..", "../..", "/", "on", "off",
         "true", "yes", "null", ",", "=", ",,", "a=b", ":", "-v1", "-v0", "-v01", ".1", "1.", "1.1.1")
#: Rarely, an input beyond every size limit (1 MiB for snapshots, 2 MiB for XML).
HUGE = (2 << 20) + 17
_DUP = "\x00acf-dup-{}\x00"


def text(rng: random.Random, words: Sequence[str] = ()) -> str:
    """A short strange string: a vocabulary word, a breaking text, or a word with one broken in."""
    r = rng.random()
    if words and r < 0.45:
        return rng.choice(words)
    if r < 0.8:
        return rng.choice(TEXTS)
    base = rng.choice(words) if words else "x"
    pos = rng.randint(0, len(base))
    return base[:pos] + rng.choice(TEXTS) + base[pos:]


def number(rng: random.Random) -> Any:
    """A number or number-like string (hex register values of every width, signs, bad digits)."""
    n = rng.choice(INTS) + rng.choice((0, 0, 1, -1))
    r = rng.random()
    if r < 0.3:
        return n
    if r < 0.4:
        return rng.choice(FLOATS)
    if r < 0.85 and n >= 0:
        digits = f"{n:x}" if rng.random() < 0.5 else f"{n:016x}"
        return rng.choice(("0x", "0X", "", "0x0", " 0x")) + (digits.upper() if rng.random() < 0.2 else digits)
    return str(n)


def scalar(rng: random.Random, words: Sequence[str] = ()) -> Any:
    r = rng.random()
    if r < 0.35:
        return number(rng)
    if r < 0.8:
        return text(rng, words)
    return rng.choice((True, False, None))


def value(rng: random.Random, words: Sequence[str] = (), depth: int = 2) -> Any:
    """Any JSON-like value (scalars mostly, sometimes small lists and objects)."""
    r = rng.random()
    if depth <= 0 or r < 0.7:
        return scalar(rng, words)
    if r < 0.85:
        return [value(rng, words, depth - 1) for _ in range(rng.randint(0, 3))]
    return {text(rng, words): value(rng, words, depth - 1) for _ in range(rng.randint(0, 3))}


def copy_json(v: Any) -> Any:
    """A deep copy of a JSON-like value (faster than ``copy.deepcopy``)."""
    if isinstance(v, dict):
        return {k: copy_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [copy_json(x) for x in v]
    return v


def _slots(root: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) of ``root`` (a dict or list), ``root`` itself excluded."""
    out: list[tuple[Any, Any]] = []
    stack = [root]
    while stack:
        c = stack.pop()
        keys = list(c) if isinstance(c, dict) else range(min(len(c), 64))  # not every item of a huge list
        for k in keys:
            out.append((c, k))
            if isinstance(c[k], dict | list):
                stack.append(c[k])
    return out


def mutate_json(root: dict | list, rng: random.Random, words: Sequence[str] = (), n: int | None = None) -> Any:
    """A structurally mutated copy of ``root``: keys dropped, duplicated, renamed, added; values
    retyped, replaced by boundary numbers or strange text, deeply nested, made huge."""
    root = copy_json(root)
    dups: dict[str, str] = {}
    for _ in range(n or rng.randint(1, 4)):
        slots = _slots(root)
        if not slots:
            root = value(rng, words, 3) if rng.random() < 0.3 else {text(rng, words): value(rng, words)}
            if not isinstance(root, dict | list):
                return root
            continue
        c, k = rng.choice(slots)
        op = rng.randrange(12)
        if op == 0:
            del c[k]
        elif op == 1:
            c[k] = value(rng, words)
        elif op == 2:
            c[k] = number(rng)
        elif op == 3:
            old = c[k]
            if isinstance(old, str) and old and rng.random() < 0.6:
                pos = rng.randint(0, len(old))
                c[k] = rng.choice((old[:pos], old[:pos] + text(rng, words) + old[pos:], old.swapcase(), old * 2))
            else:
                c[k] = text(rng, words)
        elif op == 4 and isinstance(c, dict):
            new = text(rng, words) if rng.random() < 0.5 else rng.choice((k.lower(), k.upper(), k + " ", k[:-1]))
            c[new] = c.pop(k)
        elif op == 5 and isinstance(c, dict):
            c[text(rng, words)] = value(rng, words)
        elif op == 6:
            if isinstance(c, dict):  # a key given twice (JSON allows it; the last one wins)
                marker = _DUP.format(len(dups))
                dups[marker] = k
                c[marker] = value(rng, words) if rng.random() < 0.5 else copy_json(c[k])
            else:
                c.insert(k, copy_json(c[k]))
        elif op == 7:
            inner = c[k]
            for _ in range(rng.choice((1, 2, 5, 40))):
                inner = [inner] if rng.random() < 0.5 else {text(rng, words): inner}
            c[k] = inner
        elif op == 8:
            other, ok = rng.choice(slots)
            c[k] = copy_json(other[ok])
        elif op == 9:
            c[k] = rng.choice(({}, [], "", 0))
        elif op == 10 and rng.random() < 0.05:
            c[k] = "x" * HUGE if rng.random() < 0.5 else [number(rng)] * 100_000
        else:
            c[k] = scalar(rng, words)
    return _Dups(root, dups) if dups else root


class _Dups:
    """A value whose serialization repeats some object keys (``mutate_json`` op 6)."""

    def __init__(self, root: Any, dups: dict[str, str]) -> None:
        self.root, self.dups = root, dups


def dump_json(v: Any, rng: random.Random) -> bytes:
    """JSON text of ``v`` in one of the spellings a writer may use (ASCII or not, indented or
    not, NaN allowed), with the duplicated keys of ``mutate_json`` written twice."""
    dups = {}
    if isinstance(v, _Dups):
        v, dups = v.root, v.dups
    indent = rng.choice((None, None, 1, 2, "\t"))
    out = json.dumps(v, ensure_ascii=rng.random() < 0.5, indent=indent)
    for marker, key in dups.items():
        out = out.replace(json.dumps(marker, ensure_ascii=False), json.dumps(key, ensure_ascii=False))
        out = out.replace(json.dumps(marker), json.dumps(key))
    return out.encode("utf-8", "surrogatepass")


def deep_nesting(rng: random.Random, open_: bytes = b"[", close: bytes = b"]", inner: bytes = b"0") -> bytes:
    n = rng.choice((300, 1000, 100_000))
    return open_ * n + inner + close * n


_RAW = (b"\x00", b"\xff", b"\xfe", b"\xc0\x80", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\xff\xfe", b"\xf4\x90\x80\x80",
        b"\x80", b"\r", b"\n", b"\\", b'"', b"'", b"\\u0000", b"\\ud800", b"%", b"\t")


def mutate_bytes(data: bytes, rng: random.Random, tokens: Sequence[bytes] = (), n: int | None = None) -> bytes:
    """``data`` with 1-8 byte-level edits: bit flips, inserted / deleted / duplicated ranges,
    format tokens, invalid UTF-8 and BOMs, truncation, and (rarely) a chunk repeated past the limits."""
    buf = bytearray(data)
    for _ in range(n or rng.randint(1, 8)):
        pos = rng.randint(0, len(buf))
        op = rng.randrange(10)
        if op == 0 and buf:
            i = pos % len(buf)
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # mostly ASCII: invalid UTF-8 has its own edit (op 7)
            raw = rng.randbytes(rng.randint(1, 8))
            buf[pos:pos] = raw if rng.random() < 0.2 else bytes(32 + b % 95 for b in raw)
        elif op == 2:
            del buf[pos:pos + rng.randint(1, 64)]
        elif op == 3 and buf:
            start = rng.randrange(len(buf))
            buf[pos:pos] = buf[start:start + rng.randint(1, 256)]
        elif op == 4 and tokens:
            buf[pos:pos] = rng.choice(tokens)
        elif op == 5 and tokens:
            tok = rng.choice(tokens)
            buf[pos:pos + len(tok)] = tok
        elif op == 6:
            del buf[pos:]
        elif op == 7:
            buf[pos:pos] = rng.choice(_RAW)
        elif op == 8 and buf:
            start = rng.randrange(len(buf))
            chunk = bytes(buf[start:start + rng.randint(1, 64)])
            times = HUGE // max(1, len(chunk)) + 1 if rng.random() < 0.02 else rng.randint(2, 200)
            buf[pos:pos] = chunk * times
        else:
            i = rng.randrange(len(buf)) if buf else 0
            buf[i:i + 1] = rng.choice(b"0123456789abcdefABCDEFxX-+. ").to_bytes(1, "big")
    return bytes(buf)


def freeform(rng: random.Random, tokens: Sequence[bytes] = ()) -> bytes:
    """Input from nothing: format tokens and strange text glued together, random bytes, or deep nesting."""
    r = rng.random()
    if r < 0.15:
        return rng.randbytes(rng.randint(0, 512))
    if r < 0.2:
        return deep_nesting(rng)
    parts = []
    for _ in range(rng.randint(0, 40)):
        if tokens and rng.random() < 0.6:
            parts.append(rng.choice(tokens))
        else:
            parts.append(text(rng).encode("utf-8", "surrogatepass"))
    return b"".join(parts)
