"""Two ``hegui serve`` processes sharing PostgreSQL and Redis see the same rate limits and suspensions.

Each process has its own in-memory caches; what they share is the ledger database (profiles, the
accounts version they poll) and Redis (counters). A suspension written by an operator must bite on
both within ``accounts.sync_seconds`` (here 0.5 s, checked with a 2 s bound), and a per-account rate
limit must count the requests both served.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml

from gateway_support import free_port
from hegui.accounts.store import AccountStore
from hegui.ledger.store import Ledger

HEGUI = [sys.executable, "-c", "from hegui.cli import main; main()"]
CHAT = {"model": "hegui-demo", "messages": [{"role": "user", "content": "你好"}]}


@pytest.fixture()
def shared_db(postgres_url: str) -> Iterator[str]:
    """A database of the test's own on the PostgreSQL server (two processes cannot share a schema
    through search_path without a config option for it)."""
    name = "hegui_replicas_" + uuid.uuid4().hex[:10]
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = postgres_url.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture()
def redis_url() -> str:
    url = os.environ.get("HEGUI_TEST_REDIS_URL")
    if not url:
        pytest.skip("HEGUI_TEST_REDIS_URL is not set; Redis tests skipped")
    return url


def start(cfg: Path, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([*HEGUI, "serve", "--config", str(cfg), "--port", str(port), "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            _, err = proc.communicate(timeout=5)
            raise AssertionError(f"hegui serve did not start: {err[-2000:]}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=5)


def test_two_processes_share_rate_limits_and_suspension(tmp_path: Path, shared_db: str, redis_url: str) -> None:
    cfg = tmp_path / "hegui.yaml"
    cfg.write_text(yaml.safe_dump({
        "ledger": {"url": shared_db},
        "labeling": {"explicit": False},
        "accounts": {"redis_url": redis_url, "sync_seconds": 0.5,
                     "rate_limits": {"good": {"requests_per_minute": 6}}},
    }), encoding="utf-8")
    ledger = Ledger.open(shared_db)
    try:
        store = AccountStore(ledger)
        account = ledger.create_account("shared")
        _, key_a = ledger.create_api_key(account)
        _, key_b = ledger.create_api_key(account)
        ports = free_port(), free_port()
        procs = [start(cfg, ports[0]), start(cfg, ports[1])]
        try:
            a = httpx.Client(base_url=f"http://127.0.0.1:{ports[0]}", timeout=10,
                             headers={"Authorization": f"Bearer {key_a}"})
            b = httpx.Client(base_url=f"http://127.0.0.1:{ports[1]}", timeout=10,
                             headers={"Authorization": f"Bearer {key_b}"})
            # wait for a fresh minute window so the 6 requests below fall into one
            if time.time() % 60 > 50:
                time.sleep(61 - time.time() % 60)
            statuses = [c.post("/v1/chat/completions", json=CHAT).status_code for c in (a, b, a, b, a, b)]
            assert statuses == [200] * 6
            over_a = a.post("/v1/chat/completions", json=CHAT)
            over_b = b.post("/v1/chat/completions", json=CHAT)
            # the account's limit counts what both processes served, through two different keys
            assert over_a.status_code == over_b.status_code == 429
            assert int(over_a.headers["retry-after"]) >= 1

            other = ledger.create_account("other")
            _, key_c = ledger.create_api_key(other)
            for port in ports:  # both processes have the account cached as in good standing
                assert httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10,
                                 headers={"Authorization": f"Bearer {key_c}"}).status_code == 200
            store.set_standing(other, "suspended", actor="staff_1", reason="test",
                               until=datetime.now(UTC) + timedelta(hours=1))
            t0 = time.monotonic()
            pending = set(ports)
            while pending and time.monotonic() - t0 < 2.0:
                for port in list(pending):
                    r = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10,
                                  headers={"Authorization": f"Bearer {key_c}"})
                    if r.status_code == 403:
                        assert r.json()["error"]["code"] == "account_suspended"
                        pending.discard(port)
                time.sleep(0.02)
            elapsed = time.monotonic() - t0
            assert not pending, f"the suspension did not reach every process within 2 s ({elapsed:.2f} s)"
            a.close()
            b.close()
        finally:
            for p in procs:
                stop(p)
    finally:
        ledger.close()
    with Ledger.open(shared_db, create=False) as after:
        assert after.verify().ok
