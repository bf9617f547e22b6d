"""Upstream model servers: routing by model name, failover, timeouts, and SSE reading.

Completions and streams go over one shared :class:`aiohttp.ClientSession` per app; images and the
``GET /models`` listing over one :class:`httpx.AsyncClient` (:class:`UpstreamClients`). Measured on
the gateway's own load (``bench/upstream_client.py``), aiohttp takes 0.22–0.38× httpx's CPU per
non-streamed request and about half per stream: the client was the largest single cost of a
request. An upstream is tried ``retries + 1`` times, then the
next upstream whose ``models`` match, on a connect error, a timeout or a 5xx. A 4xx is the
client's problem and is passed back as is (no failover). Once a stream has started nothing fails
over any more: the gateway ends the stream cleanly instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

import aiohttp
import anyio
import httpx

from hegui.gateway import demo_upstream, protocol
from hegui.gateway.config import UpstreamConfig
from hegui.gateway.errors import GatewayError

log = logging.getLogger("hegui.gateway.upstream")

FailureKind = Literal["connect", "timeout", "status", "protocol"]
T = TypeVar("T")


class UpstreamFailure(Exception):
    """This upstream could not answer; the router may try the next one."""

    def __init__(self, upstream: str, kind: FailureKind, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.upstream = upstream
        self.kind = kind
        self.message = message
        self.status = status


class UpstreamRejected(Exception):
    """The upstream answered 4xx: the request itself is wrong. Passed back to the client as is."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"upstream rejected the request with {status}")
        self.status = status
        self.body = body


class OpenStream(Protocol):
    """An upstream stream whose response headers arrived with 200."""

    upstream: str

    def events(self) -> AsyncIterator[list[dict[str, Any]]]:
        """Batches of parsed chunks (what arrived together); raises :class:`UpstreamFailure` if the
        stream breaks."""
        ...

    async def aclose(self) -> None:
        """Stop the generation: close the connection to the upstream."""
        ...


class Upstream(Protocol):
    name: str
    config: UpstreamConfig

    async def complete(self, path: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def open_stream(self, path: str, body: dict[str, Any]) -> OpenStream: ...

    async def list_models(self) -> list[str]: ...


def _error_body(resp_body: bytes, status: int) -> dict[str, Any]:
    try:
        data = protocol.loads(resp_body)
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            return data
    except ValueError:
        pass
    text = resp_body.decode("utf-8", "replace")[:300]
    return {"error": {"message": text or f"upstream returned {status}", "type": "upstream_error",
                      "code": str(status), "param": None}}


MAX_PENDING_CHUNKS = 2048
"""Upstream chunks read ahead of what the gateway has passed on, before it stops reading."""
MAX_PENDING_BYTES = 1024 * 1024
"""The same bound in bytes of event data: a slow client makes the gateway stop reading the upstream
(TCP then pushes back on the model server) instead of buffering its answer."""
ERROR_BODY_BYTES = 64 * 1024
"""Most of an error body (or of a wrong-type answer to a stream) read to report it."""
MODELS_BODY_BYTES = 1024 * 1024
"""Most of an upstream's ``GET /models`` answer read."""


class UpstreamClients:
    """The app's HTTP clients to its upstreams: aiohttp for the hot path, httpx for the rest."""

    def __init__(self, httpx_client: httpx.AsyncClient | None = None) -> None:
        self.httpx = httpx_client or httpx.AsyncClient(
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100), follow_redirects=False)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """The shared aiohttp session, made on first use (it must be made on the running loop)."""
        if self._session is None or self._session.closed:
            # trust_env as httpx does: HTTP(S)_PROXY / NO_PROXY from the environment apply alike
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1000, limit_per_host=0, keepalive_timeout=30),
                trust_env=True, auto_decompress=True, raise_for_status=False)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        await self.httpx.aclose()


