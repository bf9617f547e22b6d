"""Guard-model backends behind one detector.

``guard.backend`` picks the transport; every backend answers the same question, "is this text safe,
and if not, which categories?", and the detector maps the answer to hegui's risk codes:

* ``builtin``: hegui's own classifier (no extra dependency);
* ``hf_local``: a local Hugging Face causal LM from a folder, prompted and parsed Qwen3Guard-Gen style
  (needs the ``guard-local`` extra: transformers + torch);
* ``openai``: an OpenAI-compatible chat-completions endpoint serving a guard model (e.g. vLLM serving
  Qwen3Guard-Gen), called with httpx;
* ``mock``: configured verdicts, for tests and dry runs.

Qwen3Guard-Gen answers in lines such as ``Safety: Unsafe`` / ``Categories: Violent``; ``Safety:
Controversial`` marks borderline text. Its categories map to risk codes through ``guard.categories``
(defaults in :data:`DEFAULT_CATEGORY_MAP`).

Failing closed: a timeout, a transport or HTTP error, or an answer that cannot be parsed raises
:class:`~hegui.detectors.base.DetectorError`; the moderator then refuses unless the policy says
otherwise. Nothing is ever downloaded: ``hf_local`` loads with ``local_files_only``.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hegui import taxonomy
from hegui.detectors.base import Cost, Detector, DetectorError, Finding, StreamMode
from hegui.errors import ConfigError

if TYPE_CHECKING:
    from hegui.config import HeguiConfig
    from hegui.detectors.classifier import ClassifierDetector
    from hegui.text import NormalizedText

Safety = Literal["safe", "unsafe", "controversial"]

# Qwen3Guard-Gen's categories → GB/T 45654 risks (or the signals PI/JB). Configurable per deployment
# with ``guard.categories``; the choices are documented in docs/guard.md.
DEFAULT_CATEGORY_MAP: dict[str, str] = {
    "Violent": "A1f",
    "Non-violent Illegal Acts": "A1h",
    "Sexual Content or Sexual Acts": "A1f",
    "PII": "A4f",
    "Suicide & Self-Harm": "A4a",
    "Unethical Acts": "A2i",
    "Politically Sensitive Topics": "A1b",
    "Copyright Violation": "A3a",
    "Jailbreak": "JB",
}

# The instruction sent when ``guard.prompt`` is ``hegui`` (the model has no guard chat template of
# its own, or an endpoint serves a general model). It asks for Qwen3Guard-Gen's output format.
GUARD_INSTRUCTION = """# Task
Check whether the user's message below is safe. Answer in exactly this format:
Safety: Safe|Unsafe|Controversial
Categories: <comma-separated categories from the list, or None>

# Categories
{categories}

# User message
{text}
"""

# The same for a model answer read with the question it answers (``guard.prompt: hegui``).
GUARD_ANSWER_INSTRUCTION = """# Task
Check whether the assistant's answer below, given the user's question, is safe. An answer that
declines, warns or corrects is safe even when it repeats the question's words. Answer in exactly
this format:
Safety: Safe|Unsafe|Controversial
Categories: <comma-separated categories from the list, or None>

# Categories
{categories}

# User question
{context}

# Assistant answer
{text}
"""


class MockRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contains: str
    """The rule applies when the text contains this string."""
    output: str
    """The raw guard answer to return, e.g. ``"Safety: Unsafe\\nCategories: Violent"``."""


class MockConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[MockRule] = Field(default_factory=list)
    default: str = "Safety: Safe\nCategories: None"
    fail: bool = False
    """Raise on every call (to test fail-closed handling)."""
    latency_ms: float = Field(default=0.0, ge=0.0, le=60_000.0)
    """Wait this long before answering, as a real guard would (``bench/cascade.py`` measures what
    the cascade adds with it)."""


class CascadeConfig(BaseModel):
    """``guard.cascade``: the built-in classifier first, the guard model only for its grey band."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    """With ``guard.enabled`` and ``classifier.enabled``: send only texts whose classifier score is in
    [``low``, ``high``) to the guard; without it both run on every text."""
    low: float = Field(default=0.35, ge=0.0, le=1.0)
    """Below this classifier score a text is safe without asking the guard."""
    high: float = Field(default=0.9, ge=0.0, le=1.0)
    """From this score up the classifier's finding stands without asking the guard (set it at or
    above the classifier's threshold)."""

    @model_validator(mode="after")
    def _ordered(self) -> CascadeConfig:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


