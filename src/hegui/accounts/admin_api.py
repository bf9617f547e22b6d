"""The staff side of accounts over HTTP (``/admin/accounts/...``, ``/admin/appeals/...``): ladder
actions with a reason, appeal decisions, account pages. Admin key only.

Each change is one transaction with its hash-chained event (:mod:`hegui.accounts.store`); the actor
recorded is the admin key's id (``admin`` for ``gateway.admin_key``). After a change this worker
drops its cached profile at once; other workers see it through the ``accounts_version`` poll.
"""

from __future__ import annotations

import asyncio
import logging
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
from hegui.accounts.config import LADDER
from hegui.accounts.store import AccountNotFound, AccountStore, Profile
from hegui.errors import UserError
from hegui.gateway.errors import GatewayError, bad_request, service_unavailable
from hegui.gateway.openapi import Operation
from hegui.gateway.request_models import validate_body
from hegui.ledger.errors import LedgerError
from hegui.ledger.events import events

if TYPE_CHECKING:
    from hegui.gateway.routes import Gateway

log = logging.getLogger("hegui.accounts")

T = TypeVar("T")

APPEAL_STATUSES = ("open", "restored", "upheld")
EVENTS_SHOWN = 200

# An RFC 3339 date-time with its offset, as JSON Schema's ``date-time`` format has it.
_DATE_TIME = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"


# -- request bodies --------------------------------------------------------------------------------

class AccountActionRequest(BaseModel):
    """``POST /admin/accounts/{account_id}/actions``: a step on the ladder by a person, with a reason."""

    # The document says what the checks below it enforce: a suspension has an end (``until`` or
    # ``days``, not both); the other actions take neither.
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"anyOf": [
        {"properties": {"action": {"enum": ["warn", "restrict", "restore", "terminate"]},
                        "until": {"type": "null"}, "days": {"type": "null"}}},
        {"properties": {"action": {"const": "suspend"}, "until": {"type": "string"}, "days": {"type": "null"}},
         "required": ["until"]},
        {"properties": {"action": {"const": "suspend"}, "days": {"type": "number"}, "until": {"type": "null"}},
         "required": ["days"]},
    ]})
    action: Literal["warn", "restrict", "suspend", "restore", "terminate"]
    reason: str = Field(min_length=1, max_length=staff.MAX_REASON, pattern=r"\S",
                        description="recorded with the step and shown to the person")
    until: str | None = Field(None, pattern=_DATE_TIME, json_schema_extra={"format": "date-time"},
                              description="end of a suspension (RFC 3339, with offset); or give days")
    days: float | None = Field(None, gt=0, le=staff.MAX_DAYS, description="length of a suspension in days")
    evidence: list[str] = Field(default_factory=list, max_length=staff.MAX_EVIDENCE,
                                description="decision ids that justify the step")


class AppealDecisionRequest(BaseModel):
    """``POST /admin/appeals/{appeal_id}/decision``: restore the account, or uphold its standing."""

    model_config = ConfigDict(extra="forbid", strict=True)
    restore: bool
    reason: str = Field(min_length=1, max_length=5000, pattern=r"\S", description="told to the person")


# -- response bodies (documented in /openapi.json) ---------------------------------------------------

class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow")


class AccountSummary(_Doc):
    account_id: str
    kind: str
    phone: str | None = Field(description="masked (138****8000); the number itself is never stored")
    verified: bool
    standing: str = Field(description="as recorded")
    standing_now: str = Field(description="in effect now: a suspension that has ended reads `restricted`")
    standing_until: str | None
    standing_reason: str


class AccountList(_Doc):
    object: Literal["list"]
    data: list[AccountSummary]


class AccountEvent(_Doc):
    seq: int
    event_id: str
    kind: str
    account_id: str | None
    actor: str
    data: dict[str, Any]
    created_at: str


class AppealOut(_Doc):
    id: str
    account_id: str
    reason: str
    status: Literal["open", "restored", "upheld"]
    created_at: str
    decided_at: str | None
    decided_by: str | None
    decision_reason: str | None


class AccountDetail(_Doc):
    account: AccountSummary
    events: list[AccountEvent] = Field(description=f"the account's history, oldest first (newest {EVENTS_SHOWN})")
    appeals: list[AppealOut]


class ActionTaken(_Doc):
    event_id: str
    account_id: str
    action: str
    standing: str
    standing_until: str | None


class AppealList(_Doc):
    object: Literal["list"]
    data: list[AppealOut]


class AppealDecided(_Doc):
    appeal_id: str
    account_id: str
    status: Literal["restored", "upheld"]
    standing: str


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query_enum(name: str, values: tuple[str, ...], what: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": what,
            "schema": {"type": "string", "enum": list(values)}}


OPERATIONS: tuple[Operation, ...] = (
    Operation("/admin/accounts", "get", "Accounts, optionally of one standing", "admin", AccountList,
              auth="admin", errors=(400, 503),
              params=(_query_enum("standing", LADDER, "only accounts recorded with this standing"),)),
    Operation("/admin/accounts/{account_id}", "get", "One account: profile, history (events) and appeals",
              "admin", AccountDetail, auth="admin", errors=(404, 503), params=(_path("account_id"),)),
    Operation("/admin/accounts/{account_id}/actions", "post",
              "Warn, restrict, suspend, restore or terminate an account, with a reason (a ledger event)",
              "admin", ActionTaken, AccountActionRequest, auth="admin",
              errors=(400, 404, 409, 413, 503), params=(_path("account_id"),)),
    Operation("/admin/appeals", "get", "Appeals, optionally of one status", "admin", AppealList,
              auth="admin", errors=(400, 503),
              params=(_query_enum("status", APPEAL_STATUSES, "only appeals with this status"),)),
    Operation("/admin/appeals/{appeal_id}/decision", "post",
              "Decide an appeal: restore the account to good standing, or uphold", "admin",
              AppealDecided, AppealDecisionRequest, auth="admin", errors=(400, 404, 409, 413, 503),
              params=(_path("appeal_id"),)),
)


