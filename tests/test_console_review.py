"""The console's review queue, lexicon page and policy editing: what the queue holds and shows,
confirm and clear with their entries, events, marks and samples, the roles, the lexicon form, and
policy saves (errors with the line, backups, a reload that changes what the gateway refuses)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from console_support import console_config, csrf, login
from gateway_support import TEST_KEY, add_test_keys, ledger_for
from hegui.cases.lexicon_entries import add_entry, entries
from hegui.gateway.app import create_app
from hegui.ledger.events import events
from hegui.ledger.models import Base
from hegui.ledger.records import DecisionRecord
from hegui.ledger.store import Ledger
from hegui.policy import starter_policy_text
from hegui.policy_sync import PolicySync, read_version, save_policy
from hegui.web.console.samples import QueueFilter, export_samples, queue, samples
from hegui.web.staff_models import ReviewMark

_marks = Base.metadata.tables[ReviewMark.__tablename__]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture()
def ledger(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    pg = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    with ledger_for(backend, tmp_path, pg) as led:
        yield led


@pytest.fixture()
def sqlite_ledger(tmp_path: Path) -> Iterator[Ledger]:
    with ledger_for("sqlite", tmp_path, None) as led:
        yield led


def decide(ledger: Ledger, *, action: str = "flag", direction: str = "output", excerpt: str = "一段输出",
           risks: list[str] | None = None, findings: list[dict[str, Any]] | None = None, kind: str = "decision",
           flags: dict[str, Any] | None = None) -> str:
    did = "dc_" + secrets.token_hex(8)
    ledger.record_decision(DecisionRecord(
        decision_id=did, request_id="rq_" + did, account_id="acc_test", api_key_id=None, model="hegui-demo",
        direction=direction, scene="default", action=action, risks=risks if risks is not None else ["A1h"],
        findings=findings or [], detector_ms={}, excerpt=excerpt, kind=kind,  # type: ignore[arg-type]
        flags=flags))
    return did


def app_for(tmp_path: Path, ledger: Ledger, **sections: Any) -> Any:
    """The gateway with the real moderator (starter lexicon, PII, injection) and the console."""
    add_test_keys(ledger)
    return create_app(console_config(tmp_path, **sections), ledger=ledger)


def ask(client: TestClient, text: str) -> str:
    r = client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {TEST_KEY}"},
                    json={"model": "hegui-demo", "messages": [{"role": "user", "content": text}]})
    assert r.status_code == 200, r.text
    return str(r.json()["choices"][0]["finish_reason"])


# -- the queue -------------------------------------------------------------------------------------

def test_queue_holds_only_unreviewed_flagged_and_refused_rows_with_their_excerpt(ledger: Ledger,
                                                                                 tmp_path: Path) -> None:
    allowed = decide(ledger, action="allow", excerpt="放行的文本 allowed-text")
    masked = decide(ledger, action="mask", excerpt="已遮盖 masked-text")
    opening = decide(ledger, action="pending", kind="stream_open", excerpt="")
    flagged = decide(ledger, action="flag", excerpt="被标记的输出 flagged-text", risks=["JB"])
    refused = decide(ledger, action="refuse", direction="input", excerpt="[messages[0]] 买冰毒", risks=["A1h"])
    blocked = decide(ledger, action="block", direction="input", excerpt="blocked-text", risks=["A1a"])
    reviewed = decide(ledger, action="refuse", excerpt="already-reviewed-text")
    with ledger.engine.begin() as conn:
        conn.execute(sa.insert(_marks).values(decision_id=reviewed, verdict="cleared", staff_id="st_x",
                                              event_id="ev_x"))
    app = app_for(tmp_path, ledger)
    with TestClient(app) as client:
        login(client, "viewer")
        page = client.get("/console/review").text
        for shown in ("flagged-text", "买冰毒", "blocked-text"):
            assert shown in page
        for hidden in ("allowed-text", "masked-text", "already-reviewed-text", "rq_"):
            assert hidden not in page  # and the request id (anything but the excerpt) is not shown
        assert page.index(blocked) < page.index(refused) < page.index(flagged)  # newest first
        assert opening not in page and allowed not in page and masked not in page
        assert "Confirm" not in page  # a viewer gets no forms

        only_input = client.get("/console/review?direction=input").text
        assert blocked in only_input and refused in only_input and flagged not in only_input
        assert flagged in client.get("/console/review?action=flag").text
        assert blocked not in client.get("/console/review?action=flag").text
        by_risk = client.get("/console/review?risk=A1").text
        assert refused in by_risk and blocked in by_risk and flagged not in by_risk
        assert blocked in client.get("/console/review?period=24h").text
        bad = client.get("/console/review?direction=sideways")
        assert bad.status_code == 400 and "direction: must be one of input, output" in bad.text


def test_queue_pages_by_seq(ledger: Ledger) -> None:
    ids = [decide(ledger, excerpt=f"第{i}条") for i in range(55)]
    first, after = queue(ledger, QueueFilter())
    assert [r.decision_id for r in first] == ids[::-1][:50] and after is not None
    second, last = queue(ledger, QueueFilter(), before_seq=after)
    assert [r.decision_id for r in second] == ids[::-1][50:] and last is None


# -- confirm and clear -----------------------------------------------------------------------------

def test_confirm_adds_a_block_entry_an_event_and_takes_the_item_off_the_queue(ledger: Ledger,
                                                                              tmp_path: Path) -> None:
    span = {"risk": "A1h", "start": 5, "end": 8, "score": 1.0, "detector": "lexicon", "evidence_id": "x",
            "kind": "starter"}
    did = decide(ledger, action="flag", excerpt="新的黑话叫蓝精灵，快来买", risks=["A1h"], findings=[span])
    app = app_for(tmp_path, ledger)
    with TestClient(app) as client:
        staff = login(client, "reviewer")
        page = client.get("/console/review").text
        assert 'name="phrase" value="蓝精灵"' in page and 'name="risk" value="A1h"' in page  # from the span
        token = csrf(client, "/console/review")
        r = client.post(f"/console/review/{did}/confirm", follow_redirects=False,
                        data={"csrf_token": token, "phrase": "蓝精灵", "risk": "A1h", "note": "新黑话"})
        assert r.status_code == 303 and r.headers["location"].startswith("/console/review?done=confirmed")
        assert "Confirmed" in client.get(r.headers["location"]).text

        (entry,) = entries(ledger)
        assert (entry.list, entry.text, entry.risk, entry.added_by, entry.note) == \
            ("block", "蓝精灵", "A1h", staff.actor, "新黑话")
        (ev,) = events(ledger, kind_prefix="review.")
        assert ev.kind == "review.confirmed" and ev.actor == staff.actor
        assert ev.data["decision"] == did and ev.data["entry"] == entry.id and ev.data["sample"] == "rectification"
        assert "蓝精灵" not in json.dumps(ev.data, ensure_ascii=False)  # the chain keeps the hash, not the text
        with ledger.engine.connect() as conn:
            mark = conn.execute(sa.select(_marks)).one()
        assert (mark.decision_id, mark.verdict, mark.staff_id, mark.event_id) == (did, "confirmed", staff.id,
                                                                                  ev.event_id)
        assert did not in client.get("/console/review").text
        # in force on this gateway at once (its sync was refreshed by the confirm)
        assert ask(client, "/say 蓝精灵到货了") == "content_filter"

        again = client.post(f"/console/review/{did}/confirm", follow_redirects=False,
                            data={"csrf_token": token, "phrase": "别的词", "risk": "A1h"})
        assert again.status_code == 303 and "done=already" in again.headers["location"]
        assert "already reviewed" in client.get(again.headers["location"]).text
        assert len(entries(ledger)) == 1 and len(events(ledger, kind_prefix="review.")) == 1


def test_clear_adds_an_allow_entry_and_both_kinds_of_sample_export(ledger: Ledger, tmp_path: Path) -> None:
    cleared = decide(ledger, action="refuse", excerpt="冰毒检测试剂在哪买", risks=["A1h"])
    confirmed = decide(ledger, action="flag", excerpt="确认的样本")
    opted_out = decide(ledger, action="flag", excerpt="不许训练", flags={"training_opt_out": True})
    app = app_for(tmp_path, ledger)
    with TestClient(app) as client:
        staff = login(client, "reviewer")
        assert ask(client, "/say 冰毒检测试剂") == "content_filter"
        token = csrf(client, "/console/review")
        r = client.post(f"/console/review/{cleared}/clear", follow_redirects=False,
                        data={"csrf_token": token, "allow": "冰毒检测试剂"})
        assert r.status_code == 303 and "done=cleared" in r.headers["location"]
        (entry,) = entries(ledger)
        assert (entry.list, entry.text, entry.risk) == ("allow", "冰毒检测试剂", None)
        assert ask(client, "/say 冰毒检测试剂") == "stop"
        for did in (confirmed, opted_out):
            r = client.post(f"/console/review/{did}/confirm", follow_redirects=False,
                            data={"csrf_token": token, "phrase": f"词{did[-4:]}", "risk": "A2a"})
            assert r.status_code == 303
        kinds = [e.kind for e in events(ledger, kind_prefix="review.")]
        assert kinds == ["review.cleared", "review.confirmed", "review.confirmed"]

        fp = client.get("/console/review/samples.jsonl?kind=false_positive")
        assert fp.status_code == 200 and "attachment" in fp.headers["content-disposition"]
        (sample,) = [json.loads(line) for line in fp.text.splitlines()]
        assert sample["decision_id"] == cleared and sample["excerpt"] == "冰毒检测试剂在哪买"
        assert sample["reviewer"] == staff.actor and sample["kind"] == "false_positive"
        rect = [s["decision_id"] for s in samples(ledger, "rectification")]
        assert rect == [confirmed]  # the opted-out person's decision is reviewed but not a sample
        out = tmp_path / "rect.jsonl"
        assert export_samples(ledger, "rectification", out) == 1
        assert json.loads(out.read_text(encoding="utf-8"))["excerpt"] == "确认的样本"
        assert client.get("/console/review/samples.jsonl?kind=other").status_code == 400


def test_a_bad_phrase_or_risk_is_shown_on_the_item_and_nothing_is_written(sqlite_ledger: Ledger,
                                                                          tmp_path: Path) -> None:
    did = decide(sqlite_ledger, excerpt="某段输出")
    app = app_for(tmp_path, sqlite_ledger)
    with TestClient(app) as client:
        login(client, "reviewer")
        token = csrf(client, "/console/review")
        r = client.post(f"/console/review/{did}/confirm", data={"csrf_token": token, "phrase": "某段", "risk": "Z9"})
        assert r.status_code == 400 and "risk: unknown risk code &#39;Z9&#39;" in r.text
        assert 'value="某段"' in r.text  # what was typed stays in the form
        r = client.post(f"/console/review/{did}/confirm", data={"csrf_token": token, "phrase": "", "risk": "A1h"})
        assert r.status_code == 400 and "phrase: give the text to block" in r.text
        missing = client.post("/console/review/dc_nope/confirm", data={"csrf_token": token, "phrase": "x",
                                                                        "risk": "A1h"})
        assert missing.status_code == 404
        assert entries(sqlite_ledger) == [] and events(sqlite_ledger, kind_prefix="review.") == []
        assert did in client.get("/console/review").text


def test_a_viewer_cannot_confirm_or_clear(sqlite_ledger: Ledger, tmp_path: Path) -> None:
    did = decide(sqlite_ledger)
    app = app_for(tmp_path, sqlite_ledger)
    with TestClient(app) as client:
        login(client, "viewer")
        token = csrf(client, "/console/review")
        for action in ("confirm", "clear"):
            r = client.post(f"/console/review/{did}/{action}", data={"csrf_token": token, "phrase": "一段",
                                                                      "risk": "A1h"})
            assert r.status_code == 403
        assert client.get("/console/review/samples.jsonl?kind=rectification").status_code == 403
        assert entries(sqlite_ledger) == [] and did in client.get("/console/review").text


# -- the lexicon page ------------------------------------------------------------------------------

def test_lexicon_page_adds_and_removes_entries_for_admins(ledger: Ledger, tmp_path: Path) -> None:
    app = app_for(tmp_path, ledger)
    with TestClient(app) as client:
        admin = login(client, "admin")
        page = client.get("/console/lexicon").text
        assert "A1h" in page and "starter" in page  # the running detector's file stats
        token = csrf(client, "/console/lexicon")
        r = client.post("/console/lexicon/entries", follow_redirects=False,
                        data={"csrf_token": token, "list": "block", "text": "紫色小药丸", "risk": "A1h"})
        assert r.status_code == 303
        (entry,) = entries(ledger)
        assert entry.added_by == admin.actor and "紫色小药丸" in client.get("/console/lexicon").text
        assert ask(client, "/say 紫色小药丸") == "content_filter"
        bad = client.post("/console/lexicon/entries",
                          data={"csrf_token": token, "list": "allow", "text": "紫色", "risk": "A1h"})
        assert bad.status_code == 400 and "risk: an allow entry takes no risk" in bad.text
        dup = client.post("/console/lexicon/entries",
                          data={"csrf_token": token, "list": "block", "text": "紫色小药丸", "risk": "A1h"})
        assert dup.status_code == 400 and "already has it" in dup.text
        r = client.post(f"/console/lexicon/entries/{entry.id}/remove", follow_redirects=False,
                        data={"csrf_token": token})
        assert r.status_code == 303 and entries(ledger) == []
        assert ask(client, "/say 紫色小药丸") == "stop"
        gone = client.post(f"/console/lexicon/entries/{entry.id}/remove", data={"csrf_token": token})
        assert gone.status_code == 404 and "already removed" in gone.text


def test_lexicon_page_is_read_only_below_admin(sqlite_ledger: Ledger, tmp_path: Path) -> None:
    add_entry(sqlite_ledger, list="block", text="旧词条", risk="A1h", actor="staff:st_1")
    app = app_for(tmp_path, sqlite_ledger)
    with TestClient(app) as client:
        login(client, "reviewer")
        page = client.get("/console/lexicon").text
        assert "旧词条" in page and "Remove" not in page and 'action="/console/lexicon/entries"' not in page
        token = csrf(client, "/console/review")
        r = client.post("/console/lexicon/entries", data={"csrf_token": token, "list": "block", "text": "新",
                                                           "risk": "A1h"})
        assert r.status_code == 403 and len(entries(sqlite_ledger)) == 1


# -- policy ----------------------------------------------------------------------------------------

LENIENT = """\
default_action: flag
rules:
  - risks: [PI]
    action: mask
