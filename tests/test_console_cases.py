"""Cases and appeals in the console, through its forms (Starlette's TestClient against create_app, staff
logged in through the real login page), on SQLite and PostgreSQL: a case's life with its events on the
chain, roles, refusals shown as notices, attachments served as downloads, actions, PI fulfilment and
appeal decisions."""

from __future__ import annotations

import io
import re
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from console_support import console_app, csrf, login, the_console
from gateway_support import ledger_for
from hegui.accounts.store import AccountStore
from hegui.cases.store import AttachmentIn, CaseStore
from hegui.ledger.records import DecisionRecord
from hegui.web.uploads import store as store_upload

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")


class Env:
    def __init__(self, app: Any, ledger: Any, folder: Path) -> None:
        self.app = app
        self.ledger = ledger
        self.folder = folder
        gw = app.state.gateway
        self.cases = CaseStore(ledger, gw.cfg.cases, gw.cfg.accounts.timezone)
        self.accounts = AccountStore(ledger)

    def client(self) -> TestClient:
        return TestClient(self.app, follow_redirects=False)

    def open(self, description: str = "生成的回答含有赌博广告。", **kw: Any) -> str:
        kw.setdefault("category", "illegal")
        case_id, _code = self.cases.open_case(kw.pop("kind", "complaint"), description=description, **kw)
        return case_id

    def account(self) -> str:
        account_id = "acc_" + uuid.uuid4().hex[:10]
        self.ledger.ensure_account(account_id, name="console cases test")
        return account_id

    def decision(self, account_id: str) -> str:
        did = "dec_" + uuid.uuid4().hex[:16]
        self.ledger.record_decision(DecisionRecord(
            decision_id=did, request_id=uuid.uuid4().hex, account_id=account_id, api_key_id="key_t", model="m",
            direction="output", scene="default", action="refuse", risks=["A1h"], findings=[], detector_ms={},
            excerpt=""))
        return did


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    pg = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    with ledger_for(request.param, tmp_path, pg) as ledger:
        app = console_app(tmp_path, ledger=ledger)
        with TestClient(app):  # runs the lifespan once for the clients the tests make
            yield Env(app, ledger, tmp_path)


def post(client: TestClient, page: str, target: str, **data: str) -> Any:
    return client.post(target, data={"csrf_token": csrf(client, page), **data})


def done_page(client: TestClient, r: Any) -> str:
    assert r.status_code == 303, f"{r.status_code} {r.text[:500]}"
    page = client.get(r.headers["location"])
    assert page.status_code == 200, page.text[:500]
    return page.text


def test_a_case_worked_through_the_console_forms_is_on_the_chain(env: Env) -> None:
    client = env.client()
    me = login(client, "reviewer")
    case_id = env.open()
    page = f"/console/cases/{case_id}"

    text = done_page(client, post(client, page, f"{page}/assign", assignee="me"))
    assert "已分配 / Assigned." in text and me.username in text
    text = done_page(client, post(client, page, f"{page}/note", text="打电话核实过 <b>内部</b>"))
    assert "打电话核实过 &lt;b&gt;内部&lt;/b&gt;" in text
    text = done_page(client, post(client, page, f"{page}/reply", text="已删除相关内容，感谢举报。"))
    assert 'id="case-reply">已删除相关内容，感谢举报。<' in text
    text = done_page(client, post(client, page, f"{page}/close", reason="handled"))
    assert 'id="case-status">closed<' in text

    case = env.cases.get(case_id)
    assert case.status == "closed" and case.assignee == me.username and case.reply == "已删除相关内容，感谢举报。"
    assert [n["author"] for n in case.notes] == [me.actor]
    history = env.cases.history(case_id)
    assert [e.kind for e in history] == ["case.opened", "case.assigned", "case.noted", "case.replied",
                                         "case.closed"]
    assert all(e.actor == me.actor for e in history[1:])
    assert env.ledger.verify().ok

    # reopening needs a reason, and then works; the list finds the case by its assignee
    r = post(client, page, f"{page}/reopen", reason="")
    assert r.status_code == 400 and "reason: say why" in r.text
    done_page(client, post(client, page, f"{page}/reopen", reason="the person wrote again"))
    assert env.cases.get(case_id, with_details=False).status == "in_progress"
    listed = client.get("/console/cases", params={"assignee": "me"}).text
    assert case_id in listed


