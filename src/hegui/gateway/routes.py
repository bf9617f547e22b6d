"""The gateway's routes: OpenAI-compatible completions with moderation and a ledger record per check.

Request path: authenticate → scene → input check (record) → upstream (failover) → output check
(whole text, or streamed through a :class:`~hegui.moderation.StreamModerator`) → record → client.
A failure of moderation or of the ledger refuses the request unless its scene is listed in
``gateway.fail_open_scenes``; unchecked content is never passed on in a fail-closed scene.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hegui.accounts import ladder
from hegui.accounts.gate import USER_HEADER, estimate_tokens
from hegui.gateway import protocol
from hegui.gateway.auth import KeyAuth, Principal
from hegui.gateway.errors import GatewayError, bad_request, service_unavailable
from hegui.gateway.input_check import (
    InputPart,
    RequestVerdict,
    VerdictCache,
    chat_parts,
    check_parts,
    completion_parts,
    total_chars,
)
from hegui.gateway.metrics import CaseGauges, GatewayMetrics
from hegui.gateway.request_models import (
    AdminKeyRequest,
    ChatCompletionRequest,
    CompletionRequest,
    ModerationRequest,
    parse_json_body,
    validate_body,
)
from hegui.gateway.streaming import SSEResponse
from hegui.gateway.upstream import OpenStream, UpstreamFailure, UpstreamRejected, UpstreamRouter
from hegui.labeling.text import HEADER_NAME as LABEL_HEADER
from hegui.labeling.text import TextLabeler
from hegui.ledger.records import DecisionRecord
from hegui.moderation import Moderator, StreamModerator, Verdict, new_decision_id
from hegui.policy import Action, Direction

if TYPE_CHECKING:
    from hegui.accounts.gate import AccountGate, Admission
    from hegui.accounts.state import SharedState
    from hegui.config import HeguiConfig
    from hegui.ledger.store import Ledger
    from hegui.web.console.base import Console

log = logging.getLogger("hegui.gateway")

CHAT_PATH = "/chat/completions"
COMPLETIONS_PATH = "/completions"
SCENE_HEADER = "x-hegui-scene"
DECISION_HEADER = "x-hegui-decision"
REQUEST_HEADER = "x-request-id"

# Approximate mapping of hegui risks onto OpenAI's moderation categories, for clients that only
# read those; hegui's own risk codes (in the ``hegui`` field of each result) are authoritative.
OPENAI_CATEGORIES: dict[str, tuple[str, ...]] = {
    "A1a": ("illicit",), "A1b": ("illicit",), "A1c": ("illicit",),
    "A1d": ("violence", "illicit/violent"), "A1e": ("hate",), "A1f": ("violence", "sexual"),
    "A1g": ("illicit",), "A1h": ("illicit",),
    "A2a": ("hate",), "A2b": ("hate",), "A2c": ("hate",), "A2d": ("hate",), "A2e": ("hate",),
    "A2f": ("hate",), "A2g": ("hate",), "A2h": ("hate",), "A2i": ("hate",),
    "A4a": ("self-harm",), "A4c": ("harassment",), "A4d": ("harassment",),
}
ALL_OPENAI_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
    "self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors", "violence",
    "violence/graphic",
)


@dataclass
class Call:
    """One API request as the gateway handles it."""

    request_id: str
    principal: Principal
    scene: str
    body: dict[str, Any]
    model: str
    chat: bool
    stream: bool
    parts: list[InputPart] = field(default_factory=list)
    """Every text of the request that input moderation checks."""
    admission: Admission | None = None
    """What the account gate said (None when the gate is off)."""
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def account_id(self) -> str | None:
        """The account records go under: the person an app named, else the key's account."""
        return self.admission.account_id if self.admission is not None else self.principal.account_id

    @property
    def notices(self) -> list[dict[str, str]]:
        return self.admission.notices if self.admission is not None else []

    @property
    def question(self) -> str | None:
        """What this turn asks (the trailing user messages, or the prompt): the context an answer is
        judged in, so that a refusal repeating the question's sensitive words reads as the refusal it
        is (``Moderator.check(..., context=)``)."""
        try:
            if self.chat:
                text = protocol.last_user_text(self.body.get("messages") or [])
            else:
                text = protocol.prompt_text(self.body.get("prompt", ""))
        except (TypeError, ValueError, AttributeError):
            return None
        return text or None


