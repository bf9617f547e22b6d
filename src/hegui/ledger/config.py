"""Ledger settings: the ``ledger:`` section of ``hegui.yaml``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class LedgerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = "sqlite:///hegui.db"
    """SQLAlchemy URL. SQLite by default; PostgreSQL as ``postgresql+psycopg://user@host/db``.
    A relative SQLite path is resolved against the config file's folder."""
    excerpt_chars: int = Field(default=200, ge=0)
    """Longest excerpt (characters) kept per decision; longer ones are cut."""
    store_raw: bool = False
    """Keep caller identifiers as given instead of hashing those that look like personal data
    (phone numbers, e-mail addresses, ID numbers). Off by default (PIPL / Art. 11)."""
    identifier_salt_env: str = "HEGUI_IDENTIFIER_SALT"
    """Environment variable holding the salt for hashed identifiers. When unset, a random salt
    kept in the database is used."""
    busy_timeout_ms: int = Field(default=10_000, ge=0)
    """SQLite: how long a writer waits for another process's lock before failing."""
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    """SQLite ``PRAGMA synchronous`` (WAL). NORMAL survives a process crash; FULL also a power cut."""
    pool_size: int = Field(default=5, ge=1)
    """PostgreSQL: connections kept per process."""
    connect_timeout_s: int = Field(default=10, ge=1)
    """PostgreSQL: seconds to wait when connecting."""
    pg_synchronous_commit: Literal["on", "off", "local", "remote_write", "remote_apply"] = "on"
    """PostgreSQL ``synchronous_commit`` for the ledger's connections. ``on`` waits for the WAL
    flush (a record survives a server crash; costs one disk flush per decision); ``off`` returns
    before it (survives a gateway crash, but a database server crash can lose the last fraction
    of a second of records)."""
    retention_days: int = Field(default=183, ge=183)
    """Keep decision records at least this many days; `hegui ledger prune` deletes older ones. The
    floor is 183 (six months: CSL Art. 23(3), Labeling Measures Art. 9)."""
    auto_migrate: bool = True
    """Run the ledger's migrations to head when the gateway opens the ledger."""
