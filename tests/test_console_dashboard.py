"""The console dashboard: its numbers against a hand-count of seeded decisions, on SQLite and
PostgreSQL; the rollup's watermark (rows counted once, new rows picked up); the period selector;
an empty ledger; the charts carrying their series."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from console_support import console_app, login
from gateway_support import ledger_for
from hegui.cases.config import CasesConfig
from hegui.cases.store import CaseStore
from hegui.ledger.events import append_event
from hegui.ledger.records import DecisionRecord
from hegui.ledger.store import Ledger
from hegui.web.console.aggregates import WATERMARK_KEY, Period, Rollup, summarize
from hegui.web.console.charts import horizontal_bars, lines, stacked_bars

SHANGHAI = "Asia/Shanghai"


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    pg = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    with ledger_for(request.param, tmp_path, pg) as led:
        yield led


def decision(at: datetime, direction: str, action: str, risks: list[str] | None = None,
             stream: dict[str, Any] | None = None, kind: str = "decision",
             flags: dict[str, Any] | None = None) -> DecisionRecord:
    return DecisionRecord(decision_id=uuid.uuid4().hex, request_id=uuid.uuid4().hex, account_id=None,
                          api_key_id=None, model="m", direction=direction, scene="default", action=action,
                          risks=risks or [], findings=[], detector_ms={"lexicon": 0.1}, excerpt="x",
                          stream=stream, created_at=at, kind=kind, flags=flags)  # type: ignore[arg-type]


def cut(n: int = 10) -> dict[str, Any]:
    return {"sent_chars": n, "cut": True, "client_disconnected": False, "upstream_error": None}


def whole(n: int = 10) -> dict[str, Any]:
    return {"sent_chars": n, "cut": False, "client_disconnected": False, "upstream_error": None}


def ladder_event(ledger: Ledger, kind: str, at: datetime) -> None:
    with ledger.engine.connect() as conn:
        ledger._begin_write(conn)
        with conn.begin():
            append_event(conn, kind, "acc_1", "system", {"step": kind}, created_at=at)


def seed(ledger: Ledger, now: datetime) -> None:
    """A known mix: inside the last 24 h, earlier in the week, and outside 30 days."""
    h = now.replace(minute=0, second=0, microsecond=0)
    rows = [
        # the current hour
        decision(h + timedelta(minutes=1), "input", "allow"),
        decision(h + timedelta(minutes=2), "input", "refuse", ["A1h"]),
        decision(h + timedelta(minutes=3), "input", "refuse", []),           # a detector failure
        decision(h + timedelta(minutes=4), "output", "refuse", ["A1h", "B2"], cut()),  # a stream cut
        decision(h + timedelta(minutes=4), "output", "pending", kind="stream_open"),  # not counted
        # 5 hours ago
        decision(h - timedelta(hours=5), "input", "flag", ["B2"]),
        decision(h - timedelta(hours=5), "output", "allow", [], whole(),
                 flags={"failed_detectors": ["classifier"]}),                # passed unchecked (fail-open)
        decision(h - timedelta(hours=5), "output", "mask", ["P1"]),
        # 23 hours ago (still in the 24 h) and 24 hours ago (not)
        decision(h - timedelta(hours=23), "input", "block", ["A1h"]),
        decision(h - timedelta(hours=24), "input", "refuse", ["C3"]),
        # 3 days ago
        decision(h - timedelta(days=3), "output", "refuse", ["C3"], cut()),
        decision(h - timedelta(days=3), "input", "allow"),
        # 40 days ago: outside every period
        decision(h - timedelta(days=40), "input", "refuse", ["Z9"]),
    ]
    for r in rows:
        ledger.record_decision(r)
    ladder_event(ledger, "ladder.warn", h - timedelta(hours=2))
    ladder_event(ledger, "ladder.suspend", h - timedelta(days=2))
    ladder_event(ledger, "account.created", h - timedelta(hours=1))  # not a ladder step


NOW = datetime(2026, 12, 10, 6, 30, tzinfo=UTC)  # 14:30 in Shanghai


def test_numbers_match_a_hand_count(ledger: Ledger) -> None:
    from zoneinfo import ZoneInfo

    seed(ledger, NOW)
    rollup = Rollup(ledger)
    assert rollup.catch_up() > 0
    zone = ZoneInfo(SHANGHAI)

    day = summarize(ledger, Period.of("24h", NOW, zone))
    assert day.decisions == {"input": 5, "output": 3}
    assert day.refused == {"input": 3, "output": 1}  # refuse, refuse (failure), block / refuse
    assert day.refusal_rate("input") == 3 / 5 and day.refusal_rate("output") == 1 / 3
    assert day.stream_cuts == 1 and day.detector_failures == 2
    assert dict(day.top_risks) == {"A1h": 3, "B2": 2, "P1": 1}
    assert day.top_risks[0] == ("A1h", 3)
    assert day.enforcement == {"ladder.warn": 1}
    # buckets: the current hour is the last, 5 hours ago is index 18, 23 hours ago index 0
    assert day.by_action["refuse"][23] == 3 and day.by_action["allow"][23] == 1
    assert day.by_action["flag"][18] == 1 and day.by_action["mask"][18] == 1 and day.by_action["allow"][18] == 1
    assert day.by_action["block"][0] == 1 and sum(day.by_action["block"]) == 1
    assert day.rate_series("output")[23] == 1.0 and day.rate_series("output")[18] == 0.0
    assert day.rate_series("input")[1] is None  # no decisions: a gap, not 0 %

    week = summarize(ledger, Period.of("7d", NOW, zone))
    assert week.decisions == {"input": 7, "output": 4}
    assert week.stream_cuts == 2 and week.detector_failures == 2
    assert dict(week.top_risks) == {"A1h": 3, "B2": 2, "C3": 2, "P1": 1}
    assert week.enforcement == {"ladder.suspend": 1, "ladder.warn": 1}
    assert len(week.period.buckets) == 7 and week.period.labels[-1] == "12-10"
    assert sum(week.by_action["refuse"]) == 5

    month = summarize(ledger, Period.of("30d", NOW, zone))
    assert month.total == 11 and "Z9" not in dict(month.top_risks)


def test_the_rollup_counts_each_row_once_and_picks_up_new_rows(ledger: Ledger) -> None:
    from zoneinfo import ZoneInfo

    seed(ledger, NOW)
    rollup = Rollup(ledger)
    rollup.catch_up(chunk=3)  # many small steps
    assert rollup.catch_up() == 0  # nothing new: nothing counted twice
    period = Period.of("24h", NOW, ZoneInfo(SHANGHAI))
    assert summarize(ledger, period).total == 8
    ledger.record_decision(decision(NOW, "output", "refuse", ["A1h"]))
    assert Rollup(ledger).catch_up() == 1  # a second instance (another worker) shares the watermark
    after = summarize(ledger, period)
    assert after.total == 9 and dict(after.top_risks)["A1h"] == 4
    # a stale claim (another render moved the watermark first) changes nothing
    assert rollup._apply(0, 5, [{"hour": NOW, "direction": "input", "action": "allow", "decisions": 99,
                                 "stream_cuts": 0, "detector_failures": 0}], []) is False
    assert summarize(ledger, period).total == 9
    with ledger.engine.connect() as conn:
        mark = conn.execute(sa.text("SELECT value FROM ledger_meta WHERE key = :k"), {"k": WATERMARK_KEY}).scalar()
        top = conn.execute(sa.text("SELECT max(seq) FROM decisions")).scalar()
    assert mark is not None and top is not None and int(mark) == int(top)


def test_the_page_shows_the_counts_on_both_backends(ledger: Ledger, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    seed(ledger, now)
    store = CaseStore(ledger, CasesConfig(), SHANGHAI)
    store.open_case("complaint", description="投诉内容", category="service", contact="a@example.com")
    store.open_case("report", description="举报内容", category="illegal", contact="b@example.com",
                    now=now - timedelta(days=30))  # long past its due date
    app = console_app(tmp_path, ledger=ledger)
    with TestClient(app) as client:
        login(client, "viewer")
        r = client.get("/console")
        assert r.status_code == 200
        html = r.text

        def card(name: str) -> str:
            m = re.search(rf'id="card-{name}">.*?class="value[^"]*">([^<]*)<', html, re.S)
            assert m, name
            return m.group(1).strip()

        assert card("decisions") == "8"
        assert card("refusal-input") == "60.0%" and card("refusal-output") == "33.3%"
        assert card("stream-cuts") == "1" and card("detector-failures") == "2"
        assert card("open-cases") == "2" and card("overdue-cases") == "1"
        assert card("enforcement") == "1"
        assert re.search(r'data-series="refuse" data-values="(0,){23}3"', html)
        assert 'data-labels="A1h,B2,P1" data-values="3,2,1"' in html
        assert "<details>" in html and 'id="table-risks"' in html

        week = client.get("/console", params={"period": "7d"}).text
        assert re.search(r'id="card-decisions">.*?class="value[^"]*">11<', week, re.S)
        assert '<option value="7d" selected>' in week
        bad = client.get("/console", params={"period": "1y"})
        assert bad.status_code == 400 and "period must be one of 24h, 7d, 30d" in bad.text


def test_an_empty_ledger_renders(tmp_path: Path) -> None:
    with ledger_for("sqlite", tmp_path, None) as ledger:
        app = console_app(tmp_path, ledger=ledger)
        with TestClient(app) as client:
            login(client, "viewer")
            r = client.get("/console?period=30d")
    assert r.status_code == 200
    assert re.search(r'id="card-decisions">.*?class="value[^"]*">0<', r.text, re.S)
    assert re.search(r'id="card-refusal-input">.*?class="value[^"]*">—<', r.text, re.S)
    assert "没有数据 / no data" in r.text
    assert r.text.count('<svg class="chart"') == 3


def test_anonymous_is_sent_to_login(tmp_path: Path) -> None:
    with ledger_for("sqlite", tmp_path, None) as ledger:
        app = console_app(tmp_path, ledger=ledger)
        with TestClient(app) as client:
            r = client.get("/console?period=7d", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login?next=")


def test_charts_escape_their_text_and_carry_the_series() -> None:
    bars = stacked_bars("c", "<b>t</b>", ["a&b", "c"], {"refuse": [1, 2], "x\"y": [0, 3]})
    assert "<b>" not in bars and "&lt;b&gt;" in bars and "a&amp;b" in bars
    assert 'data-series="refuse" data-values="1,2"' in bars and 'data-series="x&#34;y"' in bars
    assert "<title" in bars
    risks = horizontal_bars("r", "risks", [("<script>", 5)])
    assert "<script>" not in risks and 'data-values="5"' in risks
    rate = lines("l", "rate", ["1", "2", "3"], {"input": [0.5, None, 0.25]})
    assert 'data-values="0.5000,,0.2500"' in rate
    assert "50.0%" in rate and "25.0%" in rate
