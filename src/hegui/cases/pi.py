"""A person's data: access and copy (PIPL Arts. 44-45), deletion (Art. 47), and the proof of it.

:func:`collect_person` gathers everything hegui holds on one person (an account, a verified phone's
hash, or both); :func:`export_person` packs it as a ZIP with ``data.json`` and a readable
``index.html``; :func:`erase_person` deletes it across the database in one transaction, leaving the
two hash chains verifiable (their rows become tombstones, :mod:`hegui.ledger.erasure`), then removes
the case attachment files and the vault's raw values; :func:`find_traces` scans every table, the
attachment folder and the vault for given strings, to show that nothing remains.

Staff notes on the person's cases are internal: the export says that a note exists and when, not its
text. Erasure overwrites their text (it may quote the person) and keeps the fact.
"""

from __future__ import annotations

import io
import json
import sqlite3
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from hegui.accounts.models import AccountProfile, Appeal, AppUser, Counter, OTPCode, UsageMinute
from hegui.accounts.store import VERSION_KEY
from hegui.cases.models import Case, CaseAttachment, CaseNote
from hegui.errors import UserError
from hegui.ledger.erasure import KEPT_REASON, erase_rows
from hegui.ledger.errors import LedgerError
from hegui.ledger.events import append_event
from hegui.ledger.models import Base, utcnow
from hegui.masking import TOKEN_RE

if TYPE_CHECKING:
    from hegui.ledger.store import Ledger
    from hegui.masking import TokenVault

ERASED_TEXT = "[erased]"
"""What an erased case description, reply or note reads."""
FORMAT_VERSION = 1

_t = Base.metadata.tables
_accounts, _keys = _t["accounts"], _t["api_keys"]
_profiles, _app_users = _t[AccountProfile.__tablename__], _t[AppUser.__tablename__]
_appeals, _otp = _t[Appeal.__tablename__], _t[OTPCode.__tablename__]
_usage, _counters = _t[UsageMinute.__tablename__], _t[Counter.__tablename__]
_cases, _notes, _attachments = _t[Case.__tablename__], _t[CaseNote.__tablename__], _t[CaseAttachment.__tablename__]
_decisions, _events, _meta = _t["decisions"], _t["events"], _t["ledger_meta"]

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("hegui.cases", "templates"),
    autoescape=True,  # every value is the person's or staff's text: escaped, always
    undefined=jinja2.StrictUndefined,
)


class PersonNotFound(UserError):
    """Neither the account nor the phone hash names anything hegui holds."""


