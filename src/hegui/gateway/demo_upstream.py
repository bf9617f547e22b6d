"""The built-in demo model: deterministic, streams token by token, and says whatever a test asks.

It runs in-process behind ``base_url: demo`` and also as its own ASGI app
(:func:`create_demo_app`, ``python -m hegui.gateway.demo_upstream --port 8001``) so a benchmark or
test can put a real HTTP hop in front of it.

Prompt commands (on the last user message, and they chain: ``/sleep 2 /say hi``):

- ``/say TEXT``: answer exactly ``TEXT``.
- ``/say64 BASE64``: answer the UTF-8 text encoded in ``BASE64`` (so a test can make the model say
  what input moderation would refuse to forward).
- ``/die-after N REST``: answer REST, but drop the connection after ``N`` streamed tokens.
- ``/sleep S REST``: wait ``S`` seconds before answering REST.
- ``/status CODE REST``: fail with HTTP ``CODE`` and an OpenAI-style error body.
- anything else: a fixed Chinese answer quoting the start of the prompt.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from hegui.gateway import protocol

DEMO_MODEL = "hegui-demo"

_COMMAND = re.compile(r"^/(say64|say|die-after|sleep|status)(?:\s|$)")


class DemoDied(Exception):
    """The demo model was told to drop the connection mid-stream."""


@dataclass
class DemoScript:
    text: str
    die_after: int | None = None
    sleep: float = 0.0
    status: int | None = None


def script_for(prompt: str) -> DemoScript:
    """Interpret the prompt commands (see the module docstring)."""
    script = DemoScript(text="")
    rest = prompt
    while True:
        m = _COMMAND.match(rest)
        if m is None:
            break
        cmd = m.group(1)
        after = rest[m.end():]
        if cmd == "say":
            script.text = after
            return script
        if cmd == "say64":
            try:
                script.text = base64.b64decode(after.strip(), validate=True).decode("utf-8")
            except ValueError:
                script.text = "(/say64 needs base64 of UTF-8 text)"
            return script
        arg, _, tail = after.partition(" ")
        try:
            if cmd == "die-after":
                script.die_after = int(arg)
            elif cmd == "sleep":
                script.sleep = float(arg)
            else:
                script.status = int(arg)
        except ValueError:
            break
        rest = tail
    script.text = default_answer(rest)
    return script


def default_answer(prompt: str) -> str:
    quoted = prompt.strip().replace("\n", " ")[:60]
    return (
        "你好，我是 hegui 演示模型。你的问题是：「" + quoted + "」。"
        "这是一个确定性的演示回答，用于检验合规网关的流式审核、账本记录和故障切换。"
    )


def tokenize(text: str) -> list[str]:
    """Split into tokens of 1-3 characters, always the same way for the same text."""
    tokens: list[str] = []
    i = 0
    state = len(text) % 7
    while i < len(text):
        state = (state * 5 + 3) % 11
        size = 1 + state % 3
        tokens.append(text[i:i + size])
        i += size
    return tokens


async def stream_tokens(script: DemoScript, token_delay: float) -> AsyncIterator[str]:
    """Yield the tokens of ``script``, raising :class:`DemoDied` where it is told to die."""
    for n, token in enumerate(tokenize(script.text)):
        if script.die_after is not None and n >= script.die_after:
            raise DemoDied(f"demo upstream died after {n} tokens")
        if token_delay > 0 and n > 0:
            await asyncio.sleep(token_delay)
        yield token
    if script.die_after is not None and script.die_after >= len(tokenize(script.text)):
        raise DemoDied("demo upstream died before the end of the stream")


def usage_for(prompt: str, text: str) -> dict[str, int]:
    p, c = len(tokenize(prompt)), len(tokenize(text))
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def request_prompt(body: dict[str, Any], chat: bool) -> str:
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise ValueError("messages must be a list")
        return protocol.last_user_text(messages)
    return protocol.prompt_text(body.get("prompt", ""))


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "demo_error", "code": str(status), "param": None}}


def create_demo_app(token_delay_ms: float = 0.0, fail_status: int | None = None) -> Starlette:
    """The demo model as an OpenAI-compatible ASGI app (``/v1/chat/completions``, ``/v1/completions``).

    ``fail_status`` makes every completion fail with that status (to test failover).
    """
    delay = token_delay_ms / 1000.0
    # what the server did, for tests: streams started, completed, aborted (client went away), tokens sent
    stats = {"streams": 0, "completed": 0, "aborted": 0, "tokens": 0}

    async def completions(request: Request, chat: bool) -> Response:
        try:
            body = await request.json()
            prompt = request_prompt(body, chat)
        except ValueError as exc:
            return JSONResponse(error_body(400, str(exc)), status_code=400)
        if fail_status is not None:
            return JSONResponse(error_body(fail_status, "demo upstream told to fail"), status_code=fail_status)
        script = script_for(prompt)
        if script.sleep:
            await asyncio.sleep(script.sleep)
        if script.status is not None:
            return JSONResponse(error_body(script.status, "demo upstream told to fail"), status_code=script.status)
        model = str(body.get("model") or DEMO_MODEL)
        cid = protocol.new_id("chatcmpl" if chat else "cmpl")
        created = int(time.time())
        if not body.get("stream"):
            if script.die_after is not None:
                raise DemoDied("demo upstream died before answering")
            usage = usage_for(prompt, script.text)
            make = protocol.chat_completion if chat else protocol.text_completion
            return JSONResponse(make(cid, model, script.text, "stop", created, usage))

        async def events() -> AsyncIterator[bytes]:
            stats["streams"] += 1
            finished = False
            try:
                if chat:
                    yield protocol.sse(protocol.chat_chunk(cid, model, created, {"role": "assistant", "content": ""}))
                async for token in stream_tokens(script, delay):
                    stats["tokens"] += 1
                    if chat:
                        yield protocol.sse(protocol.chat_chunk(cid, model, created, {"content": token}))
                    else:
                        yield protocol.sse(protocol.text_chunk(cid, model, created, token))
                if chat:
                    yield protocol.sse(protocol.chat_chunk(cid, model, created, {}, "stop"))
                else:
                    yield protocol.sse(protocol.text_chunk(cid, model, created, "", "stop"))
                options = body.get("stream_options")
                if isinstance(options, dict) and options.get("include_usage"):
                    yield protocol.sse({
                        "id": cid, "object": "chat.completion.chunk" if chat else "text_completion",
                        "created": created, "model": model, "choices": [], "usage": usage_for(prompt, script.text),
                    })
                yield protocol.SSE_DONE
                finished = True
            finally:
                stats["completed" if finished else "aborted"] += 1

        return StreamingResponse(events(), media_type="text/event-stream")

    async def chat_completions(request: Request) -> Response:
        return await completions(request, chat=True)

    async def text_completions(request: Request) -> Response:
        return await completions(request, chat=False)

    async def models(request: Request) -> Response:
        return JSONResponse(
            {"object": "list", "data": [{"id": DEMO_MODEL, "object": "model", "created": 0, "owned_by": "hegui"}]}
        )

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/completions", text_completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
    app.state.stats = stats
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the hegui demo model (OpenAI-compatible).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--token-delay-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    import uvicorn

    uvicorn.run(create_demo_app(args.token_delay_ms), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
