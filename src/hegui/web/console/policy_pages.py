"""The policy page: the policy YAML in force, and (admins) editing it.

A save is checked first (line-numbered errors on the page, nothing written), then written by
:func:`hegui.policy_sync.save_policy` (atomic, previous file kept as ``.bak``, ``policy_version``
bumped with a ``policy.saved`` event), reloaded on this gateway at once and on every other one at its
next poll (:class:`hegui.policy_sync.PolicySync`). With no ``policy:`` in the config the built-in
starter is in force and there is no file to save to: the page says how to set one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hegui.policy import starter_policy_text
from hegui.policy_sync import PolicyRefused, save_policy
from hegui.web.console.base import PAGE_HEADERS, Console, ConsoleRoute


class PolicyPages:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.gw = console.gw

    def path(self) -> Path | None:
        cfg = self.gw.cfg
        return cfg.resolve_path(cfg.policy) if cfg.policy else None

    def text_in_force(self) -> str:
        path = self.path()
        return path.read_text(encoding="utf-8") if path is not None and path.is_file() else starter_policy_text()

    async def page(self, request: Request, *, status: int = 200, error: str | None = None,
                   text: str | None = None, notice: str | None = None) -> Response:
        path = self.path()
        if text is None:
            text = await asyncio.to_thread(self.text_in_force)
        if notice is None and request.query_params.get("done") == "saved":
            notice = "已保存 Saved and reloaded here; every other gateway reloads within seconds."
        return self.console.render(
            request, "policy.html", status, text=text, file=str(path) if path else None, error=error,
            notice=notice, sync_seconds=self.gw.cfg.lexicon.db_sync_seconds,
            may_edit=bool(request.state.staff and request.state.staff.may("admin")))

    async def show(self, request: Request) -> Response:
        return await self.page(request)

    async def save(self, request: Request) -> Response:
        staff = await self.console.current(request)
        assert staff is not None
        form = await request.form()
        text = str(form.get("policy", ""))
        path = self.path()
        if path is None:
            return await self.page(request, status=409, text=text, error=(
                "policy: the built-in starter is in force and there is no file to save to; set `policy:` in "
                "hegui.yaml to a file (e.g. a copy of the starter) and restart, then edit it here"))
        try:
            await asyncio.to_thread(save_policy, self.gw.ledger, path, text, actor=staff.actor)
        except PolicyRefused as exc:
            return await self.page(request, status=400, text=text, error=str(exc))
        try:
            await asyncio.to_thread(self.gw.moderator.reload)
        except Exception as exc:
            message = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            return await self.page(request, status=500, text=text, error=(
                f"saved to {path}, but this gateway could not reload, the previous policy stays in force: {message}"))
        self.gw.verdicts.clear()  # cached verdicts were reached under the old policy
        sync = getattr(request.app.state, "policy_sync", None)
        if sync is not None:
            await asyncio.to_thread(sync.mark_current)
        return RedirectResponse("/console/policy?done=saved", status_code=303, headers=PAGE_HEADERS)


def routes(console: Console) -> list[ConsoleRoute]:
    pages = PolicyPages(console)
    return [
        ConsoleRoute("/console/policy", pages.show, ("GET",), "viewer"),
        ConsoleRoute("/console/policy", pages.save, ("POST",), "admin"),
    ]
