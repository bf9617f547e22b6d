"""Accounts and decisions in the console (TestClient against create_app, staff logged in through the
login page), on SQLite and PostgreSQL: account search, the account page (masked phone only), ladder
actions with a reason on the chain, and the decision search's filters, keyset paging and record page."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from console_support import console_app, csrf, login
from gateway_support import ledger_for
from hegui.accounts.store import AccountStore
from hegui.ledger.records import DecisionRecord

PHONE = "13912345678"


class Env:
    def __init__(self, app: Any, ledger: Any) -> None:
        self.app = app
        self.ledger = ledger
        gw = app.state.gateway
        self.accounts = gw.accounts.store if gw.accounts is not None else AccountStore(ledger)

    def client(self) -> TestClient:
        return TestClient(self.app, follow_redirects=False)

    def account(self) -> str:
        account_id = "acc_" + uuid.uuid4().hex[:10]
        self.ledger.ensure_account(account_id, name="console accounts test")
        return account_id

    def decision(self, account_id: str | None, *, action: str = "refuse", risks: tuple[str, ...] = ("A1h",),
                 direction: str = "output", excerpt: str = "") -> str:
        did = "dec_" + uuid.uuid4().hex[:16]
        self.ledger.record_decision(DecisionRecord(
            decision_id=did, request_id=uuid.uuid4().hex, account_id=account_id, api_key_id="key_t", model="m",
            direction=direction, scene="default", action=action, risks=list(risks),
            findings=[{"risk": r, "detector": "testwords", "start": 0, "end": 2, "score": 1.0} for r in risks],
            detector_ms={"testwords": 0.25}, excerpt=excerpt))
        return did


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    pg = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    with ledger_for(request.param, tmp_path, pg) as ledger:
        app = console_app(tmp_path, ledger=ledger)
        with TestClient(app):
            yield Env(app, ledger)


def decision_ids(html: str) -> list[str]:
    return re.findall(r'<a href="/console/decisions/(dec_[0-9a-f]+)">', html)


def test_account_search_and_page_show_the_masked_phone_only(env: Env) -> None:
    person, _ = env.accounts.register_person(PHONE)
    other = env.account()
    env.ledger.ensure_api_key(other, "sk-console-test-key-123456", name="ops key")
    client = env.client()
    login(client, "viewer")
    by_phone = client.get("/console/accounts", params={"phone": "5678"}).text
    assert person in by_phone and other not in by_phone and "139****5678" in by_phone
    assert PHONE not in by_phone
    by_id = client.get("/console/accounts", params={"q": other[:8]}).text
    assert other in by_id
    exact = client.get("/console/accounts", params={"q": other}).text
    assert other in exact and person not in exact
    bad = client.get("/console/accounts", params={"phone": "13912345678"})
    assert bad.status_code == 400 and "phone: the last 1 to 4 digits" in bad.text
    page = client.get(f"/console/accounts/{person}").text
    assert "139****5678" in page and PHONE not in page and "account.registered" in page
    keys = client.get(f"/console/accounts/{other}").text
    assert "ops key" in keys and "sk-console-test-key-123456" not in keys
    assert f"/console/accounts/{other}/actions" not in keys  # a viewer gets no action form
    assert client.get("/console/accounts/acc_nobody").status_code == 404


def test_a_ladder_action_from_the_account_page(env: Env) -> None:
    acc = env.account()
    did = env.decision(acc)
    client = env.client()
    me = login(client, "reviewer")
    page = f"/console/accounts/{acc}"
    assert did in client.get(page).text  # recent decisions
    r = client.post(f"{page}/actions", data={"csrf_token": csrf(client, page), "action": "suspend", "days": "2",
                                             "reason": "多次违规", "evidence": did})
    assert r.status_code == 303, r.text[:300]
    shown = client.get(r.headers["location"]).text
    assert "Done: suspend" in shown and 'id="standing" class="bad">suspended' in shown
    assert env.accounts.profile(acc).standing == "suspended"
    r = client.post(f"{page}/actions", data={"csrf_token": csrf(client, page), "action": "warn", "reason": " "})
    assert r.status_code == 400 and "reason: a reason is required" in r.text
    r = client.post(f"{page}/actions", data={"csrf_token": csrf(client, page), "action": "warn", "reason": "x",
                                             "evidence": "dec_missing"})
    assert r.status_code == 409 and "no decision dec_missing" in r.text
    r = client.post(f"{page}/actions", data={"csrf_token": csrf(client, page), "action": "restore",
                                             "reason": "申诉成立"})
    assert r.status_code == 303 and env.accounts.profile(acc).standing == "good"
    from hegui.ledger.events import events

    kinds = [(e.kind, e.actor) for e in events(env.ledger, account_id=acc, kind_prefix="ladder.")]
    assert kinds == [("ladder.suspended", me.actor), ("ladder.restored", me.actor)]
    assert env.ledger.verify().ok
    viewer = env.client()
    login(viewer, "viewer")
    r = viewer.post(f"{page}/actions", data={"csrf_token": csrf(viewer, page), "action": "warn", "reason": "x"})
    assert r.status_code == 403


def test_decision_search_filters_page_and_record(env: Env) -> None:
    acc = env.account()
    other = env.account()
    refused = env.decision(acc, risks=("A1h", "B2"), excerpt="含有【已屏蔽】的 <b>内容</b>")
    allowed = env.decision(acc, action="allow", risks=(), direction="input")
    elsewhere = env.decision(other, risks=("C3",))
    client = env.client()
    login(client, "viewer")
    get = lambda **p: client.get("/console/decisions", params=p)  # noqa: E731
    assert decision_ids(get().text)[:3] == [elsewhere, allowed, refused]  # newest first
    assert decision_ids(get(id=refused).text) == [refused]
    assert set(decision_ids(get(account=acc).text)) == {refused, allowed}
    assert decision_ids(get(risk="B2").text) == [refused]
    assert decision_ids(get(risk="B").text) == []  # whole codes, not prefixes
    assert decision_ids(get(action="allow").text) == [allowed]
    assert decision_ids(get(direction="input").text) == [allowed]
    assert decision_ids(get(since="2000-01-01", until="2000-01-02").text) == []
    assert len(decision_ids(get(since="2000-01-01").text)) == 3
    bad = get(action="explode", since="yesterday")
    assert bad.status_code == 400 and "action: &#39;explode&#39; is not one of" in bad.text
    assert "since: &#39;yesterday&#39; is not a date" in bad.text

    record = client.get(f"/console/decisions/{refused}").text
    assert "含有【已屏蔽】的 &lt;b&gt;内容&lt;/b&gt;" in record and "<b>内容</b>" not in record
    assert f'<a href="/console/accounts/{acc}">' in record and "testwords" in record and "0.2" in record
    assert client.get("/console/decisions/dec_nope").status_code == 404


def test_decision_pages_are_keyset_pages_of_fifty(env: Env) -> None:
    acc = env.account()
    made = [env.decision(acc, action="mask") for _ in range(53)]
    client = env.client()
    login(client, "viewer")
    first = client.get("/console/decisions", params={"account": acc}).text
    assert decision_ids(first) == list(reversed(made))[:50]
    older = re.search(r'<a href="(/console/decisions\?[^"]+)">更早 Older', first)
    assert older is not None and "account=" in older.group(1)
    second = client.get(older.group(1).replace("&amp;", "&")).text
    assert decision_ids(second) == list(reversed(made))[50:]
    assert "更早 Older" not in second
