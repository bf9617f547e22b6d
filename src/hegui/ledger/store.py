"""The ledger: hegui's durable system of record.

:class:`Ledger` appends decision records to the hash-chained ``decisions`` table, each committed
before the call returns, and keeps the accounts and API keys the gateway authenticates with.
Appends from many threads and processes serialise on the chain head (SQLite ``BEGIN IMMEDIATE``,
PostgreSQL ``SELECT … FOR UPDATE`` on the ``chain_heads`` row), so the chain never forks.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from alembic.util import CommandError as AlembicError
from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.pool import StaticPool

from hegui.errors import UserError
from hegui.ledger import schema
from hegui.ledger.chain import (
    CHAINED_TABLES,
    DECISION_FIELDS,
    GENESIS,
    ChainVerifier,
    clean_json,
    clean_text,
    row_hash,
    seal_content,
)
from hegui.ledger.config import LedgerConfig
from hegui.ledger.errors import LedgerError, LedgerNotFound, LedgerOpenError
from hegui.ledger.identifiers import hash_identifier, looks_personal
from hegui.ledger.models import (
    AccountRow,
    ApiKeyRow,
    Base,
    ChainAnchor,
    ChainHead,
    Decision,
    LedgerMeta,
    utcnow,
)
from hegui.ledger.records import (
    KINDS,
    Account,
    ApiKey,
    DecisionRecord,
    DecisionRow,
    PruneResult,
    VerifyReport,
)

if TYPE_CHECKING:
    from hegui.config import HeguiConfig

KEY_PREFIX = "hg-"
"""Every generated API key starts with this, so leaked keys are easy to spot in code and logs."""
KEY_DISPLAY_CHARS = 10
VERIFY_BATCH = 2000
MAX_BATCH = 256
"""Most records one group commit writes."""
_SALT_META_KEY = "identifier_salt"

_decisions = Base.metadata.tables[Decision.__tablename__]
_heads = Base.metadata.tables[ChainHead.__tablename__]
_meta = Base.metadata.tables[LedgerMeta.__tablename__]

# The statements of the hot path, built once: SQLAlchemy then reuses their compiled form, and a batch
# of records is one executemany ("insertmanyvalues": a multi-row INSERT … RETURNING on SQLite ≥ 3.35
# and PostgreSQL) instead of one statement built, cache-keyed and executed per row.
_INSERT_DECISIONS = sa.insert(_decisions).returning(_decisions.c.id, sort_by_parameter_order=True)
_DECISIONS_HEAD = (sa.select(_heads.c.seq, _heads.c.row_hash)
                   .where(_heads.c.chain == "decisions").with_for_update())
_MOVE_DECISIONS_HEAD = (sa.update(_heads).where(_heads.c.chain == "decisions")
                        .values(seq=sa.bindparam("new_seq"), row_hash=sa.bindparam("new_hash")))


class _LoopWaiters:
    """Records queued from one event loop: settled together by one ``call_soon_threadsafe`` a batch
    (one wake-up of the loop) instead of one thread hop and one wake-up per record."""

    __slots__ = ("items", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: list[tuple[asyncio.Future[int], int | BaseException]] = []

    @staticmethod
    def settle(items: list[tuple[asyncio.Future[int], int | BaseException]]) -> None:
        for fut, outcome in items:
            if fut.done():  # the waiter was cancelled; the record is written all the same
                continue
            if isinstance(outcome, BaseException):
                fut.set_exception(outcome)
            else:
                fut.set_result(outcome)
_accounts = Base.metadata.tables[AccountRow.__tablename__]
_keys = Base.metadata.tables[ApiKeyRow.__tablename__]
_anchors = Base.metadata.tables[ChainAnchor.__tablename__]


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def redact_url(url: str | URL) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return str(url)


def key_hash(plaintext: str) -> str:
    # API keys are long random tokens, so an unsalted SHA-256 cannot be reversed by guessing.
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def _fit(value: str | None, length: int) -> str | None:
    """Cut caller-supplied strings to the column's length (PostgreSQL refuses longer ones)."""
    value = clean_text(value)
    return None if value is None else value[:length]


def _parse_url(url: str | URL) -> URL:
    try:
        u = make_url(url)
    except ArgumentError:
        raise LedgerOpenError(
            f"invalid ledger URL {str(url)!r}: expected sqlite:///path.db or postgresql+psycopg://user@host/db"
        ) from None
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    backend = u.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise LedgerOpenError(
            f"unsupported ledger URL {redact_url(u)!r}: use sqlite:///path.db or postgresql+psycopg://…"
        )
    return u


