"""From recording logits to the numbers a clinician reads: operating point on validation, metrics on test.

The order matters for honesty: the temperature and the threshold are fitted on VALIDATION subjects and then
frozen; the test set only measures. Each evaluated set (e.g. clean and ward-noise test audio, a generalisation
cohort, real speakers) gets its own block, plots and Markdown row; nothing is pooled across them silently.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from biomarker.evaluate import plots
from biomarker.evaluate.calibration import SubjectPooling, calibrated, fit_calibration
from biomarker.evaluate.metrics import (
    MetricError,
    SubjectScores,
    auroc,
    bootstrap_ci,
    brier,
    expected_calibration_error,
    predictive_values,
    sensitivity_at_specificity,
    sensitivity_specificity,
    threshold_for_sensitivity,
)


@dataclass(frozen=True)
class ReportConfig:
    """Clinical choices, stated once. Prevalence 0.10: a plausible share of RI among people screened at a
    respiratory triage point; PPV/NPV are reported for it, not for the test set's 50 %."""

    target_sensitivity: float = 0.90
    fixed_specificity: float = 0.95
    prevalence: float = 0.10
    bootstrap_resamples: int = 1000
    seed: int = 0
    synthetic: bool = True


@dataclass(frozen=True)
class OperatingPoint:
    """What a screening model ships: the recording calibration (temperature, bias, SNR slope), how subjects with
    several recordings are pooled (`SubjectPooling`), and the decision threshold (on calibrated subjects)."""

    temperature: float
    threshold: float
    target_sensitivity: float
    bias: float = 0.0  # summaries written before the bias existed read as temperature-only
    snr_slope: float = 0.0  # and before the SNR term existed, as without it
    subject_scale: float = 1.0  # and before subject pooling was fitted, as the plain mean log-odds
    subject_shift: float = 0.0

    def probabilities(self, logits: Sequence[float], snr_db: Sequence[float] | None = None) -> np.ndarray:
        return calibrated(logits, self.temperature, self.bias, self.snr_slope, snr_db)

    @property
    def pooling(self) -> SubjectPooling:
        return SubjectPooling(self.subject_scale, self.subject_shift)


def fit_operating_point(logits: Sequence[float], labels: Sequence[int], subjects: Sequence[str], config: ReportConfig = ReportConfig(),
                        snr_db: Sequence[float] | None = None) -> OperatingPoint:
    """Fit T, b (and the SNR slope when `snr_db` is given) on validation recordings, the subject pooling on
    validation subjects, then the threshold reaching the target sensitivity on those subjects."""
    logits, labels = np.asarray(logits, float), np.asarray(labels, int)
    temperature, bias, slope = fit_calibration(logits, labels, snr_db)
    point = OperatingPoint(temperature, 0.5, config.target_sensitivity, bias, slope)
    probabilities = point.probabilities(logits, snr_db)
    pooling = SubjectPooling.fit(probabilities, labels, subjects)
    subject = pooling.pool(probabilities, labels, subjects)
    threshold = threshold_for_sensitivity(subject.scores, subject.labels, config.target_sensitivity)
    return replace(point, threshold=threshold, subject_scale=pooling.scale, subject_shift=pooling.shift)


def measure(
    probabilities: Sequence[float], labels: Sequence[int], subjects: Sequence[str], threshold: float, config: ReportConfig = ReportConfig(),
    pooling: SubjectPooling = SubjectPooling(),
) -> dict[str, object]:
    """Every metric of one set at a frozen threshold and subject pooling; probabilities are already calibrated."""
    return measure_pooled(pooling.pool(probabilities, labels, subjects), probabilities, labels, threshold, config)


