"""The staff side of cases over HTTP (``/admin/cases…``), on SQLite and PostgreSQL: a case's whole
life with its events, the errors (401/403, 400 naming the field, 404, 409), every action (enforce,
lexicon and allow entries, a signed takedown webhook, an incident), fulfilment of PI requests and the
case gauges on ``/metrics``."""

from __future__ import annotations

import io
import json
import re
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway_support import (
    ADMIN_KEY,
    TEST_KEY,
    add_test_keys,
    ledger_for,
    make_moderator,
    serve,
    write_config,
)
from hegui.accounts.sms import verify_signature
from hegui.accounts.store import AccountStore
from hegui.cases.api import case_admin
from hegui.cases.store import CaseStore
from hegui.gateway.app import create_app
from hegui.ledger.events import events
from hegui.ledger.records import DecisionRecord
from hegui.ledger.store import Ledger

SECRET_ENV = "HEGUI_TEST_CASES_TAKEDOWN_SECRET"
SECRET = "takedown-test-secret"
WEBHOOK = "http://content.example/takedown"


class Webhook:
    """The provider's takedown receiver: checks the signature like a real one, answers ``status``."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = request.content
        assert verify_signature(SECRET, body, request.headers["x-hegui-signature"])
        payload = json.loads(body)
        assert request.headers["x-hegui-timestamp"] == str(payload["timestamp"])
        self.received.append(payload)
        return httpx.Response(self.status, json={"ok": self.status < 300})


class Admin:
    def __init__(self, url: str, ledger: Ledger, app: Any, webhook: Webhook) -> None:
        self.url = url
        self.ledger = ledger
        self.app = app
        self.webhook = webhook
        self.cases = CaseStore(ledger, app.state.gateway.cfg.cases)
        self.accounts = AccountStore(ledger)

    def get(self, path: str, key: str | None = ADMIN_KEY, **kw: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.get(self.url + path, headers=headers, timeout=30, **kw)

    def post(self, path: str, body: Any, key: str | None = ADMIN_KEY) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.post(self.url + path, json=body, headers=headers, timeout=30)

    def open(self, **body: Any) -> str:
        body = {"kind": "complaint", "category": "illegal", "description": "一条赌博广告", **body}
        r = self.post("/admin/cases", body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def act(self, case_id: str, **body: Any) -> httpx.Response:
        return self.post(f"/admin/cases/{case_id}/actions", body)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def admin(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    folder = tmp_path_factory.mktemp("cases_api")
    pg = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    config = write_config(folder, {
        "gateway": {"admin_key": ADMIN_KEY},
        "labeling": {"explicit": False},
        "upstreams": [{"name": "demo", "base_url": "demo", "models": ["*"]}],
        "cases": {"takedown": {"webhook_url": WEBHOOK, "secret_env": SECRET_ENV}},
    })
    mp = pytest.MonkeyPatch()
    mp.setenv(SECRET_ENV, SECRET)
    with ledger_for(request.param, folder, pg) as led:
        add_test_keys(led)
        app = create_app(config, moderator=make_moderator({"赌博": "A1h"}), ledger=led)
        webhook = Webhook()
        case_admin(app.state.gateway).takedown_transport = httpx.MockTransport(webhook)
        app.state.gateway.case_gauges.max_age = 0  # every scrape counts afresh
        with serve(app) as url:
            yield Admin(url, led, app, webhook)
    mp.undo()


def account(admin: Admin) -> str:
    account_id = "acc_" + uuid.uuid4().hex[:10]
    admin.ledger.ensure_account(account_id, name="cases api test")
    return account_id


def decision(admin: Admin, account_id: str) -> str:
    did = "dec_" + uuid.uuid4().hex[:16]
    admin.ledger.record_decision(DecisionRecord(
        decision_id=did, request_id=uuid.uuid4().hex, account_id=account_id, api_key_id="key_t", model="m",
        direction="output", scene="default", action="refuse", risks=["A1h"], findings=[], detector_ms={},
        excerpt=""))
    return did


# -- a case's life ---------------------------------------------------------------------------------

def test_a_case_through_its_whole_life_is_evidence_on_the_chain(admin: Admin) -> None:
    acc = account(admin)
    r = admin.post("/admin/cases", {"kind": "report", "category": "illegal", "description": "赌博网站链接",
                                    "reference": "https://example.com/post/1", "contact": "13800138000",
                                    "account_id": acc})
    assert r.status_code == 201
    opened = r.json()
    assert re.fullmatch(r"HG(-[0-9A-HJKMNP-TV-Z]{4}){5}", opened["code"])
    case_id = opened["id"]
    assert admin.cases.by_code(opened["code"]).id == case_id  # type: ignore[union-attr]

    listed = admin.get("/admin/cases", params={"account_id": acc}).json()["cases"]
    assert [c["id"] for c in listed] == [case_id]
    assert listed[0]["status"] == "open" and listed[0]["overdue"] is False and listed[0]["source"] == "api"

    r = admin.post(f"/admin/cases/{case_id}/assign", {"assignee": "张三"})
    assert r.status_code == 200 and r.json()["status"] == "in_progress" and r.json()["assignee"] == "张三"
    r = admin.post(f"/admin/cases/{case_id}/notes", {"text": "已核实，链接仍可访问"})
    assert r.json()["notes"][0]["text"] == "已核实，链接仍可访问" and r.json()["notes"][0]["author"] == "admin"
    r = admin.post(f"/admin/cases/{case_id}/reply", {"text": "已删除相关内容。"})
    assert r.json()["status"] == "replied" and r.json()["reply"] == "已删除相关内容。"
    assert admin.post(f"/admin/cases/{case_id}/close", {}).json()["status"] == "closed"
    r = admin.post(f"/admin/cases/{case_id}/reopen", {"reason": "the person wrote back"})
    assert r.json()["status"] == "in_progress" and r.json()["closed_at"] is None
    assert admin.post(f"/admin/cases/{case_id}/close", {"reason": "done"}).json()["status"] == "closed"

    detail = admin.get(f"/admin/cases/{case_id}").json()
    kinds = [e["kind"] for e in detail["events"]]
    assert kinds == ["case.opened", "case.assigned", "case.noted", "case.replied", "case.closed",
                     "case.reopened", "case.closed"]
    assert all(e["actor"] == "admin" and e["data"]["case"] == case_id for e in detail["events"])
    # events hold no text the person wrote (it stays in the row, where erasure can reach it)
    assert "赌博网站" not in json.dumps(detail["events"], ensure_ascii=False)
    assert "13800138000" not in json.dumps(detail["events"])
    assert detail["description"] == "赌博网站链接" and detail["attachments"] == []
    assert admin.ledger.verify().ok

    assert case_id in [c["id"] for c in admin.get("/admin/cases", params={"status": "closed"}).json()["cases"]]
    assert case_id not in [c["id"] for c in admin.get("/admin/cases", params={"status": "open"}).json()["cases"]]


def test_list_filters_overdue_assignee_kind_and_limit(admin: Admin) -> None:
    late, _ = admin.cases.open_case("complaint", category="service", description="old",
                                    now=datetime(2025, 1, 6, 2, tzinfo=UTC))
    fresh = admin.open(kind="report")
    admin.post(f"/admin/cases/{fresh}/assign", {"assignee": "li-si-" + fresh})
    overdue = admin.get("/admin/cases", params={"overdue": "true"}).json()["cases"]
    assert late in [c["id"] for c in overdue] and fresh not in [c["id"] for c in overdue]
    assert all(c["overdue"] for c in overdue)
    assert all("notes" not in c and "attachments" not in c for c in overdue)  # not read for lists
    mine = admin.get("/admin/cases", params={"assignee": "li-si-" + fresh}).json()["cases"]
    assert [c["id"] for c in mine] == [fresh]
    assert all(c["kind"] == "report" for c in admin.get("/admin/cases", params={"kind": "report"}).json()["cases"])
    assert len(admin.get("/admin/cases", params={"limit": "1"}).json()["cases"]) == 1


# -- errors ----------------------------------------------------------------------------------------

def test_no_admin_key_is_401_and_a_plain_key_403(admin: Admin) -> None:
    assert admin.get("/admin/cases", key=None).status_code == 401
    assert admin.post("/admin/cases", {"kind": "complaint"}, key=None).status_code == 401
    r = admin.get("/admin/cases", key=TEST_KEY)
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_admin"
    assert admin.post("/admin/cases/cs_x/close", {"reason": "x"}, key=TEST_KEY).status_code == 403


@pytest.mark.parametrize(("body", "param"), [
    ({"kind": "complaint", "description": "x"}, "category"),
    ({"kind": "feedback", "category": "illegal", "description": "x"}, "kind"),
    ({"kind": "complaint", "category": "spam", "description": "x"}, "category"),
    ({"kind": "complaint", "category": "illegal"}, "description"),
    ({"kind": "complaint", "category": "illegal", "description": " "}, "description"),
    ({"kind": "pi_request", "pi_action": "access", "description": "x"}, "account_id"),
    ({"kind": "pi_request", "description": "x", "account_id": "acc_test"}, "pi_action"),
    ({"kind": "complaint", "category": "illegal", "description": "x", "colour": "red"}, "colour"),
])
def test_a_bad_case_body_is_400_naming_the_field(admin: Admin, body: dict[str, Any], param: str) -> None:
    r = admin.post("/admin/cases", body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param and param in r.json()["error"]["message"]


def test_bad_list_queries_are_400_naming_the_parameter(admin: Admin) -> None:
    for params, name in [({"status": "lost"}, "status"), ({"kind": "x"}, "kind"), ({"overdue": "maybe"}, "overdue"),
                         ({"limit": "0"}, "limit"), ({"limit": "abc"}, "limit"), ({"colour": "red"}, "colour")]:
        r = admin.get("/admin/cases", params=params)
        assert r.status_code == 400 and r.json()["error"]["param"] == name, (params, r.text)


def test_unknown_cases_and_accounts_are_404(admin: Admin) -> None:
    assert admin.get("/admin/cases/cs_nothing").status_code == 404
    for path, body in [("assign", {"assignee": "a"}), ("notes", {"text": "t"}), ("reply", {"text": "t"}),
                       ("close", {"reason": "r"}), ("reopen", {"reason": "r"}),
                       ("actions", {"action": "incident", "title": "t"}), ("fulfil", {})]:
        r = admin.post(f"/admin/cases/cs_nothing/{path}", body)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (path, r.text)
    r = admin.post("/admin/cases", {"kind": "complaint", "category": "ip", "description": "x",
                                    "account_id": "acc_nobody"})
    assert r.status_code == 404


def test_refused_transitions_are_409_with_the_reason(admin: Admin) -> None:
    case_id = admin.open()
    r = admin.post(f"/admin/cases/{case_id}/reopen", {"reason": "why not"})
    assert r.status_code == 409 and "a case that is open cannot be reopened" in r.json()["error"]["message"]
    r = admin.post(f"/admin/cases/{case_id}/close", {})
    assert r.status_code == 409 and "no reply yet" in r.json()["error"]["message"]
    assert admin.post(f"/admin/cases/{case_id}/close", {"reason": "duplicate of another"}).status_code == 200
    r = admin.post(f"/admin/cases/{case_id}/reply", {"text": "late"})
    assert r.status_code == 409 and "closed cannot be replied to" in r.json()["error"]["message"]
    r = admin.post(f"/admin/cases/{case_id}/assign", {"assignee": "x"})
    assert r.status_code == 409
    # the refusals left nothing on the chain
    assert [e.kind for e in admin.cases.history(case_id)] == ["case.opened", "case.closed"]
    assert admin.cases.get(case_id).reply == "duplicate of another"


# -- actions ---------------------------------------------------------------------------------------

def test_enforce_steps_the_case_account_with_its_decision_as_evidence(admin: Admin) -> None:
    acc = account(admin)
    did = decision(admin, acc)
    case_id = admin.open(reference=did, account_id=acc)
    r = admin.act(case_id, action="enforce", step="warn", reason="赌博广告")
    assert r.status_code == 200, r.text
    assert r.json()["standing"] == "warned" and r.json()["account_id"] == acc
    assert admin.accounts.profile(acc).standing == "warned"
    r = admin.act(case_id, action="enforce", step="suspend", reason="again", days=3)
    assert r.json()["standing"] == "suspended" and r.json()["standing_until"]
    recorded = [e for e in admin.cases.history(case_id) if e.kind == "case.action.enforce"]
    assert [e.data["step"] for e in recorded] == ["warn", "suspend"]
    assert recorded[0].data["evidence"] == [did] and recorded[-1].event_id == r.json()["case_event"]
    ladder = [e for e in events(admin.ledger, account_id=acc) if e.kind.startswith("ladder.")]
    assert recorded[-1].data["ladder_event"] == ladder[-1].event_id and ladder[0].data["evidence"] == [did]
    other = account(admin)
    r = admin.act(case_id, action="enforce", step="restrict", reason="the other account", account_id=other)
    assert r.status_code == 200 and admin.accounts.profile(other).standing == "restricted"
    assert admin.ledger.verify().ok


def test_enforce_errors(admin: Admin) -> None:
    no_account = admin.open()
    r = admin.act(no_account, action="enforce", step="warn", reason="x")
    assert r.status_code == 400 and r.json()["error"]["param"] == "account_id"
    r = admin.act(no_account, action="enforce", step="suspend", reason="x", account_id="acc_test")
    assert r.status_code == 400 and r.json()["error"]["param"] == "days"
    r = admin.act(no_account, action="enforce", step="warn", reason="x", days=2, account_id="acc_test")
    assert r.status_code == 400 and r.json()["error"]["param"] == "days"
    r = admin.act(no_account, action="enforce", reason="x", account_id="acc_test")
    assert r.status_code == 400 and r.json()["error"]["param"] == "step"
    r = admin.act(no_account, action="enforce", step="warn", reason="x", account_id="acc_nobody")
    assert r.status_code == 404
    r = admin.act(no_account, action="takedown", target="t", reason="r", title="not for takedowns")
    assert r.status_code == 400 and r.json()["error"]["param"] == "title"
    r = admin.act(no_account, action="dance")
    assert r.status_code == 400 and r.json()["error"]["param"] == "action"


def test_takedown_is_signed_sent_and_recorded_either_way(admin: Admin) -> None:
    case_id = admin.open()
    admin.webhook.status = 200
    r = admin.act(case_id, action="takedown", target="https://example.com/post/9", reason="赌博广告")
    assert r.status_code == 200 and r.json()["status"] == "sent" and r.json()["http_status"] == 200
    got = admin.webhook.received[-1]
    assert got["case"] == case_id and got["target"] == "https://example.com/post/9" and got["reason"] == "赌博广告"
    assert got["request_id"] == r.json()["request_id"]

    admin.webhook.status = 503
    r = admin.act(case_id, action="takedown", target="https://example.com/post/10", reason="again")
    assert r.status_code == 200 and r.json()["status"] == "failed" and r.json()["http_status"] == 503

    recorded = [e.data for e in admin.cases.history(case_id) if e.kind == "case.action.takedown"]
    assert [(d["status"], d["http_status"]) for d in recorded] == [("sent", 200), ("failed", 503)]
    assert recorded[0]["target"] == "https://example.com/post/9"
    admin.webhook.status = 200


def test_lexicon_and_allow_entries_from_a_case(admin: Admin) -> None:
    from hegui.cases import lexicon_entries

    case_id = admin.open()
    word = "新赌词" + uuid.uuid4().hex[:6]
    r = admin.act(case_id, action="lexicon", text=word, risk="A1h", note="from a report")
    assert r.status_code == 200, r.text
    entry_id = r.json()["entry_id"]
    phrase = "正常短语" + uuid.uuid4().hex[:6]
    r = admin.act(case_id, action="allow", text=phrase)
    assert r.status_code == 200, r.text
    stored = {e.id: e for e in lexicon_entries.entries(admin.ledger)}
    assert stored[entry_id].text == word and stored[entry_id].case_id == case_id
    assert stored[r.json()["entry_id"]].list == "allow"
    kinds = [e.kind for e in admin.cases.history(case_id)]
    assert kinds[-2:] == ["case.action.lexicon", "case.action.allow"]
    r = admin.act(case_id, action="lexicon", text=word)
    assert r.status_code == 400 and r.json()["error"]["param"] == "risk"


def test_an_incident_opened_from_a_case(admin: Admin) -> None:
    acc = account(admin)
    did = decision(admin, acc)
    case_id = admin.open(reference=did)
    r = admin.act(case_id, action="incident", title="赌博广告扩散", summary="多条输出含赌博链接")
    assert r.status_code == 200, r.text
    incident_id = r.json()["incident_id"]
    recorded = [e for e in admin.cases.history(case_id) if e.kind == "case.action.incident"]
    assert recorded[-1].data["incident"] == incident_id
    shown = admin.get(f"/admin/incidents/{incident_id}")
    assert shown.status_code == 200 and did in json.dumps(shown.json())


# -- fulfilment ------------------------------------------------------------------------------------

def test_fulfil_access_answers_the_zip_and_withdraw_sets_the_opt_out(admin: Admin) -> None:
    acc = account(admin)
    decision(admin, acc)
    access = admin.open(kind="pi_request", category=None, pi_action="copy", account_id=acc)
    r = admin.post(f"/admin/cases/{access}/fulfil", {})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip" and "attachment" in r.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert "data.json" in zf.namelist() and acc in zf.read("data.json").decode()

    withdraw = admin.open(kind="pi_request", category=None, pi_action="withdraw_consent", account_id=acc)
    r = admin.post(f"/admin/cases/{withdraw}/fulfil", {})
    assert r.status_code == 200 and r.json()["action"] == "withdraw_consent"
    assert admin.accounts.profile(acc).training_opt_out is True
    assert [e.kind for e in admin.cases.history(withdraw)][-1] == "case.action.withdraw_consent"


def test_fulfil_delete_erases_and_replies(admin: Admin) -> None:
    acc = account(admin)
    decision(admin, acc)
    case_id = admin.open(kind="pi_request", category=None, pi_action="delete", account_id=acc)
    r = admin.post(f"/admin/cases/{case_id}/fulfil", {"reply": "已删除。"})
    assert r.status_code == 200, r.text
    assert r.json()["action"] == "erase" and admin.cases.get(case_id).status == "replied"
    assert admin.ledger.get_account(acc) is None
    assert admin.ledger.verify().ok


def test_fulfil_refusals(admin: Admin) -> None:
    complaint = admin.open()
    r = admin.post(f"/admin/cases/{complaint}/fulfil", {})
    assert r.status_code == 409 and "not a personal-information request" in r.json()["error"]["message"]
    correct = admin.open(kind="pi_request", category=None, pi_action="correct", account_id="acc_test")
    r = admin.post(f"/admin/cases/{correct}/fulfil", {})
    assert r.status_code == 409 and "correct" in r.json()["error"]["message"]


# -- metrics ---------------------------------------------------------------------------------------

def gauge(text: str, name: str, kind: str) -> float:
    m = re.search(rf'^{name}\{{kind="{kind}"\}} (\S+)$', text, re.M)
    assert m, f"{name}{{kind={kind}}} not in /metrics"
    return float(m.group(1))


def test_the_case_gauges_on_metrics(admin: Admin) -> None:
    admin.cases.open_case("report", category="privacy", description="late", now=datetime(2025, 3, 3, 2, tzinfo=UTC))
    admin.open(kind="report", category="ip")
    counts = admin.cases.counts(admin.cases.today())
    text = httpx.get(admin.url + "/metrics", timeout=30).text
    for kind in ("complaint", "report", "pi_request"):
        assert gauge(text, "hegui_cases_open", kind) == counts.get(f"open:{kind}", 0)
        assert gauge(text, "hegui_cases_overdue", kind) == counts.get(f"overdue:{kind}", 0)
    assert gauge(text, "hegui_cases_overdue", "report") >= 1
    before = gauge(text, "hegui_cases_open", "report")
    admin.open(kind="report", category="ip")
    after = gauge(httpx.get(admin.url + "/metrics", timeout=30).text, "hegui_cases_open", "report")
    assert after == before + 1


def test_takedown_not_configured_is_recorded_not_sent(tmp_path: Path) -> None:
    import asyncio

    from hegui.cases import actions
    from hegui.cases.config import CasesConfig

    with ledger_for("sqlite", tmp_path, None) as led:
        store = CaseStore(led, CasesConfig())
        case_id, _ = store.open_case("complaint", category="illegal", description="x")
        done = asyncio.run(actions.takedown(store, store.cfg.takedown, case_id, target="t1", reason="r", actor="t"))
        assert done["status"] == "not_configured"
        assert store.history(case_id)[-1].data["status"] == "not_configured"
        missing = CasesConfig.model_validate({"takedown": {"webhook_url": WEBHOOK, "secret_env": "HEGUI_UNSET_X"}})
        done = asyncio.run(actions.takedown(store, missing.takedown, case_id, target="t2", reason="r", actor="t",
                                            environ={}))
        assert done["status"] == "failed" and "HEGUI_UNSET_X" in done["error"]
        assert led.verify().ok
