"""The database schema: SQLAlchemy 2.0 typed ORM classes, one per table.

Times are naive UTC (`utc_now()`): SQLite has no time zones and the audit hash must read back byte-for-byte the
same on SQLite and PostgreSQL. The Alembic migrations in `migrations/versions/` create exactly this schema (a test
compares them).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utc_now() -> datetime:
    """Now, in UTC, without tzinfo (the form every time column holds)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class User(Base):
    """A local account. Only the argon2 hash of the password is kept."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    site: Mapped[Optional[str]] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)
    # a password someone else chose (the first admin's, an admin's reset) must be changed at the next sign-in
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # since the last success
    locked_until: Mapped[Optional[datetime]] = mapped_column(DateTime)
    password_changed_at: Mapped[Optional[datetime]] = mapped_column(DateTime)


class Patient(Base):
    """A pseudonym (keyed HMAC of the identifier); the identifier itself is never stored."""

    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)


class RecordingRow(Base):
    """One recording as stored in the content-addressed audio folder, with its quality measurements.

    `result_uid` is chosen by the caller's process before the write, so a result replayed from the spool after
    an outage is recognised and never stored twice.
    """

    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    result_uid: Mapped[str] = mapped_column(String(36), unique=True)
    patient_id: Mapped[Optional[int]] = mapped_column(ForeignKey("patients.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    audio_path: Mapped[str] = mapped_column(String(255))
    duration_s: Mapped[float] = mapped_column(Float)
    sample_rate_hz: Mapped[int] = mapped_column(Integer)
    quality: Mapped[Optional[dict]] = mapped_column(JSON)
    site: Mapped[Optional[str]] = mapped_column(String(64), index=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)

    patient: Mapped[Optional[Patient]] = relationship()
    scores: Mapped[list["ScoreRow"]] = relationship(back_populates="recording")


class ScoreRow(Base):
    """The screener's answer for a recording, with the exact model version and where it ran."""

    __tablename__ = "scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id"), index=True)
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(128))
    cohort: Mapped[str] = mapped_column(String(64))
    probability: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    decision: Mapped[str] = mapped_column(String(16))
    device: Mapped[str] = mapped_column(String(64))
    latency_ms: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime)

    recording: Mapped[RecordingRow] = relationship(back_populates="scores")


class AuditEvent(Base):
    """One link of the append-only audit chain.

    `seq` is assigned by the appender (1, 2, 3, ... with no gaps) and `hash` covers every other column plus
    `prev_hash`, so editing, deleting or reordering any row breaks the chain at that row. `payload` is kept as
    the exact canonical JSON text that was hashed, so no database round-trip can change it. `key_id` names the
    audit key whose HMAC `hash` is (None for links written before the chain was keyed: plain SHA-256).
    """

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    object_type: Mapped[Optional[str]] = mapped_column(String(32))
    object_id: Mapped[Optional[str]] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[Optional[str]] = mapped_column(String(16))


class AuditHead(Base):
    """A single row (id 1) naming the chain's last link.

    Appenders lock it (SELECT ... FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE locks the whole file) so
    appends are serialised, and `verify` compares it with the last row, which is how deleting the newest
    events is detected.
    """

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
