"""Masked spectrogram-token modelling (SSAST / SSAMBA): one wrapper that takes any registered encoder.

Why a wrapper (vit-pytorch's `MAE`): the encoder stays the encoder; pretraining only needs its hooks
`tokenize` → (replace some embeddings by `mask_embedding`) → `encode`, and two small heads on top. SSAST and
SSAMBA copy this objective line for line, so here it is written once:

- masking: cluster masking for patch tokens (C×C blocks, C drawn from {3,4,5}, SSAST `gen_maskid_patch`),
  uniform random for frame tokens (one row of tokens); ratio `mask_ratio` of each clip's *real* tokens
  (SSAST: 400 of 512 ≈ 0.78). Padding is never masked and never scored.
- loss = InfoNCE + λ·MSE, λ = 10. InfoNCE: for each masked position, the score of every masked position's
  prediction against its target; the softmax runs over the predictions of the same clip (SSAST's code, kept
  as released: ssast#13), so the negatives are the other masked positions of that clip. MSE: reconstruction
  of the raw token values (the normalised features under the token).
- reported: `nce`, `mse`, `acc` (how often the true position wins the InfoNCE softmax), `chance` (1 / number
  of masked positions), and `mse_mean_patch` (the MSE of predicting each masked token by its clip's mean token:
  the baseline the shipped encoders' cards compare against).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from biomarker.records import BiomarkerError


class MaskingConfigError(BiomarkerError, ValueError):
    """A masking setting is out of range; the message names the field and value."""


@dataclass(frozen=True)
class MaskedObjectiveConfig:
    """SSAST defaults: 400/512 tokens masked, clusters of side 3-5, MSE weight 10."""

    mask_ratio: float = 0.78
    cluster_sizes: tuple[int, ...] = (3, 4, 5)
    mse_weight: float = 10.0
    min_masked: int = 2  # InfoNCE needs at least one negative

    def __post_init__(self) -> None:
        if not 0.0 < self.mask_ratio < 1.0:
            raise MaskingConfigError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if not self.cluster_sizes or min(self.cluster_sizes) < 1:
            raise MaskingConfigError(f"cluster_sizes must be positive integers, got {self.cluster_sizes}")
        if self.mse_weight < 0:
            raise MaskingConfigError(f"mse_weight must be >= 0, got {self.mse_weight}")
        if self.min_masked < 2:
            raise MaskingConfigError(f"min_masked must be >= 2 (InfoNCE needs a negative), got {self.min_masked}")


def prediction_head(dim: int, out: int) -> nn.Sequential:
    """Linear → ReLU → Linear, SSAST's `cpredlayer` / `gpredlayer`."""
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, out))


def cluster_mask(rows: int, columns: int, count: int, sizes: tuple[int, ...], rng: random.Random) -> list[int]:
    """`count` time-major token indices of a rows×columns grid, grown as C×C blocks (C from `sizes`).

    Blocks are clipped at the grid's edges (SSAST wraps them across rows, an artefact of its flat index)."""
    chosen: set[int] = set()
    total = rows * columns
    while len(chosen) < count:
        side = rng.choice(sizes)
        row, column = rng.randrange(rows), rng.randrange(columns)
        for t in range(column, min(column + side, columns)):
            for f in range(row, min(row + side, rows)):
                chosen.add(t * rows + f)
        if len(chosen) >= total:
            break
    picked = sorted(chosen)
    if len(picked) > count:  # trim the last block's overshoot at random, keeping exactly `count`
        picked = sorted(rng.sample(picked, count))
    return picked


