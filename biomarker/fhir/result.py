"""One stored result as FHIR R4 (R4B models): Media (the recording), Observation (the screen), DiagnosticReport
(with the chart's PDF) and Provenance (who and what produced them).

Why these shapes: the Observation carries the decision as a coded value and every number the store holds as a
component, so a receiver needs neither the PDF nor this project's code to read it; the DiagnosticReport is what a
chart files and prints; the Provenance names the AI Device as author (HL7 AI Transparency) and the clinician as
performer. The audio itself never leaves: the Media names it by sha256, duration and rate.
"""

from __future__ import annotations

import base64
import mimetypes
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any

from fhir.resources.R4B.device import Device
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.media import Media
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.provenance import Provenance

from biomarker.fhir.codes import (
    AUDIO_SHA256_SYSTEM,
    COHORT_CODE,
    COMPUTE_CODE,
    DATA_ABSENT_SYSTEM,
    EXT_SAMPLE_RATE,
    INTERPRETATION_SYSTEM,
    LATENCY_CODE,
    MEDIA_TYPE_SYSTEM,
    OBSERVATION_CATEGORY_SYSTEM,
    PROBABILITY_CODE,
    PROVENANCE_AGENT_SYSTEM,
    QUALITY_CODES,
    SCORE_ID_SYSTEM,
    SCREENING_CODE,
    THRESHOLD_CODE,
    UCUM,
    URI_SYSTEM,
    US_CORE_CATEGORY_SYSTEM,
    coding,
    local,
)
from biomarker.fhir.device import attachment_hash
from biomarker.fhir.ids import reference_to, stable_id
from biomarker.fhir.participants import organization, patient, practitioner
from biomarker.records import DECISION_POSITIVE, QualityReport
from biomarker.report import MIME_TYPE, report_filename
from biomarker.store import HistoryRow

# UCUM units of the quality measures, by the unit suffix every QualityReport field carries in its name.
_UNITS = {"duration_s": ("s", "s"), "rms_dbfs": ("dBFS", None), "snr_db": ("dB", "dB")}
_QUALITY_FIELDS = tuple(field.name for field in fields(QualityReport))


@dataclass(frozen=True)
class ResultResources:
    """The resources of one result; `patient` is None for a result stored without a patient identifier."""

    patient: Patient | None
    practitioner: Practitioner
    organization: Organization | None
    media: Media
    observation: Observation
    report: DiagnosticReport
    provenance: Provenance


