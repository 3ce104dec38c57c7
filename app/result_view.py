"""How a screening result is shown: the Screen, Try-a-sample and History pages all use these, so every page
reads the same words (the decision, the quality, the patient's timeline)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Sequence
from zoneinfo import ZoneInfo

import matplotlib.pyplot as plt
import streamlit as st

from biomarker.i18n import Translator
from biomarker.models.catalog import Catalog
from biomarker.report import (MIME_TYPE, ModelFacts, PatientMismatchError, calibration_words, model_facts,
                              report_filename, report_for_result)
from biomarker.records import AudioError, QualityReport
from biomarker.screener import Assessment, Screener
from biomarker.store import HistoryRow, InvalidUserError, Store, UserInfo
from biomarker.store.pseudonym import short_pseudonym
from plots import mfccgram_figure, trend_figure, waveform_figure


def decision_words(t: Translator, decision: str) -> str:
    return t(f"decision.{decision}")


def quality_in_words(t: Translator, quality: QualityReport | dict | None) -> str:
    """The quality gate's measurements in one sentence (a stored row keeps them as a dict)."""
    if quality is None:
        return t("quality.unknown")
    values = quality if isinstance(quality, dict) else vars(quality)
    if values.get("snr_db") is None:
        return t("quality.unknown")
    return t("quality.good", duration=t.number(values["duration_s"], 1), speech=f"{100 * values['speech_ratio']:.0f}",
             clipped=t.number(100 * values["clipping_ratio"], 1), snr=f"{values['snr_db']:.0f}")


def short_quality(t: Translator, quality: dict | None) -> str:
    """A table cell: duration and signal-to-noise."""
    if not quality or quality.get("snr_db") is None:
        return "—"
    return t("quality.short", duration=t.number(quality["duration_s"], 1), snr=f"{quality['snr_db']:.0f}")


def audio_error_words(t: Translator, error: AudioError) -> str:
    """What went wrong and what to do, in plain words: the nearest class of `error` with a message wins, so a
    new subclass still reads sensibly before it gets words of its own."""
    for kind in type(error).__mro__:
        key = f"audio_error.{kind.__name__}"
        if t.has(key):
            return t(key)
    return t("audio_error.AudioError")


def user_error_words(t: Translator, error: InvalidUserError) -> str:
    """The broken account rule in the user's language (`user_error.<code>`); a rule without words yet shows
    the store's own message rather than nothing."""
    key = f"user_error.{error.code}"
    return t(key, **error.fields) if t.has(key) else t("users.invalid", reason=error)


def show_rejection(t: Translator, error: AudioError) -> None:
    """A bad recording: what is wrong and what to do; nothing was scored or stored."""
    st.error(t("result.rejected", reason=audio_error_words(t, error)))


def show_disclaimer(t: Translator, screener: Screener) -> None:
    if screener.trained_on_synthetic:
        st.warning(t("disclaimer.synthetic"))


def show_decision(t: Translator, decision: str, probability: float, threshold: float) -> None:
    """The decision in words, then the probability against the threshold (the same on every page)."""
    (st.error if decision == "positive" else st.info)(f"**{decision_words(t, decision)}**")
    columns = st.columns(2)
    columns[0].metric(t("result.probability"), t.number(probability), help=t("result.probability_help"))
    columns[1].metric(t("result.threshold"), t.number(threshold), help=t("result.threshold_help"))


def show_assessment(t: Translator, assessment: Assessment, screener: Screener, label: str) -> None:
    """Quality, decision, probability, model identity, device, latency, then the two plots."""
    score = assessment.score
    st.success(quality_in_words(t, assessment.quality))
    show_decision(t, score.decision, score.probability, score.threshold)
    show_model_line(t, score.model_name, score.model_version, score.cohort, score.device, score.latency_ms)
    recording = assessment.recording
    show_plots(t, screener, recording.samples, recording.sample_rate_hz, screener.features_for_display(recording),
               label)


