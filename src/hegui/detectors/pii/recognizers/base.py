"""The recognizer base class, its pattern and result types, and the regex helpers the built-in
recognizers share (boundary guards, grouped digits, the first-character trick)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from hegui.detectors.pii.scan import Segment

CONTEXT_BOOST = 0.35
"""Added to a pattern's score when a context word precedes the match (Presidio's default factor)."""

_NA = r"(?![0-9a-z])"
_NDA = r"(?![0-9])(?!-[0-9])"
_NOT_AFTER_DIGIT = ("[0-9]", "[0-9][ -]")  # no digit before, also not across one space or dash
_NOT_AFTER_ALNUM = ("[0-9a-z]",)

SEP = "[ .-]"
"""One separator between the groups of a number (the detector has already read dashes as ``-``)."""
_DIGITS4 = r"[0-9](?:[ .-]?[0-9]){3}"  # gates of recognizers with grouped patterns
_DIGITS6 = r"[0-9](?:[ .-]?[0-9]){5}"
# a grouped value is a whole run of digit groups: no digit before it, also not across one separator,
# and none after it
_NOT_IN_RUN = ("[0-9]", "[0-9][ .-]")
_NOT_IN_ALNUM_RUN = ("[0-9a-z]", "[0-9][ .-]")
_RUN_END = r"(?![0-9])(?![ .-][0-9])"
_RUN_END_ALNUM = r"(?![0-9a-z])(?![ .-][0-9])"
_NDA_PHONE = r"(?![0-9])(?![.-][0-9])"  # phones: a space and another number may follow
_GUARD_BEHIND = 2
"""Characters before a match that the built-in guards read (``_NOT_IN_RUN``: a digit and a separator)."""
_GUARD_AHEAD = 2
"""Characters after a match that the built-in guards read (``_RUN_END``: a separator and a digit)."""


def _grouped(n: int, char: str = r"\d") -> str:
    """``n`` more characters of class ``char``, each may follow one separator."""
    return f"(?:{SEP}?{char}){{{n}}}"


def _starting(first: str, rest: str, not_after: tuple[str, ...] = _NOT_AFTER_DIGIT) -> str:
    """A pattern that starts with the character class ``first`` and must not follow ``not_after``.

    The guard is a lookbehind placed *after* the first character (it covers that character too), so
    that the pattern starts with a character class: ``re`` then skips ahead to candidate characters
    in C instead of trying the lookbehind at every position, which is 5-10 times faster on Chinese
    text with few digits.
    """
    return first + "".join(f"(?<!{b}{first})" for b in not_after) + rest


@dataclass(frozen=True, slots=True)
class Pattern:
    name: str
    regex: str
    score: float
    """Score without a context word; 0 means the pattern is reported only with one."""
    context_score: float | None = None
    """Score with a context word; default ``min(1, score + CONTEXT_BOOST)``."""
    context: tuple[str, ...] | None = None
    """Context words for this pattern only (default: the recognizer's)."""


_Compiled = tuple[Pattern, re.Pattern[str], tuple[str, ...], float]
"""A pattern, its regex, its context words (case-folded) and its score with context."""


@dataclass(frozen=True, slots=True)
class RecognizerResult:
    kind: str
    start: int
    """Span in the normalised text."""
    end: int
    score: float
    pattern: str
    priority: int


class Recognizer:
    """Base class: subclasses set the ClassVars and may override :meth:`validate_result` and
    :meth:`extract`."""

    kind: ClassVar[str]
    patterns: ClassVar[tuple[Pattern, ...]]
    context: ClassVar[tuple[str, ...]] = ()
    max_length: ClassVar[int]
    prefilter: ClassVar[str] = "[0-9]"
    """Regex that must match somewhere in the text for this recognizer to run at all: texts with
    only short numbers (``25岁``) skip the recognizers of long ones. Each distinct gate is searched
    at most once per text."""
    priority: ClassVar[int] = 0
    """Breaks ties between overlapping results of equal score (higher wins)."""
    flags: ClassVar[int] = 0
    """Built-in patterns are written in lower case: the detector lower-cases the text."""
    scan: ClassVar[Literal["text", "segment", "trigger"]] = "text"
    """Where matches can be (package docstring); a wrong claim here loses findings, so the detector's
    tests compare every built-in recognizer with a whole-text scan."""
    triggers: ClassVar[tuple[str, ...]] = ()
    """``scan = "trigger"``: every pattern starts with one of these words."""
    min_length: ClassVar[int] = 1
    """``scan = "segment"``: shortest segment a result fits in (see :meth:`segment_may_match`)."""
    min_run: ClassVar[int] = 0
    """``scan = "segment"``: fewest consecutive ``\\d`` characters in a match."""
    min_digits: ClassVar[int] = 0
    """``scan = "segment"``: fewest ``\\d`` characters in a match."""
    min_letters: ClassVar[int] = 0
    """``scan = "segment"``: fewest ``a-z`` characters in a match."""
    lead: ClassVar[int] = 0
    """``scan = "segment"``: characters before a segment where a match may start (a plate's province)."""
    plain_lengths: ClassVar[frozenset[int] | None] = None
    """``scan = "segment"``: the lengths a segment of ASCII digits only can have to hold a match, when
    the patterns' guards (no digit before, none after) make a match take the whole run (None: any)."""
    split_lengths: ClassVar[frozenset[int]] = frozenset()
    """Numbers of value characters (``[0-9a-z]``, not separators, ``+`` or brackets) a result can
    have, for a recognizer whose results may be one of several identifiers in a run of numbers
    (``13800138000 13900139000``; see ``split.py``). Empty: a result is only ever a whole run. Only
    for recognizers whose check makes a random part of a run unlikely to pass (phonenumbers, Luhn
    and issuer, check digits)."""
    split_prefix: ClassVar[str] = ""
    """``split_lengths``: a regex that the first value characters of every result match (a quick
    test before the patterns run: a card starts with an issuer's prefix, a mobile number with
    ``1[3-9]`` or a country code)."""
    split_patterns: ClassVar[tuple[str, ...]] = ()
    """``split_lengths``: the patterns that can find a part (empty: all). A pattern whose guards read
    only the characters right next to it (``id18``) finds its results inside runs already."""

    def __init__(self) -> None:
        self._compiled: list[_Compiled] = []
        for p in self.patterns:
            words = tuple(w.casefold() for w in (p.context if p.context is not None else self.context))
            ctx_score = p.context_score if p.context_score is not None else min(1.0, p.score + CONTEXT_BOOST)
            self._compiled.append((p, re.compile(p.regex, self.flags), words, ctx_score))
        self._split_compiled = [
            c
            for c in self._compiled
            if self.split_lengths and (not self.split_patterns or c[0].name in self.split_patterns)
        ]
        self._split_prefix = (
            re.compile(self.split_prefix) if self.split_lengths and self.split_prefix else None
        )

    def validate_result(self, value: str) -> bool | None:
        """Checksum / plausibility hook: False drops the candidate, True or None keeps it."""
        return None

    def extract(self, text: str, m: re.Match[str]) -> tuple[int, int] | None:
        """The span to report for a match: the group ``v`` if the pattern has one, from the match
        start to the end of the group ``more`` if it has that one, else the match.

        Patterns with a context trigger put ``v`` in a lookahead, so that a long value does not
        swallow the next trigger (``姓名：张三联系人：李四``). A pattern that matches one character
        and puts the rest of the value in a lookahead group ``more`` lets the search try every
        later start as well, so its candidates may overlap (``12 1101 0519 7809 2894 65``: the
        candidate from ``12`` fails its check, the one from ``1101`` is the ID)."""
        groups = m.re.groupindex
        if "v" in groups:
            return m.span("v")
        if "more" in groups:
            return m.start(), m.end("more")
        return m.span()

    def segment_may_match(self, text: str, seg: Segment) -> bool:
        """``scan = "segment"``: can a result lie in (or, with ``lead``, end in) this segment?"""
        return (
            seg.end - seg.start >= self.min_length
            and seg.longest_run >= self.min_run
            and seg.digits >= self.min_digits
            and seg.letters >= self.min_letters
        )

    def may_start_part(self, value: str) -> bool:
        """``split_lengths``: can a result start with these value characters (lower case, without
        separators and brackets; at least the first four of them)?"""
        return self._split_prefix is not None and self._split_prefix.match(value) is not None

    def analyze_part(
        self,
        text: str,
        start: int,
        ends: Sequence[int],
        context_window: int,
        min_score: float,
        *,
        after_split: bool = True,
        open_end: bool = True,
    ) -> list[RecognizerResult]:
        """Results at or above ``min_score`` that start at ``start`` when a run of numbers is cut
        at the edges of a part (``split.py``). With ``after_split``, as if the separator before
        ``start`` ended the run (the patterns' guards do not see what is before it), else with the
        text before it as it is. The results end at one of ``ends``, as if the separator there ended
        the run, or, with ``open_end``, where the patterns' own guards allow. Only the patterns named
        in ``split_patterns``; scores, context words and ``validate_result`` as in :meth:`analyze`."""
        patterns = [c for c in self._split_compiled if max(c[0].score, c[3] if c[2] else 0) >= min_score]
        if not patterns:
            return []
        lo = start if after_split else max(0, start - _GUARD_BEHIND)
        pos = start - lo
        best: dict[int, RecognizerResult] = {}
        context: dict[tuple[str, ...], bool] = {}

        def add(part: str, entry: _Compiled, m: re.Match[str] | None, end: int) -> None:
            if m is None:
                return
            span = self.extract(part, m)  # positions in the slice
            if span is None or span[0] != pos or span[1] <= pos or (end >= 0 and span[1] != end - lo):
                return
            pattern, _, words, ctx_score = entry
            score = pattern.score
            if words:
                has = context.get(words)
                if has is None:
                    has = context[words] = _has_context(text, start, context_window, words)
                if has:
                    score = ctx_score
            if score <= 0 or score < min_score:
                return
            stop = lo + span[1]
            prev = best.get(stop)
            if prev is not None and score <= prev.score:
                return
            if prev is None and self.validate_result(text[start:stop]) is False:
                return
            best[stop] = RecognizerResult(self.kind, start, stop, score, pattern.name, self.priority)

        if open_end:
            part = text[lo : start + self.max_length + _GUARD_AHEAD]
            for entry in patterns:
                add(part, entry, entry[1].match(part, pos), -1)
        for end in ends:
            part = text[lo:end]
            for entry in patterns:
                regex = entry[1]
                groups = regex.groupindex
                if "v" in groups or "more" in groups:
                    m = regex.match(part, pos)
                else:
                    m = regex.fullmatch(part, pos)  # backtracks to the alignment that ends at ``end``
                add(part, entry, m, end)
        return list(best.values())

    def _matches(
        self,
        regex: re.Pattern[str],
        text: str,
        windows: Sequence[tuple[int, int]] | None = None,
        starts: Sequence[int] | None = None,
    ) -> Iterator[re.Match[str]]:
        if starts is not None:
            # what finditer would find when matches can only begin at these positions
            cursor = 0
            for p in starts:
                if p >= cursor:
                    m = regex.match(text, p)
                    if m is not None:
                        yield m
                        cursor = max(m.end(), p + 1)
        elif windows is not None:
            for pos, endpos in windows:
                yield from regex.finditer(text, pos, endpos)
        else:
            yield from regex.finditer(text)

    def analyze(
        self,
        text: str,
        context_window: int,
        windows: Sequence[tuple[int, int]] | None = None,
        starts: Sequence[int] | None = None,
    ) -> list[RecognizerResult]:
        """Results over ``text`` (normalised and lower-cased), with spans in it.

        ``windows`` (``(pos, endpos)`` pairs in text order, each starting where a whole-text scan
        would not be inside a match) or ``starts`` (every position a match can begin at) restrict
        the regex search; the results are the same as over the whole text when they cover every
        match (the detector's scan guarantees that)."""
        best: dict[tuple[int, int], RecognizerResult] = {}
        near_words: dict[tuple[str, ...], list[tuple[int, int]] | None] = {}
        for pattern, regex, words, ctx_score in self._compiled:
            searched = windows
            if pattern.score <= 0:
                # reported only with a context word: search only where one can be before a match
                if not words or ctx_score <= 0:
                    continue
                if words not in near_words:
                    near_words[words] = _near_words(text, windows, context_window, words)
                searched = near_words[words]
                if searched == []:
                    continue
            for m in self._matches(regex, text, searched, starts):
                span = self.extract(text, m)
                if span is None or span[0] >= span[1]:
                    continue
                start, end = span
                if words and _has_context(text, m.start(), context_window, words):
                    score = ctx_score
                else:
                    score = pattern.score
                if score <= 0:
                    continue
                prev = best.get(span)
                # the same span from another pattern (a grouped pattern also matches the plain form)
                # was validated already: the check depends on the value only
                if prev is not None and score <= prev.score:
                    continue
                if prev is None and self.validate_result(text[start:end]) is False:
                    continue
                best[span] = RecognizerResult(self.kind, start, end, score, pattern.name, self.priority)
        return list(best.values())


def _near_words(
    text: str, windows: Sequence[tuple[int, int]] | None, context_window: int, words: tuple[str, ...]
) -> list[tuple[int, int]] | None:
    """The windows with one of ``words`` in them or in the ``context_window`` characters before
    them ([] when none has; with no windows, the whole text: None if it has a word, else []). A match
    in any other window has no context word: case folding maps each character on its own, so the
    text before a match has a word only if the larger slice has it."""
    if windows is None:
        whole = text.casefold()
        return None if any(w in whole for w in words) else []
    out = []
    for s, e in windows:
        part = text[max(0, s - context_window) : e].casefold()
        if any(w in part for w in words):
            out.append((s, e))
    return out


def _has_context(text: str, start: int, window: int, words: tuple[str, ...]) -> bool:
    before = text[max(0, start - window) : start].casefold()
    return any(w in before for w in words)


_SEPARATORS = re.compile(r"[\s\-.·•・()（）]")


def _compact(value: str) -> str:
    if value.isalnum():  # no separator to remove (most values): skip the regex
        return value.upper()
    return _SEPARATORS.sub("", value).upper()