@dataclass
class ErasureReport:
    """What :func:`erase_person` did: rows per table, files and vault values removed."""

    account_id: str | None
    case_id: str | None
    deleted: dict[str, int] = field(default_factory=dict)
    """Rows deleted, per table."""
    erased: dict[str, int] = field(default_factory=dict)
    """Rows kept as tombstones with their content erased, per table."""
    kept: dict[str, int] = field(default_factory=dict)
    """Chained rows whose content could not be erased (:data:`hegui.ledger.erasure.KEPT_REASON`)."""
    files: int = 0
    tokens: int = 0
    event_id: str = ""
    """The ``pi.erased`` event."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["kept_reason"] = KEPT_REASON if any(self.kept.values()) else None
        return out


# -- reading --------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _rows(conn: Connection, query: sa.Select[Any]) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in r._mapping.items()} for r in conn.execute(query)]


def _resolve(conn: Connection, account_id: str | None, phone_hash: str | None) -> tuple[str | None, str | None]:
    """Fill in the other half: the account of a phone hash, the phone hash of an account."""
    if account_id is None and phone_hash is None:
        raise ValueError("name the person by account_id or phone_hash")
    if account_id is None:
        account_id = conn.execute(sa.select(_profiles.c.account_id)
                                  .where(_profiles.c.phone_hash == phone_hash)).scalar_one_or_none()
    elif phone_hash is None:
        phone_hash = conn.execute(sa.select(_profiles.c.phone_hash)
                                  .where(_profiles.c.account_id == account_id)).scalar_one_or_none()
    return account_id, phone_hash


def _case_filter(account_id: str | None, phone_hash: str | None) -> sa.ColumnElement[bool]:
    terms = []
    if account_id is not None:
        terms.append(_cases.c.account_id == account_id)
    if phone_hash is not None:
        terms.append(_cases.c.phone_hash == phone_hash)
    return sa.or_(*terms) if terms else sa.false()


def _key_ids(conn: Connection, account_id: str | None) -> list[str]:
    if account_id is None:
        return []
    return list(conn.execute(sa.select(_keys.c.id).where(_keys.c.account_id == account_id)).scalars())


def _decision_filter(account_id: str | None, key_ids: list[str]) -> sa.ColumnElement[bool]:
    terms = []
    if account_id is not None:
        terms.append(_decisions.c.account_id == account_id)
    if key_ids:
        terms.append(_decisions.c.api_key_id.in_(key_ids))
    return sa.or_(*terms) if terms else sa.false()


def _collect(conn: Connection, account_id: str | None, phone_hash: str | None) -> dict[str, Any]:
    key_ids = _key_ids(conn, account_id)
    acc = account_id or ""
    profile = _rows(conn, sa.select(_profiles).where(_profiles.c.account_id == acc))
    for p in profile:
        # the PIN's hash is a secret; the person is told that a PIN is set
        p["guardian_pin_set"] = p.pop("guardian_pin_hash") is not None
    cases = _rows(conn, sa.select(*[c for c in _cases.c if c.name != "code_hash"])
                  .where(_case_filter(account_id, phone_hash)).order_by(_cases.c.opened_at))
    case_ids = [c["id"] for c in cases]
    notes = _rows(conn, sa.select(_notes.c.id, _notes.c.case_id, _notes.c.created_at)
                  .where(_notes.c.case_id.in_(case_ids)).order_by(_notes.c.created_at))
    files = _rows(conn, sa.select(_attachments.c.id, _attachments.c.case_id, _attachments.c.original_name,
                                  _attachments.c.media_type, _attachments.c.size, _attachments.c.sha256,
                                  _attachments.c.created_at)
                  .where(_attachments.c.case_id.in_(case_ids)).order_by(_attachments.c.created_at))
    for c in cases:
        c["notes"] = [{"id": n["id"], "created_at": n["created_at"]} for n in notes if n["case_id"] == c["id"]]
        c["attachments"] = [{k: v for k, v in f.items() if k != "case_id"} for f in files if f["case_id"] == c["id"]]
    events = _rows(conn, sa.select(_events.c.event_id, _events.c.seq, _events.c.kind, _events.c.actor,
                                   _events.c.data, _events.c.created_at)
                   .where(_events.c.account_id == acc).order_by(_events.c.seq))
    usage: dict[str, list[int]] = {}
    for r in conn.execute(sa.select(_usage.c.day, _usage.c.minute).where(_usage.c.account_id == acc)
                          .order_by(_usage.c.day, _usage.c.minute)):
        usage.setdefault(r.day, []).append(int(r.minute))
    return {
        "format": FORMAT_VERSION,
        "generated_at": utcnow().isoformat(),
        "subject": {"account_id": account_id, "phone_hash": phone_hash},
        "account": next(iter(_rows(conn, sa.select(_accounts).where(_accounts.c.id == acc))), None),
        "profile": profile[0] if profile else None,
        "api_keys": _rows(conn, sa.select(_keys.c.id, _keys.c.name, _keys.c.prefix, _keys.c.admin, _keys.c.public,
                                          _keys.c.created_at, _keys.c.revoked_at)
                          .where(_keys.c.account_id == acc).order_by(_keys.c.created_at)),
        "app_users": _rows(conn, sa.select(_app_users.c.app_id, _app_users.c.created_at)
                           .where(_app_users.c.account_id == acc)),
        "appeals": _rows(conn, sa.select(_appeals).where(_appeals.c.account_id == acc)
                         .order_by(_appeals.c.created_at)),
        "otp_codes": _rows(conn, sa.select(_otp.c.id, _otp.c.purpose, _otp.c.attempts, _otp.c.created_at,
                                           _otp.c.expires_at, _otp.c.consumed_at)
                           .where(_otp.c.phone_hash == (phone_hash or "")).order_by(_otp.c.created_at)),
        "usage_minutes": [{"day": d, "minutes": m} for d, m in usage.items()],
        "counters": _rows(conn, sa.select(_counters).where(_counters.c.key.contains(acc, autoescape=True))
                          if account_id else sa.select(_counters).where(sa.false())),
        "agreements": {
            "accepted": (profile[0].get("accepted") or {}) if profile else {},
            "acceptances": [e for e in events if e["kind"] == "agreement.accepted"],
        },
        "decisions": _rows(conn, sa.select(_decisions.c.decision_id, _decisions.c.kind, _decisions.c.created_at,
                                           _decisions.c.direction, _decisions.c.scene, _decisions.c.action,
                                           _decisions.c.risks, _decisions.c.excerpt, _decisions.c.erased_at)
                           .where(_decision_filter(account_id, key_ids))
                           .order_by(_decisions.c.seq)),
        "events": events,
        "cases": cases,
    }


def collect_person(ledger: Ledger, *, account_id: str | None, phone_hash: str | None) -> dict[str, Any]:
    """Everything hegui holds on one person, named by account id and/or verified phone's hash, as
    plain JSON-ready data. Secrets are left out (key hashes, code hashes, the guardian PIN's hash,
    case codes); excerpts are as stored (already masked). Raises :class:`PersonNotFound` when
    nothing is held."""
    try:
        with ledger.engine.connect() as conn, conn.begin():
            account_id, phone_hash = _resolve(conn, account_id, phone_hash)
            data = _collect(conn, account_id, phone_hash)
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot read the person's data: {str(exc).splitlines()[0]}") from exc
    if data["account"] is None and not data["cases"] and not data["otp_codes"]:
        raise PersonNotFound(f"no data held for {_who(account_id, phone_hash)}")
    return data


def _who(account_id: str | None, phone_hash: str | None) -> str:
    return f"account {account_id}" if account_id else f"phone hash {(phone_hash or '')[:12]}…"


def export_person(ledger: Ledger, *, account_id: str | None, phone_hash: str | None) -> bytes:
    """The person's copy (PIPL Art. 45): a ZIP with ``data.json`` (:func:`collect_person`, UTF-8,
    indented) and ``index.html``, the same data as a readable page in Chinese and English."""
    data = collect_person(ledger, account_id=account_id, phone_hash=phone_hash)
    page = _templates.get_template("pi_export.html").render(
        data=data, pretty=lambda v: json.dumps(v, ensure_ascii=False, indent=2, sort_keys=True))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.json", json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True))
        zf.writestr("index.html", page)
    return buf.getvalue()


# -- erasing --------------------------------------------------------------------------------------


def _ids(conn: Connection, table: sa.Table, where: sa.ColumnElement[bool]) -> list[int]:
    return [int(i) for i in conn.execute(sa.select(table.c.id).where(where)).scalars()]


def _tokens_in(conn: Connection, where: sa.ColumnElement[bool]) -> set[str]:
    found: set[str] = set()
    for r in conn.execute(sa.select(_decisions.c.excerpt, _decisions.c.findings).where(where)):
        found.update(TOKEN_RE.findall(r.excerpt or ""))
        found.update(TOKEN_RE.findall(json.dumps(r.findings, ensure_ascii=False)))
    return found


def _erase(conn: Connection, account_id: str | None, phone_hash: str | None, report: ErasureReport,
           actor: str) -> tuple[list[str], set[str]]:
    """The database part of :func:`erase_person`; returns the attachment files and vault tokens to
    remove once it has committed."""
    key_ids = _key_ids(conn, account_id)
    in_decisions = _decision_filter(account_id, key_ids)
    tokens = _tokens_in(conn, in_decisions)
    case_ids = list(conn.execute(sa.select(_cases.c.id).where(_case_filter(account_id, phone_hash))).scalars())
    in_cases = _attachments.c.case_id.in_(case_ids)
    files = list(conn.execute(sa.select(_attachments.c.stored_name).where(in_cases)).scalars())

    def delete(table: sa.Table, where: sa.ColumnElement[bool]) -> None:
        report.deleted[table.name] = report.deleted.get(table.name, 0) + conn.execute(
            sa.delete(table).where(where)).rowcount

    delete(_attachments, in_cases)
    report.erased["case_notes"] = conn.execute(
        sa.update(_notes).where(_notes.c.case_id.in_(case_ids)).values(text=ERASED_TEXT)).rowcount
    # the case stays as a tombstone (kind, status, dates: the handling is accountable); what the
    # person wrote, how to reach them and who they are go
    report.erased["cases"] = conn.execute(
        sa.update(_cases).where(_cases.c.id.in_(case_ids))
        .values(description=ERASED_TEXT, reference="", contact=None, account_id=None, phone_hash=None,
                reply=sa.case((_cases.c.reply.is_(None), None), else_=ERASED_TEXT))).rowcount
    if phone_hash is not None:
        delete(_otp, _otp.c.phone_hash == phone_hash)
    if account_id is not None:
        delete(_usage, _usage.c.account_id == account_id)
        delete(_counters, _counters.c.key.contains(account_id, autoescape=True))
        # children first: SQLite enforces ON DELETE CASCADE only with PRAGMA foreign_keys
        delete(_app_users, sa.or_(_app_users.c.account_id == account_id, _app_users.c.app_id == account_id))
        delete(_appeals, _appeals.c.account_id == account_id)
        delete(_keys, _keys.c.account_id == account_id)
        delete(_profiles, _profiles.c.account_id == account_id)
        delete(_accounts, _accounts.c.id == account_id)
    in_events = _events.c.account_id == account_id if account_id is not None else sa.false()
    for table, where in (("decisions", in_decisions), ("events", in_events)):
        done = erase_rows(conn, table, _ids(conn, _t[table], where))
        report.erased[table] = done.erased + done.already
        report.kept[table] = len(done.kept)
    counts = {"deleted": dict(report.deleted), "erased": dict(report.erased), "kept": dict(report.kept),
              "files": len(files), "tokens": len(tokens)}
    report.event_id = append_event(conn, "pi.erased", None, actor, {"case": report.case_id, "counts": counts})
    # cached profiles on every worker are refreshed (see hegui.accounts.gate)
    conn.execute(sa.update(_meta).where(_meta.c.key == VERSION_KEY)
                 .values(value=sa.cast(sa.cast(_meta.c.value, sa.Integer) + 1, sa.Text)))
    return files, tokens


def erase_person(ledger: Ledger, *, account_id: str | None, phone_hash: str | None, attachments_dir: Path,
                 vault: TokenVault | None, actor: str, case_id: str | None) -> ErasureReport:
    """Delete the person's data (PIPL Art. 47) in one transaction: the account with its profile, keys,
    app links and appeals; one-time codes of the phone; usage minutes and counters; attachments of
    their cases; the person's text, contact and identity on those cases (kept as tombstones); the
    content of their decisions and events (tombstones that keep both chains verifiable). Then, once
    committed, the attachment files and the vault values behind the tokens in their decisions.
    Appends one ``pi.erased`` event (``case_id`` and counts only). Raises :class:`PersonNotFound`
    when nothing is held."""
    report = ErasureReport(account_id=account_id, case_id=case_id)
    sqlite = ledger.engine.dialect.name == "sqlite"
    try:
        with ledger.engine.connect() as conn:
            if sqlite:
                # overwrite what is deleted or shortened, so it does not linger in free pages
                # (straight on the driver: a pragma through SQLAlchemy would open a transaction)
                raw: Any = conn.connection.driver_connection
                raw.execute("PRAGMA secure_delete=ON")
                conn.execution_options(sqlite_begin="IMMEDIATE")
            try:
                with conn.begin():
                    account_id, phone_hash = _resolve(conn, account_id, phone_hash)
                    report.account_id = account_id
                    held = conn.execute(sa.select(_accounts.c.id).where(_accounts.c.id == (account_id or ""))).first()
                    any_case = conn.execute(sa.select(_cases.c.id)
                                            .where(_case_filter(account_id, phone_hash)).limit(1)).first()
                    if held is None and any_case is None and phone_hash is None:
                        raise PersonNotFound(f"no data held for {_who(account_id, phone_hash)}")
                    files, tokens = _erase(conn, account_id, phone_hash, report, actor)
            finally:
                if sqlite:
                    raw.execute("PRAGMA secure_delete=OFF")
            if sqlite:
                # fold the log back so the old pages are not kept in the -wal file either
                raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except (UserError, LedgerError):
        raise
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot erase the person's data: {str(exc).splitlines()[0]}") from exc
    for name in files:
        path = attachments_dir / name
        if path.is_file():
            path.unlink()
            report.files += 1
    if vault is not None:
        report.tokens = vault.forget_tokens(tokens)
    return report


# -- proving --------------------------------------------------------------------------------------


def _text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _scan_tables(ledger: Ledger, needles: list[str]) -> Iterator[str]:
    meta = sa.MetaData()
    with ledger.engine.connect() as conn:
        meta.reflect(conn)
        for table in meta.sorted_tables:
            for row in conn.execute(sa.select(table)):
                for col, value in row._mapping.items():
                    if value is None or isinstance(value, bool | int | float | datetime):
                        continue
                    text = _text_of(value)
                    # JSON may have been stored with \u escapes; read back it is plain text again
                    for n in needles:
                        if n in text:
                            yield f"{n!r} in table {table.name}, column {col}"


def _scan_files(paths: Iterable[Path], needles: list[str], what: str) -> Iterator[str]:
    for path in paths:
        if not path.is_file():
            continue
        data = path.read_bytes()
        for n in needles:
            if n.encode("utf-8") in data or n in path.name:
                yield f"{n!r} in {what} {path.name}"


def _sqlite_files(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-journal")]


def find_traces(ledger: Ledger, *, needles: list[str], attachments_dir: Path | None,
                vault_path: Path | None) -> list[str]:
    """Where any of ``needles`` still occurs: every column of every table of the ledger database
    (reflected, so tables added later are covered), the raw bytes of a SQLite ledger file and its
    log, every file (name and content) in ``attachments_dir``, and the vault (its rows and its raw
    file). An empty list is the proof that nothing of them remains."""
    needles = [n for n in needles if n]
    found = list(_scan_tables(ledger, needles))
    db = ledger.engine.url.database
    if ledger.engine.dialect.name == "sqlite" and db and db != ":memory:":
        found += _scan_files(_sqlite_files(Path(db)), needles, "ledger file")
    if attachments_dir is not None and attachments_dir.is_dir():
        found += _scan_files(sorted(p for p in attachments_dir.rglob("*")), needles, "attachment")
    if vault_path is not None and vault_path.is_file():
        with sqlite3.connect(vault_path) as vdb:
            for row in vdb.execute("SELECT token, kind, value FROM tokens"):
                for n in needles:
                    if any(n in str(v) for v in row):
                        found.append(f"{n!r} in the vault")
        vdb.close()
        found += _scan_files(_sqlite_files(vault_path), needles, "vault file")
    return found
