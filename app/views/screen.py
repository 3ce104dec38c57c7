"""Screen a patient: identifier (pseudonymised by the store), consent, the sentence, record or upload, result."""

from __future__ import annotations

import streamlit as st

import context
from biomarker.records import AudioError
from biomarker.screener import screen_and_record
from biomarker.store.auth import SCORE
from result_view import show_assessment, show_disclaimer, show_rejection

# The SPIRA protocol's read sentence (Brazilian Portuguese); the synthetic cohort reads sentences like it.
SENTENCE = "O amor ao próximo ajuda a enfrentar essa fase com a força que a gente precisa."
UPLOAD_TYPES = ["wav", "flac", "ogg", "mp3", "gsm"]

user = context.require(SCORE)
screener = context.screener()
st.title("Screen a patient")
show_disclaimer(screener)
context.flush_spool()

patient_id = st.text_input("Patient identifier", key="patient_id",
                           help="Turned into a keyed pseudonym before storage; the identifier itself is never stored.")
consent = st.checkbox("The patient consented to this recording and its use for screening.", key="consent")
st.markdown(f"Ask the patient to read aloud, at their normal pace:\n\n> **{SENTENCE}**")
recorded = st.audio_input("Record the patient", sample_rate=16000, key="rec")
uploaded = st.file_uploader("... or upload a recording", type=UPLOAD_TYPES, key="upl")
clip = recorded if recorded is not None else uploaded

if clip is None:
    st.info("Record or upload the sentence to screen.")
elif not patient_id.strip():
    st.warning("Enter the patient identifier before screening.")
elif not consent:
    st.warning("Screening needs the patient's consent: tick the box above.")
else:
    # Streamlit reruns the page on every click: score each clip once and keep its outcome for this session.
    key = (clip.file_id, patient_id.strip())
    if st.session_state.get("screened_key") != key:
        with st.spinner("Scoring ..."):
            try:
                st.session_state["screened"] = screen_and_record(
                    screener, context.store(), clip.getvalue(), name=clip.name, patient_id=patient_id.strip(),
                    actor=user, site=user.site,
                )
            except AudioError as error:
                st.session_state["screened"] = error
        st.session_state["screened_key"] = key
    outcome = st.session_state["screened"]
    if isinstance(outcome, AudioError):
        show_rejection(outcome)
    else:
        if outcome.record.stored:
            st.caption(f"Stored for patient pseudonym `{context.store().pseudonymise(patient_id.strip())}`.")
        else:
            st.warning(f"{outcome.record.message} Nothing is lost.")
        show_assessment(outcome.assessment, screener, "this recording")
