"""Accounts in the console: a search (by id, by the last digits of the masked phone, by standing), and
one account's page with its profile (the masked phone only: the number itself is never stored), its
standing, its API keys (ids and prefixes), recent decisions, its events and appeals, and the ladder
actions staff take with a reason (:func:`hegui.accounts.staff.take_action`, as the admin API does).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hegui.accounts import staff as ladder
from hegui.accounts.config import LADDER
from hegui.accounts.models import AccountProfile
from hegui.accounts.store import AccountStore, Profile
from hegui.cases.store import CaseStore
from hegui.errors import UserError
from hegui.ledger.events import events
from hegui.ledger.models import AccountRow, Base
from hegui.web.console.base import PAGE_HEADERS, Console, ConsoleRoute
from hegui.web.console.casework import Shown, field, message, now_of, run, when

_accounts = Base.metadata.tables[AccountRow.__tablename__]
_profiles = Base.metadata.tables[AccountProfile.__tablename__]

SEARCH_LIMIT = 100
EVENTS_SHOWN = 200
DECISIONS_SHOWN = 20
ACTIONS = tuple(ladder.ACTIONS)
DONE = {a: f"已执行 {a} / Done: {a}." for a in ACTIONS}


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class AccountPages:
    def __init__(self, console: Console) -> None:
        gw = console.gw
        self.console = console
        self.ledger = gw.ledger
        self.store = gw.accounts.store if gw.accounts is not None else AccountStore(gw.ledger)
        self.cases = CaseStore(gw.ledger, gw.cfg.cases, gw.cfg.accounts.timezone)
        self.zone = ZoneInfo(gw.cfg.accounts.timezone)

    def search(self, text: str, phone: str, standing: str | None) -> list[Profile]:
        """Accounts whose id is or starts with ``text``, whose masked phone ends in ``phone``, of
        ``standing``; newest first."""
        q = (sa.select(_accounts.c.id)
             .join(_profiles, _profiles.c.account_id == _accounts.c.id, isouter=True)
             .order_by(_accounts.c.created_at.desc()).limit(SEARCH_LIMIT))
        if text:
            q = q.where(sa.or_(_accounts.c.id == text, _accounts.c.id.like(_like_escaped(text) + "%", escape="\\")))
        if phone:
            q = q.where(_profiles.c.phone_masked.like("%" + _like_escaped(phone), escape="\\"))
        if standing is not None:
            q = q.where(sa.func.coalesce(_profiles.c.standing, "good") == standing)
        with self.ledger.engine.connect() as conn:
            ids = [str(r.id) for r in conn.execute(q)]
        found = {p.account_id: p for p in self.store.profiles(ids)} if ids else {}
        return [found[i] for i in ids if i in found]

    async def list_accounts(self, request: Request) -> Response:
        q = request.query_params
        text = (q.get("q") or "").strip()
        phone = (q.get("phone") or "").strip()
        standing = q.get("standing") or None
        problems = []
        if len(text) > 128 or "\x00" in text:
            problems.append("q: an account id has at most 128 characters")
            text = ""
        if phone and (not phone.isascii() or not phone.isdigit() or len(phone) > 4):
            problems.append("phone: the last 1 to 4 digits of the number (only those are kept readable)")
            phone = ""
        if standing is not None and standing not in LADDER:
            problems.append(f"standing: {standing!r} is not one of {', '.join(LADDER)}")
            standing = None
        try:
            found = await run(lambda: self.search(text, phone, standing))
        except Shown as exc:
            return message(self.console, request, exc)
        return self.console.render(
            request, "accounts.html", 400 if problems else 200, accounts=found, problems=problems, q=text,
            phone=phone, standing_filter=standing or "", standings=LADDER, limit=SEARCH_LIMIT,
            now=now_of(self.console), when=when(self.zone))

    async def show_account(self, request: Request) -> Response:
        account_id = str(request.path_params["account_id"])
        done = DONE.get(request.query_params.get("done", ""))
        return await self.page(request, account_id, notice=done)

    async def page(self, request: Request, account_id: str, *, status: int = 200, notice: str | None = None,
                   error: str | None = None) -> Response:
        if "\x00" in account_id or len(account_id) > 128:
            return message(self.console, request, Shown(404, "no such account"))

        def read() -> dict[str, Any]:
            profile = self.store.profile(account_id)  # AccountNotFound: 404
            account = self.ledger.get_account(account_id)
            return {
                "profile": profile, "account": account, "keys": self.ledger.api_keys(account_id),
                "decisions": self.ledger.decisions(account_id=account_id, kind="decision", limit=DECISIONS_SHOWN),
                "history": list(reversed(events(self.ledger, account_id=account_id, limit=EVENTS_SHOWN))),
                "appeals": self.store.appeals(account_id=account_id),
                "cases": self.cases.list(account_id=account_id, limit=50),
            }

        try:
            ctx = await run(read)
        except Shown as exc:
            return message(self.console, request, exc)
        return self.console.render(request, "account.html", status, notice=notice, error=error,
                                   now=now_of(self.console), when=when(self.zone), actions=ACTIONS, **ctx)

    async def act(self, request: Request) -> Response:
        me = await self.console.current(request)
        assert me is not None
        account_id = str(request.path_params["account_id"])
        form = await request.form()
        action = field(form, "action", 32)

        def do() -> dict[str, Any]:
            days_text = field(form, "days", 32).strip()
            days: float | None = None
            if action == "suspend":
                try:
                    days = float(days_text)
                except ValueError:
                    raise UserError("days: a suspension needs its length in days (a number)") from None
            evidence = [e for e in field(form, "evidence", 5000).replace(",", " ").split() if e]
            return ladder.take_action(self.store, account_id, action, reason=field(form, "reason", 1000),
                                      actor=me.actor, now=now_of(self.console), zone=self.zone, days=days,
                                      evidence=evidence)

        try:
            if "\x00" in account_id or len(account_id) > 128:
                raise Shown(404, "no such account")
            await run(do)
        except Shown as exc:
            if exc.status == 404:
                return message(self.console, request, exc)
            return await self.page(request, account_id, status=exc.status, error=exc.text)
        if self.console.gw.accounts is not None:
            self.console.gw.accounts.forget(account_id)
        return RedirectResponse(f"/console/accounts/{quote(account_id, safe='')}?done={action}", status_code=303,
                                headers=PAGE_HEADERS)


def routes(console: Console) -> list[ConsoleRoute]:
    pages = AccountPages(console)
    return [
        ConsoleRoute("/console/accounts", pages.list_accounts, ("GET",), "viewer"),
        ConsoleRoute("/console/accounts/{account_id}", pages.show_account, ("GET",), "viewer"),
        ConsoleRoute("/console/accounts/{account_id}/actions", pages.act, ("POST",), "reviewer"),
    ]
