"""The built-in Chinese risk classifier as a detector.

The classifier judges a whole passage, not words, so its finding spans the passage it scored: the
whole text when it is short, otherwise the window of sentences that scored highest (long texts are
scored in windows so that one harmful sentence is not diluted by pages of harmless ones). Its score
is the calibrated probability that the passage is unsafe; ``classifier.threshold`` is the floor for
reporting a finding at all, and a policy rule's ``min_score`` can demand more for a given risk.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hegui.detectors.base import Cost, Detector, DetectorError, Finding, StreamMode
from hegui.errors import ConfigError

if TYPE_CHECKING:
    from hegui.classifier.model import RiskModel
    from hegui.config import HeguiConfig
    from hegui.text import NormalizedText


class ClassifierConfig(BaseModel):
    """``classifier`` section: hegui's own char n-gram risk model."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    """Run the classifier (it needs nothing but the model file shipped in the package)."""
    model: str | None = None
    """Path of a model trained with ``hegui train-classifier``; unset means the shipped model."""
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """Report a finding when the calibrated unsafe probability is at least this; unset means the
    threshold stored in the model (chosen by measurement when it was trained)."""
    window_chars: int = Field(default=300, ge=20)
    """Texts longer than this are scored in windows of whole sentences of about this length."""
    context_mode: Literal["answer", "max"] = "answer"
    """How an output checked with its question is scored: ``answer`` scores the answer alone;
    ``max`` takes the higher of the answer alone and question + answer (measured on
    latent_jailbreak in docs/moderation.md: it does not help the shipped model, so not the default)."""
    refusal_aware: bool = True
    """An output checked with its question that declines in words (``classify_answer(...).explicit``)
    is excused for model findings and for lexicon findings whose risk a quotation does not repeat
    (see ``refusal_keeps``); personal information is never excused."""
    refusal_action: Literal["allow", "flag"] = "allow"
    """What an excused finding becomes: ``allow`` drops it from the verdict's findings (kept under
    ``excused``), ``flag`` keeps it with its action lowered to ``flag`` (every good refusal then
    reaches the review queue)."""
    refusal_keeps: list[str] = Field(default_factory=lambda: ["A1a", "A1b", "A1c"])
    """Risks whose lexicon hits a refusal does not excuse: for banned political names and slogans
    the words on screen are the harm, whatever sentence quotes them. Codes or prefixes (``A1``)."""

    @field_validator("refusal_keeps")
    @classmethod
    def _known_keeps(cls, value: list[str]) -> list[str]:
        from hegui import taxonomy

        out = []
        for code in value:
            norm = taxonomy.normalize_code(code)
            if not (taxonomy.is_known(norm) or any(taxonomy.matches(norm, r) for r in taxonomy.BY_CODE)):
                raise ValueError(f"unknown risk code {code!r}")
            out.append(norm)
        return out


_SENTENCE_END = re.compile(r"[。！？!?；;\n]+|(?<=[.])\s+")


def sentence_windows(text: str, size: int) -> list[tuple[int, int]]:
    """Split ``text`` into spans of whole sentences, each about ``size`` characters (a sentence
    longer than ``size`` is cut). Consecutive windows overlap by one sentence, so a harmful statement
    across a boundary is seen whole at least once."""
    if len(text) <= size:
        return [(0, len(text))]
    bounds: list[tuple[int, int]] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        if m.end() > start:
            bounds.append((start, m.end()))
            start = m.end()
    if start < len(text):
        bounds.append((start, len(text)))
    sentences: list[tuple[int, int]] = []
    for s, e in bounds:
        while e - s > size:
            sentences.append((s, s + size))
            s += size
        if e > s:
            sentences.append((s, e))
    windows: list[tuple[int, int]] = []
    i = 0
    while i < len(sentences):
        s = sentences[i][0]
        j = i
        while j + 1 < len(sentences) and sentences[j + 1][1] - s <= size:
            j += 1
        windows.append((s, sentences[j][1]))
        if j + 1 >= len(sentences):
            break
        i = j if j > i else j + 1
    return windows


_MODELS: dict[Path, RiskModel] = {}
_MODELS_LOCK = threading.Lock()


def load_model(path: str | Path | None) -> RiskModel:
    """Load (and cache per process) a model; raises :class:`DetectorError` when it is missing or
    damaged, so a broken model fails closed instead of passing text unchecked."""
    from hegui.classifier.model import ModelFormatError, RiskModel, default_model_path

    p = Path(path).resolve() if path is not None else default_model_path()
    with _MODELS_LOCK:
        cached = _MODELS.get(p)
        if cached is not None:
            return cached
        try:
            model = RiskModel.load(p)
        except FileNotFoundError:
            raise DetectorError(f"classifier model not found: {p}") from None
        except ModelFormatError as exc:
            raise DetectorError(str(exc)) from None
        _MODELS[p] = model
        return model


