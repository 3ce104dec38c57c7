"""Site calibration: refit a shipped screener's temperature, bias and threshold on a site's small labelled sample.

WHY: a threshold fitted on one cohort's validation split need not hold on another (the shipped ri-screener@7
refers 12.5 % of the patients of the independent espeak-ng set at its threshold, AUROC 0.89 there). A site that
labels a few dozen of its own recordings can move the operating point to its microphones, rooms and voices
without retraining: the weights stay the parent's, only the cohort's calibration changes.

What is refitted, and what is kept (few recordings fit few numbers):
- temperature and bias: logistic recalibration of the model's recording logits (`fit_calibration` with the SNR
  term kept at the parent's slope; 20 recordings per class cannot measure the logits' drift with noise again);
- the subject pooling (scale, shift) is kept as the parent's: it is only used for subjects with several
  recordings, and a site sample rarely has enough of them;
- the threshold: the highest one reaching the target sensitivity on the sample's subjects
  (`threshold_for_sensitivity`), then moved halfway in log-odds towards the next lower subject, so the app's
  float32 path makes the same decision on the boundary patient (no subject lies in between, so the sample's
  sensitivity and specificity are unchanged).

The sample's sensitivity and specificity are measured on the very subjects the threshold was chosen on: they
are optimistic, and with 20 patients the sensitivity's 95 % CI spans tens of points. The card says both.
Nothing here scores or saves: the caller scores the recordings (the CLI does, through the screener, which this
layer may not import) and publishes the model through the catalog.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from biomarker.evaluate.calibration import SubjectPooling, calibrated, fit_calibration, log_odds, sigmoid
from biomarker.evaluate.metrics import MetricError, sensitivity_specificity, threshold_for_sensitivity
from biomarker.evaluate.report import ReportConfig, measure
from biomarker.models.screening import CohortSpec

DEFAULT_MIN_PER_CLASS = 20
DEFAULT_TARGET_SENSITIVITY = 0.90


class SiteSampleError(MetricError):
    """The site's sample cannot support a calibration (too few subjects of a class); the message names the counts."""


@dataclass(frozen=True)
class SiteSample:
    """A site's scored recordings: the model's uncalibrated recording logits, labels, speaker ids and the quality
    gate's SNR estimates, plus where they came from (manifest path and sha256)."""

    logits: np.ndarray
    labels: np.ndarray
    subjects: list[str]
    snr_db: np.ndarray
    manifest: str
    manifest_sha256: str
    n_rejected: int = 0

    def subjects_per_class(self) -> dict[str, int]:
        """Distinct speakers per class: the unit a site's sample is counted in (not recordings)."""
        patients = {s for s, y in zip(self.subjects, self.labels) if y == 1}
        controls = {s for s, y in zip(self.subjects, self.labels) if y == 0}
        return {"patients": len(patients), "controls": len(controls)}


@dataclass(frozen=True)
class SiteCalibration:
    """The fitted values, the parent's values they replace, and the sample's measurements at the new threshold
    (and at the parent's, for comparison)."""

    cohort: str
    temperature: float
    bias: float
    snr_slope: float
    threshold: float
    target_sensitivity: float
    min_per_class: int
    previous: dict[str, float]
    counts: dict[str, int]
    metrics: dict[str, Any]
    metrics_at_previous: dict[str, Any]

    def apply(self, spec: CohortSpec) -> CohortSpec:
        """The parent's cohort spec with this calibration (scoring mode, windows and subject pooling kept)."""
        return dataclasses.replace(spec, temperature=self.temperature, bias=self.bias, snr_slope=self.snr_slope,
                                   threshold=self.threshold)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def confusion_counts(self) -> dict[str, int]:
        """The sample's confusion counts at the new threshold, with the number of patients and controls."""
        confusion = self.metrics["confusion"]
        return {**confusion, "patients": confusion["true_positive"] + confusion["false_negative"],
                "controls": confusion["true_negative"] + confusion["false_positive"]}


def check_sample(sample: SiteSample, min_per_class: int) -> dict[str, int]:
    """Subjects per class, or SiteSampleError naming both counts when either is below `min_per_class`."""
    counts = sample.subjects_per_class()
    if min(counts.values()) < min_per_class:
        raise SiteSampleError(
            f"{sample.manifest}: {counts['patients']} patient and {counts['controls']} control subject(s) were scored"
            f"{f' ({sample.n_rejected} recording(s) refused by the quality gate)' if sample.n_rejected else ''}; "
            f"site calibration needs at least {min_per_class} subjects of each class (--min-per-class)"
        )
    return counts


