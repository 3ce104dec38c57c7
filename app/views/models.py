"""Model versions for researchers and admins: which version is the default, each version's acceptance table (the
last `biomarker models promote` or `--check` of it) and its card's machine-readable header.

Reads the catalog and the acceptance records only (no model is loaded, no torch): evaluating and promoting stay
CLI acts by an admin at the server, where the audit event is written with the decision.
"""

from __future__ import annotations

import streamlit as st

import context
from biomarker.governance.acceptance import read_records
from biomarker.governance.cards import CardError, read_card
from biomarker.models.catalog import Catalog
from biomarker.store.monitoring import MONITOR

t = context.t()
user = context.require(MONITOR)
st.title(t("models_page.title"))
st.caption(t("models_page.caption"))

catalog = Catalog()
versions = catalog.versions()
records = read_records(catalog.user_root)
if not versions:
    st.info(t("models_page.none"))
    st.stop()
st.dataframe([{t("models_page.version"): v.ref, t("models_page.default"): "✓" if v.is_default else "",
               t("models_page.source"): v.source, t("models_page.parent"): v.parent or "",
               t("models_page.cohorts"): ", ".join(v.cohorts), t("models_page.integrity"): v.integrity,
               t("models_page.acceptance"): t(f"models_page.decision.{records[v.ref]['decision']}")
               if v.ref in records else t("models_page.not_checked")}
              for v in versions], hide_index=True, use_container_width=True)

for version in versions:
    record = records.get(version.ref)
    label = t("models_page.version_heading", ref=version.ref) + (f" — {t('models_page.default')}" if version.is_default else "")
    with st.expander(label, expanded=version.is_default):
        if record is None:
            st.caption(t("models_page.not_checked_hint", ref=version.ref))
        else:
            words = t(f"models_page.decision.{record['decision']}")
            (st.success if record["passed"] else st.error)(
                t("models_page.decision_line", decision=words, default=record["default"], actor=record["actor"],
                  when=record["decided_utc"], plan=record["plan"], sha=record["plan_sha256"][:12]))
            if record.get("reason"):
                st.warning(t("models_page.override_reason", reason=record["reason"]))
            st.dataframe([{t("models_page.set"): c["set"], t("models_page.criterion"): c["criterion"],
                           t("models_page.required"): c["required"], t("models_page.candidate"): c["candidate"],
                           t("models_page.current_default"): c["default"],
                           t("models_page.result"): t("models_page.pass") if c["passed"] else t("models_page.fail"),
                           t("models_page.note"): c["note"]} for c in record["checks"]],
                         hide_index=True, use_container_width=True)
        if version.card_path is not None:
            try:
                header = read_card(version.card_path).header
            except CardError as error:
                st.caption(t("models_page.no_header", reason=str(error)))
            else:
                st.caption(t("models_page.card_header", license=header.get("license"),
                             use=" ".join(str(header.get("intended_use", "")).split())))
