"""Container-level decoding with libsndfile: the RIFF/WAVE checks it does not make, the frames an Ogg stream claims,
block-by-block decoding into one mono buffer, the decoder's own complaints on stderr, and what a libsndfile error
means (damaged file, or not audio). Names stay private to the `biomarker.audio` package."""

from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import sys
import tempfile
import threading
from collections.abc import Iterator

import numpy as np
import soundfile

from biomarker.records import (
    AudioError,
    CorruptAudioError,
    NonFiniteAudioError,
    NotAudioError,
    TruncatedAudioError,
    UnsupportedCodecError,
)

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
