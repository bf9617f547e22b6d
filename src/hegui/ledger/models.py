"""SQLAlchemy models of the ledger.

``decisions`` is evidence: append-only and hash-chained (``seq``, ``prev_hash``, ``row_hash``; see
:mod:`hegui.ledger.chain`). ``chain_heads`` holds the last link of each chain: appends lock it, and
the verifier compares it with the table so that rows cut from the end are noticed too.
``events`` is the second chain (people and cases). ``accounts`` and ``api_keys`` are ordinary
mutable tables; the account gate's tables are in :mod:`hegui.accounts.models`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import false as sa_false

# SQLite only auto-increments an INTEGER PRIMARY KEY, not a BIGINT one.
BigId = BigInteger().with_variant(Integer, "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite hands ``DateTime(timezone=True)`` back naive and PostgreSQL aware in the session's zone;
    both come out of here as UTC-aware. Naive values going in are taken as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        # SQLite stores the text as given; keep it naive UTC so ordering by text stays right.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    # Names match the migrations, so Alembic's model/migration comparison finds no drift.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_name)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s",
        }
    )
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime}


class Decision(Base):
    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_account_created", "account_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    decision_id: Mapped[str] = mapped_column(String(64), index=True)
    request_id: Mapped[str] = mapped_column(String(128), index=True)
    account_id: Mapped[str | None] = mapped_column(String(128), index=True)
    api_key_id: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(200))
    direction: Mapped[str] = mapped_column(String(16))
    scene: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    risks: Mapped[list[str]] = mapped_column(JSON)
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    detector_ms: Mapped[dict[str, float]] = mapped_column(JSON)
    excerpt: Mapped[str] = mapped_column(Text)
    stream: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(index=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))
    flags: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """Account marks hashed with the row (``training_opt_out``); NULL on rows from before 0003."""
    content_hash: Mapped[str | None] = mapped_column(String(64))
    """Rows from 0004 on: the hash covers this digest of the erasable fields (who, and what they
    wrote) instead of the fields themselves, so erasing them on request keeps the chain verifiable
    (see :mod:`hegui.ledger.erasure`). NULL on older rows, whose fields are hashed directly."""
    content_nonce: Mapped[str | None] = mapped_column(String(32))
    """Random salt of ``content_hash`` (erased with the content, so the digest cannot be tested
    against guesses afterwards)."""
    erased_at: Mapped[datetime | None] = mapped_column()
    """When the erasable fields were erased (a tombstone); NULL while they are held."""


class Event(Base):
    """Evidence about people and cases, hash-chained like ``decisions`` (its own chain, ``events``):
    agreement acceptances, consent changes, enforcement steps, appeals and their decisions.
    ``data`` holds no raw personal data (phone numbers appear masked, identifiers hashed)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    event_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    account_id: Mapped[str | None] = mapped_column(String(128), index=True)
    actor: Mapped[str] = mapped_column(String(128))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(index=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    """As ``decisions.content_hash``: the digest of ``account_id`` and ``data`` on rows from 0004 on."""
    content_nonce: Mapped[str | None] = mapped_column(String(32))
    erased_at: Mapped[datetime | None] = mapped_column()


class ChainHead(Base):
    __tablename__ = "chain_heads"

    chain: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    row_hash: Mapped[str] = mapped_column(String(64))


class ChainAnchor(Base):
    """Where a chain starts after a retention prune: the seq and hash of the last row deleted.
    One row per prune, so the history of pruning stays visible."""

    __tablename__ = "chain_anchors"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    chain: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    row_hash: Mapped[str] = mapped_column(String(64))
    pruned_before: Mapped[datetime] = mapped_column()
    rows_pruned: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LedgerMeta(Base):
    __tablename__ = "ledger_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class AccountRow(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()
    public: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    """An app's key for the public: requests must name an OTP-verified end user (``user``)."""
