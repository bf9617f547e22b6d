"""The account gate in the request path, over real HTTP with the official ``openai`` client: standing on
every route, agreements, minor mode (curfew, daily minutes, rest reminder) on an injected clock, rate
limits with Retry-After, and public app keys. Storage on SQLite and PostgreSQL; counters through the
database and through Redis."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openai
import pytest

from gateway_support import ADMIN_KEY, ledger_for, make_moderator, serve, write_config
from hegui.accounts.store import AccountStore
from hegui.gateway.app import create_app
from hegui.ledger.events import events

MODEL = "hegui-demo"
SHANGHAI = timedelta(hours=8)


class Clock:
    """A settable UTC clock, shared by the gate and the test."""

    def __init__(self, local: str) -> None:
        self.now = datetime.fromisoformat(local).replace(tzinfo=UTC) - SHANGHAI

    def __call__(self) -> datetime:
        return self.now

    def set_local(self, local: str) -> None:
        self.now = datetime.fromisoformat(local).replace(tzinfo=UTC) - SHANGHAI

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


class Env:
    def __init__(self, url: str, ledger: Any, clock: Clock, app: Any) -> None:
        self.url = url
        self.ledger = ledger
        self.clock = clock
        self.app = app
        self.store = AccountStore(ledger)
        self._clients: dict[str, openai.OpenAI] = {}

    @property
    def gate(self) -> Any:
        return self.app.state.gateway.accounts

    def account(self, *, age_band: str | None = None, person: bool = True) -> tuple[str, str]:
        """A new account with an API key; a person (verified phone) unless ``person`` is false."""
        if person:
            phone = "139" + str(uuid.uuid4().int)[:8]
            acc, _ = self.store.register_person(phone, age_band=age_band)
        else:
            acc = self.ledger.create_account("svc")
        _, key = self.ledger.create_api_key(acc)
        return acc, key

    def client(self, key: str) -> openai.OpenAI:
        if key not in self._clients:
            self._clients[key] = openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0)
        return self._clients[key]

    def close(self) -> None:
        for c in self._clients.values():
            c.close()

    def chat(self, key: str, text: str = "你好", **kw: Any) -> Any:
        return self.client(key).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": text}], **kw)

    def changed(self, account: str | None = None) -> None:
        """What another replica would see within accounts.sync_seconds: here, at once."""
        self.gate.forget(account)


def _env(folder: Path, backend: str, pg: str | None, clock: Clock, accounts: dict[str, Any]) -> Iterator[Env]:
    cfg = write_config(folder, {
        "gateway": {"admin_key": ADMIN_KEY, "scenes": ["default", "minor"]},
        "labeling": {"explicit": False},
        "upstreams": [{"name": "demo", "base_url": "demo", "models": ["*"]}],
        "accounts": accounts,
    })
    with ledger_for(backend, folder, pg) as ledger:
        app = create_app(cfg, moderator=make_moderator({"赌博": "A1h"}), ledger=ledger, clock=clock)
        with serve(app) as url:
            env = Env(url, ledger, clock, app)
            try:
                yield env
            finally:
                env.close()


ACCOUNTS = {
    "sync_seconds": 0.2,
    "minors": {"daily_minutes_under_16": 3, "rest_reminder_minutes": 2, "session_gap_minutes": 2},
    "rate_limits": {"good": {"requests_per_minute": 1000}, "warned": {"requests_per_minute": 1000},
                    "restricted": {"requests_per_minute": 2}},
}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    pg = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    yield from _env(tmp_path_factory.mktemp("gate"), request.param, pg, Clock("2026-12-03T15:00:00"), ACCOUNTS)


@pytest.fixture(autouse=True)
def _afternoon(env: Env) -> None:
    env.clock.set_local("2026-12-03T15:00:00")


def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    return dict(body["error"])


# -- standing ------------------------------------------------------------------------------------


def every_route(env: Env, key: str) -> dict[str, httpx.Response]:
    h = {"Authorization": f"Bearer {key}"}
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "你好"}]}
    with httpx.Client(base_url=env.url, headers=h, timeout=10) as c:
        return {
            "chat": c.post("/v1/chat/completions", json=chat),
            "chat stream": c.post("/v1/chat/completions", json={**chat, "stream": True}),
            "completions": c.post("/v1/completions", json={"model": MODEL, "prompt": "你好"}),
            "images": c.post("/v1/images/generations", json={"model": MODEL, "prompt": "一只猫"}),
            "models": c.get("/v1/models"),
            "model": c.get(f"/v1/models/{MODEL}"),
            "moderations": c.post("/v1/moderations", json={"input": "你好"}),
        }


def test_a_suspended_account_is_refused_on_every_route_and_told_until_when(env: Env) -> None:
    acc, key = env.account()
    assert {r.status_code for r in every_route(env, key).values()} == {200}
    until = env.clock() + timedelta(days=3)
    env.store.set_standing(acc, "suspended", actor="staff_1", reason="多次发布赌博广告", until=until)
    # no forget(): the gateway notices the ledger's accounts_version within accounts.sync_seconds
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if httpx.get(env.url + "/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 403:
            break
        time.sleep(0.05)
    for route, resp in every_route(env, key).items():
        assert resp.status_code == 403, route
        err = resp.json()["error"]
        assert err["code"] == "account_suspended", route
        assert err["until"] == until.astimezone(ZoneInfo("Asia/Shanghai")).isoformat()
        assert "/v1/hegui/appeals" in err["message"] and "暂停服务至" in err["message"]
    with pytest.raises(openai.PermissionDeniedError):
        env.chat(key)
    # the suspension runs out: served again, one step back up (restricted, with its lower limits)
    env.clock.advance(days=3, seconds=1)
    env.changed(acc)
    assert env.chat(key).choices[0].message.content
    assert env.store.profile(acc).standing_at(env.clock()) == "restricted"


def test_a_terminated_account_is_refused(env: Env) -> None:
    acc, key = env.account()
    env.store.set_standing(acc, "terminated", actor="staff_1", reason="违法")
    env.changed(acc)
    with pytest.raises(openai.PermissionDeniedError) as info:
        env.chat(key)
    assert error_of(info.value)["code"] == "account_terminated"


def test_a_warned_account_is_served_with_a_warning_notice(env: Env) -> None:
    acc, key = env.account()
    env.store.set_standing(acc, "warned", actor="system", reason="5 次违规输入")
    env.changed(acc)
    resp = env.chat(key)
    notices = resp.model_extra["hegui"]["notices"]  # type: ignore[index]
    assert notices[0]["type"] == "warning" and "5 次违规输入" in notices[0]["message"]
    with env.client(key).chat.completions.with_streaming_response.create(
            model=MODEL, messages=[{"role": "user", "content": "你好"}], stream=True) as raw:
        last = list(raw.parse())[-1]
    assert last.model_extra["hegui"]["notices"][0]["type"] == "warning"  # type: ignore[index]


# -- agreements ------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def own_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    """An environment of the test's own (agreements published here would bind every later person)."""
    pg = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    yield from _env(tmp_path, request.param, pg, Clock("2026-12-03T15:00:00"), ACCOUNTS)


