"""Tombstones: erasing a person's content from chained rows without breaking the chain.

A row chained from migration 0004 on is hashed over ``content_hash`` (a salted digest of its erasable
fields, :data:`hegui.ledger.chain.ERASABLE_FIELDS`) instead of the fields themselves. Erasing it
empties those fields and the salt and sets ``erased_at``; ``row_hash``, ``prev_hash`` and
``content_hash`` stay, so ``hegui ledger verify`` still checks every link and every other field of
the row. What remains is a tombstone: that a decision or event happened, when, what was decided,
but not who it was about or what they wrote.

Rows chained before 0004 are hashed over the fields themselves: emptying them would break the chain,
so they are kept and reported as such (:attr:`RowErasure.kept`), never silently broken.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy import Connection

from hegui.ledger.chain import ERASABLE_FIELDS, ERASED_VALUES
from hegui.ledger.models import Base, utcnow

KEPT_REASON = "chained before erasable records"
"""Why a row was not erased: it was written before migration 0004 (no ``content_hash``)."""

_CHUNK = 500
"""Ids per statement (SQLite allows a few hundred bound parameters comfortably)."""


@dataclass
class RowErasure:
    """What :func:`erase_rows` did to one chain's rows."""

    table: str
    erased: int = 0
    already: int = 0
    """Rows that were tombstones already."""
    kept: list[int] = field(default_factory=list)
    """Ids of rows chained before erasable records (:data:`KEPT_REASON`): their content is still held."""

    def to_dict(self) -> dict[str, object]:
        return {"table": self.table, "erased": self.erased, "already": self.already,
                "kept": len(self.kept), "kept_reason": KEPT_REASON if self.kept else None}


def erase_rows(conn: Connection, table: str, ids: Iterable[int]) -> RowErasure:
    """Erase the content of the rows of chain ``table`` (``decisions`` or ``events``) whose primary
    key is in ``ids``, inside the caller's transaction. The hashes are not touched."""
    if table not in ERASABLE_FIELDS:
        raise ValueError(f"unknown chain {table!r}; expected one of {', '.join(ERASABLE_FIELDS)}")
    t = Base.metadata.tables[table]
    erased = {f: ERASED_VALUES[f] for f in ERASABLE_FIELDS[table]}
    result = RowErasure(table)
    wanted = sorted(set(ids))
    now = utcnow()
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start:start + _CHUNK]
        rows = conn.execute(
            sa.select(t.c.id, t.c.content_hash, t.c.erased_at).where(t.c.id.in_(chunk))
        ).all()
        result.kept.extend(int(r.id) for r in rows if r.content_hash is None)
        result.already += sum(1 for r in rows if r.content_hash is not None and r.erased_at is not None)
        result.erased += conn.execute(
            sa.update(t)
            .where(t.c.id.in_(chunk), t.c.content_hash.is_not(None), t.c.erased_at.is_(None))
            .values(**erased, content_nonce=None, erased_at=now)
        ).rowcount
    return result
