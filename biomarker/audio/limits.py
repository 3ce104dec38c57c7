"""What an input may claim and what its decode must reach: `AudioConfig` (the caps, all checked before a sample is
decoded), `Decoded` (what decoding gives) and the checks on a container's header and on a finished decode."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biomarker.records import (
    CorruptAudioError,
    EmptyAudioError,
    SampleRateTooHighError,
    SampleRateTooLowError,
    TooManyChannelsError,
    TooMuchAudioError,
)


@dataclass(frozen=True)
class AudioConfig:
    """Limits applied while decoding, all checked before any sample is decoded: the size cap with stat, the rest
    from the container's header.

    `max_duration_s` is ten times the quality gate's default limit, so a site may raise that one (to 120 s, say)
    without touching this; `max_decoded_samples` (frames x channels) bounds the decoded buffer at 240 MB of
    float32 whatever the rate and channel count (10 min of 48 kHz stereo). The rate range covers telephone audio
    up to the fastest studio interfaces (384 kHz); a header outside it is not a microphone's.
    """

    max_file_bytes: int = 50_000_000  # about 4 min of 48 kHz stereo 16-bit WAV
    min_sample_rate_hz: int = 8000  # telephone audio; below it the 4 kHz speech band is lost
    max_sample_rate_hz: int = 384_000
    max_channels: int = 8
    max_duration_s: float = 600.0
    max_decoded_samples: int = 60_000_000
    use_sox: bool = True  # fall back to sox for formats libsndfile cannot read
    sox_timeout_s: float = 60.0


@dataclass(frozen=True)
class Decoded:
    """What decoding gives: the mono mix-down (float32, [frames]) at the container's rate, and its layout."""

    mono: np.ndarray
    sample_rate_hz: int
    channels: int


def _check_layout(label: str, sample_rate: int, channels: int, frames: int, config: AudioConfig) -> None:
    """Refuse from the header alone: what it claims bounds every later allocation (decode buffer, resampler)."""
    if channels > config.max_channels:
        raise TooManyChannelsError(label, f"{channels} channels; at most {config.max_channels} are accepted")
    accepted = f"{config.min_sample_rate_hz}-{config.max_sample_rate_hz} Hz"
    if sample_rate < config.min_sample_rate_hz:
        raise SampleRateTooLowError(
            label, f"sample rate {sample_rate} Hz is below the {config.min_sample_rate_hz} Hz minimum (accepted: {accepted})"
        )
    if sample_rate > config.max_sample_rate_hz:
        raise SampleRateTooHighError(
            label, f"sample rate {sample_rate} Hz is above the {config.max_sample_rate_hz} Hz maximum (accepted: {accepted})"
        )
    if frames == 0:
        raise EmptyAudioError(label, "the header is valid but holds no samples (zero length)")
    if frames / sample_rate > config.max_duration_s:
        raise TooMuchAudioError(
            label, f"the header claims {frames / sample_rate:.1f} s ({frames} frames at {sample_rate} Hz); "
            f"at most {config.max_duration_s:g} s are decoded"
        )
    if frames * channels > config.max_decoded_samples:
        raise TooMuchAudioError(
            label, f"the header claims {frames} frames x {channels} channels = {frames * channels} samples; "
            f"at most {config.max_decoded_samples} are decoded"
        )


def _check_complete(label: str, format_name: str, claimed: int, decoded: int, rate: int) -> None:
    """A stream that ended before its container's own count (libvorbis stops at a damaged Ogg page without a word)
    by more than 1 % plus two MP3 frames (2,304 samples, the slack an estimated MP3 length needs) is refused."""
    if decoded < claimed - (claimed // 100 + 2304):
        raise CorruptAudioError(
            label, f"decoded {decoded / rate:.2f} s of the {claimed / rate:.2f} s the {format_name} container holds "
            f"({decoded} of {claimed} frames): frames are damaged or missing"
        )
