"""What ``hegui annotation report`` summarises, and the filing package reads.

The annotation package fills it from its records (:func:`hegui.annotation.report.build_summary`);
the filing package only reads it, so neither depends on the other's tables.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RuleKind = Literal["functional", "safety"]


class RuleSetInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    kind: RuleKind
    version: str
    published_at: datetime
    sha256: str
    risks_covered: list[str] = Field(default_factory=list)
    """Safety rules: the risk codes the rules cover (all 31 are required)."""
    missing_risks: list[str] = Field(default_factory=list)


class AnnotatorStats(BaseModel):
    model_config = ConfigDict(extra="forbid")
    total: int
    qualified: int
    revoked: int
    recheck_overdue: int
    """Qualified annotators whose periodic re-check is past due."""


class BatchInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch_id: str
    kind: RuleKind
    rules_version: str
    items: int
    sampled: int
    """Functional batches: items drawn for the check; safety batches: items reviewed."""
    errors: int
    re_annotated: int
    illegal_found: int
    status: Literal["open", "in_review", "accepted", "discarded"]
    approved_items: int
    """Safety batches: items approved by at least one reviewer."""


class AnnotationSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")
    generated_at: datetime
    rules: list[RuleSetInfo]
    annotators: AnnotatorStats
    batches: list[BatchInfo]
    problems: list[str] = Field(default_factory=list)
    """What the standard asks and the records do not show (each one line), for the officer."""
