"""What every feature extractor shares: a JSON-able config dataclass, the batch contract, framing, normalisation.

A model stores its extractor's `config.to_dict()` in its checkpoint and rebuilds the same front-end from it,
so configs are flat dicts of plain numbers and strings, and `from_dict` refuses keys it does not know rather
than ignoring them (a silently ignored key would give a model features it was not trained on).
"""

from __future__ import annotations

import dataclasses
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from einops import rearrange
from torch import nn

from biomarker.records import FeatureError

COMPUTE_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class FeatureConfig:
    """Settings shared by all extractors.

    `name` is the registry preset the config came from (informative); `kind` (a class attribute written into
    `to_dict()`) says which extractor class rebuilds it. When `norm_mean` and `norm_std` are set, features are
    scaled as (x - norm_mean) / (2 * norm_std), SSAST's convention that puts most values within [-1, 1];
    `biomarker features stats` measures them over a corpus. `compute_dtype` is the precision of the
    arithmetic; outputs come back in the input waveform's dtype.
    """

    kind: ClassVar[str] = ""

    name: str = ""
    sample_rate_hz: int = 16000
    norm_mean: float | None = None
    norm_std: float | None = None
    compute_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.sample_rate_hz <= 0:
            raise FeatureError(f"{self.name or self.kind}: sample_rate_hz must be positive, got {self.sample_rate_hz}")
        if (self.norm_mean is None) != (self.norm_std is None):
            raise FeatureError(
                f"{self.name or self.kind}: set both norm_mean and norm_std or neither, "
                f"got norm_mean={self.norm_mean}, norm_std={self.norm_std}"
            )
        if self.norm_std is not None and not (self.norm_std > 0 and math.isfinite(self.norm_std)):
            raise FeatureError(f"{self.name or self.kind}: norm_std must be a positive finite number, got {self.norm_std}")
        if self.norm_mean is not None and not math.isfinite(self.norm_mean):
            raise FeatureError(f"{self.name or self.kind}: norm_mean must be finite, got {self.norm_mean}")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise FeatureError(
                f"{self.name or self.kind}: compute_dtype must be one of {sorted(COMPUTE_DTYPES)}, got {self.compute_dtype!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict, including `kind`, for a checkpoint's config.json."""
        return {"kind": self.kind, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "FeatureConfig":
        """Inverse of `to_dict`; unknown keys and a foreign `kind` are errors, missing keys take defaults."""
        values = dict(values)
        kind = values.pop("kind", cls.kind)
        if kind != cls.kind:
            raise FeatureError(f"config of kind {kind!r} cannot build a {cls.kind!r} extractor")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise FeatureError(
                f"{values.get('name') or cls.kind}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**values)


class FeatureExtractor(nn.Module):
    """Waveform batch -> feature batch, with lengths travelling alongside.

    Subclasses implement `num_frames` and `_compute`; this class validates the batch, zeroes samples beyond
    each clip's length (so padding never leaks into a clip's frames), normalises, and zeroes padded frames.
    """

    config_type: ClassVar[type[FeatureConfig]] = FeatureConfig

    def __init__(self, config: FeatureConfig):
        super().__init__()
        if not isinstance(config, self.config_type):
            raise FeatureError(f"{type(self).__name__} needs a {self.config_type.__name__}, got {type(config).__name__}")
        self.config = config

    @property
    def num_features(self) -> int:
        raise NotImplementedError

    @property
    def sample_rate_hz(self) -> int:
        return self.config.sample_rate_hz

    @property
    def frames_per_second(self) -> float:
        raise NotImplementedError

    @property
    def compute_dtype(self) -> torch.dtype:
        return COMPUTE_DTYPES[self.config.compute_dtype]

    def num_frames(self, lengths_samples: torch.Tensor) -> torch.Tensor:
        """Frames a clip of each length yields (int64, same shape)."""
        raise NotImplementedError

    def _compute(self, waveform: torch.Tensor, lengths_samples: torch.Tensor, num_frames: int) -> torch.Tensor:
        """[B, S] in `compute_dtype`, zero beyond each length -> [B, num_frames, F]."""
        raise NotImplementedError

    def forward(
        self, waveform: torch.Tensor, lengths_samples: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """waveform [B, S] (float, at `sample_rate_hz`), lengths_samples [B] (None: all S)
        -> features [B, T, F] in the waveform's dtype (zero beyond each clip's frames), lengths_frames [B] int64."""
        if waveform.dim() != 2 or not waveform.is_floating_point():
            raise FeatureError(
                f"{self.config.name}: waveform must be a float [batch, samples] tensor, "
                f"got {waveform.dtype} of shape {tuple(waveform.shape)}"
            )
        batch, num_samples = waveform.shape
        if lengths_samples is None:
            lengths_samples = torch.full((batch,), num_samples, dtype=torch.long, device=waveform.device)
        lengths_samples = lengths_samples.to(device=waveform.device, dtype=torch.long)
        if lengths_samples.shape != (batch,):
            raise FeatureError(
                f"{self.config.name}: lengths_samples must have shape ({batch},), got {tuple(lengths_samples.shape)}"
            )
        out_of_range = (lengths_samples < 0) | (lengths_samples > num_samples)
        if bool(out_of_range.any()):
            bad = int(out_of_range.nonzero()[0, 0])
            raise FeatureError(
                f"{self.config.name}: lengths_samples[{bad}] = {int(lengths_samples[bad])} is outside [0, {num_samples}]"
            )
        inside = torch.arange(num_samples, device=waveform.device) < rearrange(lengths_samples, "b -> b 1")
        x = waveform.to(self.compute_dtype) * inside
        lengths_frames = self.num_frames(lengths_samples)
        total_frames = int(lengths_frames.max()) if batch else 0
        if total_frames == 0:  # every clip shorter than one window (kaldi snips it): nothing to compute
            return waveform.new_zeros(batch, 0, self.num_features), lengths_frames
        features = self._compute(x, lengths_samples, total_frames)
        if self.config.norm_mean is not None:
            features = (features - self.config.norm_mean) / (2.0 * self.config.norm_std)
        valid = torch.arange(total_frames, device=waveform.device) < rearrange(lengths_frames, "b -> b 1")
        features = features * rearrange(valid, "b t -> b t 1")
        return features.to(waveform.dtype), lengths_frames

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config.to_dict().items())


def frame_signal(x: torch.Tensor, frame_len: int, frame_step: int, num_frames: int) -> torch.Tensor:
    """[B, S] -> [B, num_frames, frame_len]: overlapping frames, zero-padding the end when S falls short."""
    if num_frames == 0:
        return x.new_zeros(*x.shape[:-1], 0, frame_len)
    needed = (num_frames - 1) * frame_step + frame_len
    if x.shape[-1] < needed:
        x = nn.functional.pad(x, (0, needed - x.shape[-1]))
    return x[..., :needed].unfold(-1, frame_len, frame_step)


CPU_CHUNK_FRAMES = 1024  # ~1 MB of spectra per chunk stays in cache: about 4x less CPU time than one big batch


def map_frames(frames: torch.Tensor, per_frame: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """[B, T, L] -> [B, T, F] by `per_frame` ([..., L] -> [..., F]).

    On GPU the frames go through in one call. On CPU they go through in chunks of at most CPU_CHUNK_FRAMES
    frames of one clip (views, no copy), so a chunk's spectra stay in cache, spread over
    `torch.get_num_threads()` worker threads. Chunks in parallel beat parallel ops on chunks: each small
    op's thread barrier costs more than the op when cores are shared (measured: `biomarker bench features`).
    With gradients flowing (a waveform that requires grad) the chunks run in this thread.
    """
    batch, num_frames = frames.shape[:2]
    if frames.device.type != "cpu" or batch * num_frames <= CPU_CHUNK_FRAMES:
        return per_frame(frames)
    chunks = [
        frames[row, start : start + CPU_CHUNK_FRAMES]
        for row in range(batch)
        for start in range(0, num_frames, CPU_CHUNK_FRAMES)
    ]
    workers = min(torch.get_num_threads(), len(chunks))
    if workers > 1 and not frames.requires_grad:
        inference = torch.is_inference_mode_enabled()  # grad modes are per thread: carry the caller's over

        def run(chunk: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode(inference), torch.no_grad():
                return per_frame(chunk)

        with ThreadPoolExecutor(workers) as pool:
            outputs = list(pool.map(run, chunks))
    else:
        outputs = [per_frame(chunk) for chunk in chunks]
    return rearrange(torch.cat(outputs), "(b t) f -> b t f", b=batch)


def round_half_up(value: float) -> int:
    """python_speech_features rounds frame sizes half up (not Python's banker's rounding)."""
    return int(math.floor(value + 0.5))
