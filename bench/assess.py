"""Questions per second of the assessment runner against an upstream with a fixed latency.

The upstream is a tiny OpenAI-compatible app (its own process, so it does not share the runner's
GIL) that waits ``--latency-ms`` and answers. The runner (:func:`hegui.assessment.runner.ask_all`,
answers appended and flushed to a run folder as in a real run) asks at each concurrency; the ideal
is ``concurrency / latency``, measured in the same run, and the ratio says how much of it the runner
reaches.

    .venv/bin/python bench/assess.py                       # concurrency 1, 8, 32; about 15 s
    .venv/bin/python bench/assess.py --latency-ms 200 --seconds 3
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def serve(port: int, latency: float) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        await asyncio.sleep(latency)
        text = "答：" + body["messages"][-1]["content"]
        return JSONResponse({"id": "c", "object": "chat.completion", "model": body.get("model"), "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/healthz", health)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", backlog=4096)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str) -> None:
    import httpx

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("bench upstream did not start")


def measure(url: str, concurrency: int, n: int) -> float:
    from hegui.assessment.bank import BankItem
    from hegui.assessment.results import RunFolder
    from hegui.assessment.runner import RunOptions, Target, ask_all

    items = [BankItem(id=f"q{i}", kind="should_not_refuse", question=f"第{i}题：介绍一下历史", topic="history")
             for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = RunFolder(Path(tmp))
        start = time.perf_counter()
        errors = asyncio.run(ask_all(folder, items, Target(url + "/v1", "bench"), RunOptions(concurrency=concurrency)))
        elapsed = time.perf_counter() - start
        if errors or len(folder.answers()) != n:
            raise SystemExit(f"bench run lost answers: {errors} errors, {len(folder.answers())} of {n}")
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-ms", type=float, default=50.0, help="upstream latency per answer")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated concurrency levels")
    parser.add_argument("--seconds", type=float, default=3.0, help="ideal duration of each level")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    latency = args.latency_ms / 1000.0
    if args.serve is not None:
        serve(args.serve, latency)
        return
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--latency-ms", str(args.latency_ms)])
    try:
        url = f"http://127.0.0.1:{port}"
        wait_up(url)
        measure(url, 4, 8)  # warm-up: imports, connections
        print(f"upstream latency {args.latency_ms:g} ms; ideal = concurrency / latency")
        print(f"{'concurrency':>11} {'questions':>9} {'q/s':>8} {'ideal q/s':>9} {'ratio':>6}")
        for c in (int(x) for x in args.concurrency.split(",")):
            ideal = c / latency
            n = max(c, int(ideal * args.seconds))
            qps = measure(url, c, n)
            print(f"{c:>11} {n:>9} {qps:>8.1f} {ideal:>9.1f} {qps / ideal:>6.2f}")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
