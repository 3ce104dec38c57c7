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
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile
import soxr

from biomarker.records import (
    AudioError,
    ClippedAudioError,
    CorruptAudioError,
    DrownedInNoiseError,
    EmptyAudioError,
    FileTooLargeError,
    NonFiniteAudioError,
    NotARegularFileError,
    NotAudioError,
    QualityError,
    QualityReport,
    Recording,
    SampleRateTooHighError,
    SampleRateTooLowError,
    SilentAudioError,
    TooLongError,
    TooManyChannelsError,
    TooMuchAudioError,
    TooShortError,
    TruncatedAudioError,
    UnreadableFileError,
    UnsupportedCodecError,
)

AudioSource = str | os.PathLike | bytes | bytearray | BinaryIO

TARGET_RATE_HZ = 16000  # what `load` resamples to unless told otherwise: the rate every shipped front-end expects
# The one list of file suffixes the library treats as audio when it lists a folder (`biomarker score DIR`,
# pretraining folders, `biomarker features stats DIR`) and the app's upload box offers. `load` itself decides by
# content, not by name; these are what it reads: libsndfile's containers plus headerless GSM through sox.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".gsm", ".aiff", ".aif", ".au")

# WAV format tags libsndfile decodes (PCM, ADPCM, float, A/mu-law, GSM, G721, MPEG layer III, extensible).
LIBSNDFILE_WAV_TAGS = {0x0001, 0x0002, 0x0003, 0x0006, 0x0007, 0x0011, 0x0031, 0x0040, 0x0055, 0xFFFE}
GSM_FRAME_BYTES = 33  # a GSM 06.10 frame: 20 ms of 8 kHz audio, its first nibble always 0xD
GSM_FRAME_SAMPLES = 160
STREAMING_SIZES = {0, 0xFFFFFFFF}  # data-chunk sizes a streaming writer leaves when it cannot seek back
# Leading bytes of the containers libsndfile reads: WAV, RF64, Wave64, FLAC, Ogg, AIFF, AU, CAF, SPHERE, MP3 (ID3).
CONTAINER_SIGNATURES = (b"RIFF", b"RF64", b"riff", b"fLaC", b"OggS", b"FORM", b".snd", b"caff", b"NIST_1A", b"ID3")
DECODE_BLOCK_FRAMES = 1 << 18  # frames decoded per block: 8 MB of float32 at 8 channels
# Formats whose decoders report damaged frames only on standard error (mpg123: "Note: Illegal Audio-MPEG-Header").
STDERR_DECODED_FORMATS = {"MP3", "MPEG", "OGG"}
DECODER_COMPLAINT = re.compile(r"^\s*(note|warning|error)\b|mpg123|resync|illegal audio-mpeg|\bcorrupt", re.I | re.M)
MAX_RELAYED_MESSAGE_BYTES = 65536  # decoder messages passed on to the real stderr; a garbled file can print MBs


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


@dataclass(frozen=True)
class Decoded:
    """What decoding gives: the mono mix-down (float32, [frames]) at the container's rate, and its layout."""

    mono: np.ndarray
    sample_rate_hz: int
    channels: int


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


def _read_mono(source: io.BytesIO | str, label: str, frames: int, channels: int) -> np.ndarray:
    """Decode block by block into one mono buffer of the header's length: peak memory is that buffer plus one
    block, never frames x channels. The mix-down is the channel mean, as before; non-finite samples are counted
    over every channel and refuse the input."""
    mono = np.empty(frames, dtype=np.float32)
    buffer = np.empty((min(DECODE_BLOCK_FRAMES, frames), channels), dtype=np.float32)
    filled = non_finite = 0
    with soundfile.SoundFile(source) as handle:  # read() itself, not blocks(): blocks() ignores a short read
        while filled < frames:
            wanted = min(len(buffer), frames - filled)
            block = handle.read(wanted, dtype="float32", always_2d=True, out=buffer)
            non_finite += int(block.size - np.count_nonzero(np.isfinite(block)))
            mono[filled : filled + len(block)] = block.mean(axis=1, dtype=np.float32)
            filled += len(block)
            if len(block) < wanted:  # the decoder stopped early (libvorbis at a damaged page would go on after it,
                break  # stitching the audio across the hole): what is missing is measured by _check_complete
    if non_finite:
        raise NonFiniteAudioError(label, f"{non_finite} of {filled * channels} samples are NaN or infinite")
    return mono[:filled]


def _check_decoder_messages(label: str, format_name: str, messages: list[str]) -> None:
    """Damaged frames the decoder reported on stderr (mpg123 resyncing past garbage) refuse the input."""
    complaints = [line.strip() for line in messages if DECODER_COMPLAINT.search(line)]
    if complaints:
        more = f" (and {len(complaints) - 1} more messages)" if len(complaints) > 1 else ""
        raise CorruptAudioError(label, f"the {format_name} decoder reported damaged frames: {complaints[0][:200]}{more}")


