"""Drift monitoring: each site's weeks against the validation reference of the model version that scored them.

WHY: a deployed screener meets microphones, rooms and patients its validation never saw, and its threshold need
not hold there (FDA's draft guidance on AI-enabled device software asks for performance monitoring after
deployment). Labels arrive late or never, so what can be watched at once is what goes in and comes out: the
recordings' SNR and duration, the refusals of the quality gate, the score distribution and the referral rate.

Per (site, ISO week, model version): recordings; refusals by reason; SNR, duration and score quantiles; referral
rate; the population stability index (PSI) of score, SNR and duration against the reference, and the two-sample
KS statistic and p-value beside it (scipy). Bounds (`DriftBounds`, stated in every output):
- on any of the three, PSI > 0.25 (the conventional "significant shift"; < 0.1 stable, 0.1-0.25 moderate) AND a KS
  p-value < 0.01: PSI over 10 bins is biased upwards by about 9 / n on small weeks (40 recordings from the very
  reference distribution average ~0.22), so the KS test must also say the difference is not chance;
- referral rate more than 0.15 away from the reference's;
- refusal rate more than 0.15 above the reference's;
- a week with fewer than 30 recordings is shown but not judged: PSI over a handful of values is noise.
Crossing a bound is an alert; the CLI exits non-zero and writes a `drift_alert` audit event per alert, and the app
page shows it. No torch: the app imports this module.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.stats import ks_2samp

from biomarker.governance.reference import VARIABLES, ValidationReference
from biomarker.store.monitoring import RefusalRow, ScreeningRow

PSI_FLOOR = 1e-4  # share given to an empty bin, so an empty bin counts as a large (finite) shift
PSI_BINS = 10


@dataclass(frozen=True)
class DriftBounds:
    psi_alert: float = 0.25
    ks_alpha: float = 0.01
    referral_rate_delta: float = 0.15
    refusal_rate_delta: float = 0.15
    min_recordings: int = 30

    def describe(self) -> str:
        return (f"alert when PSI > {self.psi_alert} with a KS p-value < {self.ks_alpha} (score, SNR or duration), "
                f"referral rate off the reference by "
                f"> {self.referral_rate_delta}, or refusal rate above it by > {self.refusal_rate_delta}; weeks with "
                f"< {self.min_recordings} recordings are not judged")


def psi(reference: np.ndarray, observed: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index over the reference's quantile bins: sum (o - r) ln(o / r) of bin shares."""
    reference, observed = np.asarray(reference, float), np.asarray(observed, float)
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1))[1:-1])
    expected = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1) / len(reference)
    actual = np.bincount(np.searchsorted(edges, observed, side="right"), minlength=len(edges) + 1) / len(observed)
    expected, actual = np.maximum(expected, PSI_FLOOR), np.maximum(actual, PSI_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def week_of(moment: datetime) -> date:
    """The Monday starting the ISO week of `moment`."""
    day = moment.date()
    return day - timedelta(days=day.weekday())


@dataclass
class WeekDrift:
    site: str
    week: date
    model: str
    recordings: int
    refusals: dict[str, int]
    refusal_rate: float
    referral_rate: float
    quantiles: dict[str, list[float | None]]  # variable -> [p10, p50, p90]
    psi: dict[str, float | None] = field(default_factory=dict)
    ks: dict[str, list[float] | None] = field(default_factory=dict)  # variable -> [statistic, p-value]
    judged: bool = False
    alerts: list[str] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict:
        return {**asdict(self), "week": self.week.isoformat()}

    def alert_payload(self) -> dict:
        """What a `drift_alert` audit event records (the same from the CLI and the app page)."""
        return {"site": self.site, "week": self.week.isoformat(), "alerts": self.alerts, "recordings": self.recordings,
                "psi": self.psi, "referral_rate": self.referral_rate, "refusal_rate": self.refusal_rate}


def _values(rows: Sequence[ScreeningRow], variable: str) -> np.ndarray:
    values = np.array([getattr(r, variable) for r in rows if getattr(r, variable) is not None], float)
    return values[np.isfinite(values)]


def weekly_drift(rows: Sequence[ScreeningRow], refused: Sequence[RefusalRow],
                 references: dict[str, ValidationReference | None], bounds: DriftBounds = DriftBounds()) -> list[WeekDrift]:
    """One `WeekDrift` per (site, week, model) with recordings, and per (site, week) with only refusals.

    Refused attempts name no model (the gate stops them before scoring), so a site-week's refusals are shown
    with each of its model groups."""
    groups: dict[tuple[str, date, str], list[ScreeningRow]] = {}
    for row in rows:
        groups.setdefault((row.site or "-", week_of(row.occurred_at), row.model), []).append(row)
    refusals_by: dict[tuple[str, date], Counter] = {}
    for row in refused:
        refusals_by.setdefault((row.site or "-", week_of(row.occurred_at)), Counter())[row.reason] += 1
    for site, week in refusals_by:
        if not any(key[:2] == (site, week) for key in groups):
            groups[(site, week, "-")] = []
    found = []
    for (site, week, model), members in sorted(groups.items()):
        counts = refusals_by.get((site, week), Counter())
        attempts = len(members) + sum(counts.values())
        drift = WeekDrift(
            site, week, model, len(members), dict(counts), sum(counts.values()) / attempts if attempts else 0.0,
            float(np.mean([r.referred for r in members])) if members else 0.0,
            {v: ([float(q) for q in np.quantile(_values(members, v), [0.1, 0.5, 0.9])] if len(_values(members, v))
                 else [None, None, None]) for v in VARIABLES},
        )
        _judge(drift, members, references.get(model), bounds)
        found.append(drift)
    return found


def _judge(drift: WeekDrift, members: Sequence[ScreeningRow], reference: ValidationReference | None,
           bounds: DriftBounds) -> None:
    if reference is None:
        drift.note = f"no validation reference for {drift.model}: not judged"
        return
    for variable in VARIABLES:
        observed = _values(members, variable)
        if len(observed):
            drift.psi[variable] = psi(reference.values(variable), observed)
            result = ks_2samp(reference.values(variable), observed)
            drift.ks[variable] = [float(result.statistic), float(result.pvalue)]
    if drift.recordings < bounds.min_recordings:
        drift.note = f"{drift.recordings} recordings (< {bounds.min_recordings}): shown, not judged"
        return
    drift.judged = True
    for variable, value in drift.psi.items():
        statistic, p_value = drift.ks[variable]
        if value > bounds.psi_alert and p_value < bounds.ks_alpha:
            drift.alerts.append(f"{variable} PSI {value:.2f} > {bounds.psi_alert} (KS {statistic:.2f}, p {p_value:.1e})")
    if abs(drift.referral_rate - reference.referral_rate) > bounds.referral_rate_delta:
        drift.alerts.append(f"referral rate {drift.referral_rate:.2f} vs reference {reference.referral_rate:.2f} "
                            f"(bound ±{bounds.referral_rate_delta})")
    if drift.refusal_rate - reference.refusal_rate > bounds.refusal_rate_delta:
        drift.alerts.append(f"refusal rate {drift.refusal_rate:.2f} vs reference {reference.refusal_rate:.2f} "
                            f"(bound +{bounds.refusal_rate_delta})")


def markdown(weeks: Sequence[WeekDrift], bounds: DriftBounds) -> str:
    lines = ["| site | week | model | recordings | refusals | referral rate | score p50 | SNR p50 | duration p50 | "
             "PSI score / SNR / duration | alerts |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for w in weeks:
        def median(variable: str) -> str:
            value = w.quantiles[variable][1]
            return "–" if value is None else f"{value:.3f}"

        psis = " / ".join("–" if w.psi.get(v) is None else f"{w.psi[v]:.2f}" for v in VARIABLES)
        refusals = ", ".join(f"{k} {n}" for k, n in sorted(w.refusals.items())) or "0"
        lines.append(f"| {w.site} | {w.week.isoformat()} | {w.model} | {w.recordings} | {refusals} | "
                     f"{w.referral_rate:.3f} | {median('probability')} | {median('snr_db')} | {median('duration_s')} | "
                     f"{psis} | {'; '.join(w.alerts) or w.note or 'none'} |")
    return "\n".join(lines + ["", f"Bounds: {bounds.describe()}."])


def site_png(site: str, weeks: Sequence[WeekDrift], rows: Sequence[ScreeningRow],
             references: dict[str, ValidationReference | None], bounds: DriftBounds, path: Path) -> Path:
    """Three panels for one site: PSI per week (bound drawn), referral rate per week against the reference, and
    the period's score histogram over the reference's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [w for w in weeks if w.site == site and w.recordings]
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for variable in VARIABLES:
        axes[0].plot([w.week for w in mine], [w.psi.get(variable, np.nan) for w in mine], marker="o", label=variable)
    axes[0].axhline(bounds.psi_alert, color="red", linestyle="--", label=f"alert > {bounds.psi_alert}")
    axes[0].set_title("PSI against the validation reference")
    axes[0].legend(fontsize=7)
    axes[1].plot([w.week for w in mine], [w.referral_rate for w in mine], marker="o", label="observed")
    for model in sorted({w.model for w in mine}):
        reference = references.get(model)
        if reference is not None:
            axes[1].axhspan(reference.referral_rate - bounds.referral_rate_delta,
                            reference.referral_rate + bounds.referral_rate_delta, alpha=0.15, label=f"{model} bound")
    axes[1].set_ylim(0, 1)
    axes[1].set_title("referral rate per week")
    axes[1].legend(fontsize=7)
    scores = [r.probability for r in rows if (r.site or "-") == site]
    bins = np.linspace(0, 1, 21)
    axes[2].hist(scores, bins=bins, density=True, alpha=0.6, label=f"{site} ({len(scores)})")
    for model in sorted({w.model for w in mine}):
        reference = references.get(model)
        if reference is not None:
            axes[2].hist(reference.values("probability"), bins=bins, density=True, histtype="step", linewidth=2,
                         label=f"reference {model}")
    axes[2].set_title("score distribution")
    axes[2].legend(fontsize=7)
    for axis in axes[:2]:
        axis.tick_params(axis="x", labelrotation=30, labelsize=7)
    figure.suptitle(f"drift at site {site}")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
