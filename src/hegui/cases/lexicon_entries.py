"""Staff lexicon and allow-list entries in the ledger database, in force at once on every gateway.

An entry is added from a complaint case (or the console, or ``hegui lexicon entries add``): a
``block`` keyword with its risk, or an ``allow`` phrase that suppresses hits inside it. Each change is
one transaction that writes the ``lexicon_entries`` row, bumps ``ledger_meta.lexicon_version`` and
appends a ``lexicon.entry_added`` / ``lexicon.entry_removed`` event to the hash-chained ``events``
table. Removal marks the row (``removed_at``); rows are never deleted, so the history stays readable.

Events carry the entry's id, list, risk and case, and the SHA-256 of its text, not the text itself:
a staff entry may be a person's name or handle (a harassment campaign), and the chain cannot be
edited later. The text stays in the entry's row; an audit joins event and row by id and checks the
hash.

Every gateway worker runs a :class:`LexiconSync`: it polls the version off the event loop every
``lexicon.db_sync_seconds`` and, when it changed, rebuilds its lexicon with the active entries beside
the files (also off the event loop), so requests never read the database for this.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy import Connection

from hegui.cases.models import Case, LexiconEntry
from hegui.detectors.lexicon import ExtraBlockEntry, ExtraEntries, too_long
from hegui.detectors.lexicon_files import known_code
from hegui.errors import UserError
from hegui.ledger.events import append_event
from hegui.ledger.models import Base, utcnow
from hegui.text import normalize

if TYPE_CHECKING:
    from hegui.ledger.store import Ledger

log = logging.getLogger("hegui.lexicon")

_entries = Base.metadata.tables[LexiconEntry.__tablename__]
_cases = Base.metadata.tables[Case.__tablename__]
_meta = Base.metadata.tables["ledger_meta"]

VERSION_KEY = "lexicon_version"
LISTS: tuple[str, ...] = ("block", "allow")
ListName = Literal["block", "allow"]
MAX_TEXT = 200
MAX_NOTE = 500
MAX_ACTOR = 128
# The same debris the file loader drops (lexicon_files._Builder): control characters never survive
# normalisation, so they would only make two equal entries look different.
RETRY_SECONDS = 30.0
"""A rebuild that failed with the same entries is tried again after this long (or on their next change)."""
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class EntryRefused(UserError):
    """An entry that cannot be added: bad text, risk, list or case, or a duplicate."""


class EntryNotFound(UserError):
    pass


@dataclass(frozen=True)
class StaffEntry:
    id: str
    list: str
    text: str
    risk: str | None
    note: str
    case_id: str | None
    added_by: str
    created_at: datetime
    removed_at: datetime | None
    removed_by: str | None

    @property
    def active(self) -> bool:
        return self.removed_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "list": self.list, "text": self.text, "risk": self.risk, "note": self.note,
            "case_id": self.case_id, "added_by": self.added_by, "created_at": self.created_at.isoformat(),
            "removed_at": self.removed_at.isoformat() if self.removed_at else None, "removed_by": self.removed_by,
        }


def _entry(r: Any) -> StaffEntry:
    return StaffEntry(id=r.id, list=r.list, text=r.text, risk=r.risk, note=r.note or "", case_id=r.case_id,
                      added_by=r.added_by, created_at=r.created_at, removed_at=r.removed_at,
                      removed_by=r.removed_by)


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _pattern(text: str) -> str:
    """What the lexicon matches for ``text`` (the detector normalises entries exactly so)."""
    return normalize(text).text.strip()


def _write(ledger: Ledger, fn: Callable[[Connection], str]) -> str:
    def bumped(conn: Connection) -> str:
        # Bump first: the row lock it takes on PostgreSQL serialises concurrent changes, so the
        # duplicate check in ``fn`` sees every entry committed before this one.
        conn.execute(sa.update(_meta).where(_meta.c.key == VERSION_KEY)
                     .values(value=sa.cast(sa.cast(_meta.c.value, sa.Integer) + 1, sa.Text)))
        return fn(conn)

    return ledger.transaction(bumped, "change the lexicon entries")


def _clean_actor(actor: str) -> str:
    actor = actor.strip()
    if not actor or len(actor) > MAX_ACTOR:
        raise EntryRefused(f"actor: must have 1 to {MAX_ACTOR} characters")
    return actor


def add_entry(ledger: Ledger, *, list: ListName, text: str, risk: str | None, note: str = "",
              case_id: str | None = None, actor: str) -> str:
    """Add a ``block`` keyword (with its risk code) or an ``allow`` phrase; returns its id (``lx_…``).
    Raises :class:`EntryRefused` for bad input or an active entry of the same list that matches the
    same normalised text."""
    if list not in LISTS:
        raise EntryRefused(f"list: {list!r} is not one of {', '.join(LISTS)}")
    text = _CONTROL.sub("", text).strip()
    pattern = _pattern(text)
    if not pattern:
        raise EntryRefused("text: empty after normalisation (nothing a lexicon could match)")
    if len(text) > MAX_TEXT:
        raise EntryRefused(f"text: longer than {MAX_TEXT} characters")
    if too_long(text):
        raise EntryRefused("text: longer than the standard's keyword length (10 Chinese characters or 5 words)")
    code: str | None = None
    if list == "block":
        if risk is None or not risk.strip():
            raise EntryRefused("risk: a block entry needs a risk code (A1a…A2i, see `hegui risks`)")
        code = known_code(risk)
        if code is None:
            raise EntryRefused(f"risk: unknown risk code {risk!r} (see `hegui risks`)")
    elif risk is not None and risk.strip():
        raise EntryRefused("risk: an allow entry takes no risk")
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise EntryRefused(f"note: longer than {MAX_NOTE} characters")
    actor = _clean_actor(actor)
    case_id = case_id.strip() if case_id else None
    entry_id = "lx_" + secrets.token_hex(8)
    now = utcnow()

    def change(conn: Connection) -> str:
        if case_id is not None and conn.execute(
                sa.select(_cases.c.id).where(_cases.c.id == case_id)).first() is None:
            raise EntryRefused(f"case: no case {case_id}")
        active = conn.execute(sa.select(_entries.c.id, _entries.c.text).where(
            _entries.c.list == list, _entries.c.removed_at.is_(None))).all()
        same = next((r.id for r in active if _pattern(r.text) == pattern), None)
        if same is not None:
            raise EntryRefused(f"text: the {list} list already has it (entry {same})")
        conn.execute(sa.insert(_entries).values(id=entry_id, list=list, text=text, risk=code, note=note,
                                                case_id=case_id, added_by=actor, created_at=now))
        if case_id is not None:
            conn.execute(sa.update(_cases).where(_cases.c.id == case_id).values(updated_at=now))
        append_event(conn, "lexicon.entry_added", None, actor, {
            "entry": entry_id, "list": list, "risk": code, "case": case_id, "text_sha256": text_sha256(text)},
            created_at=now)
        return entry_id

    return _write(ledger, change)


def remove_entry(ledger: Ledger, entry_id: str, *, actor: str) -> None:
    """Take an entry out of force (the row stays, marked removed). Raises :class:`EntryNotFound`."""
    actor = _clean_actor(actor)
    now = utcnow()

    def change(conn: Connection) -> str:
        r = conn.execute(sa.select(_entries).where(_entries.c.id == entry_id)).one_or_none()
        if r is None:
            raise EntryNotFound(f"no lexicon entry {entry_id}")
        if r.removed_at is not None:
            raise EntryNotFound(f"lexicon entry {entry_id} was already removed")
        conn.execute(sa.update(_entries).where(_entries.c.id == entry_id)
                     .values(removed_at=now, removed_by=actor))
        return append_event(conn, "lexicon.entry_removed", None, actor, {
            "entry": entry_id, "list": r.list, "risk": r.risk, "case": r.case_id,
            "text_sha256": text_sha256(r.text)}, created_at=now)

    _write(ledger, change)


def _select_entries(conn: Connection, include_removed: bool) -> list[StaffEntry]:
    q = sa.select(_entries).order_by(_entries.c.created_at, _entries.c.id)
    if not include_removed:
        q = q.where(_entries.c.removed_at.is_(None))
    return [_entry(r) for r in conn.execute(q)]


def entries(ledger: Ledger, *, include_removed: bool = False) -> list[StaffEntry]:
    """Entries in the order they were added; the active ones unless ``include_removed``."""
    with ledger.engine.connect() as conn:
        return _select_entries(conn, include_removed)


def _read_version(conn: Connection) -> int:
    v = conn.execute(sa.select(_meta.c.value).where(_meta.c.key == VERSION_KEY)).scalar_one_or_none()
    return int(v) if v is not None else 0


def version(ledger: Ledger) -> int:
    """Bumped by every change; gateways compare it to know when to rebuild."""
    with ledger.engine.connect() as conn:
        return _read_version(conn)


def extra_entries(rows: list[StaffEntry]) -> ExtraEntries:
    """The active entries as the lexicon detector takes them."""
    return ExtraEntries(
        block=tuple(ExtraBlockEntry(e.id, e.text, e.risk) for e in rows
                    if e.active and e.list == "block" and e.risk),
        allow=tuple(e.text for e in rows if e.active and e.list == "allow"),
    )


def snapshot(ledger: Ledger) -> tuple[int, ExtraEntries]:
    """The version and the active entries. The version is read first, so a change that lands between
    the two reads leaves an older version beside newer entries, and the next poll reads again."""
    with ledger.engine.connect() as conn:
        v = _read_version(conn)
        rows = _select_entries(conn, False)
    return v, extra_entries(rows)


class LexiconSync:
    """Keeps one worker's lexicon in step with the staff entries: :meth:`load` at startup, then a
    background poll every ``seconds``. ``apply`` rebuilds the lexicon (``Moderator.use_lexicon_entries``);
    ``on_change`` runs on the event loop after a rebuild by the poll (the gateway drops its cached
    verdicts)."""

    def __init__(self, ledger: Ledger, apply: Callable[[ExtraEntries], object], seconds: float,
                 on_change: Callable[[], None] | None = None) -> None:
        self.ledger = ledger
        self.apply = apply
        self.seconds = seconds
        self.on_change = on_change
        self.version: int | None = None
        self.last_error: str | None = None
        self.last_reload_ms: float | None = None
        """How long the last rebuild took (reading the entries and compiling), in milliseconds."""
        self._poller: asyncio.Task[None] | None = None
        self._failed_version: int | None = None
        self._retry_at = 0.0

    def load(self) -> bool:
        """Read the entries and rebuild if the version moved since the last look; returns whether it
        rebuilt. Blocking (run it in a thread on the event loop). Errors propagate; the lexicon in
        force stays as it was."""
        current = version(self.ledger)
        if current == self.version:
            return False
        if current == self._failed_version and time.monotonic() < self._retry_at:
            return False  # the same entries failed to build a moment ago (a broken file?): do not spin
        t0 = time.perf_counter()
        v, extra = snapshot(self.ledger)
        if self.version is None and not extra.block and not extra.allow:
            self.version = v  # nothing to add to what the files give: skip the rebuild at startup
            return False
        try:
            self.apply(extra)
        except Exception:
            self._failed_version, self._retry_at = v, time.monotonic() + RETRY_SECONDS
            raise
        self._failed_version = None
        self.last_reload_ms = (time.perf_counter() - t0) * 1000
        self.version = v
        log.info("lexicon: %d staff entries in force (version %d, rebuilt in %.0f ms)",
                 len(extra.block) + len(extra.allow), v, self.last_reload_ms)
        return True

    async def refresh(self) -> bool:
        """:meth:`load` off the event loop; a failure is logged once (until it changes or clears) and
        the previous lexicon stays in force."""
        try:
            changed = await asyncio.to_thread(self.load)
        except Exception as exc:
            message = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            if message != self.last_error:
                log.warning("lexicon: staff entries not reloaded, the previous lexicon stays in force: %s", message)
            self.last_error = message
            return False
        self.last_error = None
        if self.on_change is not None and changed:
            # On the event loop, where the verdict cache lives; a check that ran on the old lexicon
            # while it was swapped is not cached after this (VerdictCache.generation).
            self.on_change()
        return changed

    async def start(self) -> None:
        if self._poller is None:
            self._poller = asyncio.ensure_future(self._poll())

    async def aclose(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(BaseException):
                await self._poller
            self._poller = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.seconds)
            await self.refresh()
