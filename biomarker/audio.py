"""Audio intake: bytes in any accepted container -> one mono float32 `Recording` at the model's rate, and the
quality gate that decides whether a recording is fit to be scored.

Every refusal is a specific `AudioError` subclass whose message starts with the input's name, because the
person who sees it (a clinician at the upload box, an engineer reading a batch log) must know which file
failed and why. Nothing is dropped or repaired silently: values beyond full scale are clipped to [-1, 1]
(they were clipped by the recorder anyway, and the gate measures clipping), everything else is refused.

Decoding: soundfile (libsndfile: WAV incl. the browser's 16-bit PCM, FLAC, OGG/Vorbis, MP3, WAV-GSM, ...),
then sox for what libsndfile cannot read (headerless GSM 06.10 telephone audio; other formats sox knows by
the file extension).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile

from biomarker.records import (
    AudioError,
    ClippedAudioError,
    DrownedInNoiseError,
    EmptyAudioError,
    FileTooLargeError,
    NonFiniteAudioError,
    NotAudioError,
    QualityError,
    QualityReport,
    Recording,
    SampleRateTooLowError,
    SilentAudioError,
    TooLongError,
    TooManyChannelsError,
    TooShortError,
    TruncatedAudioError,
    UnsupportedCodecError,
)

AudioSource = str | os.PathLike | bytes | bytearray | BinaryIO

# WAV format tags libsndfile decodes (PCM, ADPCM, float, A/mu-law, GSM, G721, MPEG layer III, extensible).
LIBSNDFILE_WAV_TAGS = {0x0001, 0x0002, 0x0003, 0x0006, 0x0007, 0x0011, 0x0031, 0x0040, 0x0055, 0xFFFE}
GSM_FRAME_BYTES = 33  # a GSM 06.10 frame: 20 ms of 8 kHz audio, its first nibble always 0xD
STREAMING_SIZES = {0, 0xFFFFFFFF}
# Leading bytes of the containers libsndfile reads: WAV, RF64, Wave64, FLAC, Ogg, AIFF, AU, CAF, SPHERE, MP3 (ID3).
CONTAINER_SIGNATURES = (b"RIFF", b"RF64", b"riff", b"fLaC", b"OggS", b"FORM", b".snd", b"caff", b"NIST_1A", b"ID3")  # data-chunk sizes a streaming writer leaves when it cannot seek back


@dataclass(frozen=True)
class AudioConfig:
    """Limits applied while decoding. The size cap is checked before any decoding work."""

    max_file_bytes: int = 50_000_000  # about 4 min of 48 kHz stereo 16-bit WAV
    min_sample_rate_hz: int = 8000  # telephone audio; below it the 4 kHz speech band is lost
    max_channels: int = 8
    use_sox: bool = True  # fall back to sox for formats libsndfile cannot read
    sox_timeout_s: float = 60.0


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the quality gate. Levels are in dB relative to full scale (dBFS).

    Speech frames are 25 ms frames (10 ms hop) louder than both `silence_floor_dbfs` and the recording's own
    noise floor (its 10th-percentile frame level) plus `speech_margin_db`; `snr_db` is the mean speech-frame
    level minus the mean level of the other frames. A constant tone or hum therefore counts as no speech.
    The margin is 6 dB, not more: under SPIRA-protocol ward noise (peak up to 0.19) a 10 dB margin found no voice in
    18 % of the synthetic cohorts' 1,200 noisy test recordings, which the screening model scores well; 6 dB in 3.4 %.
    """

    min_duration_s: float = 1.0
    max_duration_s: float = 60.0
    silence_floor_dbfs: float = -50.0
    speech_margin_db: float = 6.0
    min_speech_ratio: float = 0.05
    clip_level: float = 0.99
    max_clipping_ratio: float = 0.02
    frame_ms: float = 25.0
    hop_ms: float = 10.0


