"""Where personal information can be: one regex pass over the text that finds

- *segments*: maximal runs of the characters the number recognizers consume (``\\d``, ``a-z`` and
  ``+().:-`` and space) that contain an ASCII digit or a letter followed by a digit; every match of
  a ``scan = "segment"`` recognizer lies inside one, so the detector runs those recognizers on these
  few windows instead of the whole text;
- the start of every trigger word (``地址``, ``我叫`` …) of the ``scan = "trigger"`` recognizers;
- whether the text has upper-case ASCII (the detector must lower-case it, then scan again),
  whether it may hold a run of Chinese numerals the detector translates to digits (same) and
  whether it has a dash other than ``-`` between digits (``138–0013–8000``; same).

Python's ``re`` skips quickly over characters that cannot start a match only when a pattern begins
with a single character class, so the pass is one class (digits, letters, Chinese numerals and one
rare character of each trigger word) followed by branches that look back at which character it
was. A trigger word is found at its rarest character (by :data:`FREQUENT`), so common characters
such as ``我`` or ``地`` do not stop the scan. On 2,000-character Chinese comments this pass costs
about as much as one of the per-recognizer gate searches it replaces.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

from hegui.masking import DASHES  # the dashes the detector reads as "-" between two digits

CJK_NUMERALS = "零〇一二三四五六七八九幺两壹贰叁肆伍陆柒捌玖"
"""Characters the detector reads as digits in runs of seven or more (see ``detector.py``)."""


DASH_BETWEEN_DIGITS = f"[{DASHES}](?:(?<=[0-9][{DASHES}])|(?<=[0-9] [{DASHES}]))(?= ?[0-9])"
"""A dash of :data:`DASHES` the detector reads as ``-``."""

SEGMENT_CLASS = r"\da-z+().:\- "
"""The characters a ``scan = "segment"`` recognizer's patterns may consume (the text is lower-cased)."""

_SEGMENT_ASCII = frozenset("0123456789abcdefghijklmnopqrstuvwxyz+().:- ")
_UPPER = "A-Z\u212a"  # the only characters whose lower case is ASCII (U+212A KELVIN SIGN → k)

FREQUENT = "的人是我在到地家主事现当者名通系叫件请持住字居收庭往客联户姓细卡送货申患乘址邮寄详讯"
"""The characters of the built-in trigger words, most frequent first in the development pool's
comments; a trigger word is anchored at its character that is latest in this string or absent from
it (this only affects speed)."""

_SEG, _NUM, _UP, _TRIG = range(4)
_DIGIT_RUN = re.compile(r"\d+")
_LETTER = re.compile("[a-z]")
_ASCII_DIGITS = frozenset("0123456789")
_NUMERALS = frozenset(CJK_NUMERALS)
_NUMERALS_OR_DIGITS = _NUMERALS | _ASCII_DIGITS
_DASH_SET = frozenset(DASHES)


class Segment(NamedTuple):
    start: int
    end: int
    longest_run: int
    """Longest run of ``\\d`` characters."""
    digits: int
    """Number of ``\\d`` characters."""
    letters: int
    """Number of ``a-z`` characters."""


_new_segment = partial(tuple.__new__, Segment)  # skips NamedTuple's Python-level __new__


@dataclass(slots=True)
class Scan:
    segments: list[Segment] = field(default_factory=list)
    triggers: list[tuple[int, str]] = field(default_factory=list)
    """``(start, word)`` of every trigger word in the text (lower case), by start."""
    upper: bool = False
    """The text has upper-case ASCII: lower-case it and scan again."""
    numerals: bool = False
    """The text may have a run of seven or more digits and Chinese numerals: translate, scan again."""
    ascii: bool = True
    """Every segment is ASCII, so a ``\\d`` in a match is an ASCII digit."""
    dashes: bool = False
    """The text has a dash that the detector reads as ``-`` (:data:`DASHES`): translate, scan again."""

    def trigger_starts(self, words: frozenset[str] | None = None) -> list[int]:
        """Sorted start positions of these trigger words (default: all)."""
        return sorted({p for p, w in self.triggers if words is None or w in words})


def _can_anchor(c: str) -> bool:
    # not a character another branch of the scan starts with or a segment may hold
    return not (c.isascii() or c.isdecimal() or c.isspace() or c in CJK_NUMERALS or c == "\u212a")


def anchorable(word: str) -> bool:
    """Can the scan find this trigger word (it has a character other than ASCII, digits, spaces and
    Chinese numerals)? A trigger recognizer with a word that is not runs over the whole text."""
    return any(_can_anchor(c) for c in word.lower())


def _anchor(word: str) -> int:
    def rarity(i: int) -> tuple[int, int]:
        rank = FREQUENT.find(word[i])
        return (len(FREQUENT) if rank < 0 else rank, i)

    return max((i for i, c in enumerate(word) if _can_anchor(c)), key=rarity)


