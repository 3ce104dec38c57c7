"""The classic clinical-speech baseline: MFCC statistics + logistic regression (scikit-learn).

WHY: a deep model that cannot beat 52 summary numbers and a linear classifier has not earned its complexity.
Features per recording: mean and standard deviation of 13 MFCCs (python_speech_features settings) and of their
first differences. Standardised, then L2 logistic regression with balanced class weights.
(eGeMAPS functionals via openSMILE would be the second baseline; openSMILE is not installed here and its
licence forbids commercial use, so it is left out rather than approximated.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from biomarker.features import mfcc

SAMPLE_RATE_HZ = 16000


def mfcc_statistics(samples: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """One recording [S] -> 52 numbers: mean and std of 13 MFCCs and of their frame-to-frame differences."""
    cepstra = mfcc(torch.as_tensor(samples, dtype=torch.float32), sample_rate_hz).numpy()
    deltas = np.diff(cepstra, axis=0)
    return np.concatenate([cepstra.mean(0), cepstra.std(0), deltas.mean(0), deltas.std(0)])


@dataclass
class MfccStatsBaseline:
    """Fit on training recordings, then `logits` gives decision values comparable to a network's logits."""

    regularisation: float = 1.0
    pipeline: Pipeline | None = None

    def fit(self, recordings: Sequence[np.ndarray], labels: Sequence[int]) -> "MfccStatsBaseline":
        features = np.stack([mfcc_statistics(r) for r in recordings])
        self.pipeline = make_pipeline(
            StandardScaler(), LogisticRegression(C=self.regularisation, class_weight="balanced", max_iter=2000)
        )
        self.pipeline.fit(features, np.asarray(labels))
        return self

    def logits(self, recordings: Sequence[np.ndarray]) -> np.ndarray:
        if self.pipeline is None:
            raise RuntimeError("MfccStatsBaseline.logits called before fit")
        return self.pipeline.decision_function(np.stack([mfcc_statistics(r) for r in recordings]))
