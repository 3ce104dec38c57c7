"""Every system, code and extension URL the FHIR export uses, and the local CodeSystem as a FHIR resource.

Why one module: a hospital's interface engine maps codes, so each must be defined once, documented
(docs/store.md "FHIR export") and shipped in the Bundle itself (`code_system()`), never spelled twice. Standard
terminologies (HL7, DICOM, UCUM, IHE BALP, HL7 AI Transparency) are named here too, beside the local ones.

The local URLs sit under `LOCAL_BASE`, a name under the reserved `.example` top-level domain: it resolves nowhere
on purpose, until the project has a published home. Moving it is this one constant; a receiver that mapped the
old URLs must map the new ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fhir.resources.R4B.codesystem import CodeSystem

from biomarker.i18n import translator
from biomarker.records import DECISION_NEGATIVE, DECISION_POSITIVE

LOCAL_BASE = "https://biomarker.example/fhir"

# ------------------------------------------------------------------------------------------- local systems
SCREENING_SYSTEM = f"{LOCAL_BASE}/CodeSystem/ri-speech-screening"  # the CodeSystem below
AUDIT_ACTION_SYSTEM = f"{LOCAL_BASE}/CodeSystem/audit-action"  # the store's own action names, kept verbatim
PSEUDONYM_SYSTEM = f"{LOCAL_BASE}/NamingSystem/patient-pseudonym"  # HMAC pseudonym: the only patient identifier
USERNAME_SYSTEM = f"{LOCAL_BASE}/NamingSystem/username"
SITE_SYSTEM = f"{LOCAL_BASE}/NamingSystem/site"
MODEL_SYSTEM = f"{LOCAL_BASE}/NamingSystem/model"  # "name@version", as every result records it
WEIGHTS_SHA256_SYSTEM = f"{LOCAL_BASE}/NamingSystem/weights-sha256"
AUDIO_SHA256_SYSTEM = f"{LOCAL_BASE}/NamingSystem/audio-sha256"
URI_SYSTEM = "urn:ietf:rfc:3986"  # the result's uuid, unique across installations


def object_id_system(object_type: str) -> str:
    """The naming system of the store's ids of one object type (an audit event's object: score, user, ...)."""
    return f"{LOCAL_BASE}/NamingSystem/{object_type}-id"


SCORE_ID_SYSTEM = object_id_system("score")  # the store's result id (History's "Result" column)
EXT_SAMPLE_RATE = f"{LOCAL_BASE}/StructureDefinition/sample-rate"
EXT_AUDIT_CHAIN = f"{LOCAL_BASE}/StructureDefinition/audit-chain"  # seq, prevHash, hash of the audit row
EXT_AUDIT_ANCHOR = f"{LOCAL_BASE}/StructureDefinition/audit-anchor"  # the store's signed chain head (Bundle.meta)

# ------------------------------------------------------------------------------------- the local CodeSystem
SCREENING_CODE = "ri-speech-screening"
PROBABILITY_CODE = "calibrated-probability"
THRESHOLD_CODE = "decision-threshold"
LATENCY_CODE = "inference-latency"
COMPUTE_CODE = "compute-device"
COHORT_CODE = "cohort"
QUALITY_CODES = {  # QualityReport field -> component code
    "duration_s": "quality-duration", "speech_ratio": "quality-speech-ratio", "clipping_ratio": "quality-clipping-ratio",
    "peak": "quality-peak", "rms_dbfs": "quality-rms-dbfs", "snr_db": "quality-snr", "passed": "quality-passed",
    "reasons": "quality-reason",
}
_CONCEPTS = {  # code -> (display, definition)
    SCREENING_CODE: ("Respiratory-insufficiency speech screening",
                     "A screen of read speech for signs of respiratory insufficiency. Its decision refers the patient "
                     "for an SpO2 check; it never estimates SpO2."),
    DECISION_POSITIVE: (None, "The calibrated probability is at or above the decision threshold: refer for SpO2."),
    DECISION_NEGATIVE: (None, "The calibrated probability is below the decision threshold: no referral suggested."),
    PROBABILITY_CODE: ("Calibrated probability", "The model's probability after calibration (temperature, bias, SNR)."),
    THRESHOLD_CODE: ("Decision threshold", "The probability at or above which the decision is positive."),
    LATENCY_CODE: ("Inference latency", "Milliseconds the screener took for this recording."),
    COMPUTE_CODE: ("Compute device", "Where the model ran (cpu, cuda)."),
    COHORT_CODE: ("Cohort", "The model head (cohort) that scored the recording."),
    "quality-duration": ("Recording duration", "Seconds of audio measured by the quality gate."),
    "quality-speech-ratio": ("Speech ratio", "Fraction of frames holding speech."),
    "quality-clipping-ratio": ("Clipping ratio", "Fraction of samples at full scale."),
    "quality-peak": ("Peak level", "Largest absolute sample, full scale = 1."),
    "quality-rms-dbfs": ("RMS level", "Root-mean-square level in dB relative to full scale."),
    "quality-snr": ("Signal-to-noise ratio", "Estimated speech-to-noise ratio in dB."),
    "quality-passed": ("Quality gate passed", "Whether the recording passed every quality check."),
    "quality-reason": ("Quality gate reason", "One failed quality check, in words."),
}

# ------------------------------------------------------------------------------------ standard terminologies
OBSERVATION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
US_CORE_CATEGORY_SYSTEM = "http://hl7.org/fhir/us/core/CodeSystem/us-core-category"
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
DATA_ABSENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
MEDIA_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/media-type"
PROVENANCE_AGENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
UCUM = "http://unitsofmeasure.org"
# HL7 AI Transparency on FHIR (STU1): the AI Device type and the Model-Card DocumentReference codes.
AI_DEVICE_TYPE_SYSTEM = "http://hl7.org/fhir/uv/aitransparency/CodeSystem/AIdeviceTypeCS"
AI_DEVICE_TYPE_CODE = "Artificial-Intelligence"
AI_INPUTS_SYSTEM = "http://terminology.hl7.org/CodeSystem/AIinputsCS"
EXT_MODEL_CARD = "http://hl7.org/fhir/uv/aitransparency/StructureDefinition/aitransparency.modelCardDescription"
# IHE BALP / DICOM audit vocabularies.
DCM = "http://dicom.nema.org/resources/ontology/DCM"
AUDIT_EVENT_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_SYSTEM = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE_SYSTEM = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/security-source-type"


def decision_display(decision: str) -> str:
    """The English words of a decision, from the same catalog the app and the report print."""
    return translator("en")(f"decision.{decision}")


def coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    """A Coding as the plain value a resource validates when it is built (validating each piece apart as well
    would double the cost of a 1,000-result Bundle)."""
    return {"system": system, "code": code, **({"display": display} if display else {})}


def local(code: str) -> dict[str, Any]:
    """A CodeableConcept of the local CodeSystem, with its display as text."""
    display = _CONCEPTS[code][0] or decision_display(code)
    return {"coding": [coding(SCREENING_SYSTEM, code, display)], "text": display}


def code_system(date: datetime) -> CodeSystem:
    """The local CodeSystem as a resource, shipped in every results Bundle so a receiver learns what each code
    means from the data itself. `date` is the export's time (the CodeSystem's content is this module's)."""
    return CodeSystem(
        id="ri-speech-screening", url=SCREENING_SYSTEM, name="RISpeechScreening",
        title="biomarker: respiratory-insufficiency speech screening", status="active", experimental=True,
        date=date, publisher="biomarker (open speech-biomarker screener)", content="complete", caseSensitive=True,
        description="Codes of the screening Observation, its decision values and its components. What each model "
                    "was trained on is said by its Device (AI Transparency), not here.",
        concept=[{"code": code, "display": display or decision_display(code), "definition": definition}
                 for code, (display, definition) in _CONCEPTS.items()],
    )
