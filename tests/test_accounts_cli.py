"""``hegui accounts …``, ``hegui appeals …`` and ``hegui agreements …`` through typer's CliRunner (and
once as a real process): output, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hegui.accounts.store import AccountStore
from hegui.cli import app
from hegui.ledger.events import events
from hegui.ledger.records import DecisionRecord
from hegui.ledger.store import Ledger

runner = CliRunner()

PRIVACY = "# 隐私政策\n\n我们对生成内容添加显式标识和隐式标识。\n"
SERVICE = "# 服务协议\n\n请文明使用。\n"


@pytest.fixture()
def url(migrated_ledger_url: str) -> str:
    return migrated_ledger_url


def run(*args: str) -> object:
    return runner.invoke(app, list(args))


def ok(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def fails(*args: str) -> str:
    """Exit 2 with one line on stderr starting ``error:`` and no traceback; returns that line."""
    res = runner.invoke(app, list(args))
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert "Traceback" not in res.output
    return lines[0]


def person(url: str, phone: str = "13800138000") -> str:
    with Ledger.open(url) as led:
        account, _ = AccountStore(led).register_person(phone, age_band="adult")
    return account


def refusal(url: str, account: str) -> str:
    did = "dec_" + uuid.uuid4().hex[:12]
    with Ledger.open(url) as led:
        led.record_decision(DecisionRecord(did, "req", account, None, None, "input", "default", "refuse",
                                           ["A1h"], [], {}, ""))
    return did


def test_list_and_show(url: str) -> None:
    account = person(url)
    out = ok("accounts", "list", "--url", url)
    assert account in out and "138****8000" in out and "good" in out and "13800138000" not in out
    assert ok("accounts", "list", "--standing", "warned", "--url", url).strip() == ""
    rows = json.loads(ok("accounts", "list", "--json", "--url", url))
    assert rows[0]["account_id"] == account and rows[0]["standing_now"] == "good"
    assert "--standing: 'naughty' is not one of" in fails("accounts", "list", "--standing", "naughty", "--url", url)

    out = ok("accounts", "show", account, "--url", url)
    assert f"account   {account} (person, verified)" in out and "phone     138****8000" in out
    assert "account.registered" in out and "appeals   0" in out
    shown = json.loads(ok("accounts", "show", account, "--json", "--url", url))
    assert shown["account"]["phone"] == "138****8000" and shown["events"][0]["kind"] == "account.registered"
    assert fails("accounts", "show", "acc_nobody", "--url", url) == "error: no account acc_nobody"


def test_every_action(url: str) -> None:
    account = person(url)
    evidence = refusal(url, account)
    out = ok("accounts", "warn", account, "--reason", "ads for gambling", "--evidence", evidence, "--url", url)
    assert out.startswith(f"{account}: warned (event ev_")
    assert ok("accounts", "restrict", account, "-r", "again", "--url", url).startswith(f"{account}: restricted")
    out = ok("accounts", "suspend", account, "-r", "third", "--days", "3", "--url", url)
    assert f"{account}: suspended until " in out
    out = ok("accounts", "suspend", account, "-r", "a date", "--until", "2099-01-01", "--url", url)
    assert "until 2099-01-01T00:00+08:00" in out  # a bare date is the provider's midnight
    assert ok("accounts", "list", "--standing", "suspended", "--url", url).startswith(account)
    out = ok("accounts", "terminate", account, "-r", "fraud", "--actor", "alice", "--url", url)
    assert f"{account}: terminated" in out
    assert "is terminated; only restore" in fails("accounts", "warn", account, "-r", "x", "--url", url)
    assert ok("accounts", "restore", account, "-r", "court order", "--url", url).startswith(f"{account}: good")

    with Ledger.open(url) as led:
        steps = events(led, account_id=account, kind_prefix="ladder.", limit=None)
        assert [e.kind for e in steps] == ["ladder.warned", "ladder.restricted", "ladder.suspended",
                                           "ladder.suspended", "ladder.terminated", "ladder.restored"]
        assert steps[0].data["evidence"] == [evidence] and steps[0].actor.startswith("cli")
        assert steps[4].actor == "alice"
        assert led.verify().ok
    out = ok("accounts", "show", account, "--url", url)
    assert "ladder.terminated  by alice  suspended → terminated  fraud" in out
    assert f"evidence: {evidence}" in out


def test_action_errors_are_one_line(url: str) -> None:
    account = person(url)
    assert "a suspension needs an end" in fails("accounts", "suspend", account, "-r", "x", "--url", url)
    assert "not both" in fails("accounts", "suspend", account, "-r", "x", "--days", "1", "--until", "2099-01-01",
                               "--url", url)
    assert "not in the future" in fails("accounts", "suspend", account, "-r", "x", "--until", "2001-01-01",
                                        "--url", url)
    assert "is not an ISO date" in fails("accounts", "suspend", account, "-r", "x", "--until", "soon", "--url", url)
    assert "no decision dec_nope" in fails("accounts", "warn", account, "-r", "x", "-e", "dec_nope", "--url", url)
    assert "a reason is required" in fails("accounts", "warn", account, "-r", "  ", "--url", url)
    assert fails("accounts", "restrict", "acc_nobody", "-r", "x", "--url", url) == "error: no account acc_nobody"
    res = run("accounts", "warn", account, "--url", url)  # --reason is required: click's usage error
    assert res.exit_code == 2 and "--reason" in res.output  # type: ignore[attr-defined]
    assert "no ledger database" in fails("accounts", "list", "--url", f"sqlite:///{uuid.uuid4().hex}/none.db")
    with Ledger.open(url) as led:
        assert AccountStore(led).profile(account).standing == "good"


def test_appeals(url: str) -> None:
    account = person(url)
    ok("accounts", "suspend", account, "-r", "spam", "--days", "7", "--url", url)
    out = ok("appeals", "file", account, "--reason", "it was my brother", "--url", url)
    appeal = out.split()[1]
    assert appeal.startswith("ap_")
    out = ok("appeals", "list", "--status", "open", "--url", url)
    assert appeal in out and "it was my brother" in out
    assert json.loads(ok("appeals", "list", "--json", "--account", account, "--url", url))[0]["id"] == appeal
    assert "give --restore or --uphold" in fails("appeals", "decide", appeal, "-r", "x", "--url", url)
    out = ok("appeals", "decide", appeal, "--restore", "-r", "believable", "--url", url)
    assert out.strip() == f"appeal {appeal}: restored; account {account} is good"
    assert "already decided (restored)" in fails("appeals", "decide", appeal, "--uphold", "-r", "x", "--url", url)
    assert fails("appeals", "decide", "ap_nothing", "--uphold", "-r", "x", "--url", url) == "error: no appeal ap_nothing"
    second = ok("appeals", "file", account, "-r", "我的手机13800138000被盗了", "--url", url).split()[1]
    with Ledger.open(url) as led:
        (stored,) = [a for a in AccountStore(led).appeals(account_id=account) if a["id"] == second]
        assert "13800138000" not in stored["reason"] and "被盗了" in stored["reason"]  # masked as excerpts are
    assert "upheld" in ok("appeals", "decide", second, "--uphold", "-r", "no", "--url", url)
    assert ok("appeals", "list", "--status", "open", "--url", url).strip() == ""
    assert "--status: 'pending'" in fails("appeals", "list", "--status", "pending", "--url", url)
    assert fails("appeals", "file", "acc_nobody", "-r", "x", "--url", url) == "error: no account acc_nobody"
    out = ok("accounts", "show", account, "--url", url)
    assert "appeals   2" in out and "restored" in out and "upheld" in out


def write_config(folder: Path, url: str, docs: list[dict[str, str]]) -> Path:
    path = folder / "hegui.yaml"
    path.write_text(yaml.safe_dump({"ledger": {"url": url}, "accounts": {"agreements": docs}}), encoding="utf-8")
    return path


def test_agreements_publish_and_list(url: str, tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "privacy.md").write_text(PRIVACY, encoding="utf-8")
    (tmp_path / "docs" / "service.md").write_text(SERVICE, encoding="utf-8")
    docs = [{"kind": "service", "version": "2026-12", "effective": "2026-12-01", "path": "docs/service.md"},
            {"kind": "privacy", "version": "2026-12", "effective": "2026-12-01", "path": "docs/privacy.md"}]
    config = write_config(tmp_path, url, docs)
    out = ok("agreements", "publish", "--config", str(config))
    assert "published service 2026-12 (effective 2026-12-01)" in out and "2 new version(s) published" in out
    out = ok("agreements", "publish", "--config", str(config))
    assert "already published: service 2026-12" in out and "nothing new to publish" in out
    listed = ok("agreements", "list", "--url", url)
    assert "service\t2026-12\teffective 2026-12-01" in listed and "privacy\t2026-12" in listed
    rows = json.loads(ok("agreements", "list", "--json", "--url", url))
    assert {r["kind"] for r in rows} == {"service", "privacy"} and "text" not in rows[0]

    # a changed text under a published version: refused, naming the file
    (tmp_path / "docs" / "service.md").write_text(SERVICE + "新增条款。\n", encoding="utf-8")
    line = fails("agreements", "publish", "--config", str(config))
    assert "service.md" in line and "already published with another text" in line
    # as a new version it goes through
    docs.append({"kind": "service", "version": "2027-01", "effective": "2027-01-01", "path": "docs/service.md"})
    docs[0]["path"] = "docs/service-2026-12.md"
    (tmp_path / "docs" / "service-2026-12.md").write_text(SERVICE, encoding="utf-8")
    config = write_config(tmp_path, url, docs)
    out = ok("agreements", "publish", "--config", str(config))
    assert "published service 2027-01" in out and "1 new version(s)" in out
    with Ledger.open(url) as led:
        kinds = [e.kind for e in events(led, kind_prefix="agreement.", limit=None)]
        assert kinds == ["agreement.published"] * 3 and led.verify().ok


def test_agreements_publish_checks_every_file_first(url: str, tmp_path: Path) -> None:
    (tmp_path / "service.md").write_text(SERVICE, encoding="utf-8")
    (tmp_path / "privacy.md").write_text("# 隐私政策\n\n我们保护你的个人信息。\n", encoding="utf-8")
    docs = [{"kind": "service", "version": "1", "effective": "2026-12-01", "path": "service.md"},
            {"kind": "privacy", "version": "1", "effective": "2026-12-01", "path": "privacy.md"}]
    line = fails("agreements", "publish", "--config", str(write_config(tmp_path, url, docs)))
    assert "privacy.md: the privacy policy must say how generated content is labelled" in line
    assert "标识" in line
    assert ok("agreements", "list", "--url", url).strip() == ""  # nothing published, not even the service text
    (tmp_path / "privacy.md").write_text("We label generated content (explicit and implicit labels).\n",
                                         encoding="utf-8")
    docs.append({"kind": "service", "version": "2", "effective": "2027-01-01", "path": "missing.md"})
    line = fails("agreements", "publish", "--config", str(write_config(tmp_path, url, docs)))
    assert "missing.md: service agreement 2: file not found" in line
    (tmp_path / "empty.md").write_text("  \n", encoding="utf-8")
    docs[-1]["path"] = "empty.md"
    assert "the file is empty" in fails("agreements", "publish", "--config", str(write_config(tmp_path, url, docs)))
    line = fails("agreements", "publish", "--config", str(write_config(tmp_path, url, [])))
    assert "accounts.agreements lists no documents" in line
    assert "config file not found" in fails("agreements", "publish", "--config", str(tmp_path / "nope.yaml"))


def test_every_command_explains_itself() -> None:
    for group, commands in {"accounts": ["list", "show", "warn", "restrict", "suspend", "restore", "terminate"],
                            "appeals": ["file", "list", "decide"], "agreements": ["publish", "list"]}.items():
        assert ok(group, "--help")
        for command in commands:
            assert "Usage:" in ok(group, command, "--help")


def test_a_real_process_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    Ledger.open(db).close()
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    proc = subprocess.run([sys.executable, "-m", "hegui.cli", "accounts", "suspend", "acc_x", "-r", "x", "--url", db],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "error: no account acc_x" and proc.stdout == ""
