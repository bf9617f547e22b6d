"""Normalisation for matching: NFKC (full-width → half-width), homoglyph folding, traditional →
simplified, case folding, removal of invisible characters and of separators put between CJK
characters. Keeps an offset map so that every span of the normalised text maps back to the
original text.

The normalised text is for *matching*, not for display: it is deliberately lossy (``〇`` → ``0``,
``乾`` → ``干`` everywhere), and lexicon patterns go through the very same function, so both sides
agree. See ``docs/text.md`` for the rules and their reasons.

Speed: one pass of numpy table lookups over the code points (no Python loop per character). When
nothing is deleted or expanded the offset map is the identity and costs nothing (two ``range``
objects); otherwise it is a compact ``array('q')``. Characters whose folding has several
characters (``㈱`` → ``(株)``) take a slow path that loops over those characters only.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hegui.text.tables import CJK, DELETE, EXPAND, SEP, WORD, FoldTables, tables_for


@dataclass(frozen=True, slots=True)
class NormalizeOptions:
    traditional_to_simplified: bool = True
    """Fold traditional characters to simplified (OpenCC ``t2s`` character table)."""
    remove_separators: bool = True
    """Drop runs of spaces, symbols, emoji and ``*._-|/`` between CJK characters (``赌 * 博``)."""
    fold_homoglyphs: bool = True
    """Fold Cyrillic/Greek look-alikes, enclosed digits/letters, CJK radical forms, Latin accents."""
    casefold: bool = True


DEFAULT_OPTIONS = NormalizeOptions()


@dataclass(frozen=True, slots=True)
class NormalizedText:
    original: str
    text: str
    starts: Sequence[int] = field(repr=False)
    """``starts[i]``: index in ``original`` where normalised char ``i`` comes from."""
    ends: Sequence[int] = field(repr=False)
    """``ends[i]``: index in ``original`` just past the source of normalised char ``i``."""

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a normalised span ``[start, end)`` to the span of the original text it came from.

        The result starts at the first original character of ``start`` and ends after the last
        original character of ``end - 1``: characters removed *inside* the span (separators,
        zero-width characters) are covered; removed characters at its edges are not.
        """
        if start >= end:
            pos = self.starts[start] if start < len(self.starts) else len(self.original)
            return pos, pos
        return self.starts[start], self.ends[end - 1]

    def settled_length(self) -> int:
        """Normalised characters that text appended later cannot change.

        Only a trailing run of separators is provisional: it is kept while nothing follows it, and
        removed once a CJK character arrives (``赌 `` + ``博``). Everything else is folded character
        by character and never depends on what comes next.
        """
        from hegui.text.tables import SEP, classify

        k = len(self.text)
        while k > 0 and classify(self.text[k - 1]) == SEP:
            k -= 1
        return k

    def safe_edge(self, holdback: int) -> int:
        """Index in ``original`` up to which a stream may release text when more may follow: any
        match of at most ``holdback`` normalised characters that ends in text still to come starts
        at or after it."""
        cut = self.settled_length() - holdback
        if cut <= 0:
            return 0
        if cut >= len(self.text):
            return len(self.original)
        return self.starts[cut]


def _int_seq(values: np.ndarray) -> array[int]:
    return array("q", values.astype(np.int64, copy=False).tobytes())


def _expand(text: str, cls: np.ndarray, tables: FoldTables) -> tuple[str, np.ndarray]:
    """Replace characters that fold to several characters; return the new text and, for each of
    its characters, the index of the original character it comes from."""
    n = len(text)
    counts = np.ones(n, dtype=np.int64)
    parts: list[str] = []
    prev = 0
    for p in np.flatnonzero(cls == EXPAND).tolist():
        rep = tables.expansions[text[p]]
        parts.append(text[prev:p])
        parts.append(rep)
        counts[p] = len(rep)
        prev = p + 1
    parts.append(text[prev:])
    return "".join(parts), np.repeat(np.arange(n, dtype=np.int64), counts)


