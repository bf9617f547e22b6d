"""The gateway ASGI app: :func:`create_app` for code and tests, :func:`create_app_from_env` for
``uvicorn --factory`` with several workers (the config path travels in ``HEGUI_CONFIG``)."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hegui.accounts import admin_api as account_admin_api
from hegui.accounts import api as account_api
from hegui.accounts.gate import AccountGate
from hegui.cases import api as case_api
from hegui.cases import incident_api
from hegui.cases.lexicon_entries import LexiconSync
from hegui.config import HeguiConfig, load_config
from hegui.errors import ConfigError
from hegui.gateway.errors import GatewayError
from hegui.gateway.images import ImageGenerations
from hegui.gateway.metrics import GatewayMetrics
from hegui.gateway.openapi import document as openapi_document
from hegui.gateway.routes import Gateway
from hegui.gateway.upstream import UpstreamClients, UpstreamFailure, UpstreamRejected, UpstreamRouter
from hegui.moderation import Moderator
from hegui.policy_sync import PolicySync
from hegui.web import console, portal

if TYPE_CHECKING:
    from hegui.ledger.store import Ledger

log = logging.getLogger("hegui.gateway")

CONFIG_ENV = "HEGUI_CONFIG"
ERROR_SOURCE_HEADER = "x-hegui-error-source"

ROUTES = (
    "/v1/chat/completions", "/v1/completions", "/v1/images/generations", "/v1/models", "/v1/moderations",
    "/healthz", "/readyz",
    "/metrics", "/openapi.json", "/admin/keys", "/admin/reload",
)


class MetricsMiddleware:
    """Counts every request by route and status and times it to the last byte (streams included)."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = path if path in ROUTES else _route_label(path)
        status = 500
        t0 = time.perf_counter()

        async def wrapped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, wrapped)
        finally:
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.request_seconds.labels(route).observe(time.perf_counter() - t0)


def _route_label(path: str) -> str:
    """A bounded label for the metrics (no ids in label values)."""
    if path.startswith("/v1/models/"):
        return "/v1/models/{model}"
    for prefix in ("/v1/hegui/", "/admin/accounts", "/admin/appeals", "/admin/cases", "/admin/incidents",
                   "/cases/", "/static/", "/console"):
        if path.startswith(prefix):
            return prefix.rstrip("/") + "/…"
    return "other"


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return exc.response()


async def _upstream_rejected(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UpstreamRejected)
    # the upstream's own rules are not hegui's: say where the rejection came from
    return JSONResponse(exc.body, status_code=exc.status, headers={ERROR_SOURCE_HEADER: "upstream"})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    # keep Starlette's headers: a 405 must say which methods the route allows (``Allow``)
    return GatewayError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", code=code,
                        headers=dict(exc.headers or {})).response()


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path, exc_info=exc)
    return GatewayError(500, "internal error in the hegui gateway", type="server_error", code="internal_error").response()


async def openapi_route(request: Request) -> Response:
    return JSONResponse(openapi_document())


def check_scenes(cfg: HeguiConfig, moderator: Moderator) -> None:
    """Every scene the gateway can pick must exist in the policy, or requests would fail later."""
    for scene in {cfg.gateway.default_scene, *cfg.gateway.scenes, *cfg.gateway.fail_open_scenes}:
        if not moderator.policy.has_scene(scene):
            declared = ", ".join(sorted(moderator.policy.scenes))
            raise ConfigError(f"{cfg.source}: gateway: scene {scene!r} is not declared in the policy "
                              f"(declared: {declared})")


def check_upstreams(cfg: HeguiConfig) -> None:
    names = [u.name for u in cfg.upstreams]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{cfg.source}: upstreams: name {dup[0]!r} is used twice")
    if not cfg.upstreams:
        raise ConfigError(f"{cfg.source}: upstreams: at least one upstream is needed")


def open_ledger(cfg: HeguiConfig) -> Ledger:
    from hegui.ledger.store import Ledger

    return Ledger.from_config(cfg)


