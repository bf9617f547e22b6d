"""The ledger on SQLite and PostgreSQL: migrations, records, UTC datetimes, the hash chain and its
verifier, concurrent appends, API keys and identifier hashing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from hegui.config import load_config
from hegui.errors import UserError
from hegui.ledger import schema
from hegui.ledger.chain import GENESIS, row_hash
from hegui.ledger.config import LedgerConfig
from hegui.ledger.errors import LedgerError, LedgerNotFound, LedgerOpenError
from hegui.ledger.identifiers import hash_identifier, looks_personal
from hegui.ledger.models import Base
from hegui.ledger.records import DecisionRecord
from hegui.ledger.store import Ledger

SRC = Path(__file__).resolve().parents[1] / "src"


@dataclass
class Target:
    backend: str
    url: str


@contextmanager
def fresh_database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """An empty database: a SQLite file, or a fresh PostgreSQL schema (dropped afterwards)."""
    if backend == "sqlite":
        yield Target("sqlite", f"sqlite:///{tmp_path / 'ledger.db'}")
        return
    base = request.getfixturevalue("postgres_url")
    name = f"hegui_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    sep = "&" if "?" in base else "?"
    try:
        yield Target("postgres", f"{base}{sep}options={quote(f'-csearch_path={name}')}")
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{name}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    with fresh_database(request.param, request, tmp_path) as t:
        yield t


@pytest.fixture
def pg_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    with fresh_database("postgres", request, tmp_path) as t:
        yield t


@pytest.fixture
def ledger(target: Target) -> Iterator[Ledger]:
    with Ledger.open(target.url) as led:
        yield led


def rec(n: int = 0, **kw: object) -> DecisionRecord:
    base: dict[str, object] = {
        "decision_id": f"dec-{n}",
        "request_id": f"req-{n}",
        "account_id": "acc_1",
        "api_key_id": "key_1",
        "model": "qwen",
        "direction": "input",
        "scene": "default",
        "action": "allow",
        "risks": [],
        "findings": [],
        "detector_ms": {"lexicon": 0.25},
        "excerpt": f"hello {n}",
    }
    base.update(kw)
    return DecisionRecord(**base)  # type: ignore[arg-type]


def raw(ledger: Ledger, sql: str, **params: object) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(sa.text(sql), params)


# ---------------------------------------------------------------- schema


def test_migrates_to_head_and_matches_models(ledger: Ledger) -> None:
    assert schema.current_revision(ledger.engine) == schema.head_revision()
    with ledger.engine.connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
        assert {"decisions", "chain_heads", "accounts", "api_keys", "ledger_meta", "alembic_version"} <= names
        # The hand-written migration and the models describe the same schema.
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diffs == []


def test_reopen_is_idempotent_and_create_false_needs_a_ledger(target: Target, tmp_path: Path) -> None:
    with Ledger.open(target.url) as led:
        led.record_decision(rec(1))
    with Ledger.open(target.url, create=False) as led:
        assert len(led.decisions()) == 1
    with pytest.raises(LedgerOpenError, match="no ledger database"):
        Ledger.open(f"sqlite:///{tmp_path / 'absent.db'}", create=False)
    assert not (tmp_path / "absent.db").exists()


def test_pg_synchronous_commit_setting(pg_target: Target) -> None:
    for level in ("off", "on"):
        with Ledger.open(pg_target.url, config=LedgerConfig(pg_synchronous_commit=level)) as led:
            with led.engine.connect() as conn:
                assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == level
            led.record_decision(rec())
            assert led.verify().ok


def test_unknown_schema_revision_is_one_line(target: Target) -> None:
    with Ledger.open(target.url) as led:
        raw(led, "UPDATE alembic_version SET version_num = '9999_from_the_future'")
    with pytest.raises(
        LedgerOpenError, match="revision 9999_from_the_future, which this version of hegui does not know"
    ):
        Ledger.open(target.url)


def test_sqlite_creates_missing_folder(tmp_path: Path) -> None:
    with Ledger.open(f"sqlite:///{tmp_path / 'a' / 'b' / 'ledger.db'}") as led:
        led.record_decision(rec())
    assert (tmp_path / "a" / "b" / "ledger.db").exists()


def test_sqlite_pragmas(tmp_path: Path) -> None:
    with Ledger.open(f"sqlite:///{tmp_path / 'p.db'}") as led, led.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000


# ---------------------------------------------------------------- records


def test_record_and_read_back(ledger: Ledger) -> None:
    findings = [
        {"risk": "PI", "start": 3, "end": 14, "score": 1.0, "detector": "pii", "evidence_id": "pii:MOBILE"}
    ]
    row_id = ledger.record_decision(
        rec(
            7,
            direction="output",
            action="mask",
            risks=["PI"],
            findings=findings,
            detector_ms={"pii": 0.1234567, "lexicon": 2},
            excerpt="我的号码 [PI:MOBILE]\x00 end",
            stream={"sent_chars": 40, "cut": False, "client_disconnected": True, "upstream_error": None},
        )
    )
    [row] = ledger.decisions()
    assert row.id == row_id and row.seq == 1 and row.kind == "decision"
    assert (row.decision_id, row.request_id, row.direction, row.action) == (
        "dec-7",
        "req-7",
        "output",
        "mask",
    )
    assert row.risks == ["PI"] and row.findings == findings
    assert row.detector_ms == {"pii": 0.123, "lexicon": 2.0}
    assert row.excerpt == "我的号码 [PI:MOBILE]\ufffd end"  # NUL cannot be stored in PostgreSQL text
    assert row.stream == {"sent_chars": 40, "cut": False, "client_disconnected": True, "upstream_error": None}
    assert row.prev_hash == GENESIS and len(row.row_hash) == 64


def test_excerpt_is_truncated(target: Target) -> None:
    with Ledger.open(target.url, config=LedgerConfig(excerpt_chars=5)) as led:
        led.record_decision(rec(excerpt="abcdefghij"))
        assert led.decisions()[0].excerpt == "abcde"


def test_datetimes_are_utc_aware(ledger: Ledger) -> None:
    before = datetime.now(UTC)
    ledger.record_decision(rec(1))
    beijing = timezone(timedelta(hours=8))
    given = datetime(2026, 3, 1, 20, 30, 15, 123456, tzinfo=beijing)
    ledger.record_decision(rec(2, created_at=given))
    ledger.record_decision(rec(3, created_at=datetime(2026, 3, 1, 12, 0)))  # naive: taken as UTC
    rows = {r.decision_id: r for r in ledger.decisions()}
    for r in rows.values():
        assert r.created_at.tzinfo is not None and r.created_at.utcoffset() == timedelta(0)
    assert before <= rows["dec-1"].created_at <= datetime.now(UTC)
    assert rows["dec-2"].created_at == given
    assert rows["dec-2"].created_at.hour == 12 and rows["dec-2"].created_at.microsecond == 123456
    assert rows["dec-3"].created_at == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert [r.decision_id for r in ledger.decisions(since=datetime(2026, 6, 1, tzinfo=UTC))] == ["dec-1"]
    acc = ledger.create_account("x")
    account = ledger.get_account(acc)
    assert account is not None and account.created_at.tzinfo is not None


def test_async_record(ledger: Ledger) -> None:
    async def go() -> list[int]:
        return list(await asyncio.gather(*(ledger.arecord_decision(rec(i)) for i in range(5))))

    ids = asyncio.run(go())
    assert len(set(ids)) == 5
    assert sorted(r.seq for r in ledger.decisions()) == [1, 2, 3, 4, 5]
    assert ledger.verify().ok


def test_finding_objects_are_stored_as_dicts(ledger: Ledger) -> None:
    from hegui.detectors.base import Finding

    finding = Finding("PI", 1, 12, 0.98765, "pii", "pii:CN_MOBILE:ab12cd34", "CN_MOBILE")
    ledger.record_decision(rec(findings=[finding]))  # type: ignore[list-item]
    assert ledger.decisions()[0].findings == [finding.to_dict()]
    assert ledger.verify().ok


def test_unknown_kind_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="unknown decision kind"):
        ledger.record_decision(rec(kind="bogus"))  # type: ignore[arg-type]


def test_lone_surrogates_do_not_stop_a_record(ledger: Ledger) -> None:
    ledger.record_decision(rec(excerpt="bad \ud800 text", request_id="r\udfff", findings=[{"k": "\ud800"}]))
    row = ledger.decisions()[0]
    assert (
        row.excerpt == "bad \ufffd text" and row.request_id == "r\ufffd" and row.findings == [{"k": "\ufffd"}]
    )
    assert ledger.verify().ok


def test_overlong_identifiers_are_cut_not_refused(ledger: Ledger) -> None:
    ledger.record_decision(rec(request_id="r" * 500))
    assert ledger.decisions()[0].request_id == "r" * 128
    assert ledger.verify().ok


def test_database_failure_raises_ledger_error(ledger: Ledger) -> None:
    raw(ledger, "DROP TABLE decisions")
    with pytest.raises(LedgerError, match="cannot record decision"):
        ledger.record_decision(rec())


# ---------------------------------------------------------------- streams


def test_stream_open_progress_and_close(ledger: Ledger) -> None:
    opening = rec(1, direction="output", action="pending")
    ledger.open_stream(opening)
    ledger.update_stream(
        "dec-1", {"sent_chars": 120, "cut": False, "client_disconnected": False, "upstream_error": None}
    )
    # A second stream crashes after its checkpoint: no final record.
    ledger.open_stream(rec(2, direction="output", action="pending"))
    ledger.update_stream(
        "dec-2", {"sent_chars": 80, "cut": False, "client_disconnected": False, "upstream_error": None}
    )
    ledger.record_decision(
        rec(
            1,
            direction="output",
            action="allow",
            stream={"sent_chars": 300, "cut": False, "client_disconnected": False, "upstream_error": None},
        )
    )
    kinds = [(r.decision_id, r.kind) for r in ledger.decisions(newest_first=False)]
    assert kinds == [
        ("dec-1", "stream_open"),
        ("dec-1", "stream_progress"),
        ("dec-2", "stream_open"),
        ("dec-2", "stream_progress"),
        ("dec-1", "decision"),
    ]
    progress = ledger.decisions(kind="stream_progress", decision_id="dec-1")[0]
    assert progress.request_id == "req-1" and progress.account_id == "acc_1"
    [crashed] = ledger.open_streams()
    assert (
        crashed.decision_id == "dec-2" and crashed.stream is not None and crashed.stream["sent_chars"] == 80
    )
    assert ledger.verify().ok


KILLED_MID_STREAM = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {src!r})
    from hegui.ledger.records import DecisionRecord
    from hegui.ledger.store import Ledger
    led = Ledger.open(sys.argv[1])
    led.open_stream(DecisionRecord("s-1", "r-1", "acc", "key", "m", "output", "default", "pending",
                                   [], [], {{}}, ""))
    led.update_stream("s-1", {{"sent_chars": 57, "cut": False, "client_disconnected": False,
                               "upstream_error": None}})
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no flush, no atexit
    """
)


