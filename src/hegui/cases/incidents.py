"""Incidents (Art. 14): what was found, what was stopped or removed, how the model was rectified, and
the report to the authority.

::

    open ──containment──▶ contained ──rectification──▶ rectified ──reported──▶ reported ──close──▶ closed

An incident names the decisions that show what was found (their ids must be in the ledger). Each
change is one transaction with its event on the ledger's ``events`` chain (``incident.opened``,
``incident.decisions_added``, ``incident.contained``, ``incident.rectified``, ``incident.reported``,
``incident.closed``, ``incident.samples_exported``), so the incident's history is evidence. A step may
be recorded again at the same status (a containment or rectification that had to be extended), never
backwards. Events carry the SHA-256 of the texts staff wrote; the texts stay in the ``incidents`` row.

The rectification samples (:func:`export_samples`) are the incident's decisions as JSONL for the next
optimisation training, without the decisions of people who opted out of training or whose content was
erased on request.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from hegui.cases.models import Incident
from hegui.errors import UserError
from hegui.ledger.errors import LedgerError
from hegui.ledger.events import append_event
from hegui.ledger.models import Base, utcnow
from hegui.ledger.records import DecisionRow

if TYPE_CHECKING:
    from hegui.ledger.store import Ledger

T = TypeVar("T")

_incidents = Base.metadata.tables[Incident.__tablename__]
_decisions = Base.metadata.tables["decisions"]

STATUSES: tuple[str, ...] = ("open", "contained", "rectified", "reported", "closed")
TRANSITIONS: dict[str, dict[str, str]] = {
    "contain": {"open": "contained", "contained": "contained"},
    "rectify": {"contained": "rectified", "rectified": "rectified"},
    "report": {"rectified": "reported", "reported": "reported"},
    "close": {"reported": "closed"},
}
"""step → {status before: status after}; anything else is refused (an incident is closed only once
it was reported)."""
_EVENT = {"contain": "contained", "rectify": "rectified", "report": "reported", "close": "closed"}

MAX_TITLE = 300
MAX_TEXT = 20_000
MAX_DECISIONS = 1000
MAX_FIELD = 200
"""Authority names and report references."""


class IncidentNotFound(UserError):
    pass


class IncidentRefused(UserError):
    """A step the incident's status does not allow, or input that does not fit."""


class UnknownDecision(UserError):
    """A decision id the ledger does not hold."""


@dataclass(frozen=True)
class IncidentView:
    id: str
    title: str
    summary: str
    status: str
    decision_ids: list[str]
    stopped: str
    rectification: str
    case_id: str | None
    details: dict[str, Any]
    opened_by: str
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "summary": self.summary, "status": self.status,
                "decision_ids": list(self.decision_ids), "stopped": self.stopped,
                "rectification": self.rectification, "case_id": self.case_id, "details": dict(self.details),
                "opened_by": self.opened_by, "opened_at": self.opened_at.isoformat(),
                "updated_at": self.updated_at.isoformat(),
                "closed_at": self.closed_at.isoformat() if self.closed_at else None}


def _view(r: Any) -> IncidentView:
    return IncidentView(id=r.id, title=r.title, summary=r.summary, status=r.status,
                        decision_ids=list(r.decision_ids or []), stopped=r.stopped,
                        rectification=r.rectification, case_id=r.case_id, details=dict(r.details or {}),
                        opened_by=r.opened_by, opened_at=_aware(r.opened_at), updated_at=_aware(r.updated_at),
                        closed_at=_aware(r.closed_at) if r.closed_at else None)