def measure_pooled(subject: SubjectScores, probabilities: Sequence[float], labels: Sequence[int], threshold: float,
                   config: ReportConfig = ReportConfig()) -> dict[str, object]:
    """`measure` on subjects already pooled (per-subject metrics) and their recordings (per-recording ECE)."""
    s, y = subject.scores, subject.labels
    kwargs = {"resamples": config.bootstrap_resamples, "seed": config.seed}
    sensitivity, specificity = sensitivity_specificity(s, y, threshold)
    sens_at_spec, _ = sensitivity_at_specificity(s, y, config.fixed_specificity)
    ppv, npv = predictive_values(sensitivity, specificity, config.prevalence)
    positive = s >= threshold
    return {
        "auroc": auroc(s, y),
        "auroc_ci": list(bootstrap_ci(auroc, s, y, **kwargs)),
        "threshold": threshold,
        "sensitivity": sensitivity,
        "sensitivity_ci": list(bootstrap_ci(lambda a, b: sensitivity_specificity(a, b, threshold)[0], s, y, **kwargs)),
        "specificity": specificity,
        "specificity_ci": list(bootstrap_ci(lambda a, b: sensitivity_specificity(a, b, threshold)[1], s, y, **kwargs)),
        f"sensitivity_at_specificity_{config.fixed_specificity:.2f}": sens_at_spec,
        "prevalence": config.prevalence,
        "ppv": ppv,
        "npv": npv,
        "brier": brier(s, y),
        "ece": expected_calibration_error(s, y),
        # the probability the app shows belongs to one recording: its calibration is measured per recording too
        "ece_recording": expected_calibration_error(np.asarray(probabilities, float), np.asarray(labels, float)),
        "n": int(len(s)),
        "n_patients": int(y.sum()),
        "n_recordings": int(len(np.asarray(labels))),
        "confusion": {
            "true_negative": int(np.sum(~positive & (y == 0))),
            "false_positive": int(np.sum(positive & (y == 0))),
            "false_negative": int(np.sum(~positive & (y == 1))),
            "true_positive": int(np.sum(positive & (y == 1))),
        },
        "unit": "subject (its recordings' calibrated probabilities pooled in log-odds, SubjectPooling fitted on validation)",
        "synthetic": config.synthetic,
    }


def flag_rate(probabilities: Sequence[float], subjects: Sequence[str], threshold: float,
              pooling: SubjectPooling = SubjectPooling()) -> dict[str, object]:
    """Share of subjects flagged positive, for sets with one class (e.g. healthy real speakers)."""
    subject = pooling.pool(probabilities, [0] * len(subjects), subjects)
    return {"flagged": float(np.mean(subject.scores >= threshold)), "n": int(len(subject.scores)), "threshold": threshold}


def set_slug(name: str) -> str:
    """A set's name as a file-name prefix (its plots and subject scores)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def plot_set(name: str, subject: SubjectScores, metrics: dict, out_dir: Path, synthetic: bool) -> list[Path]:
    """ROC, calibration and confusion PNGs of one set's subjects, file names prefixed by the set name."""
    slug, common = set_slug(name), {"name": name, "synthetic": synthetic}
    return [
        plots.roc_png(subject.scores, subject.labels, metrics["auroc"], out_dir / f"{slug}_roc.png", **common),
        plots.calibration_png(subject.scores, subject.labels, metrics["ece"], out_dir / f"{slug}_calibration.png", **common),
        plots.confusion_png(subject.scores, subject.labels, metrics["threshold"], out_dir / f"{slug}_confusion.png", **common),
    ]


SUBJECT_COLUMNS = ("subject", "label", "probability", "recordings")


