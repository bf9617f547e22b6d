"""The PII detector: runs the recognizers over normalised text and reports findings of risk ``PI``
with spans in the original text and evidence ids that carry a salted hash, never the value.

:meth:`PIIDetector.analyze` first makes one pass over the text (``scan.py``) and then runs each
recognizer only where its matches can be: the number recognizers on the few runs of digits and
letters, the name and address recognizers at their trigger words. The results are the same as those
of running every recognizer over the whole text, which :meth:`PIIDetector.analyze_reference` still
does (the tests compare the two)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from hegui.detectors.base import Detector, Finding
from hegui.detectors.pii.config import PIIConfig
from hegui.detectors.pii.recognizers import (
    BUILTIN_RECOGNIZERS,
    Pattern,
    PatternRecognizer,
    Recognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from hegui.detectors.pii.scan import DASH_BETWEEN_DIGITS, DASHES, Scanner, anchorable
from hegui.detectors.pii.split import RunSplitter, split_points
from hegui.masking import CHINESE_DIGITS, canonical_value, value_digest

if TYPE_CHECKING:
    from hegui.text import NormalizedText


_DIGIT = re.compile("[0-9]")
_CHINESE_DIGIT = re.compile("[零〇一二三四五六七八九幺两壹贰叁肆伍陆柒捌玖]")
# seven or more in a row, mixed with ASCII digits or not (the normaliser already turned 〇 into 0):
# "一三八…" is a number, "一二三四五" in prose is counting
_CHINESE_DIGIT_RUN = re.compile("[0-9零〇一二三四五六七八九幺两壹贰叁肆伍陆柒捌玖]{7,}")
_DASH = re.compile(f"[{DASHES}]")
_DASH_BETWEEN_DIGITS = re.compile(DASH_BETWEEN_DIGITS)
_PHONE_KINDS = frozenset({"CN_MOBILE", "CN_LANDLINE"})
_LOOKAHEAD = 2
"""Characters after a match that the built-in patterns' lookaheads read (``(?!-[0-9])`` …)."""


