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
from biomarker.records import AudioError, BiomarkerError, EmptyAudioError

SAMPLE_RATE_HZ = 16000
MANIFEST_NAME = "manifest.csv"
SUMMARY_NAME = "summary.json"
MANIFEST_FIELDS = ("path", "duration_s", "source", "speaker", "language", "kind", "license", "split",
                   "n_utterances")


class CorpusError(BiomarkerError, RuntimeError):
    """The corpus could not be built (a package would not install, a decoder failed); names the item."""


# ------------------------------------------------------------------------------------------------ sources
def _asterisk_speaker(path: Path) -> str:
    return path.relative_to("/usr/share/asterisk/sounds").parts[0]


def _fillets_speaker(path: Path) -> str:
    # <level>-<speaker>-<line>.ogg; the two main fish are "m" and "v", minor characters have other codes
    parts = path.stem.split("-")
    language = path.parent.name
    return f"{language}-{parts[1] if len(parts) > 2 else 'misc'}"


def _language_dir_speaker(depth: int) -> Callable[[Path], str]:
    """Speaker = a directory name `depth` levels up (one speaker set per language is all these packages say)."""
    return lambda path: path.parents[depth].name


@dataclass(frozen=True)
class RealSource:
    """One group of real recordings installed by a Debian package."""

    name: str
    package: str
    root: str
    pattern: str
    language: str
    license: str
    speaker_of: Callable[[Path], str]
    held_out: bool = False
    exclude: str | None = None  # regex on the path

    def files(self) -> list[Path]:
        paths = sorted(Path(self.root).glob(self.pattern))
        if self.exclude:
            paths = [p for p in paths if not re.search(self.exclude, str(p))]
        return paths


ASTERISK = "/usr/share/asterisk/sounds"
REAL_SOURCES: tuple[RealSource, ...] = (
    RealSource("asterisk-en-us-allison", "asterisk-core-sounds-en-wav", f"{ASTERISK}/en_US_f_Allison", "**/*.wav",
               "en-US", "CC-BY-SA-3.0", _asterisk_speaker, exclude="/silence/"),
    RealSource("asterisk-es-mx-allison", "asterisk-core-sounds-es-wav", f"{ASTERISK}/es_MX_f_Allison", "**/*.wav",
               "es-MX", "CC-BY-SA-3.0", _asterisk_speaker, exclude="/silence/"),
    RealSource("asterisk-fr-ca-june", "asterisk-core-sounds-fr-wav", f"{ASTERISK}/fr_CA_f_June", "**/*.wav",
               "fr-CA", "CC-BY-SA-3.0", _asterisk_speaker, exclude="/silence/"),
    RealSource("asterisk-it-carlo", "asterisk-core-sounds-it-wav", f"{ASTERISK}/it_IT_m_Carlo", "**/*.wav",
               "it-IT", "CC-BY-3.0", _asterisk_speaker, exclude="/silence/"),
    RealSource("asterisk-ru-ivrvoice", "asterisk-core-sounds-ru-wav", f"{ASTERISK}/ru_RU_f_IvrvoiceRU", "**/*.wav",
               "ru-RU", "CC-BY-3.0", _asterisk_speaker, exclude="/silence/"),
    RealSource("asterisk-it-menardi", "asterisk-prompt-it-menardi-wav", f"{ASTERISK}/it_IT_f_Menardi", "**/*.wav",
               "it-IT", "CC-BY-SA-3.0", _asterisk_speaker, held_out=True, exclude="/silence/"),
    RealSource("asterisk-es-co", "asterisk-prompt-es-co", f"{ASTERISK}/es", "**/*.gsm", "es-CO", "GPL",
               lambda p: "es-co", held_out=True),
    RealSource("asterisk-fr-armelle", "asterisk-prompt-fr-armelle", f"{ASTERISK}/fr", "**/*.gsm", "fr-FR", "GPL",
               lambda p: "fr-armelle", held_out=True),
    RealSource("fillets-ng-cs", "fillets-ng-data-cs", "/usr/share/games/fillets-ng/sound", "*/cs/*.ogg", "cs",
               "GPL-2", _fillets_speaker),
    RealSource("fillets-ng-nl", "fillets-ng-data-nl", "/usr/share/games/fillets-ng/sound", "*/nl/*.ogg", "nl",
               "GPL-2", _fillets_speaker),
    RealSource("klettres", "klettres-data", "/usr/share/klettres", "*/*/*.ogg", "21 languages", "GPL-2+",
               _language_dir_speaker(1)),
    RealSource("ktuberling", "ktuberling-data", "/usr/share/ktuberling/sounds", "*/*.*", "~25 languages",
               "GPL-2+", _language_dir_speaker(0), exclude=r"\.soundtheme$"),
    RealSource("gcin-voice", "gcin-voice", "/usr/share/gcin-voice/ogg", "*/*.ogg", "zh", "GPL-3/LGPL-3, CC-BY-3.0",
               lambda p: "gcin"),
)


@dataclass(frozen=True)
class TextSource:
    """Sentences for espeak-ng, from Debian fortune packages (plain UTF-8, '%'-separated)."""

    language: str  # espeak-ng voice name
    package: str
    pattern: str  # glob under /usr/share/games/fortunes
    license: str


