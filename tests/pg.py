"""A throwaway PostgreSQL server for tests: initdb in a temp folder, a free port, the socket in that folder.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as the `postgres` system user
(created when missing). Use the `postgres_server` fixture (one server per test session) and `postgres_url`
(a fresh database per test); tests/conftest.py loads this module as a plugin. Tests that use them carry the
`postgres` marker.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVER_USER = "postgres"
_database_numbers = itertools.count(1)


def _postgres_bin(name: str) -> str | None:
    """`name` from PATH, else from the newest Debian /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ensure_server_user() -> str | None:
    """The account the server runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SERVER_USER], check=True)
    return SERVER_USER


@dataclass
class PostgresServer:
    """A running server; `stop()`/`start()` let tests take the database down and bring it back."""

    folder: Path
    port: int
    run_as: str | None
    pg_ctl: str

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.folder}&port={self.port}"

    def _run(self, *command: str) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        return subprocess.run([*prefix, *command], check=True, capture_output=True, text=True)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses='' -c fsync=off -c full_page_writes=off"
        self._run(self.pg_ctl, "-D", str(self.data_dir), "-o", options, "-l", str(self.folder / "server.log"),
                  "-w", "start")

    def stop(self) -> None:
        self._run(self.pg_ctl, "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def create_database(self, template: str = "template1") -> str:
        """A new database copied from `template` (empty by default); returns its name (see `url`)."""
        import psycopg

        name = f"test_{next(_database_numbers)}"
        with psycopg.connect(host=str(self.folder), port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name

    def drop_database(self, name: str) -> None:
        """Remove a test's database (closing its connections), so the server's folder does not grow all session."""
        import psycopg

        with psycopg.connect(host=str(self.folder), port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_server():
    """Start PostgreSQL for the test session; skipped (with the reason) where no initdb is installed."""
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; `bash run.sh test` installs them")
    run_as = _ensure_server_user()
    # tmpfs when there is one: dozens of throwaway databases are created and deleted in seconds, not minutes.
    # The path stays short because socket names are limited to 107 bytes.
    folder = Path(tempfile.mkdtemp(prefix="pg-", dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else "/tmp"))
    os.chmod(folder, 0o755)
    if run_as:
        entry = pwd.getpwnam(run_as)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    server = PostgresServer(folder=folder, port=_free_port(), run_as=run_as, pg_ctl=pg_ctl)
    try:
        server._run(initdb, "-D", str(server.data_dir), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        server.start()
        yield server
    finally:
        if (server.data_dir / "postmaster.pid").exists():
            server._run(pg_ctl, "-D", str(server.data_dir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh, empty database on the session's server, dropped after the test."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)
