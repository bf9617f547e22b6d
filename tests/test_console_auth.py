"""Logging in to the console over HTTP (the real login form against create_app), on SQLite and
PostgreSQL: passwords, lockout, the per-address limit, second factor, login CSRF, session fixation,
logout, expiry, disabled staff, the ``next`` redirect and the ledger events."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from console_support import PASSWORD, console_app, csrf, login, login_as, make_staff, the_console
from gateway_support import ledger_for
from hegui.ledger.events import events
from hegui.ledger.models import Base, utcnow
from hegui.web.console.auth import GENERIC_ERROR, PRE_COOKIE, safe_next
from hegui.web.console.base import SESSION_COOKIE
from hegui.web.staff import LoginRefused
from hegui.web.staff_models import StaffSession, StaffUser

BACKENDS = ["sqlite", "postgres"]
_sessions = Base.metadata.tables[StaffSession.__tablename__]
_users = Base.metadata.tables[StaffUser.__tablename__]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        request.getfixturevalue("postgres_url")
    return str(request.param)


@contextmanager
def client_for(backend: str, folder: Path, request: pytest.FixtureRequest,
               **console: Any) -> Iterator[TestClient]:
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    with ledger_for(backend, folder, url) as ledger:
        app = console_app(folder, ledger=ledger, console=console)
        with TestClient(app) as client:
            yield client


@pytest.fixture
def client(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    with client_for(backend, tmp_path, request) as c:
        yield c


def session_cookie(client: TestClient) -> str | None:
    for cookie in client.cookies.jar:
        if cookie.name == SESSION_COOKIE:
            return (cookie.value or "").strip('"')
    return None


def set_session(client: TestClient, value: str) -> None:
    """Put ``value`` in the client's session cookie (the one the server sets, replaced)."""
    client.cookies.delete(SESSION_COOKIE)
    client.cookies.set(SESSION_COOKIE, value, domain="testserver.local", path="/console")


def cookie_set_by(r: Any) -> str | None:
    for header in r.headers.get_list("set-cookie"):
        if header.startswith(SESSION_COOKIE + "="):
            return str(header.split(";", 1)[0].split("=", 1)[1].strip('"'))
    return None


def text(r: Any) -> str:
    import html

    return html.unescape(r.text)


def test_good_login_sets_a_strict_http_only_session_cookie_and_redirects(client: TestClient) -> None:
    name = make_staff(client, "reviewer")
    r = login_as(client, name, next="/console/cases?status=open")
    assert r.status_code == 303
    assert r.headers["location"] == "/console/cases?status=open"
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE + "="))
    low = cookie.lower()
    assert "httponly" in low and "samesite=strict" in low and "path=/console" in low
    assert "secure" not in low  # plain http in the test client; Secure is set over https
    page = client.get("/console/staff")
    assert page.status_code == 403  # logged in (not redirected), but a reviewer is not an admin


def test_secure_cookie_over_https(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    with ledger_for(backend, tmp_path, url) as ledger:
        app = console_app(tmp_path, ledger=ledger)
        with TestClient(app, base_url="https://testserver") as c:
            name = make_staff(c, "viewer")
            r = login_as(c, name)
            assert r.status_code == 303
            cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE + "="))
            assert "secure" in cookie.lower()


def test_wrong_password_and_unknown_name_get_the_same_generic_message(client: TestClient) -> None:
    name = make_staff(client, "viewer")
    wrong = login_as(client, name, "not the password")
    unknown = login_as(client, "nobody-here", PASSWORD)
    for r in (wrong, unknown):
        assert r.status_code == 401
        assert GENERIC_ERROR in text(r)
        assert session_cookie(client) is None
    assert "not the password" not in wrong.text


