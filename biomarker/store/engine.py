"""Creates the SQLAlchemy engine for a URL, with the per-database settings the audit chain relies on.

SQLite: every transaction starts with BEGIN IMMEDIATE (the write lock is taken up front, so two writers never
read the same chain head), WAL so readers do not block the writer, foreign keys on, and a generous busy timeout
so 20 concurrent writers queue instead of failing. PostgreSQL: pre-ping, so a pool that outlived a server
restart reconnects instead of handing out dead connections.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

SQLITE_BUSY_TIMEOUT_S = 30.0
READ_ONLY = "biomarker_read_only"  # execution option: this connection only reads


def make_engine(database_url: str) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if url.database and url.database != ":memory:":
        _private_file(Path(url.database))
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        # Hand transaction control to SQLAlchemy's "begin" event below (pysqlite's own BEGIN is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:
        # a reader (audit verify) asks for `read_only`: a deferred BEGIN takes no write lock, and WAL gives it a
        # consistent snapshot while writers go on
        connection.exec_driver_sql("BEGIN" if connection.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

    return engine


def _private_file(path: Path) -> None:
    """The SQLite file holds password hashes and results: create it 0600 (SQLite would follow the umask, often
    0644), and tighten one that exists wider. Its WAL and shared-memory files inherit the file's mode."""
    if path.parent.is_dir():
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        path.chmod(0o600)
