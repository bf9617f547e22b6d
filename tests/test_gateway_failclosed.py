"""Fail closed: when moderation or the ledger fails, the gateway refuses (unless the scene fails open)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gateway_support import TEST_KEY, add_test_keys, ledger_for, make_moderator, say64, serve, write_config
from hegui.gateway.app import create_app
from hegui.ledger.errors import LedgerError
from hegui.moderation import Moderator, StreamModerator, StreamStep, Verdict
from hegui.policy import Direction, load_policy


class FlakyModerator(Moderator):
    """The real moderator, made to raise on demand."""

    fail_check = False
    fail_stream_after: int | None = None

    async def acheck(self, text: str, direction: Direction = "input", scene: str = "default",
                     context: str | None = None) -> Verdict:
        if self.fail_check:
            raise RuntimeError("moderation backend exploded")
        return await super().acheck(text, direction, scene, context=context)

    def stream(self, direction: Direction = "output", scene: str = "default",
               context: str | None = None) -> StreamModerator:
        sm = super().stream(direction, scene, context=context)
        if self.fail_stream_after is None:
            return sm
        limit = self.fail_stream_after
        real = sm.afeed
        calls = {"n": 0}

        async def afeed(chunk: str) -> StreamStep:
            calls["n"] += 1
            if calls["n"] > limit:
                raise RuntimeError("stream moderation exploded")
            return await real(chunk)

        sm.afeed = afeed  # type: ignore[method-assign]
        return sm


class FlakyLedger:
    """The real ledger, whose decision writes fail on demand."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.fail = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def arecord_decision(self, rec: Any) -> int:
        if self.fail:
            raise LedgerError("database is locked")
        result: int = await self.inner.arecord_decision(rec)
        return result


class Env:
    def __init__(self, url: str, moderator: FlakyModerator, ledger: FlakyLedger) -> None:
        self.url = url
        self.moderator = moderator
        self.ledger = ledger
        self.client = openai.OpenAI(base_url=url + "/v1", api_key=TEST_KEY, max_retries=0)

    def chat(self, text: str, scene: str = "default", **kw: Any) -> Any:
        return self.client.chat.completions.create(
            model="hegui-demo", messages=[{"role": "user", "content": text}],
            extra_headers={"x-hegui-scene": scene}, **kw)

    def metric(self, name: str) -> float:
        for line in httpx.get(self.url + "/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return 0.0


@pytest.fixture()
def env(tmp_path: Any) -> Iterator[Env]:
    cfg = write_config(tmp_path, {"gateway": {"scenes": ["default", "minor"], "fail_open_scenes": ["minor"]},
                                  "labeling": {"explicit": False}})
    base = make_moderator({"赌博": "A1h"})
    moderator = FlakyModerator(base.detectors, base.policy)
    with ledger_for("sqlite", tmp_path, None) as inner:
        add_test_keys(inner)
        ledger = FlakyLedger(inner)
        with serve(create_app(cfg, moderator=moderator, ledger=ledger)) as url:
            yield Env(url, moderator, ledger)


@pytest.mark.parametrize("stream", [False, True])
def test_moderation_error_refuses_with_503(env: Env, stream: bool) -> None:
    env.moderator.fail_check = True
    with pytest.raises(openai.APIStatusError) as exc:
        env.chat("/say 你好", stream=stream)
    assert exc.value.status_code == 503 and exc.value.body["code"] == "moderation_unavailable"
    assert env.metric('hegui_fail_closed_total{reason="moderation"}') == 1


def test_moderation_error_in_a_fail_open_scene_passes(env: Env) -> None:
    env.moderator.fail_check = True
    resp = env.chat("/say 放行", scene="minor")
    assert resp.choices[0].message.content == "放行"
    assert env.metric('hegui_fail_open_total{reason="moderation"}') == 2  # input and output
    # the text went out unchecked: only the record can say so (the console counts these)
    rows = [r for r in env.ledger.inner.decisions(limit=10) if r.kind == "decision"]
    assert rows and all((r.flags or {}).get("failed_detectors") == ["moderation"] for r in rows)


def test_ledger_error_refuses_with_503(env: Env) -> None:
    env.ledger.fail = True
    with pytest.raises(openai.APIStatusError) as exc:
        env.chat("/say 不该看到这句")
    assert exc.value.status_code == 503 and exc.value.body["code"] == "ledger_unavailable"
    with pytest.raises(openai.APIStatusError) as exc:
        env.chat("/say 不该看到这句", stream=True)
    assert exc.value.status_code == 503
    assert env.metric('hegui_fail_closed_total{reason="ledger"}') >= 2


def test_ledger_error_in_a_fail_open_scene_passes(env: Env) -> None:
    env.ledger.fail = True
    assert env.chat("/say 照常回答", scene="minor").choices[0].message.content == "照常回答"


def test_stream_moderation_error_mid_stream_stops_the_stream(env: Env) -> None:
    env.moderator.fail_stream_after = 3
    text = "前面几个字可以发出去，后面的内容在审核失败之后一个字也不能发出去。"
    chunks = list(env.chat(say64(text), stream=True))
    got = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert len(got) < 10 and text.startswith(got)
    last = chunks[-1]
    assert last.choices[0].finish_reason == "content_filter"
    assert last.model_extra["hegui"]["error"]["code"] == "moderation_unavailable"
    assert env.metric('hegui_fail_closed_total{reason="moderation"}') == 1


def test_a_failing_detector_refuses_by_policy(env: Env) -> None:
    def broken(text: Any) -> list[Any]:
        raise RuntimeError("model file missing")

    det = env.moderator.detectors[0]
    object.__setattr__(det, "detect", broken)
    resp = env.chat("/say 你好")
    assert resp.choices[0].message.content == load_policy(None).error_refusal
    assert resp.choices[0].finish_reason == "content_filter"
