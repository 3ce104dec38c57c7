"""MFCCs that match python_speech_features (psf) number for number, batched in torch on CPU or GPU.

Why not psf itself: it is numpy, one clip at a time, CPU only; training and scoring need batches on the GPU.
Why not torchaudio.transforms.MFCC: its frames, filterbank edges and log differ from psf, and the SPIRA-era
MFCC-gram work (and our tests) use psf's definition. So this is psf's recipe, step for step:
pre-emphasis -> frames zero-padded at the end -> window -> |rfft|^2 / nfft -> psf's mel filterbank (integer
FFT-bin edges) -> log (zeros floored at float eps) -> DCT-II (ortho) -> sinusoidal lifter -> optionally
coefficient 0 replaced by the log frame energy. Settings keep psf's keyword names so a psf call translates
one to one; `winfunc` is the name of the numpy window psf would have been given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from einops import pack, rearrange, unpack

from biomarker.features.base import FeatureConfig, FeatureExtractor, frame_signal, map_frames, round_half_up
from biomarker.records import FeatureError

# psf's default window is a rectangle; the others are the numpy functions psf users pass as `winfunc`.
WINDOWS = {
    "rectangular": np.ones,
    "hamming": np.hamming,
    "hanning": np.hanning,
    "blackman": np.blackman,
    "bartlett": np.bartlett,
}


@dataclass(frozen=True)
class MfccConfig(FeatureConfig):
    """python_speech_features.mfcc's keyword arguments and defaults (`samplerate` is `sample_rate_hz`)."""

    kind: ClassVar[str] = "mfcc"

    numcep: int = 13
    nfilt: int = 26
    nfft: int = 512
    winlen: float = 0.025
    winstep: float = 0.01
    lowfreq: float = 0.0
    highfreq: float | None = None
    preemph: float = 0.97
    ceplifter: float = 22.0
    appendEnergy: bool = True  # noqa: N815 (psf's own name, kept so psf calls translate one to one)
    winfunc: str = "rectangular"

    def __post_init__(self) -> None:
        super().__post_init__()
        who = self.name or self.kind
        nyquist = self.sample_rate_hz / 2
        if self.winfunc not in WINDOWS:
            raise FeatureError(f"{who}: winfunc must be one of {', '.join(WINDOWS)}, got {self.winfunc!r}")
        if not 0 < self.numcep <= self.nfilt:
            raise FeatureError(f"{who}: numcep must be in [1, nfilt={self.nfilt}], got {self.numcep}")
        if self.nfft < 2:
            raise FeatureError(f"{who}: nfft must be at least 2, got {self.nfft}")
        if self.frame_len < 1 or self.frame_step < 1:
            raise FeatureError(
                f"{who}: winlen={self.winlen} s and winstep={self.winstep} s give "
                f"{self.frame_len} and {self.frame_step} samples at {self.sample_rate_hz} Hz; both must be >= 1"
            )
        if self.frame_len > self.nfft:
            raise FeatureError(
                f"{who}: a {self.frame_len}-sample window does not fit nfft={self.nfft} (psf would truncate frames)"
            )
        high = self.highfreq or nyquist
        if not 0 <= self.lowfreq < high <= nyquist:
            raise FeatureError(
                f"{who}: need 0 <= lowfreq < highfreq <= {nyquist} Hz, got lowfreq={self.lowfreq}, highfreq={self.highfreq}"
            )

    @property
    def frame_len(self) -> int:
        return round_half_up(self.winlen * self.sample_rate_hz)

    @property
    def frame_step(self) -> int:
        return round_half_up(self.winstep * self.sample_rate_hz)


def psf_filterbank(nfilt: int, nfft: int, sample_rate: float, lowfreq: float, highfreq: float | None) -> np.ndarray:
    """psf's `get_filterbanks`, vectorised: triangles whose edges are floored to FFT bins. [nfilt, nfft//2+1]."""
    highfreq = highfreq or sample_rate / 2
    mels = np.linspace(2595 * np.log10(1 + lowfreq / 700.0), 2595 * np.log10(1 + highfreq / 700.0), nfilt + 2)
    edges = np.floor((nfft + 1) * (700 * (10 ** (mels / 2595.0) - 1)) / sample_rate)
    left, centre, right = (rearrange(edges[k : k + nfilt], "f -> f 1") for k in range(3))
    bins = np.arange(nfft // 2 + 1, dtype=np.float64)
    rising = (bins >= left) & (bins < centre)
    falling = (bins >= centre) & (bins < right)
    with np.errstate(divide="ignore", invalid="ignore"):  # empty triangles divide by zero but are masked out
        return np.where(rising, (bins - left) / (centre - left), 0.0) + np.where(
            falling, (right - bins) / (right - centre), 0.0
        )


def lifted_dct(nfilt: int, numcep: int, ceplifter: float) -> np.ndarray:
    """Orthonormal DCT-II (scipy's `dct(type=2, norm='ortho')`) truncated to numcep, times psf's lifter.
    [nfilt, numcep]: log filterbank energies @ this = cepstra."""
    n = rearrange(np.arange(nfilt), "n -> n 1")
    k = rearrange(np.arange(numcep), "k -> 1 k")
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * nfilt)) * np.where(k == 0, np.sqrt(1 / nfilt), np.sqrt(2 / nfilt))
    lift = 1 + (ceplifter / 2.0) * np.sin(np.pi * np.arange(numcep) / ceplifter) if ceplifter > 0 else np.ones(numcep)
    return basis * lift


