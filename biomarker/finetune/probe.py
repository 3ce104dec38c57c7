"""Head first: fit a cohort's fresh head as a linear probe on the frozen encoder before any weight moves (LP-FT).

WHY: a fresh head is random, and its first gradients flow into every encoder weight. With few labels that can
wreck what pretraining learned before the head points anywhere useful (Kumar et al., "Fine-Tuning can Distort
Pretrained Features and Underperform Out-of-Distribution", ICLR 2022, whose remedy this is). Measured here
(docs/screening.md, 100 labels): pretrained SSAST-tiny fully fine-tuned for 40 steps from a random head reached
validation AUROC 0.17, a ranking turned upside down, while logistic regression on the same frozen encoder's
pooled embeddings reached 0.89. Fine-tuning then starts where the probe ends, and the probe is kept unless
fine-tuning beats it on validation (`TrainConfig.evaluate_at_start`).

The probe is class-balanced L2 logistic regression on the head's own input (pooled embedding through the head's
LayerNorm) of whole recordings, the unit the screener scores; its strength is chosen on validation subjects'
AUROC, the same criterion early stopping uses. With `standardise`, each input is first scaled to zero mean and
unit variance over the training rows, and the scaling is folded into the Linear afterwards (an affine map of the
norm's output, so the head keeps its shape). WHY: a head reading every layer's mean and standard deviation
(`EncoderConfig.pooling = "layer-stats"`) sees numbers on scales that differ by orders of magnitude between
layers and statistics, and one L2 penalty would otherwise favour the large ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from biomarker.finetune.data import LabelledFeatures
from biomarker.finetune.scoring import over_batches, subject_auroc
from biomarker.models import ScreeningModel


@dataclass(frozen=True)
class ProbeConfig:
    """Inverse L2 strengths tried (scikit-learn's C); the best validation subject AUROC wins."""

    strengths: tuple[float, ...] = (0.01, 0.1, 1.0)
    batch_size: int = 16
    standardise: bool = False  # scale each input over the training rows first (folded into the Linear after)


@dataclass(frozen=True)
class ProbeResult:
    strength: float
    validation_auroc: float
    standardised: bool = False


def head_inputs(model: ScreeningModel, data: LabelledFeatures, cohort: str, batch_size: int = 16) -> np.ndarray:
    """[N, D]: each whole recording's pooled embedding after the cohort head's LayerNorm (what its Linear sees)."""
    norm = model.heads[model.use_cohort(cohort)].norm
    was_training = model.training
    model.eval()
    clips = [data.bank.clip(i) for i in range(len(data))]
    inputs = over_batches(lambda features, lengths: norm(model.encoder(features, lengths)), clips, batch_size,
                          next(model.parameters()).device)
    model.train(was_training)
    return inputs


def fit_probe_head(model: ScreeningModel, cohort: str, train_data: LabelledFeatures, val_data: LabelledFeatures,
                   config: ProbeConfig = ProbeConfig()) -> ProbeResult:
    """Set `cohort`'s head Linear to the validation-chosen logistic-regression probe of the frozen encoder."""
    train_x, val_x = (head_inputs(model, data, cohort, config.batch_size) for data in (train_data, val_data))
    train_y = train_data.labels.numpy().astype(int)
    mean, scale = np.zeros(train_x.shape[1]), np.ones(train_x.shape[1])
    if config.standardise:
        scaler = StandardScaler().fit(train_x)
        mean, scale = scaler.mean_, scaler.scale_  # scale_ is 1 where a feature is constant
        train_x, val_x = scaler.transform(train_x), scaler.transform(val_x)
    best: tuple[float, float, LogisticRegression] | None = None
    for strength in config.strengths:
        probe = LogisticRegression(C=strength, class_weight="balanced", max_iter=5000).fit(train_x, train_y)
        score = subject_auroc(probe.decision_function(val_x), val_data)
        if best is None or score > best[1]:
            best = (strength, score, probe)
    strength, score, probe = best
    linear = model.heads[model.resolve_cohort(cohort)].linear
    # w . (x - mean) / scale + b  ==  (w / scale) . x + (b - w . mean / scale)
    weight = probe.coef_ / scale
    bias = probe.intercept_ - weight @ mean
    with torch.no_grad():
        linear.weight.copy_(torch.as_tensor(weight, dtype=linear.weight.dtype))
        linear.bias.copy_(torch.as_tensor(bias, dtype=linear.bias.dtype))
    return ProbeResult(strength, score, config.standardise)
