"""Tables of the account gate, in the ledger's database and migration history (revision 0003).

Nothing here holds raw personal data: a phone number is kept as a salted HMAC (to find the account
again) and a masked form (``138****8000``, to show the person); one-time codes and guardian PINs as
hashes. What happened to an account (agreements accepted, enforcement, appeals) is evidence and goes
to the hash-chained ``events`` table of the ledger; the rows here are the current state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import false as sa_false

from hegui.ledger.models import Base, utcnow


class AccountProfile(Base):
    """What the gate knows of an account, one row per account that has any of it."""

    __tablename__ = "account_profiles"

    account_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), default="person")
    """``person`` (registered by phone, directly or through an app) or ``app`` (a provider's app)."""
    phone_hash: Mapped[str | None] = mapped_column(String(80), unique=True)
    phone_masked: Mapped[str | None] = mapped_column(String(24))
    verified_at: Mapped[datetime | None] = mapped_column()
    age_band: Mapped[str | None] = mapped_column(String(8))
    minor_mode: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    guardian_pin_hash: Mapped[str | None] = mapped_column(String(200))
    training_opt_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    standing: Mapped[str] = mapped_column(String(16), default="good")
    standing_until: Mapped[datetime | None] = mapped_column()
    """For ``suspended``: when service resumes (then the standing reads ``restricted``)."""
    standing_reason: Mapped[str] = mapped_column(String(500), default="")
    accepted: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Agreement versions accepted: ``{"service": "2026-12", "privacy": "2026-12"}``."""
    app_id: Mapped[str | None] = mapped_column(String(128), index=True)
    """The app account this person was registered through (None: registered directly)."""
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AppUser(Base):
    """An app's own name for an end user (OpenAI's ``user`` field), hashed, and the person behind it."""

    __tablename__ = "app_users"

    app_id: Mapped[str] = mapped_column(String(128), ForeignKey("accounts.id", ondelete="CASCADE"),
                                        primary_key=True)
    user_hash: Mapped[str] = mapped_column(String(80), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(128), ForeignKey("accounts.id", ondelete="CASCADE"),
                                            index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OTPCode(Base):
    """A one-time code sent by SMS: only its hash, the number's hash and the sender's address hash."""

    __tablename__ = "otp_codes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    phone_hash: Mapped[str] = mapped_column(String(80), index=True)
    ip_hash: Mapped[str] = mapped_column(String(80), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    code_hash: Mapped[str] = mapped_column(String(80))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column()
    consumed_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class UsageMinute(Base):
    """A minute of a day (provider's time zone) in which the account was served: usage time."""

    __tablename__ = "usage_minutes"

    account_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    minute: Mapped[int] = mapped_column(Integer, primary_key=True)


class Counter(Base):
    """Shared rate-limit windows when no Redis is configured (``key`` names account or key and minute)."""

    __tablename__ = "counters"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Appeal(Base):
    __tablename__ = "appeals"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(128), ForeignKey("accounts.id", ondelete="CASCADE"),
                                            index=True)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")
    """``open``, ``restored`` (the account's standing was restored) or ``upheld``."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column()
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decision_reason: Mapped[str] = mapped_column(Text, default="")


class PublishedAgreement(Base):
    """A version of the service agreement or privacy policy as published (``hegui agreements publish``):
    the text people accepted, kept with its digest, so what each acceptance refers to stays known."""

    __tablename__ = "agreements"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    effective: Mapped[str] = mapped_column(String(10))
    """ISO date (provider's time zone) from which accounts must have accepted it."""
    sha256: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_by: Mapped[str] = mapped_column(String(128))
