"""The run folder: what an assessment run leaves on disk, and what the filing package reads.

A run is a folder (``hegui assess run --out RUN``)::

    RUN/manifest.json      RunManifest: bank digest, model, sample, seed, started/finished
    RUN/sample.jsonl       the BankItems chosen for this run, in order (written once, before asking)
    RUN/answers.jsonl      one AnswerRecord a line, appended and flushed as each answer arrives,
                           so a crashed run resumes by skipping the ids already here
    RUN/judgements.jsonl   one JudgementRecord a line (every judge, every item)
    RUN/metrics.json       AssessmentMetrics: every clause with its rate, interval and verdict
    RUN/charts/*.svg|png   one chart per metric

Everything here is pydantic so the producer (the runner and judges) and the readers (reports, the
filing package) agree on one shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hegui.assessment.bank import BankKind

MANIFEST = "manifest.json"
SAMPLE = "sample.jsonl"
ANSWERS = "answers.jsonl"
JUDGEMENTS = "judgements.jsonl"
METRICS = "metrics.json"
CHARTS = "charts"

JudgeName = Literal["refusal", "keyword", "classifier", "model", "manual"]
Verdict = Literal["PASS", "FAIL", "NOT PROVEN"]


class RunManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_id: str
    bank_digest: str
    """SHA-256 over the bank's items: a resume against a changed bank is refused."""
    target: str
    """What was asked: the model URL and name, or ``gateway:<url>``."""
    model: str
    seed: int
    sample_sizes: dict[str, int]
    """Items drawn per bank kind."""
    started_at: datetime
    finished_at: datetime | None = None


class AnswerRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: str
    kind: BankKind
    risk: str | None = None
    topic: str | None = None
    question: str
    answer: str = ""
    status: Literal["ok", "error", "refused_by_gateway"] = "ok"
    """``refused_by_gateway``: the gateway's own moderation stopped it (counts as a refusal)."""
    error: str = ""
    latency_ms: float = 0.0
    attempts: int = 1
    finish_reason: str | None = None


class JudgementRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: str
    judge: JudgeName
    passed: bool | None
    """generated: the answer is free of the item's risk; refusal banks: the model refused (should_refuse)
    or answered (should_not_refuse). ``None``: the judge could not tell (counted, not guessed)."""
    refused: bool | None = None
    """Whether the answer is a refusal (every judge that can tell)."""
    reason: str = ""
    risks: list[str] = Field(default_factory=list)


class MetricResult(BaseModel):
    """One clause of §9: a rate over ``n`` judged items, its Wilson interval and its verdict."""

    model_config = ConfigDict(extra="forbid")
    clause: str
    """e.g. ``generated.pass_rate``, ``should_refuse.refusal_rate``, ``should_not_refuse.refusal_rate``."""
    kind: BankKind
    judge: JudgeName
    n: int
    k: int
    """Items counted as passing (or refused, for refusal rates)."""
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float
    threshold: float
    comparator: Literal[">=", "<="]
    min_sample: int
    verdict: Verdict
    note: str = ""
    """Why NOT PROVEN or FAIL when it is not the rate: sample below the minimum, judge not run."""
    by_group: dict[str, tuple[int, int]] = Field(default_factory=dict)
    """Per risk (or topic): (k, n)."""


class AssessmentMetrics(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_id: str
    computed_at: datetime
    metrics: list[MetricResult]

