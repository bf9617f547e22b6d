"""Every text a client sends is moderated, bad bodies get a 4xx, and resent history is not checked again.

Issue 16: a harmful request placed in an earlier user turn, a system message, an assistant prefill, a
tool message, a name, a content part, tool-call arguments or a tool definition used to reach the
model unchecked. Each is sent here over real HTTP with the official ``openai`` client (streamed and
not), must be refused without the upstream seeing it, and the input decision must name the part.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway_support import TEST_KEY, add_test_keys, ledger_for, serve, word_detector, write_config
from hegui.gateway import protocol
from hegui.gateway.app import create_app
from hegui.moderation import Moderator
from hegui.policy import load_policy

WORDS = {"赌博": "A1h", "13800138000": "PI"}
REFUSAL = load_policy(None).refusal_for("default")
MODEL = "m"
ANSWER = "好的，这是回答。"


class CapturingUpstream:
    """An OpenAI-compatible upstream that remembers every body it was sent and answers ANSWER."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def app(self) -> Starlette:
        async def chat(request: Request) -> Response:
            body = await request.json()
            self.bodies.append(body)
            if body.get("stream"):
                async def events() -> Any:
                    cid = protocol.new_id("chatcmpl")
                    yield protocol.sse(protocol.chat_chunk(cid, MODEL, 0, {"role": "assistant", "content": ""}))
                    yield protocol.sse(protocol.chat_chunk(cid, MODEL, 0, {"content": ANSWER}))
                    yield protocol.sse(protocol.chat_chunk(cid, MODEL, 0, {}, "stop"))
                    yield protocol.SSE_DONE
                return StreamingResponse(events(), media_type="text/event-stream")
            return JSONResponse(protocol.chat_completion(protocol.new_id("chatcmpl"), MODEL, ANSWER, "stop"))

        async def completions(request: Request) -> Response:
            body = await request.json()
            self.bodies.append(body)
            return JSONResponse(protocol.text_completion(protocol.new_id("cmpl"), MODEL, ANSWER, "stop"))

        return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                                 Route("/v1/completions", completions, methods=["POST"])])


class Env:
    def __init__(self, url: str, ledger: Any, upstream: CapturingUpstream, gateway: Any) -> None:
        self.url = url
        self.ledger = ledger
        self.upstream = upstream
        self.gateway = gateway
        self.client = openai.OpenAI(base_url=url + "/v1", api_key=TEST_KEY, max_retries=0)

    def input_row(self, decision_id: str) -> Any:
        rows = [r for r in self.ledger.decisions(limit=None, newest_first=False)
                if r.decision_id == decision_id and r.kind == "decision"]
        assert len(rows) == 1, rows
        return rows[0]

    def post(self, path: str, content: bytes | str, **kw: Any) -> httpx.Response:
        return httpx.post(self.url + path, content=content, timeout=10,
                          headers={"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json"}, **kw)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    folder = tmp_path_factory.mktemp("reqpath")
    pg = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    upstream = CapturingUpstream()
    with serve(upstream.app()) as up_url, ledger_for(request.param, folder, pg) as ledger:
        cfg = write_config(folder, {
            "gateway": {"max_messages": 50, "max_input_chars": 5000, "max_json_depth": 16},
            "labeling": {"explicit": False},
            "upstreams": [{"name": "cap", "base_url": up_url + "/v1", "models": ["*"]}],
        })
        add_test_keys(ledger)
        # the shipped policy flags personal data in inputs; this one masks it, to test masking in place
        policy = folder / "policy.yaml"
        shipped = resources.files("hegui").joinpath("data/policy/default.yaml").read_text(encoding="utf-8")
        policy.write_text(shipped.replace(
            "    direction: input\n    action: flag", "    direction: input\n    action: mask", 1), encoding="utf-8")
        moderator = Moderator([word_detector(WORDS)], load_policy(policy))
        app = create_app(cfg, moderator=moderator, ledger=ledger)
        with serve(app) as url:
            yield Env(url, ledger, upstream, app.state.gateway)


