"""What every detector shares: the `Finding` it reports and the `Detector` interface.

A detector turns (normalised) text into findings. Spans always point into the *original* text, so
that masking and evidence work on what the user actually wrote. Evidence ids never carry raw
personal data: a lexicon entry id, a recognizer name, or a salted hash.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

if TYPE_CHECKING:
    from hegui.text import NormalizedText

Cost = Literal["cheap", "heavy", "remote"]
"""How the moderator runs a detector on the async path: ``cheap`` inline, ``heavy`` in a worker
thread (CPU-bound, e.g. a model), ``remote`` by awaiting :meth:`Detector.adetect` (I/O-bound)."""

StreamMode = Literal["window", "segment"]
"""``window``: exact-match detectors whose hits are bounded in length, checked on every chunk with a
hold-back of :meth:`Detector.holdback` characters. ``segment``: statistical detectors, checked on
sentence boundaries with overlap."""


@dataclass(frozen=True, slots=True)
class Finding:
    risk: str
    """A risk code from :mod:`hegui.taxonomy` (``A1a`` … ``A5b``, ``PI``, ``JB``)."""
    start: int
    """Start of the span in the original text (characters)."""
    end: int
    """End (exclusive) of the span in the original text."""
    score: float
    """Confidence in [0, 1]; exact matches report 1.0."""
    detector: str
    """Name of the detector that saw it."""
    evidence_id: str
    """What matched, without raw personal data: e.g. ``lexicon:houbb:1234``, ``pii:CN_RESIDENT_ID``."""
    kind: str = ""
    """Sub-type where it helps masking and reports, e.g. ``CN_RESIDENT_ID``, ``MOBILE``."""

    def to_dict(self) -> dict[str, object]:
        return {
            "risk": self.risk,
            "start": self.start,
            "end": self.end,
            "score": round(self.score, 4),
            "detector": self.detector,
            "evidence_id": self.evidence_id,
            "kind": self.kind,
        }


class DetectorError(RuntimeError):
    """A detector could not produce a result (model missing, endpoint down, timeout)."""


@dataclass
class Detector:
    """Base class of detectors. Subclasses set ``name`` and implement :meth:`detect`.

    Exact-match detectors (lexicon, PII) use ``stream_mode = "window"`` and report how many
    normalised characters a stream must hold back (:meth:`holdback`); statistical ones use
    ``"segment"``.
    """

    name: ClassVar[str] = "detector"
    cost: ClassVar[Cost] = "cheap"
    stream_mode: ClassVar[StreamMode] = "window"
    risks: tuple[str, ...] = field(default=(), kw_only=True)
    """Risk codes this detector can report (for coverage reports); empty means any."""

    def detect(self, text: NormalizedText) -> list[Finding]:
        raise NotImplementedError

    async def adetect(self, text: NormalizedText) -> list[Finding]:
        if self.cost == "heavy":
            return await asyncio.to_thread(self.detect, text)
        return self.detect(text)

    def detect_in_context(self, text: NormalizedText, context: NormalizedText) -> list[Finding]:
        """Findings in ``text`` (a model answer) given ``context`` (the question it answers).
        Detectors that judge a passage as a whole (classifier, guard model) override this to read the
        question too; exact-match detectors see only the answer, so the default ignores it."""
        return self.detect(text)

    async def adetect_in_context(self, text: NormalizedText, context: NormalizedText) -> list[Finding]:
        if self.cost == "heavy":
            return await asyncio.to_thread(self.detect_in_context, text, context)
        return self.detect_in_context(text, context)

    def holdback(self) -> int:
        """Characters of normalised text a stream must keep unsent so no hit can straddle the edge."""
        return 0

    def lookbehind(self) -> int:
        """Characters before a hit this detector reads to decide it (e.g. PII context words); a
        stream re-scans at least this much already-sent text so streamed and whole checks agree."""
        return 0
