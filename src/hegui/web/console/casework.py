"""Cases and appeals in the console: the list with its filters and due dates, one case with its
attachments, notes, history and the forms that work it, and the open appeals of the ladder.

Every change goes through the module that owns it, the same as the admin API
(:class:`~hegui.cases.store.CaseStore` for the steps, :mod:`hegui.cases.actions` for enforcement,
list entries, takedowns, incidents and personal-information fulfilment,
:func:`hegui.accounts.staff.decide_appeal` for appeals), with the staff member as the actor
(``staff:<id>``), so the chain names who did it. A step that cannot be done is shown on the case's
page as a notice with its reason; a change that worked redirects back to the page (POST, then GET),
saying what was done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hegui.accounts import staff as ladder
from hegui.accounts.store import AccountNotFound, AccountStore
from hegui.cases import actions
from hegui.cases.api import KINDS
from hegui.cases.states import STATUSES
from hegui.cases.store import CaseNotFound, CaseRefused, CaseStore, CaseView
from hegui.errors import UserError
from hegui.ledger.errors import LedgerError
from hegui.web.console.base import PAGE_HEADERS, Console, ConsoleRoute, Staff

log = logging.getLogger("hegui.console")

T = TypeVar("T")

LIST_LIMIT = 200
HISTORY_SHOWN = 500
DONE: dict[str, str] = {
    "assign": "已分配 / Assigned.", "note": "已添加备注 / Note added.", "reply": "已回复 / Reply sent.",
    "close": "已关闭 / Closed.", "reopen": "已重新打开 / Reopened.", "enforce": "已执行账号处置 / Account action taken.",
    "lexicon": "已添加词条 / Lexicon entry added.", "allow": "已添加放行词条 / Allow-list entry added.",
    "takedown": "已记录下架请求 / Takedown recorded.", "incident": "已创建事件 / Incident opened.",
    "erase": "已删除个人信息并回复 / Personal information erased and replied.",
    "withdraw_consent": "已撤回同意 / Consent withdrawn.", "restored": "申诉已通过，账号已恢复 / Appeal granted: restored.",
    "upheld": "申诉已驳回 / Appeal refused: standing upheld.",
}
"""What a redirect's ``?done=`` says; only these keys, so nothing from the URL reaches the page."""


class Shown(Exception):
    """A console step that failed for a reason to show the staff member, with its HTTP status."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def now_of(console: Console) -> datetime:
    gate = console.gw.accounts
    return gate.clock() if gate is not None else datetime.now(UTC)


async def run(fn: Callable[[], T]) -> T:
    """``fn`` in a worker thread; the store's refusals become :class:`Shown` with their status."""
    try:
        return await asyncio.to_thread(fn)
    except (CaseNotFound, AccountNotFound) as exc:
        raise Shown(404, str(exc)) from None
    except (CaseRefused, ladder.Conflict) as exc:
        raise Shown(409, str(exc)) from None
    except actions.NotAvailable as exc:
        raise Shown(501, str(exc)) from None
    except LedgerError as exc:
        log.error("console: %s", exc)
        raise Shown(503, f"the ledger is unavailable: {exc}") from None
    except UserError as exc:
        raise Shown(400, str(exc)) from None


def field(form: FormData, name: str, most: int = 20_000) -> str:
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    if len(value) > most:
        raise Shown(400, f"{name}: at most {most} characters")
    return value


def when(zone: ZoneInfo) -> Callable[[datetime | None], str]:
    """Date-times on the pages: the provider's time, to the minute."""

    def shown(value: datetime | None) -> str:
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M") if value else ""

    return shown


def message(console: Console, request: Request, exc: Shown) -> Response:
    return console.render(request, "message.html", exc.status, title="无法完成 / Not done", text=exc.text)


