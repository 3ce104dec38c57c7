"""Domain randomisation of a training manifest: each recording gets copies through random rooms, microphones,
gains, band-limits and the codecs a ward really produces (issue 22).

WHY: `ri-screener@7` ranked the generator's own held-out cohort at AUROC 0.99 and referred no patient on real or
telephone-band audio from outside it: its decision keyed on how the training audio was made. The remedy is to
make the channel a nuisance the model must ignore, in both classes alike (SPIRA's lesson: a cue present in one
class only is learnt as the label). Copies are written offline as a new manifest, so the training code reads
them like any cohort and pays nothing per step (features are cached once; 2 CPU cores cannot re-encode Opus
in the loop).

What does the work, and why this one:
- rooms: `pyroomacoustics` image-source shoebox rooms (ward-sized, RT60 0.15-0.9 s), synthesised once into an
  impulse-response bank, applied with audiomentations' `ApplyImpulseResponse`;
- microphone and handset responses: audiomentations `SevenBandParametricEQ`, `HighPassFilter`, `LowPassFilter`;
  level: `Gain` and `GainTransition` (a patient moving away from the phone);
- codecs: libsndfile through `soundfile` (already a dependency) encodes in memory the ones a ward produces:
  Opus voice notes at 6-24 kbit/s (SPIRA's WhatsApp recordings), MP3 at low bitrates, and the 8 kHz telephone
  line (300-3400 Hz) with GSM 06.10 or G.711 mu-law. audiomentations' own `Mp3Compression` needs a separate
  encoder package and has no Opus or GSM, so one mechanism for all codecs is simpler and exercised by tests.

A copy keeps its source's label, speaker and split (so validation spans the domains and splits stay speaker
disjoint), joins cohort `<cohort>-dr`, and records in `domain` what was applied and in `channel` its codec.
Nothing here reads or imports `biomarker.independent` (tests/test_domain.py, tests/test_independent_eval.py).
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import asdict, dataclass, replace
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile
import soxr
from audiomentations import (ApplyImpulseResponse, Gain, GainTransition, HighPassFilter, LowPassFilter,
                             SevenBandParametricEQ)
from tqdm import tqdm

from biomarker.cohorts.manifest import CohortError, CohortItem, read_manifest, write_manifest

SAMPLE_RATE_HZ = 16000
CODECS = ("none", "telephone-gsm", "telephone-ulaw", "opus", "mp3")
TELEPHONE_RATE_HZ = 8000


@dataclass(frozen=True)
class RoomBankConfig:
    """Shoebox rooms from a single bed bay to an open ward; RT60 is the target the absorption is fitted for."""

    rooms: int = 48
    seed: int = 0
    rt60_s: tuple[float, float] = (0.15, 0.9)
    size_m: tuple[tuple[float, float], ...] = ((3.0, 9.0), (3.0, 7.0), (2.5, 3.5))
    max_order: int = 12  # image-source order cap: later reflections add little on 2 cores' budget
    max_ir_s: float = 0.8  # tail kept per response


@dataclass(frozen=True)
class DomainConfig:
    """How each copy is drawn. Probabilities are per copy; `codec_weights` follows `CODECS`."""

    copies: int = 1
    seed: int = 0
    keep_originals: bool = True  # the source rows stay in the manifest beside their copies
    room_probability: float = 0.5
    eq_probability: float = 0.7
    band_probability: float = 0.3  # a cheap microphone's or phone speaker's band-limit (wideband codecs only)
    gain_db: tuple[float, float] = (-18.0, 6.0)
    gain_transition_probability: float = 0.3
    codec_weights: tuple[float, ...] = (0.2, 0.25, 0.1, 0.25, 0.2)
    opus_kbps_level: tuple[float, float] = (0.93, 1.0)  # libsndfile compression level: about 24 down to 6 kbit/s
    mp3_level: tuple[float, float] = (0.8, 0.97)  # about 40 down to 16 kbit/s

    def __post_init__(self) -> None:
        if self.copies < 1:
            raise CohortError(f"DomainConfig.copies must be at least 1, got {self.copies}")
        if len(self.codec_weights) != len(CODECS) or min(self.codec_weights) < 0 or sum(self.codec_weights) <= 0:
            raise CohortError(f"DomainConfig.codec_weights needs {len(CODECS)} non-negative weights ({', '.join(CODECS)}), "
                              f"got {self.codec_weights}")
        for name in ("room_probability", "eq_probability", "band_probability", "gain_transition_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise CohortError(f"DomainConfig.{name}={getattr(self, name)!r} must lie in [0, 1]")


def make_room_bank(out_dir: str | Path, config: RoomBankConfig = RoomBankConfig()) -> list[Path]:
    """Write `config.rooms` room impulse responses (16 kHz wav, peak-normalised) and `rooms.json`."""
    import pyroomacoustics as pra  # lazy: heavy (numba, ~2 s on the busy 2 cores); only room-bank builds need it,
    # not `cohort domain` nor each of its spawned workers

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    paths, rooms = [], []
    for index in tqdm(range(config.rooms), desc="room impulse responses", unit="room"):
        size = [float(rng.uniform(low, high)) for low, high in config.size_m]
        rt60 = float(rng.uniform(*config.rt60_s))
        try:
            absorption, order = pra.inverse_sabine(rt60, size)
        except ValueError:  # a room too large for this RT60 with any absorption: take the driest it can be
            absorption, order = 0.99, 3
        room = pra.ShoeBox(size, fs=SAMPLE_RATE_HZ, materials=pra.Material(float(absorption)),
                           max_order=min(int(order), config.max_order))
        source = [float(rng.uniform(0.5, d - 0.5)) for d in size[:2]] + [float(rng.uniform(1.0, 1.7))]
        distance = rng.uniform(0.2, 1.5)  # mouth to microphone: a phone at the face to a device on the bed table
        angle = rng.uniform(0, 2 * np.pi)
        mic = [min(max(source[0] + distance * np.cos(angle), 0.2), size[0] - 0.2),
               min(max(source[1] + distance * np.sin(angle), 0.2), size[1] - 0.2), float(rng.uniform(0.8, 1.5))]
        room.add_source(source)
        room.add_microphone(mic)
        room.compute_rir()
        response = np.asarray(room.rir[0][0], dtype=np.float64)[: int(config.max_ir_s * SAMPLE_RATE_HZ)]
        response /= np.max(np.abs(response)) + 1e-12
        path = out_dir / f"room_{index:03d}.wav"
        soundfile.write(path, response.astype(np.float32), SAMPLE_RATE_HZ, subtype="FLOAT")
        paths.append(path)
        rooms.append({"file": path.name, "size_m": size, "rt60_target_s": rt60, "absorption": float(absorption)})
    (out_dir / "rooms.json").write_text(json.dumps({"config": asdict(config), "rooms": rooms}, indent=2))
    return paths


def encode_decode(samples: np.ndarray, codec: str, rng: np.random.Generator, config: DomainConfig = DomainConfig()) -> tuple[np.ndarray, str]:
    """16 kHz float audio through `codec` and back to 16 kHz, same length; returns (audio, description).

    Telephone codecs first resample to 8 kHz and keep 300-3400 Hz (the cut-offs drawn around those of a phone
    line); Opus and MP3 encode at a bitrate drawn from the config's range.
    """
    if codec not in CODECS:
        raise CohortError(f"codec must be one of {CODECS}, got {codec!r}")
    if codec == "none":
        return samples, "none"
    buffer = io.BytesIO()
    peak = float(np.max(np.abs(samples))) + 1e-9
    audio = samples * min(1.0, 0.95 / peak)
    if codec.startswith("telephone"):
        narrow = soxr.resample(audio, SAMPLE_RATE_HZ, TELEPHONE_RATE_HZ).astype(np.float32)
        narrow = HighPassFilter(250.0, 350.0, min_rolloff=12, max_rolloff=24, p=1.0)(narrow, TELEPHONE_RATE_HZ)
        narrow = LowPassFilter(3200.0, 3500.0, min_rolloff=12, max_rolloff=24, p=1.0)(narrow, TELEPHONE_RATE_HZ)
        subtype = "GSM610" if codec == "telephone-gsm" else "ULAW"
        soundfile.write(buffer, np.clip(narrow, -1, 1), TELEPHONE_RATE_HZ, format="WAV", subtype=subtype)
        description = f"{codec}"
    elif codec == "opus":
        level = float(rng.uniform(*config.opus_kbps_level))
        soundfile.write(buffer, audio, SAMPLE_RATE_HZ, format="OGG", subtype="OPUS", compression_level=level)
        description = f"opus-{buffer.tell() * 8 / (len(audio) / SAMPLE_RATE_HZ) / 1000:.0f}kbps"
    else:
        level = float(rng.uniform(*config.mp3_level))
        soundfile.write(buffer, audio, SAMPLE_RATE_HZ, format="MP3", subtype="MPEG_LAYER_III", compression_level=level,
                        bitrate_mode="CONSTANT")
        description = f"mp3-{buffer.tell() * 8 / (len(audio) / SAMPLE_RATE_HZ) / 1000:.0f}kbps"
    buffer.seek(0)
    decoded, rate = soundfile.read(buffer, dtype="float32")
    if rate != SAMPLE_RATE_HZ:
        decoded = soxr.resample(decoded, rate, SAMPLE_RATE_HZ).astype(np.float32)
    decoded = decoded[: len(samples)]
    if len(decoded) < len(samples):
        decoded = np.pad(decoded, (0, len(samples) - len(decoded)))
    return decoded / min(1.0, 0.95 / peak), description


class DomainRandomiser:
    """Draws one random domain per call: room, microphone EQ, band-limit, gain, codec (in that physical order)."""

    def __init__(self, config: DomainConfig, room_responses: Sequence[Path]):
        if config.room_probability > 0 and not room_responses:
            raise CohortError("DomainConfig.room_probability > 0 needs room impulse responses (make_room_bank)")
        self.config = config
        self.room = ApplyImpulseResponse([str(p) for p in room_responses], p=1.0, leave_length_unchanged=True) if room_responses else None
        self.eq = SevenBandParametricEQ(-9.0, 9.0, p=1.0)
        self.high_pass = HighPassFilter(80.0, 400.0, p=1.0)
        self.low_pass = LowPassFilter(3500.0, 7000.0, p=1.0)
        self.gain = Gain(*config.gain_db, p=1.0)
        self.gain_transition = GainTransition(-12.0, 3.0, min_duration=0.5, max_duration=3.0, p=1.0)
        self.weights = np.asarray(config.codec_weights, dtype=float) / sum(config.codec_weights)

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str, str]:
        """audio [N] at 16 kHz -> (randomised audio [N], what was applied, codec)."""
        # audiomentations draws its parameters from Python's and numpy's global generators: seed both from `rng`
        # so a copy is reproducible from the build's seed.
        random.seed(int(rng.integers(2**31)))
        np.random.seed(int(rng.integers(2**31)))
        config, steps, audio = self.config, [], samples.astype(np.float32)
        if self.room is not None and rng.random() < config.room_probability:
            audio = self.room(audio, SAMPLE_RATE_HZ)
            steps.append("room")
        if rng.random() < config.eq_probability:
            audio = self.eq(audio, SAMPLE_RATE_HZ)
            steps.append("eq")
        codec = str(rng.choice(CODECS, p=self.weights))
        if not codec.startswith("telephone") and rng.random() < config.band_probability:
            audio = self.low_pass(self.high_pass(audio, SAMPLE_RATE_HZ), SAMPLE_RATE_HZ)
            steps.append("band")
        audio = self.gain(audio, SAMPLE_RATE_HZ)
        steps.append(f"gain{self.gain.parameters['amplitude_ratio']:.2f}")
        if rng.random() < config.gain_transition_probability:
            audio = self.gain_transition(audio, SAMPLE_RATE_HZ)
            steps.append("fade")
        audio, described = encode_decode(audio, codec, rng, config)
        steps.append(described)
        return np.clip(audio, -1.0, 1.0).astype(np.float32), "+".join(steps), codec


def _copies_of(task: tuple[int, CohortItem, DomainConfig, tuple[Path, ...], Path]) -> list[CohortItem]:
    """The randomised copies of one source row. Its generator is seeded by (build seed, row index), so a build is
    the same whatever the number of workers and a row's copies do not depend on the rows before it."""
    index, item, config, responses, out_dir = task
    randomiser = _worker_randomiser(config, responses)
    rng = np.random.default_rng([config.seed, index])
    samples, rate = soundfile.read(item.path, dtype="float32", always_2d=False)
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    if rate != SAMPLE_RATE_HZ:
        samples = soxr.resample(samples, rate, SAMPLE_RATE_HZ).astype(np.float32)
    copies = []
    for copy in range(config.copies):
        audio, domain, codec = randomiser(samples, rng)
        path = out_dir / "clips" / f"{index:05d}-{copy}.wav"
        soundfile.write(path, audio, SAMPLE_RATE_HZ, subtype="PCM_16")
        copies.append(replace(item, path=path, cohort=f"{item.cohort}-dr", extras={**item.extras, "domain": domain, "channel": codec}))
    return copies


