"""The dashboard's numbers, in SQL.

Decisions are counted from hourly rollups (:mod:`hegui.web.dashboard_models`) rather than from
``decisions`` itself: the period's risks live in a JSON list per row, and unpacking it on every page
view costs seconds on a million rows, while the rollup of 30 days is at most a few thousand rows.
The rollup is brought up to date at page load from a ``seq`` watermark in ``ledger_meta``: rows
are appended in ``seq`` order and never change what is counted (action, direction, risks, stream),
so each row is counted once. The new rows are aggregated outside any write lock; the counts are
then applied in one short transaction that first moves the watermark with a compare-and-set, so
two renders racing over the same rows count them once (the loser's transaction changes nothing).

Counts kept per UTC hour, direction and action: decisions, stream cuts (``stream.cut``) and
detector failures: a record whose ``flags.failed_detectors`` names any (written since the console
came), or, for older rows, a fail-closed scene's answer to one: a refusal with no risk found.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from hegui.ledger.models import Base, Decision, Event, LedgerMeta
from hegui.ledger.store import Ledger
from hegui.web.dashboard_models import DecisionHour, RiskHour

WATERMARK_KEY = "dashboard_rollup_seq"
CHUNK_ROWS = 250_000
"""Rows aggregated per step of a catch-up (bounds one step's memory and transaction)."""
REFUSING = ("refuse", "block")
ACTIONS = ("allow", "flag", "mask", "refuse", "block")
PERIODS: dict[str, str] = {"24h": "24 小时 / 24 h", "7d": "7 天 / 7 days", "30d": "30 天 / 30 days"}

_dec = Base.metadata.tables[Decision.__tablename__]
_events = Base.metadata.tables[Event.__tablename__]
_meta = Base.metadata.tables[LedgerMeta.__tablename__]
_hours = Base.metadata.tables[DecisionHour.__tablename__]
_risks = Base.metadata.tables[RiskHour.__tablename__]

_SQL = {
    "sqlite": {
        "hour": "strftime('%Y-%m-%d %H:00:00', d.created_at)",
        "cut": "json_extract(d.stream, '$.cut') = 1",
        "no_risk": "json_array_length(d.risks) = 0",
        "failed": "json_extract(d.flags, '$.failed_detectors') IS NOT NULL",
        "risks_from": "decisions AS d, json_each(d.risks) AS r",
        "risk": "r.value",
    },
    "postgresql": {
        "hour": "date_trunc('hour', d.created_at AT TIME ZONE 'UTC')",
        "cut": "(d.stream ->> 'cut') = 'true'",
        "no_risk": "json_array_length(d.risks) = 0",
        "failed": "(d.flags -> 'failed_detectors') IS NOT NULL",
        "risks_from": "decisions AS d CROSS JOIN LATERAL json_array_elements_text(d.risks) AS r(value)",
        "risk": "r.value",
    },
}


def _as_hour(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# -- the rollup ------------------------------------------------------------------------------------


class Rollup:
    """Keeps the hourly counts of one ledger up to date."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.dialect = ledger.engine.dialect.name
        self.sql = _SQL[self.dialect]

    def watermark(self, conn: Connection) -> int:
        found = conn.execute(sa.select(_meta.c.value).where(_meta.c.key == WATERMARK_KEY)).scalar_one_or_none()
        return int(found) if found is not None else 0

    def catch_up(self, chunk: int = CHUNK_ROWS) -> int:
        """Count every decision appended since the last call; returns how many seqs were covered."""
        covered = 0
        while True:
            with self.ledger.engine.connect() as conn:
                low = self.watermark(conn)
                top = conn.execute(sa.select(sa.func.max(_dec.c.seq))).scalar_one_or_none() or 0
            if top <= low:
                return covered
            high = min(top, low + chunk)
            hours, risks = self._aggregate(low, high)
            if self._apply(low, high, hours, risks):
                covered += high - low

    def _aggregate(self, low: int, high: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        s = self.sql
        where = "d.kind = 'decision' AND d.seq > :low AND d.seq <= :high"
        hours_q = sa.text(
            f"SELECT {s['hour']} AS hour, d.direction, d.action, count(*) AS n, "
            f"sum(CASE WHEN {s['cut']} THEN 1 ELSE 0 END) AS cuts, "
            f"sum(CASE WHEN {s['failed']} OR (d.action IN ('refuse', 'block') AND {s['no_risk']}) THEN 1 "
            "ELSE 0 END) AS failures "
            f"FROM decisions AS d WHERE {where} GROUP BY 1, 2, 3")
        risks_q = sa.text(
            f"SELECT {s['hour']} AS hour, d.direction, {s['risk']} AS risk, count(*) AS n "
            f"FROM {s['risks_from']} WHERE {where} GROUP BY 1, 2, 3")
        with self.ledger.engine.connect() as conn:
            hours = [{"hour": _as_hour(r.hour), "direction": r.direction, "action": r.action,
                      "decisions": int(r.n), "stream_cuts": int(r.cuts or 0),
                      "detector_failures": int(r.failures or 0)}
                     for r in conn.execute(hours_q, {"low": low, "high": high})]
            risks = [{"hour": _as_hour(r.hour), "direction": r.direction, "risk": str(r.risk)[:64],
                      "decisions": int(r.n)}
                     for r in conn.execute(risks_q, {"low": low, "high": high})]
        return hours, risks

    def _insert(self, table: sa.Table) -> Any:
        return (postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table))

    def _apply(self, low: int, high: int, hours: list[dict[str, Any]], risks: list[dict[str, Any]]) -> bool:
        with self.ledger.engine.connect() as conn:
            self.ledger._begin_write(conn)
            with conn.begin():
                if low == 0 and self.watermark(conn) == 0:
                    conn.execute(self._insert(_meta).values(key=WATERMARK_KEY, value="0")
                                 .on_conflict_do_nothing(index_elements=["key"]))
                moved = conn.execute(sa.update(_meta)
                                     .where(_meta.c.key == WATERMARK_KEY, _meta.c.value == str(low))
                                     .values(value=str(high)))
                if moved.rowcount != 1:
                    conn.rollback()  # another render counted these rows first
                    return False
                if hours:
                    ins = self._insert(_hours)
                    conn.execute(ins.on_conflict_do_update(
                        index_elements=["hour", "direction", "action"],
                        set_={c: _hours.c[c] + ins.excluded[c]
                              for c in ("decisions", "stream_cuts", "detector_failures")}), hours)
                if risks:
                    ins = self._insert(_risks)
                    conn.execute(ins.on_conflict_do_update(
                        index_elements=["hour", "direction", "risk"],
                        set_={"decisions": _risks.c.decisions + ins.excluded.decisions}), risks)
        return True


# -- the period and its numbers --------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """What the dashboard covers: ``24h`` is the current UTC hour and the 23 before it, by hour;
    ``7d`` and ``30d`` are today and the 6 (29) days before it in the provider's time zone, by day."""

    name: str
    start: datetime
    end: datetime
    buckets: list[datetime]
    """Start of each chart bucket (UTC)."""
    labels: list[str]
    """Each bucket as the chart shows it (local time)."""
    hourly: bool

    @classmethod
    def of(cls, name: str, now: datetime, zone: ZoneInfo) -> Period:
        now = now.astimezone(UTC)
        if name == "24h":
            top = now.replace(minute=0, second=0, microsecond=0)
            buckets = [top - timedelta(hours=23 - i) for i in range(24)]
            labels = [b.astimezone(zone).strftime("%H:00") for b in buckets]
            return cls(name, buckets[0], now, buckets, labels, True)
        days = {"7d": 7, "30d": 30}[name]
        today = now.astimezone(zone).date()
        local_days = [today - timedelta(days=days - 1 - i) for i in range(days)]
        buckets = [datetime(d.year, d.month, d.day, tzinfo=zone).astimezone(UTC) for d in local_days]
        labels = [d.strftime("%m-%d") for d in local_days]
        return cls(name, buckets[0], now, buckets, labels, False)

    def bucket_of(self, hour: datetime) -> int:
        """Index of the chart bucket an hour falls in (days may be 23 or 25 hours in zones with DST)."""
        return bisect_right(self.buckets, hour) - 1


@dataclass
class Summary:
    period: Period
    decisions: dict[str, int] = field(default_factory=dict)
    """By direction."""
    refused: dict[str, int] = field(default_factory=dict)
    """Refused or blocked, by direction."""
    stream_cuts: int = 0
    detector_failures: int = 0
    by_action: dict[str, list[int]] = field(default_factory=dict)
    """Decisions per bucket, by action."""
    refused_series: dict[str, list[int]] = field(default_factory=dict)
    total_series: dict[str, list[int]] = field(default_factory=dict)
    """Per bucket, by direction: refused and all decisions (the refusal rate's parts)."""
    top_risks: list[tuple[str, int]] = field(default_factory=list)
    enforcement: dict[str, int] = field(default_factory=dict)
    """Ladder events in the period, by kind."""
    open_cases: int = 0
    overdue_cases: int = 0

    @property
    def total(self) -> int:
        return sum(self.decisions.values())

    def refusal_rate(self, direction: str) -> float | None:
        n = self.decisions.get(direction, 0)
        return self.refused.get(direction, 0) / n if n else None

    def rate_series(self, direction: str) -> list[float | None]:
        totals = self.total_series.get(direction, [0] * len(self.period.buckets))
        refused = self.refused_series.get(direction, [0] * len(self.period.buckets))
        return [r / t if t else None for r, t in zip(refused, totals, strict=True)]


def summarize(ledger: Ledger, period: Period, top: int = 10) -> Summary:
    """The period's numbers from the rollups (bring them up to date first with :meth:`Rollup.catch_up`)."""
    out = Summary(period)
    n = len(period.buckets)
    by_action: dict[str, list[int]] = defaultdict(lambda: [0] * n)
    refused_series: dict[str, list[int]] = defaultdict(lambda: [0] * n)
    total_series: dict[str, list[int]] = defaultdict(lambda: [0] * n)
    in_period = sa.and_(_hours.c.hour >= period.start, _hours.c.hour <= period.end)
    hours_q = sa.select(_hours.c.hour, _hours.c.direction, _hours.c.action, _hours.c.decisions,
                        _hours.c.stream_cuts, _hours.c.detector_failures).where(in_period)
    risks_q = (sa.select(_risks.c.risk, sa.func.sum(_risks.c.decisions).label("n"))
               .where(_risks.c.hour >= period.start, _risks.c.hour <= period.end)
               .group_by(_risks.c.risk).order_by(sa.desc("n"), _risks.c.risk).limit(top))
    ladder_q = (sa.select(_events.c.kind, sa.func.count().label("n"))
                .where(_events.c.kind.like("ladder.%"), _events.c.created_at >= period.start,
                       _events.c.created_at <= period.end)
                .group_by(_events.c.kind).order_by(_events.c.kind))
    with ledger.engine.connect() as conn:
        for r in conn.execute(hours_q):
            i = period.bucket_of(r.hour)
            count = int(r.decisions)
            out.decisions[r.direction] = out.decisions.get(r.direction, 0) + count
            by_action[r.action][i] += count
            total_series[r.direction][i] += count
            if r.action in REFUSING:
                out.refused[r.direction] = out.refused.get(r.direction, 0) + count
                refused_series[r.direction][i] += count
            out.stream_cuts += int(r.stream_cuts)
            out.detector_failures += int(r.detector_failures)
        out.top_risks = [(str(r.risk), int(r.n)) for r in conn.execute(risks_q)]
        out.enforcement = {str(r.kind): int(r.n) for r in conn.execute(ladder_q)}
    known = [a for a in ACTIONS if a in by_action]
    out.by_action = {a: by_action[a] for a in [*known, *sorted(set(by_action) - set(ACTIONS))]}
    out.refused_series = dict(refused_series)
    out.total_series = dict(total_series)
    return out


def case_counts(counts: dict[str, int]) -> tuple[int, int]:
    """Open and overdue cases of every kind, from :meth:`CaseStore.counts`."""
    open_n = sum(v for k, v in counts.items() if k.startswith("open:"))
    overdue = sum(v for k, v in counts.items() if k.startswith("overdue:"))
    return open_n, overdue
