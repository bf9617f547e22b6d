"""Moderation: detectors + policy → verdict, for whole texts and for streams.

:class:`Moderator` checks a whole text. :class:`StreamModerator` checks a stream incrementally: it
holds back as many normalised characters as the longest lexicon entry or PII pattern needs, so no
character that those detectors would catch reaches the client before it has been checked, even when
a word is split across chunks or disguised with separators. Statistical detectors (classifier, guard
model) run on sentence boundaries with overlap, after the text they judge may have been sent; when
they fire, the stream stops and the client is told to retract what it showed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hegui import masking, taxonomy
from hegui.detectors.base import Detector, Finding
from hegui.errors import UserError
from hegui.policy import Action, Direction, Policy, load_policy
from hegui.text import NormalizedText, normalize

if TYPE_CHECKING:
    from hegui.config import HeguiConfig
    from hegui.detectors.lexicon import ExtraEntries
    from hegui.masking import TokenVault

# Extra normalised characters held back beyond the detectors' own hold-back, as a safety margin
# should a future normalisation step look ahead (today none does beyond trailing separators).
NORMALIZE_LOOKAHEAD = 4
# Original characters re-scanned before the emitted edge, so normalisation sees its left context;
# detectors that read context words before a hit ask for more through Detector.lookbehind().
RESCAN_CONTEXT = 16
# Sentence ends at which segment detectors (classifier, guard model) run in a stream.
SEGMENT_ENDS = frozenset("。！？!?；;\n…")
# Overlap (characters) carried from one segment into the next for segment detectors.
SEGMENT_OVERLAP = 32
# Segments shorter than this wait for more text unless the stream ends; longer ones run regardless.
SEGMENT_MIN_CHARS = 24
SEGMENT_MAX_CHARS = 400


def new_decision_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Verdict:
    decision_id: str
    action: Action
    direction: str
    scene: str
    findings: list[Finding]
    text: str
    """What to pass on: the original (allow/flag), masked text (mask) or the refusal message."""
    refusal: str | None = None
    failed_detectors: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    escalate: bool = False
    redacted: str = field(default="", repr=False)
    """The checked text with every personal-information finding masked: safe to store in records."""
    excused: list[Finding] = field(default_factory=list)
    """Findings an explicit refusal excused (an output checked with its question): with
    ``classifier.refusal_action: allow`` they are not in ``findings``; with ``flag`` they are, at
    ``flag`` at most."""
    excused_by: str | None = None
    """``"refusal"`` when findings were excused, else ``None``."""

    @property
    def allowed(self) -> bool:
        return self.action.passes

    @property
    def risks(self) -> list[str]:
        return sorted({f.risk for f in self.findings})

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "action": self.action.value,
            "allowed": self.allowed,
            "direction": self.direction,
            "scene": self.scene,
            "risks": self.risks,
            "findings": [f.to_dict() for f in self.findings],
            "text": self.text,
            "refusal": self.refusal,
            "failed_detectors": self.failed_detectors,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "escalate": self.escalate,
            # Only when something was excused, so a verdict without context reads as it always did.
            **({"excused_by": self.excused_by, "excused": [f.to_dict() for f in self.excused]}
               if self.excused_by else {}),
        }


@dataclass
class Masker:
    """Applies the ``mask`` action and redacts records, with the PII section's operators."""

    operators: dict[str, str] = field(default_factory=lambda: {"*": "redact"})
    salt: bytes | None = None
    vault: TokenVault | None = None

    @classmethod
    def from_config(cls, cfg: HeguiConfig) -> Masker:
        return cls(cfg.pii.operators(), cfg.pii.salt(), cfg.pii.open_vault(cfg.base_dir))

    def mask(self, original: str, findings: Sequence[Finding]) -> str:
        """The text to pass on: each finding masked with its configured operator."""
        return masking.mask(original, findings, self.operators, salt=self.salt, vault=self.vault) if findings \
            else original

    def redact(self, original: str, findings: Sequence[Finding]) -> str:
        """The text to store: personal information replaced by type tags, nothing reversible."""
        pi = [f for f in findings if f.risk == "PI"]
        return masking.mask(original, pi, "redact") if pi else original


