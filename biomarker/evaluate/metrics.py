"""Screening metrics at the subject level, with bootstrap confidence intervals.

WHY subject level: several recordings of one person are not independent evidence; counting them separately
inflates n and narrows every interval. `to_subjects` averages recording scores (logits while training); reports pool
calibrated probabilities in log-odds (`biomarker.evaluate.calibration.SubjectPooling`).
WHY these metrics: clinicians read AUROC with a 95 % CI, sensitivity/specificity at a fixed operating point,
sensitivity at a preset specificity (DiCOVA's 95 %), PPV/NPV at the prevalence where the tool is used, and
calibration (Brier, ECE) — see shared/research/anchors-clinical.md §5. Accuracy is secondary at best.
Decisions are `score >= threshold` → positive (refer for an SpO2 check).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy.stats import rankdata

from biomarker.records import BiomarkerError


class MetricError(BiomarkerError, ValueError):
    """The scores cannot support the metric asked for (e.g. AUROC with one class); the message says why."""


@dataclass(frozen=True)
class SubjectScores:
    """One row per subject: mean score of its recordings, its label, its id, and how many recordings it had."""

    scores: np.ndarray
    labels: np.ndarray
    subjects: list[str]
    recordings: np.ndarray


def to_subjects(scores: Sequence[float], labels: Sequence[int], subjects: Sequence[str]) -> SubjectScores:
    """Average recording scores per subject; a subject with both labels is an error (it names the subject)."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    if not len(scores) == len(labels) == len(subjects):
        raise MetricError(f"scores ({len(scores)}), labels ({len(labels)}) and subjects ({len(subjects)}) differ in length")
    if not np.all(np.isfinite(scores)):
        raise MetricError(f"{int(np.sum(~np.isfinite(scores)))} score(s) are NaN or infinite")
    order: dict[str, list[int]] = {}
    for index, subject in enumerate(subjects):
        order.setdefault(subject, []).append(index)
    names, means, subject_labels, counts = [], [], [], []
    for subject, rows in order.items():
        row_labels = set(labels[rows].tolist())
        if len(row_labels) > 1:
            raise MetricError(f"subject {subject!r} has recordings with both labels")
        names.append(subject)
        means.append(float(np.mean(scores[rows])))
        subject_labels.append(row_labels.pop())
        counts.append(len(rows))
    return SubjectScores(np.array(means), np.array(subject_labels), names, np.array(counts))


def _require_both_classes(labels: np.ndarray, what: str) -> None:
    if len(set(np.asarray(labels).tolist())) < 2:
        raise MetricError(f"{what} needs both patients and controls, got only label(s) {sorted(set(labels.tolist()))}")


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """The Mann-Whitney statistic: the chance a random patient scores above a random control (ties count half).

    WHY not sklearn's roc_auc_score: the same number, but its input checks cost ~20x the arithmetic, and every
    report computes thousands of bootstrap AUROCs."""
    _require_both_classes(labels, "AUROC")
    ranks = rankdata(np.asarray(scores, dtype=float))
    patients = np.asarray(labels) == 1
    n_patients, n_controls = int(patients.sum()), int((~patients).sum())
    return float((ranks[patients].sum() - n_patients * (n_patients + 1) / 2) / (n_patients * n_controls))


def sensitivity_specificity(scores: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float]:
    """Sensitivity and specificity of the rule `score >= threshold`."""
    _require_both_classes(labels, "sensitivity/specificity")
    positive = scores >= threshold
    return float(np.mean(positive[labels == 1])), float(np.mean(~positive[labels == 0]))


def threshold_for_sensitivity(scores: np.ndarray, labels: np.ndarray, target: float = 0.90) -> float:
    """The highest threshold whose sensitivity reaches `target` (chosen on validation, then frozen for test).

    Highest, because among thresholds that catch enough patients it refers the fewest controls.
    """
    _require_both_classes(labels, "threshold selection")
    patients = np.sort(scores[labels == 1])[::-1]
    needed = int(np.ceil(target * len(patients)))
    return float(patients[max(needed, 1) - 1])


def sensitivity_at_specificity(scores: np.ndarray, labels: np.ndarray, specificity: float = 0.95) -> tuple[float, float]:
    """(sensitivity, threshold) at the lowest threshold whose specificity is still >= `specificity`."""
    _require_both_classes(labels, "sensitivity at specificity")
    controls = np.sort(scores[labels == 0])
    allowed_false_positives = int(np.floor((1 - specificity) * len(controls) + 1e-9))
    # a threshold just above the (allowed+1)-th highest control score keeps at most `allowed` controls above it
    boundary = controls[len(controls) - allowed_false_positives - 1]
    threshold = float(np.nextafter(boundary, np.inf))
    return float(np.mean(scores[labels == 1] >= threshold)), threshold


def predictive_values(sensitivity: float, specificity: float, prevalence: float) -> tuple[float, float]:
    """PPV and NPV at `prevalence` by Bayes' rule (test-set prevalence is an artefact of how it was built)."""
    if not 0 < prevalence < 1:
        raise MetricError(f"prevalence must lie in (0, 1), got {prevalence}")
    true_pos, false_pos = sensitivity * prevalence, (1 - specificity) * (1 - prevalence)
    true_neg, false_neg = specificity * (1 - prevalence), (1 - sensitivity) * prevalence
    ppv = true_pos / (true_pos + false_pos) if true_pos + false_pos > 0 else float("nan")
    npv = true_neg / (true_neg + false_neg) if true_neg + false_neg > 0 else float("nan")
    return float(ppv), float(npv)


def brier(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean((probabilities - labels) ** 2))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE with equal-width bins: the bin-size-weighted mean |observed rate - mean predicted probability|."""
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            total += members.mean() * abs(labels[members].mean() - probabilities[members].mean())
    return float(total)


def bootstrap_values(
    metric: Callable[[np.ndarray, np.ndarray], float],
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """`metric` on each of `resamples` subject resamples, stratified by label so every resample has both classes
    (`scores` may carry several columns, e.g. two models' scores of the same subjects, resampled together)."""
    _require_both_classes(labels, "a bootstrap CI")
    rng = np.random.default_rng(seed)
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    values = []
    for _ in range(resamples):
        rows = np.concatenate([rng.choice(positives, len(positives)), rng.choice(negatives, len(negatives))])
        values.append(metric(scores[rows], labels[rows]))
    return np.array(values)


def percentile_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_ci(
    metric: Callable[[np.ndarray, np.ndarray], float],
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile CI of `metric` over stratified subject resamples (`bootstrap_values`)."""
    return percentile_ci(bootstrap_values(metric, scores, labels, resamples=resamples, seed=seed), level)
