"""The review queue's storage: which decisions wait for a reviewer, recording a review, and the
training samples reviews make.

The queue is the ``flag``/``refuse``/``block`` decision rows with no ``review_marks`` row, newest
first, paged by ``seq`` (an anti-join on the mark's primary key beside the ``seq`` index, so it stays
fast on a large ledger). A review writes its mark and its ``review.confirmed`` / ``review.cleared``
event in one transaction; the mark's primary key refuses a second review of the same decision.

Samples are the review events themselves, no table of their own: a confirmed decision is a
*rectification* sample, a cleared one a *false positive*. :func:`samples` joins each event to its
decision row for the masked excerpt, and leaves out the rows of people who opted out of training and
rows whose content was erased on request.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from hegui.errors import UserError
from hegui.ledger.errors import LedgerError
from hegui.ledger.events import append_event
from hegui.ledger.models import Base, utcnow
from hegui.ledger.records import DecisionRow
from hegui.web.staff_models import ReviewMark

if TYPE_CHECKING:
    from hegui.ledger.store import Ledger

_decisions = Base.metadata.tables["decisions"]
_events = Base.metadata.tables["events"]
_marks = Base.metadata.tables[ReviewMark.__tablename__]

REVIEWABLE_ACTIONS: tuple[str, ...] = ("flag", "refuse", "block")
DIRECTIONS: tuple[str, ...] = ("input", "output")
PAGE_SIZE = 50
Verdict = Literal["confirmed", "cleared"]
SampleKind = Literal["rectification", "false_positive"]
SAMPLE_VERDICT: dict[str, Verdict] = {"rectification": "confirmed", "false_positive": "cleared"}


class AlreadyReviewed(UserError):
    pass


class NotReviewable(UserError):
    """No such decision, or one the queue does not hold (allowed, a stream's opening row)."""


@dataclass(frozen=True)
class QueueFilter:
    direction: str | None = None
    action: str | None = None
    risk: str | None = None
    """A risk code or category prefix (``A1`` matches ``A1a``…)."""
    since: datetime | None = None


def _reviewable() -> sa.ColumnElement[bool]:
    return sa.and_(_decisions.c.kind == "decision", _decisions.c.action.in_(REVIEWABLE_ACTIONS))


def _row(r: Any) -> DecisionRow:
    return DecisionRow(**dict(r._mapping))


def queue(ledger: Ledger, flt: QueueFilter, *, before_seq: int | None = None,
          limit: int = PAGE_SIZE) -> tuple[list[DecisionRow], int | None]:
    """One page of unreviewed decisions, newest first, and the ``seq`` to pass as ``before_seq`` for
    the next page (None on the last)."""
    unmarked = ~sa.exists().where(_marks.c.decision_id == _decisions.c.decision_id)
    q = sa.select(_decisions).where(_reviewable(), unmarked)
    if flt.direction:
        q = q.where(_decisions.c.direction == flt.direction)
    if flt.action:
        q = q.where(_decisions.c.action == flt.action)
    if flt.risk:
        # risks is a JSON list of codes; its text form quotes each code on both backends
        q = q.where(sa.cast(_decisions.c.risks, sa.Text).like(f'%"{flt.risk}%'))
    if flt.since is not None:
        q = q.where(_decisions.c.created_at >= flt.since)
    if before_seq is not None:
        q = q.where(_decisions.c.seq < before_seq)
    q = q.order_by(_decisions.c.seq.desc()).limit(limit + 1)
    try:
        with ledger.engine.connect() as conn:
            rows = [_row(r) for r in conn.execute(q)]
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot read the review queue: {str(exc).splitlines()[0]}") from exc
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].seq if more and rows else None)


