"""Counters the account gate shares across workers and replicas: rate-limit windows and usage minutes.

Two backends behind one interface:

- :class:`RedisState` (``accounts.redis_url`` set): every operation is one atomic Redis command
  (``INCRBY`` + ``EXPIRE`` in a pipeline, ``SADD`` + ``SCARD``), so all replicas see the same counts
  at once. One Redis round trip per request; no database round trip.
- :class:`DatabaseState` (default): counts are kept in the worker and merged into the ledger
  database every ``accounts.sync_seconds`` by a background thread (an atomic ``value = value + n``
  per key, then the totals read back). The request path never waits for the database; replicas
  agree within one sync period, so a limit may be overshot by what other replicas served in the last
  period.

Usage time (minor mode) is counted in *active minutes*: each clock minute of a day, in the
provider's time zone, in which the account was served at least once. A request spanning several
minutes (a long stream) marks each minute it was active in (:meth:`SharedState.mark_minutes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from hegui.accounts.models import Counter, UsageMinute
from hegui.ledger.models import Base

if TYPE_CHECKING:
    from hegui.ledger.store import Ledger

log = logging.getLogger("hegui.accounts")

_counters = Base.metadata.tables[Counter.__tablename__]
_minutes = Base.metadata.tables[UsageMinute.__tablename__]


class SharedState(Protocol):
    async def add(self, key: str, amount: int, window_seconds: int) -> int:
        """Add ``amount`` to the counter ``key`` of the current window; the window's total after it."""
        ...

    async def add_many(self, adds: list[tuple[str, int]], window_seconds: int) -> list[int]:
        """:meth:`add` of ``(key, amount)`` pairs at once (one round trip); amount 0 reads a total."""
        ...

    async def peek(self, key: str) -> int:
        """The counter's total in the current window (0 when none)."""
        ...

    async def mark_minutes(self, account_id: str, day: str, minutes: list[int]) -> None:
        """The account was active in these minutes (0–1439) of ``day`` (``YYYY-MM-DD``)."""
        ...

    async def minutes(self, account_id: str, day: str) -> frozenset[int]:
        """Minutes of ``day`` the account was active in."""
        ...

    async def aclose(self) -> None: ...