class Scanner:
    """The single pass; ``min_length`` is the shortest segment any recognizer can match in."""

    def __init__(self, triggers: Iterable[str] = (), min_length: int = 1) -> None:
        self.min_length = max(1, min_length)
        words = sorted({t.lower() for t in triggers}, key=lambda t: (-len(t), t))
        if not all(map(anchorable, words)):
            raise ValueError(f"a trigger word without a character to anchor it at: {words}")
        self._anchored: dict[str, list[tuple[str, int]]] = {}
        for w in words:
            k = _anchor(w)
            self._anchored.setdefault(w[k], []).append((w, k))
        anchors = "".join(sorted(self._anchored))
        numerals = re.escape(CJK_NUMERALS)
        seg = f"[{SEGMENT_CLASS}]"
        parts = [
            # from an ASCII digit: only segments long enough, or with more before the digit (the
            # caller extends those to the left), or that run into a Chinese numeral, or a digit
            # before a dash (see scan())
            f"(?<=[0-9])(?:{seg}{{{self.min_length - 1},}}|(?<={seg}[0-9])(?<![0-9][0-9]){seg}*|{seg}*(?=[{numerals}])"
            f"|(?= ?[{DASHES}]))",
            rf"(?<=[a-z])(?=\d)[{SEGMENT_CLASS}]*",
            f"(?<=[{_UPPER}])",
            f"(?<=[{numerals}])[0-9{numerals}]{{6}}",
        ]
        if self._anchored:
            parts.append(f"(?<=[{re.escape(anchors)}]){self._trigger_check()}")
        first = f"[0-9a-z{_UPPER}{numerals}{re.escape(anchors)}]"
        self._regex = re.compile(f"{first}(?:{'|'.join(parts)})")
        self._kind = dict.fromkeys("0123456789abcdefghijklmnopqrstuvwxyz", _SEG)
        self._kind.update(dict.fromkeys("ABCDEFGHIJKLMNOPQRSTUVWXYZ\u212a", _UP))
        self._kind.update(dict.fromkeys(CJK_NUMERALS, _NUM))
        self._kind.update(dict.fromkeys(self._anchored, _TRIG))

    def _trigger_check(self) -> str:
        """The regex that confirms a trigger word around the anchor character just read.

        An atomic group finds which anchor it was (most frequent first) and sets that anchor's
        capture group; nested conditionals then check only that anchor's words. Plain alternatives
        (one lookbehind per word) would try every word at every anchor character, and failing at a
        common one such as 当 is the usual case."""
        order = sorted(self._anchored, key=lambda c: (FREQUENT.find(c) % (len(FREQUENT) + 1), c))
        which = "|".join(f"(?<=({re.escape(c)}))" for c in order)
        check = "(?!)"
        for group, c in reversed(list(enumerate(order, 1))):
            words = []
            for w, k in self._anchored[c]:
                behind = f"(?<={re.escape(w[: k + 1])})" if k else ""
                ahead = f"(?={re.escape(w[k + 1 :])})" if k + 1 < len(w) else ""
                words.append(behind + ahead)
            check = f"(?({group})(?:{'|'.join(words)})|{check})"
        return f"(?>{which}){check}"

    def scan(self, text: str) -> Scan:
        segments: list[Segment] = []
        triggers: list[tuple[int, str]] = []
        numerals = False
        dashes = False
        ascii_only = True
        kinds = self._kind
        min_length = self.min_length
        n = len(text)
        new_segment = _new_segment
        for m in self._regex.finditer(text):
            a, e = m.span()
            kind = kinds[text[a]]
            if kind == _SEG:
                if e < n and (text[e] in _DASH_SET or (text[e] == " " and text[e + 1 : e + 2] in _DASH_SET)):
                    # a dash after digits (a segment ends at it, or a digit alone is before it): the
                    # caller reads the dashes between digits as "-" and, if that changes the text,
                    # scans again
                    dashes = True
                if (
                    not numerals  # once is enough: a run of 一1一1… would otherwise be walked again and again
                    and e < n
                    and text[e] in _NUMERALS
                    and text[e - 1] in _ASCII_DIGITS
                    and _numeral_run(text, e)
                ):
                    numerals = True  # 138零零一三八…: digits that go on in numerals
                s = a
                while s and (text[s - 1] in _SEGMENT_ASCII or text[s - 1].isdecimal()):
                    s -= 1
                if e - s < min_length:
                    continue
                seg = text[s:e]
                if seg.isdigit():
                    if seg.isascii():
                        segments.append(new_segment((s, e, e - s, e - s, 0)))
                        continue
                    letters = 0
                else:
                    letters = len(_LETTER.findall(seg))
                if not seg.isascii():
                    ascii_only = False
                runs = _DIGIT_RUN.findall(seg)
                segments.append(
                    new_segment((s, e, max(map(len, runs), default=0), sum(map(len, runs)), letters))
                )
            elif kind == _TRIG:
                for word, k in self._anchored[text[a]]:
                    if a >= k and text.startswith(word, a - k):
                        triggers.append((a - k, word))
            elif kind == _UP:
                return Scan(upper=True)  # the caller lower-cases the text and scans again
            else:
                numerals = True
        if len(triggers) > 1:
            triggers.sort()
        return Scan(segments, triggers, False, numerals, ascii_only, dashes)


def _numeral_run(text: str, i: int) -> bool:
    """Is ``text[i]`` in a run of seven or more digits and numerals?"""
    lo = hi = i
    while lo and text[lo - 1] in _NUMERALS_OR_DIGITS:
        lo -= 1
    while hi < len(text) and text[hi] in _NUMERALS_OR_DIGITS:
        hi += 1
    return hi - lo >= 7
