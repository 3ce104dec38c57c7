"""Try a sample: the whole screening flow on two bundled SYNTHETIC recordings, for a user without a microphone.

Samples are scored exactly like a patient's recording but are not written to the patient database.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

import context
from biomarker.records import AudioError
from biomarker.store.auth import SCORE
from result_view import show_assessment, show_disclaimer, show_rejection

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"
SAMPLES = {"samples.control": "synthetic_control.wav", "samples.patient": "synthetic_patient.wav"}

t = context.t()
context.require(SCORE)
screener = context.screener()
st.title(t("samples.title"))
st.info(t("samples.info"))
show_disclaimer(t, screener)
label = st.radio(t("samples.pick"), list(SAMPLES), key="sample", format_func=t)
path = SAMPLES_DIR / SAMPLES[label]
data = path.read_bytes()
st.audio(data, format="audio/wav")
if st.button(t("samples.button"), key="score_sample"):
    try:
        assessment = screener.assess(data, name=path.name)
    except AudioError as error:
        show_rejection(t, error)
    else:
        show_assessment(t, assessment, screener, t(label))