class GuardConfig(BaseModel):
    """``guard`` section: an external or local guard model as a detector."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    backend: Literal["builtin", "hf_local", "openai", "mock"] = "builtin"
    model: str | None = None
    """``hf_local``: folder of the model; ``openai``: model name sent to the endpoint;
    ``builtin``: classifier model file (unset = the shipped model)."""
    base_url: str | None = None
    """``openai``: the endpoint's base URL, e.g. ``http://127.0.0.1:8000/v1``."""
    api_key_env: str | None = None
    """``openai``: name of the environment variable holding the API key (keys never go in the file)."""
    timeout: float = Field(default=10.0, gt=0)
    """Seconds per call (``hf_local``: generation time limit)."""
    retries: int = Field(default=1, ge=0, le=10)
    """``openai``: extra attempts after a transport error, HTTP 429 or 5xx."""
    prompt: Literal["model", "hegui"] = "model"
    """``model``: send the text as the user message and let the guard model's chat template build its
    prompt (right for Qwen3Guard); ``hegui``: send hegui's instruction asking for the same format."""
    max_new_tokens: int = Field(default=32, ge=1, le=512)
    categories: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_CATEGORY_MAP))
    """Guard category → risk code. Categories not listed map to ``unknown_risk``."""
    unknown_risk: str = "A1h"
    unsafe_score: float = Field(default=0.95, ge=0, le=1)
    """Score of findings from an ``Unsafe`` answer (policy ``min_score`` applies to it)."""
    controversial_score: float = Field(default=0.6, ge=0, le=1)
    report_controversial: bool = True
    """Report ``Controversial`` answers as findings with ``controversial_score``."""
    threshold: float | None = Field(default=None, ge=0, le=1)
    """``builtin``: unsafe-probability threshold (unset = the model's own)."""
    mock: MockConfig = Field(default_factory=MockConfig)
    cascade: CascadeConfig = Field(default_factory=CascadeConfig)

    @field_validator("categories")
    @classmethod
    def _known_codes(cls, value: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for cat, code in value.items():
            norm = taxonomy.normalize_code(code)
            if not taxonomy.is_known(norm):
                raise ValueError(f"category {cat!r}: unknown risk code {code!r}")
            out[cat] = norm
        return out

    @field_validator("unknown_risk")
    @classmethod
    def _known_unknown(cls, value: str) -> str:
        norm = taxonomy.normalize_code(value)
        if not taxonomy.is_known(norm):
            raise ValueError(f"unknown risk code {value!r}")
        return norm

    @model_validator(mode="after")
    def _backend_needs(self) -> GuardConfig:
        if self.enabled and self.backend == "openai" and not (self.base_url and self.model):
            raise ValueError("backend 'openai' needs base_url and model")
        if self.enabled and self.backend == "hf_local" and not self.model:
            raise ValueError("backend 'hf_local' needs model (the model folder)")
        return self


# ---- answers --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    safety: Safety
    categories: tuple[str, ...] = ()
    raw: str = ""
    score: float | None = None
    """A backend's own probability, where it has one (``builtin``)."""
    risks: tuple[str, ...] = ()
    """Risk codes a backend reports directly (``builtin``); others leave it to the category map."""


class GuardParseError(ValueError):
    pass


_SAFETY = re.compile(r"safety\s*[:：]\s*(safe|unsafe|controversial)\b", re.IGNORECASE)
_CATEGORIES = re.compile(r"categories\s*[:：]\s*(.*)", re.IGNORECASE)


def parse_guard_output(raw: str) -> GuardVerdict:
    """Parse a Qwen3Guard-Gen style answer; raises :class:`GuardParseError` without a Safety line."""
    m = _SAFETY.search(raw)
    if m is None:
        raise GuardParseError(f"no 'Safety:' line in guard answer {raw[:80]!r}")
    safety: Safety = m.group(1).lower()  # type: ignore[assignment]
    cats: list[str] = []
    c = _CATEGORIES.search(raw)
    if c is not None:
        for part in re.split(r"[,，;；]", c.group(1)):
            name = part.strip().strip(".")
            if name and name.lower() != "none" and name not in cats:
                cats.append(name)
    return GuardVerdict(safety=safety, categories=tuple(cats), raw=raw)


def guard_prompt(text: str, categories: list[str], context: str | None = None) -> str:
    cats = "\n".join(f"- {c}" for c in categories)
    if context is not None:
        return GUARD_ANSWER_INSTRUCTION.format(categories=cats, context=context, text=text)
    return GUARD_INSTRUCTION.format(categories=cats, text=text)


def guard_messages(text: str, context: str | None) -> list[dict[str, str]]:
    """The chat a guard model's own template reads: the text as the user's message, or, for an
    answer with its question, the question and the answer (Qwen3Guard's response moderation)."""
    if context is None:
        return [{"role": "user", "content": text}]
    return [{"role": "user", "content": context}, {"role": "assistant", "content": text}]


# ---- backends -------------------------------------------------------------------------------


class GuardBackend(Protocol):
    name: str

    def classify(self, text: str, context: str | None = None) -> GuardVerdict: ...

    async def aclassify(self, text: str, context: str | None = None) -> GuardVerdict: ...


class MockBackend:
    """Returns configured answers: the first rule whose ``contains`` is in the text, else ``default``.
    A callable can replace the rules in tests."""

    name = "mock"

    def __init__(self, config: MockConfig | None = None, answer: Callable[[str], str] | None = None) -> None:
        self.config = config or MockConfig()
        self._answer = answer
        self.calls = 0
        self.contexts: list[str | None] = []
        """The question passed with each call (``None`` for a text judged alone), for tests."""

    def _verdict(self, text: str, context: str | None) -> GuardVerdict:
        self.calls += 1
        self.contexts.append(context)
        if self.config.fail:
            raise DetectorError("mock guard configured to fail")
        if self._answer is not None:
            raw = self._answer(text)
        else:
            raw = next((r.output for r in self.config.rules if r.contains in text), self.config.default)
        return _parse_or_fail(raw, self.name)

    def classify(self, text: str, context: str | None = None) -> GuardVerdict:
        if self.config.latency_ms:
            time.sleep(self.config.latency_ms / 1000)
        return self._verdict(text, context)

    async def aclassify(self, text: str, context: str | None = None) -> GuardVerdict:
        if self.config.latency_ms:
            await asyncio.sleep(self.config.latency_ms / 1000)
        return self._verdict(text, context)


class BuiltinBackend:
    """hegui's classifier as a guard: unsafe when the calibrated probability reaches the threshold."""

    name = "builtin"

    def __init__(self, model_path: str | Path | None, threshold: float | None) -> None:
        from hegui.detectors.classifier import load_model

        self.model = load_model(model_path)
        self.threshold = threshold if threshold is not None else self.model.threshold

    def classify(self, text: str, context: str | None = None) -> GuardVerdict:
        # The built-in model reads one passage; the question is not part of it (see context_mode).
        pred = self.model.predict(text)
        if pred.score < self.threshold:
            return GuardVerdict("safe", score=pred.score)
        return GuardVerdict("unsafe", categories=(pred.risk,), score=pred.score, risks=(pred.risk,))

    async def aclassify(self, text: str, context: str | None = None) -> GuardVerdict:
        return await asyncio.to_thread(self.classify, text, context)


def _parse_or_fail(raw: str, backend: str) -> GuardVerdict:
    try:
        return parse_guard_output(raw)
    except GuardParseError as exc:
        raise DetectorError(f"guard ({backend}): {exc}") from None


class OpenAIBackend:
    """POST ``{base_url}/chat/completions`` and parse the answer. Retries transport errors, 429 and
    5xx with a short backoff; a timeout or a final failure raises :class:`DetectorError`."""

    name = "openai"

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 10.0,
                 retries: int = 1, max_tokens: int = 32, prompt: str = "model",
                 categories: list[str] | None = None, transport: Any = None,
                 async_transport: Any = None) -> None:
        import httpx

        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.timeout = timeout
        self.retries = retries
        self.max_tokens = max_tokens
        self.prompt = prompt
        self.categories = categories or list(DEFAULT_CATEGORY_MAP)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers, transport=transport)
        self._headers = headers
        self._async_transport = async_transport

    def _payload(self, text: str, context: str | None = None) -> dict[str, Any]:
        if self.prompt == "model":
            messages = guard_messages(text, context)
        else:
            messages = [{"role": "user", "content": guard_prompt(text, self.categories, context)}]
        return {"model": self.model, "messages": messages, "max_tokens": self.max_tokens, "temperature": 0}

    @staticmethod
    def _content(data: Any) -> str:
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise DetectorError("guard (openai): response has no choices[0].message.content") from None
        if not isinstance(content, str):
            raise DetectorError("guard (openai): message content is not text")
        return content

    def classify(self, text: str, context: str | None = None) -> GuardVerdict:
        import httpx

        last: str = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(0.2 * attempt, 1.0))
            try:
                r = self._client.post(self.url, json=self._payload(text, context))
            except httpx.TimeoutException:
                raise DetectorError(f"guard (openai): no answer within {self.timeout:g} s") from None
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            verdict = self._read(r)
            if verdict is None:
                last = f"HTTP {r.status_code}"
                continue
            return verdict
        raise DetectorError(f"guard (openai): {self.url} failed after {self.retries + 1} attempt(s): {last}")

    def _read(self, r: Any) -> GuardVerdict | None:
        """The verdict in an answer, or None when the status says try again (429, 5xx)."""
        if r.status_code == 429 or r.status_code >= 500:
            return None
        if r.status_code >= 400:
            raise DetectorError(f"guard (openai): HTTP {r.status_code} from {self.url}")
        try:
            data = r.json()
        except ValueError:
            raise DetectorError("guard (openai): response is not JSON") from None
        return _parse_or_fail(self._content(data), self.name)

    async def aclassify(self, text: str, context: str | None = None) -> GuardVerdict:
        import httpx

        last = ""
        async with httpx.AsyncClient(timeout=self.timeout, headers=self._headers,
                                     transport=self._async_transport) as client:
            for attempt in range(self.retries + 1):
                if attempt:
                    await asyncio.sleep(min(0.2 * attempt, 1.0))
                try:
                    r = await client.post(self.url, json=self._payload(text, context))
                except httpx.TimeoutException:
                    raise DetectorError(f"guard (openai): no answer within {self.timeout:g} s") from None
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                    continue
                verdict = self._read(r)
                if verdict is None:
                    last = f"HTTP {r.status_code}"
                    continue
                return verdict
        raise DetectorError(f"guard (openai): {self.url} failed after {self.retries + 1} attempt(s): {last}")

    def close(self) -> None:
        self._client.close()


