"""Incidents over HTTP (``/admin/incidents/...``): open, add decisions, record containment,
rectification and the report to the authority, close, and download the report (JSON, DOCX, PDF).
Admin key only.

Each change is one transaction with its hash-chained event (:mod:`hegui.cases.incidents`); the actor
recorded is the admin key's id. Database work and report rendering run in worker threads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hegui.cases import incidents, report
from hegui.errors import UserError
from hegui.gateway.errors import GatewayError, bad_request, service_unavailable
from hegui.gateway.openapi import Operation
from hegui.gateway.request_models import validate_body
from hegui.ledger.errors import LedgerError

if TYPE_CHECKING:
    from pathlib import Path

    from hegui.gateway.routes import Gateway

log = logging.getLogger("hegui.cases")

T = TypeVar("T")

# Text that says something (not only spaces) and holds no NUL (no database can store one).
_TEXT = r"^[^\x00]*\S[^\x00]*$"
_DECISION_ID = r"^[^\x00\s]{1,64}$"


# -- request bodies --------------------------------------------------------------------------------

class IncidentOpenRequest(BaseModel):
    """``POST /admin/incidents``: what was found, and the decisions that show it."""

    model_config = ConfigDict(extra="forbid", strict=True)
    title: str = Field(min_length=1, max_length=incidents.MAX_TITLE, pattern=_TEXT)
    summary: str = Field("", max_length=incidents.MAX_TEXT, pattern=r"^[^\x00]*$")
    decision_ids: list[str] = Field(min_length=1, max_length=incidents.MAX_DECISIONS,
                                    json_schema_extra={"items": {"type": "string", "pattern": _DECISION_ID}},
                                    description="decision ids in the ledger that show what was found")
    case_id: str | None = Field(None, min_length=1, max_length=40, pattern=_TEXT,
                                description="the complaint or report it came from")


class IncidentDecisionsRequest(BaseModel):
    """``POST /admin/incidents/{incident_id}/decisions``: decisions found later."""

    model_config = ConfigDict(extra="forbid", strict=True)
    decision_ids: list[str] = Field(min_length=1, max_length=incidents.MAX_DECISIONS,
                                    json_schema_extra={"items": {"type": "string", "pattern": _DECISION_ID}})


class ContainmentRequest(BaseModel):
    """``POST /admin/incidents/{incident_id}/containment``: what was stopped or removed, and how."""

    model_config = ConfigDict(extra="forbid", strict=True)
    stopped: str = Field(min_length=1, max_length=incidents.MAX_TEXT, pattern=_TEXT)


class RectificationRequest(BaseModel):
    """``POST /admin/incidents/{incident_id}/rectification``: what was done to the model, lexicon or policy."""

    model_config = ConfigDict(extra="forbid", strict=True)
    rectification: str = Field(min_length=1, max_length=incidents.MAX_TEXT, pattern=_TEXT)


class ReportedRequest(BaseModel):
    """``POST /admin/incidents/{incident_id}/reported``: the report went to the authority."""

    model_config = ConfigDict(extra="forbid", strict=True)
    authority: str = Field(min_length=1, max_length=incidents.MAX_FIELD, pattern=_TEXT,
                           description="who it was reported to (e.g. 省网信办)")
    reference: str = Field(min_length=1, max_length=incidents.MAX_FIELD, pattern=_TEXT,
                           description="the report's reference number")


# -- response bodies (documented in /openapi.json) ---------------------------------------------------

class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow")


class IncidentOut(_Doc):
    id: str
    title: str
    summary: str
    status: Literal["open", "contained", "rectified", "reported", "closed"]
    decision_ids: list[str]
    stopped: str
    rectification: str
    case_id: str | None
    details: dict[str, Any]
    opened_by: str
    opened_at: str
    updated_at: str
    closed_at: str | None


class IncidentList(_Doc):
    object: Literal["list"]
    data: list[IncidentOut]


class IncidentStep(_Doc):
    incident: IncidentOut
    event_id: str | None = Field(description="the ledger event of the step (null when nothing changed)")


class IncidentReport(_Doc):
    title: str
    generated_at: str
    provider: dict[str, Any]
    incident: dict[str, Any]
    decisions: list[dict[str, Any]]
    timeline: list[dict[str, Any]]
    counts_by_risk: dict[str, int]
    counts_by_action: dict[str, int]
    chart: dict[str, Any]


def _path() -> dict[str, Any]:
    return {"name": "incident_id", "in": "path", "required": True, "schema": {"type": "string"}}


_STEP_ERRORS = (400, 404, 409, 413, 503)
OPERATIONS: tuple[Operation, ...] = (
    Operation("/admin/incidents", "get", "Incidents (Art. 14), newest first, optionally of one status", "incidents",
              IncidentList, auth="admin", errors=(400, 503),
              params=({"name": "status", "in": "query", "required": False, "description": "only this status",
                       "schema": {"type": "string", "enum": list(incidents.STATUSES)}},)),
    Operation("/admin/incidents", "post", "Open an incident about decisions in the ledger", "incidents",
              IncidentOut, IncidentOpenRequest, auth="admin", errors=(400, 404, 413, 503), status=201),
    Operation("/admin/incidents/{incident_id}", "get", "One incident", "incidents", IncidentOut, auth="admin",
              errors=(404, 503), params=(_path(),)),
    Operation("/admin/incidents/{incident_id}/decisions", "post", "Add decisions found later", "incidents",
              IncidentStep, IncidentDecisionsRequest, auth="admin", errors=_STEP_ERRORS, params=(_path(),)),
    Operation("/admin/incidents/{incident_id}/containment", "post",
              "Record what was stopped or removed (the incident becomes contained)", "incidents", IncidentStep,
              ContainmentRequest, auth="admin", errors=_STEP_ERRORS, params=(_path(),)),
    Operation("/admin/incidents/{incident_id}/rectification", "post",
              "Record the rectification of the model (the incident becomes rectified)", "incidents", IncidentStep,
              RectificationRequest, auth="admin", errors=_STEP_ERRORS, params=(_path(),)),
    Operation("/admin/incidents/{incident_id}/reported", "post",
              "Record the report to the authority (the incident becomes reported)", "incidents", IncidentStep,
              ReportedRequest, auth="admin", errors=_STEP_ERRORS, params=(_path(),)),
    Operation("/admin/incidents/{incident_id}/close", "post", "Close a reported incident", "incidents",
              IncidentStep, auth="admin", errors=(404, 409, 503), params=(_path(),)),
    Operation("/admin/incidents/{incident_id}/report.json", "get", "The authority report's facts as JSON",
              "incidents", IncidentReport, auth="admin", errors=(404, 503), params=(_path(),)),
    Operation("/admin/incidents/{incident_id}/report.docx", "get", "The authority report as DOCX", "incidents",
              None, auth="admin", errors=(404, 503), media=report.MEDIA_TYPES["docx"], params=(_path(),)),
    Operation("/admin/incidents/{incident_id}/report.pdf", "get", "The authority report as PDF", "incidents",
              None, auth="admin", errors=(404, 503), media=report.MEDIA_TYPES["pdf"], params=(_path(),)),
)


class AdminIncidents:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn`` in a worker thread; store errors as HTTP errors."""
        try:
            return await asyncio.to_thread(fn)
        except (incidents.IncidentNotFound, incidents.UnknownDecision) as exc:
            raise GatewayError(404, str(exc), code="not_found") from None
        except incidents.IncidentRefused as exc:
            message = str(exc)
            if message.startswith("incident "):  # a step the status does not allow
                raise GatewayError(409, message, code="conflict") from None
            field = message.split(":", 1)[0]
            raise bad_request(message, param=field if " " not in field else None) from None
        except report.ReportError as exc:
            log.error("incident report: %s", exc)
            raise service_unavailable(str(exc), "report_unavailable") from None
        except LedgerError as exc:
            log.error("incidents admin: %s", exc)
            raise service_unavailable(f"the ledger is unavailable: {exc}", "ledger_unavailable") from None
        except UserError as exc:
            raise bad_request(str(exc)) from None
        except SQLAlchemyError as exc:
            log.error("incidents admin: %s", exc)
            raise service_unavailable("the ledger is unavailable", "ledger_unavailable") from None

    @staticmethod
    def incident_id(request: Request) -> str:
        value = str(request.path_params["incident_id"])
        if "\x00" in value:  # no id holds one, and PostgreSQL cannot even be asked
            raise GatewayError(404, f"no incident {value!r}", code="not_found")
        return value

    def font(self) -> Path | None:
        configured = self.gw.cfg.cases.report_font
        return self.gw.cfg.resolve_path(configured) if configured else None

    def step(self, incident_id: str, fn: Callable[[], str | None]) -> dict[str, Any]:
        event_id = fn()
        return {"incident": incidents.get_incident(self.gw.ledger, incident_id).to_dict(), "event_id": event_id}

    # -- routes ------------------------------------------------------------------------------------

    async def incidents_root(self, request: Request) -> Response:
        if request.method == "POST":
            return await self.open_incident(request)
        return await self.list_incidents(request)

    async def list_incidents(self, request: Request) -> Response:
        await self.gw.require_admin(request)
        for other in request.query_params:
            if other != "status":
                raise bad_request(f"unknown query parameter {other!r} (this route takes only 'status')",
                                  param=other)
        found = request.query_params.getlist("status")
        if len(found) > 1:
            raise bad_request("status: give it once", param="status")
        status = found[0] if found else None
        if status is not None and status not in incidents.STATUSES:
            raise bad_request(f"status: {status!r} is not one of {', '.join(incidents.STATUSES)}", param="status")
        rows = await self.run(lambda: incidents.list_incidents(self.gw.ledger, status=status))
        return JSONResponse({"object": "list", "data": [r.to_dict() for r in rows]})

    async def open_incident(self, request: Request) -> Response:
        principal = await self.gw.require_admin(request)
        req = validate_body(IncidentOpenRequest, await self.gw.read_json(request))

        def change() -> dict[str, Any]:
            incident_id = incidents.open_incident(self.gw.ledger, title=req.title, summary=req.summary,
                                                  decision_ids=req.decision_ids, case_id=req.case_id,
                                                  actor=principal.key_id)
            return incidents.get_incident(self.gw.ledger, incident_id).to_dict()

        return JSONResponse(await self.run(change), status_code=201)

    async def show_incident(self, request: Request) -> Response:
        await self.gw.require_admin(request)
        incident_id = self.incident_id(request)
        view = await self.run(lambda: incidents.get_incident(self.gw.ledger, incident_id))
        return JSONResponse(view.to_dict())

    async def add_decisions(self, request: Request) -> Response:
        principal = await self.gw.require_admin(request)
        incident_id = self.incident_id(request)
        req = validate_body(IncidentDecisionsRequest, await self.gw.read_json(request))

        def change() -> str | None:
            return incidents.add_decisions(self.gw.ledger, incident_id, req.decision_ids,
                                           actor=principal.key_id)[1]

        return JSONResponse(await self.run(lambda: self.step(incident_id, change)))

    async def containment(self, request: Request) -> Response:
        principal = await self.gw.require_admin(request)
        incident_id = self.incident_id(request)
        req = validate_body(ContainmentRequest, await self.gw.read_json(request))
        return JSONResponse(await self.run(lambda: self.step(incident_id, lambda: incidents.record_containment(
            self.gw.ledger, incident_id, req.stopped, actor=principal.key_id))))

    async def rectification(self, request: Request) -> Response:
        principal = await self.gw.require_admin(request)
        incident_id = self.incident_id(request)
        req = validate_body(RectificationRequest, await self.gw.read_json(request))
        return JSONResponse(await self.run(lambda: self.step(incident_id, lambda: incidents.record_rectification(
            self.gw.ledger, incident_id, req.rectification, actor=principal.key_id))))

    async def reported(self, request: Request) -> Response:
        principal = await self.gw.require_admin(request)
        incident_id = self.incident_id(request)
        req = validate_body(ReportedRequest, await self.gw.read_json(request))
        return JSONResponse(await self.run(lambda: self.step(incident_id, lambda: incidents.mark_reported(
            self.gw.ledger, incident_id, req.authority, req.reference, actor=principal.key_id))))

    async def close(self, request: Request) -> Response:
        principal = await self.gw.require_admin(request)
        incident_id = self.incident_id(request)
        return JSONResponse(await self.run(lambda: self.step(incident_id, lambda: incidents.close(
            self.gw.ledger, incident_id, actor=principal.key_id))))

    def report_route(self, fmt: str) -> Callable[[Request], Any]:
        async def download(request: Request) -> Response:
            await self.gw.require_admin(request)
            incident_id = self.incident_id(request)
            # the incident first: an unknown one is a 404 even where no report font is installed
            await self.run(lambda: incidents.get_incident(self.gw.ledger, incident_id))
            body = await self.run(lambda: report.render(report.build_report(
                self.gw.ledger, incident_id, self.gw.cfg.provider, self.font(),
                timezone=self.gw.cfg.accounts.timezone), fmt))
            headers = {} if fmt == "json" else {
                "content-disposition": f'attachment; filename="incident-{incident_id}.{fmt}"'}
            return Response(body, media_type=report.MEDIA_TYPES[fmt], headers=headers)

        return download


def routes(gw: Gateway) -> list[BaseRoute]:
    admin = AdminIncidents(gw)
    return [
        # one route for both methods, so a 405 on this path names both in its Allow header
        Route("/admin/incidents", admin.incidents_root, methods=["GET", "POST"]),
        Route("/admin/incidents/{incident_id}", admin.show_incident, methods=["GET"]),
        Route("/admin/incidents/{incident_id}/decisions", admin.add_decisions, methods=["POST"]),
        Route("/admin/incidents/{incident_id}/containment", admin.containment, methods=["POST"]),
        Route("/admin/incidents/{incident_id}/rectification", admin.rectification, methods=["POST"]),
        Route("/admin/incidents/{incident_id}/reported", admin.reported, methods=["POST"]),
        Route("/admin/incidents/{incident_id}/close", admin.close, methods=["POST"]),
        *(Route(f"/admin/incidents/{{incident_id}}/report.{fmt}", admin.report_route(fmt), methods=["GET"])
          for fmt in report.FORMATS),
    ]
