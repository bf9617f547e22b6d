"""Alembic environment of the ledger; run through :mod:`hegui.ledger.schema`, never an ini file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from hegui.ledger.models import Base
from hegui.ledger.schema import MIGRATION_LOCK_KEY, VERSION_TABLE


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # SQLite runs DDL in transactions too; alembic assumes it does not and would then commit
        # migration by migration, letting a second worker starting at the same moment see a
        # half-migrated database. One transaction (BEGIN IMMEDIATE, see schema.upgrade) for all.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        context.run_migrations()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run the ledger migrations through hegui.ledger.schema.upgrade (hegui db upgrade)")
    if context.is_offline_mode():
        raise RuntimeError("offline (SQL script) migrations are not supported")
    run_migrations(connection)


main()