def write_subject_scores(subject: SubjectScores, path: Path) -> Path:
    """One row per subject (pooled probability, label, recordings): what `compare_runs` pairs across two runs."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(SUBJECT_COLUMNS)
        for row in zip(subject.subjects, subject.labels.tolist(), subject.scores.tolist(), subject.recordings.tolist()):
            writer.writerow(row)
    return path


def read_subject_scores(path: Path) -> SubjectScores:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or tuple(rows[0]) != SUBJECT_COLUMNS:
        raise MetricError(f"{path} is not a subject-scores file (columns {', '.join(SUBJECT_COLUMNS)})")
    return SubjectScores(np.array([float(r["probability"]) for r in rows]), np.array([int(r["label"]) for r in rows]),
                         [r["subject"] for r in rows], np.array([int(r["recordings"]) for r in rows]))


class SetMeasurements:
    """The sets of one report, measured one by one at a frozen threshold and subject pooling.

    A set with both classes gets every metric (`measured`), its plots and `<set>_subjects.csv`; a set of one
    class (healthy real speakers) gets the share of subjects flagged positive (`flagged`)."""

    def __init__(self, out_dir: Path, config: ReportConfig = ReportConfig()):
        self.out_dir, self.config = Path(out_dir), config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.measured: dict[str, dict] = {}
        self.flagged: dict[str, dict] = {}

    def add(self, name: str, probabilities: Sequence[float], labels: Sequence[int], subjects: Sequence[str], threshold: float,
            pooling: SubjectPooling = SubjectPooling()) -> None:
        labels = np.asarray(labels, int)
        if len(set(labels.tolist())) < 2:
            self.flagged[name] = {**flag_rate(probabilities, subjects, threshold, pooling), "label": int(labels[0])}
            return
        subject = pooling.pool(probabilities, labels, subjects)
        metrics = self.measured[name] = measure_pooled(subject, probabilities, labels, threshold, self.config)
        plot_set(name, subject, metrics, self.out_dir, self.config.synthetic)
        write_subject_scores(subject, self.out_dir / f"{set_slug(name)}_subjects.csv")

    @property
    def notes(self) -> list[str]:
        return [f"{n}: {v['flagged']:.1%} of {v['n']} subjects flagged positive (all label {v['label']})" for n, v in self.flagged.items()]


def _cell(value: object, ci: object = None) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if ci is not None:
        return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown_table(sets: dict[str, dict], config: ReportConfig) -> str:
    """One row per evaluated set; CIs are bootstrap 95 % over subjects."""
    spec_key = f"sensitivity_at_specificity_{config.fixed_specificity:.2f}"
    header = (
        "| set | n subjects (RI) | AUROC [95% CI] | sensitivity [CI] | specificity [CI] | "
        f"sens @ spec {config.fixed_specificity:.2f} | PPV / NPV @ {config.prevalence:.0%} | Brier | ECE subject / recording |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for name, m in sets.items():
        rows.append(
            f"| {name} | {m['n']} ({m['n_patients']}) | {_cell(m['auroc'], m['auroc_ci'])} | "
            f"{_cell(m['sensitivity'], m['sensitivity_ci'])} | {_cell(m['specificity'], m['specificity_ci'])} | "
            f"{_cell(m[spec_key])} | {_cell(m['ppv'])} / {_cell(m['npv'])} | {_cell(m['brier'])} | {_cell(m['ece'])} / {_cell(m.get('ece_recording'))} |"
        )
    return header + "\n".join(rows) + "\n"


def write_report(
    out_dir: str | Path,
    sets: dict[str, dict],
    *,
    title: str,
    config: ReportConfig = ReportConfig(),
    operating_point: OperatingPoint | None = None,
    extra: dict | None = None,
    notes: Sequence[str] = (),
    sections: Sequence[str] = (),
) -> Path:
    """Write `metrics.json` (the first set's metrics at top level, every set under "sets") and `report.md`
    (`sections`: further Markdown blocks, e.g. the subgroup tables, placed after the notes)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    primary = next(iter(sets.values()))
    payload = {**primary, "sets": sets, "config": asdict(config), **(extra or {})}
    if operating_point is not None:
        payload["operating_point"] = asdict(operating_point)
    (out_dir / "metrics.json").write_text(json.dumps(payload, indent=2))
    warning = "**SYNTHETIC data — these numbers say nothing about real patients; not clinically validated.**\n\n" if config.synthetic else ""
    lines = [f"# {title}\n", warning, markdown_table(sets, config), ""]
    lines += [
        f"Subject-level metrics (a subject's score pools its recordings' calibrated probabilities in log-odds, "
        "scaled as fitted on validation subjects); "
        "ECE also per recording, the unit whose probability the app shows. "
        f"Threshold fixed beforehand for sensitivity >= {config.target_sensitivity:.2f} on validation; "
        f"PPV/NPV at a stated prevalence of {config.prevalence:.0%}. The model screens (refer for an SpO2 check); "
        "it never estimates SpO2.",
        "",
    ]
    lines += [f"- {note}" for note in notes]
    lines += ["", *sections] if sections else []
    images = sorted(p.name for p in out_dir.glob("*.png"))
    lines += ["", *[f"![{name}]({name})" for name in images]]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")
    return out_dir / "metrics.json"