class RedisState:
    """Shared through Redis: atomic, immediate, one round trip per operation."""

    PREFIX = "hegui:"

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis_async

        self.url = url
        self._redis: Any = redis_async.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    async def add(self, key: str, amount: int, window_seconds: int) -> int:
        k = self.PREFIX + key
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrby(k, amount)
            pipe.expire(k, window_seconds * 2, nx=True)
            total, _ = await pipe.execute()
        return int(total)

    async def add_many(self, adds: list[tuple[str, int]], window_seconds: int) -> list[int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, amount in adds:
                pipe.incrby(self.PREFIX + key, amount)
                pipe.expire(self.PREFIX + key, window_seconds * 2, nx=True)
            got = await pipe.execute()
        return [int(v) for v in got[::2]]

    async def peek(self, key: str) -> int:
        v = await self._redis.get(self.PREFIX + key)
        return int(v) if v is not None else 0

    async def mark_minutes(self, account_id: str, day: str, minutes: list[int]) -> None:
        if not minutes:
            return
        k = f"{self.PREFIX}minutes:{account_id}:{day}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.sadd(k, *minutes)
            pipe.expire(k, 3 * 86400)
            await pipe.execute()

    async def minutes(self, account_id: str, day: str) -> frozenset[int]:
        got = await self._redis.smembers(f"{self.PREFIX}minutes:{account_id}:{day}")
        return frozenset(int(m) for m in got)

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self._redis.aclose()


class DatabaseState:
    """Shared through the ledger database, merged in the background every ``sync_seconds``."""

    def __init__(self, ledger: Ledger, sync_seconds: float, clock: Any = None) -> None:
        self.ledger = ledger
        self.sync_seconds = sync_seconds
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, datetime], int] = defaultdict(int)
        """(key, window end) → amount this worker added and has not merged yet."""
        self._totals: dict[str, tuple[datetime, int]] = {}
        """key → (window end, total as last read from the database, this worker's merged part included)."""
        self._merging: dict[tuple[str, datetime], int] = {}
        """What is being merged right now: still counted until the totals read back include it."""
        self._pending_minutes: set[tuple[str, str, int]] = set()
        self._minutes: dict[tuple[str, str], set[int]] = defaultdict(set)
        self._watched: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _window_end(self, window_seconds: int) -> datetime:
        now = self._clock()
        start = int(now.timestamp()) // window_seconds * window_seconds
        return datetime.fromtimestamp(start + window_seconds, UTC)

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="hegui-accounts-sync", daemon=True)
            self._thread.start()

    async def add(self, key: str, amount: int, window_seconds: int) -> int:
        self._ensure_thread()
        end = self._window_end(window_seconds)
        with self._lock:
            if amount:
                self._pending[(key, end)] += amount
            return self._local_total(key, end)

    async def add_many(self, adds: list[tuple[str, int]], window_seconds: int) -> list[int]:
        return [await self.add(key, amount, window_seconds) for key, amount in adds]

    def _local_total(self, key: str, end: datetime) -> int:
        known = self._totals.get(key)
        base = known[1] if known is not None and known[0] == end else 0
        return base + self._pending.get((key, end), 0) + self._merging.get((key, end), 0)

    async def peek(self, key: str) -> int:
        with self._lock:
            known = self._totals.get(key)
            ends = {end for (k, end) in self._pending if k == key} | ({known[0]} if known else set())
            now = self._clock()
            live = [e for e in ends if e > now]
            return self._local_total(key, min(live)) if live else 0

    async def mark_minutes(self, account_id: str, day: str, minutes: list[int]) -> None:
        self._ensure_thread()
        with self._lock:
            for m in minutes:
                if m not in self._minutes[(account_id, day)]:
                    self._minutes[(account_id, day)].add(m)
                    self._pending_minutes.add((account_id, day, m))
            self._watched.add((account_id, day))

    async def minutes(self, account_id: str, day: str) -> frozenset[int]:
        with self._lock:
            first = (account_id, day) not in self._watched
            self._watched.add((account_id, day))
        if first:  # the first look at an account's day reads what other replicas marked before
            await asyncio.to_thread(self._read_minutes, [(account_id, day)])
        with self._lock:
            return frozenset(self._minutes[(account_id, day)])

    # -- the background merge ------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.sync_seconds):
            try:
                self.sync()
            except Exception:  # the next period tries again; counts are kept meanwhile
                log.warning("syncing account counters with the database failed", exc_info=True)

    def sync(self) -> None:
        """Merge what this worker counted into the database and read the shared totals back."""
        with self._lock:
            pending, self._pending = dict(self._pending), defaultdict(int)
            self._merging = pending
            minutes, self._pending_minutes = set(self._pending_minutes), set()
            watched = list(self._watched)
        try:
            totals = self._merge(pending)
            self._insert_minutes(minutes)
        except Exception:
            with self._lock:  # put them back for the next attempt
                self._merging = {}
                for k, v in pending.items():
                    self._pending[k] += v
                self._pending_minutes |= minutes
            raise
        with self._lock:
            for key, end, total in totals:
                self._totals[key] = (end, total)
            self._merging = {}
        self._read_minutes(watched)
        self._expire()

    def _merge(self, pending: dict[tuple[str, datetime], int]) -> list[tuple[str, datetime, int]]:
        with self.ledger.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                for (key, end), amount in pending.items():
                    self._add_row(conn, f"{key}@{int(end.timestamp())}", amount, end)
                return self._read_totals(conn, pending)

    @staticmethod
    def _add_row(conn: Any, dbkey: str, amount: int, end: datetime) -> None:
        bump = sa.update(_counters).where(_counters.c.key == dbkey).values(value=_counters.c.value + amount)
        if conn.execute(bump).rowcount == 0:
            try:
                with conn.begin_nested():
                    conn.execute(sa.insert(_counters).values(key=dbkey, value=amount, expires_at=end))
            except IntegrityError:  # another replica made the row first
                conn.execute(bump)

    def _read_totals(self, conn: Any, pending: dict[tuple[str, datetime], int]) -> list[tuple[str, datetime, int]]:
        """The current window's shared total of every key this worker counts."""
        now = self._clock()
        with self._lock:
            known = dict(self._totals)
        ends: dict[str, datetime] = {}
        for key, end in [*pending, *((k, e) for k, (e, _) in known.items())]:
            if end > now and (key not in ends or end > ends[key]):
                ends[key] = end
        current = {f"{key}@{int(end.timestamp())}": (key, end) for key, end in ends.items()}
        if not current:
            return []
        rows = conn.execute(sa.select(_counters.c.key, _counters.c.value)
                            .where(_counters.c.key.in_(list(current)))).all()
        return [(*current[r.key], int(r.value)) for r in rows]

    def _insert_minutes(self, minutes: set[tuple[str, str, int]]) -> None:
        if not minutes:
            return
        with self.ledger.engine.connect() as conn, conn.begin():
            for account_id, day, minute in sorted(minutes):
                try:
                    with conn.begin_nested():
                        conn.execute(sa.insert(_minutes).values(account_id=account_id, day=day, minute=minute))
                except IntegrityError:
                    pass  # another replica marked the same minute

    def _read_minutes(self, watched: list[tuple[str, str]]) -> None:
        if not watched:
            return
        with self.ledger.engine.connect() as conn:
            for account_id, day in watched:
                rows = conn.execute(sa.select(_minutes.c.minute).where(
                    _minutes.c.account_id == account_id, _minutes.c.day == day)).all()
                with self._lock:
                    self._minutes[(account_id, day)].update(int(r.minute) for r in rows)

    def _expire(self) -> None:
        now = self._clock()
        with self._lock:
            for key in [k for k, (end, _) in self._totals.items() if end <= now]:
                del self._totals[key]
            cutoff = (now - timedelta(days=2)).date().isoformat()
            for k in [k for k in self._minutes if k[1] < cutoff]:
                self._minutes.pop(k, None)
                self._watched.discard(k)
        with contextlib.suppress(SQLAlchemyError), self.ledger.engine.connect() as conn, conn.begin():
            conn.execute(sa.delete(_counters).where(_counters.c.expires_at < now - timedelta(minutes=10)))

    async def aclose(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.sync)