def resolve_sqlite_path(url: str, base_dir: Path | None) -> str:
    """A relative SQLite path in the config means relative to the config file's folder."""
    if base_dir is None:
        return url
    try:
        u = make_url(url)
    except ArgumentError:
        return url
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return url
    p = Path(u.database).expanduser()
    if p.is_absolute():
        return url
    return u.set(database=str(base_dir / p)).render_as_string(hide_password=False)


def _sqlite_engine(u: URL, cfg: LedgerConfig, opts: dict[str, Any]) -> Engine:
    connect_args = {"check_same_thread": False, "timeout": cfg.busy_timeout_ms / 1000}
    connect_args.update(opts.pop("connect_args", {}))
    memory = not u.database or u.database == ":memory:"
    if memory:
        opts.setdefault("poolclass", StaticPool)
    engine = sa.create_engine(u, connect_args=connect_args, **opts)
    synchronous = cfg.sqlite_synchronous

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so BEGIN IMMEDIATE is possible.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(cfg.busy_timeout_ms)}")
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _postgres_engine(u: URL, cfg: LedgerConfig, opts: dict[str, Any]) -> Engine:
    wait_s = cfg.connect_timeout_s
    # No wait on a dead peer is unbounded. libpq: a server that vanishes (host down, network cut)
    # fails the query after about connect_timeout_s instead of the kernel's ~15 minutes of
    # retransmissions (TCP keepalives while waiting for an answer, TCP_USER_TIMEOUT while data is
    # unacknowledged). Given connect_args win.
    connect_args: dict[str, Any] = {
        "connect_timeout": wait_s,
        "keepalives": 1,
        "keepalives_idle": wait_s,
        "keepalives_interval": max(1, wait_s // 3),
        "keepalives_count": 3,
        "tcp_user_timeout": wait_s * 1000,
    }
    connect_args.update(opts.pop("connect_args", {}))
    opts.setdefault("pool_size", cfg.pool_size)
    # a pooled connection the server dropped (restart, failover) is replaced at checkout
    opts.setdefault("pool_pre_ping", True)
    engine = sa.create_engine(u, connect_args=connect_args, **opts)
    # Server side: a session left idle inside a transaction (a gateway process frozen or cut off
    # while it holds the chain-head row lock) is ended after busy_timeout_ms, which releases the
    # lock, so the other processes' appends wait that long at most instead of for ever.
    settings = {"idle_in_transaction_session_timeout": f"{max(cfg.busy_timeout_ms, 1000)}ms"}
    if cfg.pg_synchronous_commit != "on":
        settings["synchronous_commit"] = cfg.pg_synchronous_commit
    query = "SELECT " + ", ".join("set_config(%s, %s, false)" for _ in settings)
    params = [x for pair in settings.items() for x in pair]

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.autocommit = True
        dbapi_conn.execute(query, params)
        dbapi_conn.autocommit = False

    return engine


T = TypeVar("T")


class Ledger:
    """The system of record. Thread-safe; one instance per process is enough."""

    def __init__(self, engine: Engine, config: LedgerConfig | None = None) -> None:
        self.engine = engine
        self.config = config or LedgerConfig(url=engine.url.render_as_string(hide_password=False))
        self._sqlite = engine.dialect.name == "sqlite"
        # a SQLite file (not :memory:, whose only connection is the database)
        self._sqlite_file = self._sqlite and engine.url.database not in (None, "", ":memory:")
        self._db_salt: str | None = None
        # Threads of this process queue here (see _append), not in SQLite's busy handler, which
        # polls with sleeps of up to 100 ms; other processes wait on the database's chain lock.
        self._append_lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._pending: list[tuple[dict[str, Any], Future[int] | tuple[asyncio.AbstractEventLoop, asyncio.Future[int]]]] = []
        # Records from the event loop are written by one writer thread (started on first use), not
        # by a pool thread each: see _aappend.
        self._writer: threading.Thread | None = None
        self._writer_start = threading.Lock()
        self._wake = threading.Event()
        self._closing = False

    # ----------------------------------------------------------------- opening and closing

    @classmethod
    def open(
        cls, url: str, *, create: bool = True, config: LedgerConfig | None = None, **opts: Any
    ) -> Ledger:
        """Open the ledger at ``url``. ``create=True`` migrates the schema to head (creating the
        database file for SQLite); ``create=False`` requires an existing ledger at head.

        ``opts`` go to :func:`sqlalchemy.create_engine` (e.g. ``connect_args``).
        Raises :class:`LedgerOpenError` (one line, no secrets) when it cannot.
        """
        cfg = (config or LedgerConfig()).model_copy(update={"url": url})
        u = _parse_url(url)
        if u.get_backend_name() == "sqlite":
            file = Path(u.database) if u.database and u.database != ":memory:" else None
            if file is not None and not file.exists():
                if not create:
                    raise LedgerOpenError(f"no ledger database at {u.database}")
                try:
                    file.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise LedgerOpenError(
                        f"cannot create the ledger folder {file.parent}: {exc.strerror}"
                    ) from None
            engine = _sqlite_engine(u, cfg, dict(opts))
        else:
            engine = _postgres_engine(u, cfg, dict(opts))
        ledger = cls(engine, cfg)
        try:
            ledger._prepare_retrying(create)
        except LedgerError:
            engine.dispose()
            raise
        except (SQLAlchemyError, NoSuchModuleError, OSError, AlembicError) as exc:
            engine.dispose()
            raise LedgerOpenError(f"cannot open ledger at {redact_url(u)}: {_first_line(exc)}") from None
        return ledger

    @classmethod
    def from_config(
        cls, cfg: LedgerConfig | HeguiConfig, *, create: bool | None = None, base_dir: Path | None = None
    ) -> Ledger:
        """Open the ledger of a config: a ``LedgerConfig`` or a whole ``HeguiConfig`` (whose
        folder relative SQLite paths are resolved against). ``create`` defaults to
        ``ledger.auto_migrate``."""
        ledger_cfg: LedgerConfig
        if isinstance(cfg, LedgerConfig):
            ledger_cfg = cfg
        else:
            ledger_cfg = cfg.ledger
            base_dir = base_dir or cfg.base_dir
        url = resolve_sqlite_path(ledger_cfg.url, base_dir)
        return cls.open(url, create=ledger_cfg.auto_migrate if create is None else create, config=ledger_cfg)

    def _prepare_retrying(self, create: bool, attempts: int = 8) -> None:
        """:meth:`_prepare`, retried while another process holds SQLite's lock: workers started
        together race to switch a new file to WAL and to migrate it, and SQLite answers some of those
        collisions with an immediate "database is locked" instead of waiting out busy_timeout."""
        for attempt in range(attempts):
            try:
                self._prepare(create)
                return
            except OperationalError as exc:
                if not self._sqlite or "locked" not in str(exc) or attempt == attempts - 1:
                    raise
                self.engine.dispose()
                time.sleep(0.05 * 2**attempt)

    def _prepare(self, create: bool) -> None:
        head = schema.head_revision()
        current = schema.current_revision(self.engine)
        if current is not None and not schema.is_known(current):
            raise LedgerOpenError(
                f"ledger at {redact_url(self.engine.url)} has schema revision {current}, which this "
                f"version of hegui does not know (newest it knows: {head}); upgrade hegui"
            )
        if current != head:
            if not create:
                where = "an empty database" if current is None else f"revision {current}"
                raise LedgerOpenError(
                    f"ledger at {redact_url(self.engine.url)} is {where}, not {head}: run `hegui db upgrade`"
                )
            schema.upgrade(self.engine)

    def close(self) -> None:
        writer = self._writer
        if writer is not None and writer.is_alive():
            self._closing = True
            self._wake.set()
            writer.join(timeout=30)  # it drains what is queued before it stops
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return redact_url(self.engine.url)

    # ----------------------------------------------------------------- transactions

    def _begin_write(self, conn: Connection) -> None:
        if self._sqlite:
            conn.execution_options(sqlite_begin="IMMEDIATE")

    def transaction(self, fn: Callable[[Connection], T], what: str) -> T:
        """Run ``fn`` in one write transaction (on SQLite ``BEGIN IMMEDIATE``, so concurrent writers
        wait for each other instead of failing when a read turns into a write). Database errors come
        out as one-line :class:`LedgerError` (``cannot <what>: …``); hegui's own errors pass through."""
        try:
            with self.engine.connect() as conn:
                self._begin_write(conn)
                with conn.begin():
                    return fn(conn)
        except (UserError, LedgerError):
            raise
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot {what}: {str(exc).splitlines()[0]}") from exc

    # ----------------------------------------------------------------- identifiers

    def hash_identifier(self, value: str) -> str:
        """Salted hash of ``value`` (salt from ``$<ledger.identifier_salt_env>``, else the
        database's own random salt)."""
        return hash_identifier(value, self._salt())

    def protect_identifier(self, value: str | None) -> str | None:
        """``value`` as the ledger stores it: hashed when it looks like personal data, unless
        ``ledger.store_raw`` is set."""
        if value is None or self.config.store_raw or not looks_personal(value):
            return value
        return self.hash_identifier(value)

    def _salt(self) -> str:
        env = os.environ.get(self.config.identifier_salt_env)
        if env:
            return env
        if self._db_salt is None:
            self._db_salt = self.meta_value(_SALT_META_KEY, lambda: secrets.token_hex(32))
        return self._db_salt

    def meta_value(self, key: str, make: Callable[[], str]) -> str:
        """The ``ledger_meta`` value of ``key``, made with ``make()`` and stored the first time (one
        writer wins when several race): the salt, the portal's and the console's keys."""
        query = sa.select(_meta.c.value).where(_meta.c.key == key)
        try:
            with self.engine.connect() as conn:
                found = conn.execute(query).scalar_one_or_none()
            if found is not None:
                return str(found)
            try:
                with self.engine.begin() as conn:
                    conn.execute(sa.insert(_meta).values(key=key, value=make()))
            except IntegrityError:
                pass  # another process made it first; use theirs
            with self.engine.connect() as conn:
                return str(conn.execute(query).scalar_one())
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot read the ledger's {key}: {_first_line(exc)}") from exc

    # ----------------------------------------------------------------- decisions

    def _decision_values(self, rec: DecisionRecord) -> dict[str, Any]:
        if rec.kind not in KINDS:
            raise ValueError(f"unknown decision kind {rec.kind!r}; expected one of {', '.join(KINDS)}")
        created = rec.created_at or utcnow()
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        created = created.astimezone(UTC)
        excerpt = clean_text(rec.excerpt or "") or ""
        return {
            "kind": rec.kind,
            "decision_id": _fit(rec.decision_id, 64),
            "request_id": _fit(rec.request_id, 128),
            "account_id": _fit(self.protect_identifier(rec.account_id), 128),
            "api_key_id": _fit(rec.api_key_id, 64),
            "model": _fit(rec.model, 200),
            "direction": _fit(rec.direction, 16),
            "scene": _fit(rec.scene, 64),
            "action": _fit(str(rec.action), 16),
            "risks": clean_json([str(r) for r in rec.risks]),
            "findings": clean_json(list(rec.findings)),
            "detector_ms": clean_json({str(k): round(float(v), 3) for k, v in rec.detector_ms.items()}),
            "excerpt": excerpt[: self.config.excerpt_chars],
            "stream": None if rec.stream is None else clean_json(rec.stream),
            "created_at": created,
            "flags": clean_json(rec.flags) if rec.flags else None,
        }

    def _append(self, values: dict[str, Any]) -> int:
        """Group commit: a caller queues its row, and whoever holds the append lock writes every
        queued row in one transaction. Under load many records share one commit (one disk flush)
        instead of each waiting for the previous one's flush while holding the chain lock."""
        seal_content(values, "decisions")  # before queueing: the seal needs no lock
        done: Future[int] = Future()
        with self._pending_lock:
            self._pending.append((values, done))
        while not done.done():
            self._drain_once()
        return done.result()

    async def _aappend(self, values: dict[str, Any]) -> int:
        """:meth:`_append` for the event loop: the row is queued and the writer thread writes it with
        whatever else is queued (the same group commit); the loop is woken once a batch. The record is
        committed when this returns; a caller cancelled meanwhile does not stop the write."""
        seal_content(values, "decisions")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        with self._pending_lock:
            self._pending.append((values, (loop, fut)))
        self._kick_writer()
        return await fut

    def _kick_writer(self) -> None:
        writer = self._writer
        if writer is None or not writer.is_alive():
            with self._writer_start:
                if self._writer is None or not self._writer.is_alive():
                    self._closing = False
                    self._writer = threading.Thread(target=self._writer_loop, name="hegui-ledger-writer",
                                                    daemon=True)
                    self._writer.start()
        self._wake.set()

    def _writer_loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()  # cleared before draining: a row queued while we drain sets it again
            while self._drain_once():
                pass
            if self._closing:
                return

    def _drain_once(self) -> bool:
        """Write one batch of queued rows, if any; returns whether there was one."""
        with self._append_lock:
            with self._pending_lock:
                if not self._pending:
                    return False
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            self._write_batch(batch)
        return True

    def _write_batch(self, batch: list[tuple[dict[str, Any], Any]]) -> None:
        outcomes: list[int | BaseException]
        try:
            outcomes = list(self._write_rows([values for values, _ in batch]))
        except Exception as exc:
            reason = _first_line(exc) if isinstance(exc, SQLAlchemyError) else str(exc)
            outcomes = [LedgerError(f"cannot record decision: {reason}") for _ in batch]
        by_loop: dict[int, _LoopWaiters] = {}
        for (_, waiter), outcome in zip(batch, outcomes, strict=True):
            if isinstance(waiter, Future):
                if isinstance(outcome, BaseException):
                    waiter.set_exception(outcome)
                else:
                    waiter.set_result(outcome)
            else:
                loop, fut = waiter
                by_loop.setdefault(id(loop), _LoopWaiters(loop)).items.append((fut, outcome))
        for group in by_loop.values():
            try:
                group.loop.call_soon_threadsafe(_LoopWaiters.settle, group.items)
            except RuntimeError:
                pass  # that loop is closed: nobody is waiting any more (the rows are written or not, as above)

    def _write_rows(self, rows: list[dict[str, Any]]) -> list[int]:
        """Append ``rows`` in one transaction: the rows and the chain head move together, so a
        write that fails (database gone, disk full, lock timeout) leaves no part of a record and
        no broken link; the next write starts from the head as the database has it."""
        try:
            return self._write_rows_once(rows)
        except DBAPIError as exc:
            if not self._sqlite_file or "locked" in str(exc.orig):
                # PostgreSQL: a dropped connection is discarded and replaced by the pool; SQLite
                # "database is locked": another process holds the lock, the connection is fine
                raise
            # A SQLite connection stays what it was opened as: one opened while the file could not
            # be written (SQLite then silently opens it read-only) fails every write, even after
            # the fault is fixed. Drop the pooled connections so that the next write opens fresh
            # ones; when this one was read-only, that next write is now.
            self.engine.dispose()
            if "readonly" not in str(exc.orig):
                raise
        return self._write_rows_once(rows)

    def _write_rows_once(self, rows: list[dict[str, Any]]) -> list[int]:
        with self.engine.connect() as conn:
            self._begin_write(conn)
            with conn.begin():
                head = conn.execute(_DECISIONS_HEAD).one_or_none()
                if head is None:
                    raise LedgerError("the decisions chain head is missing; run `hegui ledger verify`")
                seq, prev = int(head.seq), str(head.row_hash)
                for values in rows:
                    seq += 1
                    values["seq"] = seq
                    values["prev_hash"] = prev
                    values["row_hash"] = prev = row_hash(prev, values, DECISION_FIELDS)
                ids = [int(r[0]) for r in conn.execute(_INSERT_DECISIONS, rows)]
                if len(ids) != len(rows):
                    raise LedgerError(f"the database returned {len(ids)} ids for {len(rows)} records")
                conn.execute(_MOVE_DECISIONS_HEAD, {"new_seq": seq, "new_hash": prev})
        return ids

    def record_decision(self, rec: DecisionRecord) -> int:
        """Append ``rec`` to the chain; it is committed before this returns. Returns the row id.

        Raises :class:`LedgerError` when it cannot be recorded (the caller must fail closed).
        """
        return self._append(self._decision_values(rec))

    async def arecord_decision(self, rec: DecisionRecord) -> int:
        """:meth:`record_decision` from the event loop: the ledger's writer thread commits it."""
        return await self._aappend(self._decision_values(rec))

    def open_stream(self, rec: DecisionRecord) -> int:
        """Record that a streamed output started (``kind="stream_open"``), before anything is sent.

        The stream's final :meth:`record_decision` (with ``stream`` set) closes it; a stream that
        was opened and never closed is what a crash mid-stream leaves (:meth:`open_streams`).
        """
        return self.record_decision(self._opening(rec))

    @staticmethod
    def _opening(rec: DecisionRecord) -> DecisionRecord:
        rec = DecisionRecord(**{**rec.__dict__, "kind": "stream_open"})
        if rec.stream is None:
            rec.stream = {"sent_chars": 0, "cut": False, "client_disconnected": False, "upstream_error": None}
        return rec

    async def aopen_stream(self, rec: DecisionRecord) -> int:
        return await self._aappend(self._decision_values(self._opening(rec)))

    def update_stream(self, decision_id: str, stream: Mapping[str, Any]) -> int:
        """Append a ``stream_progress`` checkpoint (how much of the stream was sent so far).

        The chain is append-only, so this never edits the opening row; it copies the request's
        identifying fields from the latest row of ``decision_id`` into a new row.
        """
        latest = self._latest_row(decision_id)
        rec = DecisionRecord(
            decision_id=decision_id,
            request_id=latest.request_id if latest else "",
            account_id=latest.account_id if latest else None,
            api_key_id=latest.api_key_id if latest else None,
            model=latest.model if latest else None,
            direction=latest.direction if latest else "output",
            scene=latest.scene if latest else "",
            action=latest.action if latest else "pending",
            risks=list(latest.risks) if latest else [],
            findings=[],
            detector_ms={},
            excerpt="",
            stream=dict(stream),
            kind="stream_progress",
            flags=dict(latest.flags) if latest is not None and latest.flags else None,
        )
        values = self._decision_values(rec)
        if latest is not None:
            values["account_id"] = latest.account_id  # already protected when first stored
        return self._append(values)

    async def aupdate_stream(self, decision_id: str, stream: Mapping[str, Any]) -> int:
        return await asyncio.to_thread(self.update_stream, decision_id, stream)

    def _latest_row(self, decision_id: str) -> DecisionRow | None:
        rows = self.decisions(decision_id=decision_id, limit=1)
        return rows[0] if rows else None

    def decisions(
        self,
        *,
        limit: int | None = 100,
        decision_id: str | None = None,
        request_id: str | None = None,
        account_id: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        after_seq: int | None = None,
        newest_first: bool = True,
        for_training: bool = False,
    ) -> list[DecisionRow]:
        """Stored decision rows, newest first unless ``newest_first=False``. ``for_training``: leave out
        the rows of people who opted out of training (every export that could feed training sets it)."""
        q = sa.select(_decisions)
        if decision_id is not None:
            q = q.where(_decisions.c.decision_id == decision_id)
        if request_id is not None:
            q = q.where(_decisions.c.request_id == request_id)
        if account_id is not None:
            q = q.where(_decisions.c.account_id == self.protect_identifier(account_id))
        if kind is not None:
            q = q.where(_decisions.c.kind == kind)
        if since is not None:
            q = q.where(_decisions.c.created_at >= since)
        if after_seq is not None:
            q = q.where(_decisions.c.seq > after_seq)
        q = q.order_by(_decisions.c.seq.desc() if newest_first else _decisions.c.seq.asc())
        if limit is not None:
            q = q.limit(limit)
        try:
            with self.engine.connect() as conn:
                rows = [DecisionRow(**dict(r._mapping)) for r in conn.execute(q)]
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot read decisions: {_first_line(exc)}") from exc
        return [r for r in rows if not r.training_opt_out] if for_training else rows

    def open_streams(self) -> list[DecisionRow]:
        """``stream_open`` rows whose stream never got its final decision record: streams cut off
        by a crash. Each comes with the last checkpoint's ``stream`` when there was one."""
        closed = sa.select(_decisions.c.decision_id).where(_decisions.c.kind == "decision")
        q = (
            sa.select(_decisions)
            .where(_decisions.c.kind == "stream_open", _decisions.c.decision_id.not_in(closed))
            .order_by(_decisions.c.seq)
        )
        try:
            with self.engine.connect() as conn:
                opened = [DecisionRow(**dict(r._mapping)) for r in conn.execute(q)]
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot read open streams: {_first_line(exc)}") from exc
        out = []
        for row in opened:
            latest = self._latest_row(row.decision_id)
            if latest is not None and latest.kind == "stream_progress":
                row = DecisionRow(**{**row.__dict__, "stream": latest.stream})
            out.append(row)
        return out

    def count_decisions(self) -> int:
        try:
            with self.engine.connect() as conn:
                return int(conn.execute(sa.select(sa.func.count()).select_from(_decisions)).scalar_one())
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot count decisions: {_first_line(exc)}") from exc

    # ----------------------------------------------------------------- verification

    def chain_heads(self) -> dict[str, tuple[int, str]]:
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(sa.select(_heads.c.chain, _heads.c.seq, _heads.c.row_hash)).all()
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot read the chain heads: {_first_line(exc)}") from exc
        return {r.chain: (int(r.seq), r.row_hash) for r in rows}

    def _anchor(self, conn: Connection, chain: str) -> tuple[int, str]:
        """(seq, hash) the chain starts from: the newest prune anchor, else the genesis."""
        r = conn.execute(
            sa.select(_anchors.c.seq, _anchors.c.row_hash)
            .where(_anchors.c.chain == chain)
            .order_by(_anchors.c.seq.desc())
            .limit(1)
        ).one_or_none()
        return (0, GENESIS) if r is None else (int(r.seq), str(r.row_hash))

    def _check_range(
        self, conn: Connection, chain: str, start: tuple[int, str], end_seq: int | None = None
    ) -> ChainVerifier:
        table = Base.metadata.tables[chain]
        verifier = ChainVerifier(chain, CHAINED_TABLES[chain], start_seq=start[0], start_hash=start[1])
        last = start[0]
        while True:
            q = sa.select(table).where(table.c.seq > last)
            if end_seq is not None:
                q = q.where(table.c.seq <= end_seq)
            batch = conn.execute(q.order_by(table.c.seq).limit(VERIFY_BATCH)).all()
            for r in batch:
                verifier.check(dict(r._mapping))
            if len(batch) < VERIFY_BATCH:
                return verifier
            last = int(batch[-1].seq)

    def verify(self) -> VerifyReport:
        """Re-hash every chained row and check every link, in one consistent snapshot."""
        report = VerifyReport()
        try:
            with self.engine.connect() as conn:
                if not self._sqlite:
                    conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    heads = {
                        r.chain: (int(r.seq), str(r.row_hash))
                        for r in conn.execute(sa.select(_heads.c.chain, _heads.c.seq, _heads.c.row_hash))
                    }
                    for chain in CHAINED_TABLES:
                        verifier = self._check_range(conn, chain, self._anchor(conn, chain))
                        head = heads.get(chain)
                        verifier.finish(*(head if head else (None, None)))
                        report.rows_checked += verifier.rows
                        report.problems.extend(verifier.problems)
                        if head:
                            report.heads[chain] = head
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot verify the ledger: {_first_line(exc)}") from exc
        return report

    # ----------------------------------------------------------------- retention

    def prune(self, before: datetime | None = None, *, dry_run: bool = False) -> PruneResult:
        """Delete the oldest decision rows, those created before ``before`` (default: now minus
        ``ledger.retention_days``), keeping the chain checkable.

        Only a prefix of the chain goes (rows up to the first one that is still young), and only
        when that prefix verifies: a prune never destroys the evidence of tampering. The seq and
        hash of the last row deleted are kept as the chain's new anchor.
        """
        now = utcnow()
        limit = now - timedelta(days=self.config.retention_days)
        if before is None:
            before = limit
        if before.tzinfo is None:
            before = before.replace(tzinfo=UTC)
        if before > limit:
            raise UserError(
                f"refusing to prune records younger than ledger.retention_days ({self.config.retention_days} "
                f"days): {before.isoformat(timespec='seconds')} is after {limit.isoformat(timespec='seconds')}"
            )
        chain = "decisions"
        try:
            with self._append_lock, self.engine.connect() as conn:
                self._begin_write(conn)
                with conn.begin():
                    head = conn.execute(
                        sa.select(_heads.c.seq).where(_heads.c.chain == chain).with_for_update()
                    ).scalar_one()
                    anchor = self._anchor(conn, chain)
                    first_young = conn.execute(
                        sa.select(sa.func.min(_decisions.c.seq)).where(
                            _decisions.c.created_at >= before, _decisions.c.seq > anchor[0]
                        )
                    ).scalar_one_or_none()
                    cut = int(head) if first_young is None else int(first_young) - 1
                    result = PruneResult(before=before, rows=0, first_seq=anchor[0] + 1, last_seq=cut)
                    if cut <= anchor[0]:
                        result.last_seq = anchor[0]
                        return result
                    checked = self._check_range(conn, chain, anchor, cut)
                    if checked.problems or checked.last_seq != cut:
                        first = checked.problems[0] if checked.problems else None
                        raise LedgerError(
                            "refusing to prune: the rows to delete do not verify"
                            + (f" ({first})" if first else f" (seq {checked.last_seq + 1}-{cut} missing)")
                            + "; run `hegui ledger verify`"
                        )
                    result.rows = checked.rows
                    result.anchor_hash = checked.last_hash
                    if dry_run:
                        return result  # nothing written: the commit on leaving is empty
                    conn.execute(
                        sa.delete(_decisions).where(_decisions.c.seq > anchor[0], _decisions.c.seq <= cut)
                    )
                    conn.execute(
                        sa.insert(_anchors).values(
                            chain=chain,
                            seq=cut,
                            row_hash=checked.last_hash,
                            pruned_before=before,
                            rows_pruned=checked.rows,
                            created_at=now,
                        )
                    )
                    return result
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot prune the ledger: {_first_line(exc)}") from exc

    def anchors(self) -> list[dict[str, Any]]:
        """Every prune so far: chain, seq and hash of the last row deleted, cut-off, rows, when."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(_anchors).order_by(_anchors.c.id)).all()
        return [dict(r._mapping) for r in rows]

    # ----------------------------------------------------------------- accounts and keys

    def create_account(
        self, name: str, *, external_id: str | None = None, account_id: str | None = None
    ) -> str:
        """Create an account; returns its id. ``external_id`` (the caller's own user id) is hashed
        when it looks like personal data, and so is an ``account_id`` chosen by the caller: the
        returned id is the one stored."""
        acc_id = self.protect_identifier(account_id) or "acc_" + secrets.token_hex(8)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(_accounts).values(
                        id=_fit(acc_id, 128),
                        name=_fit(name, 200) or "",
                        external_id=_fit(self.protect_identifier(external_id), 200),
                        created_at=utcnow(),
                    )
                )
        except IntegrityError:
            raise LedgerError(f"an account with id {acc_id} or that external id already exists") from None
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot create account: {_first_line(exc)}") from exc
        return acc_id

    def ensure_account(self, account_id: str, name: str = "") -> str:
        """Create the account ``account_id`` unless it exists (safe when several workers race).
        Returns the stored id (a hash when ``account_id`` looks like personal data)."""
        stored = self.protect_identifier(account_id) or account_id
        if self.get_account(stored) is None:
            try:
                self.create_account(name if name and name != account_id else stored, account_id=stored)
            except LedgerError:
                if self.get_account(stored) is None:
                    raise
        return stored

    def get_account(self, account_id: str) -> Account | None:
        stored = self.protect_identifier(account_id)
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(_accounts).where(_accounts.c.id == stored)).one_or_none()
        return None if r is None else Account(r.id, r.name, r.external_id, r.created_at)

    def find_account(self, external_id: str) -> Account | None:
        """The account whose external id is ``external_id`` (hashed the same way first)."""
        stored = self.protect_identifier(external_id)
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(_accounts).where(_accounts.c.external_id == stored)).one_or_none()
        return None if r is None else Account(r.id, r.name, r.external_id, r.created_at)

    def _insert_key(self, account_id: str, plaintext: str, *, key_id: str, admin: bool, name: str) -> None:
        account = self.get_account(account_id)
        if account is None:
            raise LedgerNotFound(f"no account {account_id}")
        account_id = account.id
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(_keys).values(
                    id=key_id,
                    account_id=account_id,
                    name=_fit(name, 200) or "",
                    prefix=plaintext[:KEY_DISPLAY_CHARS],
                    key_hash=key_hash(plaintext),
                    admin=admin,
                    created_at=utcnow(),
                    revoked_at=None,
                )
            )

    def create_api_key(self, account_id: str, *, admin: bool = False, name: str = "") -> tuple[str, str]:
        """Create a key for ``account_id``; returns ``(key id, plaintext key)``. The plaintext is
        shown this once: only its SHA-256 and a short display prefix are stored."""
        plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = "key_" + secrets.token_hex(8)
        try:
            self._insert_key(account_id, plaintext, key_id=key_id, admin=admin, name=name)
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot create API key: {_first_line(exc)}") from exc
        return key_id, plaintext

    def ensure_api_key(self, account_id: str, plaintext: str, *, admin: bool = False, name: str = "") -> str:
        """Register a key whose plaintext the caller chose (the documented demo key); returns its
        id. Idempotent and safe when several workers race."""
        existing = self.lookup_api_key(plaintext)
        if existing is not None:
            if existing.account_id != (self.protect_identifier(account_id) or account_id):
                raise LedgerError(f"that API key already belongs to account {existing.account_id}")
            return existing.id
        key_id = "key_" + key_hash(plaintext)[:16]
        try:
            self._insert_key(account_id, plaintext, key_id=key_id, admin=admin, name=name)
        except IntegrityError:
            if self.lookup_api_key(plaintext) is None:
                raise LedgerError("cannot register API key: id collision") from None
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot register API key: {_first_line(exc)}") from exc
        return key_id

    def lookup_api_key(self, plaintext: str) -> ApiKey | None:
        """The key with this plaintext, revoked or not (check ``.revoked``), or None."""
        try:
            with self.engine.connect() as conn:
                r = conn.execute(
                    sa.select(_keys).where(_keys.c.key_hash == key_hash(plaintext))
                ).one_or_none()
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot look up API key: {_first_line(exc)}") from exc
        return None if r is None else self._api_key(r)

    @staticmethod
    def _api_key(r: Any) -> ApiKey:
        return ApiKey(
            id=r.id,
            account_id=r.account_id,
            admin=bool(r.admin),
            revoked=r.revoked_at is not None,
            name=r.name,
            prefix=r.prefix,
            public=bool(r.public),
        )

    async def alookup_api_key(self, plaintext: str) -> ApiKey | None:
        return await asyncio.to_thread(self.lookup_api_key, plaintext)

    def revoke_api_key(self, key_id: str) -> None:
        with self.engine.begin() as conn:
            n = conn.execute(
                sa.update(_keys)
                .where(_keys.c.id == key_id, _keys.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            ).rowcount
            if n == 0 and conn.execute(sa.select(_keys.c.id).where(_keys.c.id == key_id)).first() is None:
                raise LedgerNotFound(f"no API key {key_id}")

    def api_keys(self, account_id: str | None = None) -> list[ApiKey]:
        q = sa.select(_keys).order_by(_keys.c.created_at)
        if account_id is not None:
            q = q.where(_keys.c.account_id == account_id)
        with self.engine.connect() as conn:
            return [self._api_key(r) for r in conn.execute(q)]
