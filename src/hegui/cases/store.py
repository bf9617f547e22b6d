"""Cases in the ledger database: opening, finding by code, the steps of their life, overdue ones.

Each change is one transaction with its event on the ledger's ``events`` chain (``case.opened``,
``case.assigned``, ``case.noted``, ``case.replied``, ``case.reopened``, ``case.closed``, and the
actions of :mod:`hegui.cases.actions`), so a case's history can be shown and verified. Events name
the case by id and carry no text the person wrote; that stays in the ``cases`` row, where a deletion
request can erase it.
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from hegui.cases.config import CATEGORIES, PI_ACTIONS, CasesConfig
from hegui.cases.models import Case, CaseAttachment, CaseNote
from hegui.cases.states import OPEN_STATUSES, TransitionRefused, next_status
from hegui.errors import UserError
from hegui.ledger.chain import clean_text
from hegui.ledger.errors import LedgerError
from hegui.ledger.events import EventRow, append_event
from hegui.ledger.models import Base, utcnow

if TYPE_CHECKING:
    from hegui.ledger.store import Ledger

T = TypeVar("T")

_cases = Base.metadata.tables[Case.__tablename__]
_notes = Base.metadata.tables[CaseNote.__tablename__]
_attachments = Base.metadata.tables[CaseAttachment.__tablename__]
_events = Base.metadata.tables["events"]

# Crockford's base32 without the look-alikes I, L, O, U: codes survive being read aloud or retyped.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_GROUPS = 5
CODE_GROUP_LEN = 4
"""20 symbols of 32: 100 bits from :mod:`secrets`, so a code cannot be guessed or enumerated."""
_LOOK_ALIKES = str.maketrans("OIL", "011")
MAX_TEXT = 20_000
MAX_REFERENCE = 500
MAX_CONTACT = 200


class CaseNotFound(UserError):
    pass


class CaseRefused(UserError):
    """A step the case's status does not allow, or input that does not fit."""


@dataclass(frozen=True)
class AttachmentIn:
    """A file already sniffed and written under ``stored_name`` (see :mod:`hegui.web.uploads`)."""

    stored_name: str
    media_type: str
    size: int
    sha256: str
    original_name: str = ""


@dataclass(frozen=True)
class CaseView:
    id: str
    kind: str
    category: str | None
    pi_action: str | None
    description: str
    reference: str
    contact: str | None
    account_id: str | None
    status: str
    assignee: str | None
    due_on: date
    source: str
    lang: str
    reply: str | None
    opened_at: datetime
    updated_at: datetime
    replied_at: datetime | None
    closed_at: datetime | None
    phone_hash: str | None = None
    notes: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)

    def overdue(self, today: date) -> bool:
        return self.status in OPEN_STATUSES and self.due_on < today

    def to_dict(self, *, today: date | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "kind": self.kind, "category": self.category, "pi_action": self.pi_action,
            "description": self.description, "reference": self.reference, "contact": self.contact,
            "account_id": self.account_id, "status": self.status, "assignee": self.assignee,
            "due_on": self.due_on.isoformat(), "source": self.source, "lang": self.lang, "reply": self.reply,
            "opened_at": self.opened_at.isoformat(), "updated_at": self.updated_at.isoformat(),
            "replied_at": self.replied_at.isoformat() if self.replied_at else None,
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "notes": self.notes, "attachments": self.attachments,
        }
        if today is not None:
            out["overdue"] = self.overdue(today)
        return out


def _view(r: Any) -> CaseView:
    return CaseView(
        id=r.id, kind=r.kind, category=r.category, pi_action=r.pi_action, description=r.description,
        reference=r.reference, contact=r.contact, account_id=r.account_id, status=r.status, assignee=r.assignee,
        due_on=date.fromisoformat(r.due_on), source=r.source, lang=r.lang, reply=r.reply, opened_at=r.opened_at,
        updated_at=r.updated_at, replied_at=r.replied_at, closed_at=r.closed_at, phone_hash=r.phone_hash,
    )


def new_code() -> str:
    """``HG-XXXX-XXXX-XXXX-XXXX-XXXX``: the code the person keeps to see their case."""
    groups = ("".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_GROUP_LEN)) for _ in range(CODE_GROUPS))
    return "HG-" + "-".join(groups)


