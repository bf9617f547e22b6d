"""The staff side of cases over HTTP (``/admin/cases/...``): list and read cases, open one, assign,
note, reply, close, reopen, act on it (enforce, lexicon or allow-list entry, takedown, incident) and
fulfil a personal-information request. Admin key only.

Each change is one transaction with its hash-chained event (:mod:`hegui.cases.store`,
:mod:`hegui.cases.actions`); the actor recorded is the admin key's id (``admin`` for
``gateway.admin_key``). A step the case's status does not allow is a 409 with the reason; an action
whose module this build lacks is a 501.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hegui.accounts import staff
from hegui.accounts.store import AccountNotFound, AccountStore
from hegui.cases import actions
from hegui.cases.config import CATEGORIES, PI_ACTIONS
from hegui.cases.states import STATUSES
from hegui.cases.store import MAX_CONTACT, MAX_REFERENCE, MAX_TEXT, CaseNotFound, CaseRefused, CaseStore
from hegui.errors import UserError
from hegui.gateway.errors import GatewayError, bad_request, service_unavailable
from hegui.gateway.openapi import Operation
from hegui.gateway.request_models import validate_body
from hegui.ledger.errors import LedgerError

if TYPE_CHECKING:
    from hegui.gateway.routes import Gateway

log = logging.getLogger("hegui.cases")

T = TypeVar("T")

KINDS: tuple[str, ...] = ("complaint", "report", "pi_request")
MAX_LIMIT = 1000
DEFAULT_LIMIT = 200
EVENTS_SHOWN = 500

# Text that is not blank once Python strips it: Python's whitespace also holds \x1c-\x1f, which
# JSON Schema's (and pydantic's) \s does not.
_NONBLANK = r"[^\s\x1c-\x1f]"


# -- request bodies --------------------------------------------------------------------------------

class CaseOpenRequest(BaseModel):
    """``POST /admin/cases``: a case opened by staff (from a phone call, a letter, an e-mail)."""

    # The document says what the handler enforces: a complaint or report has a category, a
    # personal-information request has its action and the account it is about.
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"anyOf": [
        {"properties": {"kind": {"enum": ["complaint", "report"]}, "category": {"enum": list(CATEGORIES)},
                        "pi_action": {"type": "null"}}, "required": ["category"]},
        {"properties": {"kind": {"const": "pi_request"}, "pi_action": {"enum": list(PI_ACTIONS)},
                        "category": {"type": "null"}, "account_id": {"type": "string"}},
         "required": ["pi_action", "account_id"]},
    ]})
    kind: Literal["complaint", "report", "pi_request"]
    category: Literal["illegal", "privacy", "reputation", "ip", "service"] | None = None
    pi_action: Literal["access", "copy", "correct", "supplement", "delete", "withdraw_consent"] | None = None
    description: str = Field(min_length=1, max_length=MAX_TEXT, pattern=_NONBLANK,
                             description="what the person says (kept in the case row, erasable)")
    reference: str = Field("", max_length=MAX_REFERENCE, description="a link to the content, or a decision id")
    contact: str | None = Field(None, max_length=MAX_CONTACT, description="how to reach the person")
    account_id: str | None = Field(None, min_length=1, max_length=128,
                                   description="the account the case is about or from (must exist)")


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    assignee: str = Field(min_length=1, max_length=128, pattern=_NONBLANK, description="who handles the case")


class TextRequest(BaseModel):
    """An internal note (``/notes``) or the reply the person sees (``/reply``)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    text: str = Field(min_length=1, max_length=MAX_TEXT, pattern=_NONBLANK)


class CloseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    reason: str = Field("", max_length=500,
                        description="required when the case has no reply yet: it becomes the reply")


class ReopenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    reason: str = Field(min_length=1, max_length=500, pattern=_NONBLANK)


_ENFORCE_FIELDS = ("account_id", "step", "reason", "days")
_ACTION_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # action: (required, optional)
    "lexicon": (("text", "risk"), ("note",)),
    "allow": (("text",), ("note",)),
    "takedown": (("target", "reason"), ()),
    "incident": (("title",), ("summary",)),
}
_ALL_ACTION_FIELDS = ("account_id", "step", "reason", "days", "text", "risk", "note", "target", "title", "summary")


