"""Tables of the staff who use the console (revision 0005): accounts with a role, and sessions.

Passwords are kept as argon2id hashes (argon2-cffi); a session is known by the SHA-256 of its
random token, so a copy of the database gives no usable session. What staff do is recorded on the
ledger's ``events`` chain with their id as the actor (``staff:<id>``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hegui.ledger.models import Base, utcnow


class StaffUser(Base):
    __tablename__ = "staff_users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    """``st_`` + 16 hex; recorded as the actor ``staff:<id>``."""
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))
    """``viewer``, ``reviewer`` or ``admin``."""
    password_hash: Mapped[str] = mapped_column(String(200))
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    """Base32 secret of the optional second factor (RFC 6238); NULL: password only."""
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column()
    disabled_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column()


class StaffSession(Base):
    __tablename__ = "staff_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[str] = mapped_column(String(40), ForeignKey("staff_users.id", ondelete="CASCADE"),
                                          index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewMark(Base):
    """A decision a reviewer has judged from the review queue (``confirmed`` or ``cleared``). The
    judgement itself is evidence and goes to the events chain (``review.*``); this row keeps the
    queue's "not yet reviewed" query an indexed anti-join on 1M decisions."""

    __tablename__ = "review_marks"

    decision_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    verdict: Mapped[str] = mapped_column(String(16))
    staff_id: Mapped[str] = mapped_column(String(40))
    event_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