def normalize_code(text: str) -> str | None:
    """A typed code in canonical form (case, spaces, dashes and look-alikes forgiven), or None when it
    cannot be one."""
    raw = "".join(ch for ch in text.upper() if ch.isalnum())
    if raw.startswith("HG"):
        raw = raw[2:]
    raw = raw.translate(_LOOK_ALIKES)
    if len(raw) != CODE_GROUPS * CODE_GROUP_LEN or any(ch not in CODE_ALPHABET for ch in raw):
        return None
    return "HG-" + "-".join(raw[i:i + CODE_GROUP_LEN] for i in range(0, len(raw), CODE_GROUP_LEN))


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode("ascii")).hexdigest()


class CaseStore:
    """Opens and works cases; each change is one transaction with its ledger event."""

    def __init__(self, ledger: Ledger, cfg: CasesConfig, timezone: str = "Asia/Shanghai") -> None:
        self.ledger = ledger
        self.cfg = cfg
        self.zone = ZoneInfo(timezone)
        self.calendar = cfg.calendar()

    # -- plumbing ------------------------------------------------------------------------------

    def write(self, fn: Callable[[Connection], T]) -> T:
        return self.ledger.transaction(fn, "update the case")

    def today(self, now: datetime | None = None) -> date:
        return (now or utcnow()).astimezone(self.zone).date()

    def _row(self, conn: Connection, case_id: str) -> Any:
        r = conn.execute(sa.select(_cases).where(_cases.c.id == case_id)).one_or_none()
        if r is None:
            raise CaseNotFound(f"no case {case_id}")
        return r

    # -- opening -------------------------------------------------------------------------------

    def open_case(self, kind: str, *, description: str, category: str | None = None, pi_action: str | None = None,
                  reference: str = "", contact: str | None = None, account_id: str | None = None,
                  phone_hash: str | None = None, source: str = "portal", lang: str = "zh", actor: str = "public",
                  attachments: Sequence[AttachmentIn] = (), now: datetime | None = None) -> tuple[str, str]:
        """Open a case; returns (case id, case code). The code is returned once and never stored."""
        if kind in ("complaint", "report"):
            if category not in CATEGORIES:
                raise CaseRefused(f"category must be one of {', '.join(CATEGORIES)}")
            pi_action = None
        elif kind == "pi_request":
            if pi_action not in PI_ACTIONS:
                raise CaseRefused(f"pi_action must be one of {', '.join(PI_ACTIONS)}")
            if phone_hash is None and account_id is None:
                raise CaseRefused("a personal-information request needs a verified phone or an account")
            category = None
        else:
            raise CaseRefused(f"unknown case kind {kind!r} (complaint, report or pi_request)")
        if len(description) > MAX_TEXT or len(reference) > MAX_REFERENCE or len(contact or "") > MAX_CONTACT:
            raise CaseRefused(f"description (≤ {MAX_TEXT}), reference (≤ {MAX_REFERENCE}) or contact "
                              f"(≤ {MAX_CONTACT} characters) is too long")
        # NUL and lone surrogates cannot be stored (PostgreSQL refuses NUL in text)
        description, reference = _text(description), _text(reference)
        contact = clean_text(contact)
        now = now or utcnow()
        due = self.calendar.add_working_days(self.today(now), self.cfg.due_working_days)
        case_id = "cs_" + secrets.token_hex(8)
        code = new_code()

        def change(conn: Connection) -> None:
            conn.execute(sa.insert(_cases).values(
                id=case_id, code_hash=code_hash(code), kind=kind, category=category, pi_action=pi_action,
                description=description, reference=reference, contact=contact or None, account_id=account_id,
                phone_hash=phone_hash, status="open", assignee=None, due_on=due.day.isoformat(), source=source,
                lang=lang, reply=None, opened_at=now, updated_at=now))
            for a in attachments:
                conn.execute(sa.insert(_attachments).values(
                    id="at_" + secrets.token_hex(8), case_id=case_id, stored_name=a.stored_name,
                    media_type=a.media_type, size=a.size, sha256=a.sha256, original_name=a.original_name[:200],
                    created_at=now))
            append_event(conn, "case.opened", account_id, actor, {
                "case": case_id, "kind": kind, "category": category, "pi_action": pi_action,
                "due_on": due.day.isoformat(), "due_estimated": due.estimated, "source": source,
                "attachments": len(attachments)}, created_at=now)

        self.write(change)
        return case_id, code

    # -- reading -------------------------------------------------------------------------------

    def get(self, case_id: str, *, with_details: bool = True) -> CaseView:
        with self.ledger.engine.connect() as conn:
            view = _view(self._row(conn, case_id))
            if not with_details:
                return view
            notes = conn.execute(sa.select(_notes).where(_notes.c.case_id == case_id)
                                 .order_by(_notes.c.created_at)).all()
            files = conn.execute(sa.select(_attachments).where(_attachments.c.case_id == case_id)
                                 .order_by(_attachments.c.created_at)).all()
        view.notes.extend({"id": n.id, "author": n.author, "text": n.text, "created_at": n.created_at.isoformat()}
                          for n in notes)
        view.attachments.extend({"id": f.id, "media_type": f.media_type, "size": f.size, "sha256": f.sha256,
                                 "original_name": f.original_name, "stored_name": f.stored_name} for f in files)
        return view

    def by_code(self, code: str) -> CaseView | None:
        """The case a person's code names (None when the code is malformed or unknown)."""
        canon = normalize_code(code)
        if canon is None:
            return None
        with self.ledger.engine.connect() as conn:
            r = conn.execute(sa.select(_cases).where(_cases.c.code_hash == code_hash(canon))).one_or_none()
        return None if r is None else _view(r)

    def list(self, *, status: str | None = None, kind: str | None = None, assignee: str | None = None,
             overdue_on: date | None = None, account_id: str | None = None, limit: int = 200) -> list[CaseView]:
        """Cases, oldest due first; ``overdue_on``: only open ones due before that day."""
        q = sa.select(_cases).order_by(_cases.c.due_on, _cases.c.opened_at).limit(limit)
        if status is not None:
            q = q.where(_cases.c.status == status)
        if kind is not None:
            q = q.where(_cases.c.kind == kind)
        if assignee is not None:
            q = q.where(_cases.c.assignee == assignee)
        if account_id is not None:
            q = q.where(_cases.c.account_id == account_id)
        if overdue_on is not None:
            q = q.where(_cases.c.status.in_(sorted(OPEN_STATUSES)), _cases.c.due_on < overdue_on.isoformat())
        with self.ledger.engine.connect() as conn:
            return [_view(r) for r in conn.execute(q).all()]

    def counts(self, today: date) -> dict[str, int]:
        """Open and overdue cases by kind, for the Prometheus gauges and the dashboard."""
        open_list = sorted(OPEN_STATUSES)
        q = (sa.select(_cases.c.kind,
                       sa.func.count().label("open"),
                       sa.func.sum(sa.case((_cases.c.due_on < today.isoformat(), 1), else_=0)).label("overdue"))
             .where(_cases.c.status.in_(open_list)).group_by(_cases.c.kind))
        out: dict[str, int] = {}
        with self.ledger.engine.connect() as conn:
            for r in conn.execute(q).all():
                out[f"open:{r.kind}"] = int(r.open)
                out[f"overdue:{r.kind}"] = int(r.overdue or 0)
        return out

    # -- steps ---------------------------------------------------------------------------------

    def _step(self, case_id: str, step: str, actor: str, values: dict[str, Any], data: dict[str, Any],
              now: datetime | None) -> str:
        now = now or utcnow()

        def change(conn: Connection) -> str:
            r = self._row(conn, case_id)
            try:
                after = next_status(step, r.status)
            except TransitionRefused as exc:
                raise CaseRefused(f"case {case_id}: {exc}") from None
            conn.execute(sa.update(_cases).where(_cases.c.id == case_id)
                         .values(status=after, updated_at=now, **values))
            return append_event(conn, f"case.{_EVENT[step]}", r.account_id, actor,
                                {"case": case_id, "from": r.status, "to": after, **data}, created_at=now)

        return self.write(change)

    def assign(self, case_id: str, assignee: str, *, actor: str, now: datetime | None = None) -> str:
        assignee = _text(assignee).strip()
        if not assignee:
            raise CaseRefused("assignee must not be empty")
        return self._step(case_id, "assign", actor, {"assignee": assignee[:128]}, {"assignee": assignee[:128]}, now)

    def reply(self, case_id: str, text: str, *, actor: str, now: datetime | None = None) -> str:
        """Write the reply the person sees; the case becomes ``replied``."""
        text = _text(text).strip()
        if not text or len(text) > MAX_TEXT:
            raise CaseRefused(f"a reply must have 1 to {MAX_TEXT} characters")
        now = now or utcnow()
        return self._step(case_id, "reply", actor, {"reply": text, "replied_at": now},
                          {"reply_sha256": hashlib.sha256(text.encode()).hexdigest()}, now)

    def reopen(self, case_id: str, *, actor: str, reason: str, now: datetime | None = None) -> str:
        return self._step(case_id, "reopen", actor, {"closed_at": None}, {"reason": reason[:500]}, now)

    def close(self, case_id: str, *, actor: str, reason: str = "", now: datetime | None = None) -> str:
        """Close the case. Without a reply yet, ``reason`` is required and becomes the reply."""
        now = now or utcnow()
        current = self.get(case_id, with_details=False)
        values: dict[str, Any] = {"closed_at": now}
        if current.reply is None:
            if not reason.strip():
                raise CaseRefused(f"case {case_id} has no reply yet: give the reason for closing it "
                                  "(the person sees it as the reply)")
            values.update(reply=_text(reason).strip()[:MAX_TEXT], replied_at=now)
        return self._step(case_id, "close", actor, values, {"reason": reason[:500]}, now)

    def note(self, case_id: str, text: str, *, actor: str, now: datetime | None = None) -> str:
        text = _text(text).strip()
        if not text or len(text) > MAX_TEXT:
            raise CaseRefused(f"a note must have 1 to {MAX_TEXT} characters")
        now = now or utcnow()
        note_id = "nt_" + secrets.token_hex(8)

        def change(conn: Connection) -> str:
            r = self._row(conn, case_id)
            conn.execute(sa.insert(_notes).values(id=note_id, case_id=case_id, author=actor, text=text,
                                                  created_at=now))
            conn.execute(sa.update(_cases).where(_cases.c.id == case_id).values(updated_at=now))
            return append_event(conn, "case.noted", r.account_id, actor, {"case": case_id, "note": note_id},
                                created_at=now)

        return self.write(change)

    def record(self, case_id: str, kind: str, data: dict[str, Any], *, actor: str,
               now: datetime | None = None) -> str:
        """An action taken on a case (``case.action.<kind>``: enforcement, lexicon entry, takedown,
        incident) as an event, with the case's ``updated_at`` moved."""
        now = now or utcnow()

        def change(conn: Connection) -> str:
            r = self._row(conn, case_id)
            conn.execute(sa.update(_cases).where(_cases.c.id == case_id).values(updated_at=now))
            return append_event(conn, f"case.action.{kind}", r.account_id, actor, {"case": case_id, **data},
                                created_at=now)

        return self.write(change)

    def history(self, case_id: str, limit: int | None = 500) -> builtins.list[EventRow]:
        """The case's events (``case.*`` naming it in ``data.case``), oldest first."""
        q = (sa.select(_events).where(_events.c.kind.startswith("case."),
                                      _events.c.data["case"].as_string() == case_id)
             .order_by(_events.c.seq.desc()))
        if limit is not None:
            q = q.limit(limit)
        try:
            with self.ledger.engine.connect() as conn:
                rows = conn.execute(q).all()
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot read the case's events: {exc.__class__.__name__}") from exc
        return [EventRow(int(r.seq), r.event_id, r.kind, r.account_id, r.actor, dict(r.data), r.created_at)
                for r in reversed(rows)]


def _text(value: str) -> str:
    return clean_text(value) or ""


_EVENT = {"assign": "assigned", "reply": "replied", "reopen": "reopened", "close": "closed"}
