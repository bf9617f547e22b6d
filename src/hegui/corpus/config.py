"""Corpus-audit settings: the ``corpus:`` section of ``hegui.yaml`` (documented in ``docs/corpus.md``).

The thresholds are the standard's numbers (TC260-003 §5, §9; GB/T 45654 the same), kept configurable
because the spec rates some of them M: 5% harmful content per source, a ≥ 10% automated sample that
must pass at 98%, a 4,000-record manual sample that must pass at 96%.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CorpusConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    engine: Literal["local", "dask"] = "local"
    """Where shards are scanned: local processes, or a Dask distributed cluster."""
    workers: int | None = Field(default=None, ge=1)
    """Worker processes (local engine, or a LocalCluster when no address is set); unset: the CPU count."""
    address: str | None = None
    """Dask scheduler address (``tcp://head:8786``); unset with ``engine: dask`` starts a LocalCluster."""
    source_threshold: float = Field(default=0.05, gt=0, lt=1)
    """The 5% rule: a source whose harmful-content rate is above this (whole interval) is rejected."""
    auto_sample_rate: float = Field(default=0.11, gt=0, le=1)
    """Share of records drawn (by hash) for the automated check. A little above 10% so the sample
    reaches the standard's 10% minimum despite the hash draw's spread."""
    auto_required_share: float = Field(default=0.10, gt=0, le=1)
    """The automated check's minimum sample, as a share of all records (≥ 10%)."""
    auto_pass_threshold: float = Field(default=0.98, gt=0, le=1)
    """The automated check passes when its pass rate is at or above this (98%)."""
    manual_sample_size: int = Field(default=4000, ge=1)
    """Records in the manual review sample, drawn from the whole corpus (4,000)."""
    manual_pass_threshold: float = Field(default=0.96, gt=0, le=1)
    """The manual check passes when the reviewers' pass rate is at or above this (96%)."""
    confidence: float = Field(default=0.95, gt=0, lt=1)
    """Confidence of the Wilson intervals behind every verdict."""
    seed: str = "hegui"
    """Seed of the hash that draws both samples: the same seed draws the same records on any engine."""
    excerpt_chars: int = Field(default=300, ge=10)
    """Length of the (PII-masked) excerpts in the manual sample."""
    cleaned_format: Literal["jsonl", "parquet"] = "jsonl"
    """Format of the cleaned copy (flagged records dropped, PII masked)."""
    in_flight_per_worker: int = Field(default=2, ge=1)
    """Shards handed to each worker at a time: enough to keep it busy, few enough that a crash or a
    Ctrl-C loses little and memory stays bounded on big corpora."""
    report_font: str | None = None
    """CJK font file for the audit report's PDF and charts; unset: the first Chinese font fontconfig knows."""
