"""Temperature scaling (Guo et al., 2017): one scalar T fitted on validation logits by negative log-likelihood.

WHY one scalar: it keeps the ranking (AUROC unchanged) and cannot overfit a few hundred validation recordings,
yet fixes the over-confidence that class balancing and early stopping leave behind.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from biomarker.evaluate.metrics import MetricError

TEMPERATURE_RANGE = (0.05, 50.0)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    # log(1 + exp(z)) - y z, written to stay finite for large |z|
    return float(np.mean(np.logaddexp(0.0, z) - labels * z))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in TEMPERATURE_RANGE minimising validation NLL of sigmoid(logit / T)."""
    logits, labels = np.asarray(logits, dtype=float), np.asarray(labels, dtype=float)
    if len(set(labels.tolist())) < 2:
        raise MetricError("temperature scaling needs validation recordings of both classes")
    low, high = np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1])
    result = minimize_scalar(lambda log_t: _nll(logits, labels, float(np.exp(log_t))), bounds=(low, high), method="bounded")
    return float(np.exp(result.x))


def calibrated(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities after temperature scaling."""
    return sigmoid(np.asarray(logits, dtype=float) / temperature)
