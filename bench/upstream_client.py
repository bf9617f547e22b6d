"""Which HTTP client should the gateway call its upstream with? httpx against aiohttp, on the gateway's
own load, in one run.

A mock OpenAI-compatible upstream runs in its own process (uvicorn): a non-streamed answer of 305
characters after ``--delay-ms`` (20), and streams of 77 chunks ``--chunk-ms`` (5) apart, the shape
``../shared/tools/gateway_overhead.py`` uses. This process then sends the same requests with each
client at concurrency 1 and 8, alternating the clients round by round, and prints the client's CPU
milliseconds per request (``time.process_time``: this process only, so the mock's work is not in it)
and requests per second, with the ratio aiohttp / httpx.

    python bench/upstream_client.py [--requests 400] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

ANSWER = ("周末去杭州游玩，可以按照下面的安排进行。第一天上午建议先到西湖，沿着苏堤慢慢步行，欣赏湖光山色和两岸的垂柳。" * 6)[:305]
PROMPT = ("人工智能技术的发展为社会带来了新的机遇，也提出了新的治理问题。" * 40)[:1000]


def mock_app(delay: float, chunk_delay: float) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    pieces = [ANSWER[i:i + 4] for i in range(0, len(ANSWER), 4)]

    async def chat(request: Request) -> Any:
        body = await request.json()
        if body.get("stream"):
            async def events() -> Any:
                for n, piece in enumerate(pieces):
                    if n:
                        await asyncio.sleep(chunk_delay)
                    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                             "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                    yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
                yield "data: [DONE]\n\n"
            return StreamingResponse(events(), media_type="text/event-stream")
        await asyncio.sleep(delay)
        return JSONResponse({"id": "c", "object": "chat.completion", "created": 0, "model": "m",
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def body(stream: bool) -> bytes:
    return json.dumps({"model": "m", "stream": stream, "messages": [{"role": "user", "content": PROMPT}]},
                      ensure_ascii=False).encode()


class HttpxClient:
    name = "httpx"

    def __init__(self) -> None:
        import httpx

        self.client = httpx.AsyncClient(limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100))

    async def one(self, url: str, stream: bool) -> int:
        headers = {"content-type": "application/json"}
        if not stream:
            resp = await self.client.post(url, content=body(False), headers=headers)
            return len(resp.json()["choices"][0]["message"]["content"])
        n = 0
        async with self.client.stream("POST", url, content=body(True), headers=headers) as resp:
            async for line in resp.aiter_lines():
                if line.startswith("data: {"):
                    n += len(json.loads(line[6:])["choices"][0]["delta"]["content"])
        return n

    async def close(self) -> None:
        await self.client.aclose()


class AiohttpClient:
    name = "aiohttp"

    def __init__(self) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))

    async def one(self, url: str, stream: bool) -> int:
        headers = {"content-type": "application/json"}
        async with self.session.post(url, data=body(stream), headers=headers) as resp:
            if not stream:
                return len(json.loads(await resp.read())["choices"][0]["message"]["content"])
            n = 0
            async for raw in resp.content:
                line = raw.decode()
                if line.startswith("data: {"):
                    n += len(json.loads(line[6:])["choices"][0]["delta"]["content"])
            return n

    async def close(self) -> None:
        await self.session.close()


async def phase(client: Any, url: str, stream: bool, concurrency: int, requests: int) -> tuple[float, float]:
    """(CPU ms per request of this process, requests per second)."""
    queue = list(range(requests))

    async def worker() -> None:
        while queue:
            queue.pop()
            got = await client.one(url, stream)
            assert got == len(ANSWER), f"{client.name}: {got} characters, expected {len(ANSWER)}"

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - cpu0) * 1000 / requests, requests / (time.perf_counter() - t0)


async def run(url: str, requests: int, rounds: int) -> None:
    clients = [HttpxClient(), AiohttpClient()]
    try:
        for c in clients:  # warm-up: connections open, imports done
            await phase(c, url, False, 8, 32)
            await phase(c, url, True, 8, 8)
        print("| scenario | client | CPU ms/request | req/s |")
        print("|---|---|---:|---:|")
        summary: list[str] = []
        for stream in (False, True):
            for concurrency in (1, 8):
                n = max(8, requests // (4 if stream else 1) // rounds)
                totals = {c.name: [0.0, 0.0] for c in clients}
                for _ in range(rounds):
                    for c in clients:
                        cpu, rps = await phase(c, url, stream, concurrency, n)
                        totals[c.name][0] += cpu / rounds
                        totals[c.name][1] += rps / rounds
                label = f"{'stream' if stream else 'non-stream'}, c={concurrency}"
                for name, (cpu, rps) in totals.items():
                    print(f"| {label} | {name} | {cpu:.2f} | {rps:.1f} |")
                ratio = totals["aiohttp"][0] / totals["httpx"][0]
                summary.append(f"{label}: aiohttp uses {ratio:.2f}x httpx's CPU per request")
        print()
        for line in summary:
            print(line)
    finally:
        for c in clients:
            await c.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=400, help="Requests per scenario and client (streams: a quarter).")
    ap.add_argument("--rounds", type=int, default=4, help="Rounds alternating the clients.")
    ap.add_argument("--delay-ms", type=float, default=20.0, help="Mock answer delay (non-streamed).")
    ap.add_argument("--chunk-ms", type=float, default=5.0, help="Mock gap between stream chunks.")
    ap.add_argument("--serve-mock", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_mock:
        import uvicorn

        uvicorn.run(mock_app(args.delay_ms / 1000, args.chunk_ms / 1000), host="127.0.0.1", port=args.serve_mock,
                    log_level="warning")
        return
    port = free_port()
    mock = subprocess.Popen([sys.executable, __file__, "--serve-mock", str(port), "--delay-ms", str(args.delay_ms),
                             "--chunk-ms", str(args.chunk_ms)], env={**os.environ})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the mock upstream did not start") from None
                time.sleep(0.1)
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            pass
        asyncio.run(run(f"http://127.0.0.1:{port}/v1/chat/completions", args.requests, args.rounds))
    finally:
        mock.terminate()
        mock.wait()


if __name__ == "__main__":
    main()
