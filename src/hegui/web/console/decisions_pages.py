"""Decisions in the console: a search (GET form) by decision id, account, risk, action, direction and
time range, newest first, fifty a page, and one decision's record (the redacted excerpt, findings,
detector timings, stream information) with a link to its account.

Pages are keyset-paged on ``seq`` (``before=<seq>``), never by offset, so page 1000 costs what page 1
does. Decision id, account and time filters use the table's indexes (``decision_id``,
``(account_id, created_at)``, ``created_at``); action, direction and risk are checked on the rows read
newest first until a page is full, which is quick for common values and slow for rare ones on a big
ledger (a risk index would need a table of its own: see docs/console.md).
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response

from hegui.ledger.models import Base
from hegui.ledger.records import DecisionRow
from hegui.policy import Action
from hegui.web.console.base import Console, ConsoleRoute
from hegui.web.console.casework import Shown, message, run, when

_decisions = Base.metadata.tables["decisions"]
_accounts = Base.metadata.tables["accounts"]

PAGE = 50
ACTIONS: tuple[str, ...] = tuple(a.value for a in Action)
DIRECTIONS = ("input", "output")
RISK = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class Search:
    """The search form's values, checked; ``problems`` says what was wrong and was left out."""

    def __init__(self, request: Request, zone: ZoneInfo) -> None:
        q = request.query_params
        self.zone = zone
        self.problems: list[str] = []
        self.decision_id = self.text(q.get("id"), "id")
        self.account = self.text(q.get("account"), "account")
        self.risk = (q.get("risk") or "").strip()
        if self.risk and not RISK.match(self.risk):
            self.problems.append(f"risk: {self.risk[:64]!r} is not a risk code (e.g. A.1.3)")
            self.risk = ""
        self.action = self.choice(q.get("action"), "action", ACTIONS)
        self.direction = self.choice(q.get("direction"), "direction", DIRECTIONS)
        self.since_text = (q.get("since") or "").strip()
        self.until_text = (q.get("until") or "").strip()
        self.since = self.moment(self.since_text, "since", end=False)
        self.until = self.moment(self.until_text, "until", end=True)
        before = (q.get("before") or "").strip()
        self.before: int | None = None
        if before:
            if before.isascii() and before.isdigit() and len(before) < 19:
                self.before = int(before)
            else:
                self.problems.append("before: a row number")

    def text(self, value: str | None, name: str) -> str:
        value = (value or "").strip()
        if len(value) > 128 or "\x00" in value:
            self.problems.append(f"{name}: at most 128 characters")
            return ""
        return value

    def choice(self, value: str | None, name: str, allowed: tuple[str, ...]) -> str:
        if value and value not in allowed:
            self.problems.append(f"{name}: {value[:32]!r} is not one of {', '.join(allowed)}")
            return ""
        return value or ""

    def moment(self, text: str, name: str, *, end: bool) -> datetime | None:
        """A date (the whole day; ``until`` includes it) or a date-time, in the provider's time zone."""
        if not text:
            return None
        try:
            if len(text) == 10:
                day = date.fromisoformat(text)
                start = datetime.combine(day, time(0), tzinfo=self.zone)
                return start + timedelta(days=1) if end else start
            parsed = datetime.fromisoformat(text)
        except ValueError:
            self.problems.append(f"{name}: {text[:40]!r} is not a date (2026-12-01) or date-time (2026-12-01T18:00)")
            return None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=self.zone)

    def query(self) -> dict[str, str]:
        """The search as the next page's link carries it."""
        out = {"id": self.decision_id, "account": self.account, "risk": self.risk, "action": self.action,
               "direction": self.direction, "since": self.since_text, "until": self.until_text}
        return {k: v for k, v in out.items() if v}


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class DecisionPages:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.ledger = console.gw.ledger
        self.zone = ZoneInfo(console.gw.cfg.accounts.timezone)

    def find(self, s: Search) -> list[DecisionRow]:
        """A page of final decision records (``kind = decision``), newest first, ``PAGE + 1`` rows read
        so the page knows whether another follows."""
        q = sa.select(_decisions).where(_decisions.c.kind == "decision")
        if s.decision_id:
            q = q.where(_decisions.c.decision_id == s.decision_id)
        if s.account:
            q = q.where(_decisions.c.account_id == self.ledger.protect_identifier(s.account))
        if s.action:
            q = q.where(_decisions.c.action == s.action)
        if s.direction:
            q = q.where(_decisions.c.direction == s.direction)
        if s.risk:
            # risks is a JSON list of codes; its text holds each as "code"
            q = q.where(sa.cast(_decisions.c.risks, sa.Text).like(f'%"{_like_escaped(s.risk)}"%', escape="\\"))
        if s.since is not None:
            q = q.where(_decisions.c.created_at >= s.since)
        if s.until is not None:
            q = q.where(_decisions.c.created_at < s.until)
        if s.before is not None:
            q = q.where(_decisions.c.seq < s.before)
        q = q.order_by(_decisions.c.seq.desc()).limit(PAGE + 1)
        with self.ledger.engine.connect() as conn:
            return [DecisionRow(**dict(r._mapping)) for r in conn.execute(q)]

    async def search(self, request: Request) -> Response:
        s = Search(request, self.zone)
        try:
            rows = await run(lambda: self.find(s))
        except Shown as exc:
            return message(self.console, request, exc)
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        next_link = ("/console/decisions?" + urlencode({**s.query(), "before": str(rows[-1].seq)})) if more else None
        return self.console.render(
            request, "decisions.html", 400 if s.problems else 200, search=s, rows=rows, next_link=next_link,
            first_link=("/console/decisions?" + urlencode(s.query())) if s.before is not None else None,
            actions=ACTIONS, directions=DIRECTIONS, page=PAGE, when=when(self.zone))

    async def show(self, request: Request) -> Response:
        decision_id = str(request.path_params["decision_id"])
        if "\x00" in decision_id or len(decision_id) > 64:
            return message(self.console, request, Shown(404, "no such decision"))

        def read() -> tuple[list[DecisionRow], bool]:
            rows = self.ledger.decisions(decision_id=decision_id, limit=None, newest_first=False)
            account = rows[-1].account_id if rows else None
            linked = False
            if account is not None:
                with self.ledger.engine.connect() as conn:
                    linked = conn.execute(sa.select(_accounts.c.id).where(_accounts.c.id == account)).first() \
                        is not None
            return rows, linked

        try:
            rows, linked = await run(read)
        except Shown as exc:
            return message(self.console, request, exc)
        if not rows:
            return message(self.console, request, Shown(404, f"no decision {decision_id}"))
        final = next((r for r in reversed(rows) if r.kind == "decision"), rows[-1])
        return self.console.render(request, "decision.html", record=final, rows=rows, account_linked=linked,
                                   when=when(self.zone), fmt=_fmt)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def routes(console: Console) -> list[ConsoleRoute]:
    pages = DecisionPages(console)
    return [
        ConsoleRoute("/console/decisions", pages.search, ("GET",), "viewer"),
        ConsoleRoute("/console/decisions/{decision_id}", pages.show, ("GET",), "viewer"),
    ]
