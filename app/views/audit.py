"""Exports for a period (CSV, JSON or an HL7 FHIR R4 Bundle): results for researchers; auditors also get the audit
events and the hash chain's check."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import streamlit as st

import context
from biomarker.models.catalog import Catalog
from biomarker.store import StoreBusyError
from biomarker.store.auth import AUDIT, EXPORT, can

PREVIEW_CHARS = 200_000

t = context.t()
user = context.require(EXPORT)
store = context.store()
auditor = can(user.role, AUDIT)
st.title(t("audit.title") if auditor else t("audit.export_title"))

if auditor:
    try:
        check = store.verify_chain()
    except StoreBusyError:
        st.warning(t("audit.busy"))
    else:
        if check.ok:
            st.success(t("audit.intact", events=check.checked, anchored=check.anchored_seq))
        else:
            st.error(t("audit.broken", table=check.table, event=check.first_bad_id, reason=check.reason))

today = context.now().date()
columns = st.columns(4)
since = columns[0].date_input(t("audit.since"), value=today - timedelta(days=30), key="audit_since")
until = columns[1].date_input(t("history.until"), value=today, key="audit_until")
table = columns[2].selectbox(t("audit.what"), ["results", "audit_events"] if auditor else ["results"],
                             key="audit_table", format_func=lambda name: t(f"audit.table.{name}"))
fmt = columns[3].radio(t("audit.format"), ["csv", "json", "fhir"], horizontal=True, key="audit_format",
                       format_func=lambda name: t("audit.format_fhir") if name == "fhir" else name)
if fmt == "fhir":
    st.caption(t("audit.fhir_note"))
if st.button(t("audit.prepare"), key="audit_export"):
    start, end = datetime.combine(since, time.min), datetime.combine(until + timedelta(days=1), time.min)
    if fmt == "fhir":
        # imported here: fhir.resources builds its models on import (about a second), which only this download needs
        from biomarker.fhir import export_bundle, to_json

        made = export_bundle(store, start, end, viewer=user, table=table, catalog=Catalog(),
                             language=context.language(), zone=context.zone())
        st.session_state["export"] = (f"biomarker-{table}-{since}-{until}.fhir.json", to_json(made.bundle))
    else:
        text = store.export(start, end, fmt, viewer=user, table=table)
        st.session_state["export"] = (f"biomarker-{table}-{since}-{until}.{fmt}", text)
    # a CSV has no room for the chain's signed head (JSON and FHIR carry it): it is offered beside the file
    st.session_state["export_anchor"] = store.anchor_head(witness=False).to_json() if fmt == "csv" else None
if "export" in st.session_state:
    file_name, text = st.session_state["export"]
    st.download_button(t("audit.download", file=file_name), text, file_name=file_name, key="audit_download")
    if st.session_state.get("export_anchor"):
        st.download_button(t("audit.download_anchor"), st.session_state["export_anchor"] + "\n",
                           file_name=f"{file_name}.anchor.json", key="audit_download_anchor")
        st.caption(t("audit.anchor_note"))
    if len(text) <= PREVIEW_CHARS:
        st.code(text, language=file_name.rsplit(".", 1)[1])
    else:
        st.caption(t("audit.too_long", chars=f"{len(text):,}"))
