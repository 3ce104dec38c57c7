"""Temperature scaling with a bias (Platt scaling) and, when the recordings' SNR is known, a noise term:
p = sigmoid(logit / T + b + s · snr_covariate(SNR)), fitted on validation logits: s from how the logits drift
with SNR inside each class, then T and b by negative log-likelihood.

WHY these few scalars: T and b keep the ranking (AUROC unchanged) and cannot overfit a few hundred validation
recordings. T alone (Guo et al., 2017) fixes over- or under-confidence that is symmetric around 0.5; it cannot
move the whole scale, and class-balanced training or scoring by the mean of window probabilities leaves such an
offset. One (T, b) fitted on validation recordings that mix conditions (clean and ward noise) is off in opposite
directions for each condition alone (shipped screener, SYNTHETIC: recording ECE 0.097 clean, 0.104 noisy); the
SNR term, from the quality gate's estimate, brings both to 0.045 and 0.042 (docs/screening.md).

Subjects with several recordings get their own two scalars (`SubjectPooling`): the mean of two calibrated
probabilities is not itself calibrated (a subject whose recordings disagree is pulled towards 0.5, and two
recordings that agree are more evidence than one), which left the shipped screener's subject ECE at 0.10.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import minimize

from biomarker.evaluate.metrics import MetricError, SubjectScores, to_subjects
from biomarker.models.screening import CohortSpec, snr_covariate

TEMPERATURE_RANGE = (0.05, 50.0)
SNR_TERM_MIN_PER_CLASS = 30


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def _nll(logits: np.ndarray, labels: np.ndarray, covariate: np.ndarray, temperature: float, bias: float, slope: float) -> float:
    z = logits / temperature + bias + slope * covariate
    # log(1 + exp(z)) - y z, written to stay finite for large |z|
    return float(np.mean(np.logaddexp(0.0, z) - labels * z))


def within_class_slope(logits: np.ndarray, labels: np.ndarray, covariate: np.ndarray) -> float:
    """How much the logits move per unit of `covariate` WITHIN each class: the pooled slope of a regression of
    logit on covariate with one intercept per class (0 where the covariate does not vary inside a class).

    WHY within class: the quality gate's SNR estimate is itself lower for patients (breath noise fills their
    pauses), so a slope fitted jointly by likelihood also learns "low SNR means RI" and lends a model ranking it
    does not have (measured: SSAST-tiny from scratch, nearly constant logits, rose from AUROC 0.58 to 0.76 once
    the term was fitted). A slope measured inside each class sees only what noise does to the model's logits."""
    centred_logits, centred_covariate = logits.copy(), covariate.copy()
    for value in (0.0, 1.0):
        members = labels == value
        centred_logits[members] -= logits[members].mean()
        centred_covariate[members] -= covariate[members].mean()
    spread = float(centred_covariate @ centred_covariate)
    return float(centred_logits @ centred_covariate / spread) if spread > 1e-9 * len(covariate) else 0.0