class HTTPStream:
    """An upstream SSE stream read by a task of its own.

    The reader parses events as they arrive; the gateway takes everything parsed so far as one batch.
    When the upstream is faster than the gateway can pass things on (or the client reads), batches
    grow, so the gateway checks and sends fewer, larger pieces instead of falling behind token by
    token. A slow upstream gives batches of one, sent at once.

    Nothing is buffered without bound: an event longer than ``max_event_bytes``, a stream longer
    than ``max_response_bytes`` or ``timeout`` seconds without an event (keep-alive comments do not
    count) is an :class:`UpstreamFailure`; and the reader pauses while ``MAX_PENDING_CHUNKS`` /
    ``MAX_PENDING_BYTES`` wait to be taken.
    """

    def __init__(self, upstream: str, response: httpx.Response | aiohttp.ClientResponse,
                 config: UpstreamConfig | None = None) -> None:
        config = config or UpstreamConfig()
        self.upstream = upstream
        self._response = response
        self._idle = config.timeout
        self._max_event = config.max_event_bytes
        self._max_total = config.max_response_bytes
        self._pending: list[dict[str, Any]] = []
        self._pending_bytes = 0
        self.coalesce_seconds = 0.0
        """After a batch, wait this long for more chunks before handing on the next (the gateway sets
        it once the client has its first text: ``gateway.stream_coalesce_ms``)."""
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._outcome: list[BaseException | None] = []
        self._reader: asyncio.Future[None] | None = None
        # The reader is stopped through an anyio cancel scope, never by a bare Task.cancel(): a
        # second cancellation arriving while httpcore closes the connection (its clean-up runs
        # shielded from anyio cancellation only) leaves the connection open, and the upstream
        # generating, until the client is closed.
        self._scope = anyio.CancelScope()

    async def start(self) -> None:
        """Start reading, and return once the first event has arrived (or the stream ended).

        Until then nothing has reached the client, so a stream that is broken from its first byte
        (not SSE, not JSON, too long, silent) raises :class:`UpstreamFailure` here, where the
        router can still fail over and the client gets a plain 502/504."""
        self._reader = asyncio.ensure_future(self._run())
        try:
            await self._wake.wait()
        except BaseException:
            await self.aclose()
            raise
        if not self._pending and self._outcome and self._outcome[0] is not None:
            await self.aclose()
            raise self._outcome[0]

    async def events(self) -> AsyncIterator[list[dict[str, Any]]]:
        if self._reader is None:
            await self.start()
        reader = self._reader
        assert reader is not None
        try:
            while True:
                await self._wake.wait()
                if self.coalesce_seconds and not self._outcome:
                    # let the next few tokens arrive: checked and sent as one piece
                    await asyncio.sleep(self.coalesce_seconds)
                self._wake.clear()
                if self._pending:
                    batch, self._pending, self._pending_bytes = self._pending, [], 0
                    self._room.set()
                    yield batch
                if self._outcome and not self._pending:
                    break
            if self._outcome[0] is not None:
                raise self._outcome[0]
        finally:
            await self._stop_reader()

    async def _run(self) -> None:
        try:
            with self._scope:
                try:
                    await self._read()
                    self._outcome.append(None)
                except Exception as exc:
                    self._outcome.append(exc)
        finally:
            if not self._outcome:
                self._outcome.append(UpstreamFailure(self.upstream, "protocol", "the stream was closed"))
            self._wake.set()

    async def _stop_reader(self) -> None:
        reader = self._reader
        if reader is not None and not reader.done():
            self._scope.cancel()
            # asyncio.wait, not await: if this task is cancelled meanwhile, the reader must not be
            await asyncio.wait({reader})

    async def _read(self) -> None:
        buf = bytearray()
        scan = 0  # where the next look for the blank line ending an event starts
        held_cr = False  # a "\r" at the end of the last read, whose "\n" may come next
        total = 0
        try:
            # one deadline for the next event, moved on at each event: a server that sends only
            # keep-alive comments (or trickles bytes) fails as surely as a silent one
            with anyio.CancelScope(deadline=anyio.current_time() + self._idle) as idle:
                async for data in _body_chunks(self._response):
                    total += len(data)
                    if total > self._max_total:
                        raise UpstreamFailure(self.upstream, "protocol", "upstream stream longer than "
                                              f"{self._max_total} bytes (upstreams.max_response_bytes)")
                    if held_cr:
                        data = b"\r" + data
                    held_cr = data.endswith(b"\r")
                    if held_cr:
                        data = data[:-1]
                    buf += data.replace(b"\r\n", b"\n")
                    while True:
                        end = buf.find(b"\n\n", scan)
                        if end < 0:
                            scan = max(len(buf) - 1, 0)
                            break
                        block = bytes(buf[:end])
                        del buf[:end + 2]
                        scan = 0
                        queued = len(self._pending)
                        if self._take(block):
                            return
                        if len(self._pending) > queued:  # an event, not just a comment
                            idle.deadline = anyio.current_time() + self._idle
                    if len(buf) > self._max_event:
                        raise UpstreamFailure(self.upstream, "protocol", "upstream sent an SSE event longer "
                                              f"than {self._max_event} bytes (upstreams.max_event_bytes)")
                    if len(self._pending) >= MAX_PENDING_CHUNKS or self._pending_bytes >= MAX_PENDING_BYTES:
                        # the client reads slower than the upstream writes: stop reading, and let TCP
                        # push back on the upstream; waiting for the client is not the upstream's delay
                        idle.deadline = math.inf
                        self._room.clear()
                        await self._room.wait()
                        idle.deadline = anyio.current_time() + self._idle
        except aiohttp.ServerTimeoutError:
            # the socket was silent for `timeout`: no event for as long either (whichever timer won)
            raise UpstreamFailure(self.upstream, "timeout",
                                  f"upstream sent no event for {self._idle:g} s (upstreams.timeout)") from None
        except httpx.TimeoutException:
            raise UpstreamFailure(self.upstream, "timeout", "upstream stopped sending (read timeout)") from None
        except (httpx.HTTPError, aiohttp.ClientError) as exc:
            raise UpstreamFailure(self.upstream, "protocol", f"upstream stream broke: {exc.__class__.__name__}") from None
        if idle.cancelled_caught:
            raise UpstreamFailure(self.upstream, "timeout",
                                  f"upstream sent no event for {self._idle:g} s (upstreams.timeout)")
        # a stream that ends without [DONE] was cut short by the server
        raise UpstreamFailure(self.upstream, "protocol", "upstream closed the stream before [DONE]")

    def _take(self, block: bytes) -> bool:
        """Queue the chunks of one event; True at ``[DONE]``."""
        for line in block.split(b"\n"):
            if not line.startswith(b"data:"):
                continue  # comments (": ping"), event names, ids
            payload = line[5:].strip()
            if payload == b"[DONE]":
                return True
            self._pending.append(self._parse(payload))
            self._pending_bytes += len(payload)
            self._wake.set()
        return False

    def _parse(self, payload: bytes) -> dict[str, Any]:
        try:
            chunk = protocol.loads(payload)
        except ValueError:
            raise UpstreamFailure(self.upstream, "protocol", "upstream sent a chunk that is not JSON") from None
        if not isinstance(chunk, dict):
            raise UpstreamFailure(self.upstream, "protocol", "upstream sent a chunk that is not an object")
        if isinstance(chunk.get("error"), dict):
            raise UpstreamFailure(self.upstream, "protocol", "upstream reported an error mid-stream")
        choices = chunk.get("choices")
        if choices is not None and not (isinstance(choices, list) and all(isinstance(c, dict) for c in choices)):
            raise UpstreamFailure(self.upstream, "protocol", "upstream sent a chunk whose choices are not a list "
                                  "of objects")
        return chunk

    async def aclose(self) -> None:
        await self._stop_reader()
        if isinstance(self._response, httpx.Response):
            await self._response.aclose()
        else:
            # a body not read to its end closes the connection (the model stops generating); one
            # read to its end goes back to the pool
            self._response.release()


