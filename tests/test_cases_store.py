"""Cases in the ledger database: due dates in China's working days (holidays skipped, 调休 days
counted, unknown years estimated), the status machine's refusals, and the events chain verifying
after every step, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway_support import ledger_for
from hegui.cases.config import CasesConfig
from hegui.cases.states import TRANSITIONS, TransitionRefused, next_status
from hegui.cases.store import CaseNotFound, CaseRefused, CaseStore
from hegui.cases.workdays import WorkingCalendar

SHANGHAI = timedelta(hours=8)


def noon(day: str) -> datetime:
    """Noon in Shanghai on ``day``, as UTC."""
    d = date.fromisoformat(day)
    return datetime(d.year, d.month, d.day, 12, tzinfo=UTC) - SHANGHAI


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CaseStore]:
    pg = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    with ledger_for(request.param, tmp_path, pg) as ledger:
        yield CaseStore(ledger, CasesConfig())


def opened_event(store: CaseStore, case_id: str) -> dict[str, Any]:
    first = store.history(case_id)[0]
    assert first.kind == "case.opened"
    return first.data


# -- due dates -------------------------------------------------------------------------------------

def test_national_day_week_2026_is_skipped_and_its_working_saturday_counts(store: CaseStore) -> None:
    # Wed 2026-09-30 + 15 working days: Oct 1-7 are holidays; Thu 8 (1), Fri 9 (2), Sat 10 is a
    # working day (3), Oct 12-16 (4-8), Oct 19-23 (9-13), Mon 26 (14), Tue 27 (15)
    case_id, _ = store.open_case("complaint", category="illegal", description="x", now=noon("2026-09-30"))
    assert store.get(case_id).due_on == date(2026, 10, 27)
    data = opened_event(store, case_id)
    assert data["due_on"] == "2026-10-27" and data["due_estimated"] is False
    cal = WorkingCalendar()
    assert not any(cal.is_working_day(date(2026, 10, d)) for d in range(1, 8))
    assert cal.is_working_day(date(2026, 10, 10))


def test_the_adjusted_working_sunday_of_september_2026(store: CaseStore) -> None:
    cfg = CasesConfig(due_working_days=1)
    one_day = CaseStore(store.ledger, cfg)
    # Saturday 2026-09-19: the next working day is Sunday the 20th (调休), not Monday the 21st
    case_id, _ = one_day.open_case("report", category="illegal", description="x", now=noon("2026-09-19"))
    assert one_day.get(case_id).due_on == date(2026, 9, 20)


def test_spring_festival_2026() -> None:
    cal = WorkingCalendar()
    # Fri 2026-02-13 + 5: Sat 14 is worked (1); Feb 15-23 holiday; Tue 24 .. Fri 27 (2-5)
    assert cal.add_working_days(date(2026, 2, 13), 5).day == date(2026, 2, 27)
    assert cal.add_working_days(date(2026, 2, 13), 5).estimated is False
    assert cal.working_days_between(date(2026, 2, 14), date(2026, 2, 23)) == 0


def test_a_year_the_calendar_does_not_know_is_estimated_and_says_so(store: CaseStore) -> None:
    case_id, _ = store.open_case("complaint", category="service", description="x", now=noon("2027-03-01"))
    # Monday to Friday only: Mon 2027-03-01 + 15 = Mon 2027-03-22
    assert store.get(case_id).due_on == date(2027, 3, 22)
    assert opened_event(store, case_id)["due_estimated"] is True


def test_configured_days_correct_the_calendar() -> None:
    cal = WorkingCalendar(holidays=[date(2027, 3, 2)], working_days=[date(2027, 3, 6)])
    # Mon 2027-03-01 + 2: Tue 2 is a configured holiday, Wed 3 (1), Thu 4 (2)
    assert cal.add_working_days(date(2027, 3, 1), 2).day == date(2027, 3, 4)
    assert cal.is_working_day(date(2027, 3, 6)) and cal.known(date(2027, 3, 6))


def test_the_day_counts_in_the_providers_time_zone(store: CaseStore) -> None:
    # 2026-09-30 17:00 UTC is already Thursday 2026-10-01 in Shanghai: the case is opened on a holiday
    late = datetime(2026, 9, 30, 17, tzinfo=UTC)
    case_id, _ = store.open_case("complaint", category="illegal", description="x", now=late)
    assert store.get(case_id).due_on == date(2026, 10, 27)  # Oct 1 itself never counts; same day as from Sep 30
    assert store.today(late) == date(2026, 10, 1)


# -- the status machine ----------------------------------------------------------------------------

def test_the_transition_table_refuses_what_it_does_not_list() -> None:
    for step, table in TRANSITIONS.items():
        for status in ("open", "in_progress", "replied", "closed"):
            if status in table:
                assert next_status(step, status) == table[status]
            else:
                with pytest.raises(TransitionRefused, match=f"a case that is {status} cannot be"):
                    next_status(step, status)


def test_steps_refused_by_the_store_change_nothing(store: CaseStore) -> None:
    case_id, _ = store.open_case("complaint", category="illegal", description="x")
    with pytest.raises(CaseRefused, match="open cannot be reopened"):
        store.reopen(case_id, actor="t", reason="r")
    with pytest.raises(CaseRefused, match="no reply yet"):
        store.close(case_id, actor="t")
    with pytest.raises(CaseRefused, match="assignee"):
        store.assign(case_id, "  ", actor="t")
    with pytest.raises(CaseRefused, match="reply must have"):
        store.reply(case_id, " ", actor="t")
    with pytest.raises(CaseNotFound):
        store.note("cs_nothing", "x", actor="t")
    assert [e.kind for e in store.history(case_id)] == ["case.opened"]
    assert store.get(case_id).status == "open"
    store.close(case_id, actor="t", reason="withdrawn by the person")
    for refused in (lambda: store.assign(case_id, "a", actor="t"), lambda: store.reply(case_id, "r", actor="t"),
                    lambda: store.close(case_id, actor="t", reason="again")):
        with pytest.raises(CaseRefused, match="closed cannot be"):
            refused()
    assert store.get(case_id).reply == "withdrawn by the person"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": "complaint", "category": "spam"}, "category must be one of"),
    ({"kind": "pi_request", "pi_action": "sell"}, "pi_action must be one of"),
    ({"kind": "pi_request", "pi_action": "access"}, "needs a verified phone or an account"),
    ({"kind": "gossip"}, "unknown case kind"),
])
def test_a_case_that_does_not_fit_is_refused(store: CaseStore, kwargs: dict[str, Any], message: str) -> None:
    kwargs = dict(kwargs)
    kind = kwargs.pop("kind")
    with pytest.raises(CaseRefused, match=message):
        store.open_case(kind, description="x", **kwargs)


def test_the_chain_verifies_after_every_step_and_text_is_stored_safely(store: CaseStore) -> None:
    ledger = store.ledger
    case_id, code = store.open_case("complaint", category="privacy", description="含\x00空字符",
                                    contact="\ud800 someone", account_id="acc_x")
    assert ledger.verify().ok
    steps = [
        lambda: store.assign(case_id, "王五", actor="staff"),
        lambda: store.note(case_id, "内部备注", actor="staff"),
        lambda: store.record(case_id, "takedown", {"status": "sent"}, actor="staff"),
        lambda: store.reply(case_id, "已处理", actor="staff"),
        lambda: store.reopen(case_id, actor="staff", reason="more"),
        lambda: store.reply(case_id, "再次处理", actor="staff"),
        lambda: store.close(case_id, actor="staff"),
    ]
    for step in steps:
        step()
        assert ledger.verify().ok
    kinds = [e.kind for e in store.history(case_id)]
    assert kinds == ["case.opened", "case.assigned", "case.noted", "case.action.takedown", "case.replied",
                     "case.reopened", "case.replied", "case.closed"]
    case = store.get(case_id)
    assert case.status == "closed" and case.reply == "再次处理"
    assert "\x00" not in case.description and case.contact is not None and "\ud800" not in case.contact
    assert store.by_code(code.lower().replace("-", " ")).id == case_id  # type: ignore[union-attr]


def test_counts_by_kind(store: CaseStore) -> None:
    store.open_case("complaint", category="illegal", description="late", now=noon("2025-01-06"))
    store.open_case("complaint", category="illegal", description="fresh")
    closed, _ = store.open_case("report", category="ip", description="done", now=noon("2025-01-06"))
    store.close(closed, actor="t", reason="duplicate")
    counts = store.counts(store.today())
    assert counts == {"open:complaint": 2, "overdue:complaint": 1}
