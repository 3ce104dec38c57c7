"""Performance by subgroup: sensitivity, specificity and AUROC by sex, age band, language, noise, codec, channel
and severity band, wherever the manifest carries the column, with 95 % CIs and the best-worst gap.

WHY: a screener that is fine on average can miss most patients of one group (TRIPOD+AI; FDA's draft guidance on
AI-enabled device software). The groups are read from the manifest only (never guessed from audio), a row whose
column is empty belongs to no group of that kind, and each group is pooled to subjects like the whole set.

Sensitivity and specificity get Wilson score intervals (a group may hold one class only, where a stratified
bootstrap cannot run); AUROC gets the same stratified subject bootstrap as every report. Severity bands hold the
patients of one band against every control of the set (controls have no severity), so a band's specificity is
the set's and is not repeated. The gap (best minus worst) is over groups with at least `min_subjects` subjects
of the classes the metric needs, so a group of two cannot make the gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy.stats import binomtest

from biomarker.cohorts.manifest import CohortItem
from biomarker.evaluate.calibration import SubjectPooling
from biomarker.evaluate.metrics import auroc, bootstrap_ci

AGE_BANDS = ((0, 40, "<40"), (40, 60, "40-59"), (60, 80, "60-79"), (80, 200, "80+"))
SEVERITY_BANDS = ((0.0, 0.4, "mild"), (0.4, 0.7, "moderate"), (0.7, 10.0, "severe"))  # as biomarker.independent
METRICS = ("sensitivity", "specificity", "auroc")


@dataclass(frozen=True)
class SubgroupConfig:
    """`min_subjects`: fewest subjects of a class for a group to enter the gap (a metric on fewer is noise)."""

    min_subjects: int = 10
    resamples: int = 1000
    seed: int = 0
    level: float = 0.95


def _extra(*columns: str) -> Callable[[CohortItem], str | None]:
    def read(item: CohortItem) -> str | None:
        for column in columns:
            value = (item.extras.get(column) or "").strip()
            if value:
                return value
        return None

    return read


def _age_band(item: CohortItem) -> str | None:
    if item.age is None:
        return None
    return next(label for low, high, label in AGE_BANDS if low <= item.age < high)


def _severity_band(item: CohortItem) -> str | None:
    """A patient's band (the manifest's `severity_band`, else from its numeric `severity`); controls: none."""
    if item.label == 0:
        return None
    named = (item.extras.get("severity_band") or "").strip()
    if named:
        return named
    severity = (item.extras.get("severity") or "").strip()
    if not severity:
        return None
    return next(label for low, high, label in SEVERITY_BANDS if low <= float(severity) < high)


# subgroup kind -> how a row's group is read (the first non-empty column wins)
KINDS: dict[str, Callable[[CohortItem], str | None]] = {
    "sex": lambda item: item.sex,
    "age band": _age_band,
    "language": _extra("language"),
    "noise": _extra("ambient", "ward_noise", "noise"),
    "codec": _extra("codec", "origin_codec"),
    "channel": _extra("channel"),
    "severity band": _severity_band,
}
PATIENTS_ONLY = {"severity band"}  # groups of patients, each measured against every control of the set


def _wilson(successes: int, trials: int, level: float) -> list[float] | None:
    if trials == 0:
        return None
    interval = binomtest(successes, trials).proportion_ci(confidence_level=level, method="wilson")
    return [float(interval.low), float(interval.high)]


def measure_group(scores: np.ndarray, labels: np.ndarray, threshold: float, config: SubgroupConfig) -> dict:
    """One group's subjects: counts, sensitivity and specificity with Wilson CIs, AUROC with a bootstrap CI."""
    patients, controls = scores[labels == 1], scores[labels == 0]
    caught, cleared = int(np.sum(patients >= threshold)), int(np.sum(controls < threshold))
    both = len(patients) > 0 and len(controls) > 0
    return {
        "n": int(len(scores)),
        "n_patients": int(len(patients)),
        "sensitivity": caught / len(patients) if len(patients) else None,
        "sensitivity_ci": _wilson(caught, len(patients), config.level),
        "specificity": cleared / len(controls) if len(controls) else None,
        "specificity_ci": _wilson(cleared, len(controls), config.level),
        "auroc": auroc(scores, labels) if both else None,
        "auroc_ci": list(bootstrap_ci(auroc, scores, labels, resamples=config.resamples, seed=config.seed,
                                      level=config.level)) if both else None,
    }


