"""The request bodies hegui accepts, as pydantic models, and the strict JSON reader in front of them.

Each OpenAI route validates its body against one model here before anything else looks at it, so a
malformed request gets one 400 that names the field (``messages[2].content: …``) instead of a 500
from deep inside the gateway. The models name the fields hegui reads or checks; every other field
OpenAI allows (``temperature``, ``response_format`` …) is passed through to the upstream as sent
(``extra="allow"``), which rejects what it does not know. The same models feed the OpenAPI document
(:mod:`hegui.gateway.openapi`), so the document and the validation cannot drift apart.

:func:`parse_json_body` is the only JSON reader for request bodies. Python's own parser accepts two
things that later break the gateway: lone surrogate escapes (``"\\ud800"``, which cannot be encoded
to UTF-8 for the upstream or the ledger) and nesting deep enough to exhaust the recursion limit.
Both are refused here with a 400.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from hegui.gateway.errors import GatewayError, bad_request

M = TypeVar("M", bound=BaseModel)

MessageRole = Literal["system", "developer", "user", "assistant", "tool", "function"]

# An escape that could start a surrogate (\uD800–\uDFFF); only then are decoded strings searched.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class _Open(BaseModel):
    """Fields hegui does not read pass through to the upstream untouched."""

    model_config = ConfigDict(extra="allow", strict=True)


class ContentPart(_Open):
    """One part of a message's ``content`` list. Any part carrying ``text`` (or ``refusal``) is checked."""

    type: str = Field(min_length=1, description="`text`, `image_url`, `input_audio`, `file`, `refusal` …")
    text: str | None = None
    refusal: str | None = None


class FunctionCall(_Open):
    name: str | None = None
    arguments: str | None = None


class ToolCall(_Open):
    id: str | None = None
    type: str = "function"
    function: FunctionCall | None = None


class ChatMessage(_Open):
    role: MessageRole
    content: str | list[ContentPart] | None = None
    name: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    function_call: FunctionCall | None = None


class ToolFunction(_Open):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(_Open):
    type: str = "function"
    function: ToolFunction | None = None


def _integral_float(value: Any) -> Any:
    # JSON Schema counts 2.0 as an integer, and so do clients that send numbers as floats
    return int(value) if isinstance(value, float) and value.is_integer() else value


INTEGRAL = BeforeValidator(_integral_float)
"""Makes an ``int`` field an integer in JSON's sense: ``2`` or ``2.0``, never ``"2"`` or ``true``.
Put it after the field's constraints, so the schema keeps them as JSON Schema keywords."""

Temperature = Annotated[float, Field(ge=0, le=2)]
Penalty = Annotated[float, Field(ge=-2, le=2)]
OnlyOne = Annotated[int, Field(ge=1, le=1, description="hegui moderates one choice per request: n must be 1"), INTEGRAL]


class _Sampling(_Open):
    stream: bool | None = None
    n: OnlyOne | None = None
    temperature: Temperature | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, Field(ge=1), INTEGRAL] | None = None
    stop: str | list[str] | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    seed: Annotated[int, INTEGRAL] | None = None
    user: str | None = None
    stream_options: dict[str, Any] | None = None


class ChatCompletionRequest(_Sampling):
    """``POST /v1/chat/completions``."""

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: Annotated[int, Field(ge=1), INTEGRAL] | None = None
    tools: list[Tool] | None = None


class CompletionRequest(_Sampling):
    """``POST /v1/completions``. ``prompt`` is a string or a list holding one string."""

    model: str = Field(min_length=1)
    prompt: str | Annotated[list[str], Field(min_length=1, max_length=1)]
    suffix: str | None = None


class ModerationRequest(_Open):
    """``POST /v1/moderations``: OpenAI's shape plus hegui's ``direction``."""

    input: str | Annotated[list[str], Field(min_length=1)]
    model: str | None = None
    direction: Literal["input", "output"] = "input"


def _not_true(value: bool) -> bool:
    if value:
        raise ValueError("streamed image generation is not supported by hegui")
    return value