def test_a_new_agreement_version_is_required_before_service(own_env: Env) -> None:
    env = own_env
    acc, key = env.account()
    svc = env.account(person=False)[1]
    tag = uuid.uuid4().hex[:6]
    env.store.publish_agreement("service", f"v1-{tag}", "2026-12-01", "服务协议 v1", actor="staff_1")
    env.changed()
    with pytest.raises(openai.PermissionDeniedError) as info:
        env.chat(key)
    err = error_of(info.value)
    assert err["code"] == "agreement_required" and err["required"] == {"service": f"v1-{tag}"}
    assert err["accept_at"] == "/v1/hegui/agreements/accept"
    assert env.chat(svc).choices  # an operator's service account is not a person: no agreement to accept
    env.store.accept(acc, "service", f"v1-{tag}")
    env.changed(acc)
    assert env.chat(key).choices
    # a version effective later does not bite yet; on its day it does
    env.store.publish_agreement("service", f"v2-{tag}", "2026-12-10", "服务协议 v2", actor="staff_1")
    env.changed()
    assert env.chat(key).choices
    env.clock.set_local("2026-12-10T09:00:00")
    with pytest.raises(openai.PermissionDeniedError):
        env.chat(key)
    env.store.accept(acc, "service", f"v2-{tag}")
    env.changed(acc)
    assert env.chat(key).choices
    kinds = [e.kind for e in events(env.ledger, account_id=acc)]
    assert kinds.count("agreement.accepted") == 2
    assert env.ledger.verify().ok


# -- minor mode ------------------------------------------------------------------------------------


def test_a_minor_is_refused_in_the_nightly_pause(env: Env) -> None:
    acc, key = env.account(age_band="12-16")
    env.clock.set_local("2026-12-03T22:30:00")
    with pytest.raises(openai.PermissionDeniedError) as info:
        env.chat(key)
    err = error_of(info.value)
    assert err["code"] == "minor_curfew" and err["resumes_at"] == "2026-12-04T06:00:00+08:00"
    assert "22:00–06:00" in err["message"]
    env.clock.set_local("2026-12-04T05:59:00")
    with pytest.raises(openai.PermissionDeniedError):
        env.chat(key)
    env.clock.set_local("2026-12-04T06:00:00")
    resp = env.chat(key)
    row = env.ledger.decisions(limit=1, account_id=acc)[0]
    assert resp.choices and row.scene == "minor"  # served, in the stricter scene
    adult = env.account(age_band="adult")[1]
    env.clock.set_local("2026-12-03T23:00:00")
    assert env.chat(adult).choices


