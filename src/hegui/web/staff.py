"""Staff accounts of the console: roles, argon2id passwords, lockout, optional TOTP, sessions.

- Passwords are hashed with argon2id (``argon2-cffi``'s defaults, RFC 9106's second recommended
  profile); a hash made with older parameters is re-hashed at the next good login.
- ``console.lockout_after_failures`` wrong passwords or second factors in a row lock the account for
  ``console.lockout_minutes``; the per-address limit on attempts is the login page's.
- A session is a random 256-bit token; the table keeps its SHA-256. It ends after
  ``console.session_hours`` or ``console.idle_minutes`` without use, at logout, or when the staff
  member is disabled. A login always makes a new token (no session fixation).
- Creating, disabling, logging in and failing to are events on the ledger's chain, with the staff
  id as the actor (``staff:<id>``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from hegui.errors import UserError
from hegui.ledger.events import append_event
from hegui.ledger.models import Base, utcnow
from hegui.web.console.base import ROLES, Staff
from hegui.web.staff_models import StaffSession, StaffUser

if TYPE_CHECKING:
    from hegui.ledger.store import Ledger
    from hegui.web.config import ConsoleConfig

_users = Base.metadata.tables[StaffUser.__tablename__]
_sessions = Base.metadata.tables[StaffSession.__tablename__]

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 10
TOTP_ISSUER = "hegui console"
_hasher = PasswordHasher()
# verified against when the username is unknown, so a wrong name takes as long as a wrong password
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class StaffError(UserError):
    pass


class LoginRefused(Exception):
    """A login that did not succeed; ``reason`` is for the log and the ledger, never the page
    (the page says only that the name, password or code is wrong, or that the account is locked)."""

    def __init__(self, reason: str, *, locked: bool = False, needs_totp: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.locked = locked
        self.needs_totp = needs_totp


@dataclass(frozen=True)
class StaffRow:
    id: str
    username: str
    display_name: str
    role: str
    totp: bool
    disabled: bool
    locked_until: datetime | None
    created_at: datetime
    last_login_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "display_name": self.display_name, "role": self.role,
                "totp": self.totp, "disabled": self.disabled,
                "locked_until": self.locked_until.isoformat() if self.locked_until else None,
                "created_at": self.created_at.isoformat(),
                "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None}


def _row(r: Any) -> StaffRow:
    return StaffRow(r.id, r.username, r.display_name, r.role, r.totp_secret is not None, r.disabled_at is not None,
                    r.locked_until, r.created_at, r.last_login_at)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


class StaffStore:
    def __init__(self, ledger: Ledger, cfg: ConsoleConfig) -> None:
        self.ledger = ledger
        self.cfg = cfg

    def write(self, fn: Any) -> Any:
        return self.ledger.transaction(fn, "update staff")

    # -- accounts ------------------------------------------------------------------------------

    def create(self, username: str, password: str, role: str, *, display_name: str = "", actor: str,
               totp_secret: str | None = None) -> str:
        if not USERNAME.match(username):
            raise StaffError(f"username {username!r}: 2–64 of a-z 0-9 . _ -, starting with a letter or digit")
        if role not in ROLES:
            raise StaffError(f"role {role!r}: one of {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD:
            raise StaffError(f"password: at least {MIN_PASSWORD} characters")
        staff_id = "st_" + secrets.token_hex(8)
        digest = _hasher.hash(password)

        def change(conn: Connection) -> str:
            try:
                conn.execute(sa.insert(_users).values(
                    id=staff_id, username=username, display_name=display_name[:200], role=role,
                    password_hash=digest, totp_secret=totp_secret, failed_logins=0, created_at=utcnow()))
            except IntegrityError:
                raise StaffError(f"username {username!r} is taken") from None
            append_event(conn, "staff.created", None, actor, {"staff": staff_id, "username": username, "role": role,
                                                               "totp": totp_secret is not None})
            return staff_id

        result: str = self.write(change)
        return result

    def list(self) -> list[StaffRow]:
        with self.ledger.engine.connect() as conn:
            return [_row(r) for r in conn.execute(sa.select(_users).order_by(_users.c.username)).all()]

    def get(self, username: str) -> StaffRow | None:
        with self.ledger.engine.connect() as conn:
            r = conn.execute(sa.select(_users).where(_users.c.username == username)).one_or_none()
        return None if r is None else _row(r)

    def disable(self, username: str, *, actor: str) -> None:
        def change(conn: Connection) -> None:
            r = conn.execute(sa.select(_users).where(_users.c.username == username)).one_or_none()
            if r is None:
                raise StaffError(f"no staff member {username!r}")
            if r.disabled_at is not None:
                raise StaffError(f"{username!r} is already disabled")
            conn.execute(sa.update(_users).where(_users.c.id == r.id).values(disabled_at=utcnow()))
            conn.execute(sa.delete(_sessions).where(_sessions.c.staff_id == r.id))
            append_event(conn, "staff.disabled", None, actor, {"staff": r.id, "username": username})

        self.write(change)

    def enable_totp(self, username: str, *, actor: str) -> tuple[str, str]:
        """Give ``username`` a new TOTP secret (replacing any old one): (secret, otpauth URI), to be
        shown once. From the next login on, the code is required."""
        import pyotp

        secret = pyotp.random_base32()

        def change(conn: Connection) -> None:
            r = conn.execute(sa.select(_users).where(_users.c.username == username)).one_or_none()
            if r is None:
                raise StaffError(f"no staff member {username!r}")
            if r.disabled_at is not None:
                raise StaffError(f"{username!r} is disabled")
            conn.execute(sa.update(_users).where(_users.c.id == r.id).values(totp_secret=secret))
            append_event(conn, "staff.totp_enabled", None, actor, {"staff": r.id, "username": username,
                                                                     "replaced": r.totp_secret is not None})

        self.write(change)
        return secret, pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=TOTP_ISSUER)

    # -- logging in ----------------------------------------------------------------------------

    def authenticate(self, username: str, password: str, totp_code: str | None = None,
                     *, now: datetime | None = None) -> tuple[Staff, str]:
        """Check the password (and second factor); on success a new session: (staff, session token).
        Raises :class:`LoginRefused`."""
        now = now or utcnow()
        with self.ledger.engine.connect() as conn:
            r = conn.execute(sa.select(_users).where(_users.c.username == username)).one_or_none()
        if r is None:
            try:
                _hasher.verify(_DUMMY_HASH, password)
            except VerificationError:
                pass
            raise LoginRefused("unknown username")
        if r.disabled_at is not None:
            raise LoginRefused("disabled")
        if r.locked_until is not None and r.locked_until > now:
            raise LoginRefused("locked", locked=True)
        try:
            _hasher.verify(r.password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            self._failed(r.id, "wrong password", now)
        if r.totp_secret is not None or r.role in self.cfg.require_totp_roles:
            if r.totp_secret is None:
                raise LoginRefused("second factor required but not set up", needs_totp=True)
            import pyotp

            if not totp_code or not pyotp.TOTP(r.totp_secret).verify(totp_code, for_time=now, valid_window=1):
                if not totp_code:
                    raise LoginRefused("second factor missing", needs_totp=True)
                self._failed(r.id, "wrong second factor", now)
        token = secrets.token_urlsafe(32)
        rehash = _hasher.hash(password) if _hasher.check_needs_rehash(r.password_hash) else None

        def change(conn: Connection) -> None:
            values: dict[str, Any] = {"failed_logins": 0, "locked_until": None, "last_login_at": now}
            if rehash:
                values["password_hash"] = rehash
            conn.execute(sa.update(_users).where(_users.c.id == r.id).values(**values))
            conn.execute(sa.insert(_sessions).values(token_hash=token_hash(token), staff_id=r.id, created_at=now,
                                                     expires_at=now + timedelta(hours=self.cfg.session_hours),
                                                     last_seen_at=now))
            append_event(conn, "staff.login", None, f"staff:{r.id}", {"staff": r.id})

        self.write(change)
        return Staff(r.id, r.username, r.display_name, r.role, token), token

    def _failed(self, staff_id: str, reason: str, now: datetime) -> None:
        """Count a failure (locking at the threshold) and raise."""
        def change(conn: Connection) -> bool:
            n = conn.execute(sa.select(_users.c.failed_logins).where(_users.c.id == staff_id)).scalar_one() + 1
            locked = n >= self.cfg.lockout_after_failures
            values: dict[str, Any] = {"failed_logins": 0 if locked else n}
            if locked:
                values["locked_until"] = now + timedelta(minutes=self.cfg.lockout_minutes)
            conn.execute(sa.update(_users).where(_users.c.id == staff_id).values(**values))
            append_event(conn, "staff.login_failed", None, f"staff:{staff_id}",
                         {"staff": staff_id, "reason": reason, "locked": locked})
            return locked

        locked: bool = self.write(change)
        raise LoginRefused(reason, locked=locked)

    def session(self, token: str, *, now: datetime | None = None) -> Staff | None:
        """The staff member of a live session (its idle clock restarted), or None."""
        now = now or utcnow()
        digest = token_hash(token)
        q = (sa.select(_sessions.c.expires_at, _sessions.c.last_seen_at, _users.c.id, _users.c.username,
                       _users.c.display_name, _users.c.role, _users.c.disabled_at)
             .join(_users, _users.c.id == _sessions.c.staff_id).where(_sessions.c.token_hash == digest))
        with self.ledger.engine.connect() as conn:
            r = conn.execute(q).one_or_none()
        if r is None or r.disabled_at is not None or r.expires_at <= now \
                or r.last_seen_at + timedelta(minutes=self.cfg.idle_minutes) <= now:
            return None
        if (now - r.last_seen_at).total_seconds() > 30:  # at most one write a half-minute per session
            with self.ledger.engine.begin() as conn:
                conn.execute(sa.update(_sessions).where(_sessions.c.token_hash == digest).values(last_seen_at=now))
        return Staff(r.id, r.username, r.display_name, r.role, token)

    def end_session(self, token: str) -> None:
        with self.ledger.engine.begin() as conn:
            conn.execute(sa.delete(_sessions).where(_sessions.c.token_hash == token_hash(token)))
