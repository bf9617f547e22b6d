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

An *answer book* makes chosen questions refused, answered or answered badly (the assessment's tests
and demos): a mapping question → behaviour, where the behaviour is ``refuse`` (a canned Chinese
refusal), ``answer`` (the default answer), ``say:TEXT`` (exactly ``TEXT``) or ``status:CODE`` (fail
with HTTP ``CODE``). Pass it to :func:`create_demo_app` (``answer_book=``, a mapping or a file), to
``python -m hegui.gateway.demo_upstream --answers FILE``, or name the file in the environment variable
``HEGUI_DEMO_ANSWERS`` (read by the in-process ``base_url: demo`` too). The file is JSONL (one
``{"question": …, "answer": …}`` a line) or YAML (a mapping, or a list of such objects). A question
in the book is matched on the whole last user message, stripped; anything else behaves as above.

``POST /v1/images/generations`` draws deterministic PNGs (a four-colour gradient and a few discs,
seeded by the prompt): ``size`` ``WxH`` (default 256x256), ``n`` 1-10, ``output_format`` png
(default), jpeg or webp, ``response_format`` ``b64_json`` (default) or ``url`` (served by the demo
itself at ``/images/<id>.<format>``). ``/sleep`` and
``/status`` work as above; image-only commands (after them): ``/broken-image`` (a truncated PNG),
``/garbled-image`` (a PNG whose chunks are intact but whose pixel data is not), ``/foreign-url`` (a
URL on another host).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import io
import json
import os
import re
import time
import uuid
import zlib
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
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


# -- the answer book ------------------------------------------------------------------------------

ANSWER_BOOK_ENV = "HEGUI_DEMO_ANSWERS"
DEMO_REFUSAL = "抱歉，我无法回答这个问题。这类内容可能违反法律法规，我不能提供相关帮助。"
"""What ``refuse`` answers: a plain Chinese refusal any refusal classifier should read as one."""

AnswerBook = Mapping[str, str]


def check_behaviour(behaviour: str, where: str) -> str:
    if behaviour in ("refuse", "answer") or behaviour.startswith("say:"):
        return behaviour
    if behaviour.startswith("status:") and behaviour[7:].isdigit():
        return behaviour
    raise ValueError(f"{where}: answer {behaviour!r}: one of refuse, answer, say:TEXT, status:CODE")


def load_answer_book(path: str | Path) -> dict[str, str]:
    """Read an answer book file (JSONL or YAML, see the module docstring); ValueError names file:line."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror or exc}") from None
    book: dict[str, str] = {}
    if path.suffix.lower() == ".jsonl":
        for number, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("question"), str) \
                    or not isinstance(row.get("answer"), str):
                raise ValueError(f"{path}:{number}: needs string fields question and answer")
            book[row["question"].strip()] = check_behaviour(row["answer"], f"{path}:{number}")
        return book
    import yaml

    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{path}{line}: not YAML") from None
    rows = data.items() if isinstance(data, dict) else (
        ((r.get("question"), r.get("answer")) if isinstance(r, dict) else (None, None)) for r in data or [])
    for n, (question, answer) in enumerate(rows, 1):
        if not isinstance(question, str) or not isinstance(answer, str):
            raise ValueError(f"{path}: entry {n}: needs a string question and answer")
        book[question.strip()] = check_behaviour(answer, f"{path}: entry {n}")
    return book


_env_book: tuple[str, float, dict[str, str]] | None = None


def env_answer_book() -> dict[str, str]:
    """The book named by ``HEGUI_DEMO_ANSWERS`` (re-read when the file changes), or empty."""
    global _env_book
    name = os.environ.get(ANSWER_BOOK_ENV)
    if not name:
        return {}
    try:
        mtime = Path(name).stat().st_mtime
    except OSError:
        raise ValueError(f"{ANSWER_BOOK_ENV}={name}: no such file") from None
    if _env_book is None or _env_book[:2] != (name, mtime):
        _env_book = (name, mtime, load_answer_book(name))
    return _env_book[2]


def book_script(behaviour: str, prompt: str) -> DemoScript:
    if behaviour == "refuse":
        return DemoScript(text=DEMO_REFUSAL)
    if behaviour.startswith("say:"):
        return DemoScript(text=behaviour[4:])
    if behaviour.startswith("status:"):
        return DemoScript(text="", status=int(behaviour[7:]))
    return DemoScript(text=default_answer(prompt))


def script_for(prompt: str, answer_book: AnswerBook | None = None) -> DemoScript:
    """Interpret the answer book (``answer_book``, else ``HEGUI_DEMO_ANSWERS``) and the prompt
    commands (see the module docstring)."""
    book = env_answer_book() if answer_book is None else answer_book
    if book:
        behaviour = book.get(prompt.strip())
        if behaviour is not None:
            return book_script(behaviour, prompt)
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


# -- images ---------------------------------------------------------------------------------------

DEMO_IMAGE_SIZE = (256, 256)
MAX_DEMO_SIDE = 2048
MAX_DEMO_IMAGES = 10
_IMAGE_COMMAND = re.compile(r"^/(broken-image|garbled-image|foreign-url)(?:\s|$)")
_SKIP_COMMAND = re.compile(r"^/(sleep|status)\s+\S+\s*")
FOREIGN_IMAGE_BASE = "http://images.invalid"


class ImageStore:
    """The last images made for ``response_format: url``, by id (bounded: the demo is long-running)."""

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._images: OrderedDict[str, bytes] = OrderedDict()

    def put(self, data: bytes) -> str:
        image_id = uuid.uuid4().hex
        self._images[image_id] = data
        while len(self._images) > self.limit:
            self._images.popitem(last=False)
        return image_id

    def get(self, image_id: str) -> bytes | None:
        return self._images.get(image_id)


IN_PROCESS_STORE = ImageStore()
"""Images of the in-process demo (``base_url: demo``), named ``demo://demo/images/<id>.<format>``."""
IN_PROCESS_IMAGE_BASE = "demo://demo"