def _gaps(groups: dict[str, dict], min_subjects: int, patients_only: bool) -> dict[str, dict]:
    """Best minus worst per metric, over the groups with enough subjects of the classes that metric needs."""
    needs = {"sensitivity": ("n_patients",), "specificity": ("n_controls",), "auroc": ("n_patients", "n_controls")}
    gaps = {}
    for metric in METRICS:
        if patients_only and metric == "specificity":
            continue
        eligible = {name: g[metric] for name, g in groups.items() if g[metric] is not None
                    and all(g[count] >= min_subjects for count in needs[metric])}
        if len(eligible) >= 2:
            best, worst = max(eligible, key=eligible.get), min(eligible, key=eligible.get)
            gaps[metric] = {"gap": eligible[best] - eligible[worst], "best": best, "worst": worst}
    return gaps


def subgroup_metrics(items: Sequence[CohortItem], probabilities: Sequence[float], subjects: Sequence[str],
                     threshold: float, pooling: SubjectPooling = SubjectPooling(),
                     config: SubgroupConfig = SubgroupConfig()) -> dict[str, dict]:
    """Per subgroup kind present in `items`: {"groups": {name: metrics}, "gaps": {metric: gap, best, worst}}.

    `items[k]` was scored `probabilities[k]` (calibrated) and belongs to subject `subjects[k]`; a kind no row
    carries is left out, so the report says which columns the manifest lacked."""
    probabilities = np.asarray(probabilities, float)
    labels = np.array([item.label for item in items])
    found: dict[str, dict] = {}
    for kind, read in KINDS.items():
        membership = [read(item) for item in items]
        names = sorted({m for m in membership if m is not None})
        if not names:
            continue
        groups = {}
        for name in names:
            rows = [k for k, m in enumerate(membership) if m == name or (kind in PATIENTS_ONLY and labels[k] == 0)]
            pooled = pooling.pool(probabilities[rows], labels[rows], [subjects[k] for k in rows])
            measured = measure_group(pooled.scores, pooled.labels, threshold, config)
            groups[name] = {**measured, "n_controls": measured["n"] - measured["n_patients"]}
        found[kind] = {"groups": groups, "gaps": _gaps(groups, config.min_subjects, kind in PATIENTS_ONLY),
                       "unassigned_rows": int(sum(m is None for m, y in zip(membership, labels)
                                                  if not (kind in PATIENTS_ONLY and y == 0)))}
    return found


def _cell(value: float | None, ci: list[float] | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def markdown(subgroups: dict[str, dict], set_name: str, min_subjects: int = SubgroupConfig.min_subjects) -> str:
    """One table per subgroup kind of one set, then its best-worst gaps."""
    lines = []
    for kind, block in subgroups.items():
        lines += [f"#### {set_name}: by {kind}", "",
                  "| group | subjects (RI) | sensitivity [95% CI] | specificity [95% CI] | AUROC [95% CI] |",
                  "|---|---|---|---|---|"]
        for name, g in block["groups"].items():
            spec = "(all controls)" if kind in PATIENTS_ONLY else _cell(g["specificity"], g["specificity_ci"])
            lines.append(f"| {name} | {g['n']} ({g['n_patients']}) | {_cell(g['sensitivity'], g['sensitivity_ci'])} | "
                         f"{spec} | {_cell(g['auroc'], g['auroc_ci'])} |")
        gaps = "; ".join(f"{metric} {gap['gap']:.3f} ({gap['best']} best, {gap['worst']} worst)"
                         for metric, gap in block["gaps"].items())
        lines += ["", f"Best-worst gap (groups with >= {min_subjects} subjects of the classes needed): "
                      f"{gaps or 'fewer than two groups large enough'}."]
        if block["unassigned_rows"]:
            lines.append(f"{block['unassigned_rows']} row(s) have no {kind} recorded and are in no group.")
        lines.append("")
    return "\n".join(lines)