class CaseWork:
    def __init__(self, console: Console) -> None:
        gw = console.gw
        self.console = console
        self.cfg = gw.cfg
        self.cases = CaseStore(gw.ledger, gw.cfg.cases, gw.cfg.accounts.timezone)
        self.accounts = gw.accounts.store if gw.accounts is not None else AccountStore(gw.ledger)
        self.zone = ZoneInfo(gw.cfg.accounts.timezone)

    def now(self) -> datetime:
        return now_of(self.console)

    async def staff(self, request: Request) -> Staff:
        found = await self.console.current(request)
        assert found is not None  # behind the role guard
        return found

    @staticmethod
    def path_id(request: Request, name: str) -> str:
        value = str(request.path_params[name])
        if "\x00" in value or len(value) > 128:  # no id holds one, and PostgreSQL cannot even be asked
            raise Shown(404, f"no such {name.removesuffix('_id')}")
        return value

    # -- the list ------------------------------------------------------------------------------

    async def list_cases(self, request: Request) -> Response:
        me = await self.staff(request)
        q = request.query_params
        status = q.get("status") or None
        kind = q.get("kind") or None
        assignee = (q.get("assignee") or "").strip() or None
        overdue = q.get("overdue") == "1"
        problems = []
        if status is not None and status not in STATUSES:
            problems.append(f"status: {status!r} is not one of {', '.join(STATUSES)}")
            status = None
        if kind is not None and kind not in KINDS:
            problems.append(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
            kind = None
        if assignee is not None and len(assignee) > 128:
            problems.append("assignee: at most 128 characters")
            assignee = None
        who = me.username if assignee == "me" else assignee

        def read() -> tuple[date, list[CaseView]]:
            today = self.cases.today(self.now())
            return today, self.cases.list(status=status, kind=kind, assignee=who,
                                          overdue_on=today if overdue else None, limit=LIST_LIMIT)

        try:
            today, found = await run(read)
        except Shown as exc:
            return message(self.console, request, exc)
        return self.console.render(
            request, "cases.html", 400 if problems else 200, cases=found, today=today, problems=problems,
            statuses=STATUSES, kinds=KINDS, status_filter=status or "", kind=kind or "", assignee=assignee or "",
            overdue=overdue, limit=LIST_LIMIT, when=when(self.zone))

    # -- one case ------------------------------------------------------------------------------

    async def show_case(self, request: Request) -> Response:
        try:
            case_id = self.path_id(request, "case_id")
        except Shown as exc:
            return message(self.console, request, exc)
        done = DONE.get(request.query_params.get("done", ""))
        return await self.case_page(request, case_id, notice=done)

    async def case_page(self, request: Request, case_id: str, *, status: int = 200, notice: str | None = None,
                        error: str | None = None) -> Response:
        def read() -> tuple[CaseView, list[Any], date, list[str]]:
            view = self.cases.get(case_id)
            staff_names = [s.username for s in self.console.staff.list() if not s.disabled]
            return view, self.cases.history(case_id, limit=HISTORY_SHOWN), self.cases.today(self.now()), staff_names

        try:
            case, history, today, staff_names = await run(read)
        except Shown as exc:
            return message(self.console, request, exc)
        return self.console.render(
            request, "case.html", status, case=case, history=history, today=today, notice=notice, error=error,
            staff_names=staff_names, enforce_steps=actions.ENFORCE_STEPS, when=when(self.zone),
            fulfil=self.fulfilment(case))

    @staticmethod
    def fulfilment(case: CaseView) -> str | None:
        """Which fulfilment button a PI request gets: ``export``, ``erase``, ``withdraw_consent`` or none."""
        if case.kind != "pi_request" or case.status == "closed":
            return None
        return {"access": "export", "copy": "export", "delete": "erase",
                "withdraw_consent": "withdraw_consent"}.get(case.pi_action or "")

    async def _change(self, request: Request, step: str,
                      do: Callable[[str, FormData, Staff], object]) -> Response:
        me = await self.staff(request)
        try:
            case_id = self.path_id(request, "case_id")
        except Shown as exc:
            return message(self.console, request, exc)
        form = await request.form()
        try:
            await run(lambda: do(case_id, form, me))
        except Shown as exc:
            if exc.status == 404:
                return message(self.console, request, exc)
            return await self.case_page(request, case_id, status=exc.status, error=exc.text)
        return self.back(case_id, step)

    @staticmethod
    def back(case_id: str, done: str) -> Response:
        return RedirectResponse(f"/console/cases/{quote(case_id, safe='')}?done={done}", status_code=303,
                                headers=PAGE_HEADERS)

    async def assign(self, request: Request) -> Response:
        def do(case_id: str, form: FormData, me: Staff) -> object:
            to = field(form, "assignee", 128).strip()
            if not to or to == "me":
                to = me.username
            found = self.console.staff.get(to)
            if found is None or found.disabled:
                raise UserError(f"assignee: no active staff member {to!r}")
            return self.cases.assign(case_id, to, actor=me.actor, now=self.now())

        return await self._change(request, "assign", do)

    async def note(self, request: Request) -> Response:
        return await self._change(request, "note", lambda cid, form, me: self.cases.note(
            cid, field(form, "text"), actor=me.actor, now=self.now()))

    async def reply(self, request: Request) -> Response:
        return await self._change(request, "reply", lambda cid, form, me: self.cases.reply(
            cid, field(form, "text"), actor=me.actor, now=self.now()))

    async def close(self, request: Request) -> Response:
        return await self._change(request, "close", lambda cid, form, me: self.cases.close(
            cid, actor=me.actor, reason=field(form, "reason", 500), now=self.now()))

    async def reopen(self, request: Request) -> Response:
        def do(case_id: str, form: FormData, me: Staff) -> object:
            reason = field(form, "reason", 500).strip()
            if not reason:
                raise UserError("reason: say why the case is reopened")
            return self.cases.reopen(case_id, actor=me.actor, reason=reason, now=self.now())

        return await self._change(request, "reopen", do)

    # -- actions (hegui.cases.actions) ---------------------------------------------------------

    async def act(self, request: Request) -> Response:
        me = await self.staff(request)
        try:
            case_id = self.path_id(request, "case_id")
        except Shown as exc:
            return message(self.console, request, exc)
        form = await request.form()
        action = field(form, "action", 32)
        try:
            if action == "enforce":
                await run(lambda: self.enforce(case_id, form, me))
            elif action in ("lexicon", "allow"):
                list_name: Literal["block", "allow"] = "block" if action == "lexicon" else "allow"
                await run(lambda: actions.add_list_entry(
                    self.cases, case_id, list_name=list_name, text=field(form, "text", 1000),
                    risk=field(form, "risk", 64).strip() or None, note=field(form, "note", 500), actor=me.actor))
            elif action == "takedown":
                await self.takedown(case_id, form, me)
            elif action == "incident":
                await run(lambda: actions.incident(self.cases, case_id, title=field(form, "title", 1000),
                                                   summary=field(form, "summary"), actor=me.actor))
            else:
                raise Shown(400, f"action: {action!r} is not one of {', '.join(actions.ACTIONS)}")
        except Shown as exc:
            if exc.status == 404 and "case" in exc.text:
                return message(self.console, request, exc)
            return await self.case_page(request, case_id, status=exc.status, error=exc.text)
        return self.back(case_id, action)

    def enforce(self, case_id: str, form: FormData, me: Staff) -> dict[str, Any]:
        step = field(form, "step", 32)
        days_text = field(form, "days", 32).strip()
        days: float | None = None
        if step == "suspend":
            try:
                days = float(days_text)
            except ValueError:
                raise UserError("days: a suspension needs its length in days (a number)") from None
        elif days_text:
            raise UserError("days: goes with step suspend only")
        done = actions.enforce(self.cases, self.accounts, case_id, step=step, reason=field(form, "reason", 1000),
                               actor=me.actor, now=self.now(), zone=self.zone,
                               account_id=field(form, "account_id", 128).strip() or None, days=days)
        if self.console.gw.accounts is not None:
            self.console.gw.accounts.forget(done["account_id"])
        return done

    async def takedown(self, case_id: str, form: FormData, me: Staff) -> None:
        from hegui.cases.api import case_admin

        target, reason = field(form, "target", 1000), field(form, "reason", 1000)
        await run(lambda: actions.takedown_checked(self.cases, case_id, target=target, reason=reason))
        try:  # the admin API's transport: tests point both at one fake webhook
            transport = case_admin(self.console.gw).takedown_transport
        except KeyError:
            transport = None
        outcome = await actions.send_takedown(
            self.cfg.cases.takedown, case_id=case_id, target=target.strip(), reason=reason.strip(),
            request_id=actions.new_request_id(), transport=transport)
        await run(lambda: actions.record_takedown(self.cases, case_id, outcome, target=target, actor=me.actor))

    # -- personal-information fulfilment -------------------------------------------------------

    async def fulfil(self, request: Request) -> Response:
        me = await self.staff(request)
        try:
            case_id = self.path_id(request, "case_id")
        except Shown as exc:
            return message(self.console, request, exc)
        form = await request.form()
        try:
            case = await run(lambda: actions.pi_case(self.cases, case_id))
            if case.pi_action in ("access", "copy"):
                blob = await run(lambda: actions.export_person(self.cases, case, actor=me.actor))
                return Response(blob, media_type="application/zip", headers={
                    **PAGE_HEADERS, "Content-Disposition": f'attachment; filename="hegui-{case.id}.zip"'})
            if case.pi_action == "delete":
                if form.get("confirm") != "yes":
                    raise Shown(400, "confirm: tick the box to confirm the deletion (it cannot be undone)")
                reply = field(form, "reply").strip() or actions.DEFAULT_ERASE_REPLY
                cfg = self.cfg
                await run(lambda: actions.erase_person(
                    self.cases, case, actor=me.actor, reply=reply,
                    attachments_dir=cfg.resolve_path(cfg.cases.attachments_dir),
                    vault=cfg.pii.open_vault(cfg.base_dir)))
                return self.back(case_id, "erase")
            await run(lambda: actions.withdraw_consent(self.cases, self.accounts, case, actor=me.actor))
            if self.console.gw.accounts is not None and case.account_id:
                self.console.gw.accounts.forget(case.account_id)
            return self.back(case_id, "withdraw_consent")
        except Shown as exc:
            if exc.status == 404:
                return message(self.console, request, exc)
            return await self.case_page(request, case_id, status=exc.status, error=exc.text)

    # -- attachments ---------------------------------------------------------------------------

    async def attachment(self, request: Request) -> Response:
        try:
            case_id = self.path_id(request, "case_id")
            att_id = self.path_id(request, "att_id")
            case = await run(lambda: self.cases.get(case_id))
        except Shown as exc:
            return message(self.console, request, exc)
        found = next((a for a in case.attachments if a["id"] == att_id), None)
        if found is None:
            return message(self.console, request, Shown(404, f"case {case_id} has no attachment {att_id}"))
        folder = self.cfg.resolve_path(self.cfg.cases.attachments_dir)
        name = str(found["stored_name"])
        path = folder / name
        # stored names are random hex written by the portal; anything else is not ours to serve
        if not name.isalnum() or path.parent != folder:
            return message(self.console, request, Shown(404, f"attachment {att_id} is not stored here"))
        try:
            data = await asyncio.to_thread(Path.read_bytes, path)
        except OSError:
            return message(self.console, request, Shown(
                404, f"attachment {att_id}: the file is gone (erased on request, or moved)"))
        ext = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp",
               "application/pdf": ".pdf", "text/plain": ".txt"}.get(str(found["media_type"]), ".bin")
        original = str(found["original_name"] or "")
        disposition = f'attachment; filename="{att_id}{ext}"'
        if original:
            disposition += f"; filename*=UTF-8''{quote(original, safe='')}"
        return Response(data, media_type=str(found["media_type"]), headers={
            **PAGE_HEADERS, "Content-Disposition": disposition, "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox"})

    # -- appeals -------------------------------------------------------------------------------

    async def list_appeals(self, request: Request) -> Response:
        status = request.query_params.get("status") or "open"
        if status not in ("open", "restored", "upheld"):
            status = "open"
        done = DONE.get(request.query_params.get("done", ""))
        try:
            found = await run(lambda: self.accounts.appeals(status=status))
        except Shown as exc:
            return message(self.console, request, exc)
        return self.console.render(request, "appeals.html", appeals=found, shown_status=status, notice=done, error=None)

    async def decide_appeal(self, request: Request) -> Response:
        me = await self.staff(request)
        try:
            appeal_id = self.path_id(request, "appeal_id")
        except Shown as exc:
            return message(self.console, request, exc)
        form = await request.form()
        decision = field(form, "decision", 16)
        try:
            if decision not in ("restore", "uphold"):
                raise Shown(400, "decision: restore or uphold")
            done = await run(lambda: ladder.decide_appeal(self.accounts, appeal_id, restore=decision == "restore",
                                                          reason=field(form, "reason", 5000), actor=me.actor))
        except Shown as exc:
            if exc.status == 404:
                return message(self.console, request, exc)
            found = await run(lambda: self.accounts.appeals(status="open"))
            return self.console.render(request, "appeals.html", exc.status, appeals=found, shown_status="open",
                                       notice=None, error=exc.text)
        if self.console.gw.accounts is not None:
            self.console.gw.accounts.forget(done["account_id"])
        return RedirectResponse("/console/appeals?" + urlencode({"done": done["status"]}), status_code=303,
                                headers=PAGE_HEADERS)


