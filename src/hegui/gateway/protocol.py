"""The OpenAI wire format: request fields the gateway reads, response and chunk shapes it writes,
and Server-Sent Events framing. Shared by the gateway and the demo upstream."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import orjson

SSE_DONE = b"data: [DONE]\n\n"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON with non-ASCII unescaped. orjson is about 5x faster than the stdlib on
    the hot path (a chunk per SSE frame); what it refuses (integers beyond 64 bits, lone
    surrogates, unknown types) takes the stdlib path, so the result or the error stays the same."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def loads(data: bytes | str) -> Any:
    """``json.loads`` via orjson; what orjson refuses but the stdlib reads (NaN, integers beyond
    64 bits, lone surrogate escapes, UTF-16/32 bytes) is read by the stdlib, so answers and errors
    stay those of ``json.loads``."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def sse(obj: Any) -> bytes:
    return b"data: " + dumps(obj) + b"\n\n"


def content_text(content: Any) -> str:
    """Text of a message ``content``: a string, or a list of parts of which the text parts count."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, dict) and part.get("type") in ("text", "input_text"):
                parts.append(str(part.get("text", "")))
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return str(content)


def last_user_text(messages: list[Any]) -> str:
    """The trailing run of user messages, joined (what this turn asks the model)."""
    run: list[str] = []
    for msg in reversed(messages):
        if not isinstance(msg, dict):
            continue
        if msg.get("role") != "user":
            if run:
                break
            continue
        run.append(content_text(msg.get("content")))
    return "\n".join(reversed(run))


def prompt_text(prompt: Any) -> str:
    """``/v1/completions`` ``prompt``: a string, or a one-element list of strings."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt[0]
    raise ValueError("prompt must be a string (or a list holding one string)")


def chat_completion(
    id: str, model: str, content: str, finish_reason: str, created: int | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def text_completion(
    id: str, model: str, text: str, finish_reason: str, created: int | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "text_completion",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "finish_reason": finish_reason, "logprobs": None}],
        "usage": usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def chat_chunk(
    id: str, model: str, created: int, delta: dict[str, Any], finish_reason: str | None = None,
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }


def text_chunk(id: str, model: str, created: int, text: str, finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "text": text, "finish_reason": finish_reason, "logprobs": None}],
    }


def _choice_text(body: dict[str, Any], key: str) -> str:
    """Text of the first choice: ``choices[0][key].content`` (chat) or ``choices[0].text``."""
    choices = body.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return ""
    choice = choices[0]
    part = choice.get(key)
    if isinstance(part, dict):
        return content_text(part.get("content"))
    text = choice.get("text")
    return text if isinstance(text, str) else ""


def chunk_text(chunk: dict[str, Any]) -> str:
    """Text carried by one upstream chunk (chat ``delta.content`` or completion ``text``)."""
    return _choice_text(chunk, "delta")


def chunk_finish_reason(chunk: dict[str, Any]) -> str | None:
    choices = chunk.get("choices") or []
    if choices and isinstance(choices[0], dict):
        reason = choices[0].get("finish_reason")
        return reason if isinstance(reason, str) else None
    return None


def response_text(body: dict[str, Any]) -> str:
    """Text of a non-streamed upstream response (chat ``message.content`` or completion ``text``)."""
    return _choice_text(body, "message")


def set_response_text(body: dict[str, Any], text: str, finish_reason: str | None = None) -> None:
    choice = body["choices"][0]
    if isinstance(choice.get("message"), dict):
        choice["message"]["content"] = text
        # the checked text is all the client gets: tool calls would be unchecked content
        choice["message"].pop("tool_calls", None)
        choice["message"].pop("function_call", None)
    else:
        choice["text"] = text
    if finish_reason is not None:
        choice["finish_reason"] = finish_reason
