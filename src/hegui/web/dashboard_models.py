"""The dashboard's hourly rollups of the ``decisions`` table (revision 0006).

Counting risks out of a JSON list per page view is slow on a million rows (``json_each`` /
``json_array_elements`` over every row of the period), so the console keeps counts per UTC hour,
filled incrementally from a ``seq`` watermark when a dashboard is rendered
(:mod:`hegui.web.console.aggregates`). The gateway's write path does no extra work. The rows are
counts only: no identifiers, nothing personal, nothing to erase.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from hegui.ledger.models import Base


class DecisionHour(Base):
    """Decisions (``kind='decision'``) of one UTC hour, one direction and one action."""

    __tablename__ = "dashboard_decision_hours"

    hour: Mapped[datetime] = mapped_column(primary_key=True)
    """Start of the UTC hour."""
    direction: Mapped[str] = mapped_column(String(16), primary_key=True)
    action: Mapped[str] = mapped_column(String(16), primary_key=True)
    decisions: Mapped[int] = mapped_column(BigInteger)
    stream_cuts: Mapped[int] = mapped_column(BigInteger)
    """Streamed outputs stopped mid-way (``stream.cut``)."""
    detector_failures: Mapped[int] = mapped_column(BigInteger)
    """Refusals with no risk found: what a fail-closed scene records when a detector failed."""


class RiskHour(Base):
    """How many decisions of one UTC hour and direction named a risk (one decision may name several)."""

    __tablename__ = "dashboard_risk_hours"

    hour: Mapped[datetime] = mapped_column(primary_key=True)
    direction: Mapped[str] = mapped_column(String(16), primary_key=True)
    risk: Mapped[str] = mapped_column(String(64), primary_key=True)
    decisions: Mapped[int] = mapped_column(BigInteger)
