"""How one screening result is shown (shared by the Screen and Try-a-sample pages, so both read the same)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import streamlit as st

from biomarker.records import AudioError, QualityReport
from biomarker.screener import Assessment, Screener
from plots import mfccgram_figure, waveform_figure

DECISION_WORDS = {
    "positive": "Refer for SpO2 check",
    "negative": "No sign of respiratory insufficiency",
}
SYNTHETIC_DISCLAIMER = (
    "This model was trained on SYNTHETIC speech only and has not been clinically validated. "
    "It is a screening aid (refer for an SpO2 check), never an SpO2 estimate or a diagnosis."
)


def quality_in_words(quality: QualityReport) -> str:
    return (
        f"Good recording: {quality.duration_s:.1f} s, speech in {quality.speech_ratio:.0%} of it, "
        f"{quality.clipping_ratio:.1%} clipped samples, estimated signal-to-noise {quality.snr_db:.0f} dB."
    )


def show_rejection(error: AudioError) -> None:
    """A bad recording: say what is wrong in plain words and what to do; nothing was scored or stored."""
    st.error(f"The recording cannot be screened: {error.problem}. Nothing was stored as a score. "
             "Please record again in a quiet room, speaking the whole sentence.")


def show_disclaimer(screener: Screener) -> None:
    if screener.trained_on_synthetic:
        st.warning(SYNTHETIC_DISCLAIMER)


def show_assessment(assessment: Assessment, screener: Screener, label: str) -> None:
    """Quality, decision, probability, model identity, device, latency, then the two plots."""
    score = assessment.score
    st.success(quality_in_words(assessment.quality))
    words = DECISION_WORDS[score.decision]
    (st.error if score.refer else st.info)(f"**{words}**")
    columns = st.columns(4)
    columns[0].metric("Probability of RI", f"{score.probability:.2f}", help="calibrated; refer at or above the threshold")
    columns[1].metric("Threshold", f"{score.threshold:.2f}", help="the model's operating point")
    columns[2].metric("Device", score.device)
    columns[3].metric("Latency", f"{score.latency_ms:.0f} ms")
    st.caption(f"Model **{score.model_name}** version **{score.model_version}**, cohort {score.cohort}.")
    recording = assessment.recording
    figures = (
        waveform_figure(recording.samples, recording.sample_rate_hz, f"Waveform: {label}"),
        mfccgram_figure(screener.features_for_display(recording), screener.display_frames_per_second,
                        f"MFCC-gram: {label}"),
    )
    for figure in figures:
        st.pyplot(figure)
        plt.close(figure)
