"""``hegui staff …`` through typer's CliRunner on SQLite and PostgreSQL: create (password from stdin
or asked twice), list (table and JSON), disable, totp; user errors are one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyotp
import pytest
from typer.testing import CliRunner

from hegui.cli import app
from hegui.config import ConsoleConfig
from hegui.ledger.events import events
from hegui.ledger.store import Ledger
from hegui.web.staff import LoginRefused, StaffStore

runner = CliRunner()
PASSWORD = "a long enough password"


@pytest.fixture()
def url(migrated_ledger_url: str) -> str:
    return migrated_ledger_url


def ok(*args: str, input: str | None = None) -> str:
    res = runner.invoke(app, list(args), input=input)
    assert res.exit_code == 0, res.output
    return res.output


def fails(*args: str, input: str | None = None) -> str:
    """Exit 2 with one line starting ``error:`` and no traceback; returns that line."""
    res = runner.invoke(app, list(args), input=input)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert "Traceback" not in res.output
    return lines[0]


def store(url: str) -> Any:
    ledger = Ledger.open(url)
    return ledger, StaffStore(ledger, ConsoleConfig())


def test_create_list_disable_totp(url: str) -> None:
    out = ok("staff", "create", "alice", "--role", "admin", "--display-name", "Alice 李", "--password-stdin",
             "--url", url, "--actor", "cli:test", input=PASSWORD + "\n")
    assert out.startswith("created alice (admin) st_")
    ok("staff", "create", "bob", "--role", "viewer", "--password-stdin", "--url", url, input=PASSWORD + "\n")
    table = ok("staff", "list", "--url", url)
    assert "alice" in table and "admin" in table and "Alice 李" in table and "bob" in table
    rows = json.loads(ok("staff", "list", "--json", "--url", url))
    assert [(r["username"], r["role"], r["totp"], r["disabled"]) for r in rows] == \
        [("alice", "admin", False, False), ("bob", "viewer", False, False)]

    ledger, staff = store(url)
    with ledger:
        person, _token = staff.authenticate("alice", PASSWORD)
        assert person.role == "admin" and person.display_name == "Alice 李"

    totp = ok("staff", "totp", "alice", "--url", url)
    secret = totp.split("secret: ", 1)[1].split()[0]
    assert "otpauth://totp/" in totp and f"secret={secret}" in totp
    ledger, staff = store(url)
    with ledger:
        with pytest.raises(LoginRefused):
            staff.authenticate("alice", PASSWORD)  # the code is needed now
        staff.authenticate("alice", PASSWORD, pyotp.TOTP(secret).now())

    assert ok("staff", "disable", "bob", "--url", url).strip() == "disabled bob"
    rows = json.loads(ok("staff", "list", "--json", "--url", url))
    assert [r["disabled"] for r in rows] == [False, True]
    ledger, staff = store(url)
    with ledger:
        with pytest.raises(LoginRefused):
            staff.authenticate("bob", PASSWORD)
        kinds = [(e.kind, e.actor) for e in events(ledger, kind_prefix="staff.")]
    assert ("staff.created", "cli:test") in kinds
    assert [k for k, _ in kinds].count("staff.created") == 2
    assert "staff.totp_enabled" in [k for k, _ in kinds] and "staff.disabled" in [k for k, _ in kinds]


def test_errors_are_one_line_and_exit_2(url: str) -> None:
    ok("staff", "create", "alice", "--role", "admin", "--password-stdin", "--url", url, input=PASSWORD + "\n")
    assert "is taken" in fails("staff", "create", "alice", "--role", "viewer", "--password-stdin", "--url", url,
                               input=PASSWORD + "\n")
    assert "role 'boss'" in fails("staff", "create", "carol", "--role", "boss", "--password-stdin", "--url", url,
                                  input=PASSWORD + "\n")
    assert "at least 10" in fails("staff", "create", "carol", "--role", "viewer", "--password-stdin", "--url", url,
                                  input="short\n")
    assert "username 'Bad Name'" in fails("staff", "create", "Bad Name", "--role", "viewer", "--password-stdin",
                                          "--url", url, input=PASSWORD + "\n")
    assert "standard input is empty" in fails("staff", "create", "carol", "--role", "viewer", "--password-stdin",
                                              "--url", url, input="")
    assert "--password-stdin" in fails("staff", "create", "carol", "--role", "viewer", "--url", url)
    assert "no staff member 'nobody'" in fails("staff", "disable", "nobody", "--url", url)
    assert "no staff member 'nobody'" in fails("staff", "totp", "nobody", "--url", url)
    ok("staff", "disable", "alice", "--url", url)
    assert "already disabled" in fails("staff", "disable", "alice", "--url", url)
    assert "is disabled" in fails("staff", "totp", "alice", "--url", url)
    assert json.loads(ok("staff", "list", "--json", "--url", url))[0]["username"] == "alice"


def test_password_asked_twice_with_hidden_input(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import getpass

    from hegui.commands import staff as staff_cmd

    answers = iter([PASSWORD, PASSWORD + "x", PASSWORD, PASSWORD])
    asked: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        asked.append(prompt)
        return next(answers)

    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    monkeypatch.setattr(staff_cmd, "_interactive", lambda: True)
    res = runner.invoke(app, ["staff", "create", "dora", "--role", "reviewer", "--url", url])
    assert res.exit_code == 2 and "the two passwords differ" in res.output
    res = runner.invoke(app, ["staff", "create", "dora", "--role", "reviewer", "--url", url])
    assert res.exit_code == 0, res.output
    assert asked == ["password: ", "password again: "] * 2
    assert PASSWORD not in res.output


def test_no_database_is_one_line(tmp_path: Path) -> None:
    line = fails("staff", "list", "--url", f"sqlite:///{tmp_path / 'missing' / 'none.db'}")
    assert "ledger" in line or "database" in line


def test_demo_staff_login_is_created_once_printed_and_works(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from console_support import console_app, login_as
    from gateway_support import ledger_for
    from hegui.commands.serve import DEMO_STAFF, DEMO_STAFF_PASSWORD, demo_banner, ensure_demo_staff

    banner = demo_banner("http://127.0.0.1:8000", tmp_path)
    assert "http://127.0.0.1:8000/console" in banner and f"{DEMO_STAFF} / {DEMO_STAFF_PASSWORD}" in banner
    with ledger_for("sqlite", tmp_path, None) as ledger:
        app = console_app(tmp_path, ledger=ledger)
        ensure_demo_staff(ledger, app.state.gateway.cfg)
        ensure_demo_staff(ledger, app.state.gateway.cfg)  # a second demo run on the same folder
        assert [e.kind for e in events(ledger, kind_prefix="staff.created")] == ["staff.created"]
        with TestClient(app) as client:
            r = login_as(client, DEMO_STAFF, DEMO_STAFF_PASSWORD)
            assert r.status_code == 303
            assert client.get("/console/staff").status_code == 200  # an admin: every page can be tried
