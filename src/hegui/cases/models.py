"""Tables of cases and incidents, in the ledger's database and migration history (revision 0004).

A case is the current state of a complaint, report or personal-information request; what happened to
it (opened, assigned, replied, closed, actions taken) is evidence and goes to the hash-chained
``events`` table. The case code the person holds is stored only as its SHA-256: the status page finds
the case by hashing what the person types, and a copy of the database does not reveal the codes.

What a person wrote (description, contact) is kept here, not in the chain, so that it can be erased
when they ask (:func:`hegui.cases.pi.erase_person`); events name cases by id only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hegui.ledger.models import Base, utcnow


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    """``cs_`` + 16 hex: how staff and the ledger name the case."""
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """SHA-256 of the case code given to the person (the code itself is not stored)."""
    kind: Mapped[str] = mapped_column(String(16), index=True)
    """``complaint``, ``report`` (举报) or ``pi_request``."""
    category: Mapped[str | None] = mapped_column(String(32))
    """For complaints and reports: one of :data:`hegui.cases.config.CATEGORIES`."""
    pi_action: Mapped[str | None] = mapped_column(String(24))
    """For PI requests: one of :data:`hegui.cases.config.PI_ACTIONS`."""
    description: Mapped[str] = mapped_column(Text, default="")
    reference: Mapped[str] = mapped_column(String(500), default="")
    """A link to the content, or a decision id."""
    contact: Mapped[str | None] = mapped_column(String(200))
    """How to reach the person (optional); erased on a deletion request."""
    account_id: Mapped[str | None] = mapped_column(String(128), index=True)
    """The account the case is about or from (a PI request's verified person)."""
    phone_hash: Mapped[str | None] = mapped_column(String(80), index=True)
    """A PI request's verified phone, as the accounts' salted HMAC."""
    status: Mapped[str] = mapped_column(String(16), index=True, default="open")
    """See :data:`hegui.cases.states.TRANSITIONS`."""
    assignee: Mapped[str | None] = mapped_column(String(128), index=True)
    due_on: Mapped[str] = mapped_column(String(10), index=True)
    """ISO date (provider's time zone): the last working day to reply."""
    source: Mapped[str] = mapped_column(String(16), default="portal")
    """``portal``, ``api`` or ``cli``."""
    lang: Mapped[str] = mapped_column(String(8), default="zh")
    reply: Mapped[str | None] = mapped_column(Text)
    """The reply shown to the person on the status page."""
    opened_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    replied_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()


class CaseNote(Base):
    """An internal note on a case (never shown to the person)."""

    __tablename__ = "case_notes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(40), ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CaseAttachment(Base):
    """A file attached to a complaint: stored under ``stored_name`` (random) in ``cases.attachments_dir``."""

    __tablename__ = "case_attachments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(40), ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    stored_name: Mapped[str] = mapped_column(String(80), unique=True)
    media_type: Mapped[str] = mapped_column(String(64))
    """The type its content was sniffed as."""
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    original_name: Mapped[str] = mapped_column(String(200), default="")
    """The name it was uploaded under, cleaned (shown to staff, never used as a path)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Incident(Base):
    """An incident (Art. 14): illegal content found, what was stopped or removed, how the model was
    rectified, and the report to the authority."""

    __tablename__ = "incidents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    summary: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), index=True, default="open")
    """``open`` → ``contained`` (stopped/removed) → ``rectified`` → ``reported`` → ``closed``."""
    decision_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    """The decisions that show what was found."""
    stopped: Mapped[str] = mapped_column(Text, default="")
    """What was stopped or removed, and how."""
    rectification: Mapped[str] = mapped_column(Text, default="")
    """What was done to the model, lexicon or policy."""
    case_id: Mapped[str | None] = mapped_column(String(40), index=True)
    """The case it came from, if any."""
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Further structured facts (reported_at, authority, samples exported…)."""
    opened_by: Mapped[str] = mapped_column(String(128))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column()


class LexiconEntry(Base):
    """A lexicon or allow-list entry added by staff (from a case or the console), kept in the database
    so every running gateway picks it up at once: adding one bumps ``ledger_meta.lexicon_version``,
    which the gateways poll and then rebuild their lexicon with these entries beside the files."""

    __tablename__ = "lexicon_entries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    list: Mapped[str] = mapped_column(String(8), index=True)
    """``block`` (a lexicon entry, with its risk) or ``allow`` (an allow phrase)."""
    text: Mapped[str] = mapped_column(String(200))
    risk: Mapped[str | None] = mapped_column(String(16))
    """Risk code of a ``block`` entry (e.g. ``A.1.3``)."""
    note: Mapped[str] = mapped_column(String(500), default="")
    case_id: Mapped[str | None] = mapped_column(String(40), index=True)
    added_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column()
    removed_by: Mapped[str | None] = mapped_column(String(128))
