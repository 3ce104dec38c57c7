"""Alembic environment: migrates the engine handed over in `config.attributes["engine"]`."""

from alembic import context

from biomarker.store.schema import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    # render_as_batch lets later revisions alter SQLite tables (copy-and-move) with the same code as PostgreSQL.
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