def robust_threshold(subject_scores: np.ndarray, labels: np.ndarray, target: float) -> float:
    """`threshold_for_sensitivity`, moved halfway in log-odds towards the next lower subject score (if any), so
    that re-scoring the boundary patient in float32 still refers it; no subject's decision changes."""
    highest = threshold_for_sensitivity(subject_scores, labels, target)
    below = subject_scores[subject_scores < highest]
    if not len(below):
        return highest
    return float(sigmoid((log_odds(np.array([highest])) + log_odds(np.array([below.max()]))) / 2)[0])


def fit_site_calibration(sample: SiteSample, spec: CohortSpec, *, cohort: str,
                         target_sensitivity: float = DEFAULT_TARGET_SENSITIVITY,
                         min_per_class: int = DEFAULT_MIN_PER_CLASS,
                         config: ReportConfig = ReportConfig()) -> SiteCalibration:
    """Refuse a sample below `min_per_class` subjects per class, else refit T and b (SNR slope kept as `spec`'s)
    and the threshold for `target_sensitivity` on the sample's subjects; measure both operating points there."""
    if not 0.0 < target_sensitivity <= 1.0:
        raise SiteSampleError(f"target sensitivity {target_sensitivity} must lie in (0, 1]")
    counts = check_sample(sample, min_per_class)
    labels = np.asarray(sample.labels, int)
    temperature, bias, slope = fit_calibration(sample.logits, labels, sample.snr_db, snr_slope=spec.snr_slope)
    pooling = SubjectPooling.of(spec)
    probabilities = calibrated(sample.logits, temperature, bias, slope, sample.snr_db)
    pooled = pooling.pool(probabilities, labels, sample.subjects)
    threshold = robust_threshold(pooled.scores, pooled.labels, target_sensitivity)
    sensitivity, _ = sensitivity_specificity(pooled.scores, pooled.labels, threshold)
    if sensitivity < target_sensitivity:  # cannot happen by construction; a guard, not a hope
        raise MetricError(f"threshold {threshold} reaches sensitivity {sensitivity} < {target_sensitivity}")
    old = calibrated(sample.logits, spec.temperature, spec.bias, spec.snr_slope, sample.snr_db)
    return SiteCalibration(
        cohort=cohort, temperature=temperature, bias=bias, snr_slope=slope, threshold=threshold,
        target_sensitivity=target_sensitivity, min_per_class=min_per_class,
        previous={"temperature": spec.temperature, "bias": spec.bias, "snr_slope": spec.snr_slope,
                  "threshold": spec.threshold},
        counts={**counts, "recordings": int(len(labels)), "rejected_recordings": sample.n_rejected},
        metrics=measure(probabilities, labels, sample.subjects, threshold, config, pooling),
        metrics_at_previous=measure(old, labels, sample.subjects, spec.threshold, config, pooling),
    )


def _ci(metrics: dict[str, Any], name: str) -> str:
    low, high = metrics[f"{name}_ci"]
    return f"{metrics[name]:.3f} [95 % CI {low:.3f}, {high:.3f}]"


def summary_lines(result: SiteCalibration) -> list[str]:
    """The sample's numbers at the new and at the parent's threshold (for the card and the CLI)."""
    m, p, c = result.metrics, result.metrics_at_previous, result.confusion_counts()
    return [
        f"sensitivity {_ci(m, 'sensitivity')} ({c['true_positive']}/{c['patients']} patients referred)",
        f"specificity {_ci(m, 'specificity')} ({c['true_negative']}/{c['controls']} controls not referred)",
        f"AUROC {m['auroc']:.3f} [95 % CI {m['auroc_ci'][0]:.3f}, {m['auroc_ci'][1]:.3f}] (unchanged by recalibration "
        "up to the SNR term's weight)",
        f"at the parent's threshold {result.previous['threshold']:.4f}: sensitivity {_ci(p, 'sensitivity')}, "
        f"specificity {_ci(p, 'specificity')}",
    ]