def _removed_separators(cls: np.ndarray, special: np.ndarray, sc: np.ndarray) -> np.ndarray:
    """Positions of separator characters in a run that sits between two word characters, at least
    one of them CJK. ``special`` are the positions of separators and deleted characters (the two
    are transparent inside a run), ``sc`` their classes."""
    n = len(cls)
    brk = np.diff(special) != 1
    run_id = np.concatenate(([0], np.cumsum(brk)))
    cut = brk.nonzero()[0]
    first = special[np.concatenate(([0], cut + 1))]
    last = special[np.concatenate((cut, [len(special) - 1]))]
    # Runs are maximal, so their neighbours are solid (other, word or CJK).
    lc = cls[np.maximum(first - 1, 0)]
    rc = cls[np.minimum(last + 1, n - 1)]
    removable = (
        (first > 0) & (last < n - 1) & (lc >= WORD) & (rc >= WORD) & ((lc == CJK) | (rc == CJK))
    )
    result: np.ndarray = special[(sc == SEP) & removable[run_id]]
    return result


def _removed_separators_few(cls: np.ndarray, special: list[int]) -> list[int]:
    """Same as :func:`_removed_separators` for a handful of special positions, where a plain loop
    beats a dozen numpy calls."""
    c = cls.tobytes()
    n = len(c)
    out: list[int] = []
    i, k = 0, len(special)
    while i < k:
        j = i
        while j + 1 < k and special[j + 1] == special[j] + 1:
            j += 1
        a, b = special[i], special[j]
        if a > 0 and b < n - 1:
            lc, rc = c[a - 1], c[b + 1]
            if lc >= WORD and rc >= WORD and (lc == CJK or rc == CJK):
                out.extend(p for p in special[i : j + 1] if c[p] == SEP)
        i = j + 1
    return out


_FEW = 48


def normalize(text: str, options: NormalizeOptions | None = None) -> NormalizedText:
    """Normalise ``text`` for matching and keep the map back to it (see the module docstring)."""
    opts = options or DEFAULT_OPTIONS
    tables = tables_for(opts)
    n = len(text)
    if n == 0:
        return NormalizedText(text, "", range(0), range(0))
    cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    cls = tables.cls[cps]
    special = (cls >= SEP).nonzero()[0]
    if len(special) == 0:
        # Common case: only 1:1 foldings (full-width punctuation, traditional characters, case).
        out = tables.lut[cps].tobytes().decode("utf-32-le")
        return NormalizedText(text, out, range(n), range(1, n + 1))
    sc = cls[special]
    base: np.ndarray | None = None
    if (sc == EXPAND).any():
        expanded, base = _expand(text, cls, tables)
        cps = np.frombuffer(expanded.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        cls = tables.cls[cps]
        n = len(cps)
        special = (cls >= SEP).nonzero()[0]
        sc = cls[special]
    drop = special[sc == DELETE]
    if opts.remove_separators and len(special) > len(drop):
        if len(special) <= _FEW:
            removed = _removed_separators_few(cls, special.tolist())
            if removed:
                drop = np.concatenate((drop, np.array(removed, dtype=np.int64)))
        else:
            drop = np.concatenate((drop, _removed_separators(cls, special, sc)))
    folded = tables.lut[cps]
    if len(drop):
        keep_mask = np.ones(n, dtype=bool)
        keep_mask[drop] = False
        keep = keep_mask.nonzero()[0]
        out = folded[keep].tobytes().decode("utf-32-le", "surrogatepass")
        src = keep if base is None else base[keep]
    else:
        out = folded.tobytes().decode("utf-32-le", "surrogatepass")
        if base is None:
            return NormalizedText(text, out, range(n), range(1, n + 1))
        src = base
    return NormalizedText(text, out, _int_seq(src), _int_seq(src + 1))


_SENTINEL = "\U0010fffd"  # private use: class "other", never folded, never a separator neighbour


def normalize_many(words: Sequence[str], options: NormalizeOptions | None = None) -> list[str]:
    """Normalised text of each word, as :func:`normalize` would give it, in one pass (for building
    lexicons of tens of thousands of patterns)."""
    if not words:
        return []
    if any(_SENTINEL in w for w in words):
        return [normalize(w, options).text for w in words]
    # The sentinel is a non-word character, exactly like the edge of a string, so separator
    # removal next to it behaves as at the start/end of a single word.
    joined = normalize(_SENTINEL.join(words), options).text
    parts = joined.split(_SENTINEL)
    if len(parts) != len(words):  # pragma: no cover - the sentinel is never folded or removed
        return [normalize(w, options).text for w in words]
    return parts