def _only(action: str, required: tuple[str, ...], optional: tuple[str, ...],
          extra: dict[str, Any] | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"action": {"const": action}}
    props.update({f: {"type": "null"} for f in _ALL_ACTION_FIELDS if f not in required + optional})
    props.update({f: {"type": "string"} for f in required})
    props.update(extra or {})
    return {"properties": props, "required": ["action", *required]}


_ACTION_SCHEMAS: list[Any] = [
    _only("enforce", ("step", "reason"), ("account_id",),
          {"step": {"enum": ["warn", "restrict", "terminate"]}, "days": {"type": "null"}}),
    _only("enforce", ("step", "reason"), ("account_id", "days"),
          {"step": {"const": "suspend"}, "days": {"type": "number"}}),
    *(_only(a, req, opt) for a, (req, opt) in _ACTION_FIELDS.items()),
]
_ACTION_SCHEMAS[1]["required"].append("days")


class CaseActionRequest(BaseModel):
    """``POST /admin/cases/{case_id}/actions``: one action about the case, recorded on it."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"anyOf": _ACTION_SCHEMAS})
    action: Literal["enforce", "lexicon", "allow", "takedown", "incident"]
    account_id: str | None = Field(None, min_length=1, max_length=128,
                                   description="enforce: the account (default: the case's)")
    step: Literal["warn", "restrict", "suspend", "terminate"] | None = Field(None, description="enforce: the step")
    reason: str | None = Field(None, min_length=1, max_length=staff.MAX_REASON, pattern=_NONBLANK,
                               description="enforce, takedown: why (enforce: shown to the person)")
    days: float | None = Field(None, gt=0, le=staff.MAX_DAYS, description="enforce suspend: length in days")
    text: str | None = Field(None, min_length=1, max_length=actions.MAX_ENTRY, pattern=_NONBLANK,
                             description="lexicon, allow: the phrase")
    risk: str | None = Field(None, min_length=1, max_length=16, pattern=_NONBLANK,
                             description="lexicon: the risk code (e.g. A.1.3)")
    note: str | None = Field(None, max_length=actions.MAX_NOTE, description="lexicon, allow: why it was added")
    target: str | None = Field(None, min_length=1, max_length=actions.MAX_NOTE, pattern=_NONBLANK,
                               description="takedown: the content (a URL or the provider's content id)")
    title: str | None = Field(None, min_length=1, max_length=actions.MAX_TITLE, pattern=_NONBLANK,
                              description="incident: its title")
    summary: str | None = Field(None, max_length=MAX_TEXT, description="incident: what happened")


class FulfilRequest(BaseModel):
    """``POST /admin/cases/{case_id}/fulfil``: do what a personal-information request asks."""

    model_config = ConfigDict(extra="forbid", strict=True)
    reply: str | None = Field(None, min_length=1, max_length=MAX_TEXT, pattern=_NONBLANK,
                              description="delete: the reply sent after erasing (default: a standard one)")


# -- response bodies (documented in /openapi.json) ---------------------------------------------------

class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow")


class CaseOut(_Doc):
    id: str
    kind: str
    category: str | None
    pi_action: str | None
    description: str
    reference: str
    contact: str | None
    account_id: str | None
    status: Literal["open", "in_progress", "replied", "closed"]
    assignee: str | None
    due_on: str = Field(description="the last working day to reply (ISO date, provider's time zone)")
    overdue: bool = Field(description="still awaiting its reply after the due date")
    reply: str | None
    opened_at: str
    updated_at: str


class CaseFull(CaseOut):
    """A case with its internal notes and attachments (metadata), as every step answers it."""

    notes: list[dict[str, Any]]
    attachments: list[dict[str, Any]]


class CaseEvent(_Doc):
    seq: int
    event_id: str
    kind: str
    actor: str
    data: dict[str, Any]
    created_at: str


class CaseDetail(CaseFull):
    events: list[CaseEvent] = Field(description=f"the case's history, oldest first (newest {EVENTS_SHOWN})")


class CaseList(_Doc):
    cases: list[CaseOut] = Field(description="without notes and attachments (read one case for those)")


class CaseOpened(_Doc):
    id: str
    code: str = Field(description="the code the person keeps to see the case (shown this once)")


class ActionDone(_Doc):
    action: str
    case_event: str = Field(description="the case.action.* event recorded on the case")


def _path() -> dict[str, Any]:
    return {"name": "case_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, schema: dict[str, Any], what: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": what, "schema": schema}


_LIST_PARAMS = (
    _query("status", {"type": "string", "enum": list(STATUSES)}, "only cases with this status"),
    _query("kind", {"type": "string", "enum": list(KINDS)}, "only cases of this kind"),
    _query("assignee", {"type": "string", "minLength": 1, "maxLength": 128}, "only cases assigned to this person"),
    _query("overdue", {"type": "boolean"}, "true: only open cases past their due date"),
    _query("account_id", {"type": "string", "minLength": 1, "maxLength": 128}, "only cases of this account"),
    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
           f"at most this many (default {DEFAULT_LIMIT}), oldest due first"),
)
_STEP_ERRORS = (400, 404, 409, 413, 503)

OPERATIONS: tuple[Operation, ...] = (
    Operation("/admin/cases", "get", "Cases, oldest due first, with filters", "cases", CaseList, auth="admin",
              errors=(400, 503), params=_LIST_PARAMS),
    Operation("/admin/cases", "post", "Open a case (complaint, report or personal-information request)", "cases",
              CaseOpened, CaseOpenRequest, auth="admin", errors=(400, 404, 413, 503), status=201),
    Operation("/admin/cases/{case_id}", "get", "One case: notes, attachments (metadata) and its events", "cases",
              CaseDetail, auth="admin", errors=(404, 503), params=(_path(),)),
    Operation("/admin/cases/{case_id}/assign", "post", "Assign the case", "cases", CaseFull, AssignRequest,
              auth="admin", errors=_STEP_ERRORS, params=(_path(),)),
    Operation("/admin/cases/{case_id}/notes", "post", "Add an internal note", "cases", CaseFull, TextRequest,
              auth="admin", errors=_STEP_ERRORS, params=(_path(),)),
    Operation("/admin/cases/{case_id}/reply", "post", "Write the reply the person sees", "cases", CaseFull,
              TextRequest, auth="admin", errors=_STEP_ERRORS, params=(_path(),)),
    Operation("/admin/cases/{case_id}/close", "post", "Close the case (a reason when it has no reply yet)", "cases",
              CaseFull, CloseRequest, auth="admin", errors=_STEP_ERRORS, params=(_path(),)),
    Operation("/admin/cases/{case_id}/reopen", "post", "Reopen a replied or closed case", "cases", CaseFull,
              ReopenRequest, auth="admin", errors=_STEP_ERRORS, params=(_path(),)),
    Operation("/admin/cases/{case_id}/actions", "post",
              "Act on the case: enforce on the account, lexicon or allow-list entry, takedown, incident",
              "cases", ActionDone, CaseActionRequest, auth="admin", errors=(*_STEP_ERRORS, 501), params=(_path(),)),
    Operation("/admin/cases/{case_id}/fulfil", "post",
              "Fulfil a personal-information request: access/copy answer the ZIP of the person's data; "
              "delete and withdraw_consent answer JSON (ActionDone)", "cases", None, FulfilRequest,
              auth="admin", errors=(*_STEP_ERRORS, 501), media="application/zip", params=(_path(),)),
)

class CaseAdmin:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.cases = CaseStore(gw.ledger, gw.cfg.cases, gw.cfg.accounts.timezone)
        gate = gw.accounts
        self.accounts = gate.store if gate is not None else AccountStore(gw.ledger)
        self.zone = ZoneInfo(gw.cfg.accounts.timezone)
        self.takedown_transport: Any = None
        """An httpx transport for the takedown webhook (tests); None: the network."""

    def now(self) -> datetime:
        gate = self.gw.accounts
        return gate.clock() if gate is not None else datetime.now(UTC)

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn`` in a worker thread; store errors as HTTP errors."""
        try:
            return await asyncio.to_thread(fn)
        except (CaseNotFound, AccountNotFound) as exc:
            raise GatewayError(404, str(exc), code="not_found") from None
        except (CaseRefused, staff.Conflict) as exc:
            raise GatewayError(409, str(exc), code="conflict") from None
        except actions.NotAvailable as exc:
            raise GatewayError(501, str(exc), type="not_implemented", code="not_available") from None
        except LedgerError as exc:
            log.error("cases admin: %s", exc)
            raise service_unavailable(f"the ledger is unavailable: {exc}", "ledger_unavailable") from None
        except UserError as exc:
            field = str(exc).split(":", 1)[0] if ":" in str(exc) else None
            known = field in CaseActionRequest.model_fields or field in CaseOpenRequest.model_fields
            raise bad_request(str(exc), param=field if known else None) from None
        except SQLAlchemyError as exc:
            log.error("cases admin: %s", exc)
            raise service_unavailable("the ledger is unavailable", "ledger_unavailable") from None

    @staticmethod
    def case_id(request: Request) -> str:
        value = str(request.path_params["case_id"])
        if "\x00" in value:  # no id holds one, and PostgreSQL cannot even be asked
            raise GatewayError(404, f"no case {value!r}", code="not_found")
        return value

    def shown(self, case_id: str) -> dict[str, Any]:
        return self.cases.get(case_id).to_dict(today=self.cases.today(self.now()))

    # -- reading ------------------------------------------------------------------------------------

    async def cases_root(self, request: Request) -> Response:
        return await (self.open_case(request) if request.method == "POST" else self.list_cases(request))

    async def list_cases(self, request: Request) -> Response:
        await self.gw.require_admin(request)
        q = _ListQuery(request)
        status = q.choice("status", STATUSES)
        kind = q.choice("kind", KINDS)
        assignee, account_id = q.text("assignee"), q.text("account_id")
        overdue, limit = q.flag("overdue"), q.number("limit", DEFAULT_LIMIT, MAX_LIMIT)
        q.no_others()

        def read() -> dict[str, Any]:
            today = self.cases.today(self.now())
            found = self.cases.list(status=status, kind=kind, assignee=assignee, account_id=account_id,
                                    overdue_on=today if overdue else None, limit=limit)
            return {"cases": [_summary(c.to_dict(today=today)) for c in found]}

        return JSONResponse(await self.run(read))

    async def show_case(self, request: Request) -> Response:
        await self.gw.require_admin(request)
        case_id = self.case_id(request)

        def read() -> dict[str, Any]:
            out = self.shown(case_id)
            out["events"] = [e.to_dict() for e in self.cases.history(case_id, limit=EVENTS_SHOWN)]
            return out

        return JSONResponse(await self.run(read))

    # -- steps --------------------------------------------------------------------------------------

    async def open_case(self, request: Request) -> Response:
        principal = await self.gw.require_admin(request)
        req = validate_body(CaseOpenRequest, await self.gw.read_json(request))
        if req.kind in ("complaint", "report") and req.category is None:
            raise bad_request(f"category: a {req.kind} needs one of {', '.join(CATEGORIES)}", param="category")
        if req.kind == "pi_request":
            if req.pi_action is None:
                raise bad_request(f"pi_action: a pi_request needs one of {', '.join(PI_ACTIONS)}", param="pi_action")
            if req.account_id is None:
                raise bad_request("account_id: a pi_request opened by staff names the account it is about",
                                  param="account_id")

        def change() -> tuple[str, str]:
            if req.account_id is not None:
                self.accounts.profile(req.account_id)  # AccountNotFound: 404
            return self.cases.open_case(
                req.kind, description=req.description, category=req.category, pi_action=req.pi_action,
                reference=req.reference.strip(), contact=req.contact, account_id=req.account_id, source="api",
                actor=principal.key_id, now=self.now())

        case_id, code = await self.run(change)
        return JSONResponse({"id": case_id, "code": code}, status_code=201)

    async def _step(self, request: Request, model: type[BaseModel],
                    step: Callable[[str, Any, str], object]) -> Response:
        principal = await self.gw.require_admin(request)
        case_id = self.case_id(request)
        req = validate_body(model, await self.gw.read_json(request))

        def change() -> dict[str, Any]:
            step(case_id, req, principal.key_id)
            return self.shown(case_id)

        return JSONResponse(await self.run(change))

    async def assign(self, request: Request) -> Response:
        return await self._step(request, AssignRequest, lambda cid, req, actor: self.cases.assign(
            cid, req.assignee, actor=actor, now=self.now()))

    async def note(self, request: Request) -> Response:
        return await self._step(request, TextRequest, lambda cid, req, actor: self.cases.note(
            cid, req.text, actor=actor, now=self.now()))

    async def reply(self, request: Request) -> Response:
        return await self._step(request, TextRequest, lambda cid, req, actor: self.cases.reply(
            cid, req.text, actor=actor, now=self.now()))

    async def close(self, request: Request) -> Response:
        return await self._step(request, CloseRequest, lambda cid, req, actor: self.cases.close(
            cid, actor=actor, reason=req.reason, now=self.now()))

    async def reopen(self, request: Request) -> Response:
        return await self._step(request, ReopenRequest, lambda cid, req, actor: self.cases.reopen(
            cid, actor=actor, reason=req.reason, now=self.now()))

    # -- actions ------------------------------------------------------------------------------------

    async def act(self, request: Request) -> Response:
        principal = await self.gw.require_admin(request)
        case_id = self.case_id(request)
        req = validate_body(CaseActionRequest, await self.gw.read_json(request))
        actor = principal.key_id
        _check_action_fields(req)
        done: dict[str, Any]
        if req.action == "enforce":
            assert req.step is not None and req.reason is not None
            step, reason = req.step, req.reason
            done = await self.run(lambda: actions.enforce(
                self.cases, self.accounts, case_id, step=step, reason=reason, actor=actor, now=self.now(),
                zone=self.zone, account_id=req.account_id, days=req.days))
            if self.gw.accounts is not None:
                self.gw.accounts.forget(done["account_id"])
        elif req.action in ("lexicon", "allow"):
            assert req.text is not None
            text = req.text
            list_name: Literal["block", "allow"] = "block" if req.action == "lexicon" else "allow"
            done = await self.run(lambda: actions.add_list_entry(
                self.cases, case_id, list_name=list_name, text=text, risk=req.risk, note=req.note or "",
                actor=actor))
        elif req.action == "takedown":
            assert req.target is not None and req.reason is not None
            target, reason = req.target, req.reason
            await self.run(lambda: actions.takedown_checked(self.cases, case_id, target=target, reason=reason))
            outcome = await actions.send_takedown(
                self.gw.cfg.cases.takedown, case_id=case_id, target=target.strip(), reason=reason.strip(),
                request_id=actions.new_request_id(), transport=self.takedown_transport)
            done = await self.run(lambda: actions.record_takedown(self.cases, case_id, outcome, target=target,
                                                                  actor=actor))
        else:
            assert req.title is not None
            title = req.title
            done = await self.run(lambda: actions.incident(self.cases, case_id, title=title,
                                                           summary=req.summary or "", actor=actor))
        return JSONResponse(done)

    async def fulfil(self, request: Request) -> Response:
        principal = await self.gw.require_admin(request)
        case_id = self.case_id(request)
        req = validate_body(FulfilRequest, await self.gw.read_json(request))
        actor = principal.key_id
        case = await self.run(lambda: actions.pi_case(self.cases, case_id))
        if case.pi_action in ("access", "copy"):
            blob = await self.run(lambda: actions.export_person(self.cases, case, actor=actor))
            return Response(blob, media_type="application/zip", headers={
                "content-disposition": f'attachment; filename="hegui-{case.id}.zip"'})
        if case.pi_action == "delete":
            reply = req.reply or actions.DEFAULT_ERASE_REPLY
            cfg = self.gw.cfg
            return JSONResponse(await self.run(lambda: actions.erase_person(
                self.cases, case, actor=actor, reply=reply,
                attachments_dir=cfg.resolve_path(cfg.cases.attachments_dir),
                vault=cfg.pii.open_vault(cfg.base_dir))))
        return JSONResponse(await self.run(lambda: actions.withdraw_consent(self.cases, self.accounts, case,
                                                                            actor=actor)))