def _aware(when: datetime) -> datetime:
    """SQLite gives datetimes back without their zone; every time stored here is UTC."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# Unicode's White_Space, which is what the API schema's ``\S`` means (str.strip would also take the
# separators U+001C–U+001F, and a title the schema accepts would then be refused as empty).
WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"


def _text(value: str, what: str, limit: int, *, required: bool = True) -> str:
    # NUL cannot be stored (PostgreSQL refuses it in text): dropped, as the case store drops it, so
    # that a title the API schema accepts is never refused for it
    value = value.replace("\x00", "").strip(WHITE_SPACE)
    if required and not value:
        raise IncidentRefused(f"{what}: must not be empty")
    if len(value) > limit:
        raise IncidentRefused(f"{what}: {len(value)} characters, more than {limit}")
    return value


def _write(ledger: Ledger, fn: Callable[[Connection], T]) -> T:
    return ledger.transaction(fn, "update the incident")


def _row(conn: Connection, incident_id: str) -> Any:
    r = conn.execute(sa.select(_incidents).where(_incidents.c.id == incident_id)).one_or_none()
    if r is None:
        raise IncidentNotFound(f"no incident {incident_id}")
    return r


def _clean_ids(decision_ids: Iterable[str]) -> list[str]:
    out: list[str] = []
    for raw in decision_ids:
        # anything else that is no decision id is simply not found in the ledger (a 404, as for a typo)
        d = raw.strip(WHITE_SPACE)
        if not d or len(d) > 64 or "\x00" in d:
            raise IncidentRefused(f"decision_ids: {raw[:80]!r} is not a decision id")
        if d not in out:
            out.append(d)
    if not out:
        raise IncidentRefused("decision_ids: name at least one decision")
    if len(out) > MAX_DECISIONS:
        raise IncidentRefused(f"decision_ids: {len(out)} decisions, more than {MAX_DECISIONS}")
    return out


def _check_known(conn: Connection, decision_ids: Sequence[str]) -> None:
    """Refuse ids the ledger does not hold (a typo must not become evidence of nothing)."""
    known: set[str] = set()
    for start in range(0, len(decision_ids), 500):
        chunk = list(decision_ids[start:start + 500])
        known.update(conn.execute(sa.select(_decisions.c.decision_id).distinct()
                                  .where(_decisions.c.decision_id.in_(chunk))).scalars())
    unknown = [d for d in decision_ids if d not in known]
    if unknown:
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise UnknownDecision(f"decision_ids: no decision {', '.join(unknown[:3])}{more} in the ledger")


# -- opening and reading -------------------------------------------------------------------------------

def open_incident(ledger: Ledger, *, title: str, summary: str, decision_ids: list[str], case_id: str | None,
                  actor: str, now: datetime | None = None) -> str:
    """Open an incident about ``decision_ids`` (which must be in the ledger); returns its id."""
    title = _text(title, "title", MAX_TITLE)
    summary = _text(summary, "summary", MAX_TEXT, required=False)
    ids = _clean_ids(decision_ids)
    if case_id is not None:
        case_id = _text(case_id, "case_id", 40)
    now = now or utcnow()
    incident_id = "in_" + secrets.token_hex(8)

    def change(conn: Connection) -> None:
        _check_known(conn, ids)
        conn.execute(sa.insert(_incidents).values(
            id=incident_id, title=title, summary=summary, status="open", decision_ids=ids, stopped="",
            rectification="", case_id=case_id, details={}, opened_by=actor[:128], opened_at=now,
            updated_at=now, closed_at=None))
        append_event(conn, "incident.opened", None, actor, {
            "incident": incident_id, "decisions": ids, "case": case_id, "title_sha256": _sha256(title)},
            created_at=now)

    _write(ledger, change)
    return incident_id


def get_incident(ledger: Ledger, incident_id: str) -> IncidentView:
    try:
        with ledger.engine.connect() as conn:
            return _view(_row(conn, incident_id))
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot read the incident: {str(exc).splitlines()[0]}") from exc


def list_incidents(ledger: Ledger, *, status: str | None = None, limit: int = 200) -> list[IncidentView]:
    """Incidents, newest first; of one status when given."""
    if status is not None and status not in STATUSES:
        raise IncidentRefused(f"status: {status!r} is not one of {', '.join(STATUSES)}")
    q = sa.select(_incidents).order_by(_incidents.c.opened_at.desc(), _incidents.c.id).limit(limit)
    if status is not None:
        q = q.where(_incidents.c.status == status)
    try:
        with ledger.engine.connect() as conn:
            return [_view(r) for r in conn.execute(q).all()]
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot read incidents: {str(exc).splitlines()[0]}") from exc


def incident_decisions(ledger: Ledger, incident: IncidentView) -> list[DecisionRow]:
    """The final row of each of the incident's decisions, in the incident's order: the ``decision``
    row when there is one, else the newest (a stream cut off by a crash has only its open row and
    checkpoints)."""
    chosen: dict[str, DecisionRow] = {}
    ids = incident.decision_ids
    try:
        with ledger.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = list(ids[start:start + 500])
                q = sa.select(_decisions).where(_decisions.c.decision_id.in_(chunk)).order_by(_decisions.c.seq)
                for r in conn.execute(q):
                    row = DecisionRow(**dict(r._mapping))
                    have = chosen.get(row.decision_id)
                    if have is None or have.kind != "decision" or row.kind == "decision":
                        chosen[row.decision_id] = row
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot read decisions: {str(exc).splitlines()[0]}") from exc
    return [chosen[d] for d in ids if d in chosen]


# -- steps -------------------------------------------------------------------------------------------

def _step(ledger: Ledger, incident_id: str, step: str, actor: str, values: dict[str, Any],
          data: dict[str, Any], now: datetime | None, details: dict[str, Any] | None = None) -> str:
    now = now or utcnow()

    def change(conn: Connection) -> str:
        r = _row(conn, incident_id)
        after = TRANSITIONS[step].get(r.status)
        if after is None:
            allowed = sorted(_EVENT[s] for s, table in TRANSITIONS.items() if r.status in table)
            raise IncidentRefused(f"incident {incident_id} is {r.status}: it cannot be {_EVENT[step]} "
                                  f"(possible: {', '.join(allowed) or 'nothing'})")
        extra: dict[str, Any] = {}
        if details:
            extra["details"] = {**dict(r.details or {}), **details}
        conn.execute(sa.update(_incidents).where(_incidents.c.id == incident_id)
                     .values(status=after, updated_at=now, **values, **extra))
        return append_event(conn, f"incident.{_EVENT[step]}", None, actor,
                            {"incident": incident_id, "from": r.status, "to": after, **data}, created_at=now)

    return _write(ledger, change)


def add_decisions(ledger: Ledger, incident_id: str, decision_ids: list[str], *, actor: str,
                  now: datetime | None = None) -> tuple[list[str], str | None]:
    """Add decisions found later; returns the ids that were new and the event id (None when all
    were there already). A closed incident takes none."""
    ids = _clean_ids(decision_ids)
    now = now or utcnow()

    def change(conn: Connection) -> tuple[list[str], str | None]:
        r = _row(conn, incident_id)
        if r.status == "closed":
            raise IncidentRefused(f"incident {incident_id} is closed: it takes no more decisions")
        _check_known(conn, ids)
        have = list(r.decision_ids or [])
        new = [d for d in ids if d not in have]
        if len(have) + len(new) > MAX_DECISIONS:
            raise IncidentRefused(f"decision_ids: the incident would hold more than {MAX_DECISIONS} decisions")
        if not new:
            return [], None
        conn.execute(sa.update(_incidents).where(_incidents.c.id == incident_id)
                     .values(decision_ids=have + new, updated_at=now))
        return new, append_event(conn, "incident.decisions_added", None, actor,
                                 {"incident": incident_id, "decisions": new}, created_at=now)

    return _write(ledger, change)


def record_containment(ledger: Ledger, incident_id: str, stopped: str, *, actor: str,
                       now: datetime | None = None) -> str:
    """What was stopped or removed, and how; the incident becomes ``contained``. Returns the event id."""
    stopped = _text(stopped, "stopped", MAX_TEXT)
    return _step(ledger, incident_id, "contain", actor, {"stopped": stopped}, {"stopped_sha256": _sha256(stopped)},
                 now)


def record_rectification(ledger: Ledger, incident_id: str, text: str, *, actor: str,
                         now: datetime | None = None) -> str:
    """What was done to the model, lexicon or policy; the incident becomes ``rectified``."""
    text = _text(text, "rectification", MAX_TEXT)
    return _step(ledger, incident_id, "rectify", actor, {"rectification": text},
                 {"rectification_sha256": _sha256(text)}, now)


def mark_reported(ledger: Ledger, incident_id: str, authority: str, reference: str, *, actor: str,
                  now: datetime | None = None) -> str:
    """The report went to ``authority`` (e.g. 省网信办) under ``reference``; the incident becomes ``reported``."""
    authority = _text(authority, "authority", MAX_FIELD)
    reference = _text(reference, "reference", MAX_FIELD)
    now = now or utcnow()
    facts = {"authority": authority, "reference": reference, "reported_at": now.isoformat()}
    return _step(ledger, incident_id, "report", actor, {}, facts, now, details=facts)


def close(ledger: Ledger, incident_id: str, *, actor: str, now: datetime | None = None) -> str:
    now = now or utcnow()
    return _step(ledger, incident_id, "close", actor, {"closed_at": now}, {}, now)


# -- rectification samples ------------------------------------------------------------------------------

def sample(row: DecisionRow) -> dict[str, Any]:
    """One training sample: what the decision saw (the masked excerpt) and what it decided."""
    return {"decision_id": row.decision_id, "created_at": row.created_at.isoformat(), "direction": row.direction,
            "scene": row.scene, "action": row.action, "risks": list(row.risks), "excerpt": row.excerpt}


def export_samples(ledger: Ledger, incident_id: str, out: Path, *, actor: str = "system",
                   now: datetime | None = None) -> int:
    """Write the incident's decisions to ``out`` as JSONL for the next optimisation training; returns
    how many were written. Decisions of people who opted out of training, and those whose content was
    erased, are left out. The file appears whole or not at all; the counts go in an event."""
    incident = get_incident(ledger, incident_id)
    rows = incident_decisions(ledger, incident)
    kept = [r for r in rows if not r.training_opt_out and r.erased_at is None]
    opted_out = sum(1 for r in rows if r.training_opt_out)
    erased = sum(1 for r in rows if r.erased_at is not None and not r.training_opt_out)
    out = Path(out)
    if out.is_dir():
        raise IncidentRefused(f"{out}: is a folder; give the file to write")
    if not out.parent.is_dir():
        raise IncidentRefused(f"{out.parent}: no such folder")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for r in kept:
                fh.write(json.dumps(sample(r), ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        digest = hashlib.sha256(Path(tmp).read_bytes()).hexdigest()
        now = now or utcnow()

        def change(conn: Connection) -> None:
            r = _row(conn, incident_id)
            exported = {"at": now.isoformat(), "exported": len(kept), "skipped_opt_out": opted_out,
                        "skipped_erased": erased, "sha256": digest}
            conn.execute(sa.update(_incidents).where(_incidents.c.id == incident_id).values(
                updated_at=now, details={**dict(r.details or {}), "samples": exported}))
            append_event(conn, "incident.samples_exported", None, actor, {"incident": incident_id, **exported},
                         created_at=now)

        _write(ledger, change)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(kept)
