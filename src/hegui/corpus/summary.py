"""The audit summary (``OUT/summary.json``) that the report and the filing package read."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SourceDecision = Literal["ACCEPT", "REJECT", "NOT PROVEN"]


class SourceVerdict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str
    source_type: str
    records: int
    flagged: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    decision: SourceDecision
    """The 5% rule: REJECT when the interval is wholly above 5%, NOT PROVEN when it straddles it."""
    by_risk: dict[str, int] = Field(default_factory=dict)
    pii: dict[str, int] = Field(default_factory=dict)
    provenance_problems: list[str] = Field(default_factory=list)


class CheckResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Literal["automated", "manual"]
    sampled: int
    required: int
    passed: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    threshold: float
    verdict: Literal["PASS", "FAIL", "NOT PROVEN", "PENDING"]
    """PENDING: the manual sample was exported but the reviewers' verdicts are not imported yet."""


class AuditSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")
    audit_id: str
    engine: str
    started_at: datetime
    finished_at: datetime | None
    records: int
    bytes_read: int
    sources: list[SourceVerdict]
    automated: CheckResult
    manual: CheckResult
    outputs: dict[str, str] = Field(default_factory=dict)
    """Paths of the cleaned copy, the manual sample, the report (HTML/PDF)."""
    shards: int = 0
    """Shards scanned (files, or parts of big files)."""
    chars: int = 0
    """Characters of text scanned."""
    record_errors: int = 0
    """Records that could not be read (counted, never silently dropped)."""
    errors: list[str] = Field(default_factory=list)
    """The first of those (``file:line: reason``); every one is in the shard results."""
