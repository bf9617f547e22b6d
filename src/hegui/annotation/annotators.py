"""Annotators and their qualification (GB/T 45654 §5.3): trained and examined in-house before they
are qualified, for the roles 标注 (``annotate``) and/or 审核 (``review``); re-checked periodically;
revocable.

A qualification is *current* on a day when it was granted, has not been revoked since, and its
re-check is not overdue: the last passed re-check (or the qualification) is at most
``annotation.recheck_days`` days before. A failed re-check revokes it. Every step is an
``annotation.annotator_*`` event on the ledger's chain, naming the handle only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Connection

from hegui.annotation.config import AnnotationConfig
from hegui.annotation.models import Annotator, AnnotatorRecord
from hegui.errors import UserError
from hegui.ledger.events import append_event
from hegui.ledger.models import Base, utcnow

if TYPE_CHECKING:
    from hegui.ledger.store import Ledger

ROLES: tuple[str, ...] = ("annotate", "review")
HANDLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

_annotators = Base.metadata.tables[Annotator.__tablename__]
_records = Base.metadata.tables[AnnotatorRecord.__tablename__]


class AnnotatorError(UserError):
    pass


@dataclass(frozen=True)
class AnnotatorState:
    handle: str
    name: str
    roles: list[str]
    qualified_at: datetime | None
    last_check_on: date | None
    revoked_at: datetime | None
    revoke_reason: str | None
    trainings: int
    latest_exam_passed: bool | None

    def recheck_due(self, cfg: AnnotationConfig) -> date | None:
        return None if self.last_check_on is None else self.last_check_on + timedelta(days=cfg.recheck_days)

    def status(self, cfg: AnnotationConfig, today: date) -> str:
        """``qualified``, ``recheck_overdue``, ``revoked`` or ``unqualified``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.qualified_at is None:
            return "unqualified"
        due = self.recheck_due(cfg)
        if due is not None and today > due:
            return "recheck_overdue"
        return "qualified"

    def current_for(self, role: str, cfg: AnnotationConfig, today: date) -> bool:
        return self.status(cfg, today) == "qualified" and role in self.roles

    def why_not(self, role: str, cfg: AnnotationConfig, today: date) -> str:
        """Why the annotator may not act in ``role`` today (for one-line refusals)."""
        status = self.status(cfg, today)
        if status == "revoked":
            return f"qualification revoked ({self.revoke_reason or 'no reason given'})"
        if status == "unqualified":
            return "never qualified"
        if status == "recheck_overdue":
            return f"re-check overdue since {self.recheck_due(cfg)}"
        return f"qualified only for {', '.join(self.roles) or 'no role'}, not {role}"

    def to_dict(self, cfg: AnnotationConfig, today: date) -> dict[str, Any]:
        due = self.recheck_due(cfg)
        return {"handle": self.handle, "name": self.name, "roles": self.roles,
                "status": self.status(cfg, today),
                "qualified_at": self.qualified_at.isoformat() if self.qualified_at else None,
                "recheck_due": due.isoformat() if due else None, "trainings": self.trainings,
                "latest_exam_passed": self.latest_exam_passed}


def _state(conn: Connection, r: Any) -> AnnotatorState:
    trainings = conn.execute(sa.select(sa.func.count()).select_from(_records).where(
        _records.c.handle == r.handle, _records.c.kind == "training")).scalar_one()
    exam = conn.execute(sa.select(_records.c.passed).where(_records.c.handle == r.handle, _records.c.kind == "exam")
                        .order_by(_records.c.held_on.desc(), _records.c.id.desc()).limit(1)).scalar_one_or_none()
    return AnnotatorState(r.handle, r.name, list(r.roles or []), r.qualified_at, r.last_check_on, r.revoked_at,
                          r.revoke_reason, int(trainings), None if exam is None else bool(exam))


def load_states(conn: Connection) -> dict[str, AnnotatorState]:
    return {r.handle: _state(conn, r) for r in conn.execute(sa.select(_annotators).order_by(_annotators.c.handle))}