class HFLocalBackend:
    """A local Hugging Face causal LM (Qwen3Guard-Gen or compatible) loaded from a folder.

    The prompt comes from the tokenizer's chat template when it has one (Qwen3Guard ships the guard
    instructions in its template), else from hegui's instruction. Generation is greedy, limited to
    ``max_new_tokens`` and to ``timeout`` seconds (``max_time``); one generation runs at a time.
    """

    name = "hf_local"

    def __init__(self, path: str | Path, *, timeout: float = 10.0, max_new_tokens: int = 32,
                 prompt: str = "model", categories: list[str] | None = None) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise ConfigError(
                "guard.backend hf_local needs transformers and torch: pip install 'hegui[guard-local]'"
            ) from None
        p = Path(path).expanduser()
        if not p.is_dir():
            raise ConfigError(f"guard.model: {p}: model folder not found")
        try:
            self.tokenizer: Any = _load_tokenizer(p, AutoTokenizer)
            self.model: Any = AutoModelForCausalLM.from_pretrained(str(p), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"guard.model: {p}: cannot load the model ({exc})") from None
        self.model.eval()
        self._torch = torch
        self.timeout = timeout
        self.max_new_tokens = max_new_tokens
        self.prompt_mode = prompt
        self.categories = categories or list(DEFAULT_CATEGORY_MAP)
        self._lock = threading.Lock()

    def build_prompt(self, text: str, context: str | None = None) -> str:
        if self.prompt_mode == "model" and getattr(self.tokenizer, "chat_template", None):
            out = self.tokenizer.apply_chat_template(guard_messages(text, context), tokenize=False,
                                                     add_generation_prompt=True)
            return str(out)
        return guard_prompt(text, self.categories, context)

    def generate(self, text: str, context: str | None = None) -> str:
        prompt = self.build_prompt(text, context)
        enc = self.tokenizer(prompt, return_tensors="pt")
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        with self._lock, self._torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      max_time=self.timeout, pad_token_id=pad)
        new = out[0][enc["input_ids"].shape[1]:]
        return str(self.tokenizer.decode(new, skip_special_tokens=True))

    def classify(self, text: str, context: str | None = None) -> GuardVerdict:
        try:
            raw = self.generate(text, context)
        except Exception as exc:  # generation errors of any kind fail closed
            raise DetectorError(f"guard (hf_local): generation failed: {type(exc).__name__}: {exc}") from None
        return _parse_or_fail(raw, self.name)

    async def aclassify(self, text: str, context: str | None = None) -> GuardVerdict:
        return await asyncio.to_thread(self.classify, text, context)