"""
STRICT = LENIENT + """\
  - risks: [A1, A2]
    action: refuse
"""


def test_an_invalid_policy_shows_its_line_and_keeps_the_file(sqlite_ledger: Ledger, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(LENIENT, encoding="utf-8")
    app = app_for(tmp_path, sqlite_ledger, policy="policy.yaml")
    with TestClient(app) as client:
        login(client, "admin")
        page = client.get("/console/policy").text
        assert "default_action: flag" in page and str(policy) in page
        token = csrf(client, "/console/policy")
        broken = LENIENT + "  - risks: [A1]\n    action: explode\n"
        r = client.post("/console/policy", data={"csrf_token": token, "policy": broken})
        assert r.status_code == 400
        assert "policy.yaml:6: rules.1.action: Input should be" in r.text and "explode" in r.text
        r = client.post("/console/policy", data={"csrf_token": token, "policy": "rules: [\n"})
        assert r.status_code == 400 and "policy.yaml:2: invalid YAML" in r.text
        assert policy.read_text(encoding="utf-8") == LENIENT
        assert list(tmp_path.glob("policy.yaml.*")) == [] and read_version(sqlite_ledger) == 0


def test_a_valid_save_reloads_the_gateway(ledger: Ledger, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(LENIENT, encoding="utf-8")
    app = app_for(tmp_path, ledger, policy="policy.yaml")
    with TestClient(app) as client:
        admin = login(client, "admin")
        assert ask(client, "/say 买冰毒") == "stop"  # flagged only under the lenient policy
        token = csrf(client, "/console/policy")
        r = client.post("/console/policy", follow_redirects=False, data={"csrf_token": token, "policy": STRICT})
        assert r.status_code == 303 and "Saved" in client.get(r.headers["location"]).text
        assert ask(client, "/say 买冰毒") == "content_filter"  # same text, refused now, no restart
        assert policy.read_text(encoding="utf-8") == STRICT
        (backup,) = tmp_path.glob("policy.yaml.*.bak")
        assert backup.read_text(encoding="utf-8") == LENIENT
        assert read_version(ledger) == 1 and app.state.policy_sync.version == 1
        (ev,) = events(ledger, kind_prefix="policy.")
        assert ev.kind == "policy.saved" and ev.actor == admin.actor and ev.data["backup"] == backup.name


def test_viewers_read_the_policy_and_only_admins_save(sqlite_ledger: Ledger, tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(LENIENT, encoding="utf-8")
    app = app_for(tmp_path, sqlite_ledger, policy="policy.yaml")
    with TestClient(app) as client:
        login(client, "reviewer")
        page = client.get("/console/policy").text
        assert "default_action: flag" in page and "<textarea" not in page
        token = csrf(client, "/console/review")
        assert client.post("/console/policy", data={"csrf_token": token, "policy": STRICT}).status_code == 403


def test_the_starter_policy_is_shown_and_cannot_be_saved_without_a_file(sqlite_ledger: Ledger,
                                                                        tmp_path: Path) -> None:
    app = app_for(tmp_path, sqlite_ledger)
    with TestClient(app) as client:
        login(client, "admin")
        page = client.get("/console/policy").text
        assert "built-in starter policy" in page and "hegui starter policy" in page
        token = csrf(client, "/console/review")
        r = client.post("/console/policy", data={"csrf_token": token, "policy": STRICT})
        assert r.status_code == 409 and "set `policy:` in hegui.yaml" in r.text
        assert read_version(sqlite_ledger) == 0


def test_policy_sync_reloads_another_worker_after_a_save(ledger: Ledger, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(starter_policy_text(), encoding="utf-8")
    reloads: list[int] = []
    other = PolicySync(ledger, lambda: reloads.append(1), 1.0)
    assert other.load() is False and other.version == 0  # the first look only notes the version
    saved = save_policy(ledger, policy, STRICT, actor="staff:st_1")
    assert saved.version == 1 and saved.backup is not None
    assert other.load() is True and reloads == [1]
    assert other.load() is False and reloads == [1]  # once per save


def test_the_review_samples_command_writes_the_confirmed_decisions(tmp_path: Path) -> None:
    """``hegui review samples`` writes what the queue's confirmations made, whole, and refuses a bad kind."""
    from typer.testing import CliRunner

    from hegui.cli import app
    from hegui.web.console.samples import record_review, reviewable

    url = f"sqlite:///{tmp_path / 'l.db'}"
    with Ledger.open(url) as ledger:
        ledger.record_decision(DecisionRecord(
            decision_id="d-refused", request_id="r1", account_id=None, api_key_id=None, model="m",
            direction="output", scene="default", action="refuse", risks=["A1h"], findings=[], detector_ms={},
            excerpt="赌博网站推广", stream=None))
        record_review(ledger, reviewable(ledger, "d-refused"), "confirmed", staff_id="st_1", details={})
    out = tmp_path / "rect.jsonl"
    runner = CliRunner()
    r = runner.invoke(app, ["review", "samples", "--kind", "rectification", "--out", str(out), "--url", url])
    assert r.exit_code == 0, r.output
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 and '"d-refused"' in lines[0] and "赌博网站推广" in lines[0]
    r = runner.invoke(app, ["review", "samples", "--kind", "false_positive", "--out", str(out), "--url", url])
    assert r.exit_code == 0 and out.read_text(encoding="utf-8") == ""
    r = runner.invoke(app, ["review", "samples", "--kind", "nonsense", "--out", str(out), "--url", url])
    assert r.exit_code != 0
