"""Logging in and out of the console, and the admin's staff page.

- ``/console/login`` is the only page without a role. Its form carries a CSRF token too (login CSRF:
  another site must not log a browser in under the attacker's account): an HMAC of a random
  pre-session cookie (``hegui_console_pre``), checked like the portal's double-submit cookie.
- Attempts are counted per client address in the account gate's shared counters
  (``console.login_attempts_per_ip_per_hour``, right or wrong; past it 429 with Retry-After); the
  per-account lockout is :class:`~hegui.web.staff.StaffStore`'s.
- The page says only that the name, password or code is wrong, or that the account is locked and
  until when; the reason goes to the ledger (``staff.login_failed``) and the log.
- A login sets a new session cookie (the one the browser had before, if it was a live session, is
  ended: no fixation) and redirects to ``next`` when it is a path under ``/console``, else to
  ``/console`` (never another site).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import re
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from starlette.datastructures import FormData
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response

from hegui.accounts.api import client_ip
from hegui.web.console.base import CSRF_FIELD, PAGE_HEADERS, ROLES, SESSION_COOKIE, Console, ConsoleRoute

if TYPE_CHECKING:
    from hegui.web.staff import LoginRefused, StaffStore

log = logging.getLogger("hegui.console")

PRE_COOKIE = "hegui_console_pre"
"""The login form's CSRF cookie (random, before there is a session)."""
WINDOW_SECONDS = 3600
MAX_LOGIN_FORM_BYTES = 8 * 1024
GENERIC_ERROR = "用户名、密码或验证码不正确 / Wrong username, password or code."
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
_STATIC_TYPES = {".css": "text/css; charset=utf-8"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")


def safe_next(value: str | None) -> str:
    """``value`` when it is a path on this console, else ``/console``: the login page never sends a
    browser to another site (``//evil``, ``https://evil``, ``/\\evil``, ``/console@evil`` and the like)."""
    if not value or len(value) > 2000 or _CONTROL.search(value) or _CONTROL.search(unquote(value)):
        return "/console"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or value.startswith("//"):
        return "/console"
    if parts.path != "/console" and not parts.path.startswith("/console/"):
        return "/console"
    if ".." in unquote(parts.path).split("/") or parts.path.startswith("/console/login"):
        return "/console"
    return value


class ConsoleAuth:
    def __init__(self, console: Console) -> None:
        self.console = console

    @property
    def store(self) -> StaffStore:
        return self.console.staff


    def login_token(self, pre: str) -> str:
        return self.console._mac("login-csrf", pre)

    def _cookie_flags(self, request: Request) -> dict[str, Any]:
        return {"httponly": True, "samesite": "strict", "secure": request.url.scheme == "https", "path": "/console"}

    # -- the login page ------------------------------------------------------------------------

    def login_page(self, request: Request, status: int = 200, *, pre: str | None = None, error: str = "",
                   username: str = "", show_totp: bool = False, headers: dict[str, str] | None = None) -> Response:
        new_pre = pre is None or len(pre) > 128
        pre_value = secrets.token_urlsafe(32) if new_pre or pre is None else pre
        show = show_totp or bool(self.console.cfg.require_totp_roles)
        response = self.console.render(
            request, "login.html", status, headers=headers, login_token=self.login_token(pre_value),
            next=safe_next(request.query_params.get("next")), error=error, username=username, show_totp=show)
        if new_pre:
            response.set_cookie(PRE_COOKIE, pre_value, **self._cookie_flags(request))
        return response

    async def login(self, request: Request) -> Response:
        pre = request.cookies.get(PRE_COOKIE)
        if request.method == "GET":
            # shown even to someone logged in: logging in as someone else ends the session they had
            return self.login_page(request, pre=pre)
        limited = await self.limited(request)
        if limited is not None:
            return limited
        form = await self.read_form(request)
        if form is None:
            return self.login_page(request, 400, pre=pre, error="请求无效 / The form could not be read.")
        sent = form.get(CSRF_FIELD)
        if not pre or len(pre) > 128 or not isinstance(sent, str) \
                or not hmac.compare_digest(self.login_token(pre), sent):
            return self.login_page(request, 403, pre=None,
                                   error="请求无效 / The form's security token is missing or stale: try again.")
        username = _field(form, "username", 64).strip().lower()
        password = _field(form, "password", 1024)
        code = _field(form, "totp", 16).strip().replace(" ", "") or None
        target = safe_next(_field(form, "next", 2000) or None)
        from hegui.web.staff import LoginRefused  # not at the top: hegui.web.staff imports the console

        try:
            staff, token = await asyncio.to_thread(self.store.authenticate, username, password, code)
        except LoginRefused as refused:
            log.info("console login refused for %r: %s", username[:64], refused.reason)
            return await self.refused_page(request, pre, username, refused)
        old = self.console.token_from_cookie(request.cookies.get(SESSION_COOKIE))
        if old:
            await asyncio.to_thread(self.store.end_session, old)
        response = RedirectResponse(target, status_code=303, headers=PAGE_HEADERS)
        response.set_cookie(SESSION_COOKIE, self.console.cookie_value(token), **self._cookie_flags(request))
        response.delete_cookie(PRE_COOKIE, path="/console")
        log.info("console login: %s (%s)", staff.username, staff.role)
        return response

    async def refused_page(self, request: Request, pre: str | None, username: str,
                           refused: LoginRefused) -> Response:
        error = GENERIC_ERROR
        if refused.locked:
            row = await asyncio.to_thread(self.store.get, username)
            until = row.locked_until if row is not None else None
            when = f"{until:%Y-%m-%d %H:%M} UTC" if until is not None else "later"
            error = f"账号已锁定，请于 {when} 后再试 / The account is locked until {when}."
        return self.login_page(request, 401, pre=pre, error=error, username=username,
                               show_totp=refused.needs_totp)

    async def read_form(self, request: Request) -> FormData | None:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_LOGIN_FORM_BYTES):
            return None
        try:
            return await request.form(max_files=0, max_fields=20, max_part_size=MAX_LOGIN_FORM_BYTES)
        except (ClientDisconnect, ValueError, Exception):
            return None

    async def limited(self, request: Request) -> Response | None:
        """Count one attempt from the client's address in this hour; past the limit the 429 page."""
        digest = self.console.gw.ledger.hash_identifier("ip:" + client_ip(request))
        try:
            total = await self.console.gw.counters.add(f"console:login:{digest[:32]}", 1, WINDOW_SECONDS)
        except Exception as exc:  # the counters are down: refuse rather than let guessing through
            log.error("console login counters failed: %s", exc.__class__.__name__)
            return self.console.render(request, "message.html", 503, title="暂不可用 / Unavailable",
                                       text="Logging in is unavailable right now; try again in a minute.")
        if total <= self.console.cfg.login_attempts_per_ip_per_hour:
            return None
        retry = WINDOW_SECONDS - int(time.time()) % WINDOW_SECONDS
        return self.console.render(
            request, "message.html", 429, headers={"Retry-After": str(retry)},
            title="尝试次数过多 / Too many attempts",
            text=f"Too many login attempts from this address; try again in {math.ceil(retry / 60)} minutes.")

    async def logout(self, request: Request) -> Response:
        staff = await self.console.current(request)
        if staff is not None:
            await asyncio.to_thread(self.store.end_session, staff.session_token)
        response = RedirectResponse("/console/login", status_code=303, headers=PAGE_HEADERS)
        response.delete_cookie(SESSION_COOKIE, path="/console", httponly=True, samesite="strict",
                               secure=request.url.scheme == "https")
        return response

    async def static(self, request: Request) -> Response:
        """The console's stylesheet (no role: the login page needs it too)."""
        name = request.path_params["name"]
        path = STATIC_DIR / name
        if "/" in name or name.startswith(".") or path.suffix not in _STATIC_TYPES or not path.is_file():
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(path.read_bytes(), media_type=_STATIC_TYPES[path.suffix],
                        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})

    # -- staff (admin) -------------------------------------------------------------------------

    async def staff_page(self, request: Request, status: int = 200, *, error: str = "", notice: str = "",
                         values: dict[str, str] | None = None) -> Response:
        if request.method == "POST":
            return await self.create_staff(request)
        rows = await asyncio.to_thread(self.store.list)
        created = request.query_params.get("created", "")
        disabled = request.query_params.get("disabled", "")
        if not notice and created:
            notice = f"已创建 / Created {created[:64]}."
        if not notice and disabled:
            notice = f"已停用 / Disabled {disabled[:64]}; their sessions have ended."
        return self.console.render(request, "staff.html", status, rows=rows, roles=ROLES, error=error,
                                   notice=notice, values=values or {"role": "viewer"})

    async def create_staff(self, request: Request) -> Response:
        from hegui.web.staff import StaffError

        staff = await self.console.current(request)
        assert staff is not None
        form = await request.form()
        values = {name: _field(form, name, 200).strip() for name in ("username", "display_name", "role")}
        password = _field(form, "password", 1024)
        again = _field(form, "password_again", 1024)
        if password != again:
            return await self._staff_error(request, "password_again: the two passwords differ", values)
        try:
            await asyncio.to_thread(self.store.create, values["username"], password, values["role"],
                                    display_name=values["display_name"], actor=staff.actor)
        except StaffError as exc:
            return await self._staff_error(request, str(exc), values)
        return RedirectResponse(f"/console/staff?created={quote(values['username'])}", status_code=303,
                                headers=PAGE_HEADERS)

    async def _staff_error(self, request: Request, error: str, values: dict[str, str]) -> Response:
        rows = await asyncio.to_thread(self.store.list)
        return self.console.render(request, "staff.html", 400, rows=rows, roles=ROLES, error=error, notice="",
                                   values=values)

    async def disable_staff(self, request: Request) -> Response:
        from hegui.web.staff import StaffError

        staff = await self.console.current(request)
        assert staff is not None
        username = request.path_params["username"]
        if username == staff.username:
            return await self._staff_error(request, "you cannot disable yourself; ask another admin",
                                           {"role": "viewer"})
        try:
            await asyncio.to_thread(self.store.disable, username, actor=staff.actor)
        except StaffError as exc:
            return await self._staff_error(request, str(exc), {"role": "viewer"})
        return RedirectResponse(f"/console/staff?disabled={quote(username)}", status_code=303,
                                headers=PAGE_HEADERS)

    async def enrol_totp(self, request: Request) -> Response:
        from hegui.web.staff import StaffError

        staff = await self.console.current(request)
        assert staff is not None
        username = request.path_params["username"]
        try:
            secret, uri = await asyncio.to_thread(self.store.enable_totp, username, actor=staff.actor)
        except StaffError as exc:
            return await self._staff_error(request, str(exc), {"role": "viewer"})
        return self.console.render(request, "totp.html", 200, username=username, secret=secret, uri=uri)


def _field(form: FormData, name: str, max_chars: int) -> str:
    value = form.get(name)
    return value[:max_chars] if isinstance(value, str) else ""


def routes(console: Console) -> list[ConsoleRoute]:
    auth = ConsoleAuth(console)
    return [
        ConsoleRoute("/console/login", auth.login, ("GET", "POST"), None),
        ConsoleRoute("/console/static/{name}", auth.static, ("GET",), None),
        ConsoleRoute("/console/logout", auth.logout, ("POST",), "viewer"),
        ConsoleRoute("/console/staff", auth.staff_page, ("GET", "POST"), "admin"),
        ConsoleRoute("/console/staff/{username}/disable", auth.disable_staff, ("POST",), "admin"),
        ConsoleRoute("/console/staff/{username}/totp", auth.enrol_totp, ("POST",), "admin"),
    ]