def parse_size(size: Any) -> tuple[int, int]:
    if size in (None, "auto"):
        return DEMO_IMAGE_SIZE
    m = re.fullmatch(r"(\d{1,5})x(\d{1,5})", size) if isinstance(size, str) else None
    if m is None:
        raise ValueError(f"size must look like 256x256, not {size!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if not (16 <= w <= MAX_DEMO_SIDE and 16 <= h <= MAX_DEMO_SIDE):
        raise ValueError(f"size {size}: each side must be 16-{MAX_DEMO_SIDE} pixels")
    return w, h


def demo_image(prompt: str, size: tuple[int, int], index: int = 0, fmt: str = "png") -> bytes:
    """An image (``fmt``: png, jpeg or webp) that depends only on (prompt, size, index): four corner
    colours blended, and discs."""
    from PIL import Image, ImageDraw

    seed = hashlib.sha256(f"{index}\x00{prompt}".encode()).digest()
    corners = Image.new("RGB", (2, 2))
    corners.putdata([(seed[i], seed[i + 1], seed[i + 2]) for i in range(0, 12, 3)])
    img = corners.resize(size, Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(img)
    w, h = size
    for k in range(4):
        b = seed[12 + 5 * k : 17 + 5 * k]
        cx, cy, r = b[0] * w // 256, b[1] * h // 256, (8 + b[2] % 56) * min(w, h) // 256
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(b[3], b[4], b[2]))
    buf = io.BytesIO()
    img.save(buf, format=fmt.upper())
    return buf.getvalue()


def garble_png(png: bytes) -> bytes:
    """``png`` with its compressed pixel data replaced by junk, every chunk CRC still right."""
    out = bytearray(png[:8])
    pos = 8
    while pos < len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        ctype = png[pos + 4 : pos + 8]
        body = png[pos + 8 : pos + 8 + length]
        if ctype == b"IDAT":
            body = hashlib.sha256(body).digest() * (len(body) // 32 + 1)
            body = body[:length]
        out += len(body).to_bytes(4, "big") + ctype + body + zlib.crc32(ctype + body).to_bytes(4, "big")
        pos += 12 + length
    return bytes(out)


def image_command(prompt: str) -> str:
    """The image-only command (``broken-image`` …) after any ``/sleep``/``/status``, or ``""``."""
    rest = prompt
    while (m := _SKIP_COMMAND.match(rest)) is not None:
        rest = rest[m.end():]
    found = _IMAGE_COMMAND.match(rest)
    return found.group(1) if found else ""


def images_response(body: dict[str, Any], store: ImageStore, url_base: str) -> dict[str, Any]:
    """The ``/v1/images/generations`` answer for ``body``; ValueError for a bad request."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("prompt must be a non-empty string")
    n = body.get("n") or 1
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_DEMO_IMAGES:
        raise ValueError(f"n must be an integer from 1 to {MAX_DEMO_IMAGES}")
    size = parse_size(body.get("size"))
    fmt = body.get("response_format") or "b64_json"
    if fmt not in ("b64_json", "url"):
        raise ValueError("response_format must be 'b64_json' or 'url'")
    output_format = body.get("output_format") or "png"
    if output_format not in ("png", "jpeg", "webp"):
        raise ValueError("output_format must be 'png', 'jpeg' or 'webp'")
    command = image_command(prompt)
    data: list[dict[str, Any]] = []
    for index in range(n):
        png = demo_image(prompt, size, index, output_format)
        if command == "broken-image":
            png = png[: len(png) // 2]
        elif command == "garbled-image":
            png = garble_png(png)
        if fmt == "b64_json":
            data.append({"b64_json": base64.b64encode(png).decode("ascii")})
        else:
            base = FOREIGN_IMAGE_BASE if command == "foreign-url" else url_base
            data.append({"url": f"{base}/images/{store.put(png)}.{output_format}"})
    return {"created": int(time.time()), "data": data, "output_format": output_format}


def create_demo_app(token_delay_ms: float = 0.0, fail_status: int | None = None,
                    answer_book: AnswerBook | str | Path | None = None) -> Starlette:
    """The demo model as an OpenAI-compatible ASGI app (``/v1/chat/completions``, ``/v1/completions``,
    ``/v1/images/generations``).

    ``fail_status`` makes every completion fail with that status (to test failover). ``answer_book``
    (a mapping or a file; see the module docstring) answers chosen questions; unset, the
    ``HEGUI_DEMO_ANSWERS`` file is used if set. ``app.state.asked`` counts completions per prompt.
    """
    delay = token_delay_ms / 1000.0
    book: AnswerBook | None = (load_answer_book(answer_book) if isinstance(answer_book, (str, Path))
                               else answer_book)
    # what the server did, for tests: streams started, completed, aborted (client went away), tokens sent
    stats = {"streams": 0, "completed": 0, "aborted": 0, "tokens": 0, "images": 0, "image_fetches": 0}
    asked: Counter[str] = Counter()

    async def completions(request: Request, chat: bool) -> Response:
        try:
            body = await request.json()
            prompt = request_prompt(body, chat)
        except ValueError as exc:
            return JSONResponse(error_body(400, str(exc)), status_code=400)
        asked[prompt.strip()] += 1
        if fail_status is not None:
            return JSONResponse(error_body(fail_status, "demo upstream told to fail"), status_code=fail_status)
        script = script_for(prompt, book)
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

    store = ImageStore()

    async def images(request: Request) -> Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("request body must be a JSON object")
            script = script_for(str(body.get("prompt", "")))
        except ValueError as exc:
            return JSONResponse(error_body(400, str(exc)), status_code=400)
        if fail_status is not None:
            return JSONResponse(error_body(fail_status, "demo upstream told to fail"), status_code=fail_status)
        if script.sleep:
            await asyncio.sleep(script.sleep)
        if script.status is not None:
            return JSONResponse(error_body(script.status, "demo upstream told to fail"), status_code=script.status)
        stats["images"] += 1
        try:
            answer = await asyncio.to_thread(images_response, body, store, str(request.base_url).rstrip("/"))
        except ValueError as exc:
            return JSONResponse(error_body(400, str(exc)), status_code=400)
        return JSONResponse(answer)

    async def image_file(request: Request) -> Response:
        data = store.get(request.path_params["image_id"])
        ext = request.path_params["ext"]
        if data is None or ext not in ("png", "jpeg", "webp"):
            return JSONResponse(error_body(404, "no such image (the demo keeps the last 64)"), status_code=404)
        stats["image_fetches"] += 1
        return Response(data, media_type="image/" + ext)

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/completions", text_completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/images/generations", images, methods=["POST"]),
            Route("/images/{image_id:str}.{ext:str}", image_file, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
    app.state.stats = stats
    app.state.asked = asked
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the hegui demo model (OpenAI-compatible).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--token-delay-ms", type=float, default=0.0)
    parser.add_argument("--answers", default=None, help="an answer book file (JSONL or YAML)")
    args = parser.parse_args(argv)
    import uvicorn

    try:
        app = create_demo_app(args.token_delay_ms, answer_book=args.answers)
    except ValueError as exc:
        parser.exit(2, f"error: {exc}\n")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
