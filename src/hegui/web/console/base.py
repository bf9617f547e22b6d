"""What every console page shares: the staff member behind the request, the role guard, CSRF, and
rendering.

Every console route is declared as a :class:`ConsoleRoute` with the least role it needs, and mounted
through :meth:`Console.mount`, which wraps the handler in the guard. There is no other way to add a
console route, and ``tests/test_console_access.py`` enumerates the app's ``/console`` routes and
checks each one, on every method: anonymous → a redirect to the login page, a lower role → 403, a
POST without the CSRF token → 403.

A session is a random token in the ``hegui_staff`` cookie (HttpOnly, SameSite=Strict, Secure over
HTTPS), signed with the console key; the database keeps only its SHA-256 (:mod:`hegui.web.staff`).
The CSRF token of a form is an HMAC of the session token, so it changes with every login.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

if TYPE_CHECKING:
    from hegui.gateway.routes import Gateway
    from hegui.web.staff import StaffStore

ROLES: tuple[str, ...] = ("viewer", "reviewer", "admin")
RANK = {role: i for i, role in enumerate(ROLES)}
SESSION_COOKIE = "hegui_staff"
CSRF_FIELD = "csrf_token"
KEY_META = "console_key"
MAX_FORM_BYTES = 2 * 1024 * 1024
"""Largest console form (a policy or lexicon file edited in place fits)."""
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
}

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Staff:
    """The staff member a request comes from."""

    id: str
    username: str
    display_name: str
    role: str
    session_token: str = ""

    @property
    def actor(self) -> str:
        """How the ledger names them as the actor of what they do."""
        return f"staff:{self.id}"

    def may(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]


@dataclass(frozen=True)
class ConsoleRoute:
    path: str
    endpoint: Handler
    methods: tuple[str, ...]
    role: str | None
    """Least role needed; None only for the login page itself."""


class Console:
    """Shared by the console's page modules: templates, the staff store, the guard."""

    def __init__(self, gw: Gateway) -> None:
        from hegui.web.staff import StaffStore

        self.gw = gw
        self.cfg = gw.cfg.console
        self.staff: StaffStore = StaffStore(gw.ledger, self.cfg)
        self.templates = Environment(loader=PackageLoader("hegui.web", "templates/console"), autoescape=True,
                                     undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self._key: bytes | None = None
        self.declared: list[ConsoleRoute] = []
        """Every route mounted, with its role (the access test walks them)."""

    # -- keys and tokens -----------------------------------------------------------------------

    @property
    def key(self) -> bytes:
        if self._key is None:
            secret = os.environ.get(self.cfg.secret_env, "")
            self._key = secret.encode() if secret else \
                self.gw.ledger.meta_value(KEY_META, lambda: secrets.token_hex(32)).encode()
        return self._key

    def _mac(self, purpose: str, value: str) -> str:
        return hmac.new(self.key, f"hegui-console-{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()

    def cookie_value(self, token: str) -> str:
        """The session cookie: the token and its signature."""
        return f"{token}.{self._mac('session', token)[:32]}"

    def token_from_cookie(self, value: str | None) -> str | None:
        if not value or len(value) > 200 or "." not in value:
            return None
        token, sig = value.rsplit(".", 1)
        return token if hmac.compare_digest(self._mac("session", token)[:32], sig) else None

    def csrf_token(self, staff: Staff) -> str:
        return self._mac("csrf", staff.session_token)

    # -- who is asking -------------------------------------------------------------------------

    async def current(self, request: Request) -> Staff | None:
        if "staff" in request.state._state:
            found: Staff | None = request.state.staff
            return found
        token = self.token_from_cookie(request.cookies.get(SESSION_COOKIE))
        staff = await asyncio.to_thread(self.staff.session, token) if token else None
        request.state.staff = staff
        return staff

    def guarded(self, route: ConsoleRoute) -> Handler:
        async def endpoint(request: Request) -> Response:
            if route.role is None:
                return await route.endpoint(request)
            staff = await self.current(request)
            if staff is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/console/login?next={quote(target, safe='')}", status_code=303,
                                        headers=PAGE_HEADERS)
            if not staff.may(route.role):
                return self.render(request, "message.html", 403, title="没有权限 / Forbidden",
                                   text=f"This page needs the {route.role} role; you are {staff.role}.")
            if request.method == "POST" and not await self.csrf_ok(request, staff):
                return self.render(request, "message.html", 403, title="请求无效 / Invalid request",
                                   text="The form's security token is missing or stale: reload the page and try again.")
            return await route.endpoint(request)

        return endpoint

    async def csrf_ok(self, request: Request, staff: Staff) -> bool:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_FORM_BYTES):
            return False
        try:
            form = await request.form(max_files=0, max_fields=200, max_part_size=MAX_FORM_BYTES)
        except (ClientDisconnect, ValueError, Exception):
            return False
        token = form.get(CSRF_FIELD)
        return isinstance(token, str) and hmac.compare_digest(self.csrf_token(staff), token)

    # -- pages ---------------------------------------------------------------------------------

    def render(self, request: Request, template: str, status: int = 200, *,
               headers: dict[str, str] | None = None, **context: Any) -> Response:
        staff: Staff | None = request.state._state.get("staff")
        html = self.templates.get_template(template).render(
            staff=staff, csrf_field=CSRF_FIELD, csrf_token=self.csrf_token(staff) if staff else "",
            path=request.url.path, **context)
        return Response(html, status_code=status, media_type="text/html; charset=utf-8",
                        headers={**PAGE_HEADERS, **(headers or {})})

    def mount(self, routes: list[ConsoleRoute]) -> list[BaseRoute]:
        self.declared.extend(routes)
        return [Route(r.path, self.guarded(r), methods=list(r.methods), include_in_schema=False) for r in routes]
