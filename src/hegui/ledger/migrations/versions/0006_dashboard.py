"""The console dashboard's hourly rollups of decisions (counts only; filled from a seq watermark).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hegui.ledger.models import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dashboard_decision_hours",
        sa.Column("hour", UTCDateTime(), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("decisions", sa.BigInteger(), nullable=False),
        sa.Column("stream_cuts", sa.BigInteger(), nullable=False),
        sa.Column("detector_failures", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "direction", "action"),
    )
    op.create_table(
        "dashboard_risk_hours",
        sa.Column("hour", UTCDateTime(), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("risk", sa.String(64), nullable=False),
        sa.Column("decisions", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "direction", "risk"),
    )


def downgrade() -> None:
    op.drop_table("dashboard_risk_hours")
    op.drop_table("dashboard_decision_hours")
