"""A result's fields are defined once (the ORM's columns, `store.result_fields`); every other spelling of them
agrees with it, so a column added to the schema cannot be forgotten by the spool, the history, the export or
the integrity check."""

from __future__ import annotations

import json
from dataclasses import fields

from sqlalchemy import select
from store_helpers import ADMIN, record

from biomarker.store.integrity import RECORDING_FIELDS, SCORE_FIELDS
from biomarker.store.repository import RESULT_COLUMNS
from biomarker.store.result_fields import RECORDING_COLUMNS, SCORE_COLUMNS, HistoryRow
from biomarker.store.schema import AuditEvent
from biomarker.store.spool import PendingResult

# The spool's field names are a file format written before this module existed.
SPOOL_NAMES = {"created_by": "actor", "patient": "pseudonym"}


def test_the_schema_has_the_columns_a_result_needs():
    assert {"sha256", "audio_path", "sample_rate_hz", "quality", "created_at", "result_uid"} <= set(RECORDING_COLUMNS)
    assert {"probability", "threshold", "decision", "model_version", "created_at"} <= set(SCORE_COLUMNS)


def test_history_rows_and_the_results_export_carry_every_column():
    assert set(RESULT_COLUMNS) == {field.name for field in fields(HistoryRow)}
    assert set(RESULT_COLUMNS) == {"score_id", "recording_id", "patient_pseudonym"} | set(RECORDING_COLUMNS) | set(
        SCORE_COLUMNS)


def test_a_spooled_result_carries_every_column_but_the_ids():
    stored = (set(RECORDING_COLUMNS) | {"patient"} | set(SCORE_COLUMNS))
    assert {field.name for field in fields(PendingResult)} == {SPOOL_NAMES.get(name, name) for name in stored}


def test_the_events_written_with_a_result_record_every_column_the_integrity_check_compares(store):
    record(store, ADMIN)
    with store.engine.connect() as connection:
        events = {event.action: (event.actor, json.loads(event.payload))
                  for event in connection.execute(select(AuditEvent))}
    actor, recording = events["recording_stored"]
    assert set(recording) | {"created_by"} == set(RECORDING_FIELDS) and actor == ADMIN.username
    assert set(events["score_stored"][1]) == set(SCORE_FIELDS)