def _summary(case: dict[str, Any]) -> dict[str, Any]:
    # a listed case is read without its notes and attachments: leave them out, not shown empty
    case.pop("notes", None)
    case.pop("attachments", None)
    return case


def _check_action_fields(req: CaseActionRequest) -> None:
    """The fields each action takes, as the document's ``anyOf`` states them."""
    required: tuple[str, ...]
    optional: tuple[str, ...]
    if req.action == "enforce":
        required, optional = ("step", "reason"), ("account_id", "days")
    else:
        required, optional = _ACTION_FIELDS[req.action]
    given = req.model_fields_set - {"action"}
    for name in required:
        if getattr(req, name) is None:
            raise bad_request(f"{name}: is required for the {req.action} action", param=name)
    for name in sorted(given - set(required) - set(optional)):
        if getattr(req, name) is not None:
            raise bad_request(f"{name}: does not go with the {req.action} action", param=name)
    if req.action == "enforce":
        if req.step == "suspend" and req.days is None:
            raise bad_request("days: a suspension needs its length in days", param="days")
        if req.step != "suspend" and req.days is not None:
            raise bad_request("days: goes with step suspend only", param="days")


class _ListQuery:
    """The query of ``GET /admin/cases``: each parameter once, known ones only."""

    def __init__(self, request: Request) -> None:
        self.params = request.query_params
        self.seen: set[str] = set()

    def _one(self, name: str) -> str | None:
        self.seen.add(name)
        found = self.params.getlist(name)
        if not found:
            return None
        if len(found) > 1:
            raise bad_request(f"{name}: give it once", param=name)
        return found[0]

    def choice(self, name: str, values: tuple[str, ...]) -> str | None:
        value = self._one(name)
        if value is not None and value not in values:
            raise bad_request(f"{name}: {value!r} is not one of {', '.join(values)}", param=name)
        return value

    def text(self, name: str) -> str | None:
        value = self._one(name)
        if value is not None and (not value or len(value) > 128 or "\x00" in value):
            raise bad_request(f"{name}: give 1 to 128 characters", param=name)
        return value

    def flag(self, name: str) -> bool:
        value = self._one(name)
        if value is None or value in ("false", "0"):
            return False
        if value in ("true", "1"):
            return True
        raise bad_request(f"{name}: {value!r} is not true or false", param=name)

    def number(self, name: str, default: int, most: int) -> int:
        value = self._one(name)
        if value is None:
            return default
        if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= most:
            raise bad_request(f"{name}: give a whole number from 1 to {most}", param=name)
        return int(value)

    def no_others(self) -> None:
        for other in self.params:
            if other not in self.seen:
                raise bad_request(f"unknown query parameter {other!r}", param=other)


