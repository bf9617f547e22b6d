"""The OpenAPI 3.1 document of the gateway, served at ``GET /openapi.json``.

Request bodies are the validation models of :mod:`hegui.gateway.request_models` (so the document
says what the gateway really accepts); responses are described by the models below. Every route
the app mounts has an entry in :data:`OPERATIONS`, and a test compares the two, so a new route
cannot go undocumented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from hegui.gateway.request_models import (
    AdminKeyRequest,
    ChatCompletionRequest,
    CompletionRequest,
    ImageGenerationRequest,
    ModerationRequest,
)


class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorBody(_Doc):
    message: str
    type: str
    code: str | None = None
    param: str | None = None


class ErrorResponse(_Doc):
    """Every error of the gateway, in OpenAI's shape."""

    error: ErrorBody


class Hegui(_Doc):
    """hegui's extension object: decision ids, the action taken, risk codes, labels."""

    decision: str | None = None
    action: str | None = None
    risks: list[str] | None = None


class AssistantMessage(_Doc):
    role: Literal["assistant"]
    content: str | None


class ChatChoice(_Doc):
    index: int
    message: AssistantMessage
    finish_reason: str | None


class ChatCompletion(_Doc):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    hegui: Hegui | None = None


class TextChoice(_Doc):
    index: int
    text: str
    finish_reason: str | None


class TextCompletion(_Doc):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[TextChoice]
    hegui: Hegui | None = None


class Model(_Doc):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(_Doc):
    object: Literal["list"]
    data: list[Model]


class ModerationResult(_Doc):
    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    hegui: dict[str, Any]


class ModerationResponse(_Doc):
    id: str
    model: str
    results: list[ModerationResult]


class Image(_Doc):
    b64_json: str


class ImagesResponse(_Doc):
    created: int
    data: list[Image]
    hegui: dict[str, Any]


class Health(_Doc):
    status: Literal["ok"]


class Ready(_Doc):
    status: Literal["ready", "not ready"]
    checks: dict[str, str]


class KeyCreated(_Doc):
    key: str = Field(description="the API key, shown this once (the ledger keeps its hash)")
    id: str
    account_id: str


class Reloaded(_Doc):
    status: Literal["reloaded"]
    seconds: float


SSE = "text/event-stream"
JSON = "application/json"


@dataclass(frozen=True)
class Operation:
    path: str
    method: str
    summary: str
    tag: str
    response: type[BaseModel] | None
    request: type[BaseModel] | None = None
    auth: Literal["key", "admin", "none"] = "key"
    streams: bool = False
    errors: tuple[int, ...] = ()
    media: str = JSON
    params: tuple[dict[str, Any], ...] = field(default=())
    status: int = 200
    """The success status (201 for creations)."""


_UPSTREAM = (502, 503, 504)
_BODY = (400, 413)
_GATE = (403, 429)
"""The account gate's refusals (standing, agreements, minor mode; rate limits)."""

OPERATIONS: tuple[Operation, ...] = (
    Operation("/v1/chat/completions", "post", "Chat completion, moderated in and out, labelled", "openai",
              ChatCompletion, ChatCompletionRequest, streams=True, errors=(*_BODY, *_GATE, *_UPSTREAM)),
    Operation("/v1/completions", "post", "Text completion, moderated in and out, labelled", "openai",
              TextCompletion, CompletionRequest, streams=True, errors=(*_BODY, *_GATE, *_UPSTREAM)),
    Operation("/v1/images/generations", "post", "Image generation: the prompt moderated, every image labelled",
              "openai", ImagesResponse, ImageGenerationRequest, errors=(*_BODY, *_GATE, *_UPSTREAM)),
    Operation("/v1/models", "get", "Models the upstreams serve", "openai", ModelList, errors=(*_GATE, *_UPSTREAM)),
    Operation("/v1/models/{model}", "get", "One model", "openai", Model, errors=(404, *_GATE),
              params=({"name": "model", "in": "path", "required": True, "schema": {"type": "string"}},)),
    Operation("/v1/moderations", "post", "Moderation of texts (OpenAI's shape plus hegui's risk codes)",
              "openai", ModerationResponse, ModerationRequest, errors=(*_BODY, *_GATE, 503)),
    Operation("/healthz", "get", "Liveness", "operations", Health, auth="none"),
    Operation("/readyz", "get", "Readiness: ledger and detectors", "operations", Ready, auth="none", errors=(503,)),
    Operation("/metrics", "get", "Prometheus metrics", "operations", None, auth="none", media="text/plain"),
    Operation("/openapi.json", "get", "This document", "operations", None, auth="none"),
    Operation("/admin/keys", "post", "Create an API key for an account", "admin", KeyCreated, AdminKeyRequest,
              auth="admin", errors=(*_BODY, 503), status=201),
    Operation("/admin/reload", "post", "Hot reload of lexicons and policy", "admin", Reloaded, auth="admin",
              errors=(400,)),
)

