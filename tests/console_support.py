"""Shared helpers of the console tests: an app with the console, staff members logged in through the
real login form, and the CSRF token of a page's form.

    with ledger_for(backend, tmp_path, postgres_url) as ledger:
        app = console_app(tmp_path, ledger=ledger)
        with TestClient(app) as client:
            staff = login(client, "reviewer")
            token = csrf(client, "/console/review")
            client.post("/console/review/...", data={"csrf_token": token, ...})
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from gateway_support import ADMIN_KEY, make_moderator, write_config
from hegui.gateway.app import create_app
from hegui.web.console.base import Console, Staff

PASSWORD = "correct horse battery"
TOKEN_RE = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
_numbers = itertools.count(1)


def console_config(folder: Path, console: dict[str, Any] | None = None, **sections: Any) -> Any:
    """A config for console tests: the demo upstream, the admin key, ``console`` as given."""
    return write_config(folder, {
        "gateway": {"admin_key": ADMIN_KEY},
        "labeling": {"explicit": False},
        "upstreams": [{"name": "demo", "base_url": "demo", "models": ["*"]}],
        "cases": {"attachments_dir": "attachments"},
        "console": console or {},
        **sections,
    })


def console_app(folder: Path, *, ledger: Any, console: dict[str, Any] | None = None,
                words: dict[str, str] | None = None, **sections: Any) -> Any:
    """The gateway's app with the console, on ``ledger``. ``console`` is the config section;
    ``words`` the test detector's word → risk table; other keyword arguments are config sections."""
    cfg = console_config(folder, console, **sections)
    return create_app(cfg, moderator=make_moderator(words or {"赌博": "A1h"}), ledger=ledger)


def the_console(app: Any) -> Console:
    console = app.state.gateway.console
    assert isinstance(console, Console), "the console is not mounted"
    return console


def csrf(client: TestClient, path: str) -> str:
    """The CSRF token of the (first) form on the page at ``path``."""
    r = client.get(path)
    assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text[:300]}"
    found = TOKEN_RE.search(r.text)
    assert found, f"the page {path} carries no CSRF token"
    return found.group(1)


def make_staff(client: TestClient, role: str, *, username: str | None = None, password: str = PASSWORD,
               display_name: str = "") -> str:
    """Create a staff member with the store (no login); their username."""
    console = the_console(client.app)
    username = username or f"{role}{next(_numbers)}"
    console.staff.create(username, password, role, display_name=display_name or f"Test {role}",
                         actor="test")
    return username


def login_as(client: TestClient, username: str, password: str = PASSWORD, *, totp: str | None = None,
             next: str | None = None) -> Any:
    """POST the real login form (with its login-CSRF token) as ``username``; the response (not followed)."""
    token = csrf(client, "/console/login")
    data = {"csrf_token": token, "username": username, "password": password}
    if totp is not None:
        data["totp"] = totp
    if next is not None:
        data["next"] = next
    return client.post("/console/login", data=data, follow_redirects=False)


def login(client: TestClient, role: str, *, username: str | None = None) -> Staff:
    """Create a staff member with ``role`` and log ``client`` in as them through ``/console/login``;
    the client now carries their session cookie. Returns the staff member."""
    username = make_staff(client, role, username=username)
    r = login_as(client, username)
    assert r.status_code == 303, f"login as {username}: {r.status_code} {r.text[:300]}"
    console = the_console(client.app)
    staff = None
    for cookie in client.cookies.jar:
        if cookie.name == "hegui_staff" and cookie.value:
            token = console.token_from_cookie(cookie.value.strip('"'))
            staff = console.staff.session(token) if token else None
    assert staff is not None, "no live session cookie after login"
    return staff
