"""Erasable content on the two hash chains (SQLite and PostgreSQL): new rows are sealed with a
content hash, erasing them leaves tombstones that still verify, and tampering with either the held
content or a tombstone is caught; rows chained before migration 0004 keep verifying and are kept."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gateway_support import ledger_for
from hegui.ledger import schema
from hegui.ledger.chain import DECISION_FIELDS, EVENT_FIELDS, GENESIS, canonical_json, row_hash
from hegui.ledger.erasure import KEPT_REASON, erase_rows
from hegui.ledger.events import SELF_ACTOR, append_event, events
from hegui.ledger.models import Base
from hegui.ledger.records import DecisionRecord
from hegui.ledger.store import Ledger

_decisions = Base.metadata.tables["decisions"]
_events = Base.metadata.tables["events"]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    pg = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    return request.param, pg


@pytest.fixture
def ledger(backend: tuple[str, str | None], tmp_path: Path) -> Iterator[Ledger]:
    with ledger_for(backend[0], tmp_path, backend[1]) as led:
        yield led


def rec(n: int, account: str = "acc_a", excerpt: str = "我的电话是⟦PI_1f2e3d4c⟧") -> DecisionRecord:
    return DecisionRecord(
        decision_id=f"dec-{n}", request_id=f"req-{n}", account_id=account, api_key_id="key_a", model="m",
        direction="input", scene="default", action="refuse", risks=["A1a"],
        findings=[{"risk": "PI", "evidence": "⟦PI_1f2e3d4c⟧", "start": 5, "end": 16}], detector_ms={"lexicon": 0.1},
        excerpt=excerpt)


def add_event(ledger: Ledger, account: str = "acc_a", data: dict[str, Any] | None = None,
              actor: str = "staff") -> str:
    with ledger.engine.connect() as conn:
        ledger._begin_write(conn)
        with conn.begin():
            return append_event(conn, "test.thing", account, actor, data or {"phone": "138****8000"})


def raw(ledger: Ledger, sql: str, **params: object) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def row_ids(ledger: Ledger, table: sa.Table, account: str) -> list[int]:
    with ledger.engine.connect() as conn:
        return [int(i) for i in conn.execute(sa.select(table.c.id).where(table.c.account_id == account)).scalars()]


def erase(ledger: Ledger, table: str, ids: list[int]) -> Any:
    with ledger.engine.begin() as conn:
        return erase_rows(conn, table, ids)


def one_problem(ledger: Ledger) -> Any:
    report = ledger.verify()
    assert not report.ok
    [p] = report.problems
    return p


# ---------------------------------------------------------------- sealing


def test_new_rows_carry_a_content_hash_over_their_erasable_fields(ledger: Ledger) -> None:
    for i in range(3):
        ledger.record_decision(rec(i))
    add_event(ledger)
    rows = ledger.decisions(newest_first=False, limit=None)
    prev = GENESIS
    for r in rows:
        assert r.content_nonce is not None and len(r.content_nonce) == 32
        payload = {"account_id": r.account_id, "api_key_id": r.api_key_id, "excerpt": r.excerpt,
                   "findings": r.findings}
        expected = hashlib.sha256((r.content_nonce + canonical_json(payload)).encode()).hexdigest()
        assert r.content_hash == expected
        # the row hash covers the seal, not the fields: changing them does not change it
        assert r.row_hash == row_hash(prev, {**r.__dict__, "excerpt": "", "account_id": None}, DECISION_FIELDS)
        prev = r.row_hash
    assert len({r.content_nonce for r in rows}) == 3  # a fresh salt per row
    with ledger.engine.connect() as conn:
        ev = conn.execute(sa.select(_events)).one()
    assert ev.content_hash is not None and ev.erased_at is None
    report = ledger.verify()
    assert report.ok and report.rows_checked == 4


def test_an_edited_excerpt_of_a_held_row_is_caught(ledger: Ledger) -> None:
    for i in range(3):
        ledger.record_decision(rec(i))
    raw(ledger, "UPDATE decisions SET excerpt = 'nothing to see' WHERE seq = 2")
    p = one_problem(ledger)
    assert (p.table, p.seq, p.what, p.decision_id) == ("decisions", 2, "edited", "dec-1")
    assert "content does not match its content hash" in p.detail


def test_an_edited_event_data_is_caught(ledger: Ledger) -> None:
    add_event(ledger)
    add_event(ledger)
    raw(ledger, "UPDATE events SET account_id = 'acc_other' WHERE seq = 1")
    p = one_problem(ledger)
    assert (p.table, p.seq, p.what) == ("events", 1, "edited")


def test_a_self_acted_event_does_not_repeat_the_account_id(ledger: Ledger) -> None:
    add_event(ledger, actor="acc_a")
    [ev] = events(ledger, account_id="acc_a")
    assert ev.actor == SELF_ACTOR


# ---------------------------------------------------------------- erasing


def test_erased_rows_are_tombstones_and_both_chains_still_verify(ledger: Ledger) -> None:
    for i in range(4):
        ledger.record_decision(rec(i, account="acc_a" if i % 2 else "acc_b"))
    add_event(ledger, "acc_a")
    add_event(ledger, "acc_b")
    before = {r.seq: r for r in ledger.decisions(limit=None)}
    done = erase(ledger, "decisions", row_ids(ledger, _decisions, "acc_a"))
    ev_done = erase(ledger, "events", row_ids(ledger, _events, "acc_a"))
    assert (done.erased, done.kept, ev_done.erased) == (2, [], 1)
    report = ledger.verify()
    assert report.ok, report.problems
    after = {r.seq: r for r in ledger.decisions(limit=None)}
    for seq, row in after.items():
        old = before[seq]
        assert (row.row_hash, row.prev_hash, row.content_hash) == (old.row_hash, old.prev_hash, old.content_hash)
        if old.account_id == "acc_a":
            assert (row.account_id, row.api_key_id, row.excerpt, row.findings) == (None, None, "", [])
            assert row.content_nonce is None and row.erased_at is not None
            assert (row.action, row.risks, row.decision_id) == (old.action, old.risks, old.decision_id)
        else:
            assert row == old  # the other person's rows are untouched
    [ev_a] = [e for e in events(ledger, limit=None) if e.erased_at is not None]
    assert ev_a.account_id is None and ev_a.data == {}
    assert [e.data for e in events(ledger, account_id="acc_b")] == [{"phone": "138****8000"}]
    # erasing again is a no-op, and appending goes on from the same head
    again = erase(ledger, "decisions", [r.id for r in after.values() if r.erased_at is not None])
    assert (again.erased, again.already) == (0, 2)
    ledger.record_decision(rec(9))
    assert ledger.verify().ok


def test_a_tombstone_with_its_content_hash_changed_is_caught(ledger: Ledger) -> None:
    for i in range(3):
        ledger.record_decision(rec(i))
    erase(ledger, "decisions", row_ids(ledger, _decisions, "acc_a"))
    raw(ledger, "UPDATE decisions SET content_hash = :h WHERE seq = 2", h="0" * 64)
    p = one_problem(ledger)
    assert (p.seq, p.what) == (2, "edited") and "row hash does not match" in p.detail


def test_content_put_back_into_a_tombstone_is_caught(ledger: Ledger) -> None:
    for i in range(3):
        ledger.record_decision(rec(i))
    erase(ledger, "decisions", row_ids(ledger, _decisions, "acc_a"))
    raw(ledger, "UPDATE decisions SET excerpt = 'made up later' WHERE seq = 3")
    p = one_problem(ledger)
    assert (p.seq, p.what) == (3, "edited") and "erased row still holds content" in p.detail


def test_a_tombstone_marked_held_again_is_caught(ledger: Ledger) -> None:
    for i in range(2):
        ledger.record_decision(rec(i))
    erase(ledger, "decisions", row_ids(ledger, _decisions, "acc_a"))
    raw(ledger, "UPDATE decisions SET erased_at = NULL WHERE seq = 1")
    p = one_problem(ledger)
    assert (p.seq, p.what) == (1, "edited") and "content does not match" in p.detail


def test_erasing_an_unknown_chain_is_refused(ledger: Ledger) -> None:
    with ledger.engine.begin() as conn, pytest.raises(ValueError, match="unknown chain 'accounts'"):
        erase_rows(conn, "accounts", [1])


# ---------------------------------------------------------------- rows from before 0004


@pytest.fixture
def old_ledger(ledger: Ledger) -> Ledger:
    """The ledger taken back to revision 0003, to write rows the way 0003 chained them."""
    from alembic import command

    with ledger.engine.begin() as conn:
        command.downgrade(schema.alembic_config(conn), "0003")
    return ledger


def test_rows_chained_before_0004_verify_and_are_kept_on_erasure(old_ledger: Ledger) -> None:
    led, engine = old_ledger, old_ledger.engine
    old_decision = tuple(f for f in DECISION_FIELDS if f != "flags")
    prev = GENESIS
    with engine.begin() as conn:
        for seq in (1, 2):
            values: dict[str, Any] = {
                "seq": seq, "kind": "decision", "decision_id": f"d{seq}", "request_id": "r",
                "account_id": "acc_a", "api_key_id": None, "model": None, "direction": "input",
                "scene": "default", "action": "allow", "risks": [], "findings": [], "detector_ms": {},
                "excerpt": "old text", "stream": None, "created_at": "2026-11-30T00:00:00.000000+00:00"}
            h = row_hash(prev, values, old_decision)
            conn.execute(sa.text(
                "INSERT INTO decisions (seq, kind, decision_id, request_id, account_id, direction, scene, "
                "action, risks, findings, detector_ms, excerpt, created_at, prev_hash, row_hash) VALUES "
                "(:seq, 'decision', :d, 'r', 'acc_a', 'input', 'default', 'allow', '[]', '[]', '{}', "
                "'old text', '2026-11-30 00:00:00', :p, :h)"),
                {"seq": seq, "d": f"d{seq}", "p": prev, "h": h})
            prev = h
        conn.execute(sa.text("UPDATE chain_heads SET seq = 2, row_hash = :h WHERE chain = 'decisions'"),
                     {"h": prev})
        ev = {"seq": 1, "event_id": "ev_old", "kind": "x", "account_id": "acc_a", "actor": "staff",
              "data": {"a": 1}, "created_at": "2026-11-30T00:00:00.000000+00:00"}
        eh = row_hash(GENESIS, ev, EVENT_FIELDS)
        conn.execute(sa.text(
            "INSERT INTO events (seq, event_id, kind, account_id, actor, data, created_at, prev_hash, row_hash) "
            "VALUES (1, 'ev_old', 'x', 'acc_a', 'staff', '{\"a\": 1}', '2026-11-30 00:00:00', :p, :h)"),
            {"p": GENESIS, "h": eh})
        conn.execute(sa.text("UPDATE chain_heads SET seq = 1, row_hash = :h WHERE chain = 'events'"), {"h": eh})
    with engine.begin() as conn:
        from alembic import command

        command.upgrade(schema.alembic_config(conn), "head")
    assert led.verify().ok
    led.record_decision(rec(3))
    assert led.verify().ok
    done = erase(led, "decisions", row_ids(led, _decisions, "acc_a"))
    ev_done = erase(led, "events", row_ids(led, _events, "acc_a"))
    assert done.erased == 1 and len(done.kept) == 2 and len(ev_done.kept) == 1
    assert done.to_dict()["kept_reason"] == KEPT_REASON
    report = led.verify()
    assert report.ok, report.problems
    assert [r.excerpt for r in led.decisions(newest_first=False, limit=None)] == ["old text", "old text", ""]
    # an old row marked erased by hand is named
    raw(led, "UPDATE decisions SET erased_at = CURRENT_TIMESTAMP WHERE seq = 1")
    p = one_problem(led)
    assert (p.seq, p.what) == (1, "edited") and "chained before erasable records" in p.detail