def reviewable(ledger: Ledger, decision_id: str) -> DecisionRow:
    """The decision row a review of ``decision_id`` is about; raises :class:`NotReviewable` or
    :class:`AlreadyReviewed`."""
    with ledger.engine.connect() as conn:
        r = conn.execute(sa.select(_decisions).where(_decisions.c.decision_id == decision_id, _reviewable())
                         .order_by(_decisions.c.seq.desc()).limit(1)).first()
        mark = conn.execute(sa.select(_marks).where(_marks.c.decision_id == decision_id)).first()
    if r is None:
        raise NotReviewable(f"decision {decision_id}: not a flagged or refused decision")
    if mark is not None:
        raise AlreadyReviewed(f"decision {decision_id} was already {mark.verdict} by staff:{mark.staff_id}")
    return _row(r)


def record_review(ledger: Ledger, row: DecisionRow, verdict: Verdict, *, staff_id: str,
                  details: dict[str, Any]) -> str:
    """The mark and its ``review.<verdict>`` event, in one transaction; returns the event id. Raises
    :class:`AlreadyReviewed` when another review of the decision committed first."""
    now = utcnow()
    try:
        with ledger.engine.connect() as conn:
            if ledger.engine.dialect.name == "sqlite":
                conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                event_id = append_event(conn, f"review.{verdict}", None, f"staff:{staff_id}", {
                    "decision": row.decision_id, "direction": row.direction, "action": row.action,
                    "risks": list(row.risks), **details}, created_at=now)
                conn.execute(sa.insert(_marks).values(decision_id=row.decision_id, verdict=verdict,
                                                      staff_id=staff_id, event_id=event_id, created_at=now))
    except IntegrityError:
        raise AlreadyReviewed(f"decision {row.decision_id} was already reviewed") from None
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot record the review: {str(exc).splitlines()[0]}") from exc
    return event_id


# -- samples ---------------------------------------------------------------------------------------

def samples(ledger: Ledger, kind: SampleKind) -> Iterator[dict[str, Any]]:
    """Every sample of ``kind``, oldest review first, as JSON-ready dicts (masked excerpts only)."""
    verdict = SAMPLE_VERDICT[kind]
    latest = (sa.select(_decisions.c.decision_id, sa.func.max(_decisions.c.seq).label("seq"))
              .where(_reviewable()).group_by(_decisions.c.decision_id).subquery())
    q = (sa.select(_events.c.event_id, _events.c.actor, _events.c.data, _events.c.created_at.label("reviewed_at"),
                   _decisions)
         .select_from(_marks.join(_events, _events.c.event_id == _marks.c.event_id)
                      .join(latest, latest.c.decision_id == _marks.c.decision_id)
                      .join(_decisions, _decisions.c.seq == latest.c.seq))
         .where(_marks.c.verdict == verdict).order_by(_events.c.seq))
    with ledger.engine.connect() as conn:
        for r in conn.execution_options(yield_per=500).execute(q):
            m = r._mapping
            if m["erased_at"] is not None or (m["flags"] or {}).get("training_opt_out"):
                continue
            data = dict(m["data"] or {})
            yield {"kind": kind, "decision_id": m["decision_id"], "created_at": m["created_at"].isoformat(),
                   "direction": m["direction"], "scene": m["scene"], "action": m["action"],
                   "risks": list(m["risks"]), "excerpt": m["excerpt"], "reviewer": m["actor"],
                   "reviewed_at": m["reviewed_at"].isoformat(), "review_event": m["event_id"],
                   "entry": data.get("entry"), "entry_risk": data.get("entry_risk")}


def samples_jsonl(ledger: Ledger, kind: SampleKind) -> str:
    return "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples(ledger, kind))


def export_samples(ledger: Ledger, kind: SampleKind, out: Path) -> int:
    """Write the samples of ``kind`` to ``out`` as JSONL (whole or not at all); returns how many."""
    if out.is_dir():
        raise UserError(f"{out}: is a folder; give the file to write")
    if not out.parent.is_dir():
        raise UserError(f"{out.parent}: no such folder")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for s in samples(ledger, kind):
                fh.write(json.dumps(s, ensure_ascii=False) + "\n")
                n += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n