def card_text(result: SiteCalibration, sample: SiteSample, *, parent: str, new_name: str, synthetic: bool = True) -> str:
    """The new version's card: what it was calibrated on, the fitted values, the sample's numbers with CIs,
    and what it is not (clinically validated)."""
    counts, previous = result.counts, result.previous
    wide = result.metrics["sensitivity_ci"][1] - result.metrics["sensitivity_ci"][0]
    lines = [
        f"# {new_name}: site calibration of `{parent}`",
        "",
        "**Not clinically validated.** A screening aid (refer for an SpO2 check), recalibrated on a small labelled "
        "sample; it never estimates SpO2. The weights are the parent's; only the calibration of cohort "
        f"`{result.cohort}` changed."
        + (" The parent was trained on SYNTHETIC data only." if synthetic else ""),
        "",
        "## Calibrated on",
        "",
        f"- Manifest: `{sample.manifest}`",
        f"- sha256 of the manifest file: `{sample.manifest_sha256}`",
        f"- Subjects: {counts['patients']} patients, {counts['controls']} controls ({counts['recordings']} recordings"
        f"; {counts['rejected_recordings']} refused by the quality gate); minimum required per class: "
        f"{result.min_per_class}",
        f"- Cohort of the model used for every row: `{result.cohort}`",
        "",
        "## Fitted values (logistic recalibration of the model's logits; SNR term kept as the parent's)",
        "",
        "| value | parent | this version |",
        "|---|---|---|",
        f"| temperature | {previous['temperature']:.6g} | {result.temperature:.6g} |",
        f"| bias | {previous['bias']:.6g} | {result.bias:.6g} |",
        f"| SNR slope (kept) | {previous['snr_slope']:.6g} | {result.snr_slope:.6g} |",
        f"| threshold | {previous['threshold']:.6g} | {result.threshold:.6g} |",
        "",
        f"The threshold is the highest reaching sensitivity {result.target_sensitivity:.2f} on the sample's subjects "
        "(moved halfway in log-odds to the next lower subject, which changes no decision on the sample).",
        "",
        "## On the calibration sample (bootstrap 95 % CIs over subjects)",
        "",
        *[f"- {line}" for line in summary_lines(result)],
        "",
        f"These numbers are measured on the same subjects the threshold was chosen on, so they are optimistic. "
        f"With {counts['patients']} patients the sensitivity CI is wide ({wide:.2f} wide here): "
        f"{_ci(result.metrics, 'sensitivity')}. Measure the new version on a held-out part of the site's data "
        "(`biomarker evaluate --manifest TEST.csv --model " + new_name + "`) before relying on it.",
        "",
    ]
    return "\n".join(lines)


def version_metrics(result: SiteCalibration, sample: SiteSample, *, parent: str) -> dict[str, Any]:
    """What the new version's version.json carries under `metrics`: the same facts as the card."""
    keep = ("auroc", "auroc_ci", "threshold", "sensitivity", "sensitivity_ci", "specificity", "specificity_ci",
            "n", "n_patients", "n_recordings", "confusion", "brier", "ece")
    return {
        "site_calibration": {
            "parent": parent,
            "manifest": sample.manifest,
            "manifest_sha256": sample.manifest_sha256,
            "cohort": result.cohort,
            "subjects": {"patients": result.counts["patients"], "controls": result.counts["controls"]},
            "recordings": result.counts["recordings"],
            "rejected_recordings": result.counts["rejected_recordings"],
            "min_per_class": result.min_per_class,
            "target_sensitivity": result.target_sensitivity,
            "fitted": {"temperature": result.temperature, "bias": result.bias, "snr_slope": result.snr_slope,
                       "threshold": result.threshold},
            "previous": result.previous,
            "sample": {k: result.metrics[k] for k in keep},
            "sample_at_previous_threshold": {k: result.metrics_at_previous[k] for k in keep},
            "clinically_validated": False,
            "note": "measured on the calibration sample itself (optimistic); CIs: stratified bootstrap over subjects",
        }
    }


def sample_from_scores(logits: Sequence[float], labels: Sequence[int], subjects: Sequence[str],
                       snr_db: Sequence[float], *, manifest: str, manifest_sha256: str, n_rejected: int = 0) -> SiteSample:
    """A `SiteSample` from parallel sequences (one entry per scored recording)."""
    if not len(logits) == len(labels) == len(subjects) == len(snr_db):
        raise MetricError(f"{len(logits)} logits, {len(labels)} labels, {len(subjects)} subjects, {len(snr_db)} SNRs")
    return SiteSample(np.asarray(logits, float), np.asarray(labels, int), list(subjects), np.asarray(snr_db, float),
                      manifest, manifest_sha256, n_rejected)
