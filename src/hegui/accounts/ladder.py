"""The enforcement ladder: repeated refused inputs move an account one step down
(good → warned → restricted → suspended), each step a hash-chained event with its evidence.

What counts: the account's ``decision`` rows of ``direction=input`` whose action is ``refuse`` or
``block``, created within ``accounts.ladder.window_hours`` before ``now`` *and* after the account's
last ``ladder.*`` event (a step, a manual action or a restoration), so each step needs a fresh
``step.refusals`` of them; with ``step.risks`` set, only those with one of the risks (a code ``A1a``
or a category ``A1``). A suspension is never extended or turned into termination automatically
(termination is a staff action); a suspension that has run out reads as ``restricted`` and counts
on from there.

:func:`consider` is called by the gateway off the event loop after each refused input. When nothing
happens it costs one query on the indexed ``decisions.account_id``. When the threshold looks reached,
the step is decided again inside one write transaction that holds the account's profile row
(``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` holds the whole database), so
two workers that both saw the N-th refusal step once: the second one re-reads the last ladder event,
finds the first one's step, and counts nothing after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from hegui.accounts.config import LadderConfig
from hegui.accounts.models import AccountProfile
from hegui.accounts.store import SYSTEM, AccountStore, Profile, _profile
from hegui.ledger.errors import LedgerError
from hegui.ledger.events import append_event
from hegui.ledger.models import Base
from hegui.taxonomy import matches

_decisions = Base.metadata.tables["decisions"]
_events = Base.metadata.tables["events"]
_profiles = Base.metadata.tables[AccountProfile.__tablename__]

COUNTED_ACTIONS = ("refuse", "block")
AUTOMATIC_STEPS: dict[str, str] = {"good": "warned", "warned": "restricted", "restricted": "suspended"}
"""Where an automatic step leads from each standing; ``suspended`` and ``terminated`` have none."""
MAX_EVIDENCE = 1000
"""Most decision ids read per look (the threshold is far below this in any sane config)."""


@dataclass(frozen=True)
class Counted:
    """The refused inputs that count toward the next step."""

    decision_ids: list[str]


def _refusals_query(account_id: str, since: datetime) -> sa.Select[Any]:
    last_step = (sa.select(sa.func.max(_events.c.created_at))
                 .where(_events.c.account_id == account_id, _events.c.kind.startswith("ladder."))
                 .scalar_subquery())
    return (
        sa.select(_decisions.c.decision_id, _decisions.c.risks)
        .where(_decisions.c.account_id == account_id,
               _decisions.c.kind == "decision",
               _decisions.c.direction == "input",
               _decisions.c.action.in_(COUNTED_ACTIONS),
               _decisions.c.created_at >= since,
               sa.or_(last_step.is_(None), _decisions.c.created_at > last_step))
        .order_by(_decisions.c.seq)
        .limit(MAX_EVIDENCE)
    )


def _count(conn: Connection, cfg: LadderConfig, account_id: str, now: datetime) -> Counted:
    since = now - timedelta(hours=cfg.window_hours)
    rows = conn.execute(_refusals_query(account_id, since)).all()
    selectors = cfg.step.risks
    ids: list[str] = []
    for r in rows:
        if selectors and not any(matches(sel, str(code)) for sel in selectors for code in (r.risks or [])):
            continue
        if r.decision_id not in ids:  # a decision id is one check; guard against a repeated row
            ids.append(r.decision_id)
    return Counted(ids)


def _reason(cfg: LadderConfig, counted: int) -> str:
    """Recorded with the step and shown to the person (the gate's warning quotes it): Chinese first."""
    hours = f"{cfg.window_hours:g}"
    risks = ", ".join(cfg.step.risks) if cfg.step.risks else "any risk"
    return (f"{hours} 小时内 {counted} 次输入因违规被拒绝 ({counted} refused inputs within {hours} h since the "
            f"last ladder step; threshold {cfg.step.refusals}; risks: {risks})")


def _steppable(store: AccountStore, account_id: str, now: datetime) -> bool:
    """Whether an automatic step could move the account (not suspended or terminated), making its
    profile row exist so the step's transaction has a row to lock (a default row reads exactly like
    no row; another worker making it at the same moment is fine). Raises AccountNotFound."""
    with store.ledger.engine.connect() as conn:
        row = conn.execute(sa.select(_profiles).where(_profiles.c.account_id == account_id)).one_or_none()
    if row is not None:
        return _profile(row).standing_at(now) in AUTOMATIC_STEPS
    try:
        with store.ledger.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                store._upsert(conn, account_id)  # AccountNotFound when there is no such account
    except IntegrityError:
        pass  # made by another worker in between
    return True


def consider(store: AccountStore, cfg: LadderConfig, account_id: str, now: datetime) -> str | None:
    """After a refused input of ``account_id``: step down if the refusals since the last step reach
    the threshold. Returns the event id of the step taken, or None."""
    if not cfg.enabled:
        return None
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    account_id = store.ledger.protect_identifier(account_id) or account_id
    try:
        with store.ledger.engine.connect() as conn:
            seen = _count(conn, cfg, account_id, now)
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot read refusals of {account_id}: {str(exc).splitlines()[0]}") from exc
    if len(seen.decision_ids) < cfg.step.refusals:
        return None
    try:
        if not _steppable(store, account_id, now):
            return None  # suspended or terminated: counted refusals change nothing (and write nothing)
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot read the account {account_id}: {str(exc).splitlines()[0]}") from exc

    def step(conn: Connection) -> str | None:
        # Hold the profile row (PostgreSQL; SQLite's BEGIN IMMEDIATE already holds the database),
        # then decide again on what is committed now: a worker that stepped meanwhile has written a
        # ladder event, after which nothing counts yet.
        store._require_account(conn, account_id)
        row = conn.execute(sa.select(_profiles).where(_profiles.c.account_id == account_id)
                           .with_for_update()).one_or_none()
        profile = Profile(account_id) if row is None else _profile(row)
        current = profile.standing_at(now)
        target = AUTOMATIC_STEPS.get(current)
        if target is None:
            return None
        counted = _count(conn, cfg, account_id, now)
        if len(counted.decision_ids) < cfg.step.refusals:
            return None
        reason = _reason(cfg, len(counted.decision_ids))
        until = now + timedelta(days=cfg.suspend_days) if target == "suspended" else None
        store._upsert(conn, account_id, standing=target, standing_until=until, standing_reason=reason[:500])
        return append_event(conn, f"ladder.{target}", account_id, SYSTEM, {
            "from": current, "to": target, "reason": reason,
            "until": until.isoformat() if until else None, "evidence": counted.decision_ids,
            "automatic": True, "window_hours": cfg.window_hours, "threshold": cfg.step.refusals,
            "risks": list(cfg.step.risks),
        })

    try:
        with store.ledger.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                event_id = step(conn)
                if event_id is not None:
                    store._bump(conn)  # workers drop their cached standing; nothing to drop otherwise
                return event_id
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot step account {account_id} down the ladder: "
                          f"{str(exc).splitlines()[0]}") from exc

