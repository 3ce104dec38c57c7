"""The report for the chart: one A4 PDF page per result, in Portuguese or English. No torch.

    from biomarker.report import report_for_result
    pdf = report_for_result(store, Catalog(), score_id, viewer=user, language="pt_BR", zone="America/Sao_Paulo",
                            patient_label="PAC-0001")  # or None: the short pseudonym is shown

Rooms: `content` (every word, tested as strings) → `layout` (fpdf2, one page) → `build` (`build_report`, pure);
`model_facts` (weights sha256, synthetic-data flag and site calibration from the catalog); `gather` (store +
catalog → bytes, with the access check, the audit event and the typed-identifier check). The app's download and
`biomarker report` call the same functions, so both give the same file.
"""

from biomarker.report.build import MIME_TYPE, build_report, report_filename
from biomarker.report.content import DEFAULT_ZONE, ReportContent, calibration_words, check_zone, report_content
from biomarker.report.errors import PatientMismatchError, ReportError
from biomarker.report.gather import check_patient, report_for_result
from biomarker.report.model_facts import ModelCatalog, ModelFacts, model_facts, trained_on_synthetic

__all__ = [
    "DEFAULT_ZONE", "MIME_TYPE", "ModelCatalog", "ModelFacts", "PatientMismatchError", "ReportContent", "ReportError",
    "build_report", "calibration_words", "check_patient", "check_zone", "model_facts", "report_content",
    "report_filename", "report_for_result", "trained_on_synthetic",
]