@dataclass
class PIIDetector(Detector):
    name: ClassVar[str] = "pii"
    cost = "cheap"
    stream_mode = "window"

    config: PIIConfig = field(default_factory=PIIConfig)
    salt: bytes | None = None
    """Salt of evidence-id hashes; default: ``config.salt()`` (the environment variable)."""
    registry: RecognizerRegistry | None = None
    """Recognizers to run; default: the built-in ones for ``config.entities`` plus custom ones."""
    risks: tuple[str, ...] = field(default=("PI",), kw_only=True)

    def __post_init__(self) -> None:
        if self.salt is None:
            self.salt = self.config.salt()
        if self.registry is None:
            self.registry = RecognizerRegistry.default(self.config.entities)
            for c in self.config.custom_recognizers:
                patterns = [Pattern(p.name, p.regex, p.score, p.context_score) for p in c.patterns]
                self.registry.add(PatternRecognizer(c.kind, patterns, c.context, c.max_length))
        self._recognizers = list(self.registry)
        # each recognizer has a gate regex (a digit, "@", a trigger word); a gate is searched at most
        # once per text, so plain text costs a few fast scans. The gates are kept apart on purpose:
        # one alternation of them all defeats re's first-character scan and is ten times slower.
        self._gates = {f: re.compile(f) for f in dict.fromkeys(r.prefilter for r in self._recognizers)}
        self._digit_gates = [f for f in self._gates if f.startswith("[0-9]")]
        self._literal_gates = {f: f for f in self._gates if f and re.escape(f) == f}
        self._allowed = {canonical_value(k, v) for v in self.config.allow_list for k in self.registry.kinds}
        segment = [r for r in self._recognizers if r.scan == "segment"]
        # the default segment test inlined (a method call per segment and recognizer costs more
        # than the rest of the loop), shortest segments first so that a short one stops early;
        # recognizers that override the test are asked as well
        self._segment_tests = sorted(
            (
                (
                    r.min_length,
                    i,
                    r.min_run,
                    r.min_digits,
                    r.min_letters,
                    r.lead,
                    r.plain_lengths,
                    r if type(r).segment_may_match is not Recognizer.segment_may_match else None,
                )
                for i, r in enumerate(self._recognizers)
                if r.scan == "segment"
            ),
            key=lambda t: (t[0], t[1]),
        )
        self._triggered = [
            i
            for i, r in enumerate(self._recognizers)
            if r.scan == "trigger" and r.triggers and all(map(anchorable, r.triggers))
        ]
        self._trigger_words = {
            i: frozenset(t.lower() for t in self._recognizers[i].triggers) for i in self._triggered
        }
        self._whole = [
            i for i, r in enumerate(self._recognizers) if r.scan != "segment" and i not in self._triggered
        ]
        self._scanner = Scanner(
            (t for i in self._triggered for t in self._recognizers[i].triggers),
            min((r.min_length for r in segment), default=1),
        )
        # recognizers whose results may be one of several identifiers in a run of numbers (split.py)
        self._splitter = RunSplitter(self._recognizers, self.config.context_window, self.config.min_score)
        self._split_indices = [i for i, r in enumerate(self._recognizers) if r.split_lengths]
        # patterns of other recognizers may see case anywhere, so the text is always lower-cased
        self._lower_always = any(type(r) not in BUILTIN_RECOGNIZERS for r in self._recognizers)

    @classmethod
    def from_config(cls, config: PIIConfig) -> PIIDetector:
        return cls(config=config)

    def analyze(self, text: str) -> list[RecognizerResult]:
        """Non-overlapping results over ``text`` (normalised), best first where they competed."""
        return _resolve_overlaps(self._collect(text))

    def analyze_reference(self, text: str) -> list[RecognizerResult]:
        """:meth:`analyze` the simple way: every recognizer whose gate passes scans the whole text.
        About four times slower; kept as the definition the fast path is tested against."""
        return _resolve_overlaps(self._collect_reference(text))

    def _collect(self, text: str) -> list[RecognizerResult]:
        """Every recognizer's results above the threshold, in registry order, then the parts of runs
        of numbers split into identifiers (``split.py``), before overlaps are resolved; equal to
        :meth:`_collect_reference`, but each recognizer runs only where the scan says it can match."""
        if self._lower_always:
            text = _lower(text)
        scan = self._scanner.scan(text)
        if scan.upper:
            # only A-Z and U+212A lower-case to characters a built-in pattern reads; other case
            # changes are invisible to them (and to the case-folded context check), so text
            # without these skips the copy
            text = _lower(text)
            scan = self._scanner.scan(text)
        if scan.numerals or scan.dashes:
            # in the reference's order: numerals can put digits on both sides of a dash
            translated = _translate_dashes(_translate_numerals(text))
            if translated != text:
                text = translated
                scan = self._scanner.scan(text)
        window = self.config.context_window
        min_score = self.config.min_score
        n = len(text)
        windows: dict[int, list[tuple[int, int]]] = {}
        for seg in scan.segments:
            s, e, run, digits, letters = seg
            length = e - s
            plain = digits == length and scan.ascii  # ASCII digits only
            for min_length, i, min_run, min_digits, min_letters, lead, lengths, rec in self._segment_tests:
                if length < min_length:
                    break
                if (
                    run >= min_run
                    and digits >= min_digits
                    and letters >= min_letters
                    and (not plain or lengths is None or length in lengths)
                    and (rec is None or rec.segment_may_match(text, seg))
                ):
                    windows.setdefault(i, []).append((s - lead if s > lead else 0, min(n, e + _LOOKAHEAD)))
        if windows and not scan.ascii:
            # a \d that is not ASCII may match where the (ASCII) gate does not: keep the gate
            cache: dict[str, bool] = {}
            windows = {i: w for i, w in windows.items() if self._gate(self._recognizers[i], text, cache)}
        todo = [*windows, *self._whole]
        if scan.triggers:
            todo += self._triggered
        todo.sort()
        results: list[RecognizerResult] = []
        recognizers = self._recognizers
        for i in todo:
            rec = recognizers[i]
            if i in windows:
                found = rec.analyze(text, window, windows=windows[i])
            elif i in self._trigger_words:
                starts = scan.trigger_starts(self._trigger_words[i])
                if not starts:
                    continue
                found = rec.analyze(text, window, starts=starts)
            elif self._gate(rec, text, {}):
                found = rec.analyze(text, window)
            else:
                continue
            results.extend(r for r in found if r.score >= min_score)
        if windows:
            # a part is a match of its recognizer's patterns, so it lies in a segment that
            # recognizer has a window in, as do the split points at its edges
            regions = sorted({w for i in self._split_indices if i in windows for w in windows[i]})
            if regions:
                results += self._split(text, regions, results)
        return self._not_allowed(text, results) if self._allowed else results

    def _split(
        self, text: str, regions: list[tuple[int, int]], results: list[RecognizerResult]
    ) -> list[RecognizerResult]:
        """Identifiers that follow one another in a run of numbers (``split.py``), the same in both
        paths: the recognizers whose gate passes, at the split points in ``regions``."""
        points = split_points(text, regions)
        if not points:
            return []
        cache: dict[str, bool] = {}
        return self._splitter.results(text, points, results, lambda r: self._gate(r, text, cache))

    def _not_allowed(self, text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
        """``results`` without the values of ``pii.allow_list`` (after the split: an allowed number
        still tells its neighbour in a run where to start)."""
        return [r for r in results if canonical_value(r.kind, text[r.start : r.end]) not in self._allowed]

    def _gate(self, rec: Recognizer, text: str, cache: dict[str, bool]) -> bool:
        gate = cache.get(rec.prefilter)
        if gate is None:
            literal = self._literal_gates.get(rec.prefilter)
            if literal is not None:
                gate = literal in text  # "@": a substring test is faster than a regex search
            else:
                gate = self._gates[rec.prefilter].search(text) is not None
            cache[rec.prefilter] = gate
        return gate

    def _collect_reference(self, text: str) -> list[RecognizerResult]:
        text = _translate_dashes(_translate_numerals(_lower(text)))
        window = self.config.context_window
        min_score = self.config.min_score
        gate_cache: dict[str, bool] = {}
        if _DIGIT.search(text) is None:
            # every gate that starts with a digit fails: skip their scans
            gate_cache.update(dict.fromkeys(self._digit_gates, False))
        results: list[RecognizerResult] = []
        for rec in self._recognizers:
            gate = gate_cache.get(rec.prefilter)
            if gate is None:
                gate = gate_cache[rec.prefilter] = self._gates[rec.prefilter].search(text) is not None
            if not gate:
                continue
            results.extend(r for r in rec.analyze(text, window) if r.score >= min_score)
        if self._splitter.recognizers:
            results += self._split(text, [(0, len(text))], results)
        return self._not_allowed(text, results) if self._allowed else results

    def detect(self, text: NormalizedText) -> list[Finding]:
        if not self.config.enabled:
            return []
        assert self.salt is not None
        findings = []
        for r in self.analyze(text.text):
            start, end = text.to_original(r.start, r.end)
            if start > 0 and text.original[start - 1] in "+＋" and r.kind in _PHONE_KINDS:
                start -= 1  # the normaliser drops a "+" between CJK text and digits; mask it too
            digest = value_digest(r.kind, text.original[start:end], self.salt)
            findings.append(Finding("PI", start, end, r.score, self.name, f"pii:{r.kind}:{digest}", r.kind))
        return findings

    def holdback(self) -> int:
        """The longest result, or, when runs of numbers are split (``split.py``), the longest part
        and what decides it after its end: the split point, the identifier after it and the two
        characters its guards read."""
        longest = max((r.max_length for r in self._recognizers), default=0)
        if not self._splitter.recognizers:
            return longest
        return max(longest, self._splitter.reach - 1 + self._splitter.reach + _LOOKAHEAD)

    def lookbehind(self) -> int:
        """Characters of text *before* a match that its result depends on: the context window (a
        context word raises the score, and some patterns are reported only with one) plus the two
        characters the boundary guards look at, and, when runs of numbers are split (``split.py``),
        the identifier and split point before a part, whose own context words count. A stream that
        re-checks text near its emitted edge must give the detector at least this much
        already-sent text in front of it."""
        return self.config.context_window + 2 + self._splitter.reach


def _translate_numerals(text: str) -> str:
    """Phone numbers written in Chinese numerals; the mapping is one to one, so spans hold."""
    if _CHINESE_DIGIT.search(text):
        return _CHINESE_DIGIT_RUN.sub(lambda m: m.group().translate(CHINESE_DIGITS), text)
    return text


def _translate_dashes(text: str) -> str:
    """``138–0013–8000`` → ``138-0013-8000``: dashes between digits read as ``-``, one to one."""
    if _DASH.search(text):
        return _DASH_BETWEEN_DIGITS.sub("-", text)
    return text


def _lower(text: str) -> str:
    """``text`` lower-cased without changing its length (so spans stay valid)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def _resolve_overlaps(results: list[RecognizerResult]) -> list[RecognizerResult]:
    """Keep the best of overlapping results: higher score, then priority, then longer span.

    Results are first cut into clusters of overlapping spans (one sweep), so the pairwise check
    stays small even on texts with thousands of results."""
    kept: list[RecognizerResult] = []
    for cluster in _clusters(sorted(results, key=lambda r: (r.start, r.end))):
        if len(cluster) == 1:
            kept.extend(cluster)
            continue
        chosen: list[RecognizerResult] = []
        for r in sorted(cluster, key=lambda r: (-r.score, -r.priority, -(r.end - r.start), r.start)):
            if all(r.end <= k.start or r.start >= k.end for k in chosen):
                chosen.append(r)
        kept.extend(sorted(chosen, key=lambda r: r.start))
    return kept


def _clusters(ordered: list[RecognizerResult]) -> list[list[RecognizerResult]]:
    out: list[list[RecognizerResult]] = []
    end = -1
    for r in ordered:
        if out and r.start < end:
            out[-1].append(r)
            end = max(end, r.end)
        else:
            out.append([r])
            end = r.end
    return out
