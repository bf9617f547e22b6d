"""Incidents (Art. 14): their life in the store, over the admin API and through ``hegui incidents``, on
SQLite and PostgreSQL; every step an event that verifies; unknown decisions refused; the rectification
samples without the decisions of people who opted out of training."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from gateway_support import (
    ADMIN_KEY,
    TEST_KEY,
    add_test_keys,
    ledger_for,
    make_moderator,
    serve,
    write_config,
)
from hegui.cases import incidents
from hegui.cli import app as cli_app
from hegui.gateway.app import create_app
from hegui.ledger.events import events
from hegui.ledger.records import DecisionRecord
from hegui.ledger.store import Ledger

runner = CliRunner()


def record(ledger: Ledger, *, opt_out: bool = False, action: str = "block", risks: list[str] | None = None,
           excerpt: str = "赌博网站推广", when: datetime | None = None, stream_open_first: bool = False) -> str:
    did = uuid.uuid4().hex
    rec = DecisionRecord(decision_id=did, request_id="req_" + did[:8], account_id="acc_x", api_key_id=None,
                         model="m", direction="output", scene="chat", action=action,
                         risks=risks if risks is not None else ["A1h"], findings=[], detector_ms={}, excerpt=excerpt,
                         created_at=when, flags={"training_opt_out": True} if opt_out else None)
    if stream_open_first:
        ledger.open_stream(DecisionRecord(**{**rec.__dict__, "action": "pending", "kind": "stream_open",
                                             "excerpt": ""}))
    ledger.record_decision(rec)
    return did


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    pg = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    with ledger_for(request.param, tmp_path, pg) as led:
        yield led


def incident_events(ledger: Ledger, incident_id: str) -> list[str]:
    return [e.kind for e in events(ledger, kind_prefix="incident.", limit=None) if e.data.get("incident") == incident_id]


# -- the store ----------------------------------------------------------------------------------------

def test_the_whole_life_is_on_the_chain_and_verifies(ledger: Ledger) -> None:
    ids = [record(ledger) for _ in range(3)]
    iid = incidents.open_incident(ledger, title="生成赌博推广内容", summary="模型输出了赌博网站推广文案",
                                  decision_ids=ids[:2], case_id=None, actor="staff:li")
    assert iid.startswith("in_") and len(iid) == 19
    view = incidents.get_incident(ledger, iid)
    assert (view.status, view.decision_ids, view.opened_by) == ("open", ids[:2], "staff:li")

    new, event = incidents.add_decisions(ledger, iid, [ids[1], ids[2]], actor="staff:li")
    assert new == [ids[2]] and event is not None and event.startswith("ev_")
    assert incidents.add_decisions(ledger, iid, [ids[2]], actor="staff:li") == ([], None)  # nothing new, no event

    incidents.record_containment(ledger, iid, "已停止生成并删除输出", actor="staff:li")
    incidents.record_containment(ledger, iid, "另封禁了账号", actor="staff:li")  # extended: stays contained
    incidents.record_rectification(ledger, iid, "词库加入相关词条；模型微调", actor="staff:wang")
    incidents.mark_reported(ledger, iid, "上海市网信办", "沪网信〔2025〕12号", actor="staff:wang")
    incidents.close(ledger, iid, actor="staff:wang")

    view = incidents.get_incident(ledger, iid)
    assert view.status == "closed" and view.closed_at is not None
    assert view.decision_ids == ids and view.stopped == "另封禁了账号"
    assert view.details["authority"] == "上海市网信办" and view.details["reference"] == "沪网信〔2025〕12号"
    assert incident_events(ledger, iid) == [
        "incident.opened", "incident.decisions_added", "incident.contained", "incident.contained",
        "incident.rectified", "incident.reported", "incident.closed"]
    opened = [e for e in events(ledger, kind_prefix="incident.opened", limit=None)][-1]
    assert opened.data["decisions"] == ids[:2] and "生成" not in json.dumps(opened.data, ensure_ascii=False)
    assert ledger.verify().ok
    assert [v.id for v in incidents.list_incidents(ledger, status="closed")] == [iid]
    assert incidents.list_incidents(ledger, status="open") == []


def test_unknown_decision_ids_are_refused_and_nothing_is_written(ledger: Ledger) -> None:
    known = record(ledger)
    with pytest.raises(incidents.UnknownDecision, match="no decision deadbeef in the ledger"):
        incidents.open_incident(ledger, title="t", summary="", decision_ids=[known, "deadbeef"], case_id=None,
                                actor="a")
    assert incidents.list_incidents(ledger) == []
    assert events(ledger, kind_prefix="incident.", limit=None) == []
    iid = incidents.open_incident(ledger, title="t", summary="", decision_ids=[known], case_id=None, actor="a")
    with pytest.raises(incidents.UnknownDecision):
        incidents.add_decisions(ledger, iid, ["nope"], actor="a")
    assert incidents.get_incident(ledger, iid).decision_ids == [known]
    with pytest.raises(incidents.IncidentRefused, match="decision_ids: name at least one"):
        incidents.open_incident(ledger, title="t", summary="", decision_ids=[], case_id=None, actor="a")
    with pytest.raises(incidents.IncidentRefused, match="decision_ids: ' ' is not a decision id"):
        incidents.open_incident(ledger, title="t", summary="", decision_ids=[" "], case_id=None, actor="a")


def test_steps_out_of_order_are_refused(ledger: Ledger) -> None:
    iid = incidents.open_incident(ledger, title="t", summary="", decision_ids=[record(ledger)], case_id=None,
                                  actor="a")
    with pytest.raises(incidents.IncidentRefused, match=rf"incident {iid} is open: it cannot be rectified"):
        incidents.record_rectification(ledger, iid, "x", actor="a")
    with pytest.raises(incidents.IncidentRefused, match="cannot be closed"):
        incidents.close(ledger, iid, actor="a")
    with pytest.raises(incidents.IncidentRefused, match="stopped: must not be empty"):
        incidents.record_containment(ledger, iid, "  ", actor="a")
    with pytest.raises(incidents.IncidentNotFound, match="no incident in_missing"):
        incidents.record_containment(ledger, "in_missing", "x", actor="a")
    assert incidents.get_incident(ledger, iid).status == "open"
    assert incident_events(ledger, iid) == ["incident.opened"]


def test_samples_skip_opted_out_and_erased_decisions(ledger: Ledger, tmp_path: Path) -> None:
    kept = [record(ledger, excerpt=f"样本 {i}") for i in range(3)]
    opted = [record(ledger, opt_out=True, excerpt="退出训练的人") for _ in range(2)]
    streamed = record(ledger, stream_open_first=True, excerpt="流式输出的最终记录")
    iid = incidents.open_incident(ledger, title="t", summary="", decision_ids=[*kept, *opted, streamed],
                                  case_id=None, actor="a")
    out = tmp_path / "samples.jsonl"
    assert incidents.export_samples(ledger, iid, out, actor="a") == 4
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [s["decision_id"] for s in lines] == [*kept, streamed]
    assert lines[-1]["excerpt"] == "流式输出的最终记录"  # the final row, not the stream_open row
    assert set(lines[0]) == {"decision_id", "created_at", "direction", "scene", "action", "risks", "excerpt"}
    assert lines[0]["risks"] == ["A1h"] and lines[0]["action"] == "block"
    assert "退出训练的人" not in out.read_text(encoding="utf-8")
    exported = [e for e in events(ledger, kind_prefix="incident.samples_exported", limit=None)][-1]
    assert exported.data["exported"] == 4 and exported.data["skipped_opt_out"] == 2
    assert incidents.get_incident(ledger, iid).details["samples"]["exported"] == 4
    assert list(tmp_path.glob(".samples.jsonl.*")) == []  # no temp file left behind
    assert ledger.verify().ok


def test_a_failed_sample_export_leaves_the_old_file_and_no_event(ledger: Ledger, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    iid = incidents.open_incident(ledger, title="t", summary="", decision_ids=[record(ledger)], case_id=None,
                                  actor="a")
    out = tmp_path / "samples.jsonl"
    out.write_text("previous export\n", encoding="utf-8")

    def broken(*args: Any, **kw: Any) -> str:
        raise incidents.LedgerError("disk full")

    monkeypatch.setattr(incidents, "append_event", broken)
    with pytest.raises(incidents.LedgerError, match="disk full"):
        incidents.export_samples(ledger, iid, out, actor="a")
    assert out.read_text(encoding="utf-8") == "previous export\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert "samples" not in incidents.get_incident(ledger, iid).details


# -- over HTTP ----------------------------------------------------------------------------------------

@pytest.fixture
def api(ledger: Ledger, tmp_path: Path) -> Iterator[tuple[httpx.Client, Ledger]]:
    cfg = write_config(tmp_path, {"gateway": {"admin_key": ADMIN_KEY}, "provider": {"name": "Example-Tech"},
                                  "upstreams": [{"name": "demo", "base_url": "demo", "models": ["*"]}]})
    add_test_keys(ledger)
    app = create_app(cfg, moderator=make_moderator({"赌博": "A1h"}), ledger=ledger)
    with serve(app) as url, httpx.Client(base_url=url, timeout=60,
                                         headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        yield client, ledger


def test_the_whole_life_over_the_admin_api(api: tuple[httpx.Client, Ledger]) -> None:
    client, ledger = api
    base = datetime.now(UTC) - timedelta(hours=5)
    ids = [record(ledger, when=base + timedelta(minutes=40 * i)) for i in range(4)]
    r = client.post("/admin/incidents", json={"title": "生成赌博推广内容", "summary": "摘要", "decision_ids": ids[:3]})
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    assert r.json()["status"] == "open" and r.json()["opened_by"] == "admin"

    r = client.post(f"/admin/incidents/{iid}/decisions", json={"decision_ids": [ids[3]]})
    assert r.status_code == 200 and r.json()["incident"]["decision_ids"] == ids and r.json()["event_id"]
    r = client.post(f"/admin/incidents/{iid}/rectification", json={"rectification": "too early"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    for step, body, status in (("containment", {"stopped": "已删除"}, "contained"),
                               ("rectification", {"rectification": "模型微调"}, "rectified"),
                               ("reported", {"authority": "网信办", "reference": "No.1"}, "reported"),
                               ("close", None, "closed")):
        r = client.post(f"/admin/incidents/{iid}/{step}", json=body) if body else \
            client.post(f"/admin/incidents/{iid}/{step}")
        assert r.status_code == 200, (step, r.text)
        assert r.json()["incident"]["status"] == status and r.json()["event_id"].startswith("ev_")
    assert client.get(f"/admin/incidents/{iid}").json()["status"] == "closed"
    listed = client.get("/admin/incidents", params={"status": "closed"}).json()
    assert listed["object"] == "list" and [i["id"] for i in listed["data"]] == [iid]
    assert ledger.verify().ok

    r = client.get(f"/admin/incidents/{iid}/report.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json()["incident"]["title"] == "生成赌博推广内容" and len(r.json()["decisions"]) == 4
    assert r.json()["provider"]["name"] == "Example-Tech"
    r = client.get(f"/admin/incidents/{iid}/report.docx")
    assert r.status_code == 200 and r.content[:2] == b"PK" and "wordprocessingml" in r.headers["content-type"]
    r = client.get(f"/admin/incidents/{iid}/report.pdf")
    assert r.status_code == 200 and r.content[:5] == b"%PDF-" and r.headers["content-type"] == "application/pdf"
    assert f'filename="incident-{iid}.pdf"' in r.headers["content-disposition"]


def test_the_api_refuses_bad_requests_clearly(api: tuple[httpx.Client, Ledger]) -> None:
    client, ledger = api
    r = client.post("/admin/incidents", json={"title": "t", "decision_ids": ["0" * 32]})
    assert r.status_code == 404 and "no decision 000" in r.json()["error"]["message"]
    r = client.post("/admin/incidents", json={"title": "t", "decision_ids": []})
    assert r.status_code == 400 and r.json()["error"]["param"] == "decision_ids"
    r = client.post("/admin/incidents", json={"title": "t", "decision_ids": [record(ledger)], "extra": 1})
    assert r.status_code == 400
    assert client.get("/admin/incidents/in_nope").status_code == 404
    assert client.get("/admin/incidents/in_nope/report.pdf").status_code == 404
    assert client.get("/admin/incidents", params={"status": "lost"}).status_code == 400
    r = client.get("/admin/incidents", headers={"Authorization": f"Bearer {TEST_KEY}"})
    assert r.status_code == 403
    assert client.get("/admin/incidents", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = client.delete("/admin/incidents")
    assert r.status_code == 405 and set(r.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    assert incidents.list_incidents(ledger) == []


# -- the CLI ------------------------------------------------------------------------------------------

@pytest.fixture()
def url(migrated_ledger_url: str) -> str:
    return migrated_ledger_url


def ok(*args: str) -> str:
    res = runner.invoke(cli_app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def test_the_whole_life_through_the_cli(url: str, tmp_path: Path) -> None:
    with Ledger.open(url) as ledger:
        ids = [record(ledger), record(ledger), record(ledger, opt_out=True)]
    out = ok("incidents", "open", "--url", url, "--title", "生成赌博推广内容", "-d", ids[0], "-d", ids[2],
             "--summary", "摘要", "--actor", "staff:li", "--json")
    iid = json.loads(out)["id"]
    assert "1 decision(s) added" in ok("incidents", "add-decisions", iid, "-d", ids[1], "--url", url)
    ok("incidents", "contain", iid, "--stopped", "已删除", "--url", url)
    samples = tmp_path / "samples.jsonl"
    out = ok("incidents", "samples", iid, "--out", str(samples), "--url", url)
    assert "2 sample(s); left out 1 opted out of training" in out
    assert {json.loads(line)["decision_id"] for line in samples.read_text().splitlines()} == {ids[0], ids[1]}
    ok("incidents", "rectify", iid, "--text", "模型微调", "--url", url)
    ok("incidents", "reported", iid, "--authority", "网信办", "--reference", "No.7", "--url", url)
    folder = tmp_path / "report"
    out = ok("incidents", "report", iid, "--out", str(folder), "--format", "json,docx", "--url", url)
    assert "3 decisions" in out
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["chart.png", "chart.svg", f"incident-{iid}.json", f"incident-{iid}.docx"])
    ok("incidents", "close", iid, "--url", url)
    assert f"{iid}\tclosed\t3 decisions\t生成赌博推广内容" in ok("incidents", "list", "--url", url)
    shown = ok("incidents", "show", iid, "--url", url)
    assert "incident.samples_exported" in shown and "reported   to 网信办 (No.7)" in shown
    shown_json = json.loads(ok("incidents", "show", iid, "--url", url, "--json"))
    assert [e["kind"] for e in shown_json["events"]][-1] == "incident.closed"
    assert shown_json["events"][0]["actor"] == "staff:li"
    with Ledger.open(url) as ledger:
        assert ledger.verify().ok


def test_cli_errors_are_one_line_with_exit_2(url: str, tmp_path: Path) -> None:
    res = runner.invoke(cli_app, ["incidents", "open", "--url", url, "--title", "t", "-d", "missing"])
    assert res.exit_code == 2 and res.output.strip() == "error: decision_ids: no decision missing in the ledger"
    res = runner.invoke(cli_app, ["incidents", "close", "in_nope", "--url", url])
    assert res.exit_code == 2 and res.output.strip() == "error: no incident in_nope"
    with Ledger.open(url) as ledger:
        did = record(ledger)
    iid = json.loads(ok("incidents", "open", "--url", url, "--title", "t", "-d", did, "--json"))["id"]
    res = runner.invoke(cli_app, ["incidents", "close", iid, "--url", url])
    assert res.exit_code == 2 and "is open: it cannot be closed (possible: contained)" in res.output
    res = runner.invoke(cli_app, ["incidents", "report", iid, "--url", url, "--out", str(tmp_path / "r"),
                                  "--format", "pdf,odt"])
    assert res.exit_code == 2 and res.output.strip() == "error: --format: odt is not one of json, docx, pdf"
    assert not (tmp_path / "r").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    res = runner.invoke(cli_app, ["incidents", "report", iid, "--url", url, "--out", str(tmp_path / "full")])
    assert res.exit_code == 2 and "already exists and is not an empty folder" in res.output
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["x"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