def test_lockout_after_n_failures_says_until_when_and_unlocks_after_the_time(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    with client_for(backend, tmp_path, request, lockout_after_failures=3, lockout_minutes=10) as c:
        name = make_staff(c, "viewer")
        for _ in range(3):
            assert login_as(c, name, "wrong password!").status_code == 401
        locked = login_as(c, name, PASSWORD)  # the right password no longer helps
        assert locked.status_code == 401
        row = the_console(c.app).staff.get(name)
        assert row is not None and row.locked_until is not None
        assert "locked until" in locked.text and f"{row.locked_until:%Y-%m-%d %H:%M}" in locked.text
        assert session_cookie(c) is None
        store = the_console(c.app).staff
        with pytest.raises(LoginRefused) as refused:
            store.authenticate(name, PASSWORD, now=row.locked_until - timedelta(seconds=5))
        assert refused.value.locked
        staff, token = store.authenticate(name, PASSWORD, now=row.locked_until + timedelta(seconds=1))
        assert staff.username == name and token
        unlocked = store.get(name)
        assert unlocked is not None and unlocked.locked_until is None


def test_attempts_per_address_are_limited(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    with client_for(backend, tmp_path, request, login_attempts_per_ip_per_hour=3) as c:
        name = make_staff(c, "viewer")
        for _ in range(3):
            assert login_as(c, name, "wrong password!").status_code == 401
        r = login_as(c, name, PASSWORD)  # right, but over the limit: not even checked
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) > 0
        assert session_cookie(c) is None


def test_session_fixation_a_cookie_from_before_login_is_replaced_and_dead(client: TestClient) -> None:
    first = login(client, "viewer")
    before = session_cookie(client)
    assert before is not None
    second = make_staff(client, "admin")
    r = login_as(client, second)  # a browser holding someone's (live) session logs in again
    assert r.status_code == 303
    after = cookie_set_by(r)
    assert after is not None and after != before
    planted = "planted-by-an-attacker.0000"
    set_session(client, planted)
    r = login_as(client, second)
    assert r.status_code == 303 and cookie_set_by(r) not in (None, planted, after)
    console = the_console(client.app)
    old_token = console.token_from_cookie(before)
    assert old_token is not None and console.staff.session(old_token) is None  # ended at the new login
    fresh = TestClient(client.app)
    set_session(fresh, before)
    assert fresh.get("/console/staff", follow_redirects=False).status_code == 303
    assert first.username != second


def test_logout_ends_the_session_server_side(client: TestClient) -> None:
    staff = login(client, "admin")
    cookie = session_cookie(client)
    assert cookie is not None
    replay = TestClient(client.app)
    set_session(replay, cookie)
    assert replay.get("/console/staff").status_code == 200  # the copied cookie works until the logout
    r = client.post("/console/logout", data={"csrf_token": csrf(client, "/console/staff")},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    assert any(h.startswith(SESSION_COOKIE + "=") and "max-age=0" in h.lower()
               for h in r.headers.get_list("set-cookie"))
    assert the_console(client.app).staff.session(staff.session_token) is None
    r2 = replay.get("/console/staff", follow_redirects=False)
    assert r2.status_code == 303 and r2.headers["location"].startswith("/console/login")


def _age(client: TestClient, token_hash: str, **values: Any) -> None:
    with the_console(client.app).gw.ledger.engine.begin() as conn:
        conn.execute(sa.update(_sessions).where(_sessions.c.token_hash == token_hash).values(**values))


def test_idle_and_absolute_expiry(client: TestClient) -> None:
    from hegui.web.staff import token_hash

    console = the_console(client.app)
    cfg = console.cfg
    idle = login(client, "admin")
    assert client.get("/console/staff").status_code == 200
    now = utcnow()
    _age(client, token_hash(idle.session_token),
         last_seen_at=now - timedelta(minutes=cfg.idle_minutes, seconds=5))
    r = client.get("/console/staff", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login")

    client.cookies.clear()
    absolute = login(client, "admin")
    # used a second ago, but logged in longer ago than session_hours
    _age(client, token_hash(absolute.session_token), last_seen_at=now, expires_at=now - timedelta(seconds=1))
    r = client.get("/console/staff", follow_redirects=False)
    assert r.status_code == 303
    # the store's own clock: alive now, dead after idle_minutes without use
    _, token = console.staff.authenticate(absolute.username, PASSWORD)
    assert console.staff.session(token) is not None
    assert console.staff.session(token, now=utcnow() + timedelta(minutes=cfg.idle_minutes + 1)) is None
    assert console.staff.session(token, now=utcnow() + timedelta(hours=cfg.session_hours + 1)) is None


def test_a_disabled_staff_members_sessions_die(client: TestClient) -> None:
    victim = login(client, "reviewer")
    victim_cookie = session_cookie(client)
    gone = TestClient(client.app)
    set_session(gone, victim_cookie or "")
    assert gone.get("/console/staff", follow_redirects=False).status_code == 403  # logged in, not an admin
    client.cookies.clear()
    admin = login(client, "admin")
    r = client.post(f"/console/staff/{victim.username}/disable", data={"csrf_token": csrf(client, "/console/staff")},
                    follow_redirects=False)
    assert r.status_code == 303
    assert gone.get("/console/staff", follow_redirects=False).status_code == 303
    assert login_as(gone, victim.username).status_code == 401
    row = the_console(client.app).staff.get(victim.username)
    assert row is not None and row.disabled
    assert admin.may("admin")


def test_totp_required_and_checked(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    with client_for(backend, tmp_path, request, require_totp_roles=["admin"]) as c:
        store = the_console(c.app).staff
        name = make_staff(c, "admin")
        # required by the role but not enrolled: no way in
        r = login_as(c, name)
        assert r.status_code == 401 and session_cookie(c) is None
        assert 'name="totp"' in r.text
        secret, uri = store.enable_totp(name, actor="test")
        assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri
        assert login_as(c, name).status_code == 401  # code missing
        assert login_as(c, name, totp="000000" if pyotp.TOTP(secret).now() != "000000" else "111111") \
            .status_code == 401
        assert session_cookie(c) is None
        ok = login_as(c, name, totp=pyotp.TOTP(secret).now())
        assert ok.status_code == 303 and session_cookie(c) is not None
        reasons = [e.data["reason"] for e in events(the_console(c.app).gw.ledger, kind_prefix="staff.login_failed")]
        assert "wrong second factor" in reasons


def test_totp_for_a_role_that_does_not_require_it(client: TestClient) -> None:
    store = the_console(client.app).staff
    name = make_staff(client, "viewer")
    assert 'name="totp"' not in client.get("/console/login").text  # no role requires it: the field is not shown
    secret, _ = store.enable_totp(name, actor="test")
    first = login_as(client, name)
    assert first.status_code == 401 and 'name="totp"' in first.text  # asked for once the password was right
    assert login_as(client, name, totp=pyotp.TOTP(secret).now()).status_code == 303


def test_login_form_needs_its_csrf_token(client: TestClient) -> None:
    name = make_staff(client, "viewer")
    client.get("/console/login")  # the pre-session cookie
    no_token = client.post("/console/login", data={"username": name, "password": PASSWORD}, follow_redirects=False)
    assert no_token.status_code == 403 and session_cookie(client) is None
    forged = client.post("/console/login", data={"csrf_token": "0" * 64, "username": name, "password": PASSWORD},
                         follow_redirects=False)
    assert forged.status_code == 403
    # a token from another browser (another pre-session cookie) does not fit this one
    other = TestClient(client.app)
    theirs = csrf(other, "/console/login")
    r = client.post("/console/login", data={"csrf_token": theirs, "username": name, "password": PASSWORD},
                    follow_redirects=False)
    assert r.status_code == 403 and session_cookie(client) is None
    # no pre-session cookie at all (a cross-site POST from a fresh browser)
    bare = TestClient(client.app)
    r = bare.post("/console/login", data={"csrf_token": theirs, "username": name, "password": PASSWORD},
                  follow_redirects=False)
    assert r.status_code == 403
    assert PRE_COOKIE in {c.name for c in other.cookies.jar}


@pytest.mark.parametrize("target", [
    "https://evil.example/console", "//evil.example/console", "/\\evil.example", "\\\\evil.example",
    "/console@evil.example", "http:/console", "javascript:alert(1)", "/consolex", "/admin/keys",
    "/console/../admin", "/console/%2e%2e/admin", "/console\r\nSet-Cookie: x=1", " //evil.example",
])
def test_next_never_leaves_the_console(target: str) -> None:
    assert safe_next(target) == "/console"


def test_next_keeps_console_paths() -> None:
    assert safe_next("/console/cases/c_1?tab=notes") == "/console/cases/c_1?tab=notes"
    assert safe_next("/console") == "/console"


def test_open_redirect_refused_over_http(client: TestClient) -> None:
    name = make_staff(client, "viewer")
    r = login_as(client, name, next="https://evil.example/")
    assert r.status_code == 303 and r.headers["location"] == "/console"
    page = client.get("/console/login?next=//evil.example/x")
    assert "evil.example" not in page.text


def test_login_events_on_the_chain_and_only_an_argon2_hash_stored(client: TestClient) -> None:
    name = make_staff(client, "viewer")
    login_as(client, name, "wrong password!")
    assert login_as(client, name).status_code == 303
    ledger = the_console(client.app).gw.ledger
    row = the_console(client.app).staff.get(name)
    assert row is not None
    kinds = [(e.kind, e.actor) for e in events(ledger, kind_prefix="staff.")]
    assert ("staff.login_failed", f"staff:{row.id}") in kinds
    assert ("staff.login", f"staff:{row.id}") in kinds
    failed = [e for e in events(ledger, kind_prefix="staff.login_failed")]
    assert failed[-1].data["reason"] == "wrong password"
    assert "wrong password!" not in repr([e.data for e in events(ledger, kind_prefix="staff.")])
    assert ledger.verify().ok
    with ledger.engine.connect() as conn:
        stored = conn.execute(sa.select(_users.c.password_hash).where(_users.c.username == name)).scalar_one()
        session_hashes = conn.execute(sa.select(_sessions.c.token_hash)).scalars().all()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    cookie = session_cookie(client)
    assert cookie is not None
    token = the_console(client.app).token_from_cookie(cookie)
    assert token is not None and token not in session_hashes  # only its SHA-256 is kept
