"""The fields of one result, defined once: the ORM's `recordings` and `scores` columns.

A result is a recording row and its score row (schema.py is the one definition). Everything else that spells
out a result's fields derives from these two tuples, so a column added to the schema reaches all of them or a
test (tests/test_result_fields.py) says which one it missed:

- the audit events written with a result (`recording_record`, `score_record`), and the integrity check that
  compares the rows with them (`integrity.RECORDING_FIELDS`, `integrity.SCORE_FIELDS`);
- the result as read (`HistoryRow`, written out as a typed dataclass for its readers; `history_row` fills it);
- the results export's columns (`RESULT_COLUMNS`);
- the spool's `PendingResult` (its field names are a file format, so it keeps `actor` and `pseudonym`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from biomarker.store.schema import RecordingRow, ScoreRow

# Stored columns, in schema order, without the keys that only join rows (ids, patient_id).
RECORDING_COLUMNS = tuple(column.name for column in RecordingRow.__table__.columns
                          if column.name not in ("id", "patient_id"))
SCORE_COLUMNS = tuple(column.name for column in ScoreRow.__table__.columns if column.name not in ("id", "recording_id"))


@dataclass(frozen=True)
class HistoryRow:
    """One result as the history, the result page, the report and the results export read it: the ids, the
    patient's pseudonym, every recording column and every score column (the score's `created_at` is the
    recording's: both are written in one transaction)."""

    score_id: int
    recording_id: int
    created_at: datetime
    patient_pseudonym: str | None
    site: str | None
    created_by: str
    model_name: str
    model_version: str
    cohort: str
    probability: float
    threshold: float
    decision: str
    device: str
    latency_ms: float
    duration_s: float
    sample_rate_hz: int
    sha256: str
    audio_path: str
    quality: dict | None
    result_uid: str


RESULT_COLUMNS = tuple(field.name for field in fields(HistoryRow))


def iso(value: datetime | None) -> str | None:
    """A stored time as text, to the microsecond the columns hold."""
    return None if value is None else value.isoformat(timespec="microseconds")


def _plain(value: Any) -> Any:
    return iso(value) if isinstance(value, datetime) else value


def recording_record(recording: RecordingRow, pseudonym: str | None, *, with_actor: bool = True) -> dict[str, Any]:
    """A recording's columns as its `recording_stored` event records them, with `patient` (the pseudonym) for the
    patient key. The event itself leaves out `created_by`, which is its actor (`with_actor=False`)."""
    record = {name: _plain(getattr(recording, name)) for name in RECORDING_COLUMNS
              if with_actor or name != "created_by"}
    return {**record, "patient": pseudonym}


def score_record(score: ScoreRow) -> dict[str, Any]:
    """A score's columns as its `score_stored` event records them."""
    return {"recording_id": score.recording_id, **{name: _plain(getattr(score, name)) for name in SCORE_COLUMNS}}


def history_row(score: ScoreRow, recording: RecordingRow, pseudonym: str | None) -> HistoryRow:
    """The result as read, from its two rows."""
    values = {**{name: getattr(score, name) for name in SCORE_COLUMNS},
              **{name: getattr(recording, name) for name in RECORDING_COLUMNS}}
    return HistoryRow(score_id=score.id, recording_id=recording.id, patient_pseudonym=pseudonym, **values)
