"""What a clinician reads from one measured independent set: sensitivity and specificity at the model's own
threshold, by severity band and by subgroup (sex, language, source, ambience, channel), each with a Wilson 95 %
interval, next to the AUROC and its bootstrap CI.

It reads what `biomarker evaluate` (or a baseline run) already wrote: `metrics.json` (each set's threshold and
metrics) and `<set>_subjects.csv` (each subject's pooled probability), and the set's manifest for severity and
subgroups, so the model is scored once and every breakdown comes from the same numbers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from biomarker.cohorts.manifest import CohortItem, read_manifest
from biomarker.evaluate.report import read_subject_scores, set_slug
from biomarker.records import CohortError

SUBGROUP_KEYS = ("sex", "language", "source", "ambient", "origin_codec")
BANDS = ("mild", "moderate", "severe")


def wilson(successes: int, total: int, z: float = 1.96) -> list[float] | None:
    """Wilson score interval of a proportion (None for an empty group): small groups get honest widths."""
    if total == 0:
        return None
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def _rate(flags: list[bool]) -> dict:
    hits = sum(flags)
    return {"rate": round(hits / len(flags), 4) if flags else None, "k": hits, "n": len(flags), "ci": wilson(hits, len(flags))}


def _value(item: CohortItem, key: str) -> str:
    return (item.sex if key == "sex" else item.extras.get(key, "")) or "unknown"


def breakdown_set(metrics: dict, subjects_csv: Path, items: dict[str, CohortItem]) -> dict:
    """One set: headline numbers from its metrics, then per band and subgroup from its subjects."""
    scores = read_subject_scores(subjects_csv)
    threshold = float(metrics["threshold"])
    missing = [s for s in scores.subjects if s not in items]
    if missing:
        raise CohortError(f"{subjects_csv}: {len(missing)} subject(s) not in the manifest, e.g. {missing[:3]}")
    rows = [(items[s], float(p) >= threshold) for s, p in zip(scores.subjects, scores.scores)]
    patients = [(i, f) for i, f in rows if i.label == 1]
    controls = [(i, f) for i, f in rows if i.label == 0]
    out = {
        "n_patients": len(patients), "n_controls": len(controls), "threshold": threshold,
        "sensitivity": metrics["sensitivity"], "sensitivity_ci": metrics.get("sensitivity_ci"),
        "specificity": metrics["specificity"], "specificity_ci": metrics.get("specificity_ci"),
        "auroc": metrics["auroc"], "auroc_ci": metrics["auroc_ci"],
        "sensitivity_by_band": {b: _rate([f for i, f in patients if i.extras.get("severity_band") == b]) for b in BANDS},
        "subgroups": {},
    }
    for key in SUBGROUP_KEYS:
        values = sorted({_value(i, key) for i, _ in rows})
        if len(values) < 2:
            continue
        out["subgroups"][key] = {
            v: {"sensitivity": _rate([f for i, f in patients if _value(i, key) == v]),
                "specificity": _rate([not f for i, f in controls if _value(i, key) == v])}
            for v in values
        }
    return out


def breakdown(eval_dir: str | Path, manifest: str | Path, *, skip: tuple[str, ...] = ("all",)) -> dict:
    """Every two-class set of an evaluation folder whose subjects come from `manifest`, broken down:
    `{"sets": {name: ...}, "skipped": [names]}`. Skipped, and listed: the pooled 'all' set (it mixes channels,
    which are reported apart), the 'mild only' slices (the bands cover them) and sets of other manifests (a
    baseline run also measures its own training cohort's test split)."""
    eval_dir = Path(eval_dir)
    metrics_path = eval_dir / "metrics.json"
    if not metrics_path.is_file():
        raise CohortError(f"{eval_dir}: no metrics.json; run `biomarker evaluate --out {eval_dir}` first")
    sets = json.loads(metrics_path.read_text())["sets"]
    items = {f"{i.cohort}/{i.speaker_id}": i for i in read_manifest(manifest)}
    result, skipped = {}, []
    for name, metrics in sets.items():
        csv_path = eval_dir / f"{set_slug(name)}_subjects.csv"
        if name in skip or "mild only" in name or not csv_path.is_file():
            skipped.append(name)
            continue
        if not set(read_subject_scores(csv_path).subjects) & set(items):
            skipped.append(name)
            continue
        result[name] = breakdown_set(metrics, csv_path, items)
    if not result:
        raise CohortError(f"{eval_dir}: no measured two-class set of {manifest} among {sorted(sets)}")
    return {"sets": result, "skipped": skipped}