def test_a_killed_process_leaves_its_open_stream(target: Target) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_MID_STREAM.format(src=str(SRC)), target.url],
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -9, proc.stderr.decode()
    with Ledger.open(target.url) as led:
        [crashed] = led.open_streams()
        assert (
            crashed.decision_id == "s-1" and crashed.stream is not None and crashed.stream["sent_chars"] == 57
        )
        assert led.verify().ok


# ---------------------------------------------------------------- the chain


def test_chain_links_and_verifies(ledger: Ledger) -> None:
    for i in range(10):
        ledger.record_decision(rec(i, risks=["A1a"] if i % 2 else []))
    rows = ledger.decisions(newest_first=False, limit=None)
    assert [r.seq for r in rows] == list(range(1, 11))
    prev = GENESIS
    for r in rows:
        assert r.prev_hash == prev
        assert r.row_hash == row_hash(prev, r.__dict__, schema_fields())
        prev = r.row_hash
    report = ledger.verify()
    assert report.ok and report.rows_checked == 10 and report.heads["decisions"] == (10, prev)


def schema_fields() -> tuple[str, ...]:
    from hegui.ledger.chain import DECISION_FIELDS

    return DECISION_FIELDS


def test_edited_row_is_named(ledger: Ledger) -> None:
    for i in range(5):
        ledger.record_decision(rec(i, action="block" if i == 2 else "allow"))
    raw(ledger, "UPDATE decisions SET action = 'allow' WHERE seq = 3")
    report = ledger.verify()
    assert not report.ok
    [p] = report.problems
    assert (p.table, p.seq, p.what, p.decision_id) == ("decisions", 3, "edited", "dec-2")


