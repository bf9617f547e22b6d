"""Annotation records (Art. 8, GB/T 45654 §5.3): rule sets, annotators and their trainings, exams
and re-checks, batches, their items and reviews.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hegui.ledger.models import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "annotation_rule_sets",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("risks_covered", sa.JSON(), nullable=False),
        sa.Column("missing_risks", sa.JSON(), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("publisher", sa.String(128), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("kind", "version", name="uq_annotation_rule_sets_kind_version"),
    )
    op.create_table(
        "annotators",
        sa.Column("handle", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("qualified_at", UTCDateTime(), nullable=True),
        sa.Column("last_check_on", sa.Date(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoke_reason", sa.String(500), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "annotator_records",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("handle", sa.String(64),
                  sa.ForeignKey("annotators.handle", ondelete="CASCADE", name="fk_annotator_records_handle"),
                  nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("held_on", sa.Date(), nullable=False),
        sa.Column("course", sa.String(300), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("recorded_by", sa.String(128), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_annotator_records_handle", "annotator_records", ["handle"])
    op.create_table(
        "annotation_batches",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("rules_version", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("source_sha256", sa.String(64), nullable=False),
        sa.Column("source_format", sa.String(16), nullable=False),
        sa.Column("sample_size", sa.Integer(), nullable=True),
        sa.Column("sample_seed", sa.Integer(), nullable=True),
        sa.Column("sampled_at", UTCDateTime(), nullable=True),
        sa.Column("discarded_reason", sa.String(500), nullable=True),
        sa.Column("imported_by", sa.String(128), nullable=False),
        sa.Column("imported_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_annotation_batches_kind", "annotation_batches", ["kind"])
    op.create_index("ix_annotation_batches_status", "annotation_batches", ["status"])
    op.create_table(
        "annotation_tasks",
        sa.Column("batch_id", sa.String(128),
                  sa.ForeignKey("annotation_batches.id", ondelete="CASCADE", name="fk_annotation_tasks_batch_id"),
                  primary_key=True),
        sa.Column("item_id", sa.String(128), primary_key=True),
        sa.Column("text_sha256", sa.String(64), nullable=False),
        sa.Column("text_length", sa.Integer(), nullable=False),
        sa.Column("excerpt", sa.String(200), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("annotators", sa.JSON(), nullable=False),
        sa.Column("error", sa.Boolean(), nullable=False),
        sa.Column("illegal", sa.Boolean(), nullable=False),
        sa.Column("re_annotated", sa.Boolean(), nullable=False),
        sa.Column("sampled", sa.Boolean(), nullable=False),
        sa.Column("check_result", sa.String(16), nullable=True),
        sa.Column("checker", sa.String(64), nullable=True),
    )
    op.create_table(
        "annotation_reviews",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.String(128),
                  sa.ForeignKey("annotation_batches.id", ondelete="CASCADE", name="fk_annotation_reviews_batch_id"),
                  nullable=False),
        sa.Column("item_id", sa.String(128), nullable=False),
        sa.Column("reviewer", sa.String(64), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_annotation_reviews_batch_id", "annotation_reviews", ["batch_id"])


def downgrade() -> None:
    op.drop_table("annotation_reviews")
    op.drop_table("annotation_tasks")
    op.drop_index("ix_annotation_batches_status", "annotation_batches")
    op.drop_index("ix_annotation_batches_kind", "annotation_batches")
    op.drop_table("annotation_batches")
    op.drop_table("annotator_records")
    op.drop_table("annotators")
    op.drop_table("annotation_rule_sets")