@dataclass(frozen=True)
class RefusalExcuse:
    """Which findings an output that declines in words is excused for (``classifier.refusal_*``).

    A good refusal repeats the question's sensitive words (我不能提供冰毒的制作方法): model findings
    on it say "this talks about drugs", which it does, safely. Lexicon hits are excused too, except
    for the risks in ``keeps`` (banned political names and slogans: on screen they are the harm,
    whatever sentence quotes them). Personal information and the jailbreak signal are never
    excused: a refusal that carries a phone number still shows the number.
    """

    enabled: bool = True
    action: str = "allow"
    keeps: tuple[str, ...] = ("A1a", "A1b", "A1c")
    model_detectors: frozenset[str] = frozenset({"classifier", "guard", "cascade"})
    lexicon_detectors: frozenset[str] = frozenset({"lexicon"})

    @classmethod
    def from_config(cls, cfg: HeguiConfig | None) -> RefusalExcuse:
        if cfg is None:
            return cls()
        c = cfg.classifier
        return cls(enabled=c.refusal_aware, action=c.refusal_action, keeps=tuple(c.refusal_keeps))

    def excusable(self, f: Finding) -> bool:
        if f.risk in ("PI", "JB") or not f.risk.startswith("A"):
            return False
        if f.detector in self.model_detectors:
            return True
        return f.detector in self.lexicon_detectors and not any(taxonomy.matches(k, f.risk) for k in self.keeps)


