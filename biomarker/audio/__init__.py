"""Audio intake: bytes in any accepted container -> one mono float32 `Recording` at the model's rate, and the
quality gate that decides whether a recording is fit to be scored.

Every refusal is a specific `AudioError` subclass whose message starts with the input's name, because the
person who sees it (a clinician at the upload box, an engineer reading a batch log) must know which file
failed and why. Nothing is dropped or repaired silently: values beyond full scale are clipped to [-1, 1]
(they were clipped by the recorder anyway, and the gate measures clipping), everything else is refused.

Decoding: soundfile (libsndfile: WAV incl. the browser's 16-bit PCM, FLAC, OGG/Vorbis, MP3, WAV-GSM, ...),
then sox for what libsndfile cannot read (headerless GSM 06.10 telephone audio; other formats sox knows by
the file extension).

Bounded work (issue 24): an input's cost is fixed before any sample is decoded. The file's size is checked with
stat before it is read; the container's header (soundfile.info, or `sox --i`) gives the sample rate, channels and
frame count, which must lie inside `AudioConfig`'s range and caps; decoding then runs block by block into one
mono buffer of the size the header claimed. Resampling is soxr's (bounded memory at any ratio; torchaudio's
filter for 44,101 -> 16,000 Hz alone took 12.5 GB). A decoder that skips damaged frames refuses the input.

The rooms: this module (reading the input within its size cap, `load`, resampling), `limits` (AudioConfig, the
header and completeness checks), `containers` (libsndfile decoding and the container checks it lacks), `sox` (the
fallback decoder), `quality` (QualityConfig and the gate). Every public name is importable from `biomarker.audio`.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile
import soxr

from biomarker.audio.containers import (
    STDERR_DECODED_FORMATS,
    _check_decoder_messages,
    _checked_wav,
    _classify_libsndfile_error,
    _decoder_messages,
    _libsndfile_reason,
    _ogg_claimed_frames,
    _read_mono,
)
from biomarker.audio.limits import AudioConfig, Decoded, _check_complete, _check_layout
from biomarker.audio.quality import QualityConfig, check_quality, require_quality
from biomarker.audio.sox import _decode_with_sox
from biomarker.records import (
    EmptyAudioError,
    FileTooLargeError,
    NotARegularFileError,
    NotAudioError,
    Recording,
    TruncatedAudioError,
    UnreadableFileError,
)

__all__ = ["AUDIO_SUFFIXES", "TARGET_RATE_HZ", "AudioConfig", "AudioSource", "Decoded", "QualityConfig",
           "check_quality", "load", "read_input", "require_quality"]

AudioSource = str | os.PathLike | bytes | bytearray | BinaryIO

TARGET_RATE_HZ = 16000  # what `load` resamples to unless told otherwise: the rate every shipped front-end expects
# The one list of file suffixes the library treats as audio when it lists a folder (`biomarker score DIR`,
# pretraining folders, `biomarker features stats DIR`) and the app's upload box offers. `load` itself decides by
# content, not by name; these are what it reads: libsndfile's containers plus headerless GSM through sox.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".gsm", ".aiff", ".aif", ".au")


# ---------------------------------------------------------------------------------------------------- loading
def load(
    source: AudioSource, target_sr: int | None = TARGET_RATE_HZ, *, name: str | None = None, config: AudioConfig = AudioConfig()
) -> Recording:
    """Decode `source` (a path, bytes, or a binary file object) to mono float32 in [-1, 1] at `target_sr`
    (None keeps the file's own rate). `name` labels the input in errors and in the Recording (default: the
    path, the file object's name, or "<bytes>")."""
    label = _label(source, name)
    data = read_input(source, name=label, config=config)
    if not data:
        raise EmptyAudioError(label, "the input is empty (0 bytes)")
    suffix = Path(source if isinstance(source, (str, os.PathLike)) else label).suffix.lower()
    decoded = _decode(data, label, suffix, config)
    rate = int(target_sr or decoded.sample_rate_hz)
    mono = decoded.mono if rate == decoded.sample_rate_hz else _resample(decoded.mono, decoded.sample_rate_hz, rate)
    return Recording(
        samples=np.clip(mono, -1.0, 1.0),
        sample_rate_hz=rate,
        source=label,
        original_sample_rate_hz=int(decoded.sample_rate_hz),
        original_channels=int(decoded.channels),
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


def read_input(source: AudioSource, *, name: str | None = None, config: AudioConfig = AudioConfig()) -> bytes:
    """All bytes of the input, refusing anything over the size cap before reading it (paths: fstat; bytes: their
    length) or as soon as the cap is passed (streams). Public so that callers who keep the bytes (`biomarker
    score --log`, which stores the audio) never read a 2 GB file whole to learn it is too large."""
    label = _label(source, name)
    if isinstance(source, (str, os.PathLike)):
        return _read_path(Path(source), label, config.max_file_bytes)
    if isinstance(source, (bytes, bytearray)):
        if len(source) > config.max_file_bytes:
            raise _too_large(label, len(source), config.max_file_bytes)
        return bytes(source)
    data = source.read(config.max_file_bytes + 1)
    if not isinstance(data, bytes):
        raise NotAudioError(label, f"the file object must be opened in binary mode (read() gave {type(data).__name__})")
    if len(data) > config.max_file_bytes:
        raise FileTooLargeError(label, f"more than the {config.max_file_bytes}-byte limit")
    return data


def _too_large(label: str, size: int, cap: int) -> FileTooLargeError:
    return FileTooLargeError(label, f"{size} bytes is over the {cap}-byte limit")


def _read_path(path: Path, label: str, cap: int) -> bytes:
    """Open without blocking (a FIFO named x.wav would otherwise hang the batch), then check what was opened:
    fstat on the open descriptor, so a file swapped after the check cannot slip past it."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise UnreadableFileError(label, "file not found") from None
    except OSError as error:
        raise UnreadableFileError(label, f"cannot be opened ({error.strerror or error})") from None
    status = os.fstat(descriptor)
    if not stat.S_ISREG(status.st_mode) or status.st_size > cap:
        os.close(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise NotARegularFileError(label, f"not a regular file ({_file_kind(status.st_mode)})")
        raise _too_large(label, status.st_size, cap)
    with os.fdopen(descriptor, "rb") as handle:
        try:
            data = handle.read(cap + 1)
        except OSError as error:
            raise UnreadableFileError(label, f"reading failed ({error.strerror or error})") from None
    if len(data) > cap:
        raise FileTooLargeError(label, f"grew past the {cap}-byte limit while being read")
    return data


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((kind for test, kind in kinds if test(mode)), f"file mode {mode:o}")


def _decode(data: bytes, label: str, suffix: str, config: AudioConfig) -> Decoded:
    """bytes -> the mono mix-down at the container's rate, with the header's layout checked before any sample is
    decoded. `suffix` (the file's extension, if any) tells sox the format."""
    data = _checked_wav(data, label)
    try:
        info = soundfile.info(io.BytesIO(data))
    except soundfile.LibsndfileError as error:
        decoded = _decode_with_sox(data, label, suffix, config)
        if decoded is not None:
            return decoded
        raise _classify_libsndfile_error(data, label, error) from None
    ogg_frames = _ogg_claimed_frames(data, info.samplerate)
    _check_layout(label, info.samplerate, info.channels, max(info.frames, ogg_frames or 0), config)
    failure: soundfile.LibsndfileError | None = None
    with _decoder_messages(info.format in STDERR_DECODED_FORMATS) as messages:
        try:
            mono = _read_mono(io.BytesIO(data), label, info.frames, info.channels)
        except soundfile.LibsndfileError as error:
            failure = error
    _check_decoder_messages(label, info.format, messages)  # mpg123's own words say more than libsndfile's error
    if failure is not None:
        raise TruncatedAudioError(label, f"decoding stopped part-way: {_libsndfile_reason(failure)}")
    if len(mono) == 0:
        raise EmptyAudioError(label, f"the {info.format} header is valid but holds no samples")
    _check_complete(label, info.format, ogg_frames or info.frames, len(mono), info.samplerate)
    return Decoded(mono, int(info.samplerate), int(info.channels))


def _resample(mono: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """soxr (libsoxr, the resampler of sox and ffmpeg), not torchaudio: torchaudio builds one sinc filter per
    output phase of the reduced ratio, so 44,101 -> 16,000 Hz (gcd 1) asked for a 16,000 x 44,113 table, 12.5 GB
    from a 134 KB file. soxr's polyphase stages use memory bounded at any ratio, it is maintained and on PyPI as a
    wheel, and it keeps audio intake free of torch."""
    return soxr.resample(np.ascontiguousarray(mono, dtype=np.float32), from_hz, to_hz, quality="HQ")
