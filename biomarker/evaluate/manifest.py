"""Evaluate scored manifest rows: pooled and per-cohort metrics at the model's frozen operating point.

Rows the screener refused (quality gate, unreadable audio) are listed with their reasons in metrics.json and
the report; they are never dropped silently, and the metrics say how many rows they cover.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from biomarker.cohorts.manifest import CohortItem, read_manifest
from biomarker.evaluate.calibration import SubjectPooling
from biomarker.evaluate.metrics import MetricError
from biomarker.evaluate.report import ReportConfig, SetMeasurements, write_report
from biomarker.evaluate.subgroups import SubgroupConfig, markdown as subgroup_markdown, subgroup_metrics


def evaluate_scored(
    items: Sequence[CohortItem],
    probabilities: Sequence[float | None],
    problems: Sequence[str | None],
    thresholds: dict[str, float],
    out_dir: str | Path,
    *,
    title: str,
    config: ReportConfig = ReportConfig(),
    model_label: str = "",
    poolings: dict[str, SubjectPooling] | None = None,
) -> dict:
    """`thresholds[cohort]` and `poolings[cohort]` are the operating threshold and subject pooling used for that
    manifest cohort's rows (default pooling: the plain mean log-odds). The first set is every scored row pooled
    ("all"), then one set per manifest cohort; where "all" spans cohorts scored differently, it uses the mean
    threshold and, unless their poolings agree, the plain mean log-odds."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rejected = [{"path": str(i.path), "problem": p} for i, p in zip(items, problems) if p is not None]
    groups: dict[str, list[int]] = {"all": [k for k, p in enumerate(probabilities) if p is not None]}
    if not groups["all"]:
        raise MetricError(f"none of the {len(items)} rows could be scored; first problems: {rejected[:3]}")
    for index, item in enumerate(items):
        if probabilities[index] is not None:
            groups.setdefault(item.cohort, []).append(index)
    if len(groups) == 2:  # one cohort: it is the same set as "all"
        groups.pop(next(k for k in groups if k != "all"))
    results = SetMeasurements(out_dir, config)
    subgroups: dict[str, dict] = {}
    subgroup_config = SubgroupConfig(resamples=config.bootstrap_resamples, seed=config.seed)
    for name, rows in groups.items():
        if not rows:
            continue
        threshold = float(np.mean([thresholds[items[k].cohort] for k in rows]))
        pooling = {(poolings or {}).get(items[k].cohort, SubjectPooling()) for k in rows}
        pooling = pooling.pop() if len(pooling) == 1 else SubjectPooling()
        p = np.array([probabilities[k] for k in rows], dtype=float)
        y = np.array([items[k].label for k in rows])
        subjects = [f"{items[k].cohort}/{items[k].speaker_id}" for k in rows]
        results.add(name, p, y, subjects, threshold, pooling)
        if name in results.measured:
            subgroups[name] = subgroup_metrics([items[k] for k in rows], p, subjects, threshold, pooling, subgroup_config)
            results.measured[name]["subgroups"] = subgroups[name]
    notes = [f"{len(rejected)} of {len(items)} rows could not be scored (listed in metrics.json 'rejected')", *results.notes]
    extra = {"model": model_label, "rejected": rejected, "n_rejected": len(rejected), "flag_rates": results.flagged}
    if results.measured:
        sections = ["## Subgroups", "", *(subgroup_markdown(block, name) for name, block in subgroups.items() if block)]
        write_report(out_dir, results.measured, title=title, config=config, extra=extra, notes=notes,
                     sections=sections if len(sections) > 2 else ())
    else:
        _write_single_class(out_dir, results.flagged, extra, title, notes)
    return {"sets": results.measured, **extra}


def _write_single_class(out_dir: Path, flagged: dict, extra: dict, title: str, notes: Sequence[str]) -> None:
    """Only one class (e.g. healthy speakers only): no AUROC exists; the flag rate is the measurement, and
    the contract keys are present with sensitivity or specificity taken from it."""
    overall = flagged["all"]
    label = overall["label"]
    payload = {
        "auroc": None,
        "auroc_ci": None,
        "sensitivity": overall["flagged"] if label == 1 else None,
        "specificity": 1.0 - overall["flagged"] if label == 0 else None,
        "threshold": overall["threshold"],
        "ece": None,
        "n": overall["n"],
        **extra,
    }
    (out_dir / "metrics.json").write_text(json.dumps(payload, indent=2))
    (out_dir / "report.md").write_text(f"# {title}\n\nOne class only: no AUROC.\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")


MILD_SEVERITY_MAX = 0.4  # the hardest slice: patients with severity <= this, against every control


def evaluation_sets(test_items: Sequence[CohortItem], extra_manifests: Sequence[str]) -> dict[str, list[CohortItem]]:
    """Test rows grouped by cohort (clean and noisy apart), then every extra manifest grouped by cohort.

    Cohorts whose rows record a marker `severity` also get a "mild" set (controls + patients with severity <=
    MILD_SEVERITY_MAX), because an easy cohort saturates AUROC and hides differences between models.
    """
    sets: dict[str, list[CohortItem]] = {}

    def add(name: str, item: CohortItem) -> None:
        sets.setdefault(name, []).append(item)
        severity = item.extras.get("severity", "")
        if severity and (item.label == 0 or float(severity) <= MILD_SEVERITY_MAX):
            sets.setdefault(f"{name}, mild only", []).append(item)

    for item in test_items:
        add(f"{item.cohort} test", item)
    for manifest in extra_manifests:
        for item in read_manifest(manifest):
            if item.extras.get("real_speech") == "yes":
                sets.setdefault(f"{item.cohort} {'marked' if item.label else 'healthy'}", []).append(item)
            add(f"{item.cohort} (all rows)", item)
    return sets