class Moderator:
    """Detectors + policy → :class:`Verdict`. Safe to share between threads and tasks."""

    def __init__(
        self,
        detectors: Sequence[Detector],
        policy: Policy,
        cfg: HeguiConfig | None = None,
        masker: Masker | None = None,
    ) -> None:
        self.detectors = list(detectors)
        self.policy = policy
        self.masker = masker or (Masker.from_config(cfg) if cfg is not None else Masker())
        self._cfg = cfg
        self.excuse = RefusalExcuse.from_config(cfg)

    @classmethod
    def from_config(cls, cfg: HeguiConfig, *, only: list[str] | None = None) -> Moderator:
        from hegui.detectors.guard import with_cascade
        from hegui.detectors.registry import build_detectors

        policy = load_policy(cfg.resolve_path(cfg.policy) if cfg.policy else None)
        return cls(with_cascade(build_detectors(cfg, only=only), cfg.guard), policy, cfg)

    def reload(self) -> None:
        """Hot reload: rebuild lexicons and policy from their files without a restart."""
        for det in self.detectors:
            reload = getattr(det, "reload", None)
            if callable(reload):
                reload()
        if self._cfg is not None:
            self.policy = load_policy(self._cfg.resolve_path(self._cfg.policy) if self._cfg.policy else None)

    def use_lexicon_entries(self, entries: ExtraEntries) -> int:
        """Give every lexicon detector these staff entries (each rebuilt and swapped, see
        ``LexiconDetector.use_entries``); returns how many detectors took them."""
        taken = 0
        for det in self.detectors:
            use = getattr(det, "use_entries", None)
            if callable(use):
                use(entries)
                taken += 1
        return taken

    # -- helpers shared by check, acheck and streams -------------------------------------------

    def _check_scene(self, scene: str) -> None:
        if not self.policy.has_scene(scene):
            raise UserError(f"unknown scene {scene!r} (policy declares: {', '.join(sorted(self.policy.scenes))})")

    @property
    def window_detectors(self) -> list[Detector]:
        return [d for d in self.detectors if d.stream_mode == "window"]

    @property
    def segment_detectors(self) -> list[Detector]:
        return [d for d in self.detectors if d.stream_mode == "segment"]

    def holdback(self) -> int:
        """Normalised characters a stream holds back (longest window-detector pattern + lookahead)."""
        return max((d.holdback() for d in self.window_detectors), default=0) + NORMALIZE_LOOKAHEAD

    def decide(
        self,
        original: str,
        findings: list[Finding],
        failed: list[str],
        timings: dict[str, float],
        direction: Direction,
        scene: str,
        decision_id: str | None = None,
        excused: Sequence[Finding] = (),
    ) -> Verdict:
        """The verdict on ``findings``. ``excused`` findings (see :meth:`excuse_refusal`) that are
        also in ``findings`` act at ``flag`` at most; they are recorded on the verdict either way."""
        action = Action.ALLOW
        severity = 0
        message: str | None = None
        to_mask: list[Finding] = []
        capped = set(excused) if excused else None
        # Texts often carry many findings of one risk and score (a lexicon list); decide each once.
        memo: dict[tuple[str, float, bool], tuple[Action, str | None, int]] = {}
        for f in findings:
            key = (f.risk, f.score, capped is not None and f in capped)
            decided = memo.get(key)
            if decided is None:
                a, msg = self.policy.action_for(f.risk, direction, scene, f.score)
                if key[2] and a.severity > Action.FLAG.severity:
                    a, msg = Action.FLAG, None
                decided = memo[key] = (a, msg, a.severity)
            a, msg, sev = decided
            if a is Action.MASK:
                to_mask.append(f)
            if sev > severity:
                action, message, severity = a, msg, sev
            elif sev == severity and message is None:
                message = msg
        if failed and self.policy.fails_closed(scene) and action.severity < Action.REFUSE.severity:
            action, message = Action.REFUSE, self.policy.error_refusal
        redacted = self.masker.redact(original, findings)
        if action.passes:
            text = self.masker.mask(original, to_mask) if action is Action.MASK else original
            refusal = None
        else:
            refusal = message or self.policy.refusal_for(scene)
            text = refusal
        return Verdict(
            decision_id=decision_id or new_decision_id(),
            action=action,
            direction=direction,
            scene=scene,
            findings=findings,
            text=text,
            refusal=refusal,
            failed_detectors=failed,
            timings_ms=timings,
            escalate=action is Action.BLOCK,
            redacted=redacted,
            excused=list(excused),
            excused_by="refusal" if excused else None,
        )

    def excuse_refusal(self, answer: str, question: str | None, findings: list[Finding],
                       direction: Direction) -> tuple[list[Finding], list[Finding]]:
        """``(findings to decide on, excused findings)`` for an output read with its question.

        Only an answer that declines in words (``RefusalReading.explicit``) excuses anything: one
        that merely warns (河南人都是骗子，不要相信他们) may be asserting what it warns about. The
        refusal reader runs only when some finding could be excused, so clean answers pay nothing.
        """
        if question is None or direction != "output" or not self.excuse.enabled:
            return findings, []
        excusable = [f for f in findings if self.excuse.excusable(f)]
        if not excusable:
            return findings, []
        from hegui.detectors.refusal import classify_answer

        reading = classify_answer(answer, question)
        if not (reading.refused and reading.explicit):
            return findings, []
        if self.excuse.action == "flag":
            return findings, excusable
        kept = [f for f in findings if not self.excuse.excusable(f)]
        return kept, excusable

    def _run(self, det: Detector, nt: NormalizedText, findings: list[Finding], failed: list[str],
             timings: dict[str, float], ctx: NormalizedText | None = None) -> None:
        t0 = time.perf_counter()
        try:
            findings.extend(det.detect(nt) if ctx is None else det.detect_in_context(nt, ctx))
        except Exception:
            failed.append(det.name)
        timings[det.name] = (time.perf_counter() - t0) * 1000

    # -- whole texts ---------------------------------------------------------------------------

    def _context(self, direction: Direction, context: str | None) -> NormalizedText | None:
        """The question, normalised, when an output is checked with it (inputs ignore context)."""
        return normalize(context) if context is not None and direction == "output" else None

    def check(self, text: str, direction: Direction = "input", scene: str = "default",
              context: str | None = None) -> Verdict:
        """Check ``text``. ``context`` is the question an output answers (the last user message):
        model detectors read it, and an answer that declines in words is excused for what it quotes
        (:meth:`excuse_refusal`). ``None`` checks the text alone."""
        self._check_scene(scene)
        t0 = time.perf_counter()
        nt = normalize(text)
        ctx = self._context(direction, context)
        timings: dict[str, float] = {"normalize": (time.perf_counter() - t0) * 1000}
        findings: list[Finding] = []
        failed: list[str] = []
        for det in self.detectors:
            self._run(det, nt, findings, failed, timings, ctx)
        findings.sort(key=lambda f: (f.start, f.end, f.risk))
        return self._decide_in_context(text, context, findings, failed, timings, direction, scene)

    def _decide_in_context(self, text: str, context: str | None, findings: list[Finding], failed: list[str],
                           timings: dict[str, float], direction: Direction, scene: str) -> Verdict:
        if context is None:
            return self.decide(text, findings, failed, timings, direction, scene)
        t0 = time.perf_counter()
        findings, excused = self.excuse_refusal(text, context, findings, direction)
        timings["refusal"] = (time.perf_counter() - t0) * 1000
        return self.decide(text, findings, failed, timings, direction, scene, excused=excused)

    async def acheck(self, text: str, direction: Direction = "input", scene: str = "default",
                     context: str | None = None) -> Verdict:
        """Like :meth:`check`; heavy detectors run in threads and remote ones concurrently."""
        self._check_scene(scene)
        t0 = time.perf_counter()
        nt = normalize(text)
        ctx = self._context(direction, context)
        timings: dict[str, float] = {"normalize": (time.perf_counter() - t0) * 1000}
        findings: list[Finding] = []
        failed: list[str] = []
        slow = [d for d in self.detectors if d.cost != "cheap"]
        for det in self.detectors:
            if det.cost == "cheap":
                self._run(det, nt, findings, failed, timings, ctx)
        if slow:
            await asyncio.gather(*(self._arun(d, nt, findings, failed, timings, ctx) for d in slow))
        findings.sort(key=lambda f: (f.start, f.end, f.risk))
        return self._decide_in_context(text, context, findings, failed, timings, direction, scene)

    async def _arun(self, det: Detector, nt: NormalizedText, findings: list[Finding], failed: list[str],
                    timings: dict[str, float], ctx: NormalizedText | None = None) -> None:
        t0 = time.perf_counter()
        try:
            findings.extend(await _adetect(det, nt, ctx))
        except Exception:
            failed.append(det.name)
        timings[det.name] = (time.perf_counter() - t0) * 1000

    def stream(self, direction: Direction = "output", scene: str = "default",
               context: str | None = None) -> StreamModerator:
        """A :class:`StreamModerator`; ``context`` is the question the streamed answer replies to."""
        self._check_scene(scene)
        return StreamModerator(self, direction, scene, context=context)