@dataclass
class ClassifierDetector(Detector):
    name: ClassVar[str] = "classifier"
    cost: ClassVar[Cost] = "heavy"
    stream_mode: ClassVar[StreamMode] = "segment"
    inline_max_chars: ClassVar[int] = 2000
    """On the async path, texts up to this long are scored inline rather than in a worker thread
    (measured: 0.03 ms at 60 characters, 0.6 ms at 1,000, 1.2 ms at 2,000; the thread hop alone
    costs about as much as scoring a short segment)."""

    model: RiskModel
    threshold: float
    window_chars: int = 300
    model_id: str = field(default="builtin")

    @classmethod
    def from_config(cls, config: ClassifierConfig, base_dir: Path | str | None = None) -> ClassifierDetector:
        path: Path | None = None
        if config.model:
            path = Path(config.model).expanduser()
            if not path.is_absolute() and base_dir is not None:
                path = Path(base_dir) / path
        try:
            model = load_model(path)
        except DetectorError as exc:
            raise ConfigError(f"classifier.model: {exc}") from None
        threshold = config.threshold if config.threshold is not None else model.threshold
        model_id = str(model.meta.get("model_id") or (path.stem if path else "builtin"))
        return cls(model=model, threshold=threshold, window_chars=config.window_chars, model_id=model_id,
                   context_mode=config.context_mode, risks=tuple(sorted({*model.codes_as_risks()})))

    context_mode: str = "answer"

    def best_window(self, text: NormalizedText) -> ScoredWindow | None:
        """The highest-scoring window of ``text`` (``None`` for blank text), whatever its score: the
        cascade to a guard model needs scores below the threshold too."""
        s = text.text
        if not s.strip():
            return None
        best: ScoredWindow | None = None
        featurize = self.model.featurizer.transform_one
        for start, end in sentence_windows(s, self.window_chars):
            ind, val = featurize(s[start:end])
            score = self.model.score_vector(ind, val)
            if best is None or score > best.score:
                best = ScoredWindow(score, start, end, ind, val)
        return best

    def best_in_context(self, text: NormalizedText, context: NormalizedText) -> ScoredWindow | None:
        """Like :meth:`best_window` for an answer read with its question (``context_mode``)."""
        best = self.best_window(text)
        if best is None or self.context_mode != "max" or not context.text.strip():
            return best
        # The question and the answer's opening, scored as one passage: "how do I make X" + a bland
        # list of steps reads as compliance only together. The finding still spans the answer.
        joint = context.text[-self.window_chars:] + "\n" + text.text[: self.window_chars]
        ind, val = self.model.featurizer.transform_one(joint)
        score = self.model.score_vector(ind, val)
        if score > best.score:
            return ScoredWindow(score, 0, len(text.text), ind, val)
        return best

    def finding_for(self, best: ScoredWindow | None, text: NormalizedText) -> list[Finding]:
        """The finding for a scored window, when it reaches the threshold."""
        if best is None or best.score < self.threshold:
            return []
        # the risk head runs only for text that is reported
        risk, _ = self.model.top_risk(best.ind, best.val)
        o_start, o_end = text.to_original(best.start, best.end)
        return [Finding(risk=risk, start=o_start, end=o_end, score=best.score, detector=self.name,
                        evidence_id=f"classifier:{self.model_id}:{risk}", kind="model")]

    def detect(self, text: NormalizedText) -> list[Finding]:
        return self.finding_for(self.best_window(text), text)

    def detect_in_context(self, text: NormalizedText, context: NormalizedText) -> list[Finding]:
        return self.finding_for(self.best_in_context(text, context), text)


@dataclass(frozen=True, slots=True)
class ScoredWindow:
    """One window of a text and the classifier's calibrated unsafe probability for it."""

    score: float
    start: int
    end: int
    """Span in the normalised text."""
    ind: Any
    val: Any
    """The window's features (for the risk head, which runs only when a finding is reported)."""


def build(cfg: HeguiConfig) -> ClassifierDetector | None:
    """Factory for the detector registry: ``None`` when ``classifier.enabled`` is false."""
    if not cfg.classifier.enabled:
        return None
    return ClassifierDetector.from_config(cfg.classifier, cfg.base_dir)
