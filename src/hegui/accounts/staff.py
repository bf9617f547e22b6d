"""What staff do to accounts, shared by the admin API (:mod:`hegui.accounts.admin_api`) and the CLI
(``hegui accounts …``, ``hegui appeals …``): a ladder action with a reason and its evidence, an
appeal decided. Every check that can fail does so with a :class:`~hegui.errors.UserError` whose
message is the one line to show; :class:`AccountNotFound` when the account or appeal does not exist
(checked first, so an unknown account is "not found" whatever else is wrong with the request), and
:class:`Conflict` when the request is well formed but cannot be done given what holds now: the
account is terminated, the suspension's end is not in the future (or absurdly far off), an evidence
id names no decision in the ledger, the appeal was already decided. The admin API answers those
with 409, malformed requests with 400.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from hegui.accounts.store import AccountNotFound, AccountStore
from hegui.errors import UserError
from hegui.ledger.chain import clean_text
from hegui.ledger.models import Base

ACTIONS: dict[str, str] = {"warn": "warned", "restrict": "restricted", "suspend": "suspended",
                           "restore": "good", "terminate": "terminated"}
"""Staff action → the standing it sets. ``restore`` is recorded as ``ladder.restored``."""
MAX_REASON = 500
MAX_EVIDENCE = 100
MAX_DAYS = 36500.0
_BLANK = " \t\r\n\f\v"
"""Stripped from reasons (only these: what else counts as blank differs between JSON Schema's and
Python's regular expressions, and the API must accept what its schema does)."""

_decisions = Base.metadata.tables["decisions"]
_appeals = Base.metadata.tables["appeals"]


class Conflict(UserError):
    """Well formed, but not possible given the present state (of the account, the appeal, the ledger,
    the clock)."""


def parse_until(text: str, zone: ZoneInfo) -> datetime:
    """An ISO date or date-time; without an offset it is the provider's time (``accounts.timezone``),
    a bare date meaning the start of that day."""
    value = text.strip().upper()  # RFC 3339 allows a lower-case t and z; fromisoformat does not
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(0), tzinfo=zone)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UserError(f"until: {text!r} is not an ISO date or date-time (e.g. 2026-12-31T18:00+08:00)") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)


def _known_decisions(store: AccountStore, ids: Sequence[str]) -> set[str]:
    with store.ledger.engine.connect() as conn:
        rows = conn.execute(sa.select(_decisions.c.decision_id).where(_decisions.c.decision_id.in_(list(ids)))
                            .distinct())
        return {str(r.decision_id) for r in rows}


def take_action(store: AccountStore, account_id: str, action: str, *, reason: str, actor: str, now: datetime,
                zone: ZoneInfo, until: datetime | str | None = None, days: float | None = None,
                evidence: Sequence[str] = ()) -> dict[str, Any]:
    """Apply a staff action; returns ``{"event_id", "account_id", "action", "standing", "standing_until"}``."""
    profile = store.profile(account_id)  # AccountNotFound first
    if action not in ACTIONS:
        raise UserError(f"action: unknown action {action!r} (one of {', '.join(ACTIONS)})")
    reason = clean_text(reason.strip(_BLANK)) or ""
    if not reason:
        raise UserError("reason: a reason is required (it is recorded and shown to the person)")
    if len(reason) > MAX_REASON:
        raise UserError(f"reason: {len(reason)} characters, at most {MAX_REASON}")
    ids = list(dict.fromkeys(clean_text(e.strip(_BLANK)) or "" for e in evidence if e.strip(_BLANK)))
    if len(ids) > MAX_EVIDENCE:
        raise UserError(f"evidence: {len(ids)} decision ids, at most {MAX_EVIDENCE}")
    end: datetime | None = None
    if action == "suspend":
        if (until is None) == (days is None):
            raise UserError("a suspension needs an end: give until (an ISO date-time) or days, not both")
        if days is not None:
            if not 0 < days <= MAX_DAYS:
                raise UserError(f"days: must be more than 0 and at most {MAX_DAYS:g}")
            end = now + timedelta(days=days)
        else:
            end = parse_until(until, zone) if isinstance(until, str) else until
            assert end is not None
            if end.tzinfo is None:
                end = end.replace(tzinfo=zone)
            if end <= now:
                raise Conflict(f"until: {end.isoformat()} is not in the future")
            if end > now + timedelta(days=MAX_DAYS):
                raise Conflict(f"until: {end.isoformat()} is more than {MAX_DAYS:g} days ahead "
                               "(terminate the account instead)")
        end = end.astimezone(UTC)
    elif until is not None or days is not None:
        raise UserError(f"until and days go with suspend only, not with {action}")
    if ids:
        known = _known_decisions(store, ids)
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise Conflict(f"evidence: no decision {unknown[0]} in the ledger")
    if profile.standing == "terminated" and action != "restore":
        raise Conflict(f"account {account_id} is terminated; only restore can change that")
    target = ACTIONS[action]
    event_id = store.set_standing(account_id, target, actor=actor, reason=reason, until=end, evidence=ids,
                                  kind="ladder.restored" if action == "restore" else None)
    return {"event_id": event_id, "account_id": account_id, "action": action, "standing": target,
            "standing_until": end.isoformat() if end else None}


def decide_appeal(store: AccountStore, appeal_id: str, *, restore: bool, reason: str, actor: str) -> dict[str, Any]:
    """Decide an open appeal; returns ``{"appeal_id", "account_id", "status", "standing"}``."""
    with store.ledger.engine.connect() as conn:
        status = conn.execute(sa.select(_appeals.c.status).where(_appeals.c.id == appeal_id)).scalar_one_or_none()
    if status is None:
        raise AccountNotFound(f"no appeal {appeal_id}")
    reason = clean_text(reason.strip(_BLANK)) or ""
    if not reason:
        raise UserError("reason: a reason is required (it is recorded and told to the person)")
    if len(reason) > 5000:
        raise UserError(f"reason: {len(reason)} characters, at most 5000")
    if status != "open":
        raise Conflict(f"appeal {appeal_id} was already decided ({status})")
    try:
        account_id = store.decide_appeal(appeal_id, restore=restore, actor=actor, reason=reason)
    except AccountNotFound:
        raise
    except UserError as exc:  # decided by someone else a moment ago
        raise Conflict(str(exc)) from None
    return {"appeal_id": appeal_id, "account_id": account_id, "status": "restored" if restore else "upheld",
            "standing": store.profile(account_id).standing}
