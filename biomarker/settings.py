"""Where the data lives and which database holds it, read once from the environment.

Three variables, all optional, so `biomarker serve` works on a fresh machine with nothing set:

- `BIOMARKER_HOME` (default `~/.biomarker`): the data folder. It holds `audio/` (the content-addressed
  recordings), `biomarker.db` (the default SQLite database), `spool/` (results kept while the database is
  unreachable) and `secret` (the pseudonymisation key when none is given).
- `DATABASE_URL` (default `sqlite:///$BIOMARKER_HOME/biomarker.db`): any SQLAlchemy URL; PostgreSQL in
  production (`postgresql+psycopg://user:pass@host/db`).
- `BIOMARKER_SECRET`: the key of the keyed hash that turns patient identifiers into pseudonyms. When absent, a
  random key is generated on first run and kept in `$BIOMARKER_HOME/secret` (mode 0600). Losing it means the
  same patient gets a new pseudonym, so it is kept, never regenerated.
- `BIOMARKER_AUDIT_KEY`: the key of the audit chain's HMAC (docs/store.md, "Tamper evidence"). When absent, one
  is generated on first run and kept in `$BIOMARKER_HOME/audit.key` (0600). It is a separate key from the
  pseudonym secret so an auditor can verify the chain without being able to pseudonymise identifiers.
- `BIOMARKER_AUDIT_WITNESS`: optional shell command that receives each anchor line on standard input (for
  example `logger -t biomarker-audit`, or `ssh witness 'cat >> anchors.jsonl'`): a copy of the chain's head
  out of reach of whoever holds this server.

No torch and no database import here: the store, the CLI and the app all start from these values.
"""

from __future__ import annotations

import os
import secrets
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from biomarker.records import BiomarkerError

SECRET_FILE_NAME = "secret"
AUDIT_KEY_FILE_NAME = "audit.key"
ANCHOR_FILE_NAME = "audit-anchor.jsonl"
SQLITE_FILE_NAME = "biomarker.db"
MIN_SECRET_BYTES = 16  # an HMAC key shorter than this is guessable; refuse it rather than pseudonymise weakly
DEFAULT_SESSION_TIMEOUT_S = 15 * 60
# An idle ward terminal must sign out within a shift, and a timeout under a minute signs a clinician out mid-sentence.
SESSION_TIMEOUT_RANGE_S = (60, 12 * 3600)
PRIVATE_DIR_MODE = 0o700


class SettingsError(BiomarkerError, ValueError):
    """An environment variable holds a value the store cannot use; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Resolved configuration of one process. Build it with `Settings.from_env()` (or directly in tests)."""

    home: Path
    database_url: str = field(repr=False)  # may carry the database password
    secret: bytes = field(repr=False)  # never in a log line or a traceback
    session_timeout_s: int = DEFAULT_SESSION_TIMEOUT_S
    audit_key: bytes | None = field(default=None, repr=False)  # None: $BIOMARKER_HOME/audit.key, made on first use
    witness_command: str | None = None

    @property
    def anchor_path(self) -> Path:
        """The append-only file of signed chain heads (`biomarker.store.anchor`)."""
        return self.home / ANCHOR_FILE_NAME

    def resolved_audit_key(self) -> bytes:
        """The audit chain's key: the one given, else the one kept in the data folder (created once)."""
        if self.audit_key is not None:
            return self.audit_key
        make_private_dir(self.home)
        return load_or_create_secret(self.home / AUDIT_KEY_FILE_NAME)

    @property
    def audio_dir(self) -> Path:
        """Content-addressed recordings: `audio/<sha[:2]>/<sha>.<ext>`."""
        return self.home / "audio"

    @property
    def spool_dir(self) -> Path:
        """Results written while the database was unreachable, one JSON file each, replayed by `flush_spool`."""
        return self.home / "spool"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read the environment (or `env`), create the home folder, and load or create the secret."""
        env = os.environ if env is None else env
        home = Path(env.get("BIOMARKER_HOME") or Path.home() / ".biomarker").expanduser().resolve()
        make_private_dir(home)  # recordings are health data: owner only, even when the folder existed
        database_url = env.get("DATABASE_URL") or f"sqlite:///{home / SQLITE_FILE_NAME}"
        secret = _key_from_env(env, "BIOMARKER_SECRET", "a pseudonymisation key")
        if secret is None:
            secret = load_or_create_secret(home / SECRET_FILE_NAME)
        audit_key = _key_from_env(env, "BIOMARKER_AUDIT_KEY", "an audit chain key")
        timeout = env.get("BIOMARKER_SESSION_TIMEOUT_S")
        session_timeout_s = _positive_int("BIOMARKER_SESSION_TIMEOUT_S", timeout) if timeout else DEFAULT_SESSION_TIMEOUT_S
        low, high = SESSION_TIMEOUT_RANGE_S
        if not low <= session_timeout_s <= high:
            raise SettingsError(f"BIOMARKER_SESSION_TIMEOUT_S: {session_timeout_s} s is outside {low}-{high} s")
        return cls(home=home, database_url=database_url, secret=secret, session_timeout_s=session_timeout_s,
                   audit_key=audit_key, witness_command=env.get("BIOMARKER_AUDIT_WITNESS") or None)


def _key_from_env(env: Mapping[str, str], name: str, purpose: str) -> bytes | None:
    """A key given in `name`, or None when unset or empty (what `${NAME:-}` gives in docker-compose)."""
    given = env.get(name)
    if not given:
        return None
    key = given.encode("utf-8")
    if len(key) < MIN_SECRET_BYTES:
        raise SettingsError(f"{name}: {len(key)} bytes is too short for {purpose} (need at least "
                            f"{MIN_SECRET_BYTES}); unset it to have one generated")
    return key


def make_private_dir(path: Path) -> None:
    """Create `path` as 0700, or tighten a folder that already existed wider (with a warning naming it): patient
    audio, the database and the spool must not be readable by other local users."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        warnings.warn(f"{path} was readable by other users (mode {mode:o}); made it {PRIVATE_DIR_MODE:o}",
                      stacklevel=2)
        path.chmod(PRIVATE_DIR_MODE)


def load_or_create_secret(path: Path) -> bytes:
    """Return the key stored at `path`, creating it (0600, random) when missing.

    The key is written to a private temporary file and hard-linked into place, so a process starting at the
    same moment sees either no file or the whole key, never a half-written one.
    """
    if not path.exists():
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_hex(32).encode("ascii"))
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process won the race; its key is the one everybody uses
        finally:
            temporary.unlink()
    secret = path.read_bytes().strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise SettingsError(f"{path}: the stored secret is {len(secret)} bytes, expected at least {MIN_SECRET_BYTES}")
    return secret


def _positive_int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name}: {value!r} is not a whole number of seconds") from None
    if number <= 0:
        raise SettingsError(f"{name}: {number} must be positive")
    return number