def routes(console: Console) -> list[ConsoleRoute]:
    work = CaseWork(console)
    return [
        ConsoleRoute("/console/cases", work.list_cases, ("GET",), "viewer"),
        ConsoleRoute("/console/cases/{case_id}", work.show_case, ("GET",), "viewer"),
        ConsoleRoute("/console/cases/{case_id}/attachments/{att_id}", work.attachment, ("GET",), "reviewer"),
        ConsoleRoute("/console/cases/{case_id}/assign", work.assign, ("POST",), "reviewer"),
        ConsoleRoute("/console/cases/{case_id}/note", work.note, ("POST",), "reviewer"),
        ConsoleRoute("/console/cases/{case_id}/reply", work.reply, ("POST",), "reviewer"),
        ConsoleRoute("/console/cases/{case_id}/close", work.close, ("POST",), "reviewer"),
        ConsoleRoute("/console/cases/{case_id}/reopen", work.reopen, ("POST",), "reviewer"),
        ConsoleRoute("/console/cases/{case_id}/actions", work.act, ("POST",), "reviewer"),
        ConsoleRoute("/console/cases/{case_id}/fulfil", work.fulfil, ("POST",), "reviewer"),
        ConsoleRoute("/console/appeals", work.list_appeals, ("GET",), "viewer"),
        ConsoleRoute("/console/appeals/{appeal_id}/decide", work.decide_appeal, ("POST",), "reviewer"),
    ]