async def _adetect(det: Detector, nt: NormalizedText, ctx: NormalizedText | None = None) -> list[Finding]:
    """``det.adetect``, except that a ``heavy`` detector runs inline on a text no longer than its
    ``inline_max_chars``: there the hop to a worker thread costs more CPU than the work, and a
    thread that holds the GIL for well under the switch interval (5 ms) frees the loop no sooner."""
    if det.cost == "heavy" and len(nt.text) <= getattr(det, "inline_max_chars", 0):
        return det.detect(nt) if ctx is None else det.detect_in_context(nt, ctx)
    return await (det.adetect(nt) if ctx is None else det.adetect_in_context(nt, ctx))


def _shift(findings: list[Finding], offset: int) -> list[Finding]:
    """Findings of a slice of the stream, moved to positions in the whole stream."""
    if not offset:
        return findings
    return [Finding(f.risk, f.start + offset, f.end + offset, f.score, f.detector, f.evidence_id, f.kind)
            for f in findings]


@dataclass
class StreamStep:
    emit: str
    """Text now safe to send to the client (personal information already masked)."""
    stopped: bool = False
    """A violation: send nothing more; the client retracts what it showed and shows the refusal."""
    verdict: Verdict | None = None
    """Set when the stream stopped, and on :meth:`StreamModerator.finish` (the overall verdict)."""


