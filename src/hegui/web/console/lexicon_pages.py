"""The lexicon page: staff block and allow entries (admins add and remove them), and what the lexicon
files of the running detector hold, per risk (read-only: files change through deployments).

Entries are :mod:`hegui.cases.lexicon_entries`; a change is in force on every gateway within
``lexicon.db_sync_seconds``, and on this one at once (its sync is refreshed after the change).
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hegui import taxonomy
from hegui.cases.lexicon_entries import LISTS, EntryNotFound, EntryRefused, add_entry, entries, remove_entry
from hegui.web.console.base import PAGE_HEADERS, Console, ConsoleRoute

NOTICES = {"added": "已添加 Added: in force on every gateway within seconds.",
           "removed": "已移除 Removed: out of force on every gateway within seconds."}


async def refresh_lexicon(request: Request) -> None:
    """Apply a change on this gateway now rather than at its next poll (the others poll)."""
    sync = getattr(request.app.state, "lexicon_sync", None)
    if sync is not None:
        await sync.refresh()


def file_stats(console: Console) -> list[dict[str, Any]]:
    """Per lexicon detector of the running moderator: totals and counts per risk."""
    out = []
    for det in console.gw.moderator.detectors:
        stats = getattr(det, "stats", None)
        if not callable(stats) or not hasattr(det, "extra_entries"):
            continue
        s = stats()
        per_risk = []
        for code, count in s.per_risk.items():
            name = taxonomy.get(code).name_zh if taxonomy.is_known(code) else ""
            per_risk.append({"code": code, "name": name, "count": count, "minimum": s.minimum(code)})
        out.append({"name": getattr(det, "name", "lexicon"), "total": s.total, "patterns": s.patterns,
                    "allow": s.allow, "lists": s.lists, "per_risk": per_risk})
    return out


class LexiconPages:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.ledger = console.gw.ledger

    async def page(self, request: Request, *, status: int = 200, error: str | None = None,
                   typed: dict[str, str] | None = None) -> Response:
        rows = await asyncio.to_thread(entries, self.ledger)
        notice = NOTICES.get(request.query_params.get("done", ""))
        return self.console.render(
            request, "lexicon.html", status, rows=rows, lists=LISTS, stats=file_stats(self.console),
            notice=notice, error=error, typed=typed or {"list": "block", "text": "", "risk": "", "note": ""},
            sync_seconds=self.console.gw.cfg.lexicon.db_sync_seconds,
            may_edit=bool(request.state.staff and request.state.staff.may("admin")))

    async def show(self, request: Request) -> Response:
        return await self.page(request)

    async def add(self, request: Request) -> Response:
        staff = await self.console.current(request)
        assert staff is not None
        form = await request.form()
        typed = {k: str(form.get(k, "")).strip() for k in ("list", "text", "risk", "note")}
        list_name = typed["list"]
        if list_name not in LISTS:
            return await self.page(request, status=400, error=f"list: must be one of {', '.join(LISTS)}",
                                   typed=typed)
        try:
            await asyncio.to_thread(
                add_entry, self.ledger, list="block" if list_name == "block" else "allow", text=typed["text"],
                risk=typed["risk"] or None, note=typed["note"], actor=staff.actor)
        except EntryRefused as exc:
            return await self.page(request, status=400, error=str(exc), typed=typed)
        await refresh_lexicon(request)
        return RedirectResponse("/console/lexicon?" + urlencode({"done": "added"}), status_code=303,
                                headers=PAGE_HEADERS)

    async def remove(self, request: Request) -> Response:
        staff = await self.console.current(request)
        assert staff is not None
        try:
            await asyncio.to_thread(remove_entry, self.ledger, request.path_params["entry_id"], actor=staff.actor)
        except EntryNotFound as exc:
            return await self.page(request, status=404, error=str(exc))
        await refresh_lexicon(request)
        return RedirectResponse("/console/lexicon?done=removed", status_code=303, headers=PAGE_HEADERS)


def routes(console: Console) -> list[ConsoleRoute]:
    pages = LexiconPages(console)
    return [
        ConsoleRoute("/console/lexicon", pages.show, ("GET",), "viewer"),
        ConsoleRoute("/console/lexicon/entries", pages.add, ("POST",), "admin"),
        ConsoleRoute("/console/lexicon/entries/{entry_id}/remove", pages.remove, ("POST",), "admin"),
    ]
