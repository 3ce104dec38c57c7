"""The one fact the FHIR audit export needs that no audit row carries: the patient of the result an event names.

Why a query of its own: an audit event about result 12 ("result_report_opened", "score_stored") names only the
id, while the IHE BALP patient patterns want the patient. Read-only (a deferred transaction on SQLite, like
`Store.verify_chain`), over the store's public engine and schema; it writes nothing and audits nothing itself,
because it runs inside an export that the store has allowed and audited.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from biomarker.store import Store
from biomarker.store.engine import READ_ONLY
from biomarker.store.schema import Patient, RecordingRow, ScoreRow

_CHUNK = 500  # ids per IN (...) list, well under SQLite's bound-parameter limit


def score_patients(store: Store, score_ids: Iterable[int]) -> dict[int, str | None]:
    """The pseudonym of each result named (None: stored without a patient; absent: no such result)."""
    wanted = sorted(set(score_ids))
    found: dict[int, str | None] = {}
    with store.engine.connect().execution_options(**{READ_ONLY: True}) as connection, \
            Session(bind=connection) as session:
        for start in range(0, len(wanted), _CHUNK):
            query = (select(ScoreRow.id, Patient.pseudonym)
                     .join(RecordingRow, ScoreRow.recording_id == RecordingRow.id)
                     .outerjoin(Patient, RecordingRow.patient_id == Patient.id)
                     .where(ScoreRow.id.in_(wanted[start:start + _CHUNK])))
            found.update((score_id, pseudonym) for score_id, pseudonym in session.execute(query))
    return found