class StreamModerator:
    """Incremental moderation of one streamed text. Feed chunks in order; then call ``finish``."""

    def __init__(self, moderator: Moderator, direction: Direction, scene: str, context: str | None = None) -> None:
        self.moderator = moderator
        self.direction = direction
        self.scene = scene
        self.context = context if direction == "output" else None
        """The question the streamed answer replies to: segment findings on an answer that so far
        declines in words are excused (window findings are not: see docs/moderation.md)."""
        self.excused: list[Finding] = []
        self.decision_id = new_decision_id()
        self.buffer = ""
        self.emitted_upto = 0
        """Index in ``buffer`` up to which text has been checked and sent."""
        self._sent: list[str] = []
        """The pieces the client has received (masked where policy masks); joined on demand, so a
        long answer in many small chunks is not copied once per chunk."""
        self.findings: list[Finding] = []
        self.failed: list[str] = []
        self.timings: dict[str, float] = {}
        self.stopped = False
        self.final: Verdict | None = None
        self._segment_from = 0
        self._holdback = moderator.holdback()
        self._rescan = max([RESCAN_CONTEXT, *(d.lookbehind() for d in moderator.window_detectors)])
        self._window = moderator.window_detectors
        self._segment = moderator.segment_detectors

    @property
    def sent(self) -> str:
        """What the client has received (masked where policy masks)."""
        if len(self._sent) > 1:
            self._sent[:] = ["".join(self._sent)]
        return self._sent[0] if self._sent else ""

    @property
    def redacted_sent(self) -> str:
        """What was sent, with personal information masked: safe to store in records."""
        sent = self.buffer[: self.emitted_upto]
        return self.moderator.masker.redact(sent, [f for f in self.findings if f.end <= self.emitted_upto])

    # -- window detectors --------------------------------------------------------------------------

    def _scan_window(self, final: bool) -> tuple[int, list[Finding]]:
        """Check the unsent tail; return the safe edge (original index) and the findings before it."""
        start = max(0, self.emitted_upto - self._rescan)
        window = self.buffer[start:]
        nt = normalize(window)
        found = _shift(self._detect(self._window, nt, "window"), start)
        if final:
            safe = len(self.buffer)
        else:
            # A trailing run of separators is provisional (it vanishes when the next CJK character
            # arrives), so it does not count towards the hold-back: see NormalizedText.safe_edge.
            safe = max(start + nt.safe_edge(self._holdback), self.emitted_upto)
            # A hit that straddles the edge is held back whole.
            for f in found:
                if f.start < safe < f.end:
                    safe = max(self.emitted_upto, f.start)
        # Hits that end at or before the already-sent edge were acted on in an earlier step.
        settled = [f for f in found if f.end <= safe and f.end > self.emitted_upto]
        return safe, settled

    def _detect(self, detectors: list[Detector], nt: NormalizedText, phase: str) -> list[Finding]:
        """Run ``detectors`` on ``nt``; a detector that raises is remembered as failed (fail closed)."""
        found: list[Finding] = []
        t0 = time.perf_counter()
        for det in detectors:
            try:
                found.extend(det.detect(nt))
            except Exception:
                if det.name not in self.failed:
                    self.failed.append(det.name)
        self._add_time(phase, t0)
        return found

    def _add_time(self, name: str, t0: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + (time.perf_counter() - t0) * 1000

    def _step(self, safe: int, settled: list[Finding]) -> StreamStep:
        mod = self.moderator
        piece = self.buffer[self.emitted_upto:safe]
        if settled or self.failed:
            local = [
                Finding(f.risk, max(f.start, self.emitted_upto) - self.emitted_upto, f.end - self.emitted_upto,
                        f.score, f.detector, f.evidence_id, f.kind)
                for f in settled
            ]
            verdict = mod.decide(piece, local, list(self.failed), {}, self.direction, self.scene, self.decision_id)
            self.findings.extend(settled)
            if not verdict.allowed:
                return self._stop(verdict)
            piece = verdict.text
        self.emitted_upto = safe
        if piece:
            self._sent.append(piece)
        return StreamStep(emit=piece)

    def _stop(self, verdict: Verdict) -> StreamStep:
        self.stopped = True
        self.final = self._overall(verdict)
        return StreamStep(emit="", stopped=True, verdict=self.final)

    def _overall(self, stop: Verdict | None = None) -> Verdict:
        """One verdict for the whole stream, for the record: the stop reason or the sum of findings."""
        mod = self.moderator
        base = mod.decide(self.buffer, sorted(self.findings, key=lambda f: (f.start, f.end)), list(self.failed),
                          dict(self.timings), self.direction, self.scene, self.decision_id, excused=self.excused)
        if stop is not None:
            base.action, base.refusal, base.text, base.escalate = stop.action, stop.refusal, stop.text, stop.escalate
        return base

    # -- segment detectors -----------------------------------------------------------------------

    def _segment_ready(self, final: bool) -> str | None:
        if not self._segment:
            return None
        tail = self.buffer[self._segment_from:]
        if final:
            return tail if tail.strip() else None
        end = max((i for i, ch in enumerate(tail) if ch in SEGMENT_ENDS), default=-1)
        if end + 1 >= SEGMENT_MIN_CHARS:
            return tail[: end + 1]
        if len(tail) >= SEGMENT_MAX_CHARS:
            return tail
        return None

    def _segment_text(self, segment: str) -> tuple[int, str]:
        start = max(0, self._segment_from - SEGMENT_OVERLAP)
        return start, self.buffer[start : self._segment_from + len(segment)]

    def _after_segment(self, segment: str, found: list[Finding]) -> StreamStep | None:
        self._segment_from += len(segment)
        excused: list[Finding] = []
        if found and self.context is not None:
            # An explicit refusal shows itself in its opening: read the answer so far.
            found, excused = self.moderator.excuse_refusal(self.buffer, self.context, found, self.direction)
            self.excused.extend(excused)
        if not found and not self.failed:
            return None
        self.findings.extend(found)
        verdict = self.moderator.decide(self.buffer, found, list(self.failed), {}, self.direction, self.scene,
                                        self.decision_id, excused=excused)
        if not verdict.allowed:
            return self._stop(verdict)
        return None

    def _run_segment_sync(self, final: bool) -> StreamStep | None:
        segment = self._segment_ready(final)
        if segment is None:
            return None
        start, text = self._segment_text(segment)
        found = self._detect(self._segment, normalize(text), "segment")
        return self._after_segment(segment, _shift(found, start))

    async def _run_segment_async(self, final: bool) -> StreamStep | None:
        segment = self._segment_ready(final)
        if segment is None:
            return None
        start, text = self._segment_text(segment)
        nt = normalize(text)
        t0 = time.perf_counter()
        results = await asyncio.gather(*(_adetect(d, nt) for d in self._segment), return_exceptions=True)
        found: list[Finding] = []
        for det, res in zip(self._segment, results, strict=True):
            if isinstance(res, BaseException):
                if det.name not in self.failed:
                    self.failed.append(det.name)
            else:
                found.extend(res)
        self._add_time("segment", t0)
        return self._after_segment(segment, _shift(found, start))

    # -- public API ------------------------------------------------------------------------------

    def feed(self, chunk: str) -> StreamStep:
        if self.stopped:
            return StreamStep(emit="", stopped=True, verdict=self.final)
        self.buffer += chunk
        stop = self._run_segment_sync(final=False)
        if stop is not None:
            return stop
        return self._step(*self._scan_window(final=False))

    async def afeed(self, chunk: str) -> StreamStep:
        if self.stopped:
            return StreamStep(emit="", stopped=True, verdict=self.final)
        self.buffer += chunk
        stop = await self._run_segment_async(final=False)
        if stop is not None:
            return stop
        return self._step(*self._scan_window(final=False))

    def finish(self) -> StreamStep:
        """The upstream ended: check and release the held-back tail; the step carries the verdict."""
        if self.stopped:
            return StreamStep(emit="", stopped=True, verdict=self.final)
        stop = self._run_segment_sync(final=True)
        if stop is not None:
            return stop
        return self._finish_window()

    async def afinish(self) -> StreamStep:
        if self.stopped:
            return StreamStep(emit="", stopped=True, verdict=self.final)
        stop = await self._run_segment_async(final=True)
        if stop is not None:
            return stop
        return self._finish_window()

    def _finish_window(self) -> StreamStep:
        step = self._step(*self._scan_window(final=True))
        if step.stopped:
            return step
        self.final = self._overall()
        step.verdict = self.final
        return step
