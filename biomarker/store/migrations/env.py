"""Alembic environment: migrates the engine handed over in `config.attributes["engine"]`.

Several app processes may start together on a fresh database; the migration runs inside one transaction that
first takes a lock (SQLite: BEGIN IMMEDIATE, from the engine; PostgreSQL: a transaction-scoped advisory lock), so
the second process waits, then finds the schema at head and does nothing.
"""

from alembic import context
from sqlalchemy import text

from biomarker.store.schema import Base

MIGRATION_LOCK_KEY = 0x62696F6D  # "biom": any constant shared by every process migrating this database

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    # render_as_batch lets later revisions alter SQLite tables (copy-and-move) with the same code as PostgreSQL.
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