def _load_tokenizer(path: Path, auto: Any) -> Any:
    """The folder's tokenizer. A folder that declares the generic fast tokenizer (a ``tokenizer.json``
    without a model-specific class) gets exactly that: ``AutoTokenizer`` would otherwise pick the
    model family's class from ``config.json`` and ignore the declared one."""
    import json

    declared = ""
    cfg = path / "tokenizer_config.json"
    if cfg.is_file():
        try:
            declared = str(json.loads(cfg.read_text(encoding="utf-8")).get("tokenizer_class") or "")
        except (OSError, ValueError):
            declared = ""
    if declared in ("PreTrainedTokenizerFast", "TokenizersBackend") and (path / "tokenizer.json").is_file():
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)
    return auto.from_pretrained(str(path), local_files_only=True)


def make_backend(config: GuardConfig, base_dir: Path | str | None = None) -> GuardBackend:
    def resolve(p: str) -> Path:
        path = Path(p).expanduser()
        return path if path.is_absolute() or base_dir is None else Path(base_dir) / path

    cats = list(config.categories)
    if config.backend == "mock":
        return MockBackend(config.mock)
    if config.backend == "builtin":
        try:
            return BuiltinBackend(resolve(config.model) if config.model else None, config.threshold)
        except DetectorError as exc:
            raise ConfigError(f"guard.model: {exc}") from None
    if config.backend == "openai":
        if not (config.base_url and config.model):
            raise ConfigError("guard: backend 'openai' needs base_url and model")
        key = None
        if config.api_key_env:
            key = os.environ.get(config.api_key_env)
            if not key:
                raise ConfigError(f"guard.api_key_env: environment variable {config.api_key_env} is not set")
        return OpenAIBackend(config.base_url, config.model, api_key=key, timeout=config.timeout,
                             retries=config.retries, max_tokens=config.max_new_tokens, prompt=config.prompt,
                             categories=cats)
    if not config.model:
        raise ConfigError("guard: backend 'hf_local' needs model (the model folder)")
    return HFLocalBackend(resolve(config.model), timeout=config.timeout, max_new_tokens=config.max_new_tokens,
                          prompt=config.prompt, categories=cats)


