"""Server-Sent Events to the client, with the client's disconnect noticed at once.

:class:`SSEResponse` pumps an async generator of SSE frames to the client in one task while a
second task waits for ``http.disconnect``. When the client goes away, the pump is cancelled, so
the generator's ``finally:`` runs right then (it closes the upstream, so generation stops, and
writes the decision record of what was sent) instead of whenever the generator is collected.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

MAX_PENDING_FRAMES = 256
"""Frames made ahead of what the client has taken, before the generator is paused."""


class SSEResponse(Response):
    media_type = "text/event-stream"

    def __init__(self, frames: AsyncGenerator[bytes, None], headers: Mapping[str, str] | None = None) -> None:
        self.frames = frames
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache", "x-accel-buffering": "no", **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        pump = asyncio.ensure_future(self._pump(send))

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    pump.cancel()
                    return

        watcher = asyncio.ensure_future(watch())
        try:
            await asyncio.wait({pump}, return_when=asyncio.ALL_COMPLETED)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if not pump.done():
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump

    async def _pump(self, send: Send) -> None:
        # The generator runs in a producer task; whatever frames it made while the last send was in
        # flight go out in one write. A slow upstream gets each frame sent at once; a fast one (or a
        # slow client) costs one syscall per batch instead of one per token.
        pending: list[bytes] = []
        wake = asyncio.Event()
        room = asyncio.Event()
        room.set()
        finished = False

        async def produce() -> None:
            nonlocal finished
            try:
                async for frame in self.frames:
                    pending.append(frame)
                    wake.set()
                    if len(pending) >= MAX_PENDING_FRAMES:
                        # a slow client: stop pulling from the upstream until it catches up
                        room.clear()
                        await room.wait()
            finally:
                finished = True
                wake.set()

        producer = asyncio.ensure_future(produce())
        try:
            while True:
                await wake.wait()
                wake.clear()
                if pending:
                    data = b"".join(pending)
                    pending.clear()
                    room.set()
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                if finished and not pending:
                    break
            await producer  # re-raise what the generator raised
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            # the client is gone (ASGI 2.4 servers raise on send); the generator's finally records it
            pass
        finally:
            if not producer.done():
                producer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await producer
            # a generator paused between frames still runs its finally (closing the upstream,
            # recording what was sent) now, not whenever it is garbage-collected
            await self.frames.aclose()
