"""Errors the report raises on purpose; each names the value it refused.

They derive from `biomarker.records.BiomarkerError` (one error tree), so the CLI and the app can tell a refused
report from a bug.
"""

from __future__ import annotations

from biomarker.records import BiomarkerError


class ReportError(BiomarkerError, ValueError):
    """A report cannot be made from these inputs (unknown language, time zone or decision; no font)."""


class PatientMismatchError(ReportError):
    """The identifier typed for the report is not the patient the result was stored for.

    Why refuse rather than print: a report carries the identifier as typed onto a patient's chart, so a typo
    would file one patient's result in another's record; the store can check it (same pseudonym), so it does.
    """