TEXT_SOURCES: tuple[TextSource, ...] = (
    TextSource("pt-br", "fortunes-br", "brasil", "GPL-2+"),
    TextSource("es", "fortunes-es", "es/*.fortunes.u8", "GPL-2+"),
    TextSource("it", "fortunes-it", "it/*.u8", "GPL-2+"),
    TextSource("de", "fortunes-de", "de/*.u8", "GPL-2+"),
    TextSource("ru", "fortunes-ru", "ru/*.u8", "GPL-2"),
    TextSource("cs", "fortunes-cs", "cs/*.u8", "GPL"),
    TextSource("en-us", "fortunes-min", "fortunes.u8", "BSD"),
)
# espeak-ng variants: the training voices and the pt-BR voices kept back for held-out evaluation
TRAIN_SYNTH_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "f1", "f2", "f3", "f4", "klatt", "klatt3")
HELD_OUT_SYNTH_VARIANTS = ("m7", "f5")
PT_BR_SHARE = 0.5  # of synthetic time: the target language is well represented


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


def render_card(summary: dict[str, object]) -> str:
    """The datasheet (data_cards/pretraining-corpus.md), written from the measured summary."""
    per_source: dict[str, dict[str, object]] = summary["per_source"]  # type: ignore[assignment]
    lines = [
        "# Data card: pretraining corpus (unlabeled speech)",
        "",
        "Built by `biomarker corpus build OUT` (biomarker/pretrain/corpus.py) from Debian packages and espeak-ng; the "
        "audio is never committed, the command rebuilds it. Numbers below were measured on the build that "
        "produced the shipped encoders.",
        "",
        "## Composition",
        "",
        f"- Total: **{summary['hours_total']} h** in {summary['segments']} segments "
        f"({summary['utterances']} utterances packed per speaker into ~{summary['config']['segment_s']} s "
        f"segments), {summary['speakers_or_voices']} speakers/voices, all resampled to 16 kHz mono.",
        f"- Real speech: **{summary['hours_real']} h**; synthetic (espeak-ng): **{summary['hours_synthetic']} h** "
        f"(real share {100 * summary['hours_real'] / max(summary['hours_total'], 1e-9):.0f} %).",
        f"- Synthetic pt-BR: {summary['hours_pt_br_synthetic']} h (the only real pt-BR is the 1.7 min in "
        "klettres pt_BR).",
        f"- Train: {summary['hours_train']} h; held out: {summary['hours_held_out']} h.",
        "",
        "| source | kind | language | hours | segments | utterances | speakers/voices | original rate (Hz) | "
        "license | split |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in per_source.items():
        rates = s["original_rates_hz"]
        rate_text = f"{rates[0]}" if len(rates) == 1 else f"{rates[0]}–{rates[-1]}"
        lines.append(f"| {name} | {s['kind']} | {s['language']} | {s['hours']} | {s['segments']} | "
                     f"{s['utterances']} | {s['speakers_or_voices']} | {rate_text} | {s['license']} | {s['split']} |")
    lines += [
        "",
        "## Held out (never seen in pretraining)",
        "",
        "- Real: `asterisk-prompt-es-co` (Colombian Spanish, GSM codec), `asterisk-prompt-fr-armelle` "
        "(French, GSM codec) and the asterisk voice `it_IT_f_Menardi`: new speakers, and two of them a new codec.",
        f"- Synthetic: espeak-ng pt-BR with the variants {', '.join(HELD_OUT_SYNTH_VARIANTS)} (training uses "
        f"{', '.join(TRAIN_SYNTH_VARIANTS)}).",
        "",
        "## How it was made",
        "",
        "- Real audio: decoded with `biomarker.audio.load` (libsndfile, sox for raw GSM), mixed to mono, "
        f"resampled to 16 kHz; asterisk `silence/` files excluded; {len(summary.get('skipped_files', []))} "
        "empty files or clicks under 0.1 s skipped (listed in `summary.json`).",
        "- Synthetic audio: espeak-ng 1.51, sentences from Debian fortune packages (fortunes-br, -es, -it, -de, "
        "-ru, -cs, -min; the packages' offensive sections excluded), random rate 120–190 wpm and pitch 25–75; "
        f"{int(100 * PT_BR_SHARE)} % of synthetic time is pt-BR.",
        "- Packing: a speaker's consecutive utterances are joined with 0.2 s of silence into segments of about "
        "6 s, so random 4-s crops hold speech rather than padding. Segments never mix speakers.",
        "",
        "## What it is and is not",
        "",
        "- It is a few hours of mostly read IVR prompts, acted game dialogue, isolated letters/syllables/words "
        "and robotic formant-synthesis speech. About a third of the real audio is 8 kHz telephone band "
        "(nothing above 4 kHz).",
        "- It is **not** clinical speech, **not** conversational, and contains **no real Brazilian-Portuguese "
        "sentences**. The synthetic speech has no natural jitter, shimmer or breathiness. Encoders pretrained "
        "on it learn generic spectro-temporal structure of speech, nothing about respiratory insufficiency.",
        "- Do not use it to make claims about any speaker population; speaker counts are small (a few dozen "
        "real voices).",
        "",
        "## Licenses",
        "",
        "Asterisk core sounds: CC-BY-SA-3.0 (en, es, fr, it-Menardi) and CC-BY-3.0 (ru, it-Carlo); asterisk "
        "es-co and fr-armelle prompts: GPL; fillets-ng data: GPL-2; klettres and ktuberling data: GPL-2+; "
        "gcin-voice: GPL-3/LGPL-3 and CC-BY-3.0; fortune texts: GPL/BSD as listed. espeak-ng output is not bound "
        "by espeak-ng's GPL. Credit the Debian packages when redistributing derived audio.",
        "",
    ]
    return "\n".join(lines)


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