# ---------------------------------------------------------------------------------------------------- loading
def load(
    source: AudioSource, target_sr: int | None = 16000, *, name: str | None = None, config: AudioConfig = AudioConfig()
) -> Recording:
    """Decode `source` (a path, bytes, or a binary file object) to mono float32 in [-1, 1] at `target_sr`
    (None keeps the file's own rate). `name` labels the input in errors and in the Recording (default: the
    path, the file object's name, or "<bytes>")."""
    label = _label(source, name)
    data = _read_bytes(source, label, config)
    if not data:
        raise EmptyAudioError(label, "the input is empty (0 bytes)")
    suffix = Path(source if isinstance(source, (str, os.PathLike)) else label).suffix.lower()
    samples, sample_rate = _decode(data, label, suffix, config)  # [frames, channels]
    if not np.isfinite(samples).all():
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise NonFiniteAudioError(label, f"{bad} of {samples.size} samples are NaN or infinite")
    mono = samples.mean(axis=1, dtype=np.float32)
    rate = int(target_sr or sample_rate)
    if rate != sample_rate:
        mono = _resample(mono, sample_rate, rate)
    return Recording(
        samples=np.clip(mono, -1.0, 1.0),
        sample_rate_hz=rate,
        source=label,
        original_sample_rate_hz=int(sample_rate),
        original_channels=int(samples.shape[1]),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _label(source: AudioSource, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (bytes, bytearray)):
        return "<bytes>"
    return str(getattr(source, "name", "<file object>"))


def _read_bytes(source: AudioSource, label: str, config: AudioConfig) -> bytes:
    """All bytes of the input, refusing anything over the cap before reading (paths) or past it (streams)."""
    cap = config.max_file_bytes
    too_large = lambda size: FileTooLargeError(label, f"{size} bytes is over the {cap}-byte limit")  # noqa: E731
    if isinstance(source, (str, os.PathLike)):
        size = Path(source).stat().st_size
        if size > cap:
            raise too_large(size)
        return Path(source).read_bytes()
    if isinstance(source, (bytes, bytearray)):
        if len(source) > cap:
            raise too_large(len(source))
        return bytes(source)
    data = source.read(cap + 1)
    if not isinstance(data, bytes):
        raise NotAudioError(label, f"the file object must be opened in binary mode (read() gave {type(data).__name__})")
    if len(data) > cap:
        raise FileTooLargeError(label, f"more than the {cap}-byte limit")
    return data


def _decode(data: bytes, label: str, suffix: str, config: AudioConfig) -> tuple[np.ndarray, int]:
    """bytes -> ([frames, channels] float32, sample rate), with header limits checked before the samples
    are decoded. `suffix` (the file's extension, if any) tells sox the format."""
    data = _checked_wav(data, label)
    try:
        info = soundfile.info(io.BytesIO(data))
    except soundfile.LibsndfileError as error:
        decoded = _decode_with_sox(data, label, suffix, config)
        if decoded is not None:
            return decoded
        raise _classify_libsndfile_error(data, label, error) from None
    _check_layout(label, info.samplerate, info.channels, info.frames, config)
    try:
        samples, sample_rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except soundfile.LibsndfileError as error:
        raise TruncatedAudioError(label, f"decoding stopped part-way: {_libsndfile_reason(error)}") from None
    if samples.shape[0] == 0:
        raise EmptyAudioError(label, f"the {info.format} header is valid but holds no samples")
    return samples, sample_rate


def _check_layout(label: str, sample_rate: int, channels: int, frames: int, config: AudioConfig) -> None:
    if channels > config.max_channels:
        raise TooManyChannelsError(label, f"{channels} channels; at most {config.max_channels} are accepted")
    if sample_rate < config.min_sample_rate_hz:
        raise SampleRateTooLowError(
            label, f"sample rate {sample_rate} Hz is below the {config.min_sample_rate_hz} Hz minimum"
        )
    if frames == 0:
        raise EmptyAudioError(label, "the header is valid but holds no samples (zero length)")


def _checked_wav(data: bytes, label: str) -> bytes:
    """RIFF/WAVE checks libsndfile does not make: it pads a cut-short data chunk without complaint, and it
    reports an unknown codec as a 'malformed fmt chunk'. A streaming writer's placeholder data size (0 or
    0xFFFFFFFF, left when it could not seek back) is replaced by the bytes actually present, which libsndfile
    would otherwise read as an empty file. Other containers pass through untouched."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return data
    position = 12
    while position + 8 <= len(data):
        chunk_id, size = data[position : position + 4], struct.unpack("<I", data[position + 4 : position + 8])[0]
        body = position + 8
        if chunk_id == b"fmt ":
            if body + 2 > len(data):
                break
            tag = struct.unpack("<H", data[body : body + 2])[0]
            if tag not in LIBSNDFILE_WAV_TAGS:
                raise UnsupportedCodecError(label, f"WAV with codec tag 0x{tag:04X}, which no available decoder reads")
        if chunk_id == b"data":
            held = len(data) - body
            if size in STREAMING_SIZES:
                return data[:4] + struct.pack("<I", len(data) - 8) + data[8 : position + 4] + struct.pack("<I", held) + data[body:]
            if size > held:
                raise TruncatedAudioError(label, f"the WAV header promises {size} bytes of audio but the file holds {held}")
            return data
        position = body + size + (size & 1)
    raise TruncatedAudioError(label, f"the WAV header is cut short after {len(data)} bytes (no complete data chunk)")


def _looks_like_raw_gsm(data: bytes) -> bool:
    return len(data) % GSM_FRAME_BYTES == 0 and all(byte >> 4 == 0xD for byte in data[::GSM_FRAME_BYTES])


def _decode_with_sox(data: bytes, label: str, suffix: str, config: AudioConfig) -> tuple[np.ndarray, int] | None:
    """sox for containers libsndfile lacks. sox needs a type: the name's extension, or raw GSM recognised by
    its frame signature. None when sox is off, missing, or cannot read it either."""
    sox = shutil.which("sox")
    if _looks_like_raw_gsm(data):
        suffix = ".gsm"
    if not (config.use_sox and sox and suffix):
        return None
    with tempfile.TemporaryDirectory(prefix="biomarker-sox-") as folder:
        source, target = Path(folder, "input" + suffix), Path(folder, "output.wav")
        source.write_bytes(data)
        command = [sox, "-V1", str(source), "-e", "floating-point", "-b", "32", str(target)]
        try:
            done = subprocess.run(command, capture_output=True, timeout=config.sox_timeout_s)
        except subprocess.TimeoutExpired:
            return None
        if done.returncode != 0 or not target.exists():
            return None
        info = soundfile.info(str(target))
        _check_layout(label, info.samplerate, info.channels, info.frames, config)
        return soundfile.read(str(target), dtype="float32", always_2d=True)


def _libsndfile_reason(error: soundfile.LibsndfileError) -> str:
    """libsndfile's own words without its 'Error opening <_io.BytesIO object at 0x...>' prefix."""
    return str(error).rsplit(": ", 1)[-1].strip()


def _classify_libsndfile_error(data: bytes, label: str, error: soundfile.LibsndfileError) -> AudioError:
    """A known container's signature that libsndfile then fails on means a damaged file; anything else
    (libsndfile may even mistake random bytes for an MPEG frame) is not audio."""
    reason = _libsndfile_reason(error)
    if data.startswith(CONTAINER_SIGNATURES) and "not recognised" not in reason.lower():
        return TruncatedAudioError(label, f"the audio file is damaged or cut short ({reason})")
    return NotAudioError(label, f"not a recognised audio format ({len(data)} bytes; {reason})")


def _resample(mono: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    import torch
    import torchaudio.functional

    return torchaudio.functional.resample(torch.from_numpy(mono), from_hz, to_hz).numpy()


# ------------------------------------------------------------------------------------------------ quality gate
def check_quality(recording: Recording, config: QualityConfig = QualityConfig()) -> QualityReport:
    """Measure the recording and list every check it fails (an empty list means it passed)."""
    report = _measure(recording, config)
    reasons = tuple(reason for _, reason in _failures(report, config))
    return dataclasses.replace(report, passed=not reasons, reasons=reasons)


def require_quality(recording: Recording, config: QualityConfig = QualityConfig()) -> QualityReport:
    """`check_quality`, raising the first failed check's `QualityError` subclass (all reasons in its message,
    the report attached as `.report`)."""
    report = check_quality(recording, config)
    failures = _failures(report, config)
    if failures:
        error_type = failures[0][0]
        raise error_type(recording.source, "; ".join(report.reasons), report=report)
    return report


def _failures(report: QualityReport, config: QualityConfig) -> list[tuple[type[QualityError], str]]:
    failures: list[tuple[type[QualityError], str]] = []
    if report.duration_s < config.min_duration_s:
        failures.append((TooShortError, f"too short: {report.duration_s:.2f} s < {config.min_duration_s} s"))
    if report.duration_s > config.max_duration_s:
        failures.append((TooLongError, f"too long: {report.duration_s:.1f} s > {config.max_duration_s} s"))
    if report.speech_ratio < config.min_speech_ratio and report.rms_dbfs < config.silence_floor_dbfs:
        failures.append(
            (
                SilentAudioError,
                f"silent: speech in {report.speech_ratio:.0%} of frames < {config.min_speech_ratio:.0%} "
                f"(level {report.rms_dbfs:.1f} dBFS)",
            )
        )
    elif report.speech_ratio < config.min_speech_ratio:
        failures.append(
            (
                DrownedInNoiseError,
                f"no voice stands out of the background: {report.speech_ratio:.0%} of frames rise "
                f"{config.speech_margin_db:g} dB above the recording's noise floor < {config.min_speech_ratio:.0%} "
                f"(level {report.rms_dbfs:.1f} dBFS: a steady hum, or noise as loud as the voice; record closer "
                "to the patient or away from the noise)",
            )
        )
    if report.clipping_ratio > config.max_clipping_ratio:
        failures.append(
            (
                ClippedAudioError,
                f"clipped: {report.clipping_ratio:.1%} of samples at full scale > {config.max_clipping_ratio:.1%}",
            )
        )
    return failures


def _measure(recording: Recording, config: QualityConfig) -> QualityReport:
    x = recording.samples.astype(np.float64)
    rate = recording.sample_rate_hz
    floor_db = -120.0  # stands in for log(0) so digital silence has a number
    to_db = lambda power: np.maximum(10 * np.log10(np.maximum(power, 1e-30)), floor_db)  # noqa: E731
    frame, hop = max(1, int(rate * config.frame_ms / 1000)), max(1, int(rate * config.hop_ms / 1000))
    if len(x) >= frame:
        frames = np.lib.stride_tricks.sliding_window_view(x, frame)[::hop]
    else:
        frames = np.pad(x, (0, frame - len(x)))[None, :]
    frame_power = np.mean(frames**2, axis=1)
    frame_db = to_db(frame_power)
    noise_floor_db = float(np.percentile(frame_db, 10))
    speech = frame_db > max(config.silence_floor_dbfs, noise_floor_db + config.speech_margin_db)
    if speech.any():
        rest = frame_power[~speech] if (~speech).any() else np.array([10 ** (noise_floor_db / 10)])
        snr_db = float(to_db(frame_power[speech].mean()) - to_db(rest.mean()))
    else:
        snr_db = 0.0
    return QualityReport(
        duration_s=recording.duration_s,
        speech_ratio=float(speech.mean()),
        clipping_ratio=float(np.mean(np.abs(x) >= config.clip_level)) if len(x) else 0.0,
        peak=float(np.abs(x).max()) if len(x) else 0.0,
        rms_dbfs=float(to_db(np.mean(x**2))) if len(x) else floor_db,
        snr_db=snr_db,
        passed=True,
        reasons=(),
    )
