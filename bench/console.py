"""Console render times on a big ledger: the dashboard (``/console``, each period) and the review
queue (``/console/review``), p50/p99 through the real handlers (Starlette's TestClient, logged in
through the real login form), against a bare ``SELECT count(*) FROM decisions`` of the same table
in the same run.

The ledger is filled by bulk insert (SQLite ``executemany``, PostgreSQL ``COPY``) with realistic rows
spread over the last 30 days: inputs and outputs, mostly allowed, some flagged, masked, refused and
blocked with one or two risks, streamed outputs of which some were cut, a few refusals with no risk
(detector failures). The hash-chain fields are filled but not chained: verification is not the point.
PostgreSQL (when ``$HEGUI_TEST_POSTGRES_URL`` is set) runs in a database of its own,
``hegui_bench_console``, created and dropped here.

    .venv/bin/python bench/console.py [--rows 1000000] [--renders 20] [--backend sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from starlette.testclient import TestClient

from hegui.config import load_config
from hegui.gateway.app import create_app
from hegui.ledger.store import Ledger

os.environ.setdefault("HEGUI_PII_SALT", "hegui-bench-pii-salt")
os.environ.setdefault("HEGUI_IDENTIFIER_SALT", "hegui-bench-identifier-salt")

BENCH_DB = "hegui_bench_console"
RISKS = ["A1h", "A1c", "A2", "B1", "B2", "B3", "C1", "C2", "D1", "E1", "E2", "P1", "P2"]
ACTIONS = [("allow", 0.85), ("flag", 0.05), ("mask", 0.04), ("refuse", 0.05), ("block", 0.01)]
COLUMNS = ["seq", "kind", "decision_id", "request_id", "account_id", "api_key_id", "model", "direction",
           "scene", "action", "risks", "findings", "detector_ms", "excerpt", "stream", "created_at",
           "prev_hash", "row_hash", "flags", "content_hash", "content_nonce", "erased_at"]
PASSWORD = "bench password 123"


def rows(n: int, now: datetime, seed: int = 7, first: int = 1) -> Iterator[tuple[Any, ...]]:
    """``n`` decision rows in seq order from ``first``, created evenly over the 30 days before ``now``
    (rows from ``first`` > 1 come after them, up to ``now``)."""
    rnd = random.Random(seed)
    names = [a for a, _ in ACTIONS]
    weights = [w for _, w in ACTIONS]
    span = timedelta(days=30).total_seconds()
    start = now - timedelta(days=30)
    fake_hash = "0" * 64
    for i in range(first, first + n):
        at = min(now, start + timedelta(seconds=span * i / (n + 1)))
        direction = "input" if rnd.random() < 0.55 else "output"
        action = rnd.choices(names, weights)[0]
        risks = [] if action == "allow" else sorted(set(rnd.sample(RISKS, rnd.choice((1, 1, 2)))))
        if action == "refuse" and rnd.random() < 0.02:
            risks = []  # a fail-closed refusal after a detector failure
        stream = None
        if direction == "output" and rnd.random() < 0.3:
            stream = {"sent_chars": rnd.randint(0, 2000), "cut": action in ("refuse", "block"),
                      "client_disconnected": False, "upstream_error": None}
        findings = [{"risk": r, "start": 0, "end": 4, "score": 1.0, "detector": "lexicon"} for r in risks]
        yield (i, "decision", uuid.uuid4().hex, f"req-{i}", f"acc_{rnd.randint(1, 5000)}", "key_bench",
               "qwen3", direction, "default", action, json.dumps(risks), json.dumps(findings),
               json.dumps({"lexicon": 0.2, "pii": 0.4}), "用户的问题，已遮盖 [PHONE]", json.dumps(stream) if stream
               else None, at, fake_hash, fake_hash, None, None, None, None)


def sqlite_row(r: tuple[Any, ...]) -> tuple[Any, ...]:
    """``created_at`` as UTCDateTime stores it on SQLite: naive UTC text with microseconds."""
    return (*r[:15], r[15].strftime("%Y-%m-%d %H:%M:%S.%f"), *r[16:])


def fill_sqlite(ledger: Ledger, n: int, now: datetime) -> None:
    raw = ledger.engine.raw_connection()
    try:
        cur = raw.cursor()
        # Bulk load without the table's secondary indexes, then build them once: several times
        # faster than keeping six B-trees up to date row by row.
        indexes = [sql for (sql,) in cur.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'decisions' AND sql IS NOT NULL")]
        names = [name for (name,) in cur.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'decisions' AND sql IS NOT NULL")]
        cur.execute("PRAGMA synchronous=OFF")
        for name in names:
            cur.execute(f'DROP INDEX "{name}"')
        cur.execute("BEGIN")
        sql = f"INSERT INTO decisions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        batch: list[tuple[Any, ...]] = []
        for r in rows(n, now):
            batch.append(sqlite_row(r))
            if len(batch) == 50_000:
                cur.executemany(sql, batch)
                batch.clear()
        cur.executemany(sql, batch)
        cur.execute("UPDATE chain_heads SET seq = ? WHERE chain = 'decisions'", (n,))
        cur.execute("COMMIT")
        for sql in indexes:
            cur.execute(sql)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("ANALYZE")
    finally:
        raw.close()


def fill_postgres(ledger: Ledger, n: int, now: datetime) -> None:
    raw = ledger.engine.raw_connection()
    try:
        cur: Any = raw.cursor()
        with cur.copy(f"COPY decisions ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for r in rows(n, now):
                copy.write_row(r)
        cur.execute("UPDATE chain_heads SET seq = %s WHERE chain = 'decisions'", (n,))
        raw.commit()
        cur.execute("ANALYZE decisions")
        raw.commit()
    finally:
        raw.close()


@contextmanager
def postgres_ledger(base_url: str) -> Iterator[Ledger]:
    url = sa.make_url(base_url)
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{BENCH_DB}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{BENCH_DB}"'))
    ledger = Ledger.open(url.set(database=BENCH_DB).render_as_string(hide_password=False))
    try:
        yield ledger
    finally:
        ledger.close()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)'))
        admin.dispose()


def timings(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def logged_in_client(ledger: Ledger, folder: Path) -> TestClient:
    (folder / "hegui.yaml").write_text(yaml.safe_dump({
        "gateway": {"admin_key": "sk-bench-admin"}, "labeling": {"explicit": False},
        "upstreams": [{"name": "demo", "base_url": "demo", "models": ["*"]}],
        "accounts": {"ladder": {"enabled": False}}, "cases": {"attachments_dir": "attachments"},
    }), encoding="utf-8")
    cfg = load_config(folder / "hegui.yaml", environ={})
    app = create_app(cfg, ledger=ledger)
    client = TestClient(app)
    client.__enter__()
    app.state.gateway.console.staff.create("bench", PASSWORD, "viewer", display_name="Bench", actor="bench")
    page = client.get("/console/login").text
    token = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page)
    assert token, "no CSRF token on the login page"
    r = client.post("/console/login", data={"csrf_token": token.group(1), "username": "bench",
                                            "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303, f"login failed: {r.status_code}"
    return client


def run(name: str, ledger: Ledger, n: int, renders: int, folder: Path) -> None:
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    (fill_sqlite if name == "sqlite" else fill_postgres)(ledger, n, now)
    print(f"\n{name}: {n:,} decisions inserted in {time.perf_counter() - t0:.1f} s")
    client = logged_in_client(ledger, folder)
    try:
        def get(path: str) -> None:
            r = client.get(path)
            assert r.status_code == 200, f"{path}: {r.status_code} {r.text[:200]}"

        t0 = time.perf_counter()
        get("/console")
        print(f"  first dashboard render (rollup catch-up over every row): {time.perf_counter() - t0:.2f} s")
        with ledger.engine.connect() as conn:
            def count() -> None:
                conn.execute(sa.text("SELECT count(*) FROM decisions")).scalar()
            base = timings(count, renders)
        b50, b99 = p(base, 0.5), p(base, 0.99)
        print(f"  {'SELECT count(*) FROM decisions':44} p50 {b50:8.1f} ms  p99 {b99:8.1f} ms")
        page_sizes: dict[str, int] = {}
        for path in ("/console?period=24h", "/console?period=7d", "/console?period=30d", "/console/review"):
            page_sizes[path] = len(client.get(path).content)
            t = timings(lambda path=path: get(path), renders)  # type: ignore[misc]
            print(f"  {path:44} p50 {p(t, 0.5):8.1f} ms  p99 {p(t, 0.99):8.1f} ms  "
                  f"(x{p(t, 0.5) / b50:.2f} / x{p(t, 0.99) / b99:.2f} count(*); {page_sizes[path] / 1024:.1f} KB)")
        # a render that has new rows to count (the steady state under traffic): 100 rows per render
        extra = rows(100 * renders, now, seed=8, first=n + 1)

        def with_new_rows() -> None:
            batch = [next(extra) for _ in range(100)]
            if name == "sqlite":
                batch = [sqlite_row(r) for r in batch]
            with ledger.engine.begin() as conn:
                conn.execute(sa.text(f"INSERT INTO decisions ({', '.join(COLUMNS)}) VALUES "
                                     f"({', '.join(':' + c for c in COLUMNS)})"),
                             [dict(zip(COLUMNS, r, strict=True)) for r in batch])
            get("/console?period=24h")
        t = timings(with_new_rows, renders)
        print(f"  {'/console?period=24h after 100 new rows':44} p50 {p(t, 0.5):8.1f} ms  p99 {p(t, 0.99):8.1f} ms"
              "  (includes the insert)")
    finally:
        client.__exit__(None, None, None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--renders", type=int, default=20)
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hegui-bench-console-") as tmp:
        folder = Path(tmp)
        if args.backend in ("sqlite", "both"):
            with Ledger.open(f"sqlite:///{folder / 'ledger.db'}") as ledger:
                run("sqlite", ledger, args.rows, args.renders, folder)
        pg = os.environ.get("HEGUI_TEST_POSTGRES_URL")
        if args.backend in ("postgres", "both"):
            if not pg:
                print("\npostgres: skipped ($HEGUI_TEST_POSTGRES_URL is not set)")
            else:
                with postgres_ledger(pg) as ledger:
                    run("postgres", ledger, args.rows, args.renders, folder)


if __name__ == "__main__":
    main()