def _body_chunks(response: httpx.Response | aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    if isinstance(response, httpx.Response):
        return response.aiter_bytes()
    return response.content.iter_any()


async def read_capped_aio(resp: aiohttp.ClientResponse, limit: int, upstream: str | None = None) -> bytes:
    """:func:`read_capped` for an aiohttp response."""
    if upstream is not None and resp.content_length is not None and resp.content_length > limit:
        raise _too_large(upstream, limit)
    parts: list[bytes] = []
    size = 0
    async for data in resp.content.iter_any():
        parts.append(data)
        size += len(data)
        if size > limit:
            if upstream is not None:
                raise _too_large(upstream, limit)
            break
    return b"".join(parts)[:limit]


def _too_large(upstream: str, limit: int) -> UpstreamFailure:
    return UpstreamFailure(upstream, "protocol", f"upstream {upstream} sent an answer larger than {limit} "
                           "bytes (upstreams.max_response_bytes)")


async def read_capped(resp: httpx.Response, limit: int, upstream: str | None = None) -> bytes:
    """The body of ``resp``, at most ``limit`` bytes. Past it: an :class:`UpstreamFailure` when
    ``upstream`` is named, else the first ``limit`` bytes (for error messages)."""

    def too_large() -> UpstreamFailure:
        assert upstream is not None
        return UpstreamFailure(upstream, "protocol", f"upstream {upstream} sent an answer larger than {limit} "
                               "bytes (upstreams.max_response_bytes)")

    declared = resp.headers.get("content-length", "")
    if upstream is not None and declared.isdigit() and int(declared) > limit:
        raise too_large()
    parts: list[bytes] = []
    size = 0
    async for data in resp.aiter_bytes():
        parts.append(data)
        size += len(data)
        if size > limit:
            if upstream is not None:
                raise too_large()
            break
    return b"".join(parts)[:limit]


class HTTPUpstream:
    """An OpenAI-compatible server reached over HTTP.

    Every exchange has a deadline of its own, so no upstream can hold a request for ever: a
    non-streamed answer (body included) must be complete within ``connect_timeout + timeout``
    seconds, a stream's response headers too; after that, a stream must send an event at least
    every ``timeout`` seconds (see :class:`HTTPStream`).
    """

    def __init__(self, config: UpstreamConfig, clients: UpstreamClients) -> None:
        self.name = config.name
        self.config = config
        self._clients = clients
        self._client = clients.httpx
        key = config.resolved_api_key()
        self._headers = {"authorization": f"Bearer {key}"} if key else {}
        self._timeout = httpx.Timeout(config.timeout, connect=config.connect_timeout)
        self._deadline = config.connect_timeout + config.timeout
        self._post_headers = {**self._headers, "content-type": "application/json"}
        # the socket may idle for `timeout` (waiting for the headers, or between reads); a stream's
        # per-event limit (keep-alive comments do not count) is kept by HTTPStream on top
        self._aio_timeout = aiohttp.ClientTimeout(total=None, sock_connect=config.connect_timeout,
                                                  sock_read=config.timeout)

    async def post(self, path: str, body: dict[str, Any], stream: bool) -> aiohttp.ClientResponse | bytes:
        """POST ``body`` over aiohttp: a stream's open 2xx response (its body unread), or a
        non-streamed answer's body (at most ``max_response_bytes``). Failures are
        :class:`UpstreamFailure` or :class:`UpstreamRejected`, as :meth:`send` maps them."""
        resp: aiohttp.ClientResponse | None = None
        handed_on = False
        try:
            async with asyncio.timeout(self._deadline):
                resp = await self._clients.session().post(
                    self.config.base_url + path, data=protocol.dumps(body), headers=self._post_headers,
                    timeout=self._aio_timeout, allow_redirects=False)
                if resp.status >= 400:
                    try:
                        raw = await read_capped_aio(resp, ERROR_BODY_BYTES)
                    except aiohttp.ClientError:
                        raw = b""
                    if resp.status >= 500 or resp.status in (408, 429):
                        raise UpstreamFailure(self.name, "status", f"upstream {self.name} returned {resp.status}",
                                              status=resp.status)
                    raise UpstreamRejected(resp.status, _error_body(raw, resp.status))
                if stream:
                    handed_on = True
                    return resp
                return await read_capped_aio(resp, self.config.max_response_bytes, self.name)
        except aiohttp.ServerTimeoutError:  # the socket idled past `timeout` (or could not connect in time)
            raise UpstreamFailure(self.name, "timeout", f"upstream {self.name} timed out") from None
        except TimeoutError:
            raise UpstreamFailure(self.name, "timeout", f"upstream {self.name} timed out "
                                  f"(no complete answer in {self._deadline:g} s)") from None
        except aiohttp.ClientConnectorError:
            raise UpstreamFailure(self.name, "connect", f"cannot connect to upstream {self.name}") from None
        except aiohttp.ClientError as exc:
            raise UpstreamFailure(self.name, "protocol", f"upstream {self.name} failed: {exc.__class__.__name__}") from None
        finally:
            if resp is not None and not handed_on:
                resp.release()

    def _request(self, path: str, body: dict[str, Any]) -> httpx.Request:
        return self._client.build_request(
            "POST", self.config.base_url + path, content=protocol.dumps(body),
            headers={**self._headers, "content-type": "application/json"}, timeout=self._timeout,
        )

    async def send(self, path: str, body: dict[str, Any], stream: bool) -> httpx.Response:
        """POST ``body``; a 2xx response (streamed: open, its body unread; else read, at most
        ``max_response_bytes``). Failures are :class:`UpstreamFailure` or :class:`UpstreamRejected`."""
        resp: httpx.Response | None = None
        handed_on = False
        try:
            async with asyncio.timeout(self._deadline):
                resp = await self._client.send(self._request(path, body), stream=True)
                if resp.status_code >= 400:
                    try:
                        raw = await read_capped(resp, ERROR_BODY_BYTES)
                    except httpx.HTTPError:
                        raw = b""
                    await resp.aclose()
                    if resp.status_code >= 500 or resp.status_code in (408, 429):
                        raise UpstreamFailure(self.name, "status", f"upstream {self.name} returned {resp.status_code}",
                                              status=resp.status_code)
                    raise UpstreamRejected(resp.status_code, _error_body(raw, resp.status_code))
                if stream:
                    handed_on = True
                    return resp
                content = await read_capped(resp, self.config.max_response_bytes, self.name)
        except TimeoutError:
            raise UpstreamFailure(self.name, "timeout", f"upstream {self.name} timed out "
                                  f"(no complete answer in {self._deadline:g} s)") from None
        except httpx.TimeoutException:
            raise UpstreamFailure(self.name, "timeout", f"upstream {self.name} timed out") from None
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise UpstreamFailure(self.name, "connect", f"cannot connect to upstream {self.name}") from None
        except httpx.HTTPError as exc:
            raise UpstreamFailure(self.name, "protocol", f"upstream {self.name} failed: {exc.__class__.__name__}") from None
        finally:
            if resp is not None and not handed_on:
                await resp.aclose()
        # the body was read (and decoded) here, under the size cap: hand it on as a plain response
        headers = [(k, v) for k, v in resp.headers.multi_items()
                   if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
        return httpx.Response(resp.status_code, headers=headers, content=content, request=resp.request)

    def stream_get(self, url: str) -> Any:
        """``GET url`` as a streamed response context, with this upstream's key and timeouts."""
        return self._client.stream("GET", url, headers=self._headers, timeout=self._timeout)

    async def complete(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        raw = await self.post(path, body, stream=False)
        assert isinstance(raw, bytes)
        try:
            data = protocol.loads(raw)
        except ValueError:
            raise UpstreamFailure(self.name, "protocol", f"upstream {self.name} sent a body that is not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
            raise UpstreamFailure(self.name, "protocol", f"upstream {self.name} sent no choices")
        if not all(isinstance(c, dict) for c in data["choices"]):
            raise UpstreamFailure(self.name, "protocol", f"upstream {self.name} sent choices that are not objects")
        return data

    async def open_stream(self, path: str, body: dict[str, Any]) -> OpenStream:
        resp = await self.post(path, body, stream=True)
        assert isinstance(resp, aiohttp.ClientResponse)
        media = resp.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media and media != "text/event-stream":
            # e.g. a server that ignored "stream": true, or a proxy's HTML error page with a 200
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with asyncio.timeout(self.config.timeout):
                    await read_capped_aio(resp, ERROR_BODY_BYTES)
            resp.release()
            raise UpstreamFailure(self.name, "protocol", f"upstream {self.name} answered a stream request with "
                                  f"{media}, not text/event-stream")
        stream = HTTPStream(self.name, resp, self.config)
        await stream.start()
        return stream

    async def list_models(self) -> list[str]:
        """The upstream's own ``GET /models`` (its ids), or nothing when it cannot say."""
        timeout = min(self.config.timeout, 5.0)
        try:
            async with asyncio.timeout(self.config.connect_timeout + timeout):
                request = self._client.build_request(
                    "GET", self.config.base_url + "/models", headers=self._headers,
                    timeout=httpx.Timeout(timeout, connect=self.config.connect_timeout))
                resp = await self._client.send(request, stream=True)
                try:
                    raw = await read_capped(resp, MODELS_BODY_BYTES, self.name) if resp.status_code == 200 else b""
                finally:
                    await resp.aclose()
            payload = json.loads(raw) if raw else None
            data = payload.get("data") if isinstance(payload, dict) else None
        except (httpx.HTTPError, ValueError, TimeoutError, UpstreamFailure):
            return []
        if not isinstance(data, list):
            return []
        return [str(m["id"]) for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]


class DemoStream:
    def __init__(self, upstream: str, chunks: AsyncIterator[dict[str, Any]]) -> None:
        self.upstream = upstream
        self._chunks = chunks
        self.closed = False

    async def events(self) -> AsyncIterator[list[dict[str, Any]]]:
        try:
            async for chunk in self._chunks:
                if self.closed:
                    return
                yield [chunk]
        except demo_upstream.DemoDied as exc:
            raise UpstreamFailure(self.upstream, "protocol", str(exc)) from None

    async def aclose(self) -> None:
        self.closed = True


class DemoUpstream:
    """The demo model in-process (``base_url: demo``): no socket, same behaviour as the HTTP app."""

    def __init__(self, config: UpstreamConfig) -> None:
        self.name = config.name
        self.config = config
        self._delay = config.token_delay_ms / 1000.0

    async def prepare(self, path: str, body: dict[str, Any]) -> tuple[str, demo_upstream.DemoScript]:
        try:
            prompt = demo_upstream.request_prompt(body, chat=path.endswith("chat/completions"))
        except ValueError as exc:
            raise UpstreamRejected(400, demo_upstream.error_body(400, str(exc))) from None
        script = demo_upstream.script_for(prompt)
        if script.sleep:
            if script.sleep >= self.config.timeout:
                await asyncio.sleep(self.config.timeout)
                raise UpstreamFailure(self.name, "timeout", f"upstream {self.name} timed out")
            await asyncio.sleep(script.sleep)
        if script.status is not None:
            if script.status >= 500:
                raise UpstreamFailure(self.name, "status", f"upstream {self.name} returned {script.status}",
                                      status=script.status)
            raise UpstreamRejected(script.status, demo_upstream.error_body(script.status, "demo upstream told to fail"))
        return prompt, script

    async def complete(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        prompt, script = await self.prepare(path, body)
        if script.die_after is not None:
            raise UpstreamFailure(self.name, "protocol", "demo upstream died before answering")
        model = str(body.get("model") or demo_upstream.DEMO_MODEL)
        usage = demo_upstream.usage_for(prompt, script.text)
        if path.endswith("chat/completions"):
            return protocol.chat_completion(protocol.new_id("chatcmpl"), model, script.text, "stop", usage=usage)
        return protocol.text_completion(protocol.new_id("cmpl"), model, script.text, "stop", usage=usage)

    async def open_stream(self, path: str, body: dict[str, Any]) -> OpenStream:
        _, script = await self.prepare(path, body)
        model = str(body.get("model") or demo_upstream.DEMO_MODEL)
        chat = path.endswith("chat/completions")
        cid = protocol.new_id("chatcmpl" if chat else "cmpl")
        created = int(time.time())

        async def chunks() -> AsyncIterator[dict[str, Any]]:
            async for token in demo_upstream.stream_tokens(script, self._delay):
                if chat:
                    yield protocol.chat_chunk(cid, model, created, {"content": token})
                else:
                    yield protocol.text_chunk(cid, model, created, token)
            if chat:
                yield protocol.chat_chunk(cid, model, created, {}, "stop")
            else:
                yield protocol.text_chunk(cid, model, created, "", "stop")

        return DemoStream(self.name, chunks())

    async def list_models(self) -> list[str]:
        return [demo_upstream.DEMO_MODEL]


MODEL_CACHE_SECONDS = 60.0


@dataclass
class Attempt:
    upstream: str
    kind: FailureKind
    message: str


def failure_error(attempts: list[Attempt]) -> GatewayError:
    """One OpenAI-style error for a request no upstream could serve: 504 if the last attempt timed out,
    503 if nothing could be reached, 502 if an upstream answered badly."""
    last = attempts[-1]
    detail = "; ".join(f"{a.upstream}: {a.message}" for a in attempts)
    if last.kind == "timeout":
        return GatewayError(504, f"upstream timed out ({detail})", type="upstream_error", code="upstream_timeout")
    if last.kind == "connect":
        return GatewayError(503, f"no upstream reachable ({detail})", type="upstream_error", code="upstream_unavailable")
    return GatewayError(502, f"upstream failed ({detail})", type="upstream_error", code="upstream_error")


class UpstreamRouter:
    """Picks the upstreams for a model name and fails over between them."""

    def __init__(self, configs: list[UpstreamConfig], clients: UpstreamClients,
                 on_failure: Callable[[UpstreamFailure], None] | None = None,
                 on_success: Callable[[str, float], None] | None = None) -> None:
        self.upstreams: list[Upstream] = [
            DemoUpstream(c) if c.is_demo else HTTPUpstream(c, clients) for c in configs
        ]
        self._on_failure = on_failure
        self._on_success = on_success
        self._model_cache: dict[str, tuple[float, list[str]]] = {}

    def candidates(self, model: str) -> list[Upstream]:
        return [u for u in self.upstreams if any(fnmatch.fnmatchcase(model, pat) for pat in u.config.models)]

    async def model_names(self) -> list[str]:
        """Plain names from ``models``; for glob patterns, the upstream's own models that match them
        (asked at most once a minute per upstream)."""
        names: list[str] = []
        now = time.monotonic()
        for u in self.upstreams:
            globs = [p for p in u.config.models if any(ch in p for ch in "*?[")]
            found = [p for p in u.config.models if p not in globs]
            if globs:
                cached = self._model_cache.get(u.name)
                if cached is None or cached[0] < now:
                    cached = (now + MODEL_CACHE_SECONDS, await u.list_models())
                    self._model_cache[u.name] = cached
                found += [m for m in cached[1] if any(fnmatch.fnmatchcase(m, p) for p in globs)]
            for name in found:
                if name not in names:
                    names.append(name)
        return names

    async def attempt(self, model: str, call: Callable[[Upstream], Awaitable[T]]) -> tuple[Upstream, T]:
        ups = self.candidates(model)
        if not ups:
            raise GatewayError(404, f"model {model!r} is not served here; see GET /v1/models",
                               code="model_not_found", param="model")
        attempts: list[Attempt] = []
        for up in ups:
            for _ in range(up.config.retries + 1):
                t0 = time.perf_counter()
                try:
                    result = await call(up)
                except UpstreamFailure as exc:
                    attempts.append(Attempt(up.name, exc.kind, exc.message))
                    log.warning("upstream %s failed (%s): %s", up.name, exc.kind, exc.message)
                    if self._on_failure:
                        self._on_failure(exc)
                    continue
                if self._on_success:
                    self._on_success(up.name, time.perf_counter() - t0)
                return up, result
        raise failure_error(attempts)

    async def complete(self, model: str, path: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        up, data = await self.attempt(model, lambda u: u.complete(path, body))
        return up.name, data

    async def open_stream(self, model: str, path: str, body: dict[str, Any]) -> OpenStream:
        _, stream = await self.attempt(model, lambda u: u.open_stream(path, body))
        return stream
