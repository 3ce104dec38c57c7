"""Build the self-supervised pretraining corpus from what can legitimately be installed here.

Why this exists: pretraining needs hours of unlabeled speech, and no hub download is allowed. Debian ships
about 8 h of real read/acted speech (asterisk IVR voices, fillets-ng game dialogue, klettres letters and
syllables, ktuberling words, gcin Mandarin syllables) and espeak-ng synthesises any amount of robotic speech
in 100+ languages. This module installs the packages (idempotent), decodes everything to 16 kHz mono,
packs each speaker's short utterances into segments of a few seconds (most prompts last ~1.3 s, and a 4-s
crop of a 1.3-s clip is mostly padding), keeps whole speakers out for held-out evaluation, and writes

- ``OUT/audio/<source>/<speaker>/<n>.flac`` (never committed: this command rebuilds it),
- ``OUT/manifest.csv`` (path, duration_s, source, speaker, language, kind, license, split, n_utterances),
- ``OUT/summary.json`` and the datasheet ``data_cards/pretraining-corpus.md``.

Held out (speakers never seen in pretraining): `asterisk-prompt-es-co`, `asterisk-prompt-fr-armelle`, the
asterisk voice `it_IT_f_Menardi`, and the espeak-ng pt-BR variants in `HELD_OUT_SYNTH_VARIANTS`.

The source tables live in `corpus_sources`, the datasheet in `corpus_card`; both are re-exported here.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from biomarker.audio import load
from biomarker.pretrain.corpus_card import render_card
from biomarker.pretrain.corpus_sources import (
    HELD_OUT_SYNTH_VARIANTS,
    PT_BR_SHARE,
    REAL_SOURCES,
    TEXT_SOURCES,
    TRAIN_SYNTH_VARIANTS,
    RealSource,
    TextSource,
)
from biomarker.records import AudioError, BiomarkerError, EmptyAudioError

SAMPLE_RATE_HZ = 16000
MANIFEST_NAME = "manifest.csv"
SUMMARY_NAME = "summary.json"
MANIFEST_FIELDS = ("path", "duration_s", "source", "speaker", "language", "kind", "license", "split",
                   "n_utterances")


class CorpusError(BiomarkerError, RuntimeError):
    """The corpus could not be built (a package would not install, a decoder failed); names the item."""


@dataclass
class CorpusConfig:
    """How big and what: real speech is taken whole unless capped; synthetic minutes are a budget."""

    out_dir: str
    max_real_minutes_per_source: float | None = None  # None: all of it
    synthetic_minutes: float = 90.0
    held_out_synthetic_minutes: float = 6.0
    segment_s: float = 6.0  # pack a speaker's utterances into segments of about this length
    gap_s: float = 0.2  # silence between packed utterances
    seed: int = 0
    install: bool = True
    workers: int = 2
    card_path: str | None = "data_cards/pretraining-corpus.md"
    sources: tuple[str, ...] = field(default_factory=lambda: tuple(s.name for s in REAL_SOURCES))


@dataclass
class Utterance:
    samples: np.ndarray
    source: str
    speaker: str
    language: str
    kind: str  # "real" | "synthetic"
    license: str
    split: str  # "train" | "held_out"
    original_rate_hz: int


# --------------------------------------------------------------------------------------------- decoding
def install_packages(packages: Iterable[str]) -> list[str]:
    """apt-get the packages that are not installed yet; returns what was installed (idempotent)."""
    missing = [p for p in sorted(set(packages))
               if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0]
    if not missing:
        return []
    prefix = [] if _is_root() else ["sudo"]
    env_cmd = ["env", "DEBIAN_FRONTEND=noninteractive"]
    install = prefix + env_cmd + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
    result = subprocess.run(install, capture_output=True, text=True)
    if result.returncode != 0:
        subprocess.run(prefix + ["apt-get", "update", "-qq"], capture_output=True)
        result = subprocess.run(install, capture_output=True, text=True)
    if result.returncode != 0:
        raise CorpusError(f"apt-get install {' '.join(missing)} failed: {result.stderr.strip()[-500:]}")
    return missing


def _is_root() -> bool:
    return os.geteuid() == 0


def decode(path: Path, sample_rate_hz: int = SAMPLE_RATE_HZ) -> tuple[np.ndarray, int]:
    """Any file `biomarker.audio` reads (wav, ogg/vorbis/opus, flac, raw GSM via sox...) → mono float32 at
    `sample_rate_hz`, plus the original rate."""
    try:
        recording = load(path, target_sr=sample_rate_hz)
    except EmptyAudioError:
        return np.zeros(0, dtype=np.float32), 0  # an empty prompt file: counted as skipped by the caller
    except AudioError as error:
        raise CorpusError(f"{path}: cannot be decoded ({error.problem})") from error
    return recording.samples.astype(np.float32), recording.original_sample_rate_hz


def synthesize(text: str, voice: str, *, rate_wpm: int, pitch: int, sample_rate_hz: int = SAMPLE_RATE_HZ
               ) -> np.ndarray:
    """espeak-ng → 16 kHz mono float32 (sox does the resampling)."""
    # text on stdin: a sentence starting with "-" (dialogue) must not be read as an option
    speak = subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate_wpm), "-p", str(pitch), "--stdout", "--stdin"],
                           input=text.encode("utf-8"), capture_output=True)
    if speak.returncode != 0 or not speak.stdout:
        raise CorpusError(f"espeak-ng -v {voice} failed on {text[:40]!r}: {speak.stderr.decode().strip()}")
    result = subprocess.run(
        ["sox", "-V1", "-t", "wav", "-", "-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1", "-r",
         str(sample_rate_hz), "-"],
        input=speak.stdout, capture_output=True,
    )
    if result.returncode != 0:
        raise CorpusError(f"sox could not resample espeak-ng output for voice {voice}")
    return np.frombuffer(result.stdout, dtype="<i2").astype(np.float32) / 32768.0


def read_sentences(source: TextSource, *, min_chars: int = 20, max_chars: int = 300) -> list[str]:
    """Fortune entries flattened to one line; attributions ('-- name') and ASCII art dropped."""
    sentences: list[str] = []
    for path in sorted(Path("/usr/share/games/fortunes").glob(source.pattern)):
        if "/off/" in str(path):  # the packages' offensive sections
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for entry in text.split("\n%\n"):
            lines = [ln.strip() for ln in entry.splitlines() if ln.strip() and not ln.strip().startswith("--")]
            line = " ".join(lines)
            letters = sum(ch.isalpha() for ch in line)
            if min_chars <= len(line) <= max_chars and letters >= 0.6 * len(line):
                sentences.append(line)
    return sentences


# ---------------------------------------------------------------------------------------------- building
def collect_real(source: RealSource, config: CorpusConfig, skipped: list[str]) -> list[Utterance]:
    """Decoded utterances of one source; empty files and clicks under 0.1 s go to `skipped` (with the reason)."""
    files = source.files()
    if not files:
        raise CorpusError(f"{source.name}: no files match {source.root}/{source.pattern} "
                          f"(is {source.package} installed?)")
    if config.max_real_minutes_per_source is not None:
        # spread the cap over speakers/levels rather than taking the alphabetical start
        random.Random(f"{config.seed}-{source.name}").shuffle(files)
    split = "held_out" if source.held_out else "train"
    budget_samples = (None if config.max_real_minutes_per_source is None
                      else config.max_real_minutes_per_source * 60 * SAMPLE_RATE_HZ)
    utterances: list[Utterance] = []
    total = 0
    with ThreadPoolExecutor(max_workers=config.workers) as pool:
        for path, (samples, rate) in zip(files, pool.map(decode, files)):
            if samples.size < SAMPLE_RATE_HZ // 10:
                skipped.append(f"{path}: {'empty' if samples.size == 0 else 'shorter than 0.1 s'}")
                continue
            utterances.append(Utterance(samples, source.name, f"{source.name}/{source.speaker_of(path)}",
                                        source.language, "real", source.license, split, rate))
            total += samples.size
            if budget_samples is not None and total >= budget_samples:
                break
    return utterances


def collect_synthetic(config: CorpusConfig) -> list[Utterance]:
    """espeak-ng speech: half pt-BR, the rest spread over the other text languages; held-out pt-BR voices."""
    rng = random.Random(config.seed)
    texts = {src.language: read_sentences(src) for src in TEXT_SOURCES}
    empty = [lang for lang, sentences in texts.items() if not sentences]
    if empty:
        raise CorpusError(f"no sentences found for {empty}: are the fortunes packages installed?")
    licenses = {src.language: src.license for src in TEXT_SOURCES}
    others = [lang for lang in texts if lang != "pt-br"]
    plan = [("pt-br", config.synthetic_minutes * PT_BR_SHARE, TRAIN_SYNTH_VARIANTS, "train")]
    plan += [(lang, config.synthetic_minutes * (1 - PT_BR_SHARE) / len(others), TRAIN_SYNTH_VARIANTS, "train")
             for lang in others]
    plan.append(("pt-br", config.held_out_synthetic_minutes, HELD_OUT_SYNTH_VARIANTS, "held_out"))

    jobs: list[tuple[str, str, int, int, str, str]] = []
    for language, minutes, variants, split in plan:
        sentences = texts[language]
        # about 13 characters per second at 150 wpm: plan jobs, then stop at the budget while decoding
        expected = int(minutes * 60 * 13 / max(1.0, np.mean([len(s) for s in sentences]))) + 5
        for _ in range(expected):
            variant = rng.choice(variants)
            jobs.append((language, rng.choice(sentences), rng.randint(120, 190), rng.randint(25, 75),
                         f"{language}+{variant}", split))

    def run(job: tuple[str, str, int, int, str, str]) -> np.ndarray:
        language, text, rate, pitch, voice, _ = job
        return synthesize(text, voice, rate_wpm=rate, pitch=pitch)

    budgets = {(lang, split): minutes * 60 * SAMPLE_RATE_HZ for lang, minutes, _, split in plan}
    utterances: list[Utterance] = []
    with ThreadPoolExecutor(max_workers=config.workers) as pool:
        for job, samples in zip(jobs, pool.map(run, jobs)):
            language, _, _, _, voice, split = job
            if budgets[(language, split)] <= 0:
                continue
            budgets[(language, split)] -= samples.size
            utterances.append(Utterance(samples, f"espeak-ng-{language}", f"espeak-ng/{voice}", language,
                                        "synthetic", f"espeak-ng output (text: {licenses[language]})", split,
                                        22050))
    return utterances


def pack_segments(utterances: list[Utterance], segment_s: float, gap_s: float) -> list[list[Utterance]]:
    """Group consecutive utterances of one speaker into segments of at least `segment_s` (a longer single
    utterance stays whole). Speakers never mix inside a segment, so held-out speakers stay held out."""
    by_speaker: dict[str, list[Utterance]] = defaultdict(list)
    for utterance in utterances:
        by_speaker[utterance.speaker].append(utterance)
    target = segment_s * SAMPLE_RATE_HZ
    gap = gap_s * SAMPLE_RATE_HZ
    segments: list[list[Utterance]] = []
    for speaker in sorted(by_speaker):
        current: list[Utterance] = []
        length = 0.0
        for utterance in by_speaker[speaker]:
            current.append(utterance)
            length += utterance.samples.size + gap
            if length >= target:
                segments.append(current)
                current, length = [], 0.0
        if current:
            segments.append(current)
    return segments


def write_segments(segments: list[list[Utterance]], out_dir: Path, gap_s: float) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    counters: dict[str, int] = defaultdict(int)
    gap = np.zeros(int(gap_s * SAMPLE_RATE_HZ), dtype=np.float32)
    for segment in segments:
        first = segment[0]
        pieces = [part for u in segment for part in (u.samples, gap)][:-1]
        audio = np.concatenate(pieces)
        speaker_dir = re.sub(r"[^A-Za-z0-9._+-]", "_", first.speaker)
        index = counters[first.speaker]
        counters[first.speaker] += 1
        relative = Path("audio") / speaker_dir / f"{index:05d}.flac"
        (out_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        sf.write(out_dir / relative, audio, SAMPLE_RATE_HZ, subtype="PCM_16")
        rows.append({"path": str(relative), "duration_s": round(audio.size / SAMPLE_RATE_HZ, 3),
                     "source": first.source, "speaker": first.speaker, "language": first.language,
                     "kind": first.kind, "license": first.license, "split": first.split,
                     "n_utterances": len(segment)})
    return rows


def summarize(rows: list[dict[str, object]], utterances: list[Utterance], config: CorpusConfig,
              installed: list[str]) -> dict[str, object]:
    """Numbers for the datasheet: hours, files, speakers, languages, rates, licenses, real/synthetic, splits."""
    def hours(selected: Iterable[dict[str, object]]) -> float:
        return round(sum(float(r["duration_s"]) for r in selected) / 3600, 3)

    per_source: dict[str, dict[str, object]] = {}
    for source in sorted({str(r["source"]) for r in rows}):
        chosen = [r for r in rows if r["source"] == source]
        its = [u for u in utterances if u.source == source]
        per_source[source] = {
            "hours": hours(chosen),
            "segments": len(chosen),
            "utterances": len(its),
            "speakers_or_voices": len({r["speaker"] for r in chosen}),
            "language": chosen[0]["language"],
            "kind": chosen[0]["kind"],
            "license": chosen[0]["license"],
            "split": chosen[0]["split"] if len({r["split"] for r in chosen}) == 1 else "train + held_out",
            "original_rates_hz": sorted({u.original_rate_hz for u in its}),
        }
    return {
        "config": {k: v for k, v in asdict(config).items() if k != "out_dir"},
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "hours_total": hours(rows),
        "hours_train": hours(r for r in rows if r["split"] == "train"),
        "hours_held_out": hours(r for r in rows if r["split"] == "held_out"),
        "hours_real": hours(r for r in rows if r["kind"] == "real"),
        "hours_synthetic": hours(r for r in rows if r["kind"] == "synthetic"),
        "hours_pt_br_synthetic": hours(r for r in rows if r["language"] == "pt-br"),
        "segments": len(rows),
        "utterances": len(utterances),
        "speakers_or_voices": len({r["speaker"] for r in rows}),
        "per_source": per_source,
        "packages_installed_by_this_build": installed,
    }


def build_corpus(config: CorpusConfig, log: Callable[[str], None] = print) -> dict[str, object]:
    """Install, decode, synthesise, pack, write audio + manifest + summary (+ datasheet). Returns the summary."""
    out_dir = Path(config.out_dir)
    unknown = set(config.sources) - {s.name for s in REAL_SOURCES}
    if unknown:
        raise CorpusError(f"unknown corpus sources {sorted(unknown)}; known: {[s.name for s in REAL_SOURCES]}")
    sources = [s for s in REAL_SOURCES if s.name in config.sources]
    installed: list[str] = []
    if config.install:
        packages = [s.package for s in sources] + (["espeak-ng", "sox"] if config.synthetic_minutes > 0 else [])
        packages += [t.package for t in TEXT_SOURCES] if config.synthetic_minutes > 0 else []
        installed = install_packages(packages + ["sox", "libsox-fmt-all"])
        if installed:
            log(f"installed: {' '.join(installed)}")
    for tool in ("sox", "espeak-ng") if config.synthetic_minutes > 0 else ("sox",):
        if shutil.which(tool) is None:
            raise CorpusError(f"{tool} is not on PATH; install it or run with install enabled")

    utterances: list[Utterance] = []
    skipped: list[str] = []
    for source in sources:
        found = collect_real(source, config, skipped)
        log(f"{source.name}: {len(found)} utterances, {sum(u.samples.size for u in found) / SAMPLE_RATE_HZ / 60:.1f} min")
        utterances.extend(found)
    if config.synthetic_minutes > 0:
        synthetic = collect_synthetic(config)
        log(f"espeak-ng: {len(synthetic)} utterances, "
            f"{sum(u.samples.size for u in synthetic) / SAMPLE_RATE_HZ / 60:.1f} min")
        utterances.extend(synthetic)

    if (out_dir / "audio").exists():
        shutil.rmtree(out_dir / "audio")  # a rebuild must not keep segments from an older, larger build
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = write_segments(pack_segments(utterances, config.segment_s, config.gap_s), out_dir, config.gap_s)
    with (out_dir / MANIFEST_NAME).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    summary = summarize(rows, utterances, config, installed)
    summary["skipped_files"] = skipped
    (out_dir / SUMMARY_NAME).write_text(json.dumps(summary, indent=2))
    if config.card_path:
        Path(config.card_path).parent.mkdir(parents=True, exist_ok=True)
        Path(config.card_path).write_text(render_card(summary))
    return summary


def read_manifest(path: str | Path, split: str | None = None) -> list[dict[str, str]]:
    """Rows of a corpus manifest (paths resolved against the manifest's folder), optionally one split."""
    path = Path(path)
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and "path" not in rows[0]:
        raise CorpusError(f"{path}: a manifest needs a 'path' column, found {list(rows[0])}")
    for row in rows:
        row["path"] = str((path.parent / row["path"]).resolve())
    return [r for r in rows if split is None or r.get("split", "train") == split]
