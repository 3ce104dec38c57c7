"""Write one independent evaluation set: clips, `manifest.csv` (one cohort per channel), `summary.json`.

Per clip: the raw voice is brought to a common speech level (-23 dBFS active), marked (`apply_markers`: patients
at their severity, controls at severity 0, both with natural variation), given 0.2-0.5 s of room tone at each end,
ward ambience for half the clips of each class, a microphone gain of -4 to +3 dB for everyone, and written at the
voice's own rate (wideband) and through the GSM telephone channel (telephone). Labels are balanced within every
source (real) or language (espeak-ng), to within one clip; patients' severities are stratified over the three bands of
`strengths.SEVERITY_BANDS`, so a third of them are mild (< 0.4). Every row is split `test`: these sets only measure.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile

from biomarker.cohorts.manifest import CohortItem, write_manifest
from biomarker.independent.ambient import AmbientConfig, add_ambience
from biomarker.independent.analysis import SAMPLE_RATE_HZ, active_rms
from biomarker.independent.apply import apply_markers
from biomarker.independent.channel import CHANNELS, TELEPHONE_RATE_HZ, telephone
from biomarker.independent.inhalation import coloured_noise
from biomarker.independent.soxio import sox_float
from biomarker.independent.sources import HELD_OUT_SOURCES, ClipGatherer, find_sources
from biomarker.independent.strengths import SEVERITY_BANDS, draw_strengths, severity_band
from biomarker.independent.voices import draw_speaker, synthesize
from biomarker.records import CohortError

SOURCES = ("real", "espeak")
SPEECH_LEVEL_DBFS = -23.0


@dataclass(frozen=True)
class IndependentSetConfig:
    """`source` 'real' (held-out real voices, per-source clip counts times `clips_scale`) or 'espeak' (`n`
    held-out synthetic speakers, one clip each). `root`: where the Debian packages were extracted."""

    source: str = "real"
    seed: int = 0
    n: int = 128
    clips_scale: float = 1.0
    channels: tuple[str, ...] = CHANNELS
    ambient_fraction: float = 0.5
    min_clip_s: float = 3.5
    max_clip_s: float = 7.0
    root: str = "data/realspeech"

    def validate(self) -> None:
        if self.source not in SOURCES:
            raise CohortError(f"source must be one of {SOURCES}, got {self.source!r}")
        unknown = set(self.channels) - set(CHANNELS)
        if unknown or not self.channels:
            raise CohortError(f"channels must be a non-empty subset of {CHANNELS}, got {self.channels}")
        if self.n < 4 or self.clips_scale <= 0 or not 0 <= self.ambient_fraction <= 1:
            raise CohortError(f"bad set size or ambient fraction: n={self.n}, clips_scale={self.clips_scale}, "
                              f"ambient_fraction={self.ambient_fraction}")

    @property
    def cohort(self) -> str:
        return f"independent-{self.source}"


@dataclass(frozen=True)
class RawClip:
    """A clip before marking: its samples at `rate_hz`, the group labels are balanced within, and its metadata."""

    clip_id: str
    samples: np.ndarray
    rate_hz: int
    group: str
    meta: dict[str, str]
    sex: str | None


def _real_clips(config: IndependentSetConfig, rng: np.random.Generator) -> Iterator[RawClip]:
    files = find_sources(config.root)
    for source in HELD_OUT_SOURCES:
        gatherer = ClipGatherer(source, files[source.name], rng, config.min_clip_s, config.max_clip_s)
        count = max(2, 2 * round(source.clips * config.clips_scale / 2))
        for index in range(count):
            yield RawClip(f"{source.name}-{index:03d}", gatherer.clip(), source.rate_hz, source.name,
                          {"source": source.name, "package": source.package, "language": source.language,
                           "origin_codec": source.codec, "origin_rate_hz": str(source.rate_hz)}, source.sex)


def _espeak_clips(config: IndependentSetConfig, rng: np.random.Generator) -> Iterator[RawClip]:
    for index in range(config.n):
        speaker = draw_speaker(rng)
        yield RawClip(f"espeak-{index:04d}", synthesize(speaker), SAMPLE_RATE_HZ, speaker.language,
                      {"source": "espeak-ng", "voice": f"{speaker.language}+{speaker.variant}", "language": speaker.language,
                       "sentence": speaker.sentence, "pitch": str(speaker.pitch), "rate_wpm": str(speaker.rate_wpm),
                       "origin_codec": "pcm", "origin_rate_hz": str(SAMPLE_RATE_HZ)}, speaker.sex)


def assign_labels(groups: list[str], rng: np.random.Generator) -> tuple[list[int], list[float], list[bool]]:
    """Labels alternate along the clips ordered group by group (shuffled within each group), so both the whole
    set and every group are balanced to within one clip; patients' severities cycle through the three bands
    (uniform within a band); ambience alternates within each class the same way. Returns labels, severities,
    ambient flags."""
    order: list[int] = []
    for group in dict.fromkeys(groups):
        members = [k for k, g in enumerate(groups) if g == group]
        order += [members[k] for k in rng.permutation(len(members))]
    labels, severities, ambient = [0] * len(groups), [0.0] * len(groups), [False] * len(groups)
    offset, band_turn = int(rng.integers(2)), int(rng.integers(len(SEVERITY_BANDS)))
    seen = [0, 0]
    for position, k in enumerate(order):
        label = (position + offset) % 2
        labels[k] = label
        if label:
            low, high = SEVERITY_BANDS[band_turn % len(SEVERITY_BANDS)]
            band_turn += 1
            severities[k] = float(rng.uniform(low, high))
        ambient[k] = seen[label] % 2 == 0
        seen[label] += 1
    return labels, severities, ambient


def _to_rate(samples: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    return samples if from_hz == to_hz else sox_float(samples, [], in_rate_hz=from_hz, out_rate_hz=to_hz)


def render(raw: RawClip, severity: float, with_ambience: bool, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, str]]:
    """The wideband clip at the voice's own rate, and what was done to it (for the manifest's extras)."""
    x = _to_rate(raw.samples, raw.rate_hz, SAMPLE_RATE_HZ)
    x = x * (10 ** (SPEECH_LEVEL_DBFS / 20) / active_rms(x))
    strengths = draw_strengths(severity, rng)
    marked = apply_markers(x, strengths, rng)
    floor = 1e-3 * active_rms(marked.samples)
    lead, tail = (coloured_noise(rng, int(rng.uniform(0.2, 0.5) * SAMPLE_RATE_HZ), 1.0) * floor for _ in range(2))
    y = np.concatenate([lead, marked.samples, tail]).astype(np.float32)
    snr_db = float("nan")
    if with_ambience:
        y, snr_db = add_ambience(y, rng, AmbientConfig())
    y = y * 10 ** (rng.uniform(-4.0, 3.0) / 20)
    y = _to_rate(y, SAMPLE_RATE_HZ, raw.rate_hz)  # an 8 kHz voice stays 8 kHz: no marker adds a band it lacks
    peak = float(np.max(np.abs(y)))
    if peak > 0.95:
        y = y * (0.95 / peak)
    breaths = [p for p in marked.pauses if p[2].startswith("breath")]
    info = {
        "severity": f"{severity:.3f}", "severity_band": severity_band(severity),
        "ambient": "yes" if with_ambience else "no", "snr_db": "" if np.isnan(snr_db) else f"{snr_db:.1f}",
        "breath_pauses": str(len(breaths)), "inhalations": str(sum("+inhale" in p[2] for p in marked.pauses)),
        "hesitations": str(len(marked.pauses) - len(breaths)), "slowing": f"{strengths.slowing:.3f}",
        "duration_s": f"{len(y) / raw.rate_hz:.2f}",
    }
    return y.astype(np.float32), info


def build_independent_set(out_dir: str | Path, config: IndependentSetConfig = IndependentSetConfig()) -> list[CohortItem]:
    """Write the set under `out_dir` (clips in `<channel>/`, `manifest.csv`, `summary.json`); return its rows."""
    config.validate()
    out_dir = Path(out_dir)
    rng = np.random.default_rng([config.seed, SOURCES.index(config.source), 22])
    raws = list(_real_clips(config, rng) if config.source == "real" else _espeak_clips(config, rng))
    labels, severities, ambient = assign_labels([r.group for r in raws], rng)
    items: list[CohortItem] = []
    for channel in config.channels:
        (out_dir / channel).mkdir(parents=True, exist_ok=True)
    for raw, label, severity, noisy in zip(raws, labels, severities, ambient):
        clip_rng = np.random.default_rng([config.seed, SOURCES.index(config.source), len(items), 7])
        wideband, info = render(raw, severity, noisy, clip_rng)
        for channel in config.channels:
            if channel == "wideband":
                samples, rate = wideband, raw.rate_hz
            else:
                samples, rate = telephone(wideband, raw.rate_hz), TELEPHONE_RATE_HZ
            path = out_dir / channel / f"{raw.clip_id}.wav"
            soundfile.write(path, samples, rate, subtype="PCM_16")
            cohort = config.cohort if channel == "wideband" else f"{config.cohort}-{channel}"
            extras = {**raw.meta, **info, "channel": channel, "synthetic_markers": "yes" if label else "no"}
            items.append(CohortItem(path, label, raw.clip_id, cohort, sex=raw.sex, split="test", extras=extras))
    write_manifest(items, out_dir / "manifest.csv")
    for channel in config.channels:
        write_manifest([i for i in items if i.extras["channel"] == channel], out_dir / f"manifest-{channel}.csv")
    (out_dir / "summary.json").write_text(json.dumps({"config": asdict(config), **summarise(items)}, indent=2))
    return items


def summarise(items: list[CohortItem]) -> dict:
    """Counts a data card states: clips per cohort, class, band, subgroup; durations."""
    summary: dict = {}
    for cohort in sorted({i.cohort for i in items}):
        rows = [i for i in items if i.cohort == cohort]
        durations = [float(i.extras["duration_s"]) for i in rows]

        def count(key: str) -> dict[str, int]:
            values = [i.extras.get(key) or "unknown" for i in rows]
            return {v: values.count(v) for v in sorted(set(values))}

        summary[cohort] = {
            "clips": len(rows), "patients": sum(i.label for i in rows),
            "severity_band": count("severity_band"), "source": count("source"), "language": count("language"),
            "sex": {s: sum((i.sex or "unknown") == s for i in rows) for s in sorted({i.sex or "unknown" for i in rows})},
            "ambient": count("ambient"), "origin_codec": count("origin_codec"),
            "duration_s": {"min": round(min(durations), 2), "median": round(float(np.median(durations)), 2), "max": round(max(durations), 2)},
            "patients_with_inhalation": sum(1 for i in rows if i.label and int(i.extras["inhalations"]) > 0),
        }
    return summary
