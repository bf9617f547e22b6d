"""Guard backends: answer parsing, category mapping, the mock, the OpenAI-compatible endpoint against
a real HTTP server on loopback, and fail-closed behaviour."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hegui.config import load_config
from hegui.detectors.base import DetectorError
from hegui.detectors.guard import (
    DEFAULT_CATEGORY_MAP,
    GuardConfig,
    GuardDetector,
    GuardParseError,
    MockBackend,
    MockConfig,
    MockRule,
    OpenAIBackend,
    RemoteGuardDetector,
    build,
    detector_for,
    make_backend,
    parse_guard_output,
)
from hegui.errors import ConfigError
from hegui.text import normalize

# ---- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "safety", "cats"),
    [
        ("Safety: Unsafe\nCategories: Violent", "unsafe", ("Violent",)),
        ("Safety: Safe\nCategories: None", "safe", ()),
        ("Safety: Controversial\nCategories: Politically Sensitive Topics", "controversial",
         ("Politically Sensitive Topics",)),
        ("safety：unsafe\ncategories: Non-violent Illegal Acts, PII", "unsafe", ("Non-violent Illegal Acts", "PII")),
        ("Safety: Unsafe\nCategories: Violent\nRefusal: No", "unsafe", ("Violent",)),
        ("Safety: Safe", "safe", ()),
    ],
)
def test_parse_guard_output(raw: str, safety: str, cats: tuple[str, ...]) -> None:
    v = parse_guard_output(raw)
    assert (v.safety, v.categories) == (safety, cats)


@pytest.mark.parametrize("raw", ["", "I cannot help with that.", "Safety: maybe", "Categories: Violent"])
def test_unparseable_answers_raise(raw: str) -> None:
    with pytest.raises(GuardParseError):
        parse_guard_output(raw)


# ---- mapping and the mock ---------------------------------------------------------------------


def _mock(outputs: dict[str, str], config: GuardConfig | None = None) -> GuardDetector:
    rules = [MockRule(contains=k, output=v) for k, v in outputs.items()]
    return detector_for(MockBackend(MockConfig(rules=rules)), config or GuardConfig())


def test_unsafe_categories_map_to_risks() -> None:
    det = _mock({"刀": "Safety: Unsafe\nCategories: Violent, Copyright Violation, Jailbreak, Something New"})
    text = "我要拿刀"
    found = det.detect(normalize(text))
    assert [f.risk for f in found] == ["A1f", "A3a", "JB", "A1h"]
    assert all((f.start, f.end, f.score, f.detector) == (0, len(text), 0.95, "guard") for f in found)
    assert found[0].evidence_id == "guard:mock:Violent" and found[0].kind == "unsafe"


def test_safe_and_controversial() -> None:
    det = _mock({"政策": "Safety: Controversial\nCategories: Politically Sensitive Topics"})
    assert det.detect(normalize("你好")) == []
    [f] = det.detect(normalize("谈谈这个政策"))
    assert (f.risk, f.score, f.kind) == ("A1b", 0.6, "controversial")
    quiet = _mock({"政策": "Safety: Controversial\nCategories: None"}, GuardConfig(report_controversial=False))
    assert quiet.detect(normalize("谈谈这个政策")) == []


def test_category_table_is_configurable() -> None:
    cfg = GuardConfig(categories={**DEFAULT_CATEGORY_MAP, "Violent": "A.1.d"}, unknown_risk="a4g")
    det = _mock({"x": "Safety: Unsafe\nCategories: Violent, Other"}, cfg)
    assert [f.risk for f in det.detect(normalize("x"))] == ["A1d", "A4g"]


def test_config_rejects_unknown_codes_and_missing_endpoint() -> None:
    with pytest.raises(ValidationError, match="unknown risk code"):
        GuardConfig(categories={"Violent": "B9"})
    with pytest.raises(ValidationError, match="base_url"):
        GuardConfig(enabled=True, backend="openai")
    with pytest.raises(ValidationError, match="model"):
        GuardConfig(enabled=True, backend="hf_local")


def test_config_file_errors_name_the_line(tmp_path: Any) -> None:
    f = tmp_path / "hegui.yaml"
    f.write_text("guard:\n  enabled: true\n  categories:\n    Violent: Z9\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"hegui\.yaml:\d+: guard"):
        load_config(f)


def test_mock_failure_and_garbage_fail_closed() -> None:
    det = detector_for(MockBackend(MockConfig(fail=True)))
    with pytest.raises(DetectorError):
        det.detect(normalize("任何文字"))
    det2 = detector_for(MockBackend(answer=lambda t: "I am not a guard model"))
    with pytest.raises(DetectorError, match="no 'Safety:' line"):
        det2.detect(normalize("任何文字"))


def test_backend_exceptions_become_detector_errors() -> None:
    def boom(text: str) -> str:
        raise RuntimeError("kaput")

    det = detector_for(MockBackend(answer=boom))
    with pytest.raises(DetectorError, match="kaput"):
        det.detect(normalize("x"))


def test_builtin_backend_uses_the_classifier() -> None:
    det = detector_for(make_backend(GuardConfig(backend="builtin")), GuardConfig(backend="builtin"))
    assert det.cost == "heavy"
    [f] = det.detect(normalize("河南人都是骗子，全都该滚出去"))
    assert f.risk.startswith("A2") and 0.5 <= f.score <= 1 and f.evidence_id.startswith("guard:builtin:")
    assert det.detect(normalize("今天天气不错，我们去公园散步吧")) == []


def test_build_from_config(tmp_path: Any) -> None:
    f = tmp_path / "hegui.yaml"
    f.write_text("guard:\n  enabled: true\n  backend: mock\n  mock:\n    rules:\n"
                 "      - {contains: 毒品, output: \"Safety: Unsafe\\nCategories: Non-violent Illegal Acts\"}\n",
                 encoding="utf-8")
    det = build(load_config(f))
    assert det is not None
    assert [x.risk for x in det.detect(normalize("哪里买毒品"))] == ["A1h"]
    assert build(load_config(None)) is None  # disabled by default


def test_moderator_refuses_when_the_guard_fails() -> None:
    from hegui.moderation import Moderator
    from hegui.policy import load_policy

    mod = Moderator([detector_for(MockBackend(MockConfig(fail=True)))], load_policy(None))
    v = mod.check("你好")
    assert v.failed_detectors == ["guard"]
    assert not v.allowed
    ok = Moderator([detector_for(MockBackend(MockConfig()))], load_policy(None)).check("你好")
    assert ok.allowed and ok.findings == []


# ---- OpenAI-compatible endpoint on loopback --------------------------------------------------


class GuardServer:
    """A tiny Qwen3Guard-like chat-completions server; ``mode`` changes how it answers."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append({"body": body, "auth": request.headers.get("authorization")})
        if self.fail_next > 0:
            self.fail_next -= 1
            return JSONResponse({"error": "overloaded"}, status_code=503)
        if self.mode == "slow":
            await asyncio.sleep(2.0)
        if self.mode == "bad_request":
            return JSONResponse({"error": "bad"}, status_code=400)
        if self.mode == "not_json":
            return Response("<html>oops</html>", media_type="text/html")
        content = body["messages"][-1]["content"]
        if self.mode == "garbage":
            answer = "Sure! Here is a poem."
        elif "炸弹" in content:
            answer = "Safety: Unsafe\nCategories: Violent"
        elif "政府" in content:
            answer = "Safety: Controversial\nCategories: Politically Sensitive Topics"
        else:
            answer = "Safety: Safe\nCategories: None"
        return JSONResponse({"id": "x", "object": "chat.completion", "model": body["model"],
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                                          "finish_reason": "stop"}]})


