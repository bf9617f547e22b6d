"""A shard (the unit of work) and what scanning one yields.

This is the only contract between the scanner and the engines: an engine maps
:func:`hegui.corpus.scan.scan_shard` over :class:`Shard` values, on one machine or many, and the
audit merges the :class:`ShardResult` values. Both are plain pydantic models so they pickle and
serialise the same on every engine, and a finished shard's result on disk marks it done.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Format = Literal["jsonl", "parquet", "csv", "text"]
Compression = Literal["none", "gzip", "zstd"]


class Shard(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    shard_id: str
    """Stable across runs (source name + file + part): resuming keys finished shards by it."""
    source: str
    url: str
    """Local path or fsspec URL of the file."""
    format: Format
    compression: Compression = "none"
    text_field: str = "text"
    part: int = 0
    """For files split into parts (Parquet row groups, or byte ranges of big JSONL/CSV files)."""
    parts: int = 1
    start: int = 0
    """First byte (JSONL/CSV parts) or first row group (Parquet parts) of this part."""
    stop: int | None = None
    """End (exclusive) of the byte range or row-group range; ``None`` reads the whole file."""
    members: tuple[str, ...] = ()
    """For ``text`` shards: the ``.txt`` files (one record each) grouped into this shard; ``url``
    then names their folder."""
    name: str | None = None
    """How record keys and errors name the file: its path relative to the source's location, so
    keys (and so the samples) survive moving the corpus; unset: the url."""
    member_names: tuple[str, ...] = ()
    """Names of ``members`` in record keys, as ``name`` is for ``url``."""


class ShardResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shard_id: str
    source: str
    records: int
    chars: int
    flagged: int
    """Records with illegal or harmful content (a refused or blocked verdict)."""
    by_risk: dict[str, int] = Field(default_factory=dict)
    pii: dict[str, int] = Field(default_factory=dict)
    """PII findings by type."""
    auto_sampled: int = 0
    """Records in the automated-check sample (a deterministic ≥ 10% by record key)."""
    auto_passed: int = 0
    manual_candidates: list[dict[str, str]] = Field(default_factory=list)
    """Records drawn for the manual review (key, source, text excerpt); the audit keeps 4,000 overall."""
    cleaned_path: str | None = None
    """Where this shard's cleaned records were written (flagged dropped, PII masked)."""
    errors: list[str] = Field(default_factory=list)
    """Records that could not be read (file:record: reason); counted, never silently dropped."""
    error_count: int = 0
    """All bad records; ``errors`` lists the first ones (a broken file would otherwise flood it)."""
    bytes_read: int = 0
    """Bytes taken from storage (compressed size for gzip/zstd and Parquet)."""
    seconds: float = 0.0
    """Wall time of the scan of this shard."""