def test_edited_and_rehashed_row_is_named(ledger: Ledger) -> None:
    for i in range(4):
        ledger.record_decision(rec(i, action="block"))
    row = ledger.decisions(decision_id="dec-1")[0]
    forged = {**row.__dict__, "action": "allow"}
    raw(
        ledger,
        "UPDATE decisions SET action = 'allow', row_hash = :h WHERE seq = 2",
        h=row_hash(row.prev_hash, forged, schema_fields()),
    )
    [p] = ledger.verify().problems
    assert (p.seq, p.what, p.decision_id) == (2, "edited", "dec-1")


def test_deleted_row_is_named(ledger: Ledger) -> None:
    for i in range(6):
        ledger.record_decision(rec(i))
    raw(ledger, "DELETE FROM decisions WHERE seq = 4")
    [p] = ledger.verify().problems
    assert (p.seq, p.what) == (4, "deleted")
    assert "seq 4 missing" in p.detail


def test_deleted_tail_is_named(ledger: Ledger) -> None:
    for i in range(6):
        ledger.record_decision(rec(i))
    raw(ledger, "DELETE FROM decisions WHERE seq >= 5")
    [p] = ledger.verify().problems
    assert (p.seq, p.what) == (5, "deleted") and "seq 5-6" in p.detail


