"""Past results, filtered by patient, date and site, in the result page's words; open one to see its details.

Clinicians only ever see their own site (the store enforces it too). Typing an identifier shows that patient's
timeline (table and trend); opening a result, hearing its audio and printing its report are audit events.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

import streamlit as st

import context
from biomarker.records import AudioError
from biomarker.store import HistoryFilter
from biomarker.store.auth import CLINICIAN, HISTORY, LISTEN, can
from biomarker.store.pseudonym import short_pseudonym
from result_view import (decision_words, patient_label, quality_in_words, show_decision, show_model_line, show_plots,
                         show_report_download, show_timeline, timeline_rows)

t = context.t()
user = context.require(HISTORY)
store = context.store()
zone = context.zone()
st.title(t("history.title"))
st.caption(t("history.caption", zone=zone))

today = context.now().date()
columns = st.columns(4)
patient_id = columns[0].text_input(t("screen.patient_id"), key="history_patient").strip()
since = columns[1].date_input(t("history.since"), value=today - timedelta(days=30), key="history_since")
until = columns[2].date_input(t("history.until"), value=today, key="history_until")
if user.role == CLINICIAN:
    site = user.site
    columns[3].text_input(t("column.site"), value=site or "", disabled=True, key="history_site")
else:
    site = columns[3].text_input(t("history.site_any"), key="history_site").strip() or None

rows = store.history(
    HistoryFilter(
        patient_id=patient_id or None,
        site=site,
        since=datetime.combine(since, time.min),
        until=datetime.combine(until + timedelta(days=1), time.min),
    ),
    viewer=user,
)
if patient_id:
    show_timeline(t, rows, zone, patient_label=patient_id)
else:
    st.write(t("history.count", count=len(rows)))
    if rows:
        table = timeline_rows(t, rows, zone)
        for entry, row in zip(table, rows):
            entry[t("column.patient")] = short_pseudonym(row.patient_pseudonym)
        st.dataframe(table, hide_index=True, width="stretch",
                     column_order=[t("column.date"), t("column.patient"), t("column.decision"),
                                   t("column.probability"), t("column.quality"), t("column.clinician"),
                                   t("column.site"), t("column.model"), t("column.result")])

if rows:
    st.subheader(t("history.open_title"))
    by_id = {row.score_id: row for row in rows}
    chosen = st.selectbox(t("history.open_pick"), list(by_id), key="history_pick", format_func=lambda score_id: (
        f"#{score_id} · {t.datetime_short(by_id[score_id].created_at, zone)} · "
        f"{patient_label(patient_id, by_id[score_id].patient_pseudonym)} · {decision_words(t, by_id[score_id].decision)}"))
    if st.button(t("history.open_button"), key="history_open"):
        st.session_state["history_opened"] = store.open_result(chosen, viewer=user, purpose="details")
    opened = st.session_state.get("history_opened")
    if opened is not None and opened.score_id in by_id:
        st.markdown(t("history.detail_line", result=opened.score_id, when=t.datetime(opened.created_at, zone),
                      patient=patient_label(patient_id, opened.patient_pseudonym), clinician=opened.created_by,
                      site=opened.site or "—"))
        st.success(quality_in_words(t, opened.quality))
        show_decision(t, opened.decision, opened.probability, opened.threshold)
        show_model_line(t, opened.model_name, opened.model_version, opened.cohort, opened.device, opened.latency_ms)
        show_report_download(t, store, opened.score_id, viewer=user, language=context.language(), zone=zone,
                             typed_patient=patient_id or None)
        if can(user.role, LISTEN):
            if st.button(t("history.listen_button"), key="history_listen"):
                store.open_result(opened.score_id, viewer=user, purpose="audio")
                st.session_state["history_listening"] = opened.score_id
            if st.session_state.get("history_listening") == opened.score_id:
                screener = context.screener()
                try:
                    data = store.audio_file(opened.audio_path).read_bytes()
                    recording = screener.load_audio(data, name=opened.audio_path)
                except OSError as error:  # the stored file is gone or unreadable: say so, keep the page
                    st.error(t("history.audio_unreadable", error=error.strerror or type(error).__name__))
                except AudioError as error:  # a stored file that no longer decodes
                    st.error(t("history.audio_unreadable", error=error.problem))
                else:
                    st.audio(data)
                    show_plots(t, screener, recording.samples, recording.sample_rate_hz,
                               screener.features_for_display(recording), f"#{opened.score_id}")