class AnnotatorStore:
    """Annotator records; ``clock`` is injectable so tests can move time past a re-check."""

    def __init__(self, ledger: Ledger, cfg: AnnotationConfig | None = None, *, clock: Any = utcnow) -> None:
        self.ledger = ledger
        self.cfg = cfg or AnnotationConfig()
        self.clock = clock

    def _write(self, fn: Any) -> Any:
        return self.ledger.transaction(fn, "update annotators")

    def _get(self, conn: Connection, handle: str) -> Any:
        r = conn.execute(sa.select(_annotators).where(_annotators.c.handle == handle)).one_or_none()
        if r is None:
            raise AnnotatorError(f"annotator {handle!r} not found (add it with `hegui annotation annotators add`)")
        return r

    def add(self, handle: str, *, name: str = "", actor: str) -> None:
        if not HANDLE.match(handle):
            raise AnnotatorError(f"handle {handle!r}: 1–64 of A-Z a-z 0-9 . _ -, starting with a letter or digit "
                                 "(a staff id the provider chooses, not a personal identifier)")
        now = self.clock()

        def change(conn: Connection) -> None:
            exists = conn.execute(sa.select(_annotators.c.handle).where(_annotators.c.handle == handle)).first()
            if exists is not None:
                raise AnnotatorError(f"annotator {handle!r} already exists")
            conn.execute(sa.insert(_annotators).values(handle=handle, name=name[:200], roles=[], created_at=now))
            append_event(conn, "annotation.annotator_added", None, actor, {"handle": handle}, created_at=now)

        self._write(change)

    def _record(self, handle: str, kind: str, on: date, actor: str, *, course: str | None = None,
                score: float | None = None, passed: bool | None = None, extra: Any = None) -> None:
        now = self.clock()

        def change(conn: Connection) -> None:
            r = self._get(conn, handle)
            conn.execute(sa.insert(_records).values(handle=handle, kind=kind, held_on=on, course=course,
                                                    score=score, passed=passed, recorded_by=actor,
                                                    recorded_at=now))
            data: dict[str, Any] = {"handle": handle, "on": on.isoformat()}
            if course is not None:
                data["course"] = course
            if score is not None:
                data["score"] = score
            if passed is not None:
                data["passed"] = passed
            kind_name = {"training": "trained", "exam": "examined", "recheck": "rechecked"}[kind]
            append_event(conn, f"annotation.annotator_{kind_name}", None, actor, data, created_at=now)
            if extra is not None:
                extra(conn, r, now)

        self._write(change)

    def train(self, handle: str, *, course: str, on: date | None = None, actor: str) -> None:
        if not course.strip():
            raise AnnotatorError("--course: name the course")
        self._record(handle, "training", on or self.clock().date(), actor, course=course.strip()[:300])

    def exam(self, handle: str, *, score: float, passed: bool, on: date | None = None, actor: str) -> None:
        self._record(handle, "exam", on or self.clock().date(), actor, score=score, passed=passed)

    def qualify(self, handle: str, *, roles: list[str], actor: str) -> None:
        bad = [r for r in roles if r not in ROLES]
        if bad or not roles:
            raise AnnotatorError(f"--roles {','.join(roles)!r}: one or more of {', '.join(ROLES)}")
        now = self.clock()

        def change(conn: Connection) -> None:
            state = _state(conn, self._get(conn, handle))
            if state.trainings == 0:
                raise AnnotatorError(f"annotator {handle!r} has no training on record: record it with "
                                     "`hegui annotation annotators train` before qualifying")
            if state.latest_exam_passed is not True:
                what = "no exam on record" if state.latest_exam_passed is None else "the latest exam was failed"
                raise AnnotatorError(f"annotator {handle!r}: {what}; a passed exam is needed before qualifying")
            revoked_at = self._get(conn, handle).revoked_at
            if revoked_at is not None:
                # a revoked annotator is qualified again only on an exam passed after the revocation
                last_exam = conn.execute(sa.select(_records.c.recorded_at).where(
                    _records.c.handle == handle, _records.c.kind == "exam", _records.c.passed)
                    .order_by(_records.c.recorded_at.desc()).limit(1)).scalar_one_or_none()
                if last_exam is None or last_exam <= revoked_at:
                    raise AnnotatorError(f"annotator {handle!r} was revoked on {revoked_at:%Y-%m-%d}; "
                                         "a passed exam after that is needed before qualifying again")
            ordered = [r for r in ROLES if r in roles]
            conn.execute(sa.update(_annotators).where(_annotators.c.handle == handle).values(
                roles=ordered, qualified_at=now, last_check_on=now.date(), revoked_at=None, revoke_reason=None))
            append_event(conn, "annotation.annotator_qualified", None, actor, {"handle": handle, "roles": ordered},
                         created_at=now)

        self._write(change)

    def revoke(self, handle: str, *, reason: str, actor: str) -> None:
        if not reason.strip():
            raise AnnotatorError("--reason: say why the qualification is revoked")
        now = self.clock()

        def change(conn: Connection) -> None:
            r = self._get(conn, handle)
            if r.qualified_at is None or r.revoked_at is not None:
                raise AnnotatorError(f"annotator {handle!r} holds no qualification to revoke")
            _revoke(conn, handle, reason.strip()[:500], actor, now)

        self._write(change)

    def recheck(self, handle: str, *, passed: bool, on: date | None = None, actor: str) -> None:
        day = on or self.clock().date()

        def after(conn: Connection, r: Any, now: datetime) -> None:
            if r.qualified_at is None or r.revoked_at is not None:
                raise AnnotatorError(f"annotator {handle!r} holds no qualification to re-check")
            if passed:
                conn.execute(sa.update(_annotators).where(_annotators.c.handle == handle)
                             .values(last_check_on=day))
            else:
                _revoke(conn, handle, f"re-check failed on {day.isoformat()}", actor, now)

        self._record(handle, "recheck", day, actor, passed=passed, extra=after)

    def states(self) -> list[AnnotatorState]:
        with self.ledger.engine.connect() as conn:
            return list(load_states(conn).values())

    def get(self, handle: str) -> AnnotatorState:
        with self.ledger.engine.connect() as conn:
            return _state(conn, self._get(conn, handle))


def _revoke(conn: Connection, handle: str, reason: str, actor: str, now: datetime) -> None:
    conn.execute(sa.update(_annotators).where(_annotators.c.handle == handle)
                 .values(revoked_at=now, revoke_reason=reason))
    append_event(conn, "annotation.annotator_revoked", None, actor, {"handle": handle, "reason": reason},
                 created_at=now)