def routes(gw: Gateway) -> list[Route]:
    admin = CaseAdmin(gw)
    _ADMINS[gw] = admin
    return [
        # one route for both methods, so a 405 on it names them both in Allow
        Route("/admin/cases", admin.cases_root, methods=["GET", "POST"]),
        Route("/admin/cases/{case_id}", admin.show_case, methods=["GET"]),
        Route("/admin/cases/{case_id}/assign", admin.assign, methods=["POST"]),
        Route("/admin/cases/{case_id}/notes", admin.note, methods=["POST"]),
        Route("/admin/cases/{case_id}/reply", admin.reply, methods=["POST"]),
        Route("/admin/cases/{case_id}/close", admin.close, methods=["POST"]),
        Route("/admin/cases/{case_id}/reopen", admin.reopen, methods=["POST"]),
        Route("/admin/cases/{case_id}/actions", admin.act, methods=["POST"]),
        Route("/admin/cases/{case_id}/fulfil", admin.fulfil, methods=["POST"]),
    ]


_ADMINS: weakref.WeakKeyDictionary[Gateway, CaseAdmin] = weakref.WeakKeyDictionary()


def case_admin(gw: Gateway) -> CaseAdmin:
    """The case admin routes of a gateway (tests set ``.takedown_transport`` through it)."""
    return _ADMINS[gw]