class MaskedTokenObjective(nn.Module):
    """Wraps an encoder for masked-token pretraining; `forward(features, lengths)` returns the losses.

    After pretraining, `objective.encoder.save_pretrained(dir)` ships the encoder alone (the heads are only
    for pretraining)."""

    def __init__(self, encoder: nn.Module, config: MaskedObjectiveConfig = MaskedObjectiveConfig()):
        super().__init__()
        self.encoder = encoder
        self.config = config
        patch = encoder.patch_embed.patch
        token_values = patch[0] * patch[1]
        self.discriminative_head = prediction_head(encoder.embed_dim, token_values)
        self.generative_head = prediction_head(encoder.embed_dim, token_values)

    def choose_masks(self, lengths: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """lengths: [B] real tokens -> (index [B, M] long, valid [B, M] bool), M = most masked in a clip.

        Draws from Python's `random`, seeded from torch's generator so torch's RNG state alone (saved by the
        trainer) reproduces the masks."""
        rows, _ = grid
        rng = random.Random(int(torch.randint(0, 2**62, ())))
        per_clip: list[list[int]] = []
        for real in lengths.tolist():
            count = max(self.config.min_masked, round(self.config.mask_ratio * real))
            if real < self.config.min_masked + 1:
                raise MaskingConfigError(f"a clip with {real} tokens is too short to mask {count} and keep one")
            if rows > 1:
                per_clip.append(cluster_mask(rows, real // rows, count, self.config.cluster_sizes, rng))
            else:
                per_clip.append(sorted(rng.sample(range(real), count)))
        width = max(len(chosen) for chosen in per_clip)
        index = torch.zeros(len(per_clip), width, dtype=torch.long)
        valid = torch.zeros(len(per_clip), width, dtype=torch.bool)
        for b, chosen in enumerate(per_clip):
            index[b, : len(chosen)] = torch.tensor(chosen)
            valid[b, : len(chosen)] = True
        return index.to(lengths.device), valid.to(lengths.device)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """features: [B, T, F], lengths: [B] frames -> dict of scalar losses and metrics ('loss' included)."""
        tokens = self.encoder.tokenize(features, lengths)
        index, valid = self.choose_masks(tokens.lengths, tokens.grid)  # [B, M]
        batch, num_tokens, dim = tokens.embeddings.shape
        masked = torch.zeros(batch, num_tokens, dtype=torch.bool, device=features.device)
        masked.scatter_(1, index, valid)
        embeddings = torch.where(masked[..., None], self.encoder.mask_embedding.to(tokens.embeddings.dtype),
                                 tokens.embeddings)
        encoded = self.encoder.encode(embeddings, tokens.lengths)  # [B, N, D]

        at_masks = torch.gather(encoded, 1, index[..., None].expand(-1, -1, dim))  # [B, M, D]
        targets = torch.gather(tokens.targets, 1, index[..., None].expand(-1, -1, tokens.targets.shape[-1]))
        targets = targets.float()  # [B, M, P]
        guesses = self.discriminative_head(at_masks).float()  # [B, M, P]
        reconstructions = self.generative_head(at_masks).float()  # [B, M, P]

        # InfoNCE: scores[b, i, j] = <target_i, guess_j>, softmax over j among the clip's masked positions
        scores = torch.einsum("bip,bjp->bij", targets, guesses)
        scores = scores.masked_fill(~valid[:, None, :], float("-inf"))
        log_probs = F.log_softmax(scores, dim=-1)
        diagonal = torch.diagonal(log_probs, dim1=1, dim2=2)  # [B, M]
        weights = valid.float()
        count = weights.sum().clamp_min(1.0)
        nce = -torch.where(valid, diagonal, torch.zeros_like(diagonal)).sum() / count  # padded rows are -inf
        correct = (scores.argmax(dim=-1) == torch.arange(scores.shape[1], device=scores.device)).float()
        accuracy = (correct * weights).sum() / count
        chance = (weights / weights.sum(dim=1, keepdim=True)).sum() / count

        squared = ((reconstructions - targets) ** 2).mean(dim=-1)  # [B, M]
        mse = (squared * weights).sum() / count

        # baseline: each clip's mean token (over its real tokens) as the guess for every masked token
        real = (torch.arange(num_tokens, device=features.device)[None, :] < tokens.lengths[:, None]).float()
        mean_token = (tokens.targets.float() * real[..., None]).sum(1) / real.sum(1, keepdim=True)  # [B, P]
        baseline = ((mean_token[:, None, :] - targets) ** 2).mean(dim=-1)
        mse_mean_patch = (baseline * weights).sum() / count

        return {
            "loss": nce + self.config.mse_weight * mse,
            "nce": nce.detach(),
            "mse": mse.detach(),
            "acc": accuracy.detach(),
            "chance": chance.detach(),
            "mse_mean_patch": mse_mean_patch.detach(),
        }

