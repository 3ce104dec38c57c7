"""sox, for what libsndfile cannot read (headerless GSM 06.10 telephone audio; other formats sox knows by the file
extension), under the same caps: its header is checked before anything is decoded and the conversion is trimmed."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import soundfile

from biomarker.audio.containers import GSM_FRAME_BYTES, GSM_FRAME_SAMPLES, _looks_like_raw_gsm, _read_mono
from biomarker.audio.limits import AudioConfig, Decoded, _check_layout
from biomarker.records import TooMuchAudioError


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
