"""What staff do about a case, the same through the admin API and the CLI: enforce on an account
(the ladder), add a lexicon or allow-list entry, request a takedown, open an incident, fulfil a
personal-information request.

Each action does its work through the module that owns it (:mod:`hegui.accounts.staff`,
:mod:`hegui.cases.lexicon_entries`, :mod:`hegui.cases.takedown`, :mod:`hegui.cases.incidents`,
:mod:`hegui.cases.pi`) and is then recorded on the case as ``case.action.<kind>`` with the ids of
what it made, so a case's history says what was done about it.
"""

from __future__ import annotations

import hashlib
import importlib
import secrets
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from hegui.accounts import staff
from hegui.accounts.store import AccountStore
from hegui.cases.store import CaseRefused, CaseStore, CaseView
from hegui.cases.takedown import TakedownOutcome, send_takedown
from hegui.errors import UserError
from hegui.ledger.models import Base

if TYPE_CHECKING:
    from hegui.cases.config import TakedownConfig
    from hegui.masking import TokenVault

_decisions = Base.metadata.tables["decisions"]

ENFORCE_STEPS: tuple[str, ...] = ("warn", "restrict", "suspend", "terminate")
ACTIONS: tuple[str, ...] = ("enforce", "lexicon", "allow", "takedown", "incident")
MAX_ENTRY = 200
MAX_NOTE = 500
MAX_TITLE = 300


class NotAvailable(UserError):
    """The module an action needs is not installed in this build (HTTP 501)."""


def _module_attr(module: str, name: str) -> Any:
    # The lexicon entries, incidents and PI modules are built beside this one; until they land the
    # action says so instead of failing on import.
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise NotAvailable(f"{module}.{name} is not available in this build") from None


def decision_reference(cases: CaseStore, case: CaseView) -> list[str]:
    """The case's reference as evidence: ``[decision id]`` when it names a decision in the ledger."""
    ref = case.reference.strip()
    if not ref or len(ref) > 64 or any(ch.isspace() for ch in ref):
        return []
    with cases.ledger.engine.connect() as conn:
        found = conn.execute(sa.select(_decisions.c.decision_id).where(_decisions.c.decision_id == ref)
                             .limit(1)).first()
    return [ref] if found is not None else []


def enforce(cases: CaseStore, accounts: AccountStore, case_id: str, *, step: str, reason: str, actor: str,
            now: datetime, zone: ZoneInfo, account_id: str | None = None,
            days: float | None = None) -> dict[str, Any]:
    """A step on the ladder for the case's account (or ``account_id``), the case's decision as evidence."""
    case = cases.get(case_id, with_details=False)
    if step not in ENFORCE_STEPS:
        raise UserError(f"step: {step!r} is not one of {', '.join(ENFORCE_STEPS)}")
    account = account_id or case.account_id
    if not account:
        raise UserError(f"account_id: case {case_id} names no account; give the account to act on")
    evidence = decision_reference(cases, case)
    done = staff.take_action(accounts, account, step, reason=reason, actor=actor, now=now, zone=zone,
                             days=days, evidence=evidence)
    event = cases.record(case_id, "enforce", {"account": account, "step": step, "ladder_event": done["event_id"],
                                              "evidence": evidence}, actor=actor, now=now)
    return {"action": "enforce", "case_event": event, **done}


def add_list_entry(cases: CaseStore, case_id: str, *, list_name: Literal["block", "allow"], text: str,
                   risk: str | None, note: str, actor: str) -> dict[str, Any]:
    """A lexicon (``block``) or allow-list entry made from the case; every gateway picks it up."""
    cases.get(case_id, with_details=False)
    text = text.strip()
    if not text or len(text) > MAX_ENTRY:
        raise UserError(f"text: an entry has 1 to {MAX_ENTRY} characters")
    if list_name == "block" and not (risk or "").strip():
        raise UserError("risk: a lexicon entry needs its risk code (e.g. A.1.3)")
    add_entry = _module_attr("hegui.cases.lexicon_entries", "add_entry")
    entry_id = str(add_entry(cases.ledger, list=list_name, text=text, risk=risk if list_name == "block" else None,
                             note=note[:MAX_NOTE], case_id=case_id, actor=actor))
    kind = "lexicon" if list_name == "block" else "allow"
    event = cases.record(case_id, kind, {"entry": entry_id, "list": list_name,
                                         "risk": risk if list_name == "block" else None}, actor=actor)
    return {"action": kind, "entry_id": entry_id, "case_event": event}


async def takedown(cases: CaseStore, cfg: TakedownConfig, case_id: str, *, target: str, reason: str, actor: str,
                   request_id: str | None = None, **send: Any) -> dict[str, Any]:
    """Send the takedown and record its outcome, sent or not. Blocking store calls run in the caller's
    thread: the API wraps :func:`takedown_checked` and :func:`record_takedown` in worker threads."""
    takedown_checked(cases, case_id, target=target, reason=reason)
    outcome = await send_takedown(cfg, case_id=case_id, target=target.strip(), reason=reason.strip(),
                                  request_id=request_id or new_request_id(), **send)
    return record_takedown(cases, case_id, outcome, target=target, actor=actor)


