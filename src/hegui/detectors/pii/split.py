"""Runs of numbers that hold several identifiers: ``电话 13800138000 13900139000``,
``卡号 6222 0212 3456 7890 123 6217 0012 3456 7890 122``, ``身份证110105197809289465 13800138000``.

A grouped pattern reads a run of digit groups as one number: no digit may come before it, not even
across one separator, and none after it (``_NOT_IN_RUN`` and ``_RUN_END`` in ``recognizers/base.py``),
so that a group of a longer number is not reported on its own. On its own, then, a run that holds
two identifiers yields at most the first (the second follows a digit and a separator), and not even
that when the first is a grouped card (the next group would continue it). This module considers the
ways of cutting such a run at its separators.

A *split point* is a separator (space, dot, hyphen: the detector has read dashes as ``-``) between
a digit or letter and a digit, ``+`` or ``(``. A *part* is a span that a recognizer with
``split_lengths`` reports when the run is cut at the split points at its edges
(``Recognizer.analyze_part``: the same patterns, checks and context words, with the guards not seeing
past a cut). A part is reported when each of its edges is explained:

- an edge that is not a split point needs nothing (the recognizer's guards checked it), nor does an
  end where the recognizer's own guards accept what follows (a phone number may be followed by a
  space and more digits);
- a split point before the part needs an identifier that ends there, a split point after it one
  that starts after it: another part, or a result of the ordinary pass no longer than a part can be.

The check is local, one neighbour on each side, not a segmentation of the whole run: the parts of a
long run ``c1 c2 … cN`` do not wait for its end, which a stream relies on. A part depends on at most
:func:`reach` characters after it (the split point, its neighbour; then the two characters the
guards read) and before it (the split point and its neighbour; then that one's context words), so
the detector's hold-back and look-behind grow by that much (``PIIDetector.holdback`` and
``lookbehind``).

Every split point has a bounded number of candidate parts (a part is at most ``max_length`` long,
has one of ``split_lengths`` value characters and starts with ``split_prefix``), so a run costs time
linear in its length; the detector looks for split points only in the segments of its scan where a
recognizer that splits runs can match, so text without such segments costs nothing more.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Sequence

from hegui.detectors.pii.recognizers.base import Recognizer, RecognizerResult, _has_context

SPLIT_POINT = re.compile(r"(?<=[0-9a-z])[ .-](?=[0-9+(])")
"""A separator between the end of a value (a digit, or the letter that ends an ID or a USCC) and what
can start another number: where the guards of a grouped pattern read a longer number."""
_GROUP_START = re.compile(r"(?<![0-9])[0-9+(]")
_NOT_VALUE = str.maketrans("", "", " .-+()")
_RUN = re.compile(r"[\da-z+() .-]*")
"""The characters a part can be made of (a run of number characters)."""


def reach(recognizers: Iterable[Recognizer]) -> int:
    """The longest part plus the split point next to it: how far a part's neighbour can reach (0
    when no recognizer splits runs)."""
    return max((r.max_length + 1 for r in recognizers if r.split_lengths), default=0)


def split_points(text: str, regions: Iterable[tuple[int, int]]) -> list[int]:
    """The split points in ``regions``, sorted. To find every part, the regions must hold every split
    point next to one: the whole text, or every segment of the detector's scan (a part and the split
    points at its edges lie in one run of segment characters)."""
    return sorted({m.start() for lo, hi in regions for m in SPLIT_POINT.finditer(text, lo, hi)})


class RunSplitter:
    """Finds the parts of runs of numbers for the recognizers with ``split_lengths``."""

    def __init__(self, recognizers: Iterable[Recognizer], context_window: int, min_score: float) -> None:
        self.recognizers = [r for r in recognizers if r.split_lengths]
        self.context_window = context_window
        self.min_score = min_score
        self.reach = reach(self.recognizers)
        # the context words one of which must come before a part to reach min_score, or None
        self._context_only = [_context_only(r, min_score) for r in self.recognizers]

    def results(
        self,
        text: str,
        points: Sequence[int],
        known: Sequence[RecognizerResult],
        enabled: Callable[[Recognizer], bool] | None = None,
    ) -> list[RecognizerResult]:
        """The parts next to the split ``points`` (:func:`split_points`) that are reported and are
        not in ``known`` (the results of the ordinary pass, at or above ``min_score``), ordered by
        span. ``enabled`` picks the recognizers to run (the detector's gates)."""
        splitters = [
            (r, words)
            for r, words in zip(self.recognizers, self._context_only, strict=True)
            if enabled is None or enabled(r)
        ]
        if not points or not splitters:
            return []
        window, min_score = self.context_window, self.min_score
        point_set = set(points)
        longest = max(r.max_length for r, _ in splitters)
        shortest = min(min(r.split_lengths) for r, _ in splitters)
        most = max(max(r.split_lengths) for r, _ in splitters)
        parts: list[tuple[RecognizerResult, int | None, int | None]] = []  # result, split before, after

        def starting(value: str, start: int) -> list[Recognizer]:
            """The recognizers that can have a part that starts here, with these value characters."""
            return [
                r
                for r, words in splitters
                if r.may_start_part(value) and (words is None or _has_context(text, start, window, words))
            ]

        def candidates(start: int, after_split: bool) -> None:
            # a part is made of number characters and has at least ``shortest`` value characters
            # (and the split point after the longest part)
            m = _RUN.match(text, start, start + longest + 1)  # always matches (maybe nothing)
            run = m.group() if m else ""
            value = run.translate(_NOT_VALUE)
            if len(value) < shortest:
                return
            recs: list[Recognizer] | None = None
            if after_split:  # most starts inside a run are no identifier's: test that first
                recs = starting(value, start)
                if not recs:
                    return
            # the split points a part from here can end at, with the value characters before them
            # (in a part, everything but separators, "+" and brackets is a value character)
            ends: list[tuple[int, int]] = []
            first = bisect.bisect_right(points, start)
            for k in points[first : first + longest]:
                if k >= start + len(run):
                    break
                n = len(run[: k - start].translate(_NOT_VALUE))
                if n > most:
                    break
                if n >= shortest:
                    ends.append((k, n))
            if recs is None:
                if not ends:
                    return  # a part from here would end where the run ends: an ordinary result
                recs = starting(value, start)
            left = start - 1 if after_split else None
            for rec in recs:
                last = start + rec.max_length
                at = [k for k, n in ends if k <= last and n in rec.split_lengths]
                free: set[int] = set()
                if after_split:  # ends where the recognizer's own guards allow: no neighbour needed
                    for r in rec.analyze_part(text, start, (), window, min_score):
                        parts.append((r, left, None))
                        free.add(r.end)
                if at:
                    for r in rec.analyze_part(
                        text, start, at, window, min_score, after_split=after_split, open_end=False
                    ):
                        if r.end not in free:
                            parts.append((r, left, r.end))

        for i in points:
            candidates(i + 1, after_split=True)
        # parts that start where a run starts (not after a split point) and end at a split point;
        # those that end where the run ends are results of the ordinary pass
        for lo, hi in _merged((max(0, k - longest), k) for k in points):
            for m in _GROUP_START.finditer(text, lo, hi):
                if m.start() - 1 not in point_set:
                    candidates(m.start(), after_split=False)
        if not parts:
            return []

        # neighbours: the parts, and the other results no longer than a part can be (not a long
        # e-mail or IPv6 address), so that a part depends on no more than ``reach`` characters
        # beside it (the detector's hold-back and look-behind count on it)
        near = [r for r in known if r.end - r.start < self.reach]
        ends_at = {r.end for r in near if r.end in point_set}
        starts_after = {r.start - 1 for r in near if r.start - 1 in point_set}
        for r, left, _ in parts:
            ends_at.add(r.end)
            if left is not None:
                starts_after.add(left)
        have = {(r.kind, r.start, r.end) for r in known}
        out: dict[tuple[str, int, int], RecognizerResult] = {}
        for r, left, right in parts:
            if (left is None or left in ends_at) and (right is None or right in starts_after):
                key = (r.kind, r.start, r.end)
                if key not in have and (key not in out or r.score > out[key].score):
                    out[key] = r
        return sorted(out.values(), key=lambda r: (r.start, r.end, -r.priority))


def _context_only(rec: Recognizer, min_score: float) -> tuple[str, ...] | None:
    """The context words one of which must come before a part of ``rec`` to reach ``min_score``
    (None: some part pattern reaches it without)."""
    patterns = [p for p in rec.patterns if not rec.split_patterns or p.name in rec.split_patterns]
    if any(p.score >= min_score for p in patterns):
        return None
    words = {w.casefold() for p in patterns for w in (p.context if p.context is not None else rec.context)}
    return tuple(sorted(words))


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted spans merged where they overlap or touch."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out