@st.cache_data(ttl=300, show_spinner=False)
def _model_facts(name: str, version: str) -> ModelFacts:
    """Versions are immutable, so their facts keep; the TTL lets a version published since appear."""
    return model_facts(Catalog(), name, version)


def show_model_line(t: Translator, name: str, version: str, cohort: str, device: str, latency_ms: float) -> None:
    """Which model scored, where and how fast, then which calibration set its threshold (a site's own, from
    `biomarker calibrate`, or the one fitted at training): the same words as the report for the chart."""
    st.caption(t("result.model_line", name=name, version=version, cohort=cohort, device=device,
                 latency=f"{latency_ms:.0f}"))
    st.caption(t("result.calibration_line", calibration=calibration_words(t, cohort, _model_facts(name, version))))


def show_plots(t: Translator, screener: Screener, samples, sample_rate_hz: int, features, label: str) -> None:
    figures = (
        waveform_figure(samples, sample_rate_hz, t("plot.waveform", label=label), t("plot.time_s"),
                        t("plot.amplitude")),
        mfccgram_figure(features, screener.display_frames_per_second, t("plot.mfccgram", label=label),
                        t("plot.time_s"), t("plot.mfcc_index")),
    )
    for figure in figures:
        st.pyplot(figure)
        plt.close(figure)


def timeline_rows(t: Translator, rows: Sequence[HistoryRow], zone: str) -> list[dict[str, str]]:
    """One table row per result, oldest last, in the words the result page uses."""
    return [{
        t("column.date"): t.datetime_short(row.created_at, zone),
        t("column.decision"): decision_words(t, row.decision),
        t("column.probability"): t("probability.cell", probability=t.number(row.probability),
                                   threshold=t.number(row.threshold)),
        t("column.quality"): short_quality(t, row.quality),
        t("column.model"): f"{row.model_name} {row.model_version}",
        t("column.clinician"): row.created_by,
        t("column.site"): row.site or "—",
        t("column.result"): str(row.score_id),
    } for row in rows]


def show_timeline(t: Translator, rows: Sequence[HistoryRow], zone: str, *, patient_label: str) -> None:
    """The patient's results: a table and, from two results on, the probability over time against the
    threshold (a clinician sees a trend faster than they read one)."""
    st.subheader(t("timeline.title", patient=patient_label))
    if not rows:
        st.caption(t("timeline.empty"))
        return
    st.dataframe(timeline_rows(t, rows, zone), hide_index=True, width="stretch")
    if len(rows) >= 2:
        figure = trend_figure([local_time(row.created_at, zone) for row in rows], [row.probability for row in rows],
                              [row.threshold for row in rows], t("timeline.plot_title", patient=patient_label),
                              t("column.date"), t("result.probability"), t("result.threshold"))
        st.pyplot(figure)
        plt.close(figure)


def local_time(moment: datetime, zone: str) -> datetime:
    """A stored (naive UTC) time as the wall-clock time of `zone`, for plot axes."""
    return moment.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def patient_label(typed: str | None, pseudonym: str | None) -> str:
    """The identifier as the clinician typed it when known, else the short pseudonym."""
    return typed.strip() if typed and typed.strip() else short_pseudonym(pseudonym)


def show_report_download(t: Translator, store: Store, score_id: int, *, viewer: UserInfo, language: str, zone: str,
                         typed_patient: str | None) -> None:
    """"Prepare report" makes the chart PDF (the same file as `biomarker report`) once, which is the audited
    opening; the download button then hands out those bytes on every rerun without opening the result again."""
    key = f"report_{score_id}_{typed_patient or ''}_{language}"
    if st.button(t("report_button.prepare"), key=f"prepare_{key}"):
        try:
            st.session_state[key] = report_for_result(store, Catalog(), score_id, viewer=viewer, language=language,
                                                      zone=zone, patient_label=typed_patient or None)
        except PatientMismatchError:
            st.error(t("report_button.mismatch"))
    if key in st.session_state:
        st.download_button(t("report_button.download"), st.session_state[key], file_name=report_filename(score_id),
                           mime=MIME_TYPE, key=f"download_{key}")