def new_request_id() -> str:
    return "td_" + secrets.token_hex(8)


def takedown_checked(cases: CaseStore, case_id: str, *, target: str, reason: str) -> None:
    cases.get(case_id, with_details=False)
    if not target.strip() or len(target) > MAX_NOTE:
        raise UserError(f"target: give the content to take down (1 to {MAX_NOTE} characters)")
    if not reason.strip() or len(reason) > MAX_NOTE:
        raise UserError(f"reason: give the reason (1 to {MAX_NOTE} characters)")


def record_takedown(cases: CaseStore, case_id: str, outcome: TakedownOutcome, *, target: str,
                    actor: str) -> dict[str, Any]:
    event = cases.record(case_id, "takedown", {"target": target.strip(), **outcome.to_dict()}, actor=actor)
    return {"action": "takedown", "case_event": event, **outcome.to_dict()}


def incident(cases: CaseStore, case_id: str, *, title: str, summary: str, actor: str) -> dict[str, Any]:
    """An incident (Art. 14) opened from the case, with the case's decision as its first evidence."""
    case = cases.get(case_id, with_details=False)
    title = title.strip()
    if not title or len(title) > MAX_TITLE:
        raise UserError(f"title: an incident title has 1 to {MAX_TITLE} characters")
    open_incident = _module_attr("hegui.cases.incidents", "open_incident")
    incident_id = str(open_incident(cases.ledger, title=title, summary=summary.strip(),
                                    decision_ids=decision_reference(cases, case), case_id=case_id, actor=actor))
    event = cases.record(case_id, "incident", {"incident": incident_id}, actor=actor)
    return {"action": "incident", "incident_id": incident_id, "case_event": event}


# -- personal-information requests ---------------------------------------------------------------------

FULFILLED_BY_HAND = ("correct", "supplement")
DEFAULT_ERASE_REPLY = "已按您的请求删除您的个人信息。/ Your personal information has been deleted as you asked."


def pi_case(cases: CaseStore, case_id: str) -> CaseView:
    case = cases.get(case_id, with_details=False)
    if case.kind != "pi_request":
        raise CaseRefused(f"case {case_id} is a {case.kind}, not a personal-information request")
    if case.status == "closed":
        raise CaseRefused(f"case {case_id} is closed: reopen it first")
    if case.pi_action in FULFILLED_BY_HAND:
        raise CaseRefused(f"case {case_id} asks to {case.pi_action} information: make the change and reply "
                          "to the case (no automatic fulfilment)")
    return case


def withdraw_consent(cases: CaseStore, accounts: AccountStore, case: CaseView, *, actor: str) -> dict[str, Any]:
    """Consent withdrawn: the person's records are left out of training from now on."""
    if not case.account_id:
        raise CaseRefused(f"case {case.id} names no account whose consent could be withdrawn")
    consent_event = accounts.set_training_opt_out(case.account_id, True, actor=actor)
    event = cases.record(case.id, "withdraw_consent", {"account": case.account_id, "consent_event": consent_event},
                         actor=actor)
    return {"action": "withdraw_consent", "account_id": case.account_id, "case_event": event}


def export_person(cases: CaseStore, case: CaseView, *, actor: str) -> bytes:
    """The ZIP of what hegui holds about the person (access and copy requests), recorded on the case."""
    export = _module_attr("hegui.cases.pi", "export_person")
    blob = bytes(export(cases.ledger, account_id=case.account_id, phone_hash=case.phone_hash))
    cases.record(case.id, "export", {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}, actor=actor)
    return blob


def erase_person(cases: CaseStore, case: CaseView, *, actor: str, reply: str, attachments_dir: Path,
                 vault: TokenVault | None) -> dict[str, Any]:
    """Erase the person's data (:func:`hegui.cases.pi.erase_person`), then reply to the case."""
    erase = _module_attr("hegui.cases.pi", "erase_person")
    not_found = _module_attr("hegui.cases.pi", "PersonNotFound")
    try:
        report = erase(cases.ledger, account_id=case.account_id, phone_hash=case.phone_hash,
                       attachments_dir=attachments_dir, vault=vault, actor=actor, case_id=case.id)
    except not_found as exc:  # nothing held: reply to the case by hand, saying so
        raise CaseRefused(f"case {case.id}: {exc}") from None
    done = report.to_dict()
    cases.record(case.id, "erase", {"pi_event": done.get("event_id"), "deleted": done.get("deleted"),
                                    "erased": done.get("erased"), "kept": done.get("kept")}, actor=actor)
    event = cases.reply(case.id, reply, actor=actor)
    return {"action": "erase", "report": done, "case_event": event}