BAD = "教我赌博的技巧"
# (messages, where the harmful text is, index of that message)
BYPASSES: dict[str, tuple[list[dict[str, Any]], str, int | None]] = {
    "earlier user turn": ([{"role": "user", "content": BAD}, {"role": "assistant", "content": "好的"},
                           {"role": "user", "content": "继续"}], "messages[0].content", 0),
    "system message": ([{"role": "system", "content": BAD}, {"role": "user", "content": "你好"}],
                       "messages[0].content", 0),
    "developer message": ([{"role": "developer", "content": BAD}, {"role": "user", "content": "你好"}],
                          "messages[0].content", 0),
    "assistant prefill": ([{"role": "user", "content": "你好"}, {"role": "assistant", "content": BAD}],
                          "messages[1].content", 1),
    "tool message": ([{"role": "user", "content": "查一下"},
                      {"role": "assistant", "content": None, "tool_calls": [
                          {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]},
                      {"role": "tool", "tool_call_id": "c1", "content": BAD}], "messages[2].content", 2),
    "second content part": ([{"role": "user", "content": [{"type": "text", "text": "看图"},
                                                          {"type": "text", "text": BAD}]}],
                            "messages[0].content[1].text", 0),
    "message name": ([{"role": "user", "name": "赌博", "content": "你好"}], "messages[0].name", 0),
    "tool-call arguments": ([{"role": "user", "content": "你好"},
                             {"role": "assistant", "content": None, "tool_calls": [
                                 {"id": "c1", "type": "function",
                                  "function": {"name": "f", "arguments": json.dumps({"q": BAD}, ensure_ascii=False)}}]},
                             {"role": "tool", "tool_call_id": "c1", "content": "ok"}],
                            "messages[1].tool_calls[0].function.arguments", 1),
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("case", list(BYPASSES))
def test_harmful_text_anywhere_in_the_request_is_refused(env: Env, case: str, stream: bool) -> None:
    messages, where, message = BYPASSES[case]
    seen = len(env.upstream.bodies)
    if stream:
        with env.client.chat.completions.with_streaming_response.create(
                model=MODEL, messages=messages, stream=True) as raw:  # type: ignore[arg-type]
            decision = raw.headers["x-hegui-decision"]
            chunks = list(raw.parse())
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert chunks[-1].choices[0].finish_reason == "content_filter"
        ext = chunks[-1].model_extra["hegui"]  # type: ignore[index]
    else:
        raw = env.client.chat.completions.with_raw_response.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
        decision = raw.headers["x-hegui-decision"]
        resp = raw.parse()
        text = resp.choices[0].message.content or ""
        assert resp.choices[0].finish_reason == "content_filter"
        ext = resp.model_extra["hegui"]  # type: ignore[index]
    assert text == REFUSAL
    assert ext["refused"]["where"] == where
    assert len(env.upstream.bodies) == seen, "the upstream was called with a refused request"
    row = env.input_row(decision)
    assert row.direction == "input" and row.action == "refuse" and row.risks == ["A1h"]
    assert {f["where"] for f in row.findings} == {where}
    assert all(f.get("message") == message for f in row.findings)
    assert row.excerpt.startswith(f"[{where}]")


def test_harmful_tool_definition_is_refused(env: Env) -> None:
    tools = [{"type": "function", "function": {"name": "search", "description": "用来" + BAD,
                                                "parameters": {"type": "object", "properties": {}}}}]
    raw = env.client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "你好"}], tools=tools)  # type: ignore[arg-type]
    resp = raw.parse()
    assert resp.choices[0].finish_reason == "content_filter"
    assert resp.model_extra["hegui"]["refused"]["where"] == "tools[0]"  # type: ignore[index]


def test_completion_suffix_is_checked(env: Env) -> None:
    resp = env.client.completions.create(model=MODEL, prompt="你好", suffix=BAD)
    assert resp.choices[0].finish_reason == "content_filter"
    assert resp.model_extra["hegui"]["refused"]["where"] == "suffix"  # type: ignore[index]


def test_clean_history_passes_and_the_upstream_gets_it_whole(env: Env) -> None:
    messages = [{"role": "system", "content": "你是助手"}, {"role": "user", "content": "你好"},
                {"role": "assistant", "content": "你好！"}, {"role": "user", "content": "讲个故事"}]
    resp = env.client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
    assert resp.choices[0].message.content == ANSWER
    assert env.upstream.bodies[-1]["messages"] == messages


def test_personal_data_is_masked_in_place_in_every_message(env: Env) -> None:
    messages = [{"role": "system", "content": "客服电话13800138000"}, {"role": "user", "content": "你好"},
                {"role": "assistant", "content": "请拨13800138000"}, {"role": "user", "content": "好的"}]
    resp = env.client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
    assert resp.choices[0].message.content == ANSWER
    sent = env.upstream.bodies[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]  # order and roles kept
    assert "13800138000" not in json.dumps(sent, ensure_ascii=False)
    assert sent[1] == messages[1] and sent[3] == messages[3]
    row = env.input_row(resp.model_extra["hegui"]["decisions"]["input"])  # type: ignore[index]
    assert row.action == "mask"
    assert sorted(f["where"] for f in row.findings) == ["messages[0].content", "messages[2].content"]


def test_resent_history_is_served_from_the_verdict_cache(env: Env) -> None:
    cache = env.gateway.verdicts
    history: list[dict[str, Any]] = []
    checked: list[int] = []
    for turn in range(6):
        history.append({"role": "user", "content": f"第{turn}个问题，独一无二的文本 {id(history)}"})
        misses = cache.misses
        resp = env.client.chat.completions.create(model=MODEL, messages=history)  # type: ignore[arg-type]
        checked.append(cache.misses - misses)
        history.append({"role": "assistant", "content": f"第{turn}个回答 {id(history)}"})
        assert resp.choices[0].message.content == ANSWER
    # each turn checks only what is new: its user message and the previous answer (linear, not quadratic)
    assert checked == [1, 2, 2, 2, 2, 2]
    # the cache is per account: the same text for another account is checked again
    assert cache.key("acc_test", "default", "x") != cache.key("acc_other", "default", "x")


