"""SMS one-time codes: sending with limits, checking with a bounded number of tries.

A code is ``accounts.otp.length`` random digits (:mod:`secrets`), valid ``accounts.otp.ttl_seconds``,
good for one successful check, and dead after ``accounts.otp.max_attempts`` wrong tries. A new code
to the same number for the same purpose kills the previous one.

What is stored (table ``otp_codes``): the code's HMAC-SHA256, keyed with a key derived from the
ledger's identifier salt and bound to the code's row id and purpose; the number's and the client
address's salted HMACs; counts and times. Never the code, the number or the address.

Why an HMAC and not argon2: a 6-digit code has only a million values, so no hash, however slow, makes
a stolen row safe on its own; what does is the secret key (the salt lives in the environment, not in
the database) and the code's short life. A slow hash would add nothing but a CPU cost per check that
an attacker can trigger. The guardian PIN, which lives for years, is hashed with argon2 instead.

Limits, checked in the same transaction as the insert (serialised: SQLite ``BEGIN IMMEDIATE``, a
PostgreSQL transaction-level advisory lock), so concurrent requests cannot overshoot them:

- ``sends_per_ip_per_hour`` codes requested from one client address in the last hour;
- ``sends_per_phone_per_hour`` codes sent to one number in the last hour;
- ``resend_after_seconds`` between two codes to one number.

Each answers 429 with ``Retry-After`` (seconds until the oldest counted send leaves the window).
Checks count the try before comparing (one atomic ``attempts = attempts + 1 … WHERE attempts < max``),
and compare with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, get_args

import phonenumbers
import sqlalchemy as sa
from phonenumbers import NumberParseException, PhoneNumberType
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from hegui.accounts.gate import account_error
from hegui.accounts.models import OTPCode
from hegui.accounts.sms import SMSFailed
from hegui.accounts.store import mask_phone
from hegui.gateway.errors import GatewayError, service_unavailable
from hegui.ledger.models import Base

if TYPE_CHECKING:
    from hegui.accounts.config import OTPConfig
    from hegui.accounts.sms import SMSSender
    from hegui.accounts.store import AccountStore

log = logging.getLogger("hegui.accounts")

Purpose = Literal["register", "login", "app_user", "pi_request"]
"""What a code is for; a code checks only for the purpose it was sent for."""
PURPOSES: tuple[str, ...] = get_args(Purpose)

_codes = Base.metadata.tables[OTPCode.__tablename__]
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_PG_LOCK = 0x6865677569_07  # "hegui" + 7: the advisory lock that serialises sends on PostgreSQL
KEEP_ROWS = timedelta(days=1)
"""Rows older than this are deleted (they no longer count for any limit)."""


class InvalidPhone(ValueError):
    """Not a mainland China mobile number. The message never repeats the value."""


def normalize_phone(value: str) -> str:
    """A mainland China mobile number as its 11 digits (``+86 138-0013-8000`` → ``13800138000``)."""
    text = value.strip()
    if not text or len(text) > 32:
        raise InvalidPhone("not a mainland China mobile number")
    try:
        number = phonenumbers.parse(text, "CN")
    except NumberParseException:
        raise InvalidPhone("not a phone number") from None
    if number.country_code != 86:
        raise InvalidPhone("not a mainland China number (+86)")
    national = str(number.national_number)
    if not _MOBILE.fullmatch(national) or not phonenumbers.is_valid_number(number) or \
            phonenumbers.number_type(number) not in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE):
        raise InvalidPhone("not a mainland China mobile number (11 digits starting with 1)")
    return national


@dataclass(frozen=True)
class SentCode:
    phone_masked: str
    ttl_seconds: int
    resend_after_seconds: int


@dataclass(frozen=True)
class CodeCheck:
    ok: bool
    attempts_left: int = 0
    """Wrong tries the code still allows (0 when it is dead, expired, used or unknown)."""


class OTPService:
    """Sends and checks one-time codes. ``clock`` returns an aware UTC ``datetime`` (tests inject one)."""

    def __init__(self, store: AccountStore, cfg: OTPConfig, sender: SMSSender,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.cfg = cfg
        self.sender = sender
        """Replaceable (tests put a capturing sender here)."""
        self.clock = clock or (lambda: datetime.now(UTC))
        self._engine = store.ledger.engine
        self._sqlite = self._engine.dialect.name == "sqlite"
        self._key: bytes | None = None

    # -- hashing -------------------------------------------------------------------------------

    def _code_key(self) -> bytes:
        # derived from the identifier salt, so a code hash is not an identifier hash of anything
        if self._key is None:
            self._key = self.store.ledger.hash_identifier("hegui-otp-code-key").encode("ascii")
        return self._key

    def _code_hash(self, code_id: str, purpose: str, code: str) -> str:
        msg = f"{code_id}\x00{purpose}\x00{code}".encode()
        return hmac.new(self._code_key(), msg, hashlib.sha256).hexdigest()

    def _ip_hash(self, ip: str) -> str:
        return self.store.ledger.hash_identifier("ip:" + (ip or "unknown"))

    def new_code(self) -> str:
        return f"{secrets.randbelow(10 ** self.cfg.length):0{self.cfg.length}d}"

    # -- transactions --------------------------------------------------------------------------

    def _transaction(self, fn: Callable[[Connection], object]) -> object:
        try:
            with self._engine.connect() as conn:
                if self._sqlite:
                    conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin():
                    return fn(conn)
        except GatewayError:
            raise
        except SQLAlchemyError as exc:
            log.error("one-time code storage failed: %s", exc.__class__.__name__)
            raise service_unavailable("the account database is unavailable", "ledger_unavailable") from None

    def _lock(self, conn: Connection) -> None:
        if not self._sqlite:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})

    # -- sending -------------------------------------------------------------------------------

    async def send(self, phone: str, purpose: str, ip: str) -> SentCode:
        """Send a new code to ``phone`` (any accepted spelling) for ``purpose``, asked from ``ip``.
        Raises 400 for a bad number or purpose, 429 over a limit, 502 when the SMS could not be sent
        (the code is then dead), 503 when the database fails."""
        number = self._number(phone)
        if purpose not in PURPOSES:
            raise account_error(400, "invalid_purpose", f"purpose: one of {', '.join(PURPOSES)}", param="purpose")
        code = self.new_code()
        code_id = "otp_" + secrets.token_hex(12)
        phone_hash = self.store.phone_hash(number)
        ip_hash = self._ip_hash(ip)
        now = self.clock()
        await asyncio.to_thread(self._transaction, lambda conn: self._insert(conn, code_id, phone_hash, ip_hash,
                                                                             purpose, code, now))
        try:
            await self.sender.send(number, code, purpose, self.cfg.ttl_seconds)
        except Exception as exc:
            # a code nobody received must not stay usable; the row keeps counting for the limits
            await asyncio.to_thread(self._transaction, lambda conn: self._kill(conn, code_id))
            reason = str(exc) if isinstance(exc, SMSFailed) else exc.__class__.__name__
            log.error("SMS to %s failed: %s", mask_phone(number), reason)
            raise account_error(502, "sms_failed", f"the code could not be sent: {reason}") from None
        return SentCode(mask_phone(number), self.cfg.ttl_seconds, self.cfg.resend_after_seconds)

    def _insert(self, conn: Connection, code_id: str, phone_hash: str, ip_hash: str, purpose: str, code: str,
                now: datetime) -> None:
        self._lock(conn)
        conn.execute(sa.delete(_codes).where(_codes.c.created_at < now - KEEP_ROWS))
        hour_ago = now - timedelta(hours=1)
        c = self.cfg
        n, oldest = conn.execute(sa.select(sa.func.count(), sa.func.min(_codes.c.created_at)).where(
            _codes.c.ip_hash == ip_hash, _codes.c.created_at > hour_ago)).one()
        if n >= c.sends_per_ip_per_hour:
            self._limited(now, oldest + timedelta(hours=1),
                          f"too many codes requested from this address (at most {c.sends_per_ip_per_hour} an hour)")
        n, oldest, latest = conn.execute(sa.select(sa.func.count(), sa.func.min(_codes.c.created_at),
                                                   sa.func.max(_codes.c.created_at)).where(
            _codes.c.phone_hash == phone_hash, _codes.c.created_at > hour_ago)).one()
        if n >= c.sends_per_phone_per_hour:
            self._limited(now, oldest + timedelta(hours=1),
                          f"too many codes sent to this number (at most {c.sends_per_phone_per_hour} an hour)")
        if latest is not None and c.resend_after_seconds and latest > now - timedelta(seconds=c.resend_after_seconds):
            self._limited(now, latest + timedelta(seconds=c.resend_after_seconds),
                          f"a code was sent to this number moments ago (wait {c.resend_after_seconds} s between codes)")
        # a new code replaces the previous one for the same number and purpose
        conn.execute(sa.update(_codes).where(_codes.c.phone_hash == phone_hash, _codes.c.purpose == purpose,
                                             _codes.c.consumed_at.is_(None)).values(consumed_at=now))
        conn.execute(sa.insert(_codes).values(
            id=code_id, phone_hash=phone_hash, ip_hash=ip_hash, purpose=purpose,
            code_hash=self._code_hash(code_id, purpose, code), attempts=0,
            expires_at=now + timedelta(seconds=c.ttl_seconds), consumed_at=None, created_at=now))

    @staticmethod
    def _limited(now: datetime, free_at: datetime, message: str) -> None:
        retry = max(1, math.ceil((free_at - now).total_seconds()))
        raise account_error(429, "otp_rate_limited", f"{message}; try again in {retry} s", retry_after=retry,
                            headers={"retry-after": str(retry)})

    def _kill(self, conn: Connection, code_id: str) -> None:
        conn.execute(sa.update(_codes).where(_codes.c.id == code_id).values(
            consumed_at=self.clock(), attempts=self.cfg.max_attempts))

    # -- checking ------------------------------------------------------------------------------

    async def check(self, phone: str, purpose: str, code: str) -> CodeCheck:
        """Check ``code`` against the live code of ``phone`` for ``purpose``; a match uses it up."""
        try:
            number = normalize_phone(phone)
        except InvalidPhone:
            return CodeCheck(False)
        phone_hash = self.store.phone_hash(number)
        now = self.clock()
        result = await asyncio.to_thread(self._transaction, lambda conn: self._check(conn, phone_hash, purpose,
                                                                                     code, now))
        assert isinstance(result, CodeCheck)
        return result

    async def verify(self, phone: str, purpose: str, code: str) -> bool:
        return (await self.check(phone, purpose, code)).ok

    def _check(self, conn: Connection, phone_hash: str, purpose: str, code: str, now: datetime) -> CodeCheck:
        row = conn.execute(sa.select(_codes.c.id, _codes.c.code_hash, _codes.c.attempts, _codes.c.expires_at)
                           .where(_codes.c.phone_hash == phone_hash, _codes.c.purpose == purpose,
                                  _codes.c.consumed_at.is_(None))
                           .order_by(_codes.c.created_at.desc()).limit(1)).one_or_none()
        limit = self.cfg.max_attempts
        if row is None or row.expires_at <= now or row.attempts >= limit:
            self._code_hash("otp_none", purpose, code)  # the same work as a real check
            return CodeCheck(False)
        # count the try first, atomically: concurrent guesses cannot get past max_attempts
        attempts = conn.execute(sa.update(_codes).where(
            _codes.c.id == row.id, _codes.c.attempts < limit, _codes.c.consumed_at.is_(None),
            _codes.c.expires_at > now).values(attempts=_codes.c.attempts + 1)
            .returning(_codes.c.attempts)).scalar_one_or_none()
        if attempts is None:
            return CodeCheck(False)
        if not hmac.compare_digest(self._code_hash(row.id, purpose, code), row.code_hash):
            return CodeCheck(False, attempts_left=max(0, limit - attempts))
        used = conn.execute(sa.update(_codes).where(_codes.c.id == row.id, _codes.c.consumed_at.is_(None))
                            .values(consumed_at=now)).rowcount
        return CodeCheck(used == 1)

    @staticmethod
    def _number(phone: str) -> str:
        try:
            return normalize_phone(phone)
        except InvalidPhone as exc:
            raise account_error(400, "invalid_phone", f"phone: {exc}", param="phone") from None
