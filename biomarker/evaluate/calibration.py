"""Temperature scaling with a bias (Platt scaling): p = sigmoid(logit / T + b), T and b fitted on validation
logits by negative log-likelihood.

WHY these two scalars: both keep the ranking (AUROC unchanged) and cannot overfit a few hundred validation
recordings. T alone (Guo et al., 2017) fixes over- or under-confidence that is symmetric around 0.5; it cannot
move the whole scale. Measured on the shipped screener (SYNTHETIC, 200 test subjects): with T alone every
control sat at 0.1-0.5 and none was a patient, an ECE of 0.16 at AUROC 0.996; the class-balanced loss and
scoring by the mean of window probabilities leave exactly such an offset, which b removes.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from biomarker.evaluate.metrics import MetricError

TEMPERATURE_RANGE = (0.05, 50.0)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float, bias: float) -> float:
    z = logits / temperature + bias
    # log(1 + exp(z)) - y z, written to stay finite for large |z|
    return float(np.mean(np.logaddexp(0.0, z) - labels * z))


def fit_calibration(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(T in TEMPERATURE_RANGE, b) minimising validation NLL of sigmoid(logit / T + b)."""
    logits, labels = np.asarray(logits, dtype=float), np.asarray(labels, dtype=float)
    if len(set(labels.tolist())) < 2:
        raise MetricError("calibration needs validation recordings of both classes")
    bounds = [(np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1])), (-20.0, 20.0)]
    result = minimize(lambda x: _nll(logits, labels, float(np.exp(x[0])), float(x[1])), x0=np.zeros(2),
                      method="L-BFGS-B", bounds=bounds)
    return float(np.exp(result.x[0])), float(result.x[1])


def calibrated(logits: np.ndarray, temperature: float, bias: float = 0.0) -> np.ndarray:
    """Probabilities after temperature scaling with a bias."""
    return sigmoid(np.asarray(logits, dtype=float) / temperature + bias)