def test_inserted_row_is_named(ledger: Ledger) -> None:
    for i in range(3):
        ledger.record_decision(rec(i))
    last = ledger.decisions(limit=1)[0]
    forged = {**last.__dict__, "seq": 4, "decision_id": "forged", "prev_hash": last.row_hash}
    forged["row_hash"] = row_hash(last.row_hash, forged, schema_fields())
    cols = [c for c in forged if c != "id"]
    with ledger.engine.begin() as conn:
        conn.execute(sa.insert(Base.metadata.tables["decisions"]).values({c: forged[c] for c in cols}))
    [p] = ledger.verify().problems
    assert (p.seq, p.what, p.decision_id) == (4, "inserted", "forged")


# ---------------------------------------------------------------- concurrency


def test_concurrent_appends_from_threads(ledger: Ledger) -> None:
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for i in range(20):
                ledger.record_decision(rec(t * 100 + i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    rows = ledger.decisions(limit=None, newest_first=False)
    assert [r.seq for r in rows] == list(range(1, 81))
    report = ledger.verify()
    assert report.ok and report.rows_checked == 80


def test_queued_appends_share_a_commit(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """While one commit is in flight, the records queued behind it go out together in the next."""
    batches: list[int] = []
    write_rows = ledger._write_rows
    first = threading.Event()

    def slow_write(rows: list[dict[str, object]]) -> list[int]:
        batches.append(len(rows))
        if len(batches) == 1:
            first.set()
            deadline = time.monotonic() + 10
            while len(ledger._pending) < 5 and time.monotonic() < deadline:
                time.sleep(0.01)  # the others queue up behind this commit
        return write_rows(rows)

    monkeypatch.setattr(ledger, "_write_rows", slow_write)
    threads = [threading.Thread(target=ledger.record_decision, args=(rec(0),))]
    threads[0].start()
    assert first.wait(5)
    threads += [threading.Thread(target=ledger.record_decision, args=(rec(i),)) for i in range(1, 6)]
    for th in threads[1:]:
        th.start()
    for th in threads:
        th.join()
    assert batches == [1, 5]
    assert sorted(r.seq for r in ledger.decisions()) == [1, 2, 3, 4, 5, 6]
    assert ledger.verify().ok


def test_a_failed_group_commit_fails_every_caller(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(rows: list[dict[str, object]]) -> list[int]:
        raise sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(ledger, "_write_rows", broken)
    with pytest.raises(LedgerError, match="disk I/O error"):
        ledger.record_decision(rec())
    assert ledger._pending == []


CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {src!r})
    from hegui.ledger.records import DecisionRecord
    from hegui.ledger.store import Ledger
    led = Ledger.open(sys.argv[1])
    for i in range(int(sys.argv[3])):
        led.record_decision(DecisionRecord(f"{{sys.argv[2]}}-{{i}}", "r", None, None, None, "input",
                                           "default", "allow", [], [], {{}}, "x"))
    led.close()
    """
)


def test_concurrent_appends_from_processes(target: Target) -> None:
    Ledger.open(target.url).close()  # migrate first, as `hegui db upgrade` would
    script = CHILD.format(src=str(SRC))
    procs = [
        subprocess.Popen([sys.executable, "-c", script, target.url, f"p{n}", "40"], stderr=subprocess.PIPE)
        for n in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]  # wait for both before asserting: no strays
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err.decode()
    with Ledger.open(target.url) as led:
        rows = led.decisions(limit=None, newest_first=False)
        assert [r.seq for r in rows] == list(range(1, 81))
        assert {r.decision_id.split("-")[0] for r in rows} == {"p0", "p1"}
        assert led.verify().ok


def test_concurrent_first_open_migrates_once(target: Target) -> None:
    """Gateway workers starting together each open (and migrate) the same empty database."""
    script = CHILD.format(src=str(SRC))
    procs = [
        subprocess.Popen([sys.executable, "-c", script, target.url, f"w{n}", "3"], stderr=subprocess.PIPE)
        for n in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]  # wait for both before asserting: no strays
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err.decode()
    with Ledger.open(target.url, create=False) as led:
        assert led.count_decisions() == 6 and led.verify().ok


# ---------------------------------------------------------------- accounts and API keys


def test_api_keys(ledger: Ledger) -> None:
    acc = ledger.create_account("Acme")
    key_id, plaintext = ledger.create_api_key(acc, admin=True, name="ci")
    assert plaintext.startswith("hg-") and len(plaintext) > 40
    found = ledger.lookup_api_key(plaintext)
    assert found is not None
    assert (found.id, found.account_id, found.admin, found.revoked, found.name) == (
        key_id,
        acc,
        True,
        False,
        "ci",
    )
    assert plaintext.startswith(found.prefix) and len(found.prefix) < 16
    assert ledger.lookup_api_key(plaintext + "x") is None
    # Only a hash is stored.
    with ledger.engine.connect() as conn:
        stored = [tuple(r) for r in conn.exec_driver_sql("SELECT * FROM api_keys")]
    assert plaintext not in repr(stored)
    ledger.revoke_api_key(key_id)
    revoked = ledger.lookup_api_key(plaintext)
    assert revoked is not None and revoked.revoked
    with pytest.raises(LedgerNotFound):
        ledger.revoke_api_key("key_nope")
    with pytest.raises(LedgerNotFound):
        ledger.create_api_key("acc_nope")


def test_ensure_demo_key_is_idempotent(ledger: Ledger) -> None:
    acc = ledger.ensure_account("acc_demo", "Demo")
    assert ledger.ensure_account("acc_demo") == acc
    k1 = ledger.ensure_api_key(acc, "sk-hegui-demo")
    k2 = ledger.ensure_api_key(acc, "sk-hegui-demo")
    assert k1 == k2 and [k.id for k in ledger.api_keys(acc)] == [k1]
    found = ledger.lookup_api_key("sk-hegui-demo")
    assert found is not None and found.account_id == "acc_demo" and not found.admin
    other = ledger.create_account("Other")
    with pytest.raises(LedgerError, match="already belongs"):
        ledger.ensure_api_key(other, "sk-hegui-demo")


# ---------------------------------------------------------------- personal data


@pytest.mark.parametrize(
    ("value", "personal"),
    [
        ("13812345678", True),
        ("+86 138-1234-5678", True),
        ("+44 20 7946 0958", True),
        ("someone@example.com", True),
        ("11010519491231002X", True),
        ("123456789", True),  # a QQ number
        ("acc_3f2a9c", False),
        ("user-42", False),
        ("h:" + "0" * 64, False),
    ],
)
def test_looks_personal(value: str, personal: bool) -> None:
    assert looks_personal(value) is personal


def test_hash_identifier(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEGUI_IDENTIFIER_SALT", raising=False)
    with pytest.raises(ValueError, match="HEGUI_IDENTIFIER_SALT"):
        hash_identifier("13812345678")
    monkeypatch.setenv("HEGUI_IDENTIFIER_SALT", "pepper")
    h = hash_identifier("13812345678")
    assert h.startswith("h:") and "13812345678" not in h
    assert hash_identifier("+86 138 1234 5678") == h  # same person, same hash
    assert hash_identifier("13812345678", salt="other") != h
    assert hash_identifier("13812345679") != h


def test_personal_identifiers_are_hashed_at_rest(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEGUI_IDENTIFIER_SALT", "pepper")
    ledger.record_decision(rec(1, account_id="13812345678"))
    acc = ledger.create_account("Zhang", external_id="zhang@example.com")
    row = ledger.decisions()[0]
    assert row.account_id == hash_identifier("13812345678", "pepper")
    assert ledger.decisions(account_id="+8613812345678")[0].id == row.id
    found = ledger.find_account("Zhang@Example.com")
    assert found is not None and found.id == acc and found.external_id != "zhang@example.com"
    with ledger.engine.connect() as conn:
        dump = repr(
            [tuple(r) for t in ("decisions", "accounts") for r in conn.exec_driver_sql(f"SELECT * FROM {t}")]
        )
    assert "13812345678" not in dump and "zhang@example.com" not in dump


def test_account_ids_that_look_personal_are_hashed(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEGUI_IDENTIFIER_SALT", "pepper")
    acc = ledger.ensure_account("13812345678", name="13812345678")
    assert acc == hash_identifier("13812345678", "pepper")
    assert ledger.ensure_account("+86 138 1234 5678") == acc
    _, plaintext = ledger.create_api_key("13812345678")
    found = ledger.lookup_api_key(plaintext)
    assert found is not None and found.account_id == acc
    assert ledger.ensure_api_key("13812345678", "sk-demo") == ledger.ensure_api_key(acc, "sk-demo")
    with ledger.engine.connect() as conn:
        dump = repr(
            [tuple(r) for t in ("accounts", "api_keys") for r in conn.exec_driver_sql(f"SELECT * FROM {t}")]
        )
    assert "13812345678" not in dump


def test_database_salt_when_no_env(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEGUI_IDENTIFIER_SALT", raising=False)
    ledger.record_decision(rec(1, account_id="13812345678"))
    stored = ledger.decisions()[0].account_id
    assert stored is not None and stored.startswith("h:")
    with ledger.engine.connect() as conn:
        salt = conn.exec_driver_sql(
            "SELECT value FROM ledger_meta WHERE key = 'identifier_salt'"
        ).scalar_one()
    assert stored == hash_identifier("13812345678", salt)


def test_store_raw_keeps_identifiers(target: Target) -> None:
    with Ledger.open(target.url, config=LedgerConfig(store_raw=True)) as led:
        led.record_decision(rec(1, account_id="13812345678"))
        assert led.decisions()[0].account_id == "13812345678"


# ---------------------------------------------------------------- config


def test_from_config_resolves_relative_sqlite_path(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    cfg_file = tmp_path / "conf" / "hegui.yaml"
    cfg_file.write_text("ledger:\n  url: sqlite:///data.db\n  excerpt_chars: 3\n", encoding="utf-8")
    cfg = load_config(cfg_file, environ={})
    with Ledger.from_config(cfg) as led:
        led.record_decision(rec(excerpt="abcdef"))
        assert led.decisions()[0].excerpt == "abc"
    assert (tmp_path / "conf" / "data.db").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "invalid ledger URL"),
        ("mysql://u@h/db", "unsupported ledger URL"),
        ("postgresql+psycopg://postgres:secret@127.0.0.1:1/x", "cannot open ledger at"),
    ],
)
def test_bad_urls_give_one_line(url: str, message: str) -> None:
    with pytest.raises(LedgerOpenError) as err:
        Ledger.open(url)
    text = str(err.value)
    assert message in text and "\n" not in text and "secret" not in text


# ---------------------------------------------------------------- retention


OLD = datetime(2020, 1, 1, tzinfo=UTC)


def test_prune_deletes_the_old_prefix_and_keeps_the_chain(ledger: Ledger) -> None:
    for i in range(4):
        ledger.record_decision(rec(i, created_at=OLD + timedelta(minutes=i)))
    ledger.record_decision(rec(4))  # young
    ledger.record_decision(rec(5, created_at=OLD))  # old, but after a young one: stays
    dry = ledger.prune(dry_run=True)
    assert (dry.rows, dry.first_seq, dry.last_seq) == (4, 1, 4)
    assert ledger.count_decisions() == 6
    result = ledger.prune()
    assert (result.rows, result.first_seq, result.last_seq) == (4, 1, 4)
    assert sorted(r.seq for r in ledger.decisions()) == [5, 6]
    [anchor] = ledger.anchors()
    assert (anchor["seq"], anchor["row_hash"], anchor["rows_pruned"]) == (4, result.anchor_hash, 4)
    assert ledger.decisions(decision_id="dec-4")[0].prev_hash == result.anchor_hash
    ledger.record_decision(rec(6))
    report = ledger.verify()
    assert report.ok and report.rows_checked == 3
    assert ledger.prune().rows == 0  # seq 5 is young: nothing more to cut
    raw(ledger, "DELETE FROM decisions WHERE seq = 5")
    [p] = ledger.verify().problems
    assert (p.seq, p.what) == (5, "deleted")


def test_prune_refuses_young_records_and_tampered_prefix(ledger: Ledger) -> None:
    with pytest.raises(UserError, match="retention_days"):
        ledger.prune(datetime.now(UTC) - timedelta(days=30))
    for i in range(3):
        ledger.record_decision(rec(i, created_at=OLD, action="block"))
    raw(ledger, "UPDATE decisions SET action = 'allow' WHERE seq = 2")
    with pytest.raises(LedgerError, match=r"refusing to prune.*seq 2"):
        ledger.prune()
    assert ledger.count_decisions() == 3 and ledger.anchors() == []


def test_migration_from_0001_keeps_rows(target: Target) -> None:
    engine = sa.create_engine(target.url)
    schema.upgrade(engine, "0001")
    assert schema.current_revision(engine) == "0001"
    engine.dispose()
    with Ledger.open(target.url) as led:  # 0001 -> head
        assert schema.current_revision(led.engine) == schema.head_revision() != "0001"
        led.record_decision(rec(1, created_at=OLD))
        assert led.prune().rows == 1 and led.verify().ok
