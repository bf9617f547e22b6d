"""Every console route, on every method it allows, is behind the guard: anonymous → 303 to the login
page, a lower role → 403, a POST without the form's CSRF token → 403. The routes are enumerated from
the app itself, so a page added later is checked without anyone remembering to add it here, and a
``/console`` route mounted without being declared (outside :meth:`Console.mount`) fails."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import BaseRoute, Mount, Route
from starlette.testclient import TestClient

from console_support import console_app, login, the_console
from gateway_support import ledger_for
from hegui.web.console.base import RANK, ROLES, ConsoleRoute

PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")
PUBLIC = {"/console/login", "/console/static/{name}"}
"""The only routes without a role: the login page and its stylesheet."""


def fill(path: str) -> str:
    """The path with every parameter replaced by a dummy value of its type."""
    return PARAM.sub(lambda m: "1" if m.group(2) in ("int", "float") else "dummy-1", path)


def console_paths(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    for route in routes:
        if isinstance(route, Mount):
            yield from console_paths(list(route.routes), prefix + route.path)
        elif isinstance(route, Route):
            path = prefix + route.path
            if path == "/console" or path.startswith("/console/"):
                yield path, set(route.methods or ())
        else:
            path = prefix + str(getattr(route, "path", ""))
            if path.startswith("/console"):
                yield path, {"?"}


@pytest.fixture(scope="module")
def app_and_clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, TestClient]]]:
    folder = tmp_path_factory.mktemp("console-access")
    with ledger_for("sqlite", folder, None) as ledger:
        app = console_app(folder, ledger=ledger)
        with TestClient(app) as anonymous:
            clients = {"anonymous": anonymous}
            for role in ROLES:
                client = TestClient(app)
                login(client, role)
                clients[role] = client
            yield app, clients


def declared(app: Any) -> list[ConsoleRoute]:
    return list(the_console(app).declared)


def test_every_mounted_console_route_is_declared_with_a_role(app_and_clients: Any) -> None:
    app, _ = app_and_clients
    known = {(r.path, m) for r in declared(app) for m in r.methods}
    mounted = list(console_paths(app.routes))
    assert len(mounted) >= 5, "the console is not mounted"
    for path, methods in mounted:
        for method in methods - {"HEAD"}:
            assert (path, method) in known, f"{method} {path} is mounted without being declared with a role"
    for route in declared(app):
        assert route.role in RANK or (route.role is None and route.path in PUBLIC), \
            f"{route.path}: role {route.role!r}; only the login page may have none"


def cases() -> Iterator[Any]:
    """(route, method) pairs, enumerated at collection time from an app built on a throwaway ledger."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder, ledger_for("sqlite", Path(folder), None) as ledger:
        app = console_app(Path(folder), ledger=ledger)
        for route in the_console(app).declared:
            # Starlette answers HEAD wherever it answers GET: checked too
            for method in (*route.methods, *(("HEAD",) if "GET" in route.methods else ())):
                yield pytest.param(route.path, method, route.role, id=f"{method} {route.path}")


ROUTES = list(cases())
GUARDED = [p for p in ROUTES if p.values[2] is not None]
ABOVE_VIEWER = [p for p in GUARDED if RANK[str(p.values[2])] > 0]
GUARDED_POSTS = [p for p in GUARDED if p.values[1] == "POST"]


def send(client: TestClient, method: str, path: str, data: dict[str, str] | None = None) -> Any:
    return client.request(method, fill(path), data=data, follow_redirects=False)


@pytest.mark.parametrize(("path", "method", "role"), GUARDED)
def test_anonymous_is_sent_to_login(app_and_clients: Any, path: str, method: str, role: str) -> None:
    _, clients = app_and_clients
    r = send(clients["anonymous"], method, path)
    assert r.status_code == 303, f"{method} {path}: {r.status_code}"
    assert r.headers["location"].startswith("/console/login?next=")


@pytest.mark.parametrize(("path", "method", "role"), ABOVE_VIEWER)
def test_a_lower_role_is_forbidden(app_and_clients: Any, path: str, method: str, role: str) -> None:
    app, clients = app_and_clients
    for lower in ROLES[:RANK[role]]:
        client = clients[lower]
        staff = the_console(app).staff.session(
            the_console(app).token_from_cookie(client.cookies.get("hegui_staff", path="/console") or "") or "")
        assert staff is not None and staff.role == lower
        data = {"csrf_token": the_console(app).csrf_token(staff)} if method == "POST" else None
        r = send(client, method, path, data)
        assert r.status_code == 403, f"{lower} {method} {path}: {r.status_code}"


@pytest.mark.parametrize(("path", "method", "role"), GUARDED_POSTS)
def test_a_post_without_the_csrf_token_is_forbidden(app_and_clients: Any, path: str, method: str,
                                                     role: str) -> None:
    """(The login form's own CSRF is tested in test_console_auth.py.)"""
    _, clients = app_and_clients
    client = clients[role]
    assert send(client, method, path, {"anything": "1"}).status_code == 403, f"{method} {path} without a token"
    r = send(client, method, path, {"csrf_token": "0" * 64})
    assert r.status_code == 403, f"{method} {path} with a forged token"


def test_the_lists_are_not_empty() -> None:
    assert len(GUARDED) >= 4 and ABOVE_VIEWER and GUARDED_POSTS


def test_the_right_role_gets_past_the_guard(app_and_clients: Any) -> None:
    """A control for the tests above: the staff page answers its admin (the guard lets the right role in)."""
    _, clients = app_and_clients
    assert clients["admin"].get("/console/staff").status_code == 200
    assert clients["anonymous"].get("/console/login").status_code == 200
    assert clients["anonymous"].get("/console/static/console.css").status_code == 200


def test_the_walk_finds_a_route_mounted_past_the_guard(app_and_clients: Any) -> None:
    """The first test's walk would see a route someone mounted directly (here, inside a Mount)."""
    app, _ = app_and_clients

    async def sneaky(request: Any) -> Any:
        raise AssertionError("never called")

    extra: list[BaseRoute] = [*app.routes, Mount("/console/extra", routes=[Route("/x", sneaky, methods=["POST"])])]
    known = {(r.path, m) for r in declared(app) for m in r.methods}
    undeclared = [(p, m) for p, ms in console_paths(extra) for m in ms - {"HEAD"} if (p, m) not in known]
    assert undeclared == [("/console/extra/x", "POST")]