class ImageGenerationRequest(_Open):
    """``POST /v1/images/generations``. Every image is labelled; streaming is not offered."""

    model: str = Field(min_length=1)
    prompt: str = Field(min_length=1, pattern=r"\S")
    n: Annotated[int, Field(ge=1, le=10, description="images to generate, 1 to 10"), INTEGRAL] | None = None
    stream: Annotated[bool, AfterValidator(_not_true), Field(json_schema_extra={"const": False})] | None = None
    response_format: Literal["url", "b64_json"] | None = None
    size: str | None = Field(None, pattern=r"^(auto|[1-9][0-9]{0,4}x[1-9][0-9]{0,4})$", description="`WIDTHxHEIGHT` or `auto`")


class AdminKeyRequest(BaseModel):
    """``POST /admin/keys``: a key for an account (created if new)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    account: str = Field(min_length=1, pattern=r"\S")
    name: str = ""


def where(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """``("messages", 2, "content")`` → ``messages[2].content``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_json_body(raw: bytes, max_depth: int) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 naming what is wrong and where."""
    try:
        # orjson for the common, valid body; anything it refuses (lone surrogate escapes, invalid
        # UTF-8, NaN, huge integers, nesting past its limit, bad syntax) is parsed again by the
        # stdlib below, so every 400 keeps its message and what the stdlib accepts still passes.
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = _stdlib_loads(raw, max_depth)
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object", code="invalid_json")
    _check_tree(body, max_depth, surrogates=_SURROGATE_ESCAPE.search(raw) is not None)
    return body


def _stdlib_loads(raw: bytes, max_depth: int) -> Any:
    try:
        return json.loads(raw)
    except RecursionError:
        raise bad_request(f"request body is nested more than {max_depth} levels deep", code="invalid_json") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise bad_request(f"request body is not valid JSON: {exc}", code="invalid_json") from None


def _check_tree(body: dict[str, Any], max_depth: int, surrogates: bool) -> None:
    """Depth of nesting, and (when the raw body had such escapes) lone surrogates in any string.

    Iterative, so a body nested as deep as the parser allows cannot exhaust the stack here."""
    stack: list[tuple[Any, int, tuple[int | str, ...]]] = [(body, 1, ())]
    while stack:
        node, depth, path = stack.pop()
        if depth > max_depth:
            raise bad_request(f"{where(path) or 'body'}: nested more than {max_depth} levels deep "
                              "(gateway.max_json_depth)", param=where(path) or None, code="invalid_json")
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if surrogates and (_has_lone_surrogate(key) or _has_lone_surrogate(value)):
                loc = where((*path, key))
                raise bad_request(f"{loc}: string holds a lone UTF-16 surrogate (\\ud800–\\udfff), which is "
                                  "not valid Unicode text", param=loc, code="invalid_json")
            if isinstance(value, (dict, list)):
                stack.append((value, depth + 1, (*path, key)))


def _has_lone_surrogate(value: Any) -> bool:
    return isinstance(value, str) and not value.isascii() and _LONE_SURROGATE.search(value) is not None


def validate_body(model: type[M], body: dict[str, Any]) -> M:
    """``body`` as ``model``; the first problem as a 400 with the field's path in ``param``."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None


def validation_error(exc: ValidationError) -> GatewayError:
    errors = exc.errors(include_url=False)
    # of the alternatives of a union (content: a string or a list of parts), the one that got
    # furthest into the value says best what is wrong
    first = max(errors, key=lambda e: len(_readable_loc(e["loc"])))
    loc = _readable_loc(first["loc"])
    message = first["msg"]
    if first["type"] == "missing":
        message = "is required"
    elif loc == "n":
        message = "only n=1 is supported by hegui (one choice per request is moderated)"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return bad_request(f"{loc or 'body'}: {message}{more}", param=loc or None)


def _readable_loc(loc: tuple[int | str, ...]) -> str:
    # pydantic adds the union member it tried (``str``, ``list[ContentPart]``) to the path; drop those
    kept = [p for p in loc if isinstance(p, int) or not _is_type_tag(p)]
    return where(kept)


def _is_type_tag(part: str) -> bool:
    return "[" in part or part in {"str", "int", "float", "bool", "list", "dict", "none"} or part[:1].isupper() \
        or part.startswith(("function-", "constrained-"))
