"""Per-code-point lookup tables that let :func:`hegui.text.normalize` fold a whole string with a
few numpy operations instead of a Python loop per character.

For every code point we precompute, once per set of options:

* ``lut[cp]``: the code point it folds to (NFKC, then homoglyphs, traditional → simplified,
  case folding, repeated until stable), when that is exactly one character;
* ``cls[cp]``: its class after folding: ordinary, word (letter/digit), CJK ideograph, separator,
  deleted (invisible / format / combining mark), or *expands* to several characters (``㈱`` →
  ``(株)``); expansions are kept in a dict and handled on a slow path, as they are rare.

Traditional → simplified uses OpenCC's character table (opencc-pyo3, ``t2s``) applied per
character. Phrase-level conversion is not needed for matching, because lexicon patterns go through
the same folding, and a per-character table keeps the offset map 1:1.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hegui.text.homoglyphs import (
    ENCLOSED_EXPANSIONS,
    HOMOGLYPHS,
    INVISIBLE,
    NFKC_KEEP,
    SEPARATOR_PUNCTUATION,
)

if TYPE_CHECKING:
    from hegui.text.normalize import NormalizeOptions

OTHER, WORD, CJK, SEP, DELETE, EXPAND = 0, 1, 2, 3, 4, 5

MAX_CP = 0x110000

# Unified ideographs (BMP + extension A + all of planes 2 and 3) and the compatibility blocks.
HAN_RANGES: tuple[tuple[int, int], ...] = (
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0x20000, 0x3FFFF),
)
_COMPAT_HAN: tuple[tuple[int, int], ...] = ((0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def is_han(ch: str) -> bool:
    o = ord(ch)
    return any(lo <= o <= hi for lo, hi in HAN_RANGES) or any(lo <= o <= hi for lo, hi in _COMPAT_HAN)


_t2s_lock = threading.Lock()
_t2s_cache: dict[str, str] | None = None


def t2s_table() -> dict[str, str]:
    """OpenCC ``t2s`` applied to every ideograph on its own: {traditional: simplified}."""
    global _t2s_cache
    with _t2s_lock:
        if _t2s_cache is None:
            from opencc_pyo3 import OpenCC

            chars = [
                chr(cp)
                for lo, hi in (*HAN_RANGES[:2], (0x20000, 0x2EBEF), *_COMPAT_HAN)
                for cp in range(lo, hi + 1)
            ]
            # One call over newline-separated characters: OpenCC's phrase table cannot join them.
            converted = OpenCC("t2s").convert("\n".join(chars)).split("\n")
            if len(converted) != len(chars):  # pragma: no cover - depends on the OpenCC build
                raise RuntimeError("OpenCC t2s changed the number of lines; cannot build the table")
            table = {a: b for a, b in zip(chars, converted, strict=True) if a != b and len(b) == 1}
            # Resolve chains (薴 → 苧 → 苎) so that folding is idempotent.
            for a, b in list(table.items()):
                seen = {a}
                while b in table and b not in seen:
                    seen.add(b)
                    b = table[b]
                table[a] = b
            _t2s_cache = table
        return _t2s_cache


def _deletable(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return (
        ch in INVISIBLE
        or cat in ("Cf", "Mn", "Me", "Cs")
        or (cat == "Cc" and not ch.isspace())
    )


def _strip_accent(ch: str) -> str:
    # Latin/Greek/Cyrillic letters only: é → e, ǔ → u. Other scripts (kana voicing marks, Hangul)
    # would lose meaning.
    if ord(ch) < 0x80 or ord(ch) >= 0x530:
        return ch
    d = unicodedata.normalize("NFD", ch)
    if len(d) > 1 and all(unicodedata.combining(c) for c in d[1:]):
        return d[0]
    return ch


def _fold_once(s: str, opts: NormalizeOptions, t2s: dict[str, str]) -> str:
    out: list[str] = []
    for ch in s:
        piece = ch if ch in NFKC_KEEP else unicodedata.normalize("NFKC", ch)
        for c in piece:
            if _deletable(c):
                continue
            if opts.fold_homoglyphs:
                c = ENCLOSED_EXPANSIONS.get(c) or HOMOGLYPHS.get(c, c)
                c = "".join(_strip_accent(x) for x in c)
            if t2s:
                c = "".join(t2s.get(x, x) for x in c)
            if opts.casefold:
                c = c.casefold()
            out.append(c)
    return "".join(out)


def fold_string(s: str, opts: NormalizeOptions, t2s: dict[str, str]) -> str:
    """Fold a short string until it no longer changes (the definition the tables implement)."""
    for _ in range(4):
        nxt = _fold_once(s, opts, t2s)
        if nxt == s:
            break
        s = nxt
    return s


def classify(ch: str) -> int:
    """Class of an already folded character."""
    if is_han(ch):
        return CJK
    cat = unicodedata.category(ch)
    if ch.isspace() or cat[0] == "S" or cat in ("Pd", "Pc") or ch in SEPARATOR_PUNCTUATION:
        return SEP
    if cat[0] in "LN":
        return WORD
    return OTHER


@dataclass(frozen=True, slots=True)
class FoldTables:
    lut: np.ndarray
    cls: np.ndarray
    expansions: dict[str, str]
    expand_re: re.Pattern[str] | None


def _candidates() -> list[int]:
    skip = np.zeros(0x20000, dtype=bool)
    for lo, hi in HAN_RANGES[:2]:
        skip[lo : hi + 1] = True
    cps = np.flatnonzero(~skip).tolist()
    cps += list(range(0x2F800, 0x2FA20)) + list(range(0xE0000, 0xE01F0))
    return cps


def build_tables(opts: NormalizeOptions) -> FoldTables:
    t2s = t2s_table() if opts.traditional_to_simplified else {}
    lut = np.arange(MAX_CP, dtype=np.uint32)
    cls = np.zeros(MAX_CP, dtype=np.uint8)
    for lo, hi in HAN_RANGES:
        cls[lo : hi + 1] = CJK
    for a, b in t2s.items():
        if not (0xF900 <= ord(a) <= 0xFAFF or 0x2F800 <= ord(a) <= 0x2FA1F):
            lut[ord(a)] = ord(b)
    expansions: dict[str, str] = {}
    han_homoglyphs = [ord(c) for c in HOMOGLYPHS if is_han(c)] if opts.fold_homoglyphs else []
    for cp in _candidates() + han_homoglyphs:
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if cat == "Cn":
            continue
        if _deletable(ch):
            cls[cp] = DELETE
            continue
        if (
            (ord(ch) < 0x80 or ord(ch) >= 0x530)
            and ch not in HOMOGLYPHS
            and ch not in ENCLOSED_EXPANSIONS
            and ch not in t2s
            and unicodedata.is_normalized("NFKC", ch)
            and (not opts.casefold or ch.casefold() == ch)
        ):
            cls[cp] = classify(ch)  # fast skip: nothing folds it
            continue
        folded = fold_string(ch, opts, t2s)
        if folded == ch:
            cls[cp] = classify(ch)
        elif len(folded) == 1:
            lut[cp] = ord(folded)
            cls[cp] = classify(folded)
        elif not folded:
            cls[cp] = DELETE
        else:
            cls[cp] = EXPAND
            expansions[ch] = folded
    expand_re = re.compile("[" + "".join(re.escape(c) for c in expansions) + "]") if expansions else None
    return FoldTables(lut, cls, expansions, expand_re)


_tables_lock = threading.Lock()
_tables: dict[NormalizeOptions, FoldTables] = {}


def tables_for(opts: NormalizeOptions) -> FoldTables:
    """The tables for ``opts``, built on first use (~0.2 s) and then shared."""
    t = _tables.get(opts)
    if t is None:
        with _tables_lock:
            t = _tables.get(opts)
            if t is None:
                t = build_tables(opts)
                _tables[opts] = t
    return t