_RANDOMISERS: dict[tuple, DomainRandomiser] = {}


def _worker_randomiser(config: DomainConfig, responses: tuple[Path, ...]) -> DomainRandomiser:
    """One randomiser per process (its impulse-response cache is worth keeping across rows)."""
    key = (config, responses)
    if key not in _RANDOMISERS:
        _RANDOMISERS[key] = DomainRandomiser(config, responses)
    return _RANDOMISERS[key]


def randomise_manifest(manifest: str | Path, out_dir: str | Path, room_bank: str | Path | None, config: DomainConfig = DomainConfig(),
                       workers: int = 1) -> list[CohortItem]:
    """Write `config.copies` randomised-domain copies of every row of `manifest` under `out_dir/clips`, and
    `out_dir/manifest.csv` (sources first when `keep_originals`) plus `domain_config.json`. `workers` > 1 encodes
    in that many processes (the codecs are most of the cost); the result does not depend on it."""
    out_dir = Path(out_dir)
    (out_dir / "clips").mkdir(parents=True, exist_ok=True)
    responses = tuple(sorted(Path(room_bank).glob("*.wav"))) if room_bank else ()
    DomainRandomiser(config, responses)  # refuse a bad setting before any worker starts
    sources = read_manifest(manifest)
    tasks = [(index, item, config, responses, out_dir) for index, item in enumerate(sources)]
    progress = dict(desc="domain-randomised copies", unit="clip", total=len(tasks))
    if workers > 1:
        # an executor, not a Pool: a worker that dies (out of memory, a broken `__main__`) raises BrokenProcessPool
        # here instead of being replaced forever while the build waits
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            per_row = list(tqdm(pool.map(_copies_of, tasks, chunksize=16), **progress))
    else:
        per_row = [_copies_of(task) for task in tqdm(tasks, **progress)]
    copies = [copy for row in per_row for copy in row]
    # sources keep their own files: absolute paths, since they lie outside out_dir (a path relative to the working
    # folder would be read relative to the new manifest's folder)
    originals = [replace(i, path=i.path.resolve(), extras={**i.extras, "domain": "source", "channel": "source"})
                 for i in sources] if config.keep_originals else []
    items = originals + copies
    write_manifest(items, out_dir / "manifest.csv")
    (out_dir / "domain_config.json").write_text(json.dumps({"synthetic": True, "source_manifest": str(manifest),
                                                            "room_bank": str(room_bank), **asdict(config)}, indent=2))
    return items
