"""The ``events`` chain: evidence about people and cases, beside the decisions chain.

An event is one thing that happened to an account (or, later, a case): an agreement accepted, a
consent given or withdrawn, a step down the enforcement ladder with the decision ids that caused it,
an appeal and its outcome. Events are appended under the chain head's lock and hash-chained exactly
like decisions (:mod:`hegui.ledger.chain`), so ``hegui ledger verify`` checks both chains.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from hegui.ledger.chain import EVENT_FIELDS, clean_json, row_hash, seal_content
from hegui.ledger.errors import LedgerError
from hegui.ledger.models import Base, utcnow

if TYPE_CHECKING:
    from hegui.ledger.store import Ledger

SELF_ACTOR = "self"
"""``actor`` of an event the account did itself (accepting an agreement, filing an appeal)."""

_events = Base.metadata.tables["events"]
_heads = Base.metadata.tables["chain_heads"]


@dataclass(frozen=True)
class EventRow:
    seq: int
    event_id: str
    kind: str
    account_id: str | None
    actor: str
    data: dict[str, Any]
    created_at: datetime
    erased_at: datetime | None = None
    """Set when ``account_id`` and ``data`` were erased on request (:mod:`hegui.ledger.erasure`)."""

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "event_id": self.event_id, "kind": self.kind, "account_id": self.account_id,
                "actor": self.actor, "data": self.data, "created_at": self.created_at.isoformat(),
                "erased_at": self.erased_at.isoformat() if self.erased_at else None}


def append_event(conn: Connection, kind: str, account_id: str | None, actor: str,
                 data: Mapping[str, Any] | None = None, *, created_at: datetime | None = None) -> str:
    """Append one event inside the caller's transaction (so a state change and its evidence commit
    together, or neither does). Returns the event id. The caller must have begun a write
    transaction (``Ledger.begin_write``)."""
    head = conn.execute(
        sa.select(_heads.c.seq, _heads.c.row_hash).where(_heads.c.chain == "events").with_for_update()
    ).one_or_none()
    if head is None:
        raise LedgerError("the events chain head is missing; run `hegui db upgrade`")
    event_id = "ev_" + secrets.token_hex(12)
    if account_id is not None and actor == account_id:
        # The account acted on itself: ``actor`` is hashed directly into the chain and cannot be
        # erased, so it must not repeat the account id, which can (hegui.ledger.erasure).
        actor = SELF_ACTOR
    values: dict[str, Any] = {
        "seq": int(head.seq) + 1,
        "event_id": event_id,
        "kind": kind,
        "account_id": account_id,
        "actor": actor,
        "data": clean_json(dict(data or {})),
        "created_at": created_at or utcnow(),
    }
    seal_content(values, "events")
    values["prev_hash"] = str(head.row_hash)
    values["row_hash"] = row_hash(values["prev_hash"], values, EVENT_FIELDS)
    conn.execute(sa.insert(_events).values(**values))
    conn.execute(sa.update(_heads).where(_heads.c.chain == "events")
                 .values(seq=values["seq"], row_hash=values["row_hash"]))
    return event_id


def events(ledger: Ledger, *, account_id: str | None = None, kind_prefix: str | None = None,
           limit: int | None = 200) -> list[EventRow]:
    """Events, oldest first; of one account and/or whose kind starts with ``kind_prefix``."""
    q = sa.select(_events).order_by(_events.c.seq)
    if account_id is not None:
        q = q.where(_events.c.account_id == account_id)
    if kind_prefix:
        q = q.where(_events.c.kind.startswith(kind_prefix))
    if limit is not None:
        q = q.order_by(None).order_by(_events.c.seq.desc()).limit(limit)
    try:
        with ledger.engine.connect() as conn:
            rows = conn.execute(q).all()
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot read events: {exc.__class__.__name__}") from exc
    out = [EventRow(int(r.seq), r.event_id, r.kind, r.account_id, r.actor, dict(r.data), r.created_at, r.erased_at)
           for r in rows]
    out.sort(key=lambda e: e.seq)
    return out