# ---- the detector ---------------------------------------------------------------------------


@dataclass
class GuardDetector(Detector):
    """Runs a guard backend on the whole text (segments when streaming) and maps its answer to
    findings spanning that text."""

    name: ClassVar[str] = "guard"
    cost: ClassVar[Cost] = "heavy"
    stream_mode: ClassVar[StreamMode] = "segment"

    backend: GuardBackend
    config: GuardConfig = field(default_factory=GuardConfig)

    def findings_for(self, verdict: GuardVerdict, text: NormalizedText) -> list[Finding]:
        if verdict.safety == "safe":
            return []
        if verdict.safety == "controversial" and not self.config.report_controversial:
            return []
        if verdict.score is not None:
            score = verdict.score
        else:
            score = self.config.unsafe_score if verdict.safety == "unsafe" else self.config.controversial_score
        risks: list[tuple[str, str]] = [(r, r) for r in verdict.risks]
        if not risks:
            cats = verdict.categories or ("",)
            risks = [(self.config.categories.get(c, self.config.unknown_risk), c) for c in cats]
        seen: set[str] = set()
        out: list[Finding] = []
        end = len(text.original)
        for risk, cat in risks:
            if risk in seen:
                continue
            seen.add(risk)
            evidence = f"guard:{self.backend.name}:{cat or verdict.safety}"
            out.append(Finding(risk=risk, start=0, end=end, score=score, detector=self.name,
                               evidence_id=evidence, kind=verdict.safety))
        return out

    def close(self) -> None:
        """Release the backend's connections (the ``openai`` backend keeps a connection pool)."""
        close = getattr(self.backend, "close", None)
        if callable(close):
            close()

    def detect(self, text: NormalizedText) -> list[Finding]:
        return self._judge(text, None)

    def detect_in_context(self, text: NormalizedText, context: NormalizedText) -> list[Finding]:
        return self._judge(text, context.original)

    def _judge(self, text: NormalizedText, context: str | None) -> list[Finding]:
        if not text.original.strip():
            return []
        try:
            verdict = self.backend.classify(text.original, context)
        except DetectorError:
            raise
        except Exception as exc:  # any backend failure fails closed
            raise DetectorError(f"guard ({self.backend.name}): {type(exc).__name__}: {exc}") from None
        return self.findings_for(verdict, text)

    async def _ajudge(self, text: NormalizedText, context: str | None) -> list[Finding]:
        if not text.original.strip():
            return []
        try:
            verdict = await self.backend.aclassify(text.original, context)
        except DetectorError:
            raise
        except Exception as exc:
            raise DetectorError(f"guard ({self.backend.name}): {type(exc).__name__}: {exc}") from None
        return self.findings_for(verdict, text)