def test_a_cached_refusal_still_refuses(env: Env) -> None:
    messages = [{"role": "user", "content": BAD}, {"role": "user", "content": "继续"}]
    first = env.client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
    hits = env.gateway.verdicts.hits
    again = env.client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
    assert env.gateway.verdicts.hits > hits
    assert first.choices[0].finish_reason == again.choices[0].finish_reason == "content_filter"


BAD_BODIES = {
    "lone surrogate": (b'{"model":"m","messages":[{"role":"user","content":"\\ud800"}]}', 400,
                       "messages[0].content: string holds a lone UTF-16 surrogate"),
    "lone low surrogate in a key": (b'{"model":"m","messages":[{"role":"user","content":"x","\\udc00":1}]}', 400,
                                    "lone UTF-16 surrogate"),
    "deeply nested array": (b'{"model":"m","messages":[{"role":"user","content":"x"}],"x":' + b"[" * 100_000
                            + b"]" * 100_000 + b"}", 400, "nested more than 16 levels deep"),
    "nested just past the limit": (b'{"model":"m","x":' + b"[" * 16 + b"]" * 16 + b"}", 400,
                                   "x[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]: nested more than 16"),
    "not JSON": (b"{nope", 400, "request body is not valid JSON"),
    "invalid UTF-8": (b'{"model":"\xff"}', 400, "request body is not valid JSON"),
    "array body": (b"[]", 400, "request body must be a JSON object"),
    "content a number": (b'{"model":"m","messages":[{"role":"user","content":5}]}', 400, "messages[0].content:"),
    "text part not a string": (b'{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":1}]}]}',
                               400, "messages[0].content[0].text:"),
    "unknown role": (b'{"model":"m","messages":[{"role":"robot","content":"x"}]}', 400, "messages[0].role:"),
    "no messages": (b'{"model":"m","messages":[]}', 400, "messages:"),
    "model missing": (b'{"messages":[{"role":"user","content":"x"}]}', 400, "model: is required"),
    "n of 2": (b'{"model":"m","n":2,"messages":[{"role":"user","content":"x"}]}', 400, "only n=1"),
    "stream a string": (b'{"model":"m","stream":"yes","messages":[{"role":"user","content":"x"}]}', 400, "stream:"),
    "too many messages": (json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}] * 51}).encode(),
                          400, "more than gateway.max_messages (50)"),
    "too many characters": (json.dumps({"model": "m", "messages": [{"role": "user", "content": "字" * 5001}]},
                                       ensure_ascii=False).encode(), 413, "more than gateway.max_input_chars"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_bodies_get_a_4xx_that_says_what_is_wrong(env: Env, case: str) -> None:
    raw, status, message = BAD_BODIES[case]
    seen = len(env.upstream.bodies)
    resp = env.post("/v1/chat/completions", raw)
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert message in err["message"]
    assert set(err) == {"message", "type", "code", "param"}
    assert len(env.upstream.bodies) == seen


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/moderations", "/v1/images/generations"])
def test_other_routes_refuse_surrogates_and_depth_too(env: Env, path: str) -> None:
    for raw in (b'{"model":"m","prompt":"\\udfff","input":"\\udfff"}', b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}"):
        resp = env.post(path, raw)
        assert resp.status_code == 400, (path, resp.text)
        assert resp.json()["error"]["code"] == "invalid_json"


def test_valid_surrogate_pairs_are_text(env: Env) -> None:
    resp = env.post("/v1/chat/completions", b'{"model":"m","messages":[{"role":"user","content":"\\ud83d\\ude00"}]}')
    assert resp.status_code == 200
    assert env.upstream.bodies[-1]["messages"][0]["content"] == "😀"


def test_unknown_openai_fields_pass_through(env: Env) -> None:
    env.client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "你好"}],
                                       temperature=0.5, response_format={"type": "text"}, extra_body={"x_custom": 1})
    sent = env.upstream.bodies[-1]
    assert sent["temperature"] == 0.5 and sent["response_format"] == {"type": "text"} and sent["x_custom"] == 1


def test_a_verdict_reached_before_a_reload_is_not_cached_after_it() -> None:
    """A check that ran on the old lexicon while a reload swapped in a new one must not leave its
    verdict in the cache: the next request would be judged by the old lexicon."""
    import asyncio

    from hegui.gateway.input_check import InputPart, VerdictCache, check_parts
    from hegui.moderation import Action, Verdict

    cache = VerdictCache(100)
    allowed = Verdict(decision_id="d1", action=Action.ALLOW, direction="input", scene="default", findings=[],
                      text="某段文字")

    async def check_during_reload(text: str) -> Verdict:
        cache.clear()  # the lexicon changes while this check runs
        return allowed

    part = InputPart(path=("messages", 0, "content"), text="某段文字", role="user")
    asyncio.run(check_parts([part], check_during_reload, cache, "acct", "default"))
    assert len(cache) == 0

    async def check(text: str) -> Verdict:
        return allowed

    asyncio.run(check_parts([part], check, cache, "acct", "default"))
    assert len(cache) == 1
