"""Run the ledger's Alembic migrations from code (no ``alembic.ini`` on disk).

Several gateway workers may open the ledger at the same moment; each migration run holds a lock
(SQLite ``BEGIN IMMEDIATE``, PostgreSQL ``pg_advisory_xact_lock``) and reads the current revision
inside it, so one worker migrates and the others find the schema at head.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

import hegui.accounts.models  # the account gate's tables share the ledger's metadata
import hegui.annotation.models  # the annotation records (Art. 8)
import hegui.cases.models  # so do cases and incidents
import hegui.web.dashboard_models  # and the console dashboard's rollups
import hegui.web.staff_models  # noqa: F401  (and the console's staff)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"
MIGRATION_LOCK_KEY = 0x6865677569_01  # "hegui" + 1: pg_advisory_xact_lock key for migrations


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the ledger ships at least one migration"
    return head


def is_known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except Exception:  # alembic raises several kinds for an unknown id
        return False


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Migrate to ``revision``; returns the revision the database is at afterwards."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.execution_options(sqlite_begin="IMMEDIATE")
        command.upgrade(alembic_config(conn), revision)
        if conn.in_transaction():
            conn.commit()
    return current_revision(engine)
