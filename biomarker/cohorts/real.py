"""Real recorded speech (Debian packages, see shared/research/data-sources.md) as cohort clips.

WHY: patients have real voices, not espeak-ng's. A screener trained only on a formant synthesizer may flag any
natural voice. Real speech is used two ways:
- training: clips of TRAINING voices, half left healthy, half with the RI markers applied (the same marker code
  as the synthetic cohort), all passed through the same processing so processing itself is not a cue, plus
  unprocessed healthy clips;
- held-out check: clips of voices never trained on, unprocessed and marked healthy (how often is healthy real
  speech flagged?) and, separately, with markers applied (is the marker still detected on a real voice?).
The markers are synthetic even on real voices: every number from these clips is labelled SYNTHETIC MARKERS.
A clip concatenates 3-6 s of one voice's prompts with natural gaps; each clip is its own subject.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile

from biomarker.audio import load
from biomarker.cohorts.espeak import trim_silence
from biomarker.cohorts.manifest import CohortItem, write_manifest
from biomarker.cohorts.markers import MILD_SEVERITY, SAMPLE_RATE_HZ, mark_real_speech
from biomarker.cohorts.noise import add_ward_noise
from biomarker.records import AudioError, CohortError

# Voice name -> (folder under the extraction root, glob). Training and held-out voices never overlap.
TRAIN_VOICES = {
    "asterisk-en-allison": ("usr/share/asterisk/sounds/en_US_f_Allison", "**/*.wav"),
    "fillets-cs-m": ("usr/share/games/fillets-ng/sound", "**/cs/*-m-*.ogg"),
    "fillets-cs-v": ("usr/share/games/fillets-ng/sound", "**/cs/*-v-*.ogg"),
    "klettres-de": ("usr/share/klettres/de", "**/*.ogg"),
    "klettres-it": ("usr/share/klettres/it", "**/*.ogg"),
    "klettres-nl": ("usr/share/klettres/nl", "**/*.ogg"),
    "klettres-ru": ("usr/share/klettres/ru", "**/*.ogg"),
}
# Real voices of the pretraining corpus (`biomarker.pretrain.corpus_sources.REAL_SOURCES`, not held out) that no
# fine-tuning manifest used until issue 22's more-real-voices experiment: every healthy real voice that
# ri-screener-ssamba@3 refers on the independent set comes from an 8 kHz source, and its training saw one real
# 8 kHz voice. EXTRA_TRAIN_VOICES train; VALIDATION_VOICES are speakers no training set holds, so validation
# (early stopping, calibration, the threshold) sees real voices the model never trained on, as a ward would.
# Both are disjoint from TRAIN_VOICES, from each other and from every independent set (tests/test_independent_eval.py).
EXTRA_TRAIN_VOICES = {
    "asterisk-es-mx-allison": ("usr/share/asterisk/sounds/es_MX_f_Allison", "**/*.wav"),
    "asterisk-ru-ivrvoice": ("usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU", "**/*.wav"),
    "fillets-nl-m": ("usr/share/games/fillets-ng/sound", "**/nl/*-m-*.ogg"),
}
VALIDATION_VOICES = {
    "asterisk-fr-ca-june": ("usr/share/asterisk/sounds/fr_CA_f_June", "**/*.wav"),
    "asterisk-it-carlo": ("usr/share/asterisk/sounds/it_IT_m_Carlo", "**/*.wav"),
    "fillets-nl-v": ("usr/share/games/fillets-ng/sound", "**/nl/*-v-*.ogg"),
}
HELDOUT_VOICES = {
    "asterisk-es-co": ("usr/share/asterisk/sounds/es", "*.gsm"),
    "asterisk-fr-armelle": ("usr/share/asterisk/sounds/fr", "*.gsm"),
    "klettres-pt_BR": ("usr/share/klettres/pt_BR", "**/*.ogg"),
    "pocketsphinx-en": ("/usr/share/pocketsphinx/test/data", "*/*.wav"),
}
# what `biomarker cohort real --voices` names
VOICE_SETS = {"train": TRAIN_VOICES, "extra-train": EXTRA_TRAIN_VOICES, "validation": VALIDATION_VOICES,
              "heldout": HELDOUT_VOICES}


@dataclass(frozen=True)
class RealCohortConfig:
    """`marked_fraction` of clips get RI markers (severity U[MILD_SEVERITY, 1]); `processed_controls` says whether
    healthy clips go through the marker pipeline at severity 0 (training) or stay raw (held-out check)."""

    clips_per_voice: int = 30
    marked_fraction: float = 0.5
    processed_controls: bool = True
    min_clip_s: float = 3.0
    max_clip_s: float = 6.0
    noisy_fraction: float = 0.5  # share of clips (either class) that get SPIRA ward noise
    seed: int = 0
    randomise_markers: bool = False  # each clip realises every marker family its own way (markers.draw_style)


def find_voices(root: str | Path, voices: dict[str, tuple[str, str]]) -> dict[str, list[Path]]:
    """Files of every voice present under `root` (absolute folders are used as they are); absent voices are
    reported, not skipped silently."""
    found, missing = {}, []
    for name, (folder, pattern) in voices.items():
        base = Path(folder) if Path(folder).is_absolute() else Path(root) / folder
        files = sorted(base.glob(pattern)) if base.is_dir() else []
        if files:
            found[name] = files
        else:
            missing.append(f"{name} ({base / pattern})")
    if missing:
        raise CohortError(f"real-speech voices not found under {root}: {', '.join(missing)}; install them per data-sources.md")
    return found


def _load(path: Path) -> np.ndarray:
    return trim_silence(load(path, SAMPLE_RATE_HZ).samples, floor=0.01)


def concatenate_prompts(files: Sequence[Path], rng: np.random.Generator, min_s: float, max_s: float) -> np.ndarray:
    """Random prompts of one voice joined by natural 0.15-0.4 s gaps until at least `min_s` (cut at `max_s`)."""
    pieces: list[np.ndarray] = []
    total = 0
    for attempt in range(200):
        if total >= min_s * SAMPLE_RATE_HZ:
            break
        try:
            prompt = _load(files[int(rng.integers(len(files)))])
        except AudioError:
            continue  # an undecodable prompt in a system package; another one is drawn
        if len(prompt) < 0.1 * SAMPLE_RATE_HZ:
            continue
        gap = np.zeros(int(rng.uniform(0.15, 0.4) * SAMPLE_RATE_HZ), dtype=np.float32)
        pieces += [prompt, gap]
        total += len(prompt) + len(gap)
    if total < min_s * SAMPLE_RATE_HZ:
        raise CohortError(f"could not gather {min_s} s of speech from {len(files)} files starting {files[0]}")
    return np.concatenate(pieces)[: int(max_s * SAMPLE_RATE_HZ)]


def build_real_cohort(
    voices: dict[str, list[Path]],
    out_dir: str | Path,
    cohort: str,
    config: RealCohortConfig = RealCohortConfig(),
    *,
    split: str | None = None,
    noise_bank: Sequence[np.ndarray] = (),
) -> list[CohortItem]:
    """Write clips and `manifest.csv`; labels: 1 = RI markers applied (synthetic markers on real speech).

    With a `noise_bank`, a `noisy_fraction` of clips of both classes get SPIRA ward noise (recorded in extras)."""
    out_dir = Path(out_dir)
    (out_dir / "clips").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    items = []
    for voice, files in voices.items():
        for index in range(config.clips_per_voice):
            clip = concatenate_prompts(files, rng, config.min_clip_s, config.max_clip_s)
            marked = rng.random() < config.marked_fraction
            severity = float(rng.uniform(MILD_SEVERITY, 1.0)) if marked else 0.0
            if marked or config.processed_controls:
                clip = mark_real_speech(clip, severity, rng, randomise_style=config.randomise_markers)
            clip = clip * rng.uniform(0.25, 0.9) / (np.max(np.abs(clip)) + 1e-9)
            noisy = bool(noise_bank) and rng.random() < config.noisy_fraction
            if noisy:
                clip = add_ward_noise(clip, noise_bank, rng)
            path = out_dir / "clips" / f"{voice}-{index:03d}.wav"
            soundfile.write(path, clip.astype(np.float32), SAMPLE_RATE_HZ, subtype="PCM_16")
            extras = {"voice": voice, "severity": f"{severity:.3f}", "real_speech": "yes", "synthetic_markers": "yes" if marked else "no", "ward_noise": "yes" if noisy else "no"}
            items.append(CohortItem(path, int(marked), f"{voice}-{index:03d}", cohort, split=split, extras=extras))
    write_manifest(items, out_dir / "manifest.csv")
    return items
