"""Past results, filtered by patient, date and site. Clinicians only ever see their own site (the store enforces
it too)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, time, timedelta

import streamlit as st

import context
from biomarker.store import HistoryFilter
from biomarker.store.auth import CLINICIAN, HISTORY

user = context.require(HISTORY)
store = context.store()
st.title("History")
st.caption("Patients appear only as pseudonyms; type an identifier to find that patient's results. Times are UTC.")

today = context.now().date()
columns = st.columns(4)
patient_id = columns[0].text_input("Patient identifier", key="history_patient").strip()
since = columns[1].date_input("From", value=today - timedelta(days=30), key="history_since")
until = columns[2].date_input("Until (inclusive)", value=today, key="history_until")
if user.role == CLINICIAN:
    site = user.site
    columns[3].text_input("Site", value=site or "", disabled=True, key="history_site")
else:
    site = columns[3].text_input("Site (empty: all sites)", key="history_site").strip() or None

rows = store.history(
    HistoryFilter(
        patient_id=patient_id or None,
        site=site,
        since=datetime.combine(since, time.min),
        until=datetime.combine(until + timedelta(days=1), time.min),
    ),
    viewer=user,
)
st.write(f"{len(rows)} result(s)")
if rows:
    shown = ("created_at", "patient_pseudonym", "site", "created_by", "probability", "decision", "model_name",
             "model_version", "device", "latency_ms", "duration_s")
    st.dataframe([{k: asdict(row)[k] for k in shown} for row in rows], hide_index=True, width="stretch")
