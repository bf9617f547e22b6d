"""Saving the policy file from the console, and every gateway picking the save up without a restart.

A save checks the text with :func:`hegui.policy.parse_policy` (nothing is written when it is
invalid), keeps the file in force as ``<file>.<UTC timestamp>.bak``, writes the new text atomically
(a temporary file in the same folder, fsynced, then ``os.replace``), and in one transaction bumps
``ledger_meta.policy_version`` and appends a ``policy.saved`` event (the file, the SHA-256 of the old
and new text, the backup's name).

The process that saved reloads at once. Every other gateway worker on the same database runs a
:class:`PolicySync`, which polls the version off the event loop every ``lexicon.db_sync_seconds`` (the
same cadence as the staff lexicon entries, :class:`hegui.cases.lexicon_entries.LexiconSync`) and, when
it moved, re-reads its own ``policy:`` file (``Moderator.reload``). Workers on other hosts must see the
same file (a shared volume or a deployment that copies it); the version only says *when* to re-read.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from hegui.errors import ConfigError, UserError
from hegui.ledger.errors import LedgerError
from hegui.ledger.events import append_event
from hegui.ledger.models import Base, utcnow
from hegui.policy import parse_policy

if TYPE_CHECKING:
    from hegui.ledger.store import Ledger

log = logging.getLogger("hegui.policy")

VERSION_KEY = "policy_version"
MAX_POLICY_BYTES = 1024 * 1024
_meta = Base.metadata.tables["ledger_meta"]


class PolicyRefused(UserError):
    """A policy edit that was not saved (invalid, too large, or nowhere to write it)."""


@dataclass(frozen=True)
class SavedPolicy:
    path: Path
    backup: Path | None
    """The previous file, kept beside it; None when there was no file yet."""
    version: int
    event_id: str


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_version(ledger: Ledger) -> int:
    try:
        with ledger.engine.connect() as conn:
            v = conn.execute(sa.select(_meta.c.value).where(_meta.c.key == VERSION_KEY)).scalar_one_or_none()
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot read the policy version: {str(exc).splitlines()[0]}") from exc
    return int(v) if v is not None else 0


def save_policy(ledger: Ledger, path: Path, text: str, *, actor: str, now: datetime | None = None) -> SavedPolicy:
    """Check ``text`` as a policy and write it to ``path`` (see the module docstring). Raises
    :class:`PolicyRefused` with the line-numbered error when it is not a valid policy; the file in
    force is then untouched."""
    text = text.replace("\r\n", "\n")
    data = text.encode("utf-8")
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyRefused(f"policy: larger than {MAX_POLICY_BYTES // 1024} KiB")
    try:
        parse_policy(text, path.name)
    except ConfigError as exc:
        raise PolicyRefused(str(exc)) from None
    if not path.parent.is_dir():
        raise PolicyRefused(f"{path.parent}: no such folder (the config's `policy:` points there)")
    now = now or utcnow()
    old = path.read_bytes() if path.is_file() else None
    backup: Path | None = None
    if old is not None:
        backup = path.with_name(f"{path.name}.{now.strftime('%Y%m%dT%H%M%S%fZ')}.bak")
        backup.write_bytes(old)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if old is not None:
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    try:
        with ledger.engine.connect() as conn:
            if ledger.engine.dialect.name == "sqlite":
                conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                bumped = conn.execute(sa.update(_meta).where(_meta.c.key == VERSION_KEY).values(
                    value=sa.cast(sa.cast(_meta.c.value, sa.Integer) + 1, sa.Text)))
                if bumped.rowcount == 0:
                    conn.execute(sa.insert(_meta).values(key=VERSION_KEY, value="1"))
                version = int(conn.execute(sa.select(_meta.c.value).where(_meta.c.key == VERSION_KEY)).scalar_one())
                event_id = append_event(conn, "policy.saved", None, actor, {
                    "file": str(path), "sha256": _sha256(data), "previous_sha256": _sha256(old) if old else None,
                    "backup": backup.name if backup else None, "version": version}, created_at=now)
    except SQLAlchemyError as exc:
        # The file is saved; only the other workers' signal is missing. Say so rather than hide it.
        raise LedgerError(f"policy saved to {path}, but other gateways were not told to reload: "
                          f"{str(exc).splitlines()[0]}") from exc
    return SavedPolicy(path, backup, version, event_id)


class PolicySync:
    """Keeps one worker's policy in step with saves from any console: a poll of ``policy_version``
    every ``seconds``; ``apply`` (``Moderator.reload``) runs in a thread, ``on_change`` (dropping cached
    verdicts) on the event loop after it. A failed reload is logged once and the policy in force stays."""

    def __init__(self, ledger: Ledger, apply: Callable[[], object], seconds: float,
                 on_change: Callable[[], None] | None = None) -> None:
        self.ledger = ledger
        self.apply = apply
        self.seconds = seconds
        self.on_change = on_change
        self.version: int | None = None
        self.last_error: str | None = None
        self._poller: asyncio.Task[None] | None = None

    def load(self) -> bool:
        """Reload when the version moved since the last look (the first look only records it: the
        worker has just read its file). Blocking; errors propagate."""
        current = read_version(self.ledger)
        if self.version is None:
            self.version = current
            return False
        if current == self.version:
            return False
        self.apply()
        self.version = current
        log.info("policy: reloaded (version %d)", current)
        return True

    def mark_current(self) -> None:
        """This worker has just applied the newest save itself: do not reload it again."""
        self.version = read_version(self.ledger)

    async def refresh(self) -> bool:
        try:
            changed = await asyncio.to_thread(self.load)
        except Exception as exc:
            message = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            if message != self.last_error:
                log.warning("policy: not reloaded, the previous policy stays in force: %s", message)
            self.last_error = message
            return False
        self.last_error = None
        if changed and self.on_change is not None:
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