def _check_complete(label: str, format_name: str, claimed: int, decoded: int, rate: int) -> None:
    """A stream that ended before its container's own count (libvorbis stops at a damaged Ogg page without a word)
    by more than 1 % plus two MP3 frames (2,304 samples, the slack an estimated MP3 length needs) is refused."""
    if decoded < claimed - (claimed // 100 + 2304):
        raise CorruptAudioError(
            label, f"decoded {decoded / rate:.2f} s of the {claimed / rate:.2f} s the {format_name} container holds "
            f"({decoded} of {claimed} frames): frames are damaged or missing"
        )


def _ogg_claimed_frames(data: bytes, sample_rate: int) -> int | None:
    """Frames an Ogg stream claims: the granule position of the last page of its first logical stream (Opus counts
    at 48 kHz after a pre-skip). None for other containers or when no page carries a position. libsndfile's own
    frame count stops at a damaged page, so only this number shows that pages are missing."""
    if not data.startswith(b"OggS") or len(data) < 28:
        return None
    serial, first_packet = data[14:18], 27 + data[26]
    head = data[first_packet : first_packet + 19]
    granule_rate, pre_skip = (48000, int.from_bytes(head[10:12], "little")) if head.startswith(b"OpusHead") else (sample_rate, 0)
    end = len(data)
    while (position := data.rfind(b"OggS", 0, end)) >= 0:
        page = data[position : position + 18]
        granule = int.from_bytes(page[6:14], "little", signed=True) if len(page) == 18 else -1
        if page[4:5] == b"\x00" and page[14:18] == serial and granule >= 0:
            return max(0, granule - pre_skip) * sample_rate // granule_rate
        end = position
    return None


@contextlib.contextmanager
def _decoder_messages(capture: bool) -> Iterator[list[str]]:
    """What the C decoder writes to file descriptor 2 while the block runs, as lines (filled when the block ends).

    mpg123 reports skipped garbage only there. Descriptor 2 is process-wide, so captures are serialised by a lock,
    and everything captured is written back to the real stderr afterwards: another thread's output is delayed,
    never lost. With `capture` False (WAV, FLAC: their decoders raise instead) nothing is redirected."""
    lines: list[str] = []
    if not capture:
        yield lines
        return
    with _STDERR_LOCK, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all (a daemon): nothing to capture
            yield lines
            return
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read(MAX_RELAYED_MESSAGE_BYTES)
            if text:
                os.write(2, text)
            lines.extend(text.decode("utf-8", errors="replace").splitlines())


_STDERR_LOCK = threading.Lock()


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


def _decode_with_sox(data: bytes, label: str, suffix: str, config: AudioConfig) -> Decoded | None:
    """sox for containers libsndfile lacks. sox needs a type: the name's extension, or raw GSM recognised by
    its frame signature. Its header (`sox --i`) is checked like libsndfile's before anything is decoded, and the
    conversion is trimmed one frame past the caps, so even a header sox cannot size decodes a bounded amount.
    None when sox is off, missing, or cannot read it either."""
    sox = shutil.which("sox")
    if _looks_like_raw_gsm(data):
        suffix = ".gsm"
    if not (config.use_sox and sox and suffix):
        return None
    with tempfile.TemporaryDirectory(prefix="biomarker-sox-") as folder:
        source, target = Path(folder, "input" + suffix), Path(folder, "output.wav")
        source.write_bytes(data)
        header = _sox_header(sox, source, config)
        if header is None:
            return None
        rate, channels, frames = header
        if not frames and suffix == ".gsm":  # sox cannot size raw GSM; its fixed frames can
            frames = len(data) // GSM_FRAME_BYTES * GSM_FRAME_SAMPLES
        _check_layout(label, rate, channels, frames or 1, config)  # 0: unknown, bounded by the trim below
        most = min(int(config.max_duration_s * rate), config.max_decoded_samples // channels) + 1
        command = [sox, "-V1", str(source), "-e", "floating-point", "-b", "32", str(target), "trim", "0", f"{most}s"]
        try:
            done = subprocess.run(command, capture_output=True, timeout=config.sox_timeout_s)
        except subprocess.TimeoutExpired:
            return None
        if done.returncode != 0 or not target.exists():
            return None
        info = soundfile.info(str(target))
        if info.frames >= most:
            raise TooMuchAudioError(label, f"sox decodes it to more than {most - 1} frames at {rate} Hz, past the caps "
                                    f"({config.max_duration_s:g} s, {config.max_decoded_samples} samples)")
        _check_layout(label, info.samplerate, info.channels, info.frames, config)
        return Decoded(_read_mono(str(target), label, info.frames, info.channels), int(info.samplerate), int(info.channels))


def _sox_header(sox: str, source: Path, config: AudioConfig) -> tuple[int, int, int] | None:
    """(rate, channels, frames) from `sox --i`, frames 0 when sox cannot tell; None when sox cannot read it."""
    try:
        done = subprocess.run([sox, "--i", str(source)], capture_output=True, timeout=config.sox_timeout_s)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        return None
    text = done.stdout.decode("utf-8", errors="replace")
    rate = re.search(r"^Sample Rate\s*:\s*([\d.]+)", text, re.M)
    channels = re.search(r"^Channels\s*:\s*(\d+)", text, re.M)
    frames = re.search(r"=\s*(\d+)\s+samples", text)
    if not (rate and channels):
        return None
    return int(float(rate.group(1))), int(channels.group(1)), int(frames.group(1)) if frames else 0


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
    """soxr (libsoxr, the resampler of sox and ffmpeg), not torchaudio: torchaudio builds one sinc filter per
    output phase of the reduced ratio, so 44,101 -> 16,000 Hz (gcd 1) asked for a 16,000 x 44,113 table, 12.5 GB
    from a 134 KB file. soxr's polyphase stages use memory bounded at any ratio, it is maintained and on PyPI as a
    wheel, and it keeps audio intake free of torch."""
    return soxr.resample(np.ascontiguousarray(mono, dtype=np.float32), from_hz, to_hz, quality="HQ")


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
