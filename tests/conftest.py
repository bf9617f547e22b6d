"""Shared fixtures: where the development data lives, and the PostgreSQL URL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# `hegui serve` refuses to start without secret salts; the servers the tests start (and their
# subprocesses) get test salts, as a deployment would get real ones.
TEST_SALTS = {"HEGUI_PII_SALT": "hegui-tests-pii-salt", "HEGUI_IDENTIFIER_SALT": "hegui-tests-identifier-salt"}
for _name, _value in TEST_SALTS.items():
    os.environ.setdefault(_name, _value)


def shared_data_dir() -> Path:
    env = os.environ.get("HEGUI_SHARED_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or ``$HEGUI_SHARED_DATA``); skips the test where it is absent."""
    path = shared_data_dir()
    if not (path / "dev_pool.jsonl").exists():
        pytest.skip(f"development data not found at {path} (set HEGUI_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """PostgreSQL URL from ``$HEGUI_TEST_POSTGRES_URL``; skips when unset or unreachable."""
    url = os.environ.get("HEGUI_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("HEGUI_TEST_POSTGRES_URL is not set; PostgreSQL tests skipped")
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(url)
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL at {url} is not reachable: {exc.__class__.__name__}")
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def migrated_ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A ledger URL with the schema at head: a SQLite file, or a schema of its own on the test
    PostgreSQL server (dropped afterwards), for tests that drive the CLI against both backends."""
    import uuid
    from urllib.parse import quote

    import sqlalchemy as sa

    from hegui.ledger.store import Ledger

    if request.param == "sqlite":
        u = f"sqlite:///{tmp_path / 'ledger.db'}"
        Ledger.open(u).close()
        yield u
        return
    base = request.getfixturevalue("postgres_url")
    name = f"hegui_cli_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    try:
        u = f"{base}{'&' if '?' in base else '?'}options={quote(f'-csearch_path={name}')}"
        Ledger.open(u).close()
        yield u
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{name}" CASCADE')
        admin.dispose()
