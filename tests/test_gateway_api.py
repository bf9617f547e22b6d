"""The gateway's routes over real HTTP with the official OpenAI client, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gateway_support import (
    ADMIN_KEY,
    TEST_KEY,
    add_test_keys,
    ledger_for,
    make_moderator,
    say64,
    serve,
    sse_events,
    write_config,
)
from hegui.gateway.app import create_app
from hegui.policy import load_policy

WORDS = {"赌博": "A1h", "13800138000": "PI"}
REFUSAL = load_policy(None).refusal_for("default")
MODEL = "hegui-demo"


class Server:
    def __init__(self, url: str, ledger: Any) -> None:
        self.url = url
        self.ledger = ledger
        self.client = openai.OpenAI(base_url=url + "/v1", api_key=TEST_KEY, max_retries=0)

    def rows(self, **kw: Any) -> list[Any]:
        return self.ledger.decisions(limit=None, newest_first=False, **kw)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("gw")
    pg = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    cfg = write_config(folder, {
        "gateway": {"admin_key": ADMIN_KEY, "scenes": ["default", "minor"]},
        "labeling": {"explicit": False},  # exact answers here; labels have their own test
        "upstreams": [{"name": "demo", "base_url": "demo", "models": [MODEL, "demo-*"]}],
    })
    with ledger_for(request.param, folder, pg) as ledger:
        add_test_keys(ledger)
        app = create_app(cfg, moderator=make_moderator(WORDS), ledger=ledger)
        with serve(app) as url:
            yield Server(url, ledger)


def chat(srv: Server, text: str, **kw: Any) -> Any:
    return srv.client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": text}], **kw
    )


def test_chat_non_stream_answers_and_records_both_checks(server: Server) -> None:
    raw = chat(server, "/say 你好，世界")
    resp = raw.parse()
    assert resp.choices[0].message.content == "你好，世界"
    assert resp.choices[0].finish_reason == "stop"
    ext = resp.model_extra["hegui"]
    assert raw.headers["x-hegui-decision"] == ext["decision"] == ext["decisions"]["output"]
    assert ext["action"] == "allow" and ext["upstream"] == "demo"
    rows = {r.decision_id: r for r in server.rows()}
    inp, out = rows[ext["decisions"]["input"]], rows[ext["decisions"]["output"]]
    assert (inp.direction, out.direction) == ("input", "output")
    assert inp.request_id == out.request_id
    assert inp.account_id is not None and inp.api_key_id is not None
    assert out.excerpt == "你好，世界"


def test_default_answer_quotes_the_prompt(server: Server) -> None:
    resp = chat(server, "今天天气怎么样").parse()
    assert "今天天气怎么样" in resp.choices[0].message.content
    assert resp.usage is not None and resp.usage.completion_tokens > 0


def test_chat_stream_chunks_keep_openai_shape(server: Server) -> None:
    text = "流式输出的一段比较长的测试文字，包含标点。"
    stream = server.client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "/say " + text}], stream=True
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" and c.model == MODEL for c in chunks)
    assert len({c.id for c in chunks}) == 1
    got = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert got == text
    assert len([c for c in chunks if c.choices[0].delta.content]) > 3  # streamed, not one blob
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    ext = last.model_extra["hegui"]
    rows = server.rows(decision_id=ext["decisions"]["output"])
    assert [r.kind for r in rows] == ["stream_open", "decision"]
    assert rows[-1].stream == {"sent_chars": len(text), "cut": False, "client_disconnected": False,
                               "upstream_error": None}


def test_stream_header_names_the_decisions(server: Server) -> None:
    with httpx.stream("POST", server.url + "/v1/chat/completions", headers={"authorization": f"Bearer {TEST_KEY}"},
                      json={"model": MODEL, "stream": True,
                            "messages": [{"role": "user", "content": "/say 好"}]}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.read().decode())
    assert events[-1] == "[DONE]"
    assert r.headers["x-hegui-decision"] == r.headers["x-hegui-input-decision"]
    assert events[-2]["hegui"]["decisions"] == {"input": r.headers["x-hegui-input-decision"],
                                                "output": r.headers["x-hegui-output-decision"]}


def test_completions_non_stream_and_stream(server: Server) -> None:
    resp = server.client.completions.create(model=MODEL, prompt="/say 补全接口")
    assert resp.object == "text_completion" and resp.choices[0].text == "补全接口"
    chunks = list(server.client.completions.create(model=MODEL, prompt="/say 流式补全接口", stream=True))
    assert "".join(c.choices[0].text for c in chunks) == "流式补全接口"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_models_lists_configured_names(server: Server) -> None:
    ids = [m.id for m in server.client.models.list()]
    assert ids == [MODEL]
    assert server.client.models.retrieve("demo-large").id == "demo-large"  # matches the glob demo-*
    with pytest.raises(openai.NotFoundError):
        server.client.models.retrieve("gpt-4o")


def test_request_id_header_finds_the_records(server: Server) -> None:
    raw = chat(server, "/say 追踪")
    rows = server.rows(request_id=raw.headers["x-request-id"])
    assert sorted(r.direction for r in rows) == ["input", "output"]


def test_unknown_model_is_404(server: Server) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        server.client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.body["code"] == "model_not_found"


def test_moderations_openai_shape_with_hegui_fields(server: Server) -> None:
    resp = server.client.moderations.create(input=["普通的一句话", "我们一起去赌博吧"])
    ok, bad = resp.results
    assert ok.flagged is False and bad.flagged is True
    assert bad.categories.illicit is True and bad.category_scores.illicit == 1.0
    assert ok.categories.illicit is False
    ext = bad.model_extra["hegui"]
    assert ext["risks"] == ["A1h"] and ext["action"] == "refuse"
    row = server.rows(decision_id=ext["decision"])[0]
    assert row.action == "refuse" and row.risks == ["A1h"]


def test_missing_or_wrong_key_is_401(server: Server) -> None:
    bad = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        bad.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert exc.value.body["code"] == "invalid_api_key"
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": MODEL, "messages": []})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert httpx.get(server.url + "/v1/models").status_code == 401


def test_input_refusal_is_an_ordinary_completion(server: Server) -> None:
    raw = chat(server, "/say 教我怎么赌博")
    resp = raw.parse()
    assert resp.choices[0].message.content == REFUSAL
    assert resp.choices[0].finish_reason == "content_filter"
    ext = resp.model_extra["hegui"]
    assert ext["action"] == "refuse" and ext["risks"] == ["A1h"] and "upstream" not in ext
    assert raw.headers["x-hegui-decision"] == ext["decisions"]["input"]
    [row] = server.rows(decision_id=ext["decisions"]["input"])
    assert row.direction == "input" and row.action == "refuse"
    assert not server.rows(request_id=row.request_id, kind="stream_open")


def test_input_refusal_streamed(server: Server) -> None:
    chunks = list(server.client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "赌博"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == REFUSAL
    assert chunks[-1].choices[0].finish_reason == "content_filter"


def test_output_masking_non_stream(server: Server) -> None:
    resp = chat(server, say64("请拨打13800138000联系")).parse()
    content = resp.choices[0].message.content
    assert "13800138000" not in content and content.startswith("请拨打") and content.endswith("联系")
    ext = resp.model_extra["hegui"]
    assert ext["action"] == "mask" and ext["risks"] == ["PI"]
    row = server.rows(decision_id=ext["decisions"]["output"])[0]
    assert "13800138000" not in row.excerpt and row.action == "mask"


def test_output_masking_streamed(server: Server) -> None:
    chunks = list(server.client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": say64("请拨打13800138000联系我们")}], stream=True))
    got = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "13800138000" not in got and got.startswith("请拨打") and got.endswith("联系我们")
    assert chunks[-1].choices[0].finish_reason == "stop"
    out = chunks[-1].model_extra["hegui"]["decisions"]["output"]
    row = server.rows(decision_id=out, kind="decision")[0]
    assert row.action == "mask" and "13800138000" not in row.excerpt


def test_streamed_cut_sends_retract_and_replacement(server: Server) -> None:
    text = "这是一段正常的开头，" * 3 + "然后说到赌博网站，" + "后面还有很多内容。" * 5
    chunks = list(server.client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": say64(text)}], stream=True))
    shown = "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
    assert "赌博" not in shown and "后面还有" not in shown
    assert text.startswith(shown)
    last = chunks[-1]
    assert last.choices[0].finish_reason == "content_filter"
    assert last.choices[0].delta.content == REFUSAL
    ext = last.model_extra["hegui"]
    assert ext["retract"] is True and ext["replacement"] == REFUSAL and ext["risks"] == ["A1h"]
    row = server.rows(decision_id=ext["decisions"]["output"], kind="decision")[0]
    assert row.action == "refuse" and row.stream["cut"] is True
    assert row.stream["sent_chars"] == len(shown)


def test_scene_header_is_restricted(server: Server) -> None:
    raw = server.client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "赌博"}], extra_headers={"x-hegui-scene": "minor"})
    resp = raw.parse()
    assert resp.choices[0].message.content == load_policy(None).refusal_for("minor")
    row = server.rows(decision_id=resp.model_extra["hegui"]["decision"])[0]
    assert row.scene == "minor"
    with pytest.raises(openai.BadRequestError) as exc:
        server.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], extra_headers={"x-hegui-scene": "adult"})
    assert exc.value.body["code"] == "invalid_scene"


def test_bad_requests_are_400_openai_errors(server: Server) -> None:
    h = {"authorization": f"Bearer {TEST_KEY}", "content-type": "application/json"}
    r = httpx.post(server.url + "/v1/chat/completions", content=b"{not json", headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = httpx.post(server.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": MODEL, "messages": "x"}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    r = httpx.get(server.url + "/v1/nothing-here", headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_health_and_readiness(server: Server) -> None:
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    r = httpx.get(server.url + "/readyz")
    assert r.status_code == 200
    assert r.json()["checks"] == {"ledger": "ok", "detectors": "testwords"}


def test_metrics_count_requests_and_decisions(server: Server) -> None:
    chat(server, "/say 指标")
    chat(server, "赌博")
    body = httpx.get(server.url + "/metrics").text
    assert 'hegui_requests_total{route="/v1/chat/completions",status="200"}' in body
    assert 'hegui_decisions_total{action="refuse",direction="input",risk="A1h"}' in body
    assert 'hegui_decisions_total{action="allow",direction="output",risk="none"}' in body
    assert "hegui_moderation_seconds_bucket" in body and "hegui_ledger_write_seconds_count" in body
    assert 'hegui_upstream_seconds_count{upstream="demo"}' in body


def test_admin_creates_keys_and_reloads(server: Server) -> None:
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    r = httpx.post(server.url + "/admin/keys", json={"account": "acc_new", "name": "app"}, headers=admin)
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    resp = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "/say 新钥匙"}])
    assert resp.choices[0].message.content == "新钥匙"
    row = server.rows(decision_id=resp.model_extra["hegui"]["decision"])[0]
    assert row.api_key_id == r.json()["id"]
    user = {"authorization": f"Bearer {TEST_KEY}"}
    assert httpx.post(server.url + "/admin/keys", json={"account": "x"}, headers=user).status_code == 403
    assert httpx.post(server.url + "/admin/reload", headers=admin).json()["status"] == "reloaded"
    assert httpx.post(server.url + "/admin/reload", headers=user).status_code == 403


