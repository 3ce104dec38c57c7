"""The encoder contract shared by SSAST and SSAMBA: tokens on a grid -> blocks -> masked pooling (mean, or
every layer's mean and std: `EncoderConfig.pooling`).

    forward_features(x, lengths) = encode(tokenize(x, lengths))

`tokenize` and `encode` are separate so pretraining can replace some embeddings by `mask_embedding` in
between. Adapter sets are switches on this one model (`add_adapter_set`, `use_adapter_set`), never copies.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from biomarker.models.checkpoint import write_checkpoint
from biomarker.models.config import EncoderConfig
from biomarker.nn.adapters import AdaptableBlock, make_adapters
from biomarker.nn.tokens import LearnedGridPositions, PatchEmbed, SinusoidalPositions, TokenBatch, TokenLayout, masked_mean, masked_mean_std
from biomarker.records import ModelConfigError

ADAPTER_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")


class Encoder(nn.Module):
    """Base of every registered encoder; subclasses say which block they stack (`build_block`)."""

    kind: ClassVar[str]
    config_class: ClassVar[type[EncoderConfig]]
    default_features: ClassVar[dict[str, Any]] = {"name": "fbank"}
    # Whether torch.onnx.export can trace the forward (models.runtime asks before trying: a failed export costs
    # seconds on the first clip of every process).
    onnx_exportable: ClassVar[bool] = True

    def __init__(self, config: EncoderConfig, feature_config: dict[str, Any] | None = None):
        super().__init__()
        self.config = config
        # The front-end this encoder was trained on, so a checkpoint rebuilds it (features.get_extractor(**...)).
        self.feature_config = dict(self.default_features if feature_config is None else feature_config)
        self.adapter_sets: dict[str, dict[str, Any]] = {}
        dim = config.embed_dim
        self.patch_embed = PatchEmbed(config.num_features, config.patch, config.stride, dim)
        if config.positions == "learned":
            self.positions: nn.Module = LearnedGridPositions((self.patch_embed.rows, config.max_columns), dim)
        else:
            self.positions = SinusoidalPositions(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if config.cls_token else None
        self.mask_embedding = nn.Parameter(torch.zeros(dim))
        self.blocks = nn.ModuleList(self.build_block() for _ in range(config.depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.init_weights()

    def onnx_covers(self, frames: int) -> bool:
        """Whether a graph exported from a short clip scores unpadded clips of `frames` frames the same way: always
        with sinusoidal positions, within the table's width with learned ones (`LearnedGridPositions.cropped`)."""
        if not isinstance(self.positions, LearnedGridPositions):
            return True
        columns = int(self.patch_embed.columns_for(torch.tensor([frames])))
        return self.positions.cropped((self.patch_embed.rows, columns))

    # ------------------------------------------------------------------------------------------ building
    def build_block(self) -> AdaptableBlock:
        raise NotImplementedError

    def init_weights(self) -> None:
        """Prefix and mask embeddings as in SSAST (truncated normal, std 0.02); blocks keep their own init."""
        nn.init.trunc_normal_(self.mask_embedding, std=0.02)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    @property
    def num_prefix(self) -> int:
        return 0 if self.cls_token is None else 1

    # ------------------------------------------------------------------------------------------- forward
    def tokenize(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> TokenBatch:
        """x: [B, T, F] features, lengths: [B] frames (None: all T) -> TokenBatch (embeddings [B, N, D])."""
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device)
        return self.patch_embed(x, lengths.to(x.device))

    def encode(self, embeddings: torch.Tensor, lengths: torch.Tensor, has_padding: bool | None = None) -> torch.Tensor:
        """embeddings: [B, N, D] (time-major grid), lengths: [B] real tokens -> tokens [B, N, D].

        Adds positions, prepends the cls token if configured, runs the blocks and the final norm, and returns
        the grid tokens only, aligned with `embeddings` (so a pretraining loss can index masked positions).
        `has_padding` (see `TokenLayout.build`) is for callers that know it without asking the device.
        """
        return self.encode_layers(embeddings, lengths, has_padding)[-1]

    def encode_layers(self, embeddings: torch.Tensor, lengths: torch.Tensor,
                      has_padding: bool | None = None) -> list[torch.Tensor]:
        """As `encode`, but every block's output too: depth + 1 tensors [B, N, D] of grid tokens, the last one
        normed (what `encode` returns)."""
        batch, tokens, _ = embeddings.shape
        rows = self.patch_embed.rows
        grid = (rows, tokens // rows)
        x = embeddings + self.positions(lengths, grid)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(batch, -1, -1), x], dim=1)
        layout = TokenLayout.build(lengths, grid, self.num_prefix, has_padding)
        layers = []
        for block in self.blocks:
            x = block(x, layout)
            layers.append(x[:, self.num_prefix :])
        return layers + [self.norm(x)[:, self.num_prefix :]]

    def forward_features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [B, T, F], lengths: [B] frames -> (tokens [B, N, D], token_lengths [B])."""
        batch = self.tokenize(x, lengths)
        return self.encode(batch.embeddings, batch.lengths), batch.lengths

    def pool(self, tokens: torch.Tensor, token_lengths: torch.Tensor) -> torch.Tensor:
        """tokens: [B, N, D] -> [B, D], the mean over each clip's real tokens (padding never counts)."""
        return masked_mean(tokens, self._real(tokens, token_lengths))

    @staticmethod
    def _real(tokens: torch.Tensor, token_lengths: torch.Tensor) -> torch.Tensor:
        """[B, N] True for each clip's real grid tokens (padding sits at the end of the time-major grid)."""
        return torch.arange(tokens.shape[1], device=tokens.device)[None, :] < token_lengths[:, None]

    @property
    def pooled_dim(self) -> int:
        return self.config.pooled_dim

    def encode_pooled(self, embeddings: torch.Tensor, lengths: torch.Tensor, has_padding: bool | None = None) -> torch.Tensor:
        """embeddings: [B, N, D], lengths: [B] real tokens -> [B, pooled_dim], pooled as `config.pooling` says."""
        if self.config.pooling == "mean":
            return self.pool(self.encode(embeddings, lengths, has_padding), lengths)
        layers = self.encode_layers(embeddings, lengths, has_padding)
        valid = self._real(embeddings, lengths)
        return torch.cat([masked_mean_std(layer, valid) for layer in layers], dim=-1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, T, F] -> clip embeddings [B, pooled_dim]."""
        batch = self.tokenize(x, lengths)
        return self.encode_pooled(batch.embeddings, batch.lengths)

    # ------------------------------------------------------------------------------------------ adapters
    def add_adapter_set(self, name: str, kind: str = "aat", **options: Any) -> None:
        """Add a named set of adapters (one per block) of `kind` ('aat' or 'conv'); it starts as the identity."""
        if not ADAPTER_NAME.match(name):
            raise ModelConfigError(f"adapter set name {name!r} may hold only letters, digits, '_' and '-'")
        if name in self.adapter_sets:
            raise ModelConfigError(f"adapter set {name!r} already exists; sets are never overwritten")
        reference = self.mask_embedding
        for block in self.blocks:
            adapters = make_adapters(kind, self.embed_dim, has_mlp=block.has_mlp, **options)
            adapters = adapters.to(reference.device, reference.dtype)
            block.adapters[name] = adapters.train(self.training)  # a set added to a model in eval stays in eval
        self.adapter_sets[name] = {"kind": kind, **options}

    def use_adapter_set(self, name: str | None) -> None:
        """Route every block through adapter set `name`, or through the plain backbone when None."""
        if name is not None and name not in self.adapter_sets:
            raise ModelConfigError(f"no adapter set {name!r}; this encoder has {sorted(self.adapter_sets) or 'none'}")
        for block in self.blocks:
            block.active_adapter = name

    @property
    def active_adapter_set(self) -> str | None:
        return self.blocks[0].active_adapter if len(self.blocks) else None

    def adapter_parameters(self, name: str) -> list[nn.Parameter]:
        if name not in self.adapter_sets:
            raise ModelConfigError(f"no adapter set {name!r}; this encoder has {sorted(self.adapter_sets) or 'none'}")
        return [p for block in self.blocks for p in block.adapters[name].parameters()]

    def freeze_backbone(self, train_adapter_set: str | None = None) -> int:
        """Freeze every parameter except adapter set `train_adapter_set`; returns how many stay trainable."""
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        trainable = self.adapter_parameters(train_adapter_set) if train_adapter_set is not None else []
        for parameter in trainable:
            parameter.requires_grad_(True)
        return sum(p.numel() for p in trainable)

    def backbone_parameter_count(self) -> int:
        """Parameters without any adapter set: what the registry's size targets refer to."""
        adapters = {id(p) for block in self.blocks for p in block.adapters.parameters()}
        return sum(p.numel() for p in self.parameters() if id(p) not in adapters)

    # ---------------------------------------------------------------------------------------- checkpoint
    def describe(self) -> dict[str, Any]:
        """Everything needed to rebuild this encoder before its weights are loaded (config.json)."""
        return {
            "kind": self.kind,
            "config": self.config.to_dict(),
            "features": self.feature_config,
            "adapter_sets": self.adapter_sets,
        }

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> "Encoder":
        encoder = cls(cls.config_class.from_dict(description["config"]), description.get("features"))
        for name, spec in description.get("adapter_sets", {}).items():
            options = dict(spec)
            encoder.add_adapter_set(name, options.pop("kind"), **options)
        return encoder

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype = torch.float16) -> Path:
        """Write model.safetensors (fp16 by default: a few MB) and config.json into `directory`."""
        return write_checkpoint(self, self.describe(), directory, dtype)
