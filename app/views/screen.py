"""Screen a patient: identifier, consent, the sentence, ONE recording or upload, then an explicit "Screen" click.

Why the flow is built this way (a recording was once filed under the wrong patient): scoring happens only when
the clinician presses the button that repeats the identifier as typed; the button's click carries the
identifier and the clip it was shown for, and is refused if either changed since; changing the identifier
clears the recorder, the upload and the consent; a recording and an upload pending together block the button.
A rerun never scores again (the request is consumed), and the store refuses a second copy of the same audio for
the same patient.
"""

from __future__ import annotations

import streamlit as st

import context
from biomarker.audio import AUDIO_SUFFIXES
from biomarker.records import AudioError
from biomarker.screener import screen_and_record
from biomarker.store import HistoryFilter
from biomarker.store.auth import SCORE
from biomarker.store.repository import UNREACHABLE_ERRORS
from result_view import (patient_label, show_assessment, show_disclaimer, show_rejection, show_report_download,
                         show_timeline)

# The SPIRA protocol's read sentence (Brazilian Portuguese); the synthetic cohort reads sentences like it.
SENTENCE = "O amor ao próximo ajuda a enfrentar essa fase com a força que a gente precisa."
UPLOAD_TYPES = [suffix.removeprefix(".") for suffix in AUDIO_SUFFIXES]  # the library's one list
GENERATION, REQUEST, OUTCOME = "screen_generation", "screen_request", "screen_outcome"


def _new_patient() -> None:
    """The identifier changed: nothing recorded or ticked for the previous patient may carry over."""
    st.session_state[GENERATION] = st.session_state.get(GENERATION, 0) + 1
    st.session_state["consent"] = False
    for key in (REQUEST, OUTCOME):
        st.session_state.pop(key, None)


def _request_screening(patient: str, generation: int, file_id: str) -> None:
    st.session_state[REQUEST] = (patient, generation, file_id)


t = context.t()
user = context.require(SCORE)
st.title(t("screen.title"))
if not user.site:
    st.error(t("screen.no_site"))
    st.stop()
screener = context.screener()
show_disclaimer(t, screener)
context.flush_spool()
store = context.store()
generation = st.session_state.setdefault(GENERATION, 0)

patient_id = st.text_input(t("screen.patient_id"), key="patient_id", on_change=_new_patient,
                           help=t("screen.patient_id_help")).strip()
consent = st.checkbox(t("screen.consent"), key="consent")
st.markdown(t("screen.read_aloud") + f"\n\n> **{SENTENCE}**")
recorded = st.audio_input(t("screen.record"), sample_rate=16000, key=f"rec-{generation}")
uploaded = st.file_uploader(t("screen.upload"), type=UPLOAD_TYPES, key=f"upl-{generation}")
pending = [clip for clip in (recorded, uploaded) if clip is not None]

blocker = None
if not pending:
    blocker = t("screen.need_clip")
elif len(pending) > 1:
    blocker = t("screen.two_sources")
elif not patient_id:
    blocker = t("screen.need_patient")
elif not consent:
    blocker = t("screen.need_consent")
if blocker and not pending:
    st.info(blocker)
elif blocker:
    st.warning(blocker)
clip = pending[0] if len(pending) == 1 else None
st.button(t("screen.button", patient=patient_id or "…"), key="screen_button", type="primary",
          disabled=blocker is not None, on_click=_request_screening,
          args=(patient_id, generation, clip.file_id if clip is not None else ""))

request = st.session_state.pop(REQUEST, None)
if request is not None and blocker is None:
    if request != (patient_id, generation, clip.file_id):  # the identifier or the clip changed under the click
        st.warning(t("screen.changed_under_click"))
    else:
        with st.spinner(t("screen.scoring")):
            try:
                outcome = screen_and_record(screener, store, clip.getvalue(), name=clip.name, patient_id=patient_id,
                                            actor=user, site=user.site)
            except AudioError as error:
                outcome = error
        st.session_state[OUTCOME] = (patient_id, clip.file_id, outcome)

shown = st.session_state.get(OUTCOME)
if shown is not None and clip is not None and shown[:2] == (patient_id, clip.file_id):
    outcome = shown[2]
    if isinstance(outcome, AudioError):
        show_rejection(t, outcome)
    else:
        record = outcome.record
        if outcome.not_stored is not None:  # a full disk: the screen is the only copy besides the server's log
            st.error(t("screen.not_stored", folder=outcome.not_stored.folder, patient=patient_id))
        elif record.duplicate_of is not None:
            st.warning(t("screen.already_screened", patient=patient_id, result=record.duplicate_of.score_id,
                         when=t.datetime(record.duplicate_of.created_at, context.zone())))
        elif record.stored:
            st.success(t("screen.stored", patient=patient_id, result=record.score_id))
        else:
            st.warning(t("screen.spooled", patient=patient_id))
        show_assessment(t, outcome.assessment, screener, t("screen.this_recording"))
        if record is not None and record.score_id is not None:  # stored now, or earlier (a spooled result has no row yet)
            show_report_download(t, store, record.score_id, viewer=user, language=context.language(),
                                 zone=context.zone(), typed_patient=patient_id)
        try:
            rows = store.history(HistoryFilter(patient_id=patient_id), viewer=user)
        except UNREACHABLE_ERRORS:
            st.caption(t("timeline.unreachable"))
        else:
            show_timeline(t, rows, context.zone(), patient_label=patient_label(patient_id, None))