def summary(profile: Profile, now: datetime) -> dict[str, Any]:
    return {**profile.to_dict(), "standing_now": profile.standing_at(now)}


class AdminAccounts:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        gate = gw.accounts
        self.store = gate.store if gate is not None else AccountStore(gw.ledger)
        self.zone = ZoneInfo(gw.cfg.accounts.timezone)

    def now(self) -> datetime:
        gate = self.gw.accounts
        return gate.clock() if gate is not None else datetime.now(UTC)

    def changed(self, account_id: str) -> None:
        if self.gw.accounts is not None:
            self.gw.accounts.forget(account_id)

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn`` in a worker thread; store errors as HTTP errors."""
        try:
            return await asyncio.to_thread(fn)
        except AccountNotFound as exc:
            raise GatewayError(404, str(exc), code="not_found") from None
        except staff.Conflict as exc:
            raise GatewayError(409, str(exc), code="conflict") from None
        except LedgerError as exc:
            log.error("accounts admin: %s", exc)
            raise service_unavailable(f"the ledger is unavailable: {exc}", "ledger_unavailable") from None
        except UserError as exc:
            field = str(exc).split(":", 1)[0] if ":" in str(exc) else None
            raise bad_request(str(exc), param=field if field in AccountActionRequest.model_fields else None) \
                from None
        except SQLAlchemyError as exc:
            log.error("accounts admin: %s", exc)
            raise service_unavailable("the ledger is unavailable", "ledger_unavailable") from None

    @staticmethod
    def path_id(request: Request, name: str, what: str) -> str:
        value = str(request.path_params[name])
        if "\x00" in value:  # no id holds one, and PostgreSQL cannot even be asked
            raise GatewayError(404, f"no {what} {value!r}", code="not_found")
        return value

    @staticmethod
    def query_choice(request: Request, name: str, values: tuple[str, ...]) -> str | None:
        """The one query parameter a list route takes (anything else is refused, as documented)."""
        for other in request.query_params:
            if other != name:
                raise bad_request(f"unknown query parameter {other!r} (this route takes only {name!r})",
                                  param=other)
        found = request.query_params.getlist(name)
        if not found:
            return None
        if len(found) > 1:
            raise bad_request(f"{name}: give it once", param=name)
        if found[0] not in values:
            raise bad_request(f"{name}: {found[0]!r} is not one of {', '.join(values)}", param=name)
        return found[0]

    # -- routes ------------------------------------------------------------------------------------

    async def list_accounts(self, request: Request) -> Response:
        await self.gw.require_admin(request)
        standing = self.query_choice(request, "standing", LADDER)
        profiles = await self.run(lambda: self.store.profiles(standing=standing))
        now = self.now()
        return JSONResponse({"object": "list", "data": [summary(p, now) for p in profiles]})

    async def show_account(self, request: Request) -> Response:
        await self.gw.require_admin(request)
        account_id = self.path_id(request, "account_id", "account")

        def read() -> dict[str, Any]:
            profile = self.store.profile(account_id)
            history = events(self.gw.ledger, account_id=account_id, limit=EVENTS_SHOWN)
            return {"account": summary(profile, self.now()), "events": [e.to_dict() for e in history],
                    "appeals": self.store.appeals(account_id=account_id)}

        return JSONResponse(await self.run(read))

    async def account_action(self, request: Request) -> Response:
        principal = await self.gw.require_admin(request)
        account_id = self.path_id(request, "account_id", "account")
        req = validate_body(AccountActionRequest, await self.gw.read_json(request))
        done = await self.run(lambda: staff.take_action(
            self.store, account_id, req.action, reason=req.reason, actor=principal.key_id, now=self.now(),
            zone=self.zone, until=req.until, days=req.days, evidence=req.evidence))
        self.changed(account_id)
        return JSONResponse(done)

    async def list_appeals(self, request: Request) -> Response:
        await self.gw.require_admin(request)
        status = self.query_choice(request, "status", APPEAL_STATUSES)
        appeals = await self.run(lambda: self.store.appeals(status=status))
        return JSONResponse({"object": "list", "data": appeals})

    async def decide_appeal(self, request: Request) -> Response:
        principal = await self.gw.require_admin(request)
        appeal_id = self.path_id(request, "appeal_id", "appeal")
        req = validate_body(AppealDecisionRequest, await self.gw.read_json(request))
        done = await self.run(lambda: staff.decide_appeal(self.store, appeal_id, restore=req.restore,
                                                          reason=req.reason, actor=principal.key_id))
        self.changed(done["account_id"])
        return JSONResponse(done)


def routes(gw: Gateway) -> list[Route]:
    admin = AdminAccounts(gw)
    return [
        Route("/admin/accounts", admin.list_accounts, methods=["GET"]),
        Route("/admin/accounts/{account_id}", admin.show_account, methods=["GET"]),
        Route("/admin/accounts/{account_id}/actions", admin.account_action, methods=["POST"]),
        Route("/admin/appeals", admin.list_appeals, methods=["GET"]),
        Route("/admin/appeals/{appeal_id}/decision", admin.decide_appeal, methods=["POST"]),
    ]
