"""Collect a report's inputs from the store and the model catalog, then build it: what the app and the CLI call.

Why here and not in `build_report`: opening a result checks the viewer's access and writes the audit event
"result_report_opened", and checking a typed identifier needs the store's secret; `build_report` stays a pure
function of what this gathers.
"""

from __future__ import annotations

from datetime import datetime

from biomarker.report.build import build_report
from biomarker.report.errors import PatientMismatchError
from biomarker.report.model_facts import ModelCatalog, model_facts
from biomarker.store import HistoryRow, Store, UserInfo


def check_patient(store: Store, row: HistoryRow, patient_label: str | None) -> None:
    """Refuse an identifier that is not the one `row` was stored for (same canonical form, same pseudonym).

    The message names neither identifier nor pseudonym: it may be read over a shoulder or land in a log.
    """
    if patient_label is None or not patient_label.strip():
        return
    if row.patient_pseudonym is None or row.patient_pseudonym not in store.patient_pseudonyms(patient_label):
        raise PatientMismatchError(f"result {row.score_id} was not stored for the patient identifier given; "
                                   "check the identifier, or print the report without one (it then shows the "
                                   "pseudonym)")


def report_for_result(store: Store, catalog: ModelCatalog, score_id: int, *, viewer: UserInfo, language: str,
                      zone: str, patient_label: str | None = None, printed_at: datetime | None = None) -> bytes:
    """The PDF of result `score_id` as `viewer` may see it; raises `ResultNotFoundError` when they may not
    (another site's result reads as not found) and `PatientMismatchError` for a wrong typed identifier."""
    row = store.open_result(score_id, viewer=viewer, purpose="report")
    check_patient(store, row, patient_label)
    return build_report(row, language=language, patient_label=patient_label, printed_by=viewer.username,
                        zone=zone, model=model_facts(catalog, row.model_name, row.model_version),
                        printed_at=printed_at)
