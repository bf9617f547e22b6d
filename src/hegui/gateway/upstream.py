"""Upstream model servers: routing by model name, failover, timeouts, and SSE reading.

One shared :class:`httpx.AsyncClient` per app. An upstream is tried ``retries + 1`` times, then the
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
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

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
        data = json.loads(resp_body)
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            return data
    except ValueError:
        pass
    text = resp_body.decode("utf-8", "replace")[:300]
    return {"error": {"message": text or f"upstream returned {status}", "type": "upstream_error",
                      "code": str(status), "param": None}}


MAX_PENDING_CHUNKS = 2048
"""Upstream chunks read ahead of what the gateway has passed on, before it stops reading."""


class HTTPStream:
    """An upstream SSE stream read by a task of its own.

    The reader parses events as they arrive; the gateway takes everything parsed so far as one batch.
    When the upstream is faster than the gateway can pass things on (or the client reads), batches
    grow, so the gateway checks and sends fewer, larger pieces instead of falling behind token by
    token. A slow upstream gives batches of one, sent at once.
    """

    def __init__(self, upstream: str, response: httpx.Response) -> None:
        self.upstream = upstream
        self._response = response
        self._reader: asyncio.Future[None] | None = None

    async def events(self) -> AsyncIterator[list[dict[str, Any]]]:
        pending: list[dict[str, Any]] = []
        wake = asyncio.Event()
        room = asyncio.Event()
        room.set()
        outcome: list[BaseException | None] = []

        async def read() -> None:
            try:
                await self._read(pending, wake, room)
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            finally:
                wake.set()

        self._reader = reader = asyncio.ensure_future(read())
        try:
            while True:
                await wake.wait()
                wake.clear()
                if pending:
                    batch = pending[:]
                    pending.clear()
                    room.set()
                    yield batch
                if outcome and not pending:
                    break
            if outcome[0] is not None:
                raise outcome[0]
        finally:
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    async def _read(self, pending: list[dict[str, Any]], wake: asyncio.Event, room: asyncio.Event) -> None:
        buf = b""
        try:
            async for data in self._response.aiter_bytes():
                if len(pending) >= MAX_PENDING_CHUNKS:
                    # the client reads slower than the upstream writes: let TCP push back on the upstream
                    room.clear()
                    await room.wait()
                buf = (buf + data).replace(b"\r\n", b"\n")
                while True:
                    end = buf.find(b"\n\n")
                    if end < 0:
                        break
                    block, buf = buf[:end], buf[end + 2:]
                    for line in block.split(b"\n"):
                        if not line.startswith(b"data:"):
                            continue
                        payload = line[5:].strip()
                        if payload == b"[DONE]":
                            return
                        pending.append(self._parse(payload))
                        wake.set()
        except httpx.TimeoutException:
            raise UpstreamFailure(self.upstream, "timeout", "upstream stopped sending (read timeout)") from None
        except httpx.HTTPError as exc:
            raise UpstreamFailure(self.upstream, "protocol", f"upstream stream broke: {exc.__class__.__name__}") from None
        # a stream that ends without [DONE] was cut short by the server
        raise UpstreamFailure(self.upstream, "protocol", "upstream closed the stream before [DONE]")

    def _parse(self, payload: bytes) -> dict[str, Any]:
        try:
            chunk = json.loads(payload)
        except ValueError:
            raise UpstreamFailure(self.upstream, "protocol", "upstream sent a chunk that is not JSON") from None
        if not isinstance(chunk, dict):
            raise UpstreamFailure(self.upstream, "protocol", "upstream sent a chunk that is not an object")
        if isinstance(chunk.get("error"), dict):
            raise UpstreamFailure(self.upstream, "protocol", "upstream reported an error mid-stream")
        return chunk

    async def aclose(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._response.aclose()


class HTTPUpstream:
    """An OpenAI-compatible server reached over HTTP."""

    def __init__(self, config: UpstreamConfig, client: httpx.AsyncClient) -> None:
        self.name = config.name
        self.config = config
        self._client = client
        key = config.resolved_api_key()
        self._headers = {"authorization": f"Bearer {key}"} if key else {}
        self._timeout = httpx.Timeout(config.timeout, connect=config.connect_timeout)

    def _request(self, path: str, body: dict[str, Any]) -> httpx.Request:
        return self._client.build_request(
            "POST", self.config.base_url + path, content=protocol.dumps(body),
            headers={**self._headers, "content-type": "application/json"}, timeout=self._timeout,
        )

    async def send(self, path: str, body: dict[str, Any], stream: bool) -> httpx.Response:
        try:
            resp = await self._client.send(self._request(path, body), stream=stream)
        except httpx.TimeoutException:
            raise UpstreamFailure(self.name, "timeout", f"upstream {self.name} timed out") from None
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise UpstreamFailure(self.name, "connect", f"cannot connect to upstream {self.name}") from None
        except httpx.HTTPError as exc:
            raise UpstreamFailure(self.name, "protocol", f"upstream {self.name} failed: {exc.__class__.__name__}") from None
        if resp.status_code >= 400:
            try:
                raw = await resp.aread()
            except httpx.HTTPError:
                raw = b""
            await resp.aclose()
            if resp.status_code >= 500 or resp.status_code in (408, 429):
                raise UpstreamFailure(self.name, "status", f"upstream {self.name} returned {resp.status_code}",
                                      status=resp.status_code)
            raise UpstreamRejected(resp.status_code, _error_body(raw, resp.status_code))
        return resp

    def stream_get(self, url: str) -> Any:
        """``GET url`` as a streamed response context, with this upstream's key and timeouts."""
        return self._client.stream("GET", url, headers=self._headers, timeout=self._timeout)

    async def complete(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = await self.send(path, body, stream=False)
        try:
            data = resp.json()
        except ValueError:
            raise UpstreamFailure(self.name, "protocol", f"upstream {self.name} sent a body that is not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
            raise UpstreamFailure(self.name, "protocol", f"upstream {self.name} sent no choices")
        return data

    async def open_stream(self, path: str, body: dict[str, Any]) -> OpenStream:
        resp = await self.send(path, body, stream=True)
        return HTTPStream(self.name, resp)

    async def list_models(self) -> list[str]:
        """The upstream's own ``GET /models`` (its ids), or nothing when it cannot say."""
        try:
            resp = await self._client.get(self.config.base_url + "/models", headers=self._headers,
                                          timeout=httpx.Timeout(min(self.config.timeout, 5.0),
                                                                connect=self.config.connect_timeout))
            data = resp.json().get("data") if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
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

    def __init__(self, configs: list[UpstreamConfig], client: httpx.AsyncClient,
                 on_failure: Callable[[UpstreamFailure], None] | None = None,
                 on_success: Callable[[str, float], None] | None = None) -> None:
        self.upstreams: list[Upstream] = [
            DemoUpstream(c) if c.is_demo else HTTPUpstream(c, client) for c in configs
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
