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
SAMPLES = {
    "Synthetic control (espeak-ng voice, no breathing markers)": "synthetic_control.wav",
    "Synthetic patient (espeak-ng voice with simulated RI markers)": "synthetic_patient.wav",
}

context.require(SCORE)
screener = context.screener()
st.title("Try a sample")
st.info("Both samples are SYNTHETIC speech made with espeak-ng (see app/samples/make_samples.py); no real person "
        "is recorded. They are not stored in the patient database.")
show_disclaimer(screener)
label = st.radio("Sample", list(SAMPLES), key="sample")
path = SAMPLES_DIR / SAMPLES[label]
data = path.read_bytes()
st.audio(data, format="audio/wav")
if st.button("Score this sample", key="score_sample"):
    try:
        assessment = screener.assess(data, name=path.name)
    except AudioError as error:
        show_rejection(error)
    else:
        show_assessment(assessment, screener, f"{label} (synthetic)")
