"""``hegui db …`` and ``hegui ledger …`` through typer's CliRunner: output and exit codes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from hegui.cli import app
from hegui.ledger import schema
from hegui.ledger.records import DecisionRecord
from hegui.ledger.store import Ledger

runner = CliRunner()


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    base = request.getfixturevalue("postgres_url")
    name = f"hegui_cli_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    try:
        yield f"{base}{'&' if '?' in base else '?'}options={quote(f'-csearch_path={name}')}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{name}" CASCADE')
        admin.dispose()


def fill(url: str, n: int = 5) -> None:
    with Ledger.open(url) as led:
        for i in range(n):
            led.record_decision(
                DecisionRecord(
                    f"dec-{i}",
                    f"req-{i}",
                    None,
                    None,
                    None,
                    "input",
                    "default",
                    "block",
                    ["A1a"],
                    [],
                    {},
                    "x",
                )
            )


def tamper(url: str, sql: str) -> None:
    with Ledger.open(url) as led, led.engine.begin() as conn:
        conn.exec_driver_sql(sql)


def test_db_upgrade_and_current(url: str) -> None:
    res = runner.invoke(app, ["db", "upgrade", "--url", url])
    assert res.exit_code == 0, res.output
    assert f"schema revision {schema.head_revision()}" in res.output
    res = runner.invoke(app, ["db", "current", "--url", url])
    assert res.exit_code == 0 and f"(head {schema.head_revision()})" in res.output


def test_db_upgrade_reads_config(tmp_path: Path) -> None:
    cfg = tmp_path / "hegui.yaml"
    cfg.write_text("ledger:\n  url: sqlite:///from-config.db\n", encoding="utf-8")
    res = runner.invoke(app, ["db", "upgrade", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "from-config.db").exists()


def test_db_current_behind_head_exits_1(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    sa.create_engine(f"sqlite:///{db}").connect().close()  # an empty database file
    res = runner.invoke(app, ["db", "current", "--url", f"sqlite:///{db}"])
    assert res.exit_code == 1 and "hegui db upgrade" in res.output


def test_verify_intact_then_edited(url: str) -> None:
    fill(url)
    res = runner.invoke(app, ["ledger", "verify", "--url", url])
    assert res.exit_code == 0, res.output
    assert "ledger intact: 5 rows checked" in res.output
    tamper(url, "UPDATE decisions SET action = 'allow' WHERE seq = 2")
    res = runner.invoke(app, ["ledger", "verify", "--url", url])
    assert res.exit_code == 1
    assert "decisions seq 2" in res.output and "decision dec-1" in res.output and "edited" in res.output


def test_verify_deleted_json(url: str) -> None:
    fill(url)
    tamper(url, "DELETE FROM decisions WHERE seq = 3")
    res = runner.invoke(app, ["ledger", "verify", "--url", url, "--json"])
    assert res.exit_code == 1
    out = json.loads(res.output)
    assert out["ok"] is False and out["rows_checked"] == 4
    assert [(p["table"], p["seq"], p["what"]) for p in out["problems"]] == [("decisions", 3, "deleted")]


@pytest.mark.parametrize(
    "bad",
    ["postgresql+psycopg://postgres@127.0.0.1:1/nodb", "nonsense", "sqlite:////nonexistent/dir/x.db"],
)
def test_verify_bad_url_is_one_line_exit_2(bad: str) -> None:
    res = runner.invoke(app, ["ledger", "verify", "--url", bad])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Traceback" not in res.output


def test_verify_bad_config_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "hegui.yaml"
    cfg.write_text("ledger:\n  urll: x\n", encoding="utf-8")
    res = runner.invoke(app, ["ledger", "verify", "--config", str(cfg)])
    assert res.exit_code == 2 and "ledger.urll: unknown key" in res.output


def test_head_and_decisions(url: str) -> None:
    fill(url, 3)
    res = runner.invoke(app, ["ledger", "head", "--url", url, "--json"])
    assert res.exit_code == 0
    head = json.loads(res.output)["decisions"]
    with Ledger.open(url) as led:
        assert (head["seq"], head["hash"]) == (3, led.decisions(limit=1)[0].row_hash)
    res = runner.invoke(app, ["ledger", "decisions", "--url", url, "-n", "2", "--json"])
    assert res.exit_code == 0
    assert [r["seq"] for r in json.loads(res.output)] == [3, 2]


def test_account_and_key_commands(url: str) -> None:
    res = runner.invoke(app, ["ledger", "account", "create", "Acme", "--url", url])
    assert res.exit_code == 0, res.output
    acc = res.output.strip()
    res = runner.invoke(app, ["ledger", "key", "create", "--account", acc, "--admin", "--url", url])
    assert res.exit_code == 0, res.output
    key_id = res.output.split("key id:")[1].split()[0]
    plaintext = res.output.split("key:")[1].split()[0]
    with Ledger.open(url) as led:
        found = led.lookup_api_key(plaintext)
        assert found is not None and found.id == key_id and found.admin
    res = runner.invoke(app, ["ledger", "key", "list", "--url", url])
    assert key_id in res.output and plaintext not in res.output
    res = runner.invoke(app, ["ledger", "key", "revoke", key_id, "--url", url])
    assert res.exit_code == 0
    with Ledger.open(url) as led:
        found = led.lookup_api_key(plaintext)
        assert found is not None and found.revoked
    res = runner.invoke(app, ["ledger", "key", "revoke", "key_missing", "--url", url])
    assert res.exit_code == 2 and "no API key key_missing" in res.output
    res = runner.invoke(app, ["ledger", "key", "create", "--account", "acc_missing", "--url", url])
    assert res.exit_code == 2 and "no account acc_missing" in res.output


def test_prune(url: str) -> None:
    with Ledger.open(url) as led:
        for i in range(3):
            led.record_decision(
                DecisionRecord(
                    f"d{i}",
                    "r",
                    None,
                    None,
                    None,
                    "input",
                    "default",
                    "allow",
                    [],
                    [],
                    {},
                    "x",
                    created_at=datetime(2020, 1, 1, tzinfo=UTC),
                )
            )
    res = runner.invoke(app, ["ledger", "prune", "--url", url, "--days", "30"])
    assert res.exit_code == 2 and "retention_days" in res.output
    res = runner.invoke(app, ["ledger", "prune", "--url", url, "--dry-run"])
    assert res.exit_code == 0 and "would delete 3 records (seq 1-3)" in res.output
    res = runner.invoke(app, ["ledger", "prune", "--url", url, "--before", "2021-01-01", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["rows"] == 3
    res = runner.invoke(app, ["ledger", "verify", "--url", url])
    assert res.exit_code == 0 and "0 rows checked" in res.output
