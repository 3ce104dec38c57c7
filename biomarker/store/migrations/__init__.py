"""Alembic environment and revisions of the store's schema (run by `biomarker.store.migrate`)."""
