"""A recording's logit, two ways: the whole utterance pooled once, or the mean over 4 s windows.

WHY both: SPIRA's CNN and the MFCC-gram paper score 4 s windows and average them; a transformer with masked mean
pooling can take the whole utterance at once. Which one is better is measured on validation, not assumed
(`choose_scoring`). Window-mean averages window probabilities and returns the logit of that mean, so
temperature scaling applies to both alike.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from biomarker.finetune.data import LabelledFeatures
from biomarker.pretrain.data import pad_batch

SCORING_MODES = ("whole", "window-mean")


@torch.no_grad()
def _logits(model: torch.nn.Module, clips: Sequence[torch.Tensor], cohort: str, batch_size: int, device: torch.device) -> np.ndarray:
    out = []
    for start in range(0, len(clips), batch_size):
        batch = pad_batch(clips[start : start + batch_size])
        logits = model.logits(batch["features"].to(device), batch["lengths"].to(device), cohort=cohort)
        out.append(logits.float().cpu().numpy())
    return np.concatenate(out)


def windows(clip: torch.Tensor, window_frames: int, hop_frames: int) -> list[torch.Tensor]:
    """[T, F] -> windows of `window_frames` every `hop_frames` (a clip shorter than one window is one window)."""
    if clip.shape[0] <= window_frames:
        return [clip]
    starts = list(range(0, clip.shape[0] - window_frames + 1, hop_frames))
    if starts[-1] + window_frames < clip.shape[0]:
        starts.append(clip.shape[0] - window_frames)  # cover the tail
    return [clip[s : s + window_frames] for s in starts]


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
        probabilities, start = [], 0
        for p in pieces:
            probabilities.append(float(np.mean(1 / (1 + np.exp(-flat[start : start + len(p)])))))
            start += len(p)
        clipped = np.clip(probabilities, 1e-6, 1 - 1e-6)
        result = np.log(clipped / (1 - clipped))
    model.train(was_training)
    return result
