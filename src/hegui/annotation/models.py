"""Tables of the annotation records (revision 0007), in the ledger's database.

Rule sets keep their full text and SHA-256 (the filing package hands the text in); annotators are
known by a handle the provider chooses (a staff-style id, never a national id or a phone number);
each item of a batch keeps its text's SHA-256 and length, and a short excerpt only when
``annotation.store_excerpt`` asks for it. Every step (rules published, annotator trained, examined,
qualified, revoked, re-checked, batch imported, sampled, checked) is also an event on the ledger's
hash-chained ``events`` table, which names handles, batches and items by id only.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hegui.ledger.models import Base, utcnow


class AnnotationRuleSet(Base):
    __tablename__ = "annotation_rule_sets"
    __table_args__ = (UniqueConstraint("kind", "version", name="uq_annotation_rule_sets_kind_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    """``functional`` or ``safety``: the standard wants the two kept apart."""
    version: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    risks_covered: Mapped[list[str]] = mapped_column(JSON, default=list)
    missing_risks: Mapped[list[str]] = mapped_column(JSON, default=list)
    complete: Mapped[bool] = mapped_column(Boolean, default=True)
    """False: safety rules published with ``--allow-incomplete`` that miss some of the 31 risks."""
    publisher: Mapped[str] = mapped_column(String(128))
    published_at: Mapped[datetime] = mapped_column(default=utcnow)


class Annotator(Base):
    __tablename__ = "annotators"

    handle: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    """A label for people reading the records (team, pseudonym); kept here only, never in the chain."""
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Roles of the current qualification: ``annotate`` and/or ``review``."""
    qualified_at: Mapped[datetime | None] = mapped_column()
    last_check_on: Mapped[date | None] = mapped_column(Date)
    """The day of qualification or of the last passed re-check: the next re-check is due
    ``annotation.recheck_days`` later."""
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoke_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AnnotatorRecord(Base):
    """One training, exam or re-check of an annotator."""

    __tablename__ = "annotator_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    handle: Mapped[str] = mapped_column(String(64), ForeignKey("annotators.handle", ondelete="CASCADE"),
                                        index=True)
    kind: Mapped[str] = mapped_column(String(16))
    """``training``, ``exam`` or ``recheck``."""
    held_on: Mapped[date] = mapped_column(Date)
    course: Mapped[str | None] = mapped_column(String(300))
    score: Mapped[float | None] = mapped_column()
    passed: Mapped[bool | None] = mapped_column(Boolean)
    recorded_by: Mapped[str] = mapped_column(String(128))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class AnnotationBatch(Base):
    __tablename__ = "annotation_batches"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    rules_version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    """``open`` (functional, not sampled yet), ``in_review``, ``accepted`` or ``discarded``."""
    items: Mapped[int] = mapped_column(Integer)
    source_sha256: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the imported file."""
    source_format: Mapped[str] = mapped_column(String(16))
    sample_size: Mapped[int | None] = mapped_column(Integer)
    sample_seed: Mapped[int | None] = mapped_column(Integer)
    sampled_at: Mapped[datetime | None] = mapped_column()
    discarded_reason: Mapped[str | None] = mapped_column(String(500))
    imported_by: Mapped[str] = mapped_column(String(128))
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AnnotationTask(Base):
    __tablename__ = "annotation_tasks"

    batch_id: Mapped[str] = mapped_column(String(128), ForeignKey("annotation_batches.id", ondelete="CASCADE"),
                                          primary_key=True)
    item_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    text_sha256: Mapped[str] = mapped_column(String(64))
    text_length: Mapped[int] = mapped_column(Integer)
    excerpt: Mapped[str | None] = mapped_column(String(200))
    labels: Mapped[list[Any]] = mapped_column(JSON, default=list)
    annotators: Mapped[list[str]] = mapped_column(JSON, default=list)
    error: Mapped[bool] = mapped_column(Boolean, default=False)
    """Marked wrong (at import, or by the check of the sample): must be re-annotated."""
    illegal: Mapped[bool] = mapped_column(Boolean, default=False)
    re_annotated: Mapped[bool] = mapped_column(Boolean, default=False)
    sampled: Mapped[bool] = mapped_column(Boolean, default=False)
    check_result: Mapped[str | None] = mapped_column(String(16))
    """Functional batches: ``ok``, ``error`` or ``illegal`` from the checker, None until checked."""
    checker: Mapped[str | None] = mapped_column(String(64))


class AnnotationReview(Base):
    """One reviewer's verdict on one item (a safety item needs at least one ``approved``)."""

    __tablename__ = "annotation_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(String(128), ForeignKey("annotation_batches.id", ondelete="CASCADE"),
                                          index=True)
    item_id: Mapped[str] = mapped_column(String(128))
    reviewer: Mapped[str] = mapped_column(String(64))
    verdict: Mapped[str] = mapped_column(String(16))
    """``approved`` or ``rejected``."""
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