_STATUS_TEXT = {400: "Invalid request", 401: "Missing or unknown API key",
                403: "Not allowed: this key or account (suspended, agreement not accepted, minor-mode limits)",
                404: "Not found", 409: "Conflict", 413: "Request too large",
                429: "Rate limited (see Retry-After)", 501: "Not available in this build",
                502: "The upstream failed",
                503: "hegui cannot check or record the request (fail closed)", 504: "The upstream timed out"}


def all_operations() -> tuple[Operation, ...]:
    """The gateway's own operations and those of the account API."""
    from hegui.accounts import admin_api, api
    from hegui.cases import api as case_api
    from hegui.cases import incident_api

    return (*OPERATIONS, *api.OPERATIONS, *admin_api.OPERATIONS, *case_api.OPERATIONS,
            *incident_api.OPERATIONS)


@cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (built once; it depends on code only, not on config)."""
    models: list[type[BaseModel]] = [ErrorResponse]
    for op in all_operations():
        for m in (op.request, op.response):
            if m is not None and m not in models:
                models.append(m)
    _, schemas = models_json_schema([(m, "validation") for m in models],
                                    ref_template="#/components/schemas/{model}")
    components = schemas.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for op in all_operations():
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "hegui gateway", "version": _version(),
                 "description": "OpenAI-compatible gateway with content moderation (GB/T 45654), "
                                "GB 45438 labels and a decision ledger."},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                           "description": "an API key from `hegui ledger key create`"}},
        },
    }


def _version() -> str:
    try:
        return version("hegui")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _operation(op: Operation) -> dict[str, Any]:
    content: dict[str, Any]
    if op.response is not None:
        content = {op.media: {"schema": _ref(op.response)}}
    elif op.media == JSON:
        content = {JSON: {"schema": {"type": "object"}}}
    else:
        content = {op.media: {"schema": {"type": "string"}}}
    if op.streams:
        # one schema per event (as OpenAPI 3.2's itemSchema has it): `data` holds a JSON chunk, the last `[DONE]`
        content[SSE] = {"schema": {
            "type": "object", "required": ["data"],
            "properties": {"data": {"type": "string", "contentMediaType": JSON,
                                    "description": "a JSON chunk (`chat.completion.chunk` or `text_completion`); "
                                                   "the last event is `[DONE]`"},
                           "event": {"type": "string"}, "id": {"type": "string"}},
        }}
    status = str(op.status)
    responses: dict[str, Any] = {status: {"description": "OK", "content": content}}
    errors = set(op.errors)
    if op.auth != "none":
        errors.add(401)
    if op.auth == "admin":
        errors.add(403)
    for code in sorted(errors):
        responses[str(code)] = {"description": _STATUS_TEXT[code], "content": {JSON: {"schema": _ref(ErrorResponse)}}}
    out: dict[str, Any] = {"summary": op.summary, "operationId": _operation_id(op), "tags": [op.tag],
                           "responses": responses}
    if op.params:
        out["parameters"] = list(op.params)
    if op.request is not None:
        out["requestBody"] = {"required": True, "content": {JSON: {"schema": _ref(op.request)}}}
    if op.auth != "none":
        out["security"] = [{"apiKey": []}]
    else:
        out["security"] = []
    return out


def _operation_id(op: Operation) -> str:
    words = [w for w in op.path.replace("{", "").replace("}", "").replace(".", "_").split("/") if w]
    return op.method + "_" + "_".join(words)
