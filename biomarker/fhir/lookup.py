"""The two facts the FHIR export needs that no export row carries: each result's uuid and its patient's pseudonym.

Why a query of its own: an Observation needs an identifier unique across installations (the result's uuid, chosen
before the write), and an audit event about result 12 ("result_report_opened", "score_stored") names only the id,
while the IHE BALP patient patterns want the patient. Read-only (a deferred transaction on SQLite, like
`Store.verify_chain`), over the store's public engine and schema; it writes nothing and audits nothing itself,
because it runs inside an export that is audited.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from biomarker.store import Store
from biomarker.store.engine import READ_ONLY
from biomarker.store.schema import Patient, RecordingRow, ScoreRow

_CHUNK = 500  # ids per IN (...) list, well under SQLite's bound-parameter limit


@dataclass(frozen=True)
class ResultKey:
    """What identifies result `score_id` outside this database."""

    score_id: int
    result_uid: str
    patient_pseudonym: str | None


def result_keys(store: Store, score_ids: Iterable[int]) -> dict[int, ResultKey]:
    """The keys of the results named (ids that do not exist are absent from the answer)."""
    wanted = sorted(set(score_ids))
    found: dict[int, ResultKey] = {}
    with store.engine.connect().execution_options(**{READ_ONLY: True}) as connection, \
            Session(bind=connection) as session:
        for start in range(0, len(wanted), _CHUNK):
            query = (select(ScoreRow.id, RecordingRow.result_uid, Patient.pseudonym)
                     .join(RecordingRow, ScoreRow.recording_id == RecordingRow.id)
                     .outerjoin(Patient, RecordingRow.patient_id == Patient.id)
                     .where(ScoreRow.id.in_(wanted[start:start + _CHUNK])))
            for score_id, result_uid, pseudonym in session.execute(query):
                found[score_id] = ResultKey(score_id, result_uid, pseudonym)
    return found
