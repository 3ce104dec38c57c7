"""`biomarker bench hostile`: peak memory of `biomarker score` on each input of a catalogue of hostile inputs, each
scored by a fresh process, so that every number is that one input's cost (issue 24).

Goal: every input gets its CSV row (exit 0) and its process peaks at <= 1.5 GB resident (the whole CLI: Python,
torch, the model and the input). The catalogue is generated on the fly in a temporary folder: odd and absurd
sample rates, many channels, small files that decode to hours, truncated and damaged containers, zero-length
files, directories and FIFOs named like audio, symlinks and manifest entries outside their folder, sparse files
over the size cap (with and without `--log`). A clean 3 s clip is the baseline: the memory every run pays.

Peak RSS is the child's own `ru_maxrss`, read with `os.wait4` on that child alone. Each child also runs under an
address-space limit (RLIMIT_AS, `--address-cap-gb`), so a regression fails that input instead of taking the
machine: it then shows as a missing row or a MemoryError reason, over the goal.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import resource
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import soxr

from biomarker.bench.scoring import speechlike
from biomarker.records import DEFAULT_MODEL

GOAL_PEAK_BYTES = 1_500_000_000
SAMPLE_RATE_HZ = 16000
MiB = 1 << 20


@dataclass(frozen=True)
class Case:
    """One hostile input: `make(folder)` writes it under `folder` and returns the `biomarker score` arguments
    naming it; `rows` is how many CSV rows those arguments must produce."""

    name: str
    what: str
    make: Callable[[Path], list[str]]
    rows: int = 1
    log: bool = False


@dataclass(frozen=True)
class Measurement:
    """What one child did: its peak resident memory, exit status, the rows it wrote and their reasons."""

    name: str
    what: str
    input_bytes: int
    peak_rss_mb: float
    exit_code: int
    rows: int
    expected_rows: int
    reasons: list[str]
    seconds: float

    @property
    def goal_met(self) -> bool:
        return self.exit_code == 0 and self.rows == self.expected_rows and self.peak_rss_mb * MiB <= GOAL_PEAK_BYTES


# ------------------------------------------------------------------------------------------------ the inputs
def _speech(seconds: float = 3.0, rate: int = SAMPLE_RATE_HZ, seed: int = 0) -> np.ndarray:
    """The bench's speech-like signal (it passes the quality gate), at any rate."""
    wave = speechlike(seconds, seed)
    return wave if rate == SAMPLE_RATE_HZ else soxr.resample(wave, SAMPLE_RATE_HZ, rate)


def _encoded(samples: np.ndarray, rate: int, format: str = "WAV", subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=format, subtype=subtype)
    return buffer.getvalue()


def _file(name: str, data: bytes | Callable[[], bytes]) -> Callable[[Path], list[str]]:
    """A maker that writes one file (`data` may be a function, so big inputs are made only when run)."""

    def make(folder: Path) -> list[str]:
        path = folder / name
        path.write_bytes(data() if callable(data) else data)
        return [str(path)]

    return make