def test_a_minor_is_refused_after_the_daily_limit_counted_in_active_minutes(env: Env) -> None:
    _, key = env.account(age_band="8-12")  # limit 3 minutes (config)
    env.clock.set_local("2026-12-03T15:00:10")
    for minute in range(3):
        env.clock.set_local(f"2026-12-03T15:0{minute}:10")
        env.chat(key)
        env.clock.advance(seconds=30)
        env.chat(key)  # a second request in the same minute adds no usage
    env.clock.set_local("2026-12-03T15:02:50")
    assert env.chat(key).choices  # still inside a minute already counted
    env.clock.set_local("2026-12-03T15:03:00")
    with pytest.raises(openai.PermissionDeniedError) as info:
        env.chat(key)
    err = error_of(info.value)
    assert err["code"] == "minor_time_limit" and err["limit_minutes"] == 3
    assert err["resumes_at"] == "2026-12-04T00:00:00+08:00"
    env.clock.set_local("2026-12-04T08:00:00")  # a new day
    assert env.chat(key).choices


def test_a_minor_gets_a_rest_reminder_after_continuous_use(env: Env) -> None:
    _, key = env.account(age_band="16-18")  # reminder after 2 minutes (config), gap 2
    env.clock.set_local("2026-12-03T16:00:05")
    first = env.chat(key)
    assert "notices" not in first.model_extra["hegui"]  # type: ignore[operator]
    env.clock.set_local("2026-12-03T16:01:05")
    second = env.chat(key)
    notices = second.model_extra["hegui"]["notices"]  # type: ignore[index]
    assert notices[0]["type"] == "rest_reminder"
    env.clock.set_local("2026-12-03T16:01:40")
    assert "notices" not in env.chat(key).model_extra["hegui"]  # type: ignore[operator]  # once per block


def test_continuous_run_bridges_short_pauses_only() -> None:
    from hegui.accounts.gate import continuous_run

    assert continuous_run({10, 11, 12}, 12, 2) == 3
    assert continuous_run({10, 12}, 12, 2) == 3  # a one-minute pause is bridged
    assert continuous_run({9, 12}, 12, 2) == 1  # a two-minute pause ends the session
    assert continuous_run({12}, 12, 5) == 1


# -- rate limits -----------------------------------------------------------------------------------


def test_a_restricted_account_is_rate_limited_with_retry_after(env: Env) -> None:
    acc, key = env.account()
    env.store.set_standing(acc, "restricted", actor="staff_1", reason="spam")
    env.changed(acc)
    env.clock.set_local("2026-12-03T15:10:15")
    env.chat(key)
    env.chat(key)
    with pytest.raises(openai.RateLimitError) as info:
        env.chat(key)
    assert info.value.response.headers["retry-after"] == "45"
    assert error_of(info.value)["code"] == "rate_limited"
    env.clock.set_local("2026-12-03T15:11:00")
    assert env.chat(key).choices  # a new minute


def test_an_app_key_marked_public_needs_a_verified_user(env: Env) -> None:
    app_acc = env.ledger.create_account("app")
    key_id, key = env.ledger.create_api_key(app_acc)
    env.store.set_key_public(key_id, True, actor="staff_1")
    env.app.state.gateway.auth.forget()
    with pytest.raises(openai.PermissionDeniedError) as info:
        env.chat(key)
    assert error_of(info.value)["code"] == "user_required"
    with pytest.raises(openai.PermissionDeniedError) as info:
        env.chat(key, user="u-123")
    assert error_of(info.value)["code"] == "user_unverified"
    person, _ = env.store.register_person("13" + str(uuid.uuid4().int)[:9], app_id=app_acc)
    env.store.link_app_user(app_acc, "u-123", person, actor=app_acc)
    env.changed()
    resp = env.chat(key, user="u-123")
    assert resp.choices
    row = env.ledger.decisions(limit=1, account_id=person)[0]  # recorded under the person, not the app
    assert row.api_key_id == key_id
    # the header works as well as the field
    r = httpx.post(env.url + "/v1/chat/completions", timeout=10,
                   headers={"Authorization": f"Bearer {key}", "x-hegui-user": "u-123"},
                   json={"model": MODEL, "messages": [{"role": "user", "content": "你好"}]})
    assert r.status_code == 200
    # the person's suspension binds them through the app
    env.store.set_standing(person, "suspended", actor="staff_1", reason="x", until=env.clock() + timedelta(days=1))
    env.changed(person)
    with pytest.raises(openai.PermissionDeniedError):
        env.chat(key, user="u-123")


