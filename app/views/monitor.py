"""Drift monitoring for researchers and admins: per site and week, recordings, refusals by reason, SNR, duration
and score distributions and the referral rate, against the validation reference of the version that scored them.

An alert is shown here; when an admin opens the page it is also written to the audit trail (once per session and
site-week), as `biomarker monitor` does. The store lets only admins write model events, so a researcher's view
says the alert still needs an admin's view or the CLI to be audited.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, time, timedelta
from pathlib import Path

import streamlit as st

import context
from biomarker.governance.drift import DriftBounds, site_png, weekly_drift
from biomarker.governance.reference import references_for
from biomarker.models.catalog import Catalog
from biomarker.store.monitoring import MONITOR, refusals, screenings

t = context.t()
user = context.require(MONITOR)
store = context.store()
st.title(t("monitor.title"))
bounds = DriftBounds()
st.caption(t("monitor.caption", psi=bounds.psi_alert, ks=bounds.ks_alpha, referral=bounds.referral_rate_delta,
             refusal=bounds.refusal_rate_delta, minimum=bounds.min_recordings))

today = context.now().date()
columns = st.columns(3)
since = columns[0].date_input(t("history.since"), value=today - timedelta(days=28), key="monitor_since")
until = columns[1].date_input(t("history.until"), value=today, key="monitor_until")
site = columns[2].text_input(t("history.site_any"), key="monitor_site").strip() or None
start, end = datetime.combine(since, time.min), datetime.combine(until + timedelta(days=1), time.min)
rows = screenings(store, viewer=user, since=start, until=end, site=site)
refused = refusals(store, viewer=user, since=start, until=end, site=site)
if not rows and not refused:
    st.info(t("monitor.nothing"))
    st.stop()

references, _ = references_for(Catalog(), (row.model for row in rows))  # a model without one is warned of below
weeks = weekly_drift(rows, refused, references, bounds)
for model, reference in references.items():
    if reference is None:
        st.warning(t("monitor.no_reference", model=model))

alerts = [w for w in weeks if w.alerts]
audited = st.session_state.setdefault("monitor_audited", set())
for week in alerts:
    st.error(t("monitor.alert", site=week.site, week=week.week.isoformat(), model=week.model,
               alerts="; ".join(week.alerts)))
    key = (week.site, week.week.isoformat(), week.model, tuple(week.alerts))
    if key not in audited:  # every role that sees this page may record what it saw
        store.record_model_event(actor=user, action="drift_alert", ref=week.model, payload=week.alert_payload())
        audited.add(key)
if alerts:
    st.caption(t("monitor.audited"))
else:
    st.success(t("monitor.no_alert"))

st.dataframe([{t("column.site"): w.site, t("monitor.week"): w.week.isoformat(), t("monitor.model"): w.model,
               t("monitor.recordings"): w.recordings,
               t("monitor.refusals"): ", ".join(f"{k} {n}" for k, n in sorted(w.refusals.items())) or "0",
               t("monitor.referral_rate"): round(w.referral_rate, 3),
               t("monitor.score_median"): w.quantiles["probability"][1], t("monitor.snr_median"): w.quantiles["snr_db"][1],
               t("monitor.duration_median"): w.quantiles["duration_s"][1],
               t("monitor.psi"): " / ".join("–" if w.psi.get(v) is None else f"{w.psi[v]:.2f}"
                                            for v in ("probability", "snr_db", "duration_s")),
               t("monitor.verdict"): "; ".join(w.alerts) or w.note or t("monitor.stable")} for w in weeks],
             hide_index=True, use_container_width=True)
with tempfile.TemporaryDirectory() as folder:
    for name in sorted({w.site for w in weeks if w.recordings}):
        st.image(str(site_png(name, weeks, rows, references, bounds, Path(folder) / f"drift-{name}.png")),
                 caption=t("monitor.plot_caption", site=name))
