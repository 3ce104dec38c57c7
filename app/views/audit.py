"""Exports for a period (CSV or JSON): results for researchers; auditors also get the audit events and the hash
chain's check."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import streamlit as st

import context
from biomarker.store.auth import AUDIT, EXPORT, can

PREVIEW_CHARS = 200_000

t = context.t()
user = context.require(EXPORT)
store = context.store()
auditor = can(user.role, AUDIT)
st.title(t("audit.title") if auditor else t("audit.export_title"))

if auditor:
    check = store.verify_chain()
    if check.ok:
        st.success(t("audit.intact"))
    else:
        st.error(t("audit.broken", event=check.first_bad_id, reason=check.reason))

today = context.now().date()
columns = st.columns(4)
since = columns[0].date_input(t("audit.since"), value=today - timedelta(days=30), key="audit_since")
until = columns[1].date_input(t("history.until"), value=today, key="audit_until")
table = columns[2].selectbox(t("audit.what"), ["results", "audit_events"] if auditor else ["results"],
                             key="audit_table", format_func=lambda name: t(f"audit.table.{name}"))
fmt = columns[3].radio(t("audit.format"), ["csv", "json"], horizontal=True, key="audit_format")
if st.button(t("audit.prepare"), key="audit_export"):
    text = store.export(datetime.combine(since, time.min), datetime.combine(until + timedelta(days=1), time.min), fmt,
                        viewer=user, table=table)
    st.session_state["export"] = (f"biomarker-{table}-{since}-{until}.{fmt}", text)
if "export" in st.session_state:
    file_name, text = st.session_state["export"]
    st.download_button(t("audit.download", file=file_name), text, file_name=file_name, key="audit_download")
    if len(text) <= PREVIEW_CHARS:
        st.code(text, language=file_name.rsplit(".", 1)[1])
    else:
        st.caption(t("audit.too_long", chars=f"{len(text):,}"))