def fit_calibration(logits: np.ndarray, labels: np.ndarray, snr_db: np.ndarray | None = None, *,
                    snr_slope: float | None = None) -> tuple[float, float, float]:
    """(T, b, s) of sigmoid(logit / T + b + s · snr_covariate(snr_db)). The SNR term first removes the logits'
    within-class drift with SNR (`within_class_slope`: it can correct what noise does to the logits but cannot
    rank patients by their SNR), then T and b minimise validation NLL of the corrected logits. s = 0 when no SNR
    is given, when a class has fewer than SNR_TERM_MIN_PER_CLASS validation recordings (a slope from a handful
    of points can flip the ranking: measured on a 6-recording toy validation split). T lies within
    TEMPERATURE_RANGE times the spread (standard deviation) of the validation logits: a briefly trained head can
    output logits of a few hundredths, which a fixed lower bound on T could not sharpen enough (measured: T stuck
    at 0.05, ECE 0.38).

    `snr_slope` given: the SNR term is kept at that slope and only T and b are fitted (a site's recalibration on
    a few dozen recordings, too few to measure the drift with noise again; `biomarker.evaluate.site_calibration`)."""
    logits, labels = np.asarray(logits, dtype=float), np.asarray(labels, dtype=float)
    if len(set(labels.tolist())) < 2:
        raise MetricError("calibration needs validation recordings of both classes")
    if snr_slope and snr_db is None:
        raise MetricError(f"the SNR term is kept at a slope of {snr_slope}: pass the recordings' snr_db")
    covariate = np.zeros_like(logits) if snr_db is None else snr_covariate(np.asarray(snr_db, dtype=float))
    if covariate.shape != logits.shape:
        raise MetricError(f"{len(covariate)} SNR values for {len(logits)} logits")
    if snr_slope is None:
        enough = min(int(np.sum(labels == 0)), int(np.sum(labels == 1))) >= SNR_TERM_MIN_PER_CLASS
        drift = within_class_slope(logits, labels, covariate) if snr_db is not None and enough else 0.0
        kept = 0.0
    else:
        drift, kept = 0.0, float(snr_slope)
    corrected = logits - drift * covariate
    spread = float(np.std(corrected)) or 1.0
    bounds = [(np.log(TEMPERATURE_RANGE[0] * spread), np.log(TEMPERATURE_RANGE[1] * spread)), (-20.0, 20.0)]
    result = minimize(lambda x: _nll(corrected, labels, covariate, float(np.exp(x[0])), float(x[1]), kept),
                      x0=np.array([np.log(spread), 0.0]), method="L-BFGS-B", bounds=bounds)
    temperature = float(np.exp(result.x[0]))
    if snr_slope is not None:
        return temperature, float(result.x[1]), kept
    return temperature, float(result.x[1]), (-drift / temperature) or 0.0  # never -0.0 in a saved spec


def calibrated(logits: np.ndarray, temperature: float, bias: float = 0.0, snr_slope: float = 0.0,
               snr_db: np.ndarray | None = None) -> np.ndarray:
    """Probabilities after temperature scaling with a bias and, when `snr_slope` is not 0, the SNR term."""
    z = np.asarray(logits, dtype=float) / temperature + bias
    if snr_slope:
        if snr_db is None:
            raise MetricError("this calibration uses the recordings' SNR: pass snr_db")
        z = z + snr_slope * snr_covariate(np.asarray(snr_db, dtype=float))
    return sigmoid(z)


def log_odds(probabilities: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probabilities, dtype=float), 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class SubjectPooling:
    """A subject's probability from its recordings' calibrated probabilities: the mean of their log-odds, and for a
    subject with several recordings sigmoid(scale · mean + shift), fitted on validation subjects.

    WHY log-odds: evidence adds in log-odds, so the mean log-odds of two recordings keeps what a mean of
    probabilities squashes; WHY scale and shift: recordings of one person are neither one piece of evidence
    (scale 1) nor independent ones (scale = their number), and validation says where in between they lie. A
    subject with one recording keeps that recording's probability, the one the app shows.
    """

    scale: float = 1.0
    shift: float = 0.0

    def pool(self, probabilities: Sequence[float], labels: Sequence[int], subjects: Sequence[str]) -> SubjectScores:
        mean = to_subjects(log_odds(probabilities), labels, subjects)
        several = mean.recordings > 1
        pooled = np.where(several, mean.scores * self.scale + self.shift, mean.scores)
        return SubjectScores(sigmoid(pooled), mean.labels, mean.subjects, mean.recordings)

    @classmethod
    def of(cls, spec: CohortSpec) -> "SubjectPooling":
        """The pooling a bundle cohort was calibrated with (its spec's subject_scale and subject_shift)."""
        return cls(spec.subject_scale, spec.subject_shift)

    @classmethod
    def fit(cls, probabilities: Sequence[float], labels: Sequence[int], subjects: Sequence[str]) -> "SubjectPooling":
        """Scale and shift minimising the NLL of validation subjects with several recordings (identity if none)."""
        mean = to_subjects(log_odds(probabilities), labels, subjects)
        several = mean.recordings > 1
        if len(set(mean.labels[several].tolist())) < 2:
            return cls()
        z, y = mean.scores[several], mean.labels[several].astype(float)
        no_covariate = np.zeros_like(z)  # the same NLL as the recording calibration, with temperature 1 / scale
        result = minimize(lambda x: _nll(z, y, no_covariate, 1.0 / x[0], x[1], 0.0),
                          x0=np.array([1.0, 0.0]), method="L-BFGS-B", bounds=[(0.25, 8.0), (-5.0, 5.0)])
        return cls(float(result.x[0]), float(result.x[1]))
