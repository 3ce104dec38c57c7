"""Typed encoder configurations. Each is saved inside its checkpoint and rebuilt from it (`from_dict`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from biomarker.records import ModelConfigError

ConfigT = TypeVar("ConfigT", bound="EncoderConfig")
POOLINGS = ("mean", "layer-stats")


@dataclass(frozen=True)
class EncoderConfig:
    """What every grid encoder shares: size, tokens and positions.

    `patch`/`stride` are (frequency, time) in input bins/frames: 16x16 patches or 128x2 frames.
    `max_columns` sizes the learned position table in time columns (64 = 10.24 s of 10 ms frames at stride 16);
    longer clips get it stretched. `positions` is 'learned' or 'sinusoidal'.
    `pooling` is how a clip becomes one vector: 'mean' (the final tokens' mean, D numbers) or 'layer-stats' (the
    mean and standard deviation of every block's output and of the final tokens, (depth + 1) x 2 x D numbers).
    WHY 'layer-stats': a clip's breathing shows in how its frames vary (pauses, in-breaths, tremor), which a mean
    averages away, and low blocks keep acoustic detail (breathiness, jitter) that the last one abstracts; the
    x-vector's statistics pooling and SUPERB's use of every layer are the field's answers to both.
    """

    embed_dim: int = 192
    depth: int = 12
    num_features: int = 128
    patch: tuple[int, int] = (16, 16)
    stride: tuple[int, int] = (16, 16)
    max_columns: int = 64
    positions: str = "learned"
    cls_token: bool = True
    pooling: str = "mean"

    def __post_init__(self) -> None:
        # JSON gives lists back; keep tuples so configs compare equal after a round trip.
        object.__setattr__(self, "patch", tuple(self.patch))
        object.__setattr__(self, "stride", tuple(self.stride))
        if self.positions not in ("learned", "sinusoidal"):
            raise ModelConfigError(f"positions={self.positions!r} is not 'learned' or 'sinusoidal'")
        if self.pooling not in POOLINGS:
            raise ModelConfigError(f"pooling={self.pooling!r} is not one of {', '.join(map(repr, POOLINGS))}")
        for name in ("embed_dim", "depth", "num_features", "max_columns"):
            if getattr(self, name) < 1:
                raise ModelConfigError(f"{name}={getattr(self, name)} must be at least 1")

    @property
    def pooled_dim(self) -> int:
        """Numbers per clip after pooling (what a head reads)."""
        return self.embed_dim if self.pooling == "mean" else (self.depth + 1) * 2 * self.embed_dim

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[ConfigT], values: dict[str, Any]) -> ConfigT:
        """Build from a dict, naming any key this config does not have (a typo must not pass silently)."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ModelConfigError(f"{cls.__name__} has no setting {', '.join(map(repr, unknown))}; known: {sorted(known)}")
        return cls(**values)

    def replace(self: ConfigT, **overrides: Any) -> ConfigT:
        return type(self).from_dict({**self.to_dict(), **overrides})


@dataclass(frozen=True)
class TransformerConfig(EncoderConfig):
    """SSAST-style ViT encoder (and the MFCC-gram Transformer). `attention`: 'sdpa', 'plain' or 'factorized'."""

    num_heads: int = 3
    mlp_ratio: float = 4.0
    attention: str = "sdpa"
    dropout: float = 0.0


@dataclass(frozen=True)
class MambaConfig(EncoderConfig):
    """SSAMBA encoder: Vim-v2 bidirectional Mamba blocks (d_inner = expand x embed_dim, dt_rank = ceil(d/16))."""

    depth: int = 24
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_min: float = 1e-3
    dt_max: float = 1e-1