def utc(moment: datetime) -> datetime:
    """The store's naive UTC as an aware time (FHIR instants need a zone)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _quantity(value: float, unit: str, code: str | None) -> dict[str, Any]:
    return {"value": value, "unit": unit, **({"system": UCUM, "code": code} if code else {})}


def _component(code: str, **value: Any) -> dict[str, Any]:
    return {"code": local(code), **value}


def _quality_components(quality: dict | None) -> list[dict[str, Any]]:
    """One component per QualityReport field the row holds; a measure stored as null (NaN or infinite when
    measured) says so with a data-absent reason instead of disappearing."""
    components = []
    for name in _QUALITY_FIELDS:
        if not quality or name not in quality:
            continue
        value, code = quality[name], QUALITY_CODES[name]
        if name == "passed":
            components.append(_component(code, valueBoolean=bool(value)))
        elif name == "reasons":
            components.extend(_component(code, valueString=reason) for reason in value or ())
        elif value is None:
            components.append(_component(code, dataAbsentReason={
                "coding": [coding(DATA_ABSENT_SYSTEM, "not-a-number", "Not a Number (NaN)")]}))
        else:
            components.append(_component(code, valueQuantity=_quantity(float(value), *_UNITS.get(name, ("1", "1")))))
    return components


def result_resources(row: HistoryRow, device: Device, *, conclusion: str, decision_text: str, pdf: bytes | None,
                     language: str) -> ResultResources:
    """The resources of `row`. `conclusion` and `decision_text` are the report's words in `language`; `pdf` is
    the chart's PDF (None leaves `presentedForm` out)."""
    when, result_uid = utc(row.created_at), row.result_uid
    subject = None if row.patient_pseudonym is None else patient(row.patient_pseudonym)
    clinician = practitioner(row.created_by)
    site = None if row.site is None else organization(row.site)
    subject_ref = None if subject is None else reference_to(subject)
    performers = [reference_to(clinician, row.created_by)] + ([] if site is None else [reference_to(site, row.site)])
    content_type = mimetypes.guess_type(row.audio_path)[0] or "application/octet-stream"
    media = Media(
        id=stable_id("Media", result_uid), identifier=[{"system": AUDIO_SHA256_SYSTEM, "value": row.sha256}],
        status="completed", type={"coding": [coding(MEDIA_TYPE_SYSTEM, "audio", "Audio")]}, subject=subject_ref,
        createdDateTime=when, operator=reference_to(clinician), duration=row.duration_s,
        content={"contentType": content_type, "title": f"recording sha256 {row.sha256}"},
        extension=[{"url": EXT_SAMPLE_RATE, "valueQuantity": _quantity(row.sample_rate_hz, "Hz", "Hz")}],
    )
    identifiers = [{"system": URI_SYSTEM, "value": f"urn:uuid:{result_uid}"},
                   {"system": SCORE_ID_SYSTEM, "value": str(row.score_id)}]
    decision = local(row.decision)
    observation = Observation(
        id=result_uid, identifier=identifiers, status="final",
        category=[{"coding": [coding(OBSERVATION_CATEGORY_SYSTEM, "survey", "Survey")]},
                  {"coding": [coding(US_CORE_CATEGORY_SYSTEM, "screening-assessment", "Screening Assessment")]}],
        code=local(SCREENING_CODE), subject=subject_ref, effectiveDateTime=when, issued=when,
        performer=performers,
        valueCodeableConcept={"coding": decision["coding"], "text": decision_text},
        interpretation=[{"coding": [coding(INTERPRETATION_SYSTEM, "POS", "Positive") if row.decision == DECISION_POSITIVE
                                    else coding(INTERPRETATION_SYSTEM, "NEG", "Negative")]}],
        device=reference_to(device, f"{row.model_name}@{row.model_version}"), derivedFrom=[reference_to(media)],
        component=[_component(PROBABILITY_CODE, valueQuantity=_quantity(row.probability, "1", "1")),
                   _component(THRESHOLD_CODE, valueQuantity=_quantity(row.threshold, "1", "1")),
                   _component(LATENCY_CODE, valueQuantity=_quantity(row.latency_ms, "ms", "ms")),
                   _component(COMPUTE_CODE, valueString=row.device),
                   _component(COHORT_CODE, valueString=row.cohort),
                   *_quality_components(row.quality)],
    )
    presented = None if pdf is None else [{
        "contentType": MIME_TYPE, "language": language.replace("_", "-"), "title": report_filename(row.score_id),
        "data": base64.b64encode(pdf), "size": len(pdf), "hash": attachment_hash(pdf)}]
    report = DiagnosticReport(
        id=stable_id("DiagnosticReport", result_uid), identifier=identifiers[1:], status="final",
        code=local(SCREENING_CODE), subject=subject_ref, effectiveDateTime=when, issued=when, performer=performers,
        result=[reference_to(observation)], conclusion=conclusion, presentedForm=presented,
    )
    provenance = Provenance(
        id=stable_id("Provenance", result_uid), target=[reference_to(observation), reference_to(report)],
        occurredDateTime=when, recorded=when,
        agent=[{"type": {"coding": [coding(PROVENANCE_AGENT_SYSTEM, "author", "Author")]},
                "who": reference_to(device)},
               {"type": {"coding": [coding(PROVENANCE_AGENT_SYSTEM, "performer", "Performer")]},
                "who": reference_to(clinician), "onBehalfOf": None if site is None else reference_to(site)}],
        entity=[{"role": "source", "what": reference_to(media)}],
    )
    return ResultResources(subject, clinician, site, media, observation, report, provenance)