class Gateway:
    """State shared by the routes of one app: config, moderator, ledger, upstreams, metrics."""

    def __init__(self, cfg: HeguiConfig, moderator: Moderator, ledger: Ledger, router: UpstreamRouter,
                 metrics: GatewayMetrics, accounts: AccountGate | None = None) -> None:
        self.cfg = cfg
        self.gw = cfg.gateway
        self.moderator = moderator
        self.ledger = ledger
        self.router = router
        self.metrics = metrics
        self.auth = KeyAuth(ledger, cfg.gateway)
        self._fail_open = set(cfg.gateway.fail_open_scenes)
        self.labeler = TextLabeler(cfg)
        self.verdicts = VerdictCache(cfg.gateway.verdict_cache_entries)
        self.accounts = accounts
        self._background: set[asyncio.Future[Any]] = set()
        self.case_gauges = CaseGauges(self._case_counts)
        self.console: Console | None = None
        """The staff console, when mounted (:func:`hegui.web.console.routes`)."""
        self._own_counters: SharedState | None = None

    @property
    def counters(self) -> SharedState:
        """Counters shared across workers (the portal's and the console's per-address limits): the
        account gate's when it runs, so every limit lives in one store, else the gateway's own, made on
        first use (Redis when ``accounts.redis_url`` is set) and closed with the app."""
        if self.accounts is not None:
            return self.accounts.state
        if self._own_counters is None:
            from hegui.accounts.state import DatabaseState, RedisState

            acfg = self.cfg.accounts
            self._own_counters = (RedisState(acfg.redis_url) if acfg.redis_url
                                  else DatabaseState(self.ledger, acfg.sync_seconds))
        return self._own_counters

    async def aclose_counters(self) -> None:
        if self._own_counters is not None:
            await self._own_counters.aclose()
            self._own_counters = None

    # -- request plumbing -------------------------------------------------------------------------

    async def read_json(self, request: Request) -> dict[str, Any]:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.gw.max_body_bytes:
            raise GatewayError(413, f"request body larger than {self.gw.max_body_bytes} bytes",
                               code="request_too_large")
        raw = await request.body()
        if len(raw) > self.gw.max_body_bytes:
            raise GatewayError(413, f"request body larger than {self.gw.max_body_bytes} bytes",
                               code="request_too_large")
        return parse_json_body(raw, self.gw.max_json_depth)

    def check_limits(self, parts: list[InputPart], messages: int) -> None:
        if messages > self.gw.max_messages:
            raise bad_request(f"messages: {messages} messages, more than gateway.max_messages "
                              f"({self.gw.max_messages})", param="messages", code="too_many_messages")
        chars = total_chars(parts)
        if chars > self.gw.max_input_chars:
            raise GatewayError(413, f"the request's texts hold {chars} characters, more than "
                               f"gateway.max_input_chars ({self.gw.max_input_chars})", code="request_too_large")

    def scene_for(self, request: Request, principal: Principal) -> str:
        """The key's own scene wins (a minor's key cannot opt out); otherwise the header, if allowed."""
        if principal.scene:
            return principal.scene
        wanted = request.headers.get(SCENE_HEADER)
        if wanted:
            if wanted not in self.gw.scenes:
                raise bad_request(
                    f"scene {wanted!r} is not allowed (allowed: {', '.join(self.gw.scenes)})", param=SCENE_HEADER,
                    code="invalid_scene",
                )
            return wanted
        return self.gw.default_scene

    async def start_call(self, request: Request, chat: bool) -> Call:
        principal = await self.auth.authenticate(request)
        body = await self.read_json(request)
        if chat:
            req: ChatCompletionRequest | CompletionRequest = validate_body(ChatCompletionRequest, body)
        else:
            req = validate_body(CompletionRequest, body)
        # from here on the request is what was validated (``2.0`` read as ``2``; extra fields as sent)
        body = req.model_dump(exclude_unset=True)
        parts = chat_parts(body) if chat else completion_parts(body)
        self.check_limits(parts, len(body["messages"]) if chat else 0)
        admission = await self.admit(request, principal, req.user)
        return Call(
            request_id=uuid.uuid4().hex, principal=principal, scene=self.scene(request, principal, admission),
            body=body, model=req.model, chat=chat, stream=bool(req.stream), parts=parts, admission=admission,
        )

    # -- the account gate ---------------------------------------------------------------------------

    async def admit(self, request: Request, principal: Principal, user: str | None = None, *,
                    generation: bool = True) -> Admission | None:
        """The account gate's verdict on this request (403/429 raised), or None when the gate is off."""
        if self.accounts is None:
            return None
        try:
            return await self.accounts.admit(principal, user or request.headers.get(USER_HEADER),
                                             generation=generation)
        except GatewayError:
            raise
        except Exception:
            log.exception("the account gate failed")
            self.metrics.fail_closed.labels("accounts").inc()
            raise service_unavailable("the account gate is unavailable; request refused",
                                      "accounts_unavailable") from None

    def scene(self, request: Request, principal: Principal, admission: Admission | None) -> str:
        """A scene the account imposes (minor mode) wins over the key's and the header's."""
        if admission is not None and admission.scene:
            return admission.scene
        return self.scene_for(request, principal)

    def in_background(self, work: Awaitable[Any]) -> None:
        """Work after the response (counters, the ladder) that the client must not wait for."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(collect_task)

    def after_response(self, call: Call, text: str, usage: dict[str, Any] | None) -> None:
        """Count the answer's tokens against the rate limits and a minor's usage minute."""
        if self.accounts is None or call.admission is None:
            return
        tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
        if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens <= 0:
            tokens = estimate_tokens(text)
        gate, adm = self.accounts, call.admission
        ended = gate.clock()  # now, not when the background task gets to run

        async def count() -> None:
            await gate.add_tokens(adm, tokens, ended)
            await gate.finish(adm, ended)

        self.in_background(count())

    def after_refusal(self, call: Call) -> None:
        """A refused input may move the account down the enforcement ladder (decided off the hot path)."""
        if self.accounts is None or call.account_id is None or not self.cfg.accounts.ladder.enabled:
            return
        gate, account = self.accounts, call.account_id

        async def consider() -> None:
            stepped = await asyncio.to_thread(ladder.consider, gate.store, self.cfg.accounts.ladder, account,
                                              gate.clock())
            if stepped:
                gate.forget(account)

        self.in_background(consider())

    # -- moderation and records -------------------------------------------------------------------

    def fails_open(self, scene: str) -> bool:
        return scene in self._fail_open

    def unchecked_verdict(self, text: str, direction: Direction, scene: str) -> Verdict:
        """What a fail-open scene passes on when moderation failed: the text as is, marked failed."""
        return Verdict(decision_id=new_decision_id(), action=Action.ALLOW, direction=direction, scene=scene,
                       findings=[], text=text, failed_detectors=["moderation"], redacted="")

    async def moderate(self, call: Call, text: str, direction: Direction, context: str | None = None) -> Verdict:
        """One text through the moderator; a failure refuses the request unless the scene fails open.
        ``context``: for an output, the question it answers."""
        try:
            return await self.moderator.acheck(text, direction=direction, scene=call.scene, context=context)
        except Exception:
            log.exception("moderation failed (%s, scene %s)", direction, call.scene)
            if self.fails_open(call.scene):
                self.metrics.fail_open.labels("moderation").inc()
                return self.unchecked_verdict(text, direction, call.scene)
            self.metrics.fail_closed.labels("moderation").inc()
            raise service_unavailable("content moderation is unavailable; request refused",
                                      "moderation_unavailable") from None

    async def check(self, call: Call, text: str, direction: Direction, context: str | None = None) -> Verdict:
        t0 = time.perf_counter()
        verdict = await self.moderate(call, text, direction, context)
        self.metrics.moderation_seconds.labels(direction).observe(time.perf_counter() - t0)
        self.metrics.record_decision(direction, verdict.action.value, verdict.risks)
        return verdict

    async def check_input(self, call: Call) -> RequestVerdict:
        """Every part of the request (history included; seen parts from the cache), one verdict."""
        t0 = time.perf_counter()
        hits = self.verdicts.hits
        account = call.account_id or call.principal.key_id
        result = await check_parts(call.parts, lambda text: self.moderate(call, text, "input"),
                                   self.verdicts, account, call.scene)
        self.metrics.verdict_cache_hits.inc(self.verdicts.hits - hits)
        self.metrics.moderation_seconds.labels("input").observe(time.perf_counter() - t0)
        verdict = result.verdict
        self.metrics.record_decision("input", verdict.action.value, verdict.risks)
        return result

    def decision_record(self, call: Call, verdict: Verdict, excerpt: str,
                        stream: dict[str, Any] | None = None,
                        findings: list[dict[str, Any]] | None = None) -> DecisionRecord:
        return DecisionRecord(
            decision_id=verdict.decision_id,
            request_id=call.request_id,
            account_id=call.account_id,
            api_key_id=call.principal.key_id,
            model=call.model,
            direction=verdict.direction,
            scene=call.scene,
            action=verdict.action.value,
            risks=verdict.risks,
            findings=findings if findings is not None else [f.to_dict() for f in verdict.findings],
            detector_ms={k: round(v, 3) for k, v in verdict.timings_ms.items()},
            excerpt=excerpt,
            stream=stream,
            flags=self.record_flags(call, verdict.failed_detectors, verdict),
        )

    @staticmethod
    def record_flags(call: Call, failed_detectors: list[str] | None = None,
                     verdict: Verdict | None = None) -> dict[str, Any] | None:
        """The marks a record carries: the account's training opt-out, and the detectors that failed
        on this check (a fail-open scene passes the text on, so only the record says it went unchecked)."""
        flags: dict[str, Any] = {}
        adm = call.admission
        if adm is not None and adm.profile.training_opt_out:
            flags["training_opt_out"] = True
        if failed_detectors:
            flags["failed_detectors"] = sorted(failed_detectors)
        if verdict is not None and verdict.excused_by:
            # what an explicit refusal was excused for stays on record (risks and evidence ids only)
            flags["excused_by"] = verdict.excused_by
            flags["excused"] = [f.to_dict() for f in verdict.excused]
        return flags or None

    async def write(self, call: Call, record: DecisionRecord, opening: bool = False) -> None:
        """Commit one record; a failure refuses the request unless the scene fails open.

        ``opening``: the ``stream_open`` row written before a streamed answer's first byte, so that
        a crash mid-stream still leaves a trace (``Ledger.open_streams``)."""
        t0 = time.perf_counter()
        try:
            if opening:
                await self.ledger.aopen_stream(record)
            else:
                await self.ledger.arecord_decision(record)
        except Exception:
            log.exception("ledger write failed (decision %s)", record.decision_id)
            if self.fails_open(call.scene):
                self.metrics.fail_open.labels("ledger").inc()
                return
            self.metrics.fail_closed.labels("ledger").inc()
            raise service_unavailable("the decision ledger is unavailable; request refused",
                                      "ledger_unavailable") from None
        self.metrics.ledger_seconds.observe(time.perf_counter() - t0)

    async def record(self, call: Call, verdict: Verdict, excerpt: str | None = None) -> None:
        text = verdict.redacted if excerpt is None else excerpt
        await self.write(call, self.decision_record(call, verdict, text))

    async def record_input(self, call: Call, rv: RequestVerdict) -> None:
        await self.write(call, self.decision_record(call, rv.verdict, rv.excerpt(), findings=rv.finding_dicts()))

    # -- responses ---------------------------------------------------------------------------------

    @staticmethod
    def extension(inp: Verdict, out: Verdict | None, upstream: str | None = None,
                  notices: list[dict[str, str]] | None = None) -> dict[str, Any]:
        final = out if out is not None else inp
        ext: dict[str, Any] = {
            "decision": final.decision_id,
            "decisions": {"input": inp.decision_id, "output": out.decision_id if out else None},
            "action": final.action.value,
            "risks": sorted(set(inp.risks) | set(out.risks if out else [])),
        }
        if upstream:
            ext["upstream"] = upstream
        if notices:
            ext["notices"] = notices  # from the account gate: warnings, rest reminders
        return ext

    def refusal_extension(self, call: Call, rv: RequestVerdict) -> dict[str, Any]:
        ext = self.extension(rv.verdict, None, notices=call.notices)
        if rv.deciding is not None:
            ext["refused"] = {"where": rv.deciding.where, "role": rv.deciding.role}
        return ext

    def refusal_body(self, call: Call, rv: RequestVerdict) -> dict[str, Any]:
        verdict = rv.verdict
        text = verdict.refusal or verdict.text
        if call.chat:
            body = protocol.chat_completion(protocol.new_id("chatcmpl"), call.model, text, "content_filter")
        else:
            body = protocol.text_completion(protocol.new_id("cmpl"), call.model, text, "content_filter")
        body["hegui"] = self.refusal_extension(call, rv)
        return body

    def refusal_stream(self, call: Call, rv: RequestVerdict) -> AsyncGenerator[bytes, None]:
        text = rv.verdict.refusal or rv.verdict.text
        cid = protocol.new_id("chatcmpl" if call.chat else "cmpl")
        ext = self.refusal_extension(call, rv)

        async def frames() -> AsyncGenerator[bytes, None]:
            if call.chat:
                yield protocol.sse(protocol.chat_chunk(cid, call.model, call.created, {"role": "assistant", "content": ""}))
                yield protocol.sse(protocol.chat_chunk(cid, call.model, call.created, {"content": text}))
                last = protocol.chat_chunk(cid, call.model, call.created, {}, "content_filter")
            else:
                yield protocol.sse(protocol.text_chunk(cid, call.model, call.created, text))
                last = protocol.text_chunk(cid, call.model, call.created, "", "content_filter")
            last["hegui"] = ext
            yield protocol.sse(last)
            yield protocol.SSE_DONE

        return frames()

    @staticmethod
    def upstream_body(call: Call, rv: RequestVerdict) -> dict[str, Any]:
        """What the upstream gets: the request with every masked part masked in place."""
        return rv.masked_body(call.body)

    # -- the completion routes ---------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        return await self.completion(request, chat=True)

    async def completions(self, request: Request) -> Response:
        return await self.completion(request, chat=False)

    async def completion(self, request: Request, chat: bool) -> Response:
        call = await self.start_call(request, chat)
        rv = await self.check_input(call)
        vin = rv.verdict
        headers = {DECISION_HEADER: vin.decision_id, REQUEST_HEADER: call.request_id}
        if not vin.allowed:
            await self.record_input(call, rv)
            self.after_refusal(call)
            if call.stream:
                return SSEResponse(self.refusal_stream(call, rv), headers=headers,
                                   stall_timeout=self.gw.client_stall_seconds)
            return JSONResponse(self.refusal_body(call, rv), headers=headers)
        # the input record is committed while the upstream works; both must succeed before we answer
        rec_in = asyncio.ensure_future(self.record_input(call, rv))
        path = CHAT_PATH if chat else COMPLETIONS_PATH
        body = self.upstream_body(call, rv)
        try:
            if call.stream:
                return await self.open_stream(call, vin, path, body, rec_in, headers)
            return await self.complete(call, vin, path, body, rec_in, headers)
        finally:
            if not rec_in.done():
                # never cancel a ledger write half-way: let it finish, and collect its outcome
                rec_in.add_done_callback(collect_task)

    async def call_upstream(self, call: Call, rec_in: asyncio.Future[None],
                        run: Callable[[], Awaitable[Any]]) -> Any:
        try:
            result = await run()
        except (GatewayError, UpstreamRejected):
            await rec_in  # the input decision is on record even when the upstream fails
            raise
        except BaseException:
            rec_in.add_done_callback(collect_task)
            raise
        return result

    async def complete(self, call: Call, vin: Verdict, path: str, body: dict[str, Any],
                       rec_in: asyncio.Future[None], headers: dict[str, str]) -> Response:
        upstream, data = await self.call_upstream(call, rec_in, lambda: self.router.complete(call.model, path, body))
        await rec_in
        text = protocol.response_text(data)
        vout = await self.check(call, text, "output", call.question)
        await self.record(call, vout)
        data["hegui"] = self.extension(vin, vout, upstream, call.notices)
        self.after_response(call, text, data.get("usage"))
        if vout.allowed:
            # GB 45438: the explicit label around the answer, the implicit one signed over what is sent
            content = self.labeler.apply_explicit(vout.text)
            label = self.labeler.implicit(content)
            protocol.set_response_text(data, content)
            data["hegui"]["label"] = label.as_dict()
            headers[LABEL_HEADER] = label_header(label.as_dict())
        else:
            protocol.set_response_text(data, vout.refusal or vout.text, "content_filter")
        headers[DECISION_HEADER] = vout.decision_id
        headers["x-hegui-input-decision"] = vin.decision_id
        return JSONResponse(data, headers=headers)

    async def open_stream(self, call: Call, vin: Verdict, path: str, body: dict[str, Any],
                          rec_in: asyncio.Future[None], headers: dict[str, str]) -> Response:
        sm = self.moderator.stream(direction="output", scene=call.scene, context=call.question)
        opening = DecisionRecord(
            decision_id=sm.decision_id, request_id=call.request_id, account_id=call.account_id,
            api_key_id=call.principal.key_id, model=call.model, direction="output", scene=call.scene,
            action="pending", risks=[], findings=[], detector_ms={}, excerpt="", flags=self.record_flags(call),
        )
        # the output's stream_open row is written while the upstream connects (it is on record
        # before the first byte either way); an upstream that fails closes it with a final record
        opened = asyncio.ensure_future(self.write(call, opening, opening=True))
        try:
            upstream: OpenStream = await self.call_upstream(
                call, rec_in, lambda: self.router.open_stream(call.model, path, body)
            )
        except (GatewayError, UpstreamRejected) as exc:
            await opened
            message = exc.message if isinstance(exc, GatewayError) else f"upstream rejected the request ({exc.status})"
            empty = sm.moderator.decide("", [], [], {}, "output", call.scene, sm.decision_id)
            stream = {"sent_chars": 0, "cut": False, "client_disconnected": False, "upstream_error": message}
            await self.write(call, self.decision_record(call, empty, "", stream))
            raise
        except BaseException:
            opened.add_done_callback(collect_task)
            raise
        try:
            await asyncio.gather(rec_in, opened)
        except BaseException:
            await upstream.aclose()
            raise
        headers["x-hegui-input-decision"] = vin.decision_id
        headers["x-hegui-output-decision"] = sm.decision_id
        output = OutputStream(self, call, vin, upstream, sm)
        return SSEResponse(output.frames(), headers=headers, stall_timeout=self.gw.client_stall_seconds,
                           on_close=output.abandon)

    # -- other routes ----------------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        await self.admit(request, await self.auth.authenticate(request), generation=False)
        data = [model_object(name) for name in await self.router.model_names()]
        return JSONResponse({"object": "list", "data": data})

    async def model(self, request: Request) -> Response:
        await self.admit(request, await self.auth.authenticate(request), generation=False)
        name = request.path_params["model"]
        if not self.router.candidates(name):
            raise GatewayError(404, f"model {name!r} is not served here", code="model_not_found", param="model")
        return JSONResponse(model_object(name))

    async def moderations(self, request: Request) -> Response:
        principal = await self.auth.authenticate(request)
        body = await self.read_json(request)
        req = validate_body(ModerationRequest, body)
        admission = await self.admit(request, principal, generation=False)
        texts = [req.input] if isinstance(req.input, str) else req.input
        direction: Direction = req.direction
        chars = sum(len(t) for t in texts)
        if chars > self.gw.max_input_chars:
            raise GatewayError(413, f"input holds {chars} characters, more than gateway.max_input_chars "
                               f"({self.gw.max_input_chars})", code="request_too_large")
        call = Call(request_id=uuid.uuid4().hex, principal=principal, scene=self.scene_for(request, principal),
                    body=body, model=req.model or "hegui-moderation", chat=False, stream=False, admission=admission)
        results = []
        ids = []
        for text in texts:
            verdict = await self.check(call, text, direction)
            await self.record(call, verdict)
            ids.append(verdict.decision_id)
            results.append(moderation_result(verdict))
        return JSONResponse(
            {"id": "modr-" + call.request_id, "model": call.model, "results": results},
            headers={DECISION_HEADER: ",".join(ids)},
        )

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        checks: dict[str, str] = {}
        try:
            await asyncio.to_thread(self.ledger.chain_heads)
            checks["ledger"] = "ok"
        except Exception as exc:
            checks["ledger"] = f"error: {exc.__class__.__name__}"
        names = [d.name for d in self.moderator.detectors]
        checks["detectors"] = ",".join(names) if names else "error: no detector loaded"
        ok = checks["ledger"] == "ok" and bool(names)
        return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks},
                            status_code=200 if ok else 503)

    async def metrics_route(self, request: Request) -> Response:
        cases = await self.case_gauges.exposition()
        return Response(self.metrics.exposition() + cases, media_type="text/plain; version=0.0.4; charset=utf-8")

    def _case_counts(self) -> dict[str, int]:
        from hegui.cases.store import CaseStore

        store = CaseStore(self.ledger, self.cfg.cases, self.cfg.accounts.timezone)
        return store.counts(store.today())

    # -- admin -----------------------------------------------------------------------------------

    async def require_admin(self, request: Request) -> Principal:
        principal = await self.auth.authenticate(request)
        if principal.admin:
            return principal
        if not self.auth.admin_enabled:
            raise GatewayError(403, f"admin routes need an admin key: set ${self.gw.admin_key_env} or use a "
                               "ledger key created as admin", type="permission_error", code="admin_disabled")
        raise GatewayError(403, "this route needs the admin key", type="permission_error", code="not_admin")

    async def admin_keys(self, request: Request) -> Response:
        await self.require_admin(request)
        req = validate_body(AdminKeyRequest, await self.read_json(request))
        try:
            key, info = await asyncio.to_thread(create_key, self.ledger, req.account.strip(), req.name)
        except Exception as exc:
            log.exception("creating an API key failed")
            raise service_unavailable(f"cannot create the key: {exc}", "ledger_unavailable") from None
        return JSONResponse({"key": key, **info}, status_code=201)

    async def admin_reload(self, request: Request) -> Response:
        await self.require_admin(request)
        t0 = time.perf_counter()
        try:
            await asyncio.to_thread(self.moderator.reload)
        except Exception as exc:
            raise GatewayError(400, f"reload failed, the previous lexicons and policy stay active: {exc}",
                               code="reload_failed") from None
        self.verdicts.clear()  # cached verdicts were reached with the old lexicons and policy
        self.auth.forget()
        return JSONResponse({"status": "reloaded", "seconds": round(time.perf_counter() - t0, 3)})


def model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "hegui"}


def label_header(label: dict[str, str]) -> str:
    """The implicit label as an HTTP header value (ASCII JSON: header values are Latin-1)."""
    return json.dumps({"AIGC": label}, ensure_ascii=True, separators=(",", ":"))


def collect_task(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("a decision record written in the background failed: %s", task.exception())


def create_key(ledger: Ledger, account: str, name: str) -> tuple[str, dict[str, Any]]:
    """A new key for the account ``account`` (created if it does not exist yet). The plaintext key
    is returned this once; the ledger keeps only its hash."""
    account_id = ledger.ensure_account(account, name=account)
    key_id, plaintext = ledger.create_api_key(account_id, name=name)
    return str(plaintext), {"id": str(key_id), "account_id": str(account_id)}


def moderation_result(verdict: Verdict) -> dict[str, Any]:
    categories = dict.fromkeys(ALL_OPENAI_CATEGORIES, False)
    scores = dict.fromkeys(ALL_OPENAI_CATEGORIES, 0.0)
    for f in verdict.findings:
        for cat in OPENAI_CATEGORIES.get(f.risk, ()):
            categories[cat] = True
            scores[cat] = max(scores[cat], round(f.score, 4))
    return {
        "flagged": verdict.action is not Action.ALLOW,
        "categories": categories,
        "category_scores": scores,
        "hegui": {
            "decision": verdict.decision_id,
            "action": verdict.action.value,
            "risks": verdict.risks,
            "findings": [f.to_dict() for f in verdict.findings],
            "text": verdict.text,
            "refusal": verdict.refusal,
        },
    }


class OutputStream:
    """One streamed answer: upstream chunks → :class:`StreamModerator` → client chunks, and the record."""

    def __init__(self, gw: Gateway, call: Call, vin: Verdict, upstream: OpenStream, sm: StreamModerator) -> None:
        self.gw = gw
        self.call = call
        self.vin = vin
        self.upstream = upstream
        self.sm = sm
        self.id = protocol.new_id("chatcmpl" if call.chat else "cmpl")
        self.cut = False
        self.upstream_error: str | None = None
        self._record: asyncio.Future[None] | None = None
        """The write of the stream's output decision, once begun (see :meth:`write_record`)."""
        self.unchecked = False
        self.coalescing = False
        self.unchecked_sent = ""
        self.checkpoint: asyncio.Future[Any] | None = None
        self.last_checkpoint = time.monotonic()
        self.delivered_parts: list[str] = []
        """Every content character the client got, explicit labels included (what the implicit label signs)."""

    def start_coalescing(self) -> None:
        """The client has its first text (so the time to it is not lengthened): from now on, chunks
        that arrive close together are checked and sent as one (``gateway.stream_coalesce_ms``)."""
        self.coalescing = True
        if hasattr(self.upstream, "coalesce_seconds"):
            self.upstream.coalesce_seconds = self.gw.gw.stream_coalesce_ms / 1000

    def content(self, text: str) -> bytes:
        self.delivered_parts.append(text)  # joined once at the end: += would copy the answer per chunk
        return protocol.sse(self.chunk(text))

    def chunk(self, text: str, finish_reason: str | None = None, role: bool = False) -> dict[str, Any]:
        c = self.call
        if c.chat:
            delta: dict[str, Any] = {"role": "assistant", "content": text} if role else (
                {"content": text} if text or finish_reason is None else {})
            return protocol.chat_chunk(self.id, c.model, c.created, delta, finish_reason)
        return protocol.text_chunk(self.id, c.model, c.created, text, finish_reason)

    def overall(self) -> Verdict:
        sm = self.sm
        if sm.final is not None:
            return sm.final
        findings = sorted(sm.findings, key=lambda f: (f.start, f.end))
        return sm.moderator.decide(sm.buffer, findings, list(sm.failed), dict(sm.timings), sm.direction,
                                   sm.scene, sm.decision_id)

    def stream_state(self, disconnected: bool = False) -> dict[str, Any]:
        return {"sent_chars": len(self.sm.sent) + len(self.unchecked_sent), "cut": self.cut,
                "client_disconnected": disconnected, "upstream_error": self.upstream_error}

    def maybe_checkpoint(self) -> None:
        """Now and then, append how much has been sent (in the background; the stream never waits)."""
        every = self.gw.gw.stream_checkpoint_seconds
        now = time.monotonic()
        if not every or now - self.last_checkpoint < every:
            return
        if self.checkpoint is not None and not self.checkpoint.done():
            return
        self.last_checkpoint = now
        self.checkpoint = asyncio.ensure_future(
            self.gw.ledger.aupdate_stream(self.sm.decision_id, self.stream_state()))
        self.checkpoint.add_done_callback(collect_task)

    @property
    def recorded(self) -> bool:
        return self._record is not None

    async def write_record(self, disconnected: bool) -> None:
        """The stream's output decision: what was sent, whether it was cut, and why it ended.

        The write runs as its own task, started once, and every caller waits for it through
        ``asyncio.shield``: when the client leaves, the response cancels the task that is writing
        (a plain ``Task.cancel``, which an anyio shield does not stop), and the write must finish
        all the same, or the stream stays open in the ledger with nobody left to close it."""
        if self._record is None:
            self._record = asyncio.ensure_future(self._write_record(disconnected))
            self._record.add_done_callback(collect_task)
        await asyncio.shield(self._record)

    async def _write_record(self, disconnected: bool) -> None:
        if self.checkpoint is not None and not self.checkpoint.done():
            with contextlib.suppress(Exception):
                await asyncio.wait({self.checkpoint})  # keep the rows in order
        verdict = self.overall()
        sent = self.sm.redacted_sent + ("" if not self.unchecked else "[unchecked]")
        stream = self.stream_state(disconnected)
        await self.gw.write(self.call, self.gw.decision_record(self.call, verdict, sent, stream))

    async def frames(self) -> AsyncGenerator[bytes, None]:
        finished = False
        try:
            try:
                async for frame in self.body():
                    yield frame
                finished = True
            except GatewayError as exc:
                # moderation failed mid-stream in a fail-closed scene: stop here, nothing unchecked goes out
                self.cut = True
                await self.upstream.aclose()
                try:
                    await self.write_record(disconnected=False)
                except GatewayError:
                    pass
                async for frame in self.error_end(exc, retract=False):
                    yield frame
                finished = True
        finally:
            if not self.recorded or not finished:
                # the client went away (or the server is stopping): stop generation, keep the record
                await self.abandon(disconnected=not finished)

    async def abandon(self, disconnected: bool = True) -> None:
        """Close the upstream and write the stream's record unless it is written. Also called by the
        response when it ends (:class:`SSEResponse` ``on_close``): a client gone before the first
        frame cancels the response before this generator ever starts, and then its finally never runs."""
        if self._record is not None:
            # begun by a caller that may have been cancelled since: see it through (its own errors
            # were that caller's to report)
            if not self._record.done():
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._record)
            return
        with anyio.CancelScope(shield=True):
            try:
                await self.upstream.aclose()
                await self.write_record(disconnected=disconnected)
            except Exception:
                log.exception("could not record the end of stream %s", self.sm.decision_id)

    async def body(self) -> AsyncGenerator[bytes, None]:
        gw = self.gw
        finish_reason = "stop"
        usage: dict[str, Any] | None = None  # sent by upstreams asked for stream_options.include_usage
        deadline = time.monotonic() + gw.gw.request_timeout
        if self.call.chat:
            yield protocol.sse(self.chunk("", role=True))
        prefix = self.gw.labeler.explicit_prefix
        if prefix:
            yield self.content(prefix + "\n")
        try:
            async for batch in self.upstream.events():
                self.maybe_checkpoint()
                for upchunk in batch:
                    reason = protocol.chunk_finish_reason(upchunk)
                    if reason:
                        finish_reason = reason
                    if isinstance(upchunk.get("usage"), dict):
                        usage = upchunk["usage"]
                text = "".join(protocol.chunk_text(upchunk) for upchunk in batch)
                if text:
                    if self.unchecked:
                        self.unchecked_sent += text
                        yield self.content(text)
                        continue
                    step = await self.feed(text)
                    if step is None:  # moderation failed in a fail-open scene: pass the rest on unchecked
                        yield self.content(self.unchecked_sent)
                        continue
                    if step.emit:
                        if not self.coalescing:
                            self.start_coalescing()
                        yield self.content(step.emit)
                    if step.stopped:
                        async for frame in self.cut_stream(step.verdict):
                            yield frame
                        return
                if time.monotonic() > deadline:
                    raise UpstreamFailure(self.upstream.upstream, "timeout",
                                          f"stream exceeded gateway.request_timeout ({gw.gw.request_timeout:g} s)")
        except UpstreamFailure as exc:
            self.upstream_error = exc.message
            gw.metrics.upstream_errors.labels(exc.upstream, exc.kind).inc()
            log.warning("upstream %s broke mid-stream: %s", exc.upstream, exc.message)
        await self.upstream.aclose()
        if not self.unchecked:
            step = await self.finish()
            if step is None:
                if self.unchecked_sent:
                    yield self.content(self.unchecked_sent)
            else:
                if step.emit:
                    yield self.content(step.emit)
                if step.stopped:
                    async for frame in self.cut_stream(step.verdict):
                        yield frame
                    return
        try:
            await self.write_record(disconnected=False)
        except GatewayError as exc:
            async for frame in self.error_end(exc, retract=True):
                yield frame
            return
        suffix = self.gw.labeler.explicit_suffix
        if suffix:
            yield self.content("\n" + suffix)
        last = self.chunk("", finish_reason)
        verdict = self.overall()
        last["hegui"] = gw.extension(self.vin, verdict, self.upstream.upstream, self.call.notices)
        delivered = "".join(self.delivered_parts)
        last["hegui"]["label"] = self.gw.labeler.implicit(delivered).as_dict()
        gw.after_response(self.call, delivered, usage)
        if usage is not None:
            last["usage"] = usage
        if self.upstream_error:
            last["hegui"]["error"] = {"type": "upstream_error", "message": self.upstream_error}
        yield protocol.sse(last)
        yield protocol.SSE_DONE

    async def feed(self, text: str) -> Any:
        try:
            return await self.sm.afeed(text)
        except Exception:
            return self.moderation_failed(text)

    async def finish(self) -> Any:
        try:
            return await self.sm.afinish()
        except Exception:
            return self.moderation_failed("")

    def moderation_failed(self, text: str) -> None:
        log.exception("stream moderation failed (scene %s)", self.call.scene)
        if self.gw.fails_open(self.call.scene):
            self.gw.metrics.fail_open.labels("moderation").inc()
            self.unchecked = True
            pending = self.sm.buffer[self.sm.emitted_upto:]
            self.unchecked_sent = pending if pending.endswith(text) else pending + text
            return None
        self.gw.metrics.fail_closed.labels("moderation").inc()
        raise service_unavailable("content moderation failed mid-stream; the answer was stopped",
                                  "moderation_unavailable")

    async def cut_stream(self, verdict: Verdict | None) -> AsyncGenerator[bytes, None]:
        """A violation: stop the upstream, record, then tell the client to retract and show the refusal."""
        self.cut = True
        self.gw.metrics.stream_cuts.inc()
        await self.upstream.aclose()
        v = verdict or self.overall()
        refusal = v.refusal or v.text
        try:
            await self.write_record(disconnected=False)
        except GatewayError as exc:
            log.error("cut stream %s could not be recorded: %s", self.sm.decision_id, exc.message)
        last = self.chunk(refusal, "content_filter")
        last["hegui"] = {**self.gw.extension(self.vin, v, self.upstream.upstream, self.call.notices),
                         "retract": True, "replacement": refusal}
        yield protocol.sse(last)
        yield protocol.SSE_DONE

    async def error_end(self, exc: GatewayError, retract: bool) -> AsyncGenerator[bytes, None]:
        last = self.chunk("", "content_filter")
        last["hegui"] = {"retract": retract, "error": exc.body()["error"], "decision": self.sm.decision_id}
        yield protocol.sse(last)
        yield protocol.SSE_DONE
