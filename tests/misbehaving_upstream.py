"""A model server that misbehaves on purpose, for the gateway's fault tests.

A raw asyncio HTTP/1.1 server (no framework, so it can send exactly the bytes a broken server
would) in a thread of its own. ``POST /v1/chat/completions`` answers according to the first word
of the last user message (``mode`` below); every answer closes the connection afterwards.

| mode | streamed request | non-streamed request |
|---|---|---|
| ``ok`` | a well-formed stream saying the rest of the message | a well-formed answer |
| ``not-json`` | 200 ``text/html`` | 200 ``application/json`` whose body is HTML |
| ``json-stream`` | 200 ``application/json``: a whole answer instead of a stream | (as ``ok``) |
| ``garbage-sse`` | first event ``data: {not json`` | |
| ``broken-after`` | two good events, then ``data: {oops`` | |
| ``bad-shape`` | a good event, then ``{"choices": 7}`` | ``{"choices": [5]}`` |
| ``long-line`` | ``data: `` and 10 MB without a newline, then silence | 10 MB of JSON that never ends |
| ``long-line-after`` | a good event, then the 10 MB line | |
| ``silent`` | headers, then nothing | headers (``content-length: 100``), then nothing |
| ``silent-after`` | a good event, then nothing | |
| ``comments`` | headers, then ``: ping`` every 20 ms, forever | |
| ``trickle`` | | headers, then one byte of body every 0.2 s, forever |
| ``endless`` | good events as fast as the socket takes them, forever | |
| ``gamble-then-endless`` | an event with 赌博 in it (a word the tests' moderator refuses), then as ``endless`` | |

``stats[mode]`` counts the bytes of body the server managed to hand to its socket per mode (what
the gateway, or the kernel's buffers on the way, accepted); ``open`` counts the connections being
served, ``open_modes`` the same per mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

LONG_LINE_BYTES = 10 * 1024 * 1024
SSE_HEADERS = b"content-type: text/event-stream\r\ncache-control: no-cache\r\n"


def chunk(text: str, finish_reason: str | None = None) -> bytes:
    body = {"id": "chatcmpl-bad", "object": "chat.completion.chunk", "created": 0, "model": "bad",
            "choices": [{"index": 0, "delta": {"content": text} if text else {}, "finish_reason": finish_reason}]}
    return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"


def answer(text: str) -> bytes:
    return json.dumps({
        "id": "chatcmpl-bad", "object": "chat.completion", "created": 0, "model": "bad",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }, ensure_ascii=False).encode()


class MisbehavingUpstream:
    def __init__(self) -> None:
        self.stats: Counter[str] = Counter()
        self.open = 0
        self.open_modes: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @contextlib.contextmanager
    def running(self) -> Iterator[str]:
        """Serve until the block ends; yields the ``base_url`` (``http://127.0.0.1:PORT/v1``)."""
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop).result(5)
        self.port = self._server.sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{self.port}/v1"
        finally:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._handle(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = json.loads(await reader.readexactly(length)) if length else {}
            text = str(body.get("messages", [{}])[-1].get("content", ""))
            mode, _, rest = text.partition(" ")
            self.open_modes[mode] += 1
            try:
                await self._answer(mode, rest, bool(body.get("stream")), reader, writer)
            finally:
                self.open_modes[mode] -= 1
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _send(self, writer: asyncio.StreamWriter, mode: str, data: bytes) -> None:
        writer.write(data)
        await writer.drain()
        self.stats[mode] += len(data)

    @staticmethod
    async def _until_closed(reader: asyncio.StreamReader) -> None:
        """Hold the connection open (sending nothing) until the client closes it."""
        while await reader.read(4096):
            pass

    async def _answer(self, mode: str, rest: str, stream: bool, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        def start(ctype: bytes, extra: bytes = b"") -> bytes:
            return b"HTTP/1.1 200 OK\r\ncontent-type: " + ctype + b"\r\nconnection: close\r\n" + extra + b"\r\n"

        sse = start(b"text/event-stream", b"cache-control: no-cache\r\n")
        if not stream:
            if mode == "not-json":
                body = b"<html><body>502 Bad Gateway</body></html>"
                writer.write(start(b"application/json", b"content-length: %d\r\n" % len(body)) + body)
            elif mode == "bad-shape":
                body = b'{"choices": [5]}'
                writer.write(start(b"application/json", b"content-length: %d\r\n" % len(body)) + body)
            elif mode == "long-line":
                writer.write(start(b"application/json"))
                await self._send(writer, mode, b'{"choices": [{"message": {"content": "')
                for _ in range(LONG_LINE_BYTES // 65536):
                    await self._send(writer, mode, b"x" * 65536)
                await self._until_closed(reader)
            elif mode == "silent":
                writer.write(start(b"application/json", b"content-length: 100\r\n"))
                await self._until_closed(reader)
            elif mode == "trickle":
                writer.write(start(b"application/json", b"content-length: 100000\r\n"))
                while True:
                    await self._send(writer, mode, b" ")
                    await asyncio.sleep(0.2)
            else:
                body = answer(rest)
                writer.write(start(b"application/json", b"content-length: %d\r\n" % len(body)) + body)
            await writer.drain()
            return
        if mode == "not-json":
            writer.write(start(b"text/html") + b"<html><body>502 Bad Gateway</body></html>")
        elif mode == "json-stream":
            writer.write(start(b"application/json") + answer(rest))
        elif mode == "garbage-sse":
            writer.write(sse + b"data: {not json\n\n")
        elif mode == "broken-after":
            writer.write(sse + chunk("你好") + chunk("世界") + b"data: {oops\n\n")
            await writer.drain()
            await self._until_closed(reader)
        elif mode == "bad-shape":
            writer.write(sse + chunk("你好") + b'data: {"choices": 7}\n\n')
            await writer.drain()
            await self._until_closed(reader)
        elif mode in ("long-line", "long-line-after"):
            writer.write(sse + (chunk("你好") if mode == "long-line-after" else b"") + b"data: ")
            for _ in range(LONG_LINE_BYTES // 65536):
                await self._send(writer, mode, b"x" * 65536)
            await self._until_closed(reader)
        elif mode in ("silent", "silent-after"):
            writer.write(sse + (chunk("你好") if mode == "silent-after" else b""))
            await writer.drain()
            await self._until_closed(reader)
        elif mode == "comments":
            writer.write(sse)
            while True:
                await self._send(writer, mode, b": ping\n\n")
                await asyncio.sleep(0.02)
        elif mode in ("endless", "gamble-then-endless"):
            writer.write(sse + (chunk("好的，我们来谈谈赌博。") if mode == "gamble-then-endless" else b""))
            piece = b"".join(chunk("这是一段很长的回答，模型一直说下去。") for _ in range(64))
            while True:
                await self._send(writer, "endless", piece)
        else:
            writer.write(sse + b"".join(chunk(c) for c in rest) + chunk("", "stop") + b"data: [DONE]\n\n")
        await writer.drain()


def wait_until(predicate: Any, timeout: float = 5.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
