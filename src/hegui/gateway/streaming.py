"""Server-Sent Events to the client, with the client's disconnect noticed at once.

:class:`SSEResponse` pumps an async generator of SSE frames to the client in one task while a
second task waits for ``http.disconnect``. When the client goes away, the pump is cancelled, so
the generator's ``finally:`` runs right then (it closes the upstream, so generation stops, and
writes the decision record of what was sent) instead of whenever the generator is collected.

Memory stays bounded whatever the client does: the pump holds at most ``MAX_PENDING_FRAMES`` /
``MAX_PENDING_BYTES`` of frames the client has not taken, then stops pulling from the generator
(which stops reading the upstream, and TCP pushes back on the model server). A client that takes
nothing for ``CLIENT_STALL_SECONDS`` is treated as gone, so it cannot hold an upstream for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

log = logging.getLogger("hegui.gateway")

MAX_PENDING_FRAMES = 256
"""Frames made ahead of what the client has taken, before the generator is paused."""
MAX_PENDING_BYTES = 256 * 1024
"""The same bound in bytes (what a slow client has not taken yet is at most about twice this: the
pile being written and the next one)."""
SEND_PIECE_BYTES = 64 * 1024
"""Largest single write to the server: what piled up while the client was slow goes out in pieces,
so that the time one piece waits measures the client, not the size of the pile."""
CLIENT_STALL_SECONDS = 60.0
"""A client that does not take a piece within this time is dropped (recorded as disconnected)."""


class ClientStalled(Exception):
    """The client stopped taking data."""


class SSEResponse(Response):
    media_type = "text/event-stream"

    def __init__(self, frames: AsyncGenerator[bytes, None], headers: Mapping[str, str] | None = None,
                 stall_timeout: float | None = None,
                 on_close: Callable[[], Awaitable[None]] | None = None) -> None:
        self.frames = frames
        self.stall_timeout = stall_timeout
        self.on_close = on_close
        """Run when the response ends however it ends, even when ``frames`` never started."""
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
            if self.on_close is not None:
                await self.on_close()

    async def _pump(self, send: Send) -> None:
        # The generator runs in a producer task; whatever frames it made while the last send was in
        # flight go out together. A slow upstream gets each frame sent at once; a fast one (or a
        # slow client) costs one syscall per batch instead of one per token.
        pending: list[bytes] = []
        pending_bytes = 0
        wake = asyncio.Event()
        room = asyncio.Event()
        room.set()
        finished = False

        async def produce() -> None:
            nonlocal finished, pending_bytes
            try:
                async for frame in self.frames:
                    pending.append(frame)
                    pending_bytes += len(frame)
                    wake.set()
                    if len(pending) >= MAX_PENDING_FRAMES or pending_bytes >= MAX_PENDING_BYTES:
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
                    pending_bytes = 0
                    room.set()
                    for at in range(0, len(data), SEND_PIECE_BYTES):
                        await self._send(send, {"type": "http.response.body",
                                                "body": data[at:at + SEND_PIECE_BYTES], "more_body": True})
                if finished and not pending:
                    break
            await producer  # re-raise what the generator raised
            await self._send(send, {"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            # the client is gone (ASGI 2.4 servers raise on send); the generator's finally records it
            pass
        except ClientStalled:
            log.warning("a streaming client took no data for %g s: dropped", self._stall_limit())
        finally:
            if not producer.done():
                producer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await producer
            # a generator paused between frames still runs its finally (closing the upstream,
            # recording what was sent) now, not whenever it is garbage-collected
            await self.frames.aclose()

    def _stall_limit(self) -> float:
        return CLIENT_STALL_SECONDS if self.stall_timeout is None else self.stall_timeout

    async def _send(self, send: Send, message: Message) -> None:
        # the server's send waits while the connection's buffer is full (flow control): that wait
        # is the client not reading
        try:
            async with asyncio.timeout(self._stall_limit()):
                await send(message)
        except TimeoutError:
            raise ClientStalled from None
