"""Upstream failures over real HTTP: failover, 502/503/504, a stream that dies, a client that leaves."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import openai
import pytest

from gateway_support import (
    TEST_KEY,
    add_test_keys,
    free_port,
    ledger_for,
    make_moderator,
    say64,
    serve,
    sse_events,
    write_config,
)
from hegui.gateway.app import create_app
from hegui.gateway.demo_upstream import create_demo_app, tokenize


class Env:
    def __init__(self, url: str, ledger: Any, slow_stats: dict[str, int]) -> None:
        self.url = url
        self.ledger = ledger
        self.slow_stats = slow_stats
        self.client = openai.OpenAI(base_url=url + "/v1", api_key=TEST_KEY, max_retries=0, timeout=20)

    def chat(self, model: str, text: str, **kw: Any) -> Any:
        return self.client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], **kw)

    def wait_for_row(self, decision_id: str, timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.ledger.decisions(decision_id=decision_id, kind="decision")
            if rows:
                return rows[0]
            time.sleep(0.05)
        raise AssertionError(f"no decision record {decision_id}")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    folder = tmp_path_factory.mktemp("gwup")
    with ExitStack() as stack:
        good = stack.enter_context(serve(create_demo_app()))
        slow_app = create_demo_app(token_delay_ms=40)
        slow = stack.enter_context(serve(slow_app))
        broken = stack.enter_context(serve(create_demo_app(fail_status=500)))
        dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here
        ups = [
            {"name": "dead", "base_url": dead + "/v1", "models": ["failover-*", "down-*"], "connect_timeout": 1},
            {"name": "broken", "base_url": broken + "/v1", "models": ["five-*", "bad-*"], "retries": 1},
            {"name": "good", "base_url": good + "/v1", "models": ["failover-*", "five-*", "plain"], "timeout": 0.5},
            {"name": "slow", "base_url": slow + "/v1", "models": ["slow"]},
            {"name": "listing", "base_url": good + "/v1", "models": ["hegui-*"]},
        ]
        cfg = write_config(folder, {"upstreams": ups, "gateway": {"stream_checkpoint_seconds": 0.2},
                                    "labeling": {"explicit": False}})
        ledger = stack.enter_context(ledger_for("sqlite", folder, None))
        add_test_keys(ledger)
        url = stack.enter_context(serve(create_app(cfg, moderator=make_moderator({"赌博": "A1h"}), ledger=ledger)))
        yield Env(url, ledger, slow_app.state.stats)


def test_failover_from_an_unreachable_upstream(env: Env) -> None:
    resp = env.chat("failover-1", "/say 切换成功")
    assert resp.choices[0].message.content == "切换成功"
    assert resp.model_extra["hegui"]["upstream"] == "good"
    chunks = list(env.chat("failover-1", "/say 流式切换成功", stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "流式切换成功"
    metrics = httpx.get(env.url + "/metrics").text
    assert 'hegui_upstream_errors_total{kind="connect",upstream="dead"}' in metrics


def test_failover_from_a_5xx_upstream_after_retries(env: Env) -> None:
    before = _metric(env, 'hegui_upstream_errors_total{kind="status",upstream="broken"}')
    resp = env.chat("five-1", "/say 五百之后")
    assert resp.choices[0].message.content == "五百之后"
    assert _metric(env, 'hegui_upstream_errors_total{kind="status",upstream="broken"}') == before + 2


def _metric(env: Env, name: str) -> float:
    for line in httpx.get(env.url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize("stream", [False, True])
def test_no_reachable_upstream_is_503(env: Env, stream: bool) -> None:
    t0 = time.monotonic()
    with pytest.raises(openai.APIStatusError) as exc:
        env.chat("down-1", "你好", stream=stream)
    assert exc.value.status_code == 503
    assert exc.value.body["code"] == "upstream_unavailable" and exc.value.body["type"] == "upstream_error"
    assert time.monotonic() - t0 < 3


@pytest.mark.parametrize("stream", [False, True])
def test_failing_upstream_is_502(env: Env, stream: bool) -> None:
    with pytest.raises(openai.APIStatusError) as exc:
        env.chat("bad-1", "你好", stream=stream)
    assert exc.value.status_code == 502 and exc.value.body["code"] == "upstream_error"


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_timeout_is_504(env: Env, stream: bool) -> None:
    t0 = time.monotonic()
    with pytest.raises(openai.APIStatusError) as exc:
        env.chat("plain", "/sleep 3 /say 太慢了", stream=stream)
    assert exc.value.status_code == 504 and exc.value.body["code"] == "upstream_timeout"
    assert time.monotonic() - t0 < 2.5


def test_upstream_4xx_is_passed_back(env: Env) -> None:
    with pytest.raises(openai.APIStatusError) as exc:
        env.chat("plain", "/status 422 出错")
    assert exc.value.status_code == 422 and exc.value.body["type"] == "demo_error"


def test_input_is_recorded_even_when_the_upstream_fails(env: Env) -> None:
    before = env.ledger.count_decisions()
    with pytest.raises(openai.APIStatusError):
        env.chat("down-1", "记录我")
    rows = env.ledger.decisions(limit=1)
    assert env.ledger.count_decisions() == before + 1 and rows[0].direction == "input"


def test_a_stream_whose_upstream_fails_is_closed_in_the_ledger(env: Env) -> None:
    before = {r.id for r in env.ledger.decisions(limit=None)}
    with pytest.raises(openai.APIStatusError):
        env.chat("down-1", "记录我", stream=True)
    new = [r for r in env.ledger.decisions(limit=None, newest_first=False) if r.id not in before]
    assert sorted((r.direction, r.kind) for r in new) == [
        ("input", "decision"), ("output", "decision"), ("output", "stream_open")]
    out = next(r for r in new if r.kind == "decision" and r.direction == "output")
    assert out.stream["sent_chars"] == 0 and "no upstream reachable" in out.stream["upstream_error"]
    assert all(r.decision_id != out.decision_id for r in env.ledger.open_streams())


def test_upstream_dying_mid_stream_ends_cleanly_with_a_record(env: Env) -> None:
    text = "上游在说话的时候突然断开了连接，后面的内容不会再来了。"
    with httpx.stream("POST", env.url + "/v1/chat/completions", headers={"authorization": f"Bearer {TEST_KEY}"},
                      json={"model": "plain", "stream": True,
                            "messages": [{"role": "user", "content": "/die-after 6 /say " + text}]}) as r:
        events = sse_events(r.read().decode())
    assert r.status_code == 200 and events[-1] == "[DONE]"
    got = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    assert got == "".join(tokenize(text)[:6])
    last = events[-2]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert "closed the stream" in last["hegui"]["error"]["message"] or "broke" in last["hegui"]["error"]["message"]
    row = env.wait_for_row(last["hegui"]["decisions"]["output"])
    assert row.stream["upstream_error"] and row.stream["sent_chars"] == len(got)
    assert row.stream["cut"] is False and row.stream["client_disconnected"] is False
    assert row.excerpt == got


def test_client_disconnect_stops_the_stream_and_is_recorded(env: Env) -> None:
    text = "这是一段很长的回答，" * 40
    received = ""
    with httpx.stream("POST", env.url + "/v1/chat/completions", headers={"authorization": f"Bearer {TEST_KEY}"},
                      json={"model": "slow", "stream": True,
                            "messages": [{"role": "user", "content": "/say " + text}]}) as r:
        out_id = r.headers["x-hegui-output-decision"]
        for line in r.iter_lines():
            if line.startswith("data: {"):
                import json

                received += json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
            if len(received) > 20:
                break
    row = env.wait_for_row(out_id)
    assert row.stream["client_disconnected"] is True
    assert len(received) <= row.stream["sent_chars"] < len(text)
    assert text.startswith(row.excerpt)


def test_long_streams_leave_progress_checkpoints(env: Env) -> None:
    text = "检查点记录了已经发送的字数。" * 5  # 70 characters, about 40 tokens at 40 ms
    chunks = list(env.chat("slow", "/say " + text, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
    out = chunks[-1].model_extra["hegui"]["decisions"]["output"]
    rows = env.ledger.decisions(decision_id=out, limit=None, newest_first=False)
    kinds = [r.kind for r in rows]
    assert kinds[0] == "stream_open" and kinds[-1] == "decision"
    progress = [r.stream["sent_chars"] for r in rows if r.kind == "stream_progress"]
    assert len(progress) >= 3 and progress == sorted(progress) and 0 < progress[-1] <= len(text)
    assert rows[-1].stream["sent_chars"] == len(text)


def test_a_cut_stream_stops_the_upstream_generating(env: Env) -> None:
    text = "开头几句正常的话。然后出现赌博两个字，" + "后面还有很长很长的内容。" * 30
    before = dict(env.slow_stats)
    t0 = time.monotonic()
    chunks = list(env.chat("slow", say64(text), stream=True))
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    assert time.monotonic() - t0 < 3  # the whole answer would take about 9 s at 40 ms a token
    deadline = time.monotonic() + 3
    while env.slow_stats["aborted"] == before["aborted"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert env.slow_stats["aborted"] >= before["aborted"] + 1
    assert env.slow_stats["completed"] == before["completed"]
    sent = env.slow_stats["tokens"] - before["tokens"]
    assert sent < len(tokenize(text)) // 4


def test_a_slow_reader_gets_a_long_answer_whole(env: Env) -> None:
    text = "".join(f"第{i}句话说完了。" for i in range(4000))  # about 36,000 characters
    received = []
    with httpx.stream("POST", env.url + "/v1/chat/completions", headers={"authorization": f"Bearer {TEST_KEY}"},
                      json={"model": "plain", "stream": True, "messages": [{"role": "user", "content": "/say " + text}]},
                      timeout=30) as r:
        for n, line in enumerate(r.iter_lines()):
            if n % 200 == 0:
                time.sleep(0.01)  # read slower than the upstream writes
            if line.startswith("data: {"):
                import json

                received.append(json.loads(line[6:])["choices"][0]["delta"].get("content") or "")
    assert "".join(received) == text


def test_stream_usage_is_passed_on(env: Env) -> None:
    chunks = list(env.chat("plain", "/say 用量统计", stream=True, stream_options={"include_usage": True}))
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == len(tokenize("用量统计"))


def test_models_lists_names_and_the_upstream_models_matching_globs(env: Env) -> None:
    ids = [m.id for m in env.client.models.list()]
    assert ids == ["plain", "slow", "hegui-demo"]  # globs are not names; the dead upstream cannot answer
