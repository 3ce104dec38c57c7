"""A recording's logit, two ways: the whole utterance pooled once, or the mean over 4 s windows.

WHY both: SPIRA's CNN and the MFCC-gram paper score 4 s windows and average them; a transformer with masked mean
pooling can take the whole utterance at once. Which one is better is measured on validation, not assumed
(`choose_scoring`). Window-mean averages window probabilities and returns the logit of that mean, so
temperature scaling applies to both alike.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from biomarker.evaluate.metrics import auroc, to_subjects
from biomarker.finetune.data import LabelledFeatures
from biomarker.models.screening import SCORING_MODES, mean_probability_logit, windows
from biomarker.features.bank import pad_batch


@torch.no_grad()
def over_batches(forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], clips: Sequence[torch.Tensor],
                 batch_size: int, device: torch.device) -> np.ndarray:
    """`forward(features [B, T, F], lengths [B])` over zero-padded batches of `clips`, outputs concatenated."""
    out = []
    for start in range(0, len(clips), batch_size):
        batch = pad_batch(clips[start : start + batch_size])
        out.append(forward(batch["features"].to(device), batch["lengths"].to(device)).float().cpu().numpy())
    return np.concatenate(out)


def subject_auroc(recording_scores: np.ndarray, data: LabelledFeatures) -> float:
    """AUROC over `data`'s subjects, each scored by the mean of its recordings' scores (the validation criterion)."""
    subject = to_subjects(recording_scores, data.labels.numpy().astype(int), data.subjects)
    return auroc(subject.scores, subject.labels)


def _logits(model: torch.nn.Module, clips: Sequence[torch.Tensor], cohort: str, batch_size: int, device: torch.device) -> np.ndarray:
    return over_batches(lambda features, lengths: model.logits(features, lengths, cohort=cohort), clips, batch_size, device)


@torch.no_grad()
def recording_logits(
    model: torch.nn.Module,
    data: LabelledFeatures,
    cohort: str,
    *,
    mode: str = "whole",
    window_frames: int = 400,
    hop_frames: int = 100,
    batch_size: int = 16,
) -> np.ndarray:
    """Uncalibrated logit per recording [N] (model in eval mode, on its own device)."""
    if mode not in SCORING_MODES:
        raise ValueError(f"scoring mode must be one of {SCORING_MODES}, got {mode!r}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    clips = [data.bank.clip(i) for i in range(len(data))]
    if mode == "whole":
        result = _logits(model, clips, cohort, batch_size, device)
    else:
        pieces = [windows(c, window_frames, hop_frames) for c in clips]
        flat = _logits(model, [w for p in pieces for w in p], cohort, batch_size, device)
        result = mean_probability_logit(torch.from_numpy(flat), [len(p) for p in pieces]).numpy()
    model.train(was_training)
    return result
