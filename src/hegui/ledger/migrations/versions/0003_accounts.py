"""The account gate and the events chain: profiles, app users, one-time codes, usage minutes,
shared counters, appeals, published agreements, the hash-chained ``events`` table, and ``api_keys.public``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hegui.ledger.models import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _account_fk(name: str) -> sa.ForeignKey:
    return sa.ForeignKey("accounts.id", ondelete="CASCADE", name=name)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("row_hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("seq", name="uq_events_seq"),
    )
    for col in ("event_id", "kind", "account_id", "created_at"):
        op.create_index(f"ix_events_{col}", "events", [col])
    heads = sa.table("chain_heads", sa.column("chain", sa.String), sa.column("seq", sa.BigInteger),
                     sa.column("row_hash", sa.String))
    op.bulk_insert(heads, [{"chain": "events", "seq": 0, "row_hash": "0" * 64}])
    # the account's marks travel with each decision (training opt-out); hashed only when set, so
    # the rows written before this revision keep their hashes
    op.add_column("decisions", sa.Column("flags", sa.JSON(), nullable=True))
    # the ladder counts an account's recent refusals: by account, then time
    op.create_index("ix_decisions_account_created", "decisions", ["account_id", "created_at"])
    meta = sa.table("ledger_meta", sa.column("key", sa.String), sa.column("value", sa.Text))
    # bumped by every account change; workers poll it to refresh cached standing
    op.bulk_insert(meta, [{"key": "accounts_version", "value": "0"}])

    op.create_table(
        "account_profiles",
        sa.Column("account_id", sa.String(128), _account_fk("fk_account_profiles_account_id"), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("phone_hash", sa.String(80), nullable=True),
        sa.Column("phone_masked", sa.String(24), nullable=True),
        sa.Column("verified_at", UTCDateTime(), nullable=True),
        sa.Column("age_band", sa.String(8), nullable=True),
        sa.Column("minor_mode", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("guardian_pin_hash", sa.String(200), nullable=True),
        sa.Column("training_opt_out", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("standing", sa.String(16), nullable=False),
        sa.Column("standing_until", UTCDateTime(), nullable=True),
        sa.Column("standing_reason", sa.String(500), nullable=False),
        sa.Column("accepted", sa.JSON(), nullable=False),
        sa.Column("app_id", sa.String(128), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("phone_hash", name="uq_account_profiles_phone_hash"),
    )
    op.create_index("ix_account_profiles_app_id", "account_profiles", ["app_id"])

    op.create_table(
        "app_users",
        sa.Column("app_id", sa.String(128), _account_fk("fk_app_users_app_id"), primary_key=True),
        sa.Column("user_hash", sa.String(80), primary_key=True),
        sa.Column("account_id", sa.String(128), _account_fk("fk_app_users_account_id"), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_app_users_account_id", "app_users", ["account_id"])

    op.create_table(
        "otp_codes",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("phone_hash", sa.String(80), nullable=False),
        sa.Column("ip_hash", sa.String(80), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("code_hash", sa.String(80), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("consumed_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    for col in ("phone_hash", "ip_hash", "created_at"):
        op.create_index(f"ix_otp_codes_{col}", "otp_codes", [col])

    op.create_table(
        "usage_minutes",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("minute", sa.Integer(), primary_key=True),
    )
    op.create_table(
        "counters",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_counters_expires_at", "counters", ["expires_at"])

    op.create_table(
        "appeals",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(128), _account_fk("fk_appeals_account_id"), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=False),
    )
    op.create_index("ix_appeals_account_id", "appeals", ["account_id"])

    op.create_table(
        "agreements",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("effective", sa.String(10), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=False),
        sa.Column("published_by", sa.String(128), nullable=False),
    )

    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("public", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    op.drop_index("ix_decisions_account_created", "decisions")
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("flags")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("public")
    for table in ("agreements", "appeals", "counters", "usage_minutes", "otp_codes", "app_users", "account_profiles", "events"):
        op.drop_table(table)
    op.execute("DELETE FROM chain_heads WHERE chain = 'events'")
    op.execute("DELETE FROM ledger_meta WHERE key = 'accounts_version'")