@pytest.fixture(scope="module")
def guard_server() -> Iterator[tuple[GuardServer, str]]:
    gs = GuardServer()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(gs.app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield gs, f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(5)
    sock.close()


@pytest.fixture
def server(guard_server: tuple[GuardServer, str]) -> Iterator[tuple[GuardServer, str]]:
    gs, url = guard_server
    gs.mode, gs.fail_next = "ok", 0
    gs.requests.clear()
    yield gs, url


_OPEN: list[GuardDetector] = []


@pytest.fixture(autouse=True)
def _close_detectors() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _openai_detector(url: str, **kw: Any) -> GuardDetector:
    cfg = GuardConfig(enabled=True, backend="openai", base_url=url, model="Qwen3Guard-Gen-0.6B", **kw)
    det = detector_for(make_backend(cfg), cfg)
    _OPEN.append(det)
    return det


def test_openai_sync_and_async(server: tuple[GuardServer, str]) -> None:
    gs, url = server
    det = _openai_detector(url)
    assert isinstance(det, RemoteGuardDetector) and det.cost == "remote"
    [f] = det.detect(normalize("教我做炸弹"))
    assert (f.risk, f.evidence_id) == ("A1f", "guard:openai:Violent")
    assert det.detect(normalize("你好")) == []
    [c] = asyncio.run(det.adetect(normalize("评价一下政府")))
    assert (c.risk, c.kind) == ("A1b", "controversial")
    body = gs.requests[0]["body"]
    assert body["model"] == "Qwen3Guard-Gen-0.6B" and body["temperature"] == 0
    assert body["messages"] == [{"role": "user", "content": "教我做炸弹"}]


def test_openai_hegui_prompt_and_api_key(server: tuple[GuardServer, str], monkeypatch: pytest.MonkeyPatch) -> None:
    gs, url = server
    monkeypatch.setenv("GUARD_KEY_FOR_TEST", "sk-test")
    det = _openai_detector(url, prompt="hegui", api_key_env="GUARD_KEY_FOR_TEST")
    assert det.detect(normalize("你好")) == []
    req = gs.requests[-1]
    assert req["auth"] == "Bearer sk-test"
    content = req["body"]["messages"][0]["content"]
    assert "Safety: Safe|Unsafe|Controversial" in content and "- Violent" in content and content.endswith("你好\n")


def test_openai_missing_key_env_is_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    cfg = GuardConfig(enabled=True, backend="openai", base_url="http://127.0.0.1:9/v1", model="m",
                      api_key_env="NO_SUCH_KEY_VAR")
    with pytest.raises(ConfigError, match="NO_SUCH_KEY_VAR"):
        make_backend(cfg)


def test_openai_retries_then_succeeds(server: tuple[GuardServer, str]) -> None:
    gs, url = server
    gs.fail_next = 1
    det = _openai_detector(url, retries=1)
    assert [f.risk for f in det.detect(normalize("炸弹"))] == ["A1f"]
    assert len(gs.requests) == 2
    gs.fail_next = 1
    assert [f.risk for f in asyncio.run(det.adetect(normalize("炸弹")))] == ["A1f"]


def test_openai_gives_up_after_retries(server: tuple[GuardServer, str]) -> None:
    gs, url = server
    gs.fail_next = 5
    det = _openai_detector(url, retries=2)
    with pytest.raises(DetectorError, match="3 attempt"):
        det.detect(normalize("炸弹"))
    assert len(gs.requests) == 3


@pytest.mark.parametrize(("mode", "msg"), [("garbage", "no 'Safety:' line"), ("bad_request", "HTTP 400"),
                                           ("not_json", "not JSON")])
def test_openai_bad_answers_fail_closed(server: tuple[GuardServer, str], mode: str, msg: str) -> None:
    gs, url = server
    gs.mode = mode
    det = _openai_detector(url, retries=0)
    with pytest.raises(DetectorError, match=msg):
        det.detect(normalize("x"))
    with pytest.raises(DetectorError, match=msg):
        asyncio.run(det.adetect(normalize("x")))


def test_openai_timeout_fails_closed(server: tuple[GuardServer, str]) -> None:
    gs, url = server
    gs.mode = "slow"
    det = _openai_detector(url, timeout=0.2, retries=0)
    t0 = time.monotonic()
    with pytest.raises(DetectorError, match=r"no answer within 0\.2 s"):
        det.detect(normalize("x"))
    with pytest.raises(DetectorError, match="no answer within"):
        asyncio.run(det.adetect(normalize("x")))
    assert time.monotonic() - t0 < 1.9


def test_openai_connection_refused_fails_closed() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    det = _openai_detector(f"http://127.0.0.1:{port}/v1", retries=1)
    with pytest.raises(DetectorError, match="2 attempt"):
        det.detect(normalize("x"))


def test_openai_backend_with_mock_transport() -> None:
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"choices": [{"message": {"content": "Safety: Unsafe\nCategories: PII"}}]})

    b = OpenAIBackend("http://guard.invalid/v1", "m", transport=httpx.MockTransport(handler),
                      async_transport=httpx.MockTransport(handler))
    assert b.classify("x").categories == ("PII",)
    assert asyncio.run(b.aclassify("x")).safety == "unsafe"
    b.close()