def test_a_viewer_reads_cases_but_cannot_reply_or_download(env: Env) -> None:
    client = env.client()
    login(client, "viewer")
    case_id = env.open("<script>alert(1)</script> 赌博")
    page = client.get(f"/console/cases/{case_id}")
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt; 赌博" in page.text and "<script>" not in page.text
    assert f"/console/cases/{case_id}/reply" not in page.text  # no forms for a viewer
    token = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page.text)
    assert token is not None  # the logout form's
    r = client.post(f"/console/cases/{case_id}/reply", data={"csrf_token": token.group(1), "text": "hi"})
    assert r.status_code == 403
    assert env.cases.get(case_id, with_details=False).reply is None
    assert client.get(f"/console/cases/{case_id}/attachments/at_x").status_code == 403


def test_a_refused_step_is_a_notice_on_the_case_page(env: Env) -> None:
    client = env.client()
    login(client, "reviewer")
    case_id = env.open()
    page = f"/console/cases/{case_id}"
    r = post(client, page, f"{page}/reopen", reason="why not")
    assert r.status_code == 409
    assert "a case that is open cannot be reopened" in r.text and 'id="case-status">open<' in r.text
    r = post(client, page, f"{page}/close", reason="")
    assert r.status_code == 409 and "give the reason for closing it" in r.text
    r = post(client, page, f"{page}/assign", assignee="nobody-here")
    assert r.status_code == 400 and "no active staff member" in r.text
    r = post(client, page, f"{page}/reply", text="   ")
    assert r.status_code == 409 and "a reply must have" in r.text
    assert [e.kind for e in env.cases.history(case_id)] == ["case.opened"]
    r = client.get("/console/cases/cs_nope")
    assert r.status_code == 404 and "no case cs_nope" in r.text


def test_the_list_filters_and_marks_overdue_cases_red(env: Env) -> None:
    client = env.client()
    login(client, "viewer")
    late = env.open(now=datetime.now(UTC) - timedelta(days=60))
    fresh = env.open(kind="report", category="privacy")
    everything = client.get("/console/cases").text
    assert late in everything and fresh in everything
    assert re.search(r'<td class="bad">[0-9-]+ 逾期 overdue</td>', everything)
    overdue = client.get("/console/cases", params={"overdue": "1"}).text
    assert late in overdue and fresh not in overdue
    reports = client.get("/console/cases", params={"kind": "report"}).text
    assert fresh in reports and late not in reports
    closed = client.get("/console/cases", params={"status": "closed"}).text
    assert late not in closed and "No cases match" in closed
    bad = client.get("/console/cases", params={"status": "lost"})
    assert bad.status_code == 400 and "status: &#39;lost&#39; is not one of" in bad.text


