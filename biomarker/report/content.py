"""Every word of a report, decided before any layout: what the chart will say about one result.

Why apart from the PDF code: the words are the clinical part (which identifier, which decision words, which
caveat) and are tested as plain strings; the layout only places them. Pure: the same inputs give the same words.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from biomarker import __version__
from biomarker.i18n import LANGUAGES, Translator, translator
from biomarker.records import DECISION_NEGATIVE, DECISION_POSITIVE
from biomarker.report.errors import ReportError
from biomarker.report.model_facts import NOT_IN_CATALOG, WEIGHTS_VERIFIED, ModelFacts
from biomarker.store import HistoryRow
from biomarker.store.pseudonym import short_pseudonym

DEFAULT_ZONE = "America/Sao_Paulo"  # the target clinics are Brazilian


@dataclass(frozen=True)
class ReportContent:
    """The report's text, in one language, grouped as the page shows it."""

    language: str
    title: str
    subtitle: str
    subject: str  # PDF metadata
    patient_heading: str
    patient_label: str  # "Patient" or "Patient (pseudonym)"
    patient_value: str
    patient_note: str | None  # why a pseudonym is shown
    details: tuple[tuple[str, str], ...]  # recorded at, clinician, site
    decision_heading: str
    positive: bool
    decision: str
    probability: str
    next_step: str
    quality_heading: str
    quality: str
    audio: str
    audio_sha256: str
    model_heading: str
    model: tuple[tuple[str, str], ...]  # model, calibration
    weights_label: str
    weights_sha256: str | None
    weights_note: str | None
    caveat_heading: str
    caveats: tuple[str, ...]
    printed: str
    result_id: str
    footer: str


def check_zone(zone: str) -> str:
    """An IANA zone name ("America/Sao_Paulo"); anything else is refused by name rather than printed as UTC."""
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportError(f"time zone {zone!r} is not an IANA zone name such as {DEFAULT_ZONE}") from None
    return zone


def _moment(t: Translator, moment: datetime, zone: str) -> str:
    """Local date and time with the zone's name in words and its IANA id, so no reader has to guess."""
    return f"{t.datetime(moment, zone)} ({zone})"


def quality_words(t: Translator, quality: dict | None) -> str:
    """The recording quality in the app's words (the shared `quality.*` keys)."""
    if not quality:
        return t("quality.unknown")
    try:
        fields = {"duration": t.number(float(quality["duration_s"]), 1),
                  "speech": t.number(100 * float(quality["speech_ratio"]), 0),
                  "clipped": t.number(100 * float(quality["clipping_ratio"]), 1),
                  "snr": t.number(float(quality["snr_db"]), 0)}
    except (KeyError, TypeError, ValueError):
        return t("quality.unknown")  # a row from an older schema: say so rather than guess
    words = t("quality.good", **fields)
    return words if quality.get("passed", True) else f"{t('report.quality.flagged')} {words}"


def calibration_words(t: Translator, cohort: str, model: ModelFacts) -> str:
    """Which calibration set the threshold a result was judged against: the one fitted at training, or a site's
    (`biomarker calibrate`), named by its parent, sample and date. The app's result pages show the same words."""
    if model.status == NOT_IN_CATALOG:
        return t("calibration.unknown", cohort=cohort)
    site = model.site_calibration
    if site is None:
        return t("calibration.training", cohort=cohort)
    return t("calibration.site", cohort=cohort, parent=site.parent, manifest=Path(site.manifest).name,
             sha=site.manifest_sha256[:12], patients=site.patients, controls=site.controls,
             date=(site.created_utc or "?")[:10])


def _weights_note(t: Translator, row: HistoryRow, model: ModelFacts) -> str | None:
    if model.status == WEIGHTS_VERIFIED:
        return None
    if model.status == NOT_IN_CATALOG:
        return t("report.weights.not_in_catalog", name=row.model_name, version=row.model_version)
    return t(f"report.weights.{model.status}")


def report_content(row: HistoryRow, *, language: str, patient_label: str | None, printed_by: str, zone: str,
                   model: ModelFacts, printed_at: datetime) -> ReportContent:
    """The words of the report of `row`; `patient_label` is the identifier as typed, or None for the pseudonym.

    `printed_at` is naive UTC (as the store keeps times) or aware; `zone` applies to both times shown.
    """
    if language not in LANGUAGES:
        raise ReportError(f"language {language!r} is not one of {', '.join(LANGUAGES)}")
    if row.decision not in (DECISION_POSITIVE, DECISION_NEGATIVE):
        raise ReportError(f"result {row.score_id}: decision {row.decision!r} is neither "
                          f"{DECISION_POSITIVE!r} nor {DECISION_NEGATIVE!r}")
    check_zone(zone)
    t = translator(language)
    label = (patient_label or "").strip()
    if label:
        patient = (t("report.field.patient"), label, None)
    elif row.patient_pseudonym:
        patient = (t("report.field.pseudonym"), short_pseudonym(row.patient_pseudonym), t("report.pseudonym_note"))
    else:
        patient = (t("report.field.patient"), t("report.no_patient"), None)
    caveats = ((t("disclaimer.synthetic"),) if model.synthetic else (t("report.not_validated"),)) \
        + (t("disclaimer.screening"),)
    return ReportContent(
        language=language,
        title=t("report.title"),
        subtitle=t("report.subtitle", result_id=row.score_id),
        subject=t("report.subject", result_id=row.score_id),
        patient_heading=t("report.section.patient"),
        patient_label=patient[0], patient_value=patient[1], patient_note=patient[2],
        details=((t("report.field.recorded_at"), _moment(t, row.created_at, zone)),
                 (t("report.field.clinician"), row.created_by),
                 (t("report.field.site"), row.site or t("report.no_site"))),
        decision_heading=t("report.section.result"),
        positive=row.decision == DECISION_POSITIVE,
        decision=t(f"decision.{row.decision}"),
        probability=t("probability.vs_threshold", probability=t.number(row.probability, 2),
                      threshold=t.number(row.threshold, 2)),
        next_step=t(f"next_step.{row.decision}"),
        quality_heading=t("report.section.quality"),
        quality=quality_words(t, row.quality),
        audio=t("report.audio", duration=t.number(row.duration_s, 1), rate=row.sample_rate_hz),
        audio_sha256=row.sha256,
        model_heading=t("report.section.model"),
        model=((t("report.field.model"), t("report.model", name=row.model_name, version=row.model_version)),
               (t("report.field.cohort"), calibration_words(t, row.cohort, model))),
        weights_label=t("report.field.weights"),
        weights_sha256=model.sha256,
        weights_note=_weights_note(t, row, model),
        caveat_heading=t("report.section.caveat"),
        caveats=caveats,
        printed=t("report.printed", user=printed_by, moment=_moment(t, printed_at, zone)),
        result_id=t("report.result_id", result_id=row.score_id),
        footer=t("report.footer", version=__version__),
    )
