"""Latency of ``Ledger.record_decision`` (p50/p99) on SQLite and PostgreSQL.

Baseline, measured in the same run on the same database: a plain one-row INSERT of the same values
into an unchained copy of the table, committed on its own. The ratio is what the hash chain and
its lock cost on top of a durable insert.

    .venv/bin/python bench/ledger_latency.py [--n 1000] [--pg postgresql+psycopg://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

from hegui.ledger.config import LedgerConfig
from hegui.ledger.models import Base
from hegui.ledger.records import DecisionRecord
from hegui.ledger.store import Ledger


def record(i: int) -> DecisionRecord:
    return DecisionRecord(
        decision_id=uuid.uuid4().hex,
        request_id=f"req-{i}",
        account_id="acc_bench",
        api_key_id="key_bench",
        model="qwen3",
        direction="output",
        scene="default",
        action="mask",
        risks=["PI"],
        findings=[
            {
                "risk": "PI",
                "start": 4,
                "end": 15,
                "score": 1.0,
                "detector": "pii",
                "evidence_id": "pii:MOBILE",
            }
        ],
        detector_ms={"lexicon": 0.08, "pii": 0.12},
        excerpt="请联系 [PI:MOBILE] 获取更多信息" * 3,
    )


def percentiles(samples: list[float]) -> tuple[float, float]:
    qs = statistics.quantiles(samples, n=100)
    return statistics.median(samples), qs[98]


def measure(fn: Callable[[int], object], n: int) -> list[float]:
    for i in range(20):
        fn(i)
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t) * 1000)
    return out


def measure_threads(fn: Callable[[int], object], n: int, threads: int) -> list[float]:
    out: list[float] = []
    lock = threading.Lock()

    def work(k: int) -> None:
        local = measure(lambda i: fn(k * n + i), n // threads)
        with lock:
            out.extend(local)

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return out


def bench(label: str, url: str, n: int, config: LedgerConfig | None = None) -> None:
    with Ledger.open(url, config=config) as led:
        plain = Base.metadata.tables["decisions"].to_metadata(sa.MetaData(), name="bench_plain")
        plain.create(led.engine)

        seqs = itertools.count(1)

        def baseline(i: int) -> None:
            values = led._decision_values(record(i))
            values.update(seq=next(seqs), prev_hash="0" * 64, row_hash="0" * 64)
            with led.engine.begin() as conn:
                conn.execute(sa.insert(plain).values(**values))

        base = measure(baseline, n)
        chained = measure(lambda i: led.record_decision(record(i)), n)
        threaded = measure_threads(lambda i: led.record_decision(record(i)), n, threads=4)
        t = time.perf_counter()
        report = led.verify()
        verify_s = time.perf_counter() - t
        assert report.ok
        plain.drop(led.engine)
    b50, b99 = percentiles(base)
    c50, c99 = percentiles(chained)
    t50, t99 = percentiles(threaded)
    print(
        f"{label:10s} record_decision p50 {c50:6.3f} ms  p99 {c99:6.3f} ms | "
        f"plain insert p50 {b50:6.3f} ms  p99 {b99:6.3f} ms | ratio p50 {c50 / b50:4.2f}x  p99 {c99 / b99:4.2f}x\n"
        f"{'':10s} 4 threads at once: p50 {t50:6.3f} ms  p99 {t99:6.3f} ms | "
        f"verify {report.rows_checked / verify_s:,.0f} rows/s"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        bench("sqlite", f"sqlite:///{Path(d) / 'bench.db'}", args.n)
    name = f"hegui_bench_{uuid.uuid4().hex[:8]}"
    try:
        admin = sa.create_engine(args.pg)
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    except sa.exc.OperationalError as exc:
        print(f"postgresql skipped: {str(exc).splitlines()[0]}")
        return
    try:
        sep = "&" if "?" in args.pg else "?"
        url = f"{args.pg}{sep}options={quote(f'-csearch_path={name}')}"
        bench("postgresql", url, args.n)
        bench("pg sc=off", url, args.n, LedgerConfig(pg_synchronous_commit="off"))
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{name}" CASCADE')
        admin.dispose()


if __name__ == "__main__":
    main()