@dataclass
class RemoteGuardDetector(GuardDetector):
    """A guard behind a network endpoint: awaited on the async path instead of taking a thread."""

    cost: ClassVar[Cost] = "remote"

    async def adetect(self, text: NormalizedText) -> list[Finding]:
        return await self._ajudge(text, None)

    async def adetect_in_context(self, text: NormalizedText, context: NormalizedText) -> list[Finding]:
        return await self._ajudge(text, context.original)


def detector_for(backend: GuardBackend, config: GuardConfig | None = None) -> GuardDetector:
    cfg = config or GuardConfig()
    risks = tuple(sorted(set(cfg.categories.values()) | {cfg.unknown_risk}))
    cls = RemoteGuardDetector if isinstance(backend, OpenAIBackend) else GuardDetector
    return cls(backend=backend, config=cfg, risks=risks)


def build(cfg: HeguiConfig) -> GuardDetector | None:
    """Factory for the detector registry: ``None`` when ``guard.enabled`` is false."""
    if not cfg.guard.enabled:
        return None
    return detector_for(make_backend(cfg.guard, cfg.base_dir), cfg.guard)


# ---- the cascade ----------------------------------------------------------------------------


Route = Literal["safe", "classifier", "guard"]


@dataclass
class CascadeDetector(Detector):
    """The built-in classifier first; the guard model only for texts in its grey band.

    Below ``low`` the text is safe, from ``high`` up the classifier's finding stands (its own
    threshold applies), in between the guard's verdict decides and the classifier's is dropped. A
    guard error in the grey band raises, so the moderator fails closed as it would for the guard
    alone; texts outside the band never wait for the guard.
    """

    name: ClassVar[str] = "cascade"
    # The guard may be slow or remote: the async path awaits adetect, which scores short texts
    # inline and hands long ones and a thread-bound guard to worker threads itself.
    cost: ClassVar[Cost] = "remote"
    stream_mode: ClassVar[StreamMode] = "segment"

    classifier: ClassifierDetector
    guard: GuardDetector
    low: float = 0.35
    high: float = 0.9
    routes: dict[str, int] = field(default_factory=lambda: {"safe": 0, "classifier": 0, "guard": 0})
    """How many texts took each way (approximate under threads: a plain counter, for reports)."""

    def route(self, score: float) -> Route:
        if score < self.low:
            return "safe"
        if score >= self.high:
            return "classifier"
        return "guard"

    def _classify(self, text: NormalizedText, context: NormalizedText | None) -> tuple[Route, list[Finding]]:
        clf = self.classifier
        best = clf.best_window(text) if context is None else clf.best_in_context(text, context)
        if best is None:
            return "safe", []
        way = self.route(best.score)
        self.routes[way] += 1
        return way, clf.finding_for(best, text) if way == "classifier" else []

    def detect(self, text: NormalizedText) -> list[Finding]:
        way, found = self._classify(text, None)
        return self.guard.detect(text) if way == "guard" else found

    def detect_in_context(self, text: NormalizedText, context: NormalizedText) -> list[Finding]:
        way, found = self._classify(text, context)
        return self.guard.detect_in_context(text, context) if way == "guard" else found

    async def adetect(self, text: NormalizedText) -> list[Finding]:
        way, found = await self._aclassify(text, None)
        return await self.guard.adetect(text) if way == "guard" else found

    async def adetect_in_context(self, text: NormalizedText, context: NormalizedText) -> list[Finding]:
        way, found = await self._aclassify(text, context)
        return await self.guard.adetect_in_context(text, context) if way == "guard" else found

    async def _aclassify(self, text: NormalizedText, context: NormalizedText | None) -> tuple[Route, list[Finding]]:
        if len(text.text) <= self.classifier.inline_max_chars:
            return self._classify(text, context)
        return await asyncio.to_thread(self._classify, text, context)


def with_cascade(detectors: list[Detector], config: GuardConfig) -> list[Detector]:
    """``detectors`` with the classifier and the guard replaced by one :class:`CascadeDetector` (at
    the classifier's place) when ``guard.cascade.enabled`` and both are present; else unchanged."""
    from hegui.detectors.classifier import ClassifierDetector

    if not config.cascade.enabled:
        return detectors
    clf = next((d for d in detectors if isinstance(d, ClassifierDetector)), None)
    guard = next((d for d in detectors if isinstance(d, GuardDetector)), None)
    if clf is None or guard is None:
        return detectors
    cascade = CascadeDetector(classifier=clf, guard=guard, low=config.cascade.low, high=config.cascade.high,
                              risks=tuple(sorted({*clf.risks, *guard.risks})))
    out: list[Detector] = []
    for d in detectors:
        if d is clf:
            out.append(cascade)
        elif d is not guard:
            out.append(d)
    return out