def create_app(
    cfg: HeguiConfig,
    *,
    moderator: Moderator | None = None,
    ledger: Ledger | None = None,
    metrics: GatewayMetrics | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Starlette:
    """Build the gateway for ``cfg``. ``moderator`` and ``ledger`` default to ones built from ``cfg``;
    a ledger passed in is not closed by the app. ``clock`` (UTC-aware ``datetime`` now) drives the
    account gate's days, curfews and windows; tests inject one."""
    check_upstreams(cfg)
    moderator = moderator or Moderator.from_config(cfg)
    check_scenes(cfg, moderator)
    owns_ledger = ledger is None
    ledger = ledger if ledger is not None else open_ledger(cfg)
    metrics = metrics or GatewayMetrics()
    client = UpstreamClients()

    def upstream_failed(exc: UpstreamFailure) -> None:
        metrics.upstream_errors.labels(exc.upstream, exc.kind).inc()

    def upstream_answered(name: str, seconds: float) -> None:
        metrics.upstream_seconds.labels(name).observe(seconds)

    router = UpstreamRouter(cfg.upstreams, client, on_failure=upstream_failed, on_success=upstream_answered)
    gate = AccountGate.from_config(cfg.accounts, ledger, clock) if cfg.accounts.enabled else None
    gw = Gateway(cfg, moderator, ledger, router, metrics, gate)
    # staff lexicon entries: in force before the first request, then polled (cached verdicts dropped on change)
    lexicon_sync = LexiconSync(ledger, moderator.use_lexicon_entries, cfg.lexicon.db_sync_seconds,
                               on_change=gw.verdicts.clear)
    # policy saves from the console (hegui.policy_sync): polled like the entries
    policy_sync = PolicySync(ledger, moderator.reload, cfg.lexicon.db_sync_seconds, on_change=gw.verdicts.clear)
    try:
        lexicon_sync.load()
        policy_sync.load()
    except BaseException:
        if owns_ledger:
            ledger.close()
        raise

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if gate is not None:
            await gate.start()
        await lexicon_sync.start()
        await policy_sync.start()
        try:
            yield
        finally:
            await policy_sync.aclose()
            await lexicon_sync.aclose()
            await gw.aclose_counters()
            if gate is not None:
                await gate.aclose()
            await client.aclose()
            if owns_ledger:
                ledger.close()

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", gw.chat_completions, methods=["POST"]),
            Route("/v1/completions", gw.completions, methods=["POST"]),
            Route("/v1/images/generations", ImageGenerations(gw).handle, methods=["POST"]),
            Route("/v1/models", gw.models, methods=["GET"]),
            Route("/v1/models/{model:path}", gw.model, methods=["GET"]),
            Route("/v1/moderations", gw.moderations, methods=["POST"]),
            Route("/healthz", gw.healthz, methods=["GET"]),
            Route("/readyz", gw.readyz, methods=["GET"]),
            Route("/metrics", gw.metrics_route, methods=["GET"]),
            Route("/openapi.json", openapi_route, methods=["GET"]),
            Route("/admin/keys", gw.admin_keys, methods=["POST"]),
            Route("/admin/reload", gw.admin_reload, methods=["POST"]),
            *account_api.routes(gw),
            *account_admin_api.routes(gw),
            *case_api.routes(gw),
            *incident_api.routes(gw),
            *portal.routes(gw),
            *console.routes(gw),
        ],
        exception_handlers={
            GatewayError: _gateway_error,
            UpstreamRejected: _upstream_rejected,
            HTTPException: _http_error,
            Exception: _server_error,
        },
        lifespan=lifespan,
    )
    app.state.gateway = gw
    app.state.lexicon_sync = lexicon_sync
    app.state.policy_sync = policy_sync
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def create_app_from_env() -> Starlette:
    """App factory for ``uvicorn --factory``: reads the config named by ``$HEGUI_CONFIG``."""
    path = os.environ.get(CONFIG_ENV) or None
    return create_app(load_config(path))
