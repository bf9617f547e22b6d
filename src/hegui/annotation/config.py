"""Annotation settings: the ``annotation:`` section of ``hegui.yaml`` (documented in ``docs/annotation.md``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AnnotationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recheck_days: int = Field(default=180, ge=1)
    """Days after qualification (or the last passed re-check) when the next re-check is due; a
    qualification whose re-check is overdue has lapsed. GB/T 45654 §5.3 asks for periodic re-checks
    without a number, so this is the provider's choice."""
    functional_sample_size: int = Field(default=50, ge=1)
    """Items drawn for the manual check of a functional batch when ``--size`` is not given (the
    standard asks for a sample of every batch, with no ratio)."""
    sample_seed: int = 0
    """Seed of the check sample, mixed with the batch id, so a sample can be drawn again and compared."""
    store_excerpt: bool = False
    """Keep a short excerpt of each item's text (otherwise only its SHA-256 and length)."""
    excerpt_chars: int = Field(default=20, ge=1, le=200)
    """Length of that excerpt, in characters."""
    label_studio_text_field: str = "text"
    """The key under a Label Studio task's ``data`` that holds the text."""
    label_studio_handles: dict[str, str] = Field(default_factory=dict)
    """Label Studio user (numeric id or e-mail, as in ``completed_by``/``created_by``) → annotator
    handle. Users not listed become ``ls-<id>``; e-mails are never stored."""
