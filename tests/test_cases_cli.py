"""``hegui cases …`` through typer's CliRunner on SQLite and PostgreSQL: output, exit codes (``overdue``
exits 1 when a case is late), one-line errors, actions (a takedown to a local receiver that checks the
signature) and fulfilment."""

from __future__ import annotations

import io
import json
import re
import threading
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from hegui.accounts.sms import verify_signature
from hegui.accounts.store import AccountStore
from hegui.cases.config import CasesConfig
from hegui.cases.store import CaseStore
from hegui.cli import app
from hegui.ledger.records import DecisionRecord
from hegui.ledger.store import Ledger

runner = CliRunner()
SECRET_ENV = "HEGUI_TEST_CLI_TAKEDOWN_SECRET"
SECRET = "cli-takedown-secret"


class Receiver:
    """A local takedown endpoint: 200 for a correctly signed body, 401 otherwise."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                good = verify_signature(SECRET, body, self.headers.get("x-hegui-signature", ""))
                if good:
                    outer.received.append(json.loads(body))
                self.send_response(200 if good else 401)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/takedown"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def url(migrated_ledger_url: str) -> str:
    return migrated_ledger_url


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture()
def config(tmp_path: Path, url: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    path = tmp_path / "hegui.yaml"
    path.write_text(yaml.safe_dump({
        "ledger": {"url": url},
        "cases": {"takedown": {"webhook_url": receiver.url, "secret_env": SECRET_ENV}},
    }), encoding="utf-8")
    return str(path)


def ok(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def fails(*args: str) -> str:
    """Exit 2 with one line starting ``error:`` and no traceback; returns that line."""
    res = runner.invoke(app, list(args))
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


def open_case(config: str, *extra: str) -> str:
    out = ok("cases", "open", "-c", config, "--kind", "complaint", "--category", "illegal",
             "--description", "赌博广告", *extra)
    m = re.match(r"(cs_[0-9a-f]{16}): opened, due (\d{4}-\d\d-\d\d); the person's code: (HG-[0-9A-Z-]+)", out)
    assert m, out
    return m.group(1)


def store_of(url: str) -> tuple[Ledger, CaseStore]:
    ledger = Ledger.open(url)
    return ledger, CaseStore(ledger, CasesConfig())


def test_a_case_from_open_to_close_and_back(config: str, url: str) -> None:
    case_id = open_case(config, "--reference", "https://example.com/p/1", "--contact", "邮箱 a@b.cn")
    assert f"{case_id}: assigned to 张三 (status in_progress)" in ok("cases", "assign", case_id, "张三", "-c", config)
    assert "note added" in ok("cases", "note", case_id, "已核实", "-c", config, "--actor", "cli:tester")
    assert "replied (status replied)" in ok("cases", "reply", case_id, "已删除。", "-c", config)
    assert "closed (status closed)" in ok("cases", "close", case_id, "-c", config)
    assert "reopened (status in_progress)" in ok("cases", "reopen", case_id, "--reason", "more", "-c", config)
    reply = Path(config).with_name("reply.txt")
    reply.write_text("再次处理完毕。\n", encoding="utf-8")
    assert "replied" in ok("cases", "reply", case_id, "--file", str(reply), "-c", config)

    shown = json.loads(ok("cases", "show", case_id, "-c", config, "--json"))
    assert shown["reply"] == "再次处理完毕。" and shown["assignee"] == "张三" and shown["source"] == "cli"
    assert [e["kind"] for e in shown["events"]] == ["case.opened", "case.assigned", "case.noted", "case.replied",
                                                    "case.closed", "case.reopened", "case.replied"]
    assert shown["events"][2]["actor"] == "cli:tester" and shown["events"][0]["actor"].startswith("cli")
    text = ok("cases", "show", case_id, "-c", config)
    assert "asked     赌博广告" in text and "cli:tester: 已核实" in text and "history   7 event(s)" in text

    listed = json.loads(ok("cases", "list", "-c", config, "--json", "--status", "replied"))
    assert [c["id"] for c in listed] == [case_id]
    table = ok("cases", "list", "-c", config, "--assignee", "张三")
    assert case_id in table and "replied" in table
    assert json.loads(ok("cases", "list", "-c", config, "--json", "--kind", "report")) == []
    ledger = Ledger.open(url)
    try:
        assert ledger.verify().ok
    finally:
        ledger.close()


def test_errors_are_one_line_with_exit_2(config: str) -> None:
    case_id = open_case(config)
    assert fails("cases", "show", "cs_nothing", "-c", config) == "error: no case cs_nothing"
    assert "cannot be reopened" in fails("cases", "reopen", case_id, "--reason", "x", "-c", config)
    assert "no reply yet" in fails("cases", "close", case_id, "-c", config)
    assert fails("cases", "list", "--status", "lost", "-c", config).startswith("error: --status: 'lost'")
    assert "category must be one of" in fails("cases", "open", "--kind", "complaint", "--description", "x",
                                              "-c", config)
    assert fails("cases", "open", "--kind", "x", "--description", "x", "-c", config).startswith("error: --kind")
    assert "--account: no account acc_nobody" in fails("cases", "open", "--kind", "complaint", "--category", "ip",
                                                       "--description", "x", "--account", "acc_nobody", "-c", config)
    assert "TEXT or with --file" in fails("cases", "reply", case_id, "-c", config)
    assert "--file: cannot read" in fails("cases", "reply", case_id, "--file", "/nonexistent/r.txt", "-c", config)
    assert "--step is required" in fails("cases", "action", case_id, "enforce", "--reason", "x", "-c", config)
    assert "ACTION: 'dance'" in fails("cases", "action", case_id, "dance", "-c", config)
    assert "not a personal-information request" in fails("cases", "fulfil", case_id, "-c", config)


def test_overdue_exits_1_when_a_case_is_late_and_0_when_none(config: str, url: str) -> None:
    res = runner.invoke(app, ["cases", "overdue", "-c", config])
    assert res.exit_code == 0 and "no overdue cases" in res.output
    open_case(config)  # due in 15 working days: not late
    assert runner.invoke(app, ["cases", "overdue", "-c", config]).exit_code == 0
    ledger, store = store_of(url)
    try:
        late, _ = store.open_case("report", category="privacy", description="x",
                                  now=datetime(2025, 1, 6, 4, tzinfo=UTC))
    finally:
        ledger.close()
    res = runner.invoke(app, ["cases", "overdue", "-c", config])
    assert res.exit_code == 1 and late in res.output and "overdue" in res.output
    res = runner.invoke(app, ["cases", "overdue", "-c", config, "--json"])
    assert res.exit_code == 1 and [c["id"] for c in json.loads(res.output)] == [late]
    assert [c["id"] for c in json.loads(ok("cases", "list", "--overdue", "--json", "-c", config))] == [late]
    # handled: no longer overdue
    ok("cases", "reply", late, "处理完毕", "-c", config)
    assert runner.invoke(app, ["cases", "overdue", "-c", config]).exit_code == 0


def test_actions_enforce_lexicon_takedown_incident(config: str, url: str, receiver: Receiver) -> None:
    ledger = Ledger.open(url)
    try:
        ledger.ensure_account("acc_cli", name="cli")
        did = "dec_" + uuid.uuid4().hex[:16]
        ledger.record_decision(DecisionRecord(
            decision_id=did, request_id=uuid.uuid4().hex, account_id="acc_cli", api_key_id="k", model="m",
            direction="input", scene="default", action="refuse", risks=["A1h"], findings=[], detector_ms={},
            excerpt=""))
    finally:
        ledger.close()
    case_id = open_case(config, "--account", "acc_cli", "--reference", did)
    out = ok("cases", "action", case_id, "enforce", "--step", "restrict", "--reason", "赌博广告", "-c", config)
    assert "acc_cli is restricted" in out
    out = ok("cases", "action", case_id, "lexicon", "--text", "新赌词cli", "--risk", "A1h", "-c", config)
    assert re.search(r"entry \S+ added", out)
    out = ok("cases", "action", case_id, "takedown", "--target", "https://example.com/p/2", "--reason", "违法",
             "-c", config)
    assert "takedown sent (200)" in out
    assert receiver.received[-1]["case"] == case_id and receiver.received[-1]["target"] == "https://example.com/p/2"
    out = ok("cases", "action", case_id, "incident", "--title", "赌博广告", "-c", config, "--json")
    assert json.loads(out)["incident_id"].startswith("in_")

    ledger, store = store_of(url)
    try:
        kinds = [e.kind for e in store.history(case_id)]
        assert kinds[1:] == ["case.action.enforce", "case.action.lexicon", "case.action.takedown",
                             "case.action.incident"]
        assert store.history(case_id)[1].data["evidence"] == [did]
        assert AccountStore(ledger).profile("acc_cli").standing == "restricted"
        assert ledger.verify().ok
    finally:
        ledger.close()


def test_a_failed_takedown_exits_1_and_is_recorded(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch,
                                                    receiver: Receiver) -> None:
    monkeypatch.setenv(SECRET_ENV, "the wrong secret")  # the receiver refuses the signature: 401
    path = tmp_path / "wrong.yaml"
    path.write_text(yaml.safe_dump({"ledger": {"url": url},
                                    "cases": {"takedown": {"webhook_url": receiver.url, "secret_env": SECRET_ENV}}}))
    case_id = open_case(str(path))
    res = runner.invoke(app, ["cases", "action", case_id, "takedown", "--target", "t", "--reason", "r",
                              "-c", str(path)])
    assert res.exit_code == 1 and "takedown failed: the webhook answered 401" in res.output
    assert receiver.received == []
    ledger, store = store_of(url)
    try:
        assert store.history(case_id)[-1].data["status"] == "failed"
    finally:
        ledger.close()


def test_fulfil_writes_the_zip_and_withdraws_consent(config: str, url: str, tmp_path: Path) -> None:
    ledger = Ledger.open(url)
    try:
        ledger.ensure_account("acc_pi", name="pi")
    finally:
        ledger.close()
    out = ok("cases", "open", "-c", config, "--kind", "pi_request", "--pi-action", "access", "--description",
             "我要查看我的数据", "--account", "acc_pi")
    access = out.split(":", 1)[0]
    target = tmp_path / "copy.zip"
    assert f"written to {target}" in ok("cases", "fulfil", access, "--out", str(target), "-c", config)
    with zipfile.ZipFile(io.BytesIO(target.read_bytes())) as zf:
        assert "acc_pi" in zf.read("data.json").decode()
    assert not target.with_name("copy.zip.part").exists()
    out = ok("cases", "open", "-c", config, "--kind", "pi_request", "--pi-action", "withdraw_consent",
             "--description", "撤回同意", "--account", "acc_pi")
    withdraw = out.split(":", 1)[0]
    assert "training opt-out set on acc_pi" in ok("cases", "fulfil", withdraw, "-c", config)
    ledger = Ledger.open(url)
    try:
        assert AccountStore(ledger).profile("acc_pi").training_opt_out is True
    finally:
        ledger.close()
