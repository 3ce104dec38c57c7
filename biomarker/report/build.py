"""`build_report`: one result → the PDF bytes for the chart. The app's download and `biomarker report` both call
it, so the file is the same whichever way it was printed."""

from __future__ import annotations

from datetime import datetime, timezone

from biomarker.report.content import report_content
from biomarker.report.layout import render
from biomarker.report.model_facts import ModelFacts
from biomarker.store import HistoryRow

MIME_TYPE = "application/pdf"


def build_report(row: HistoryRow, *, language: str, patient_label: str | None, printed_by: str, zone: str,
                 model: ModelFacts, printed_at: datetime | None = None) -> bytes:
    """The one-page A4 PDF report of `row` in `language` ("pt_BR" or "en").

    `patient_label` is the identifier as typed at the point of care (shown as is; check it first with
    `gather.check_patient`), or None to show the short pseudonym, labelled as one. `zone` (IANA, e.g.
    "America/Sao_Paulo") is used for the recording time and the print time. `model` says what this server knows of
    the weights (`model_facts`). A pure function of its inputs once `printed_at` (default: now) is given.
    """
    moment = printed_at if printed_at is not None else datetime.now(timezone.utc).replace(tzinfo=None)
    content = report_content(row, language=language, patient_label=patient_label, printed_by=printed_by,
                             zone=zone, model=model, printed_at=moment)
    return render(content, printed_at=moment)


def report_filename(score_id: int) -> str:
    """A file name that says what the file is and names no patient (downloads folders are not private)."""
    return f"biomarker-result-{score_id}.pdf"