def test_an_attachment_is_served_as_a_download_with_its_sniffed_type(env: Env) -> None:
    folder = env.folder / "attachments"
    stored = store_upload(PNG, "image/png", "截图 <1>.png", folder)
    case_id = env.open(attachments=[stored.attachment])
    att = env.cases.get(case_id).attachments[0]
    client = env.client()
    login(client, "reviewer")
    page = client.get(f"/console/cases/{case_id}").text
    assert "截图 &lt;1&gt;.png" in page and "image/png" in page
    r = client.get(f"/console/cases/{case_id}/attachments/{att['id']}")
    assert r.status_code == 200 and r.content == PNG
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-disposition"].startswith(f'attachment; filename="{att["id"]}.png"')
    assert "filename*=UTF-8''%E6%88%AA%E5%9B%BE%20%3C1%3E.png" in r.headers["content-disposition"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in r.headers["content-security-policy"]
    # another case's attachment id, a gone file, a stored name that is not ours: 404
    other = env.open()
    assert client.get(f"/console/cases/{other}/attachments/{att['id']}").status_code == 404
    stored.remove()
    gone = client.get(f"/console/cases/{case_id}/attachments/{att['id']}")
    assert gone.status_code == 404 and "the file is gone" in gone.text
    sneaky = env.open(attachments=[AttachmentIn("../ledger.db", "text/plain", 1, "0" * 64, "x.txt")])
    att2 = env.cases.get(sneaky).attachments[0]
    assert client.get(f"/console/cases/{sneaky}/attachments/{att2['id']}").status_code == 404


def test_enforce_and_list_entry_actions_from_a_case(env: Env) -> None:
    client = env.client()
    me = login(client, "reviewer")
    acc = env.account()
    did = env.decision(acc)
    case_id = env.open(account_id=acc, reference=did)
    page = f"/console/cases/{case_id}"
    text = done_page(client, post(client, page, f"{page}/actions", action="enforce", step="warn",
                                  reason="违规内容", days=""))
    assert "已执行账号处置" in text
    assert env.accounts.profile(acc).standing == "warned"
    r = post(client, page, f"{page}/actions", action="enforce", step="suspend", reason="x", days="soon")
    assert r.status_code == 400 and "days: a suspension needs its length" in r.text
    done_page(client, post(client, page, f"{page}/actions", action="enforce", step="suspend", reason="再次违规",
                           days="3"))
    assert env.accounts.profile(acc).standing == "suspended"
    done_page(client, post(client, page, f"{page}/actions", action="lexicon", text="某赌场网址", risk="A1h",
                           note="from the case"))
    r = post(client, page, f"{page}/actions", action="lexicon", text="缺风险", risk="")
    assert r.status_code == 400 and "risk: a lexicon entry needs its risk code" in r.text
    r = post(client, page, f"{page}/actions", action="explode")
    assert r.status_code == 400 and "action: &#39;explode&#39; is not one of" in r.text
    kinds = [(e.kind, e.actor) for e in env.cases.history(case_id)]
    assert kinds[1:] == [("case.action.enforce", me.actor), ("case.action.enforce", me.actor),
                         ("case.action.lexicon", me.actor)]
    enforce = env.cases.history(case_id)[1]
    assert enforce.data["evidence"] == [did]
    assert env.ledger.verify().ok


def test_pi_fulfilment_export_and_erase_with_confirmation(env: Env) -> None:
    client = env.client()
    login(client, "reviewer")
    acc = env.account()
    env.decision(acc)
    copy = env.open(kind="pi_request", category=None, pi_action="copy", account_id=acc, description="我的数据")
    page = f"/console/cases/{copy}"
    assert "Download the person" in client.get(page).text
    r = post(client, page, f"{page}/fulfil")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"] == f'attachment; filename="hegui-{copy}.zip"'
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert acc in zf.read("data.json").decode()
    assert [e.kind for e in env.cases.history(copy)][-1] == "case.action.export"

    delete = env.open(kind="pi_request", category=None, pi_action="delete", account_id=acc, description="删除")
    page = f"/console/cases/{delete}"
    r = post(client, page, f"{page}/fulfil", reply="")
    assert r.status_code == 400 and "tick the box" in r.text
    assert env.ledger.get_account(acc) is not None
    done_page(client, post(client, page, f"{page}/fulfil", confirm="yes", reply="已删除。"))
    assert env.ledger.get_account(acc) is None
    assert env.cases.get(delete, with_details=False).reply == "已删除。"
    assert env.ledger.verify().ok


def test_appeals_are_listed_and_decided_with_a_reason(env: Env) -> None:
    acc = env.account()
    accounts = the_console(env.app).gw.accounts
    store = accounts.store if accounts is not None else env.accounts
    store.set_standing(acc, "suspended", actor="test", reason="spam", until=datetime.now(UTC) + timedelta(days=3))
    appeal = store.file_appeal(acc, "我没有发垃圾信息 <i>真的</i>")
    viewer = env.client()
    login(viewer, "viewer")
    listed = viewer.get("/console/appeals").text
    assert appeal in listed and "我没有发垃圾信息 &lt;i&gt;真的&lt;/i&gt;" in listed
    assert "/decide" not in listed
    client = env.client()
    me = login(client, "reviewer")
    r = post(client, "/console/appeals", f"/console/appeals/{appeal}/decide", decision="restore", reason=" ")
    assert r.status_code == 400 and "reason: a reason is required" in r.text
    r = post(client, "/console/appeals", f"/console/appeals/{appeal}/decide", decision="maybe", reason="x")
    assert r.status_code == 400
    text = done_page(client, post(client, "/console/appeals", f"/console/appeals/{appeal}/decide",
                                  decision="restore", reason="误判，已恢复"))
    assert "申诉已通过" in text and appeal not in text
    assert env.accounts.profile(acc).standing == "good"
    r = post(client, "/console/appeals", f"/console/appeals/{appeal}/decide", decision="uphold", reason="again")
    assert r.status_code == 409 and "already decided" in r.text
    decided = client.get("/console/appeals", params={"status": "restored"}).text
    assert appeal in decided and me.actor in decided and "误判，已恢复" in decided
    assert env.ledger.verify().ok
