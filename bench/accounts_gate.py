"""What the account gate costs a request: the gateway with the gate off, on (counters through the
database) and on with Redis, in one run against the same upstream.

Starts the demo upstream and three ``hegui serve`` processes that differ only in ``accounts``
(SQLite ledgers of their own; the same detectors), then drives all three from one load process, each
worker taking them in turn so they see the same machine load. The prompt is short (20 characters),
so moderation is cheap and the gate's part stands out. For each phase it prints p50/p99 latency, the
time the gate adds over the gate-off gateway, and gateway CPU per request (from ``/proc``).

    python bench/accounts_gate.py [--requests 300] [--seconds 20] [--concurrency 8] [--redis redis://127.0.0.1:6379/0]

The gate here checks standing (cached), agreements (none published), rate limits (a per-key and a
per-account counter per request) and marks no usage minutes (the bench account is no minor).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway as gwbench  # bench/gateway.py: the load driver and helpers

KEY = "sk-hegui-bench-gate"


def drive(args: argparse.Namespace) -> None:
    targets = {name: (url, KEY) for name, url in json.loads(args.targets).items()}
    body_prompt = "/say 你好，请介绍一下今天的天气情况。"
    gwbench.prompt_text = lambda n=1000: body_prompt[5:]  # the driver sends "/say " + prompt_text()
    res = asyncio.run(gwbench.phase(targets, False, args.requests, args.seconds, args.concurrency))
    json.dump(res, sys.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=300, help="Requests per gateway in each concurrent phase.")
    ap.add_argument("--seconds", type=float, default=20.0, help="Time limit of each phase.")
    ap.add_argument("--concurrency", type=int, default=8, help="Concurrent requests in the second phase.")
    ap.add_argument("--serial-requests", type=int, default=200, help="Requests per gateway one at a time.")
    ap.add_argument("--redis", default=os.environ.get("HEGUI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
                    help="Redis for the third gateway ('' to leave it out).")
    ap.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--targets", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.drive:
        drive(args)
        return

    import yaml

    from hegui.ledger.store import Ledger

    py = sys.executable
    variants: dict[str, dict[str, Any]] = {"gate off": {"enabled": False}, "gate on": {"enabled": True}}
    if args.redis:
        variants["gate+redis"] = {"enabled": True, "redis_url": args.redis}
    up_port = gwbench.free_port()
    env = {"HEGUI_PII_SALT": "bench", "HEGUI_IDENTIFIER_SALT": "bench", **os.environ, "PYTHONUNBUFFERED": "1"}
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="hegui-bench-gate-") as tmp:
        urls: dict[str, str] = {}
        pids: dict[str, int] = {}
        try:
            procs.append(subprocess.Popen([py, "-m", "hegui.gateway.demo_upstream", "--port", str(up_port),
                                           "--token-delay-ms", "0"], env=env))
            for i, (name, accounts) in enumerate(variants.items()):
                db = f"sqlite:///{tmp}/ledger{i}.db"
                with Ledger.open(db) as ledger:
                    ledger.ensure_account("acc_bench")
                    ledger.ensure_api_key("acc_bench", KEY)
                cfg = {"ledger": {"url": db}, "accounts": accounts,
                       "upstreams": [{"name": "mock", "base_url": f"http://127.0.0.1:{up_port}/v1"}]}
                path = Path(tmp) / f"hegui{i}.yaml"
                path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
                port = gwbench.free_port()
                proc = subprocess.Popen([py, "-c", "from hegui.cli import main; main()", "serve", "--config",
                                         str(path), "--port", str(port), "--log-level", "warning"], env=env)
                procs.append(proc)
                urls[name] = f"http://127.0.0.1:{port}/v1"
                pids[name] = proc.pid
            gwbench.wait_http(f"http://127.0.0.1:{up_port}/healthz")
            for url in urls.values():
                gwbench.wait_http(url.removesuffix("/v1") + "/healthz")
            print("non-streamed chat, 20-character prompt and answer; same upstream for all")
            for conc, requests in ((1, args.serial_requests), (args.concurrency, args.requests)):
                cpu0 = {n: gwbench.cpu_seconds(p) for n, p in pids.items()}
                out = subprocess.run([py, __file__, "--drive", "--targets", json.dumps(urls), "--requests",
                                      str(requests), "--seconds", str(args.seconds), "--concurrency", str(conc)],
                                     env=env, capture_output=True, check=True, timeout=args.seconds * 4 + 120)
                cpu1 = {n: gwbench.cpu_seconds(p) for n, p in pids.items()}
                res = json.loads(out.stdout)
                print(f"\nconcurrency {conc}")
                print(f"  {'gateway':12}{'n':>6}{'err':>5}{'p50 ms':>9}{'p99 ms':>9}{'added p50':>11}{'added p99':>11}"
                      f"{'CPU/req ms':>12}")
                base = res["gate off"]
                for name, r in res.items():
                    cpu = (cpu1[name] - cpu0[name]) / r["n"] * 1000 if r["n"] else float("nan")
                    p50, p99 = gwbench.pct(r["lat"], 50) * 1000, gwbench.pct(r["lat"], 99) * 1000
                    add50 = p50 - gwbench.pct(base["lat"], 50) * 1000
                    add99 = p99 - gwbench.pct(base["lat"], 99) * 1000
                    print(f"  {name:12}{r['n']:>6}{r['errors']:>5}{p50:>9.2f}{p99:>9.2f}{add50:>11.2f}{add99:>11.2f}"
                          f"{cpu:>12.2f}")
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    main()