# -- counters across replicas ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["database", "redis"])
def test_two_replicas_share_rate_limits_and_usage_minutes(env: Env, backend: str) -> None:
    """Two independent state objects (as two workers or replicas have) see each other's counts."""
    import asyncio

    from hegui.accounts.state import DatabaseState, RedisState

    if backend == "redis":
        url = os.environ.get("HEGUI_TEST_REDIS_URL")
        if not url:
            pytest.skip("HEGUI_TEST_REDIS_URL is not set; Redis tests skipped")
        a: Any = RedisState(url)
        b: Any = RedisState(url)
    else:
        a, b = DatabaseState(env.ledger, 0.05), DatabaseState(env.ledger, 0.05)
    key = "rpm:test:" + uuid.uuid4().hex

    async def run() -> tuple[int, int, frozenset[int], frozenset[int]]:
        for _ in range(3):
            await a.add(key, 1, 60)
        await b.add(key, 2, 60)
        await a.mark_minutes("acc_x" + key, "2026-12-03", [600, 601])
        await b.mark_minutes("acc_x" + key, "2026-12-03", [601, 602])
        if backend == "database":
            a.sync()
            b.sync()
            a.sync()
        total_a, total_b = await a.add(key, 0, 60), await b.add(key, 0, 60)
        ma, mb = await a.minutes("acc_x" + key, "2026-12-03"), await b.minutes("acc_x" + key, "2026-12-03")
        await a.aclose()
        await b.aclose()
        return total_a, total_b, ma, mb

    total_a, total_b, ma, mb = asyncio.run(run())
    assert total_a == total_b == 5
    assert ma == mb == frozenset({600, 601, 602})


# -- training opt-out ----------------------------------------------------------------------------------


def test_a_training_opt_out_is_on_every_record_and_kept_out_of_training_exports(env: Env) -> None:
    acc, key = env.account()
    env.chat(key, "训练前")
    env.store.set_training_opt_out(acc, True)
    env.changed(acc)
    env.chat(key, "退出训练以后")
    with env.client(key).chat.completions.with_streaming_response.create(
            model=MODEL, messages=[{"role": "user", "content": "/say 流式回答"}], stream=True) as raw:
        list(raw.parse())
    rows = env.ledger.decisions(limit=None, account_id=acc, newest_first=False)
    before, after = rows[:2], rows[2:]
    assert [r.training_opt_out for r in before] == [False, False]
    assert after and all(r.training_opt_out for r in after)  # inputs, outputs and the stream's rows
    assert {r.kind for r in after} >= {"decision", "stream_open"}
    kept = env.ledger.decisions(limit=None, account_id=acc, for_training=True)
    assert {r.decision_id for r in kept} == {r.decision_id for r in before}
    assert env.ledger.verify().ok  # the flag is hashed with the row


def test_rows_from_before_the_flags_column_still_verify(tmp_path: Path) -> None:
    """A ledger with decisions written at revision 0002, upgraded to 0003: the old rows' hashes hold."""
    import sqlalchemy as sa

    from hegui.ledger import schema
    from hegui.ledger.records import DecisionRecord
    from hegui.ledger.store import Ledger

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(schema.alembic_config(conn), "0002")
    engine.dispose()
    # write rows the way 0002 did: no flags column, the hash over the 16 old fields
    from hegui.ledger.chain import DECISION_FIELDS, GENESIS, row_hash

    old_fields = tuple(f for f in DECISION_FIELDS if f != "flags")
    prev = GENESIS
    with sa.create_engine(url).begin() as conn:
        for seq in (1, 2):
            values = {"seq": seq, "kind": "decision", "decision_id": f"d{seq}", "request_id": "r",
                      "account_id": None, "api_key_id": None, "model": None, "direction": "input",
                      "scene": "default", "action": "allow", "risks": [], "findings": [], "detector_ms": {},
                      "excerpt": "", "stream": None, "created_at": "2026-11-30T00:00:00.000000+00:00"}
            h = row_hash(prev, values, old_fields)
            conn.execute(sa.text(
                "INSERT INTO decisions (seq, kind, decision_id, request_id, direction, scene, action, risks, "
                "findings, detector_ms, excerpt, created_at, prev_hash, row_hash) VALUES (:seq, 'decision', "
                ":d, 'r', 'input', 'default', 'allow', '[]', '[]', '{}', '', '2026-11-30 00:00:00.000000', :p, :h)"),
                {"seq": seq, "d": f"d{seq}", "p": prev, "h": h})
            prev = h
        conn.execute(sa.text("UPDATE chain_heads SET seq = 2, row_hash = :h WHERE chain = 'decisions'"), {"h": prev})
    with Ledger.open(url) as ledger:  # migrates to head (0003)
        assert ledger.verify().ok
        ledger.record_decision(DecisionRecord("d3", "r", None, None, None, "input", "default", "allow", [], [], {},
                                              "", flags={"training_opt_out": True}))
        report = ledger.verify()
        assert report.ok and report.rows_checked == 3
