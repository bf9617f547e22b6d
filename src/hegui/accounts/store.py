"""The account gate's state in the ledger database: profiles, app users, appeals, and their evidence.

Every change of what an account may do (standing, agreements, consent, minor mode) is written in one
transaction with its event on the ledger's ``events`` chain, and bumps the ``accounts_version``
counter that every worker polls (:mod:`hegui.accounts.gate`), so cached standing is refreshed on
every replica within ``accounts.sync_seconds``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection

from hegui.accounts.config import LADDER, MINOR_BANDS
from hegui.accounts.models import AccountProfile, Appeal, AppUser, PublishedAgreement
from hegui.errors import UserError
from hegui.ledger.errors import LedgerError
from hegui.ledger.events import append_event
from hegui.ledger.models import Base, utcnow

if TYPE_CHECKING:
    from hegui.ledger.store import Ledger

T = TypeVar("T")

_profiles = Base.metadata.tables[AccountProfile.__tablename__]
_app_users = Base.metadata.tables[AppUser.__tablename__]
_appeals = Base.metadata.tables[Appeal.__tablename__]
_agreements = Base.metadata.tables[PublishedAgreement.__tablename__]
_accounts = Base.metadata.tables["accounts"]
_keys = Base.metadata.tables["api_keys"]
_meta = Base.metadata.tables["ledger_meta"]

VERSION_KEY = "accounts_version"
SYSTEM = "system"
"""The actor of automatic actions (the ladder)."""


class AccountNotFound(UserError):
    pass


@dataclass(frozen=True)
class Profile:
    """An account as the gate sees it. Accounts without a profile row read as :meth:`default`."""

    account_id: str
    kind: str = "service"
    """``person`` (a verified phone), ``app`` (a provider's app with end users) or ``service`` (an
    account made by an operator, e.g. ``hegui ledger account create``)."""
    phone_masked: str | None = None
    verified: bool = False
    age_band: str | None = None
    minor_mode: bool = False
    has_guardian_pin: bool = False
    training_opt_out: bool = False
    standing: str = "good"
    standing_until: datetime | None = None
    standing_reason: str = ""
    accepted: dict[str, str] = field(default_factory=dict)
    app_id: str | None = None

    @property
    def minor(self) -> bool:
        return self.minor_mode or (self.age_band in MINOR_BANDS)

    def standing_at(self, now: datetime) -> str:
        """A suspension that has run out reads as ``restricted`` (one step back up, not a clean slate)."""
        if self.standing == "suspended" and self.standing_until is not None and self.standing_until <= now:
            return "restricted"
        return self.standing

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id, "kind": self.kind, "phone": self.phone_masked,
            "verified": self.verified, "age_band": self.age_band, "minor_mode": self.minor,
            "training_opt_out": self.training_opt_out, "standing": self.standing,
            "standing_until": self.standing_until.isoformat() if self.standing_until else None,
            "standing_reason": self.standing_reason, "accepted": dict(self.accepted), "app_id": self.app_id,
        }


def _profile(r: Any) -> Profile:
    return Profile(
        account_id=r.account_id, kind=r.kind, phone_masked=r.phone_masked, verified=r.verified_at is not None,
        age_band=r.age_band, minor_mode=bool(r.minor_mode), has_guardian_pin=r.guardian_pin_hash is not None,
        training_opt_out=bool(r.training_opt_out), standing=r.standing, standing_until=r.standing_until,
        standing_reason=r.standing_reason or "", accepted=dict(r.accepted or {}), app_id=r.app_id,
    )


def mask_phone(phone: str) -> str:
    """``13800138000`` → ``138****8000``."""
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"


class AccountStore:
    """Reads and changes accounts; each change is one transaction with its ledger event."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    # -- plumbing ------------------------------------------------------------------------------

    def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one write transaction that also bumps the accounts version."""
        def with_bump(conn: Connection) -> T:
            result = fn(conn)
            self._bump(conn)
            return result

        return self.ledger.transaction(with_bump, "update the account")

    def _bump(self, conn: Connection) -> None:
        # the row is made by the migration (0003); the increment is atomic on both backends
        conn.execute(sa.update(_meta).where(_meta.c.key == VERSION_KEY)
                     .values(value=sa.cast(sa.cast(_meta.c.value, sa.Integer) + 1, sa.Text)))

    def version(self) -> int:
        """Bumped by every change; workers compare it to drop their cached profiles."""
        with self.ledger.engine.connect() as conn:
            v = conn.execute(sa.select(_meta.c.value).where(_meta.c.key == VERSION_KEY)).scalar_one_or_none()
        return int(v) if v is not None else 0

    def _require_account(self, conn: Connection, account_id: str) -> None:
        if conn.execute(sa.select(_accounts.c.id).where(_accounts.c.id == account_id)).first() is None:
            raise AccountNotFound(f"no account {account_id}")

    def _upsert(self, conn: Connection, account_id: str, **values: Any) -> None:
        self._require_account(conn, account_id)
        values["updated_at"] = utcnow()
        n = conn.execute(sa.update(_profiles).where(_profiles.c.account_id == account_id).values(**values)).rowcount
        if n == 0:
            row = {"account_id": account_id, "kind": "service", "standing": "good", "standing_reason": "",
                   "accepted": {}, "minor_mode": False, "training_opt_out": False, **values}
            conn.execute(sa.insert(_profiles).values(**row))

    def _read(self, conn: Connection, account_id: str) -> Profile:
        r = conn.execute(sa.select(_profiles).where(_profiles.c.account_id == account_id)).one_or_none()
        return Profile(account_id) if r is None else _profile(r)

    # -- reading -------------------------------------------------------------------------------

    def profile(self, account_id: str) -> Profile:
        """The account's profile (defaults when it has none). Raises AccountNotFound if no such account."""
        with self.ledger.engine.connect() as conn:
            self._require_account(conn, account_id)
            return self._read(conn, account_id)

    def profiles(self, account_ids: Iterable[str] | None = None, *, standing: str | None = None,
                 limit: int = 1000) -> list[Profile]:
        q = sa.select(_accounts.c.id, _profiles).join(_profiles, _profiles.c.account_id == _accounts.c.id,
                                                      isouter=True).order_by(_accounts.c.created_at).limit(limit)
        if account_ids is not None:
            q = q.where(_accounts.c.id.in_(list(account_ids)))
        if standing is not None:
            q = q.where(sa.func.coalesce(_profiles.c.standing, "good") == standing)
        with self.ledger.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [Profile(r.id) if r.account_id is None else _profile(r) for r in rows]

    def find_by_phone(self, phone: str) -> Profile | None:
        digest = self.phone_hash(phone)
        with self.ledger.engine.connect() as conn:
            r = conn.execute(sa.select(_profiles).where(_profiles.c.phone_hash == digest)).one_or_none()
        return None if r is None else _profile(r)

    def key_is_public(self, key_id: str) -> bool:
        with self.ledger.engine.connect() as conn:
            return bool(conn.execute(sa.select(_keys.c.public).where(_keys.c.id == key_id)).scalar_one_or_none())

    def app_user(self, app_id: str, user: str) -> str | None:
        """The person an app calls ``user``, if the app registered them."""
        digest = self.ledger.hash_identifier(f"{app_id}\x00{user}")
        with self.ledger.engine.connect() as conn:
            return conn.execute(sa.select(_app_users.c.account_id).where(
                _app_users.c.app_id == app_id, _app_users.c.user_hash == digest)).scalar_one_or_none()

    # -- identity ------------------------------------------------------------------------------

    def phone_hash(self, phone: str) -> str:
        return self.ledger.hash_identifier("tel:+86" + phone)

    def register_person(self, phone: str, *, age_band: str | None = None, app_id: str | None = None,
                        actor: str = SYSTEM) -> tuple[str, bool]:
        """The account of a person whose phone was just verified by a one-time code: found by the
        phone's hash, or created. Returns (account id, created). Only the hash and the masked number
        are stored."""
        digest = self.phone_hash(phone)
        existing = self.find_by_phone(phone)
        if existing is not None:
            return existing.account_id, False
        account_id = "acc_" + secrets.token_hex(8)

        def create(conn: Connection) -> None:
            conn.execute(sa.insert(_accounts).values(id=account_id, name="", external_id=None, created_at=utcnow()))
            self._upsert(conn, account_id, kind="person", phone_hash=digest, phone_masked=mask_phone(phone),
                         verified_at=utcnow(), age_band=age_band, minor_mode=age_band in MINOR_BANDS, app_id=app_id)
            append_event(conn, "account.registered", account_id, actor,
                         {"phone": mask_phone(phone), "age_band": age_band, "app_id": app_id})

        try:
            self.write(create)
        except LedgerError:
            again = self.find_by_phone(phone)  # registered at the same moment by another worker
            if again is None:
                raise
            return again.account_id, False
        return account_id, True

    def link_app_user(self, app_id: str, user: str, person_id: str, *, actor: str) -> None:
        digest = self.ledger.hash_identifier(f"{app_id}\x00{user}")

        def link(conn: Connection) -> None:
            self._require_account(conn, app_id)
            self._upsert(conn, app_id, kind="app")
            conn.execute(sa.delete(_app_users).where(_app_users.c.app_id == app_id, _app_users.c.user_hash == digest))
            conn.execute(sa.insert(_app_users).values(app_id=app_id, user_hash=digest, account_id=person_id,
                                                      created_at=utcnow()))
            append_event(conn, "account.app_user_linked", person_id, actor, {"app_id": app_id})

        self.write(link)

    def set_key_public(self, key_id: str, public: bool, *, actor: str) -> None:
        def change(conn: Connection) -> None:
            r = conn.execute(sa.select(_keys.c.account_id).where(_keys.c.id == key_id)).one_or_none()
            if r is None:
                raise AccountNotFound(f"no API key {key_id}")
            conn.execute(sa.update(_keys).where(_keys.c.id == key_id).values(public=public))
            self._upsert(conn, r.account_id, kind="app")
            append_event(conn, "key.public" if public else "key.private", r.account_id, actor, {"key_id": key_id})

        self.write(change)

    # -- agreements and consent ----------------------------------------------------------------

    def publish_agreement(self, kind: str, version: str, effective: str, text: str, *, actor: str) -> bool:
        """Publish a version (idempotent: the same text again is a no-op and returns False; a different
        text under a published version name is refused, as acceptances already refer to it)."""
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()

        def change(conn: Connection) -> bool:
            r = conn.execute(sa.select(_agreements.c.sha256).where(
                _agreements.c.kind == kind, _agreements.c.version == version)).one_or_none()
            if r is not None:
                if r.sha256 != digest:
                    raise UserError(f"{kind} agreement version {version!r} is already published with another "
                                    "text; publish the new text under a new version")
                return False
            conn.execute(sa.insert(_agreements).values(kind=kind, version=version, effective=effective,
                                                       sha256=digest, text=text, published_at=utcnow(),
                                                       published_by=actor))
            append_event(conn, "agreement.published", None, actor,
                         {"kind": kind, "version": version, "effective": effective, "sha256": digest})
            return True

        return self.write(change)

    def published_agreements(self) -> list[dict[str, Any]]:
        """Every published version, oldest effective date first (text included)."""
        with self.ledger.engine.connect() as conn:
            rows = conn.execute(sa.select(_agreements).order_by(_agreements.c.effective,
                                                                _agreements.c.published_at)).all()
        return [{**dict(r._mapping), "published_at": r.published_at.isoformat()} for r in rows]

    def accept(self, account_id: str, kind: str, version: str, *, actor: str | None = None) -> str:
        """Record that the account accepted ``version`` of the ``kind`` document; returns the event id."""
        def change(conn: Connection) -> str:
            accepted = dict(self._read(conn, account_id).accepted)
            accepted[kind] = version
            self._upsert(conn, account_id, accepted=accepted)
            return append_event(conn, "agreement.accepted", account_id, actor or account_id,
                                {"kind": kind, "version": version})

        return self.write(change)

    def set_training_opt_out(self, account_id: str, opt_out: bool, *, actor: str | None = None) -> str:
        def change(conn: Connection) -> str:
            self._upsert(conn, account_id, training_opt_out=opt_out)
            return append_event(conn, "consent.training_opt_out" if opt_out else "consent.training_opt_in",
                                account_id, actor or account_id, {})

        return self.write(change)

    # -- minors ----------------------------------------------------------------------------------

    def set_age_band(self, account_id: str, age_band: str, *, source: str, actor: str | None = None) -> None:
        """``source``: ``declared`` by the person, or ``verifier`` (the identity verifier's answer)."""
        def change(conn: Connection) -> None:
            current = self._read(conn, account_id)
            self._upsert(conn, account_id, age_band=age_band,
                         minor_mode=current.minor_mode or age_band in MINOR_BANDS)
            append_event(conn, "account.age_band", account_id, actor or account_id,
                         {"age_band": age_band, "source": source})

        self.write(change)

    def set_guardian_pin(self, account_id: str, pin_hash: str, *, actor: str | None = None) -> None:
        def change(conn: Connection) -> None:
            self._upsert(conn, account_id, guardian_pin_hash=pin_hash, minor_mode=True)
            append_event(conn, "minor.guardian_pin_set", account_id, actor or account_id, {})

        self.write(change)

    def guardian_pin_hash(self, account_id: str) -> str | None:
        with self.ledger.engine.connect() as conn:
            return conn.execute(sa.select(_profiles.c.guardian_pin_hash)
                                .where(_profiles.c.account_id == account_id)).scalar_one_or_none()

    def set_minor_mode(self, account_id: str, on: bool, *, actor: str | None = None, reason: str = "") -> None:
        def change(conn: Connection) -> None:
            self._upsert(conn, account_id, minor_mode=on)
            append_event(conn, "minor.mode_on" if on else "minor.mode_off", account_id, actor or account_id,
                         {"reason": reason})

        self.write(change)

    # -- the ladder ------------------------------------------------------------------------------

    def set_standing(self, account_id: str, standing: str, *, actor: str, reason: str,
                     until: datetime | None = None, evidence: list[str] | None = None,
                     kind: str | None = None) -> str:
        """Move the account to ``standing`` (one of :data:`LADDER`), with the reason and the decision
        ids that justify it; returns the event id. ``kind`` names the event (default
        ``ladder.<standing>``; ``ladder.restored`` for a restoration)."""
        if standing not in LADDER:
            raise UserError(f"unknown standing {standing!r} (one of {', '.join(LADDER)})")
        if standing == "suspended" and until is None:
            raise UserError("a suspension needs an end (until)")

        def change(conn: Connection) -> str:
            before = self._read(conn, account_id)
            if before.standing == "terminated" and standing != "terminated" and kind != "ladder.restored":
                raise UserError(f"account {account_id} is terminated; only a restoration can change that")
            self._upsert(conn, account_id, standing=standing, standing_until=until if standing == "suspended" else None,
                         standing_reason=reason[:500])
            return append_event(conn, kind or f"ladder.{standing}", account_id, actor, {
                "from": before.standing, "to": standing, "reason": reason,
                "until": until.isoformat() if until else None, "evidence": list(evidence or []),
            })

        return self.write(change)

    # -- appeals -----------------------------------------------------------------------------------

    def file_appeal(self, account_id: str, reason: str) -> str:
        appeal_id = "ap_" + secrets.token_hex(8)

        def change(conn: Connection) -> str:
            self._require_account(conn, account_id)
            conn.execute(sa.insert(_appeals).values(id=appeal_id, account_id=account_id, reason=reason[:5000],
                                                    status="open", created_at=utcnow(), decision_reason=""))
            append_event(conn, "appeal.filed", account_id, account_id, {"appeal_id": appeal_id})
            return appeal_id

        return self.write(change)

    def appeals(self, *, account_id: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        q = sa.select(_appeals).order_by(_appeals.c.created_at)
        if account_id is not None:
            q = q.where(_appeals.c.account_id == account_id)
        if status is not None:
            q = q.where(_appeals.c.status == status)
        with self.ledger.engine.connect() as conn:
            return [{**dict(r._mapping), "created_at": r.created_at.isoformat(),
                     "decided_at": r.decided_at.isoformat() if r.decided_at else None} for r in conn.execute(q)]

    def decide_appeal(self, appeal_id: str, *, restore: bool, actor: str, reason: str) -> str:
        """Decide an open appeal: ``restore`` puts the account back in good standing (recorded as
        ``ladder.restored``); otherwise the standing is upheld. Returns the account id."""
        def change(conn: Connection) -> str:
            r = conn.execute(sa.select(_appeals).where(_appeals.c.id == appeal_id)).one_or_none()
            if r is None:
                raise AccountNotFound(f"no appeal {appeal_id}")
            if r.status != "open":
                raise UserError(f"appeal {appeal_id} was already decided ({r.status})")
            status = "restored" if restore else "upheld"
            conn.execute(sa.update(_appeals).where(_appeals.c.id == appeal_id).values(
                status=status, decided_at=utcnow(), decided_by=actor, decision_reason=reason[:5000]))
            append_event(conn, f"appeal.{status}", r.account_id, actor, {"appeal_id": appeal_id, "reason": reason})
            if restore:
                before = self._read(conn, r.account_id)
                self._upsert(conn, r.account_id, standing="good", standing_until=None, standing_reason=reason[:500])
                append_event(conn, "ladder.restored", r.account_id, actor, {
                    "from": before.standing, "to": "good", "reason": reason, "until": None,
                    "evidence": [], "appeal_id": appeal_id})
            return str(r.account_id)

        return self.write(change)
