"""Kaldi-style log-mel filterbanks as SSAST feeds them, batched in torch.

SSAST (and AST, Audio-MAE) compute `torchaudio.compliance.kaldi.fbank(waveform - waveform.mean(),
htk_compat=True, use_energy=False, window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10)`
one clip at a time. This is the same arithmetic on a padded batch: the clip mean is taken over each clip's
own samples, frames that do not fit whole are snipped (kaldi's snip_edges), and each frame gets kaldi's DC
removal, pre-emphasis (replicating its first sample), window, zero-padding to a power of two, power spectrum,
kaldi mel banks and log floored at float32 eps. Normalisation, (x - mean) / (2 * std), happens in the base class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from einops import rearrange
from torchaudio.compliance.kaldi import get_mel_banks

from biomarker.features.base import FeatureConfig, FeatureExtractor, frame_signal, map_frames
from biomarker.records import FeatureError

WINDOWS = {
    "hanning": lambda n, dtype: torch.hann_window(n, periodic=False, dtype=dtype),
    "hamming": lambda n, dtype: torch.hamming_window(n, periodic=False, alpha=0.54, beta=0.46, dtype=dtype),
    "povey": lambda n, dtype: torch.hann_window(n, periodic=False, dtype=dtype).pow(0.85),
    "rectangular": lambda n, dtype: torch.ones(n, dtype=dtype),
}

# SSAST's AudioSet + LibriSpeech statistics (src/run.sh in YuanGongND/ssast). A starting point only:
# `biomarker features stats` measures them on the corpus a model is actually trained on.
SSAST_AUDIOSET_MEAN = -4.2677393
SSAST_AUDIOSET_STD = 4.5689974


@dataclass(frozen=True)
class FbankConfig(FeatureConfig):
    """Kaldi fbank options that SSAST sets; the rest stay at kaldi's defaults."""

    kind: ClassVar[str] = "fbank"

    num_mel_bins: int = 128
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    low_freq_hz: float = 20.0
    high_freq_hz: float = 0.0  # kaldi convention: <= 0 means nyquist + this value
    preemphasis: float = 0.97
    window: str = "hanning"
    remove_clip_mean: bool = True  # SSAST subtracts the waveform mean before kaldi
    remove_dc_offset: bool = True  # kaldi's per-frame DC removal

    def __post_init__(self) -> None:
        super().__post_init__()
        who = self.name or self.kind
        if self.window not in WINDOWS:
            raise FeatureError(f"{who}: window must be one of {', '.join(WINDOWS)}, got {self.window!r}")
        if self.num_mel_bins <= 3:
            raise FeatureError(f"{who}: num_mel_bins must be > 3 (kaldi), got {self.num_mel_bins}")
        if self.frame_len < 2 or self.frame_step < 1:
            raise FeatureError(
                f"{who}: frame_length_ms={self.frame_length_ms} and frame_shift_ms={self.frame_shift_ms} give "
                f"{self.frame_len} and {self.frame_step} samples at {self.sample_rate_hz} Hz"
            )
        nyquist = self.sample_rate_hz / 2
        high = self.high_freq_hz if self.high_freq_hz > 0 else nyquist + self.high_freq_hz
        if not 0 <= self.low_freq_hz < high <= nyquist:
            raise FeatureError(
                f"{who}: need 0 <= low_freq_hz < high frequency <= {nyquist} Hz, "
                f"got low_freq_hz={self.low_freq_hz}, high_freq_hz={self.high_freq_hz}"
            )

    @property
    def frame_len(self) -> int:
        return int(self.sample_rate_hz * self.frame_length_ms * 0.001)

    @property
    def frame_step(self) -> int:
        return int(self.sample_rate_hz * self.frame_shift_ms * 0.001)

    @property
    def padded_len(self) -> int:
        """kaldi's round_to_power_of_two."""
        return 1 << (self.frame_len - 1).bit_length()


class FbankExtractor(FeatureExtractor):
    """Batched kaldi fbank (`fbank` preset)."""

    config_type = FbankConfig

    def __init__(self, config: FbankConfig):
        super().__init__(config)
        dtype = self.compute_dtype
        banks, _ = get_mel_banks(
            config.num_mel_bins, config.padded_len, float(config.sample_rate_hz), config.low_freq_hz,
            config.high_freq_hz, 100.0, -500.0, 1.0,
        )  # [mel, padded_len // 2]; kaldi gives the nyquist bin no weight
        banks = torch.nn.functional.pad(banks, (0, 1))
        self.register_buffer("mel_banks", rearrange(banks, "m k -> k m").to(dtype), persistent=False)
        self.register_buffer("window", WINDOWS[config.window](config.frame_len, dtype), persistent=False)

    @property
    def num_features(self) -> int:
        return self.config.num_mel_bins

    @property
    def frames_per_second(self) -> float:
        return self.config.sample_rate_hz / self.config.frame_step

    def num_frames(self, lengths_samples: torch.Tensor) -> torch.Tensor:
        """kaldi snip_edges: only whole frames; clips shorter than one frame give none."""
        frame_len, step = self.config.frame_len, self.config.frame_step
        return torch.where(lengths_samples < frame_len, 0, 1 + (lengths_samples - frame_len).clamp(min=0) // step)

    def _compute(self, waveform: torch.Tensor, lengths_samples: torch.Tensor, num_frames: int) -> torch.Tensor:
        """[B, S] -> [B, T, num_mel_bins]."""
        cfg = self.config
        x = waveform
        if cfg.remove_clip_mean:
            clip_mean = x.sum(-1) / lengths_samples.clamp(min=1)
            x = x - rearrange(clip_mean, "b -> b 1")  # samples beyond a clip's end are never framed into it
        frames = frame_signal(x, cfg.frame_len, cfg.frame_step, num_frames)  # [B, T, frame_len], a view
        return map_frames(frames, self._log_mel)

    def _log_mel(self, frames: torch.Tensor) -> torch.Tensor:
        """[..., frame_len] -> [..., num_mel_bins]."""
        cfg = self.config
        if cfg.remove_dc_offset:
            frames = frames - frames.mean(-1, keepdim=True)
        if cfg.preemphasis:
            previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
            frames = frames - cfg.preemphasis * previous
        spectrum = torch.fft.rfft(frames * self.window, n=cfg.padded_len)  # [..., padded_len//2+1]
        power = spectrum.real.square() + spectrum.imag.square()
        mel = power @ self.mel_banks  # [..., mel]
        return mel.clamp(min=torch.finfo(torch.float32).eps).log()
