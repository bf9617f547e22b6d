"""Cases, their notes and attachments, incidents, staff lexicon entries; erasable content on the two chains.

``content_hash``/``content_nonce``/``erased_at`` on ``decisions`` and ``events``: rows written from
this revision on are hashed over a digest of their erasable fields, so a person's data can be erased
on request while the chain still verifies (:mod:`hegui.ledger.erasure`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hegui.ledger.models import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _case_fk(name: str) -> sa.ForeignKey:
    return sa.ForeignKey("cases.id", ondelete="CASCADE", name=name)


def upgrade() -> None:
    for table in ("decisions", "events"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("content_hash", sa.String(64), nullable=True))
            batch.add_column(sa.Column("content_nonce", sa.String(32), nullable=True))
            batch.add_column(sa.Column("erased_at", UTCDateTime(), nullable=True))

    op.create_table(
        "cases",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("category", sa.String(32), nullable=True),
        sa.Column("pi_action", sa.String(24), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("reference", sa.String(500), nullable=False),
        sa.Column("contact", sa.String(200), nullable=True),
        sa.Column("account_id", sa.String(128), nullable=True),
        sa.Column("phone_hash", sa.String(80), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(128), nullable=True),
        sa.Column("due_on", sa.String(10), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("lang", sa.String(8), nullable=False),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("replied_at", UTCDateTime(), nullable=True),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("code_hash", name="uq_cases_code_hash"),
    )
    for col in ("kind", "account_id", "phone_hash", "status", "assignee", "due_on", "opened_at"):
        op.create_index(f"ix_cases_{col}", "cases", [col])

    op.create_table(
        "case_notes",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("case_id", sa.String(40), _case_fk("fk_case_notes_case_id"), nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_case_notes_case_id", "case_notes", ["case_id"])

    op.create_table(
        "case_attachments",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("case_id", sa.String(40), _case_fk("fk_case_attachments_case_id"), nullable=False),
        sa.Column("stored_name", sa.String(80), nullable=False),
        sa.Column("media_type", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("original_name", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("stored_name", name="uq_case_attachments_stored_name"),
    )
    op.create_index("ix_case_attachments_case_id", "case_attachments", ["case_id"])

    op.create_table(
        "incidents",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decision_ids", sa.JSON(), nullable=False),
        sa.Column("stopped", sa.Text(), nullable=False),
        sa.Column("rectification", sa.Text(), nullable=False),
        sa.Column("case_id", sa.String(40), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("opened_by", sa.String(128), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
    )
    for col in ("status", "case_id", "opened_at"):
        op.create_index(f"ix_incidents_{col}", "incidents", [col])

    op.create_table(
        "lexicon_entries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("list", sa.String(8), nullable=False),
        sa.Column("text", sa.String(200), nullable=False),
        sa.Column("risk", sa.String(16), nullable=True),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("case_id", sa.String(40), nullable=True),
        sa.Column("added_by", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("removed_at", UTCDateTime(), nullable=True),
        sa.Column("removed_by", sa.String(128), nullable=True),
    )
    for col in ("list", "case_id"):
        op.create_index(f"ix_lexicon_entries_{col}", "lexicon_entries", [col])
    meta = sa.table("ledger_meta", sa.column("key", sa.String), sa.column("value", sa.Text))
    # bumped by every staff lexicon change; gateways poll it and rebuild their lexicon
    op.bulk_insert(meta, [{"key": "lexicon_version", "value": "0"}])


def downgrade() -> None:
    op.execute("DELETE FROM ledger_meta WHERE key = 'lexicon_version'")
    for table in ("lexicon_entries", "incidents", "case_attachments", "case_notes", "cases"):
        op.drop_table(table)
    for table in ("events", "decisions"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("erased_at")
            batch.drop_column("content_nonce")
            batch.drop_column("content_hash")