def _patched(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


def _wav_claiming(rate: int | None = None, channels: int | None = None) -> bytes:
    """A real 1 s 16 kHz WAV whose fmt chunk claims another rate (and byte rate) or channel count."""
    data = _encoded(_speech(1.0), SAMPLE_RATE_HZ, subtype="PCM_16")
    if rate is not None:
        data = _patched(data, 24, struct.pack("<II", rate, (2 * rate) & 0xFFFFFFFF))
    if channels is not None:
        data = _patched(data, 22, struct.pack("<H", channels))
    return data


def _flac_claiming(seconds: int, channels: int = 8, rate: int = 8000) -> bytes:
    """1 s of FLAC whose STREAMINFO says `seconds`: rate (20 bits) | channels-1 (3) | bits-1 (5) | samples (36)."""
    data = _encoded(np.zeros((rate, channels), np.float32), rate, format="FLAC")
    fields = int.from_bytes(data[18:26], "big")
    return _patched(data, 18, ((fields >> 36 << 36) | (seconds * rate)).to_bytes(8, "big"))


def _flac_of_silence(seconds: float, channels: int, rate: int) -> Callable[[Path], list[str]]:
    """A real FLAC that decodes to `seconds` x `channels` (silence compresses to almost nothing)."""

    def make(folder: Path) -> list[str]:
        path = folder / f"silence-{channels}ch.flac"
        remaining, block = int(seconds * rate), np.zeros((rate * 10, channels), np.int16)
        with sf.SoundFile(path, "w", samplerate=rate, channels=channels, format="FLAC", subtype="PCM_16") as handle:
            while remaining > 0:
                handle.write(block[:remaining])
                remaining -= len(block)
        return [str(path)]

    return make


def _ogg_claiming_a_day() -> bytes:
    data = _encoded(_speech(), SAMPLE_RATE_HZ, format="OGG")
    last_page = data.rfind(b"OggS")
    return _patched(data, last_page + 6, (SAMPLE_RATE_HZ * 86400).to_bytes(8, "little"))


def _damaged(format: str, length: int, random: bool = False) -> bytes:
    """`length` bytes half-way through an encoded clip zeroed (a lost stretch) or randomised (bit rot)."""
    data = _encoded(_speech(), SAMPLE_RATE_HZ, format=format)
    middle = len(data) // 2
    filler = np.random.default_rng(7).bytes(length) if random else bytes(length)
    return _patched(data, middle, filler)


def _wav_with_junk_chunks(megabytes: int) -> bytes:
    """A valid WAV whose fmt chunk comes after `megabytes` of empty 'junk' chunks: 8 bytes each to walk."""
    data = _encoded(_speech(1.0), SAMPLE_RATE_HZ, subtype="PCM_16")
    junk = b"junk\x00\x00\x00\x00" * (megabytes * MiB // 8)
    body = data[12:]
    return b"RIFF" + struct.pack("<I", 4 + len(junk) + len(body)) + b"WAVE" + junk + body


def _raw_gsm(megabytes: int) -> bytes:
    """Headerless GSM 06.10: 33-byte frames whose first nibble is 0xD (about 8.4 h in 49.9 MB)."""
    frame = bytes([0xD8]) + bytes(32)
    return frame * (megabytes * 1_000_000 // 33)


def _sparse(name: str, size: int) -> Callable[[Path], list[str]]:
    """A file of `size` bytes that takes no disk: a RIFF header, then a hole."""

    def make(folder: Path) -> list[str]:
        path = folder / name
        with path.open("wb") as handle:
            handle.write(_encoded(_speech(1.0), SAMPLE_RATE_HZ, subtype="PCM_16")[:44])
            handle.truncate(size)
        return [str(path)]

    return make


def _directory_in_a_folder(folder: Path) -> list[str]:
    (folder / "clips" / "x.wav").mkdir(parents=True)
    return [str(folder / "clips")]


def _empty_folder_named_like_audio(folder: Path) -> list[str]:
    (folder / "x.wav").mkdir()
    return [str(folder / "x.wav")]


def _fifo(folder: Path) -> list[str]:
    os.mkfifo(folder / "pipe.wav")
    return [str(folder / "pipe.wav")]


def _symlink(name: str, target: str) -> Callable[[Path], list[str]]:
    def make(folder: Path) -> list[str]:
        (folder / name).symlink_to(target)
        return [str(folder / name)]

    return make


def _manifest(*listed: str, outside_file: bool = False) -> Callable[[Path], list[str]]:
    """A manifest in folder/site/ listing `listed`; with `outside_file`, folder/outside.wav exists and
    site/link.wav points at it."""

    def make(folder: Path) -> list[str]:
        site = folder / "site"
        site.mkdir()
        if outside_file:
            (folder / "outside.wav").write_bytes(_encoded(_speech(), SAMPLE_RATE_HZ, subtype="PCM_16"))
            (site / "link.wav").symlink_to(folder / "outside.wav")
        (site / "manifest.csv").write_text("path\n" + "\n".join(listed) + "\n", encoding="utf-8")
        return [str(site / "manifest.csv")]

    return make


def catalogue() -> list[Case]:
    """The hostile inputs, each with what it is. Reported inputs of issue 24 come first."""
    speech_wav = lambda rate=SAMPLE_RATE_HZ, seconds=3.0: _encoded(_speech(seconds, rate), rate, subtype="PCM_16")  # noqa: E731
    return [
        Case("baseline", "clean 3 s speech-like WAV, 16 kHz (what every run pays)", _file("clean.wav", speech_wav())),
        Case("odd-rate-44101", "134 KB WAV at 44,101 Hz (was 12.5 GB)", _file("odd.wav", lambda: speech_wav(44101, 1.5))),
        Case("flac-1h-8ch", "FLAC decoding to 1 h x 8 channels (was 11.4 GB)", _flac_of_silence(3600, 8, 16000)),
        Case("rate-2147483647", "WAV header claiming 2,147,483,647 Hz (was > 8 GB)", _file("huge-rate.wav", _wav_claiming(2_147_483_647))),
        Case("rate-1000003", "WAV at 1,000,003 Hz (was a 64 GB allocation, exit 1)", _file("r1000003.wav", lambda: _encoded(np.zeros(20000), 1_000_003, subtype="PCM_16"))),
        Case("sparse-2gb-log", "sparse 2 GB WAV, --log (was read whole: 2.9 GB)", _sparse("huge.wav", 2_000_000_000), log=True),
        Case("sparse-2gb", "sparse 2 GB WAV", _sparse("huge.wav", 2_000_000_000)),
        Case("rate-384000", "3 s at 384 kHz, the top of the range (scored)", _file("r384k.wav", lambda: speech_wav(384000))),
        Case("rate-384001", "WAV at 384,001 Hz, one above the range", _file("r384001.wav", lambda: _encoded(np.zeros(4000), 384001, subtype="PCM_16"))),
        Case("rate-96001", "3 s at 96,001 Hz (odd ratio, scored)", _file("r96001.wav", lambda: speech_wav(96001))),
        Case("rate-7999", "WAV at 7,999 Hz, one below the range", _file("r7999.wav", lambda: _encoded(np.zeros(8000), 7999, subtype="PCM_16"))),
        Case("rate-1", "WAV header claiming 1 Hz", _file("r1.wav", _wav_claiming(1))),
        Case("rate-0", "WAV header claiming 0 Hz", _file("r0.wav", _wav_claiming(0))),
        Case("aiff-rate-2-25", "AIFF whose 80-bit rate field says 2^25 = 33,554,432 Hz",
             _file("huge-rate.aiff", lambda: _patched(_encoded(np.zeros(16000), 16000, format="AIFF", subtype="PCM_16"), 28, bytes([0x40, 0x18]) + b"\x80" + bytes(7)))),
        Case("channels-9", "WAV with 9 channels", _file("ch9.wav", lambda: _encoded(np.zeros((16000, 9)), 16000, subtype="PCM_16"))),
        Case("channels-1024", "WAV header claiming 1,024 channels", _file("ch1024.wav", _wav_claiming(channels=1024))),
        Case("channels-0", "WAV header claiming 0 channels", _file("ch0.wav", _wav_claiming(channels=0))),
        Case("flac-claims-1h-8ch", "1 s FLAC whose STREAMINFO claims 1 h x 8 channels", _file("claims.flac", _flac_claiming(3600))),
        Case("flac-at-sample-cap", "FLAC of 156 s x 8 channels at 48 kHz: 59.9 M samples, just under the cap",
             _flac_of_silence(156, 8, 48000)),
        Case("wav-11-min", "11 min of 8 kHz mu-law WAV (5.3 MB)", _file("long.wav", lambda: _encoded(np.zeros(8000 * 660), 8000, subtype="ULAW"))),
        Case("wav-599-s", "599 s of 8 kHz mu-law, just under the duration cap (decoded, then too long)",
             _file("599s.wav", lambda: _encoded(np.zeros(8000 * 599), 8000, subtype="ULAW"))),
        Case("wav-61-s", "61 s of 16 kHz speech (decoded, then too long)", _file("61s.wav", lambda: speech_wav(seconds=61.0))),
        Case("ogg-claims-a-day", "Ogg whose last page's granule claims 24 h", _file("day.ogg", _ogg_claiming_a_day)),
        Case("mp3-zeroed", "MP3 with 1,000 bytes zeroed half-way (mpg123 resyncs)", _file("zeroed.mp3", lambda: _damaged("MP3", 1000))),
        Case("mp3-bit-rot", "MP3 with 64 random bytes half-way", _file("rot.mp3", lambda: _damaged("MP3", 64, random=True))),
        Case("ogg-damaged-page", "Ogg with 8 bytes of one page zeroed (libvorbis stops silently)", _file("damaged.ogg", lambda: _damaged("OGG", 8))),
        Case("flac-bit-rot", "FLAC with 64 random bytes half-way", _file("rot.flac", lambda: _damaged("FLAC", 64, random=True))),
        Case("ogg-cut-short", "Ogg cut after 200 bytes", _file("cut.ogg", lambda: _encoded(_speech(), SAMPLE_RATE_HZ, format="OGG")[:200])),
        Case("mp3-cut-half", "MP3 cut in half", _file("half.mp3", lambda: (lambda d: d[: len(d) // 2])(_encoded(_speech(), SAMPLE_RATE_HZ, format="MP3")))),
        Case("wav-header-20-bytes", "WAV cut after 20 bytes", _file("h20.wav", lambda: speech_wav()[:20])),
        Case("wav-header-only", "WAV header without data (44 bytes)", _file("h44.wav", lambda: speech_wav()[:44])),
        Case("wav-cut-mid-data", "WAV cut half-way through its data", _file("cut.wav", lambda: (lambda d: d[: len(d) // 2])(speech_wav()))),
        Case("wav-claims-4gb-data", "WAV whose data chunk claims 4 GB", _file("claims4g.wav", lambda: _patched(speech_wav(), 40, struct.pack("<I", 0xFFFFFFF0)))),
        Case("wav-streaming-size", "WAV with a streaming writer's 0xFFFFFFFF data size (scored)", _file("stream.wav", lambda: _patched(speech_wav(), 40, struct.pack("<I", 0xFFFFFFFF)))),
        Case("wav-huge-fmt-size", "WAV whose fmt chunk claims 4 GB", _file("fmt4g.wav", lambda: _patched(speech_wav(), 16, struct.pack("<I", 0xFFFFFFF0)))),
        Case("wav-40mb-of-chunks", "WAV behind 40 MB of 8-byte junk chunks (5 M chunks to walk)", _file("chunks.wav", lambda: _wav_with_junk_chunks(40))),
        Case("zero-bytes", "zero-length file", _file("empty.wav", b"")),
        Case("nan-float-wav", "float WAV with a NaN sample", _file("nan.wav", lambda: _encoded(np.where(np.arange(48000) == 9, np.nan, _speech()), SAMPLE_RATE_HZ, subtype="FLOAT"))),
        Case("codec-tag-0x1234", "WAV with an unknown codec tag", _file("tag.wav", lambda: _patched(speech_wav(), 20, struct.pack("<H", 0x1234)))),
        Case("random-bytes", "4 KB of random bytes named .wav", _file("random.wav", np.random.default_rng(1).bytes(4000))),
        Case("text-as-wav", "a CSV named .wav", _file("notes.wav", b"name,label\nalice,1\n" * 50)),
        Case("id3-claims-256mb", "ID3 tag claiming 256 MB in front of a small MP3",
             _file("id3.mp3", lambda: b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f" + _encoded(_speech(), SAMPLE_RATE_HZ, format="MP3"))),
        Case("raw-gsm-8h", "49.9 MB of headerless GSM (8.4 h, read through sox)", _file("call.gsm", lambda: _raw_gsm(50))),
        Case("raw-mulaw-83min", "40 MB of headerless 8 kHz mu-law (.ul, sox)", _file("call.ul", lambda: bytes([0xFF]) * 40_000_000)),
        Case("directory-x-wav", "a folder holding a directory named x.wav", _directory_in_a_folder),
        Case("empty-folder-x-wav", "an empty folder named x.wav, given directly", _empty_folder_named_like_audio),
        Case("fifo-x-wav", "a FIFO named pipe.wav (reading would block)", _fifo),
        Case("symlink-dev-zero", "a symlink named zero.wav to /dev/zero", _symlink("zero.wav", "/dev/zero")),
        Case("symlink-dangling", "a symlink to nothing", _symlink("gone.wav", "/nonexistent/gone.wav")),
        Case("missing-file", "a path that does not exist", lambda folder: [str(folder / "missing.wav")]),
        Case("manifest-etc-shadow", "manifest row ../../../etc/shadow", _manifest("../../../../../../../etc/shadow")),
        Case("manifest-absolute", "manifest row /etc/passwd", _manifest("/etc/passwd")),
        Case("manifest-symlink-out", "manifest rows: a symlink out of its folder, and ../outside.wav",
             _manifest("link.wav", "../outside.wav", outside_file=True), rows=2),
    ]


# ---------------------------------------------------------------------------------------------- measuring
def measure(case: Case, folder: Path, *, model: str, address_cap_bytes: int, timeout_s: float) -> Measurement:
    """Make the input, score it with `python -m biomarker score` in a fresh process, read its peak RSS (wait4 on
    that child alone) and its CSV."""
    work = folder / case.name
    work.mkdir()
    args = case.make(work)
    out = folder / f"{case.name}.csv"
    command = [sys.executable, "-m", "biomarker", "score", *args, "--model", model, "--device", "cpu", "--out", str(out)]
    env = {**os.environ, "BIOMARKER_HOME": str(folder / f"{case.name}-home"), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    exit_code, peak_kb = _run_measured(command + (["--log"] if case.log else []), env, address_cap_bytes, timeout_s)
    rows = list(csv.DictReader(out.open(encoding="utf-8"))) if out.exists() else []
    return Measurement(
        name=case.name,
        what=case.what,
        input_bytes=sum(_apparent_size(Path(arg)) for arg in args),
        peak_rss_mb=round(peak_kb / 1024, 1),
        exit_code=exit_code,
        rows=len(rows),
        expected_rows=case.rows,
        reasons=[row["quality"] for row in rows],
        seconds=round(time.perf_counter() - started, 2),
    )


def _run_measured(command: list[str], env: dict, address_cap_bytes: int, timeout_s: float) -> tuple[int, int]:
    """(exit code, peak RSS in KB) of one child; a child past `timeout_s` is killed (exit code -9)."""

    def cap_address_space() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_cap_bytes, address_cap_bytes))

    child = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, preexec_fn=cap_address_space)
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
            return child.returncode, int(usage.ru_maxrss)
        if time.monotonic() > deadline:
            child.kill()
        time.sleep(0.05)


def _apparent_size(path: Path) -> int:
    """Bytes the input claims to be (a sparse file's full size); 0 for what is not a regular file."""
    try:
        return path.stat().st_size if path.is_file() else 0
    except OSError:
        return 0


# ------------------------------------------------------------------------------------------------- report
def main(*, model: str = DEFAULT_MODEL, only: tuple[str, ...] = (), address_cap_gb: float = 6.0,
         timeout_s: float = 300.0, out: Path | None = Path("runs/bench/hostile.json"), as_json: bool = False) -> dict:
    """Measure every case (or those named in `only`), print a table (or JSON) and write the JSON report."""
    cases = [case for case in catalogue() if not only or case.name in only]
    unknown = set(only) - {case.name for case in cases}
    if unknown:
        raise SystemExit(f"unknown case(s): {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="biomarker-hostile-") as tmp:
        results = [measure(case, Path(tmp), model=model, address_cap_bytes=int(address_cap_gb * 1e9), timeout_s=timeout_s)
                   for case in cases]
    report = {
        "goal": {"peak_rss_bytes_le": GOAL_PEAK_BYTES, "every_input_gets_its_row": True},
        "model": model,
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
        "address_cap_gb": address_cap_gb,
        "all_goals_met": all(result.goal_met for result in results),
        "cases": [{**asdict(result), "goal_met": result.goal_met} for result in results],
    }
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=1) if as_json else table(report))
    return report


def table(report: dict) -> str:
    """A Markdown table: one line per case with its peak, its rows and the first row's reason."""
    lines = ["| input | what | size | peak RSS (MB) | rows | goal | reason in the CSV |", "|---|---|---:|---:|---:|---|---|"]
    for case in report["cases"]:
        reason = (case["reasons"][0] if case["reasons"] else f"(no row; exit {case['exit_code']})")[:90]
        lines.append(f"| {case['name']} | {case['what']} | {_size(case['input_bytes'])} | {case['peak_rss_mb']:.0f} | "
                     f"{case['rows']}/{case['expected_rows']} | {'✅' if case['goal_met'] else '❌'} | {reason.replace('|', '/')} |")
    worst = max(report["cases"], key=lambda case: case["peak_rss_mb"])
    lines.append(f"\nworst peak: {worst['peak_rss_mb']:.0f} MB ({worst['name']}); goal <= {GOAL_PEAK_BYTES / 1e9:g} GB "
                 f"and a row for every input: {'met' if report['all_goals_met'] else 'NOT met'}")
    return "\n".join(lines)


def _size(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"