class MfccExtractor(FeatureExtractor):
    """Batched psf-compatible MFCC (`mfcc` and `mfccgram` presets)."""

    config_type = MfccConfig

    def __init__(self, config: MfccConfig):
        super().__init__(config)
        dtype = self.compute_dtype
        as_tensor = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
        # Derived from the config, so not saved in state dicts: a checkpoint's config rebuilds them.
        self.register_buffer("window", as_tensor(WINDOWS[config.winfunc](config.frame_len)), persistent=False)
        filters = psf_filterbank(config.nfilt, config.nfft, config.sample_rate_hz, config.lowfreq, config.highfreq)
        self.register_buffer("filterbank", as_tensor(rearrange(filters, "f k -> k f")), persistent=False)
        self.register_buffer("dct", as_tensor(lifted_dct(config.nfilt, config.numcep, config.ceplifter)), persistent=False)

    @property
    def num_features(self) -> int:
        return self.config.numcep

    @property
    def frames_per_second(self) -> float:
        return self.config.sample_rate_hz / self.config.frame_step

    def num_frames(self, lengths_samples: torch.Tensor) -> torch.Tensor:
        """psf: one frame for clips up to a window long, then one per started step."""
        frame_len, step = self.config.frame_len, self.config.frame_step
        beyond = (lengths_samples - frame_len).clamp(min=0)
        return 1 + (beyond + step - 1) // step

    def _compute(self, waveform: torch.Tensor, lengths_samples: torch.Tensor, num_frames: int) -> torch.Tensor:
        """[B, S] -> [B, T, numcep]."""
        cfg = self.config
        x = waveform
        if cfg.preemph:
            # psf filters first and pads after, so the sample after each clip's end must stay zero.
            x = torch.cat([x[:, :1], x[:, 1:] - cfg.preemph * x[:, :-1]], dim=-1)
            x = x * (torch.arange(x.shape[-1], device=x.device) < rearrange(lengths_samples, "b -> b 1"))
        frames = frame_signal(x, cfg.frame_len, cfg.frame_step, num_frames)  # [B, T, frame_len], a view
        return map_frames(frames, self._cepstra)

    def _cepstra(self, frames: torch.Tensor) -> torch.Tensor:
        """[..., frame_len] -> [..., numcep]."""
        cfg = self.config
        spectrum = torch.fft.rfft(frames * self.window, n=cfg.nfft)  # [..., nfft//2+1]
        power = (spectrum.real.square() + spectrum.imag.square()) / cfg.nfft
        eps = torch.finfo(torch.float64).eps  # psf floors exact zeros at numpy's float eps
        mel = power @ self.filterbank  # [..., nfilt]
        cepstra = torch.where(mel == 0, eps, mel).log() @ self.dct  # [..., numcep]
        if cfg.appendEnergy:
            energy = power.sum(-1, keepdim=True)
            cepstra = torch.cat([torch.where(energy == 0, eps, energy).log(), cepstra[..., 1:]], -1)
        return cepstra

def mfcc(waveform: torch.Tensor, sample_rate: int = 16000, **psf_kwargs) -> torch.Tensor:
    """python_speech_features.mfcc for torch tensors: [..., samples] -> [..., frames, numcep].

    Takes psf's keyword arguments and defaults (`winfunc` by name: "rectangular", "hamming", "hanning", ...).
    Computes in float64 unless `compute_dtype="float32"` is passed, and returns the waveform's dtype.
    """
    config = MfccConfig.from_dict({"compute_dtype": "float64", **psf_kwargs, "sample_rate_hz": int(sample_rate)})
    extractor = MfccExtractor(config).to(waveform.device)
    flat, shape = pack([waveform], "* s")
    features, _ = extractor(flat)
    return unpack(features, shape, "* t f")[0]
