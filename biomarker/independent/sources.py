"""Real speech that no training, model-selection or pretraining path uses, gathered into 3.5-7 s clips.

Which sources: every real-speech source of shared/research/data-sources.md that none of the project's training
manifests (`biomarker.cohorts.real.TRAIN_VOICES`), its pretraining corpus (`biomarker.pretrain.corpus.REAL_SOURCES`, those
not held out) or its model-selection sets draws on. tests/test_independent_eval.py checks the disjointness.
Left out, and why: the PyPI samples (pyannote `sample.wav`, whisper.cpp `jfk.wav`: a whole wheel or sdist for
30 s and 11 s), `klettres-data` pt_BR (letters and syllables, and klettres is in the pretraining corpus), and
`ktuberling`/`gcin-voice`/`fillets-ng` (pretraining corpus).
Sex is recorded only where the package says it (the asterisk voices' names, codec2's m/f reference files).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biomarker.audio import load
from biomarker.independent.analysis import active_rms
from biomarker.independent.inhalation import coloured_noise
from biomarker.records import AudioError, CohortError

ASTERISK = "usr/share/asterisk/sounds"
CODEC2 = "usr/share/codec2"
NOT_SPEECH = r"beep|tone|silence|/silence/"


@dataclass(frozen=True)
class HeldOutSource:
    """One held-out voice: files under `folder` (relative to the extraction root, or absolute) matching `patterns`.

    `mode` 'prompts' joins several short files into a clip; 'window' cuts a clip out of one long file.
    `rate_hz` is the recording's own rate: clips are written at it, so an 8 kHz voice never gains a high band
    from the markers (that band would be a cue only patients carry)."""

    name: str
    package: str
    folder: str
    patterns: tuple[str, ...]
    language: str
    sex: str | None
    license: str
    rate_hz: int
    clips: int
    mode: str = "prompts"
    codec: str = "pcm"
    exclude: str = NOT_SPEECH

    def files(self, root: str | Path) -> list[Path]:
        base = Path(self.folder) if Path(self.folder).is_absolute() else Path(root) / self.folder
        found = sorted({p for pattern in self.patterns for p in base.glob(pattern) if p.is_file()})
        return [p for p in found if not re.search(self.exclude, p.as_posix())]


def _codec2(stem: str, sex: str | None, clips: int = 2, rate_hz: int = 8000, suffix: str = "raw") -> HeldOutSource:
    folder = f"{CODEC2}/{'raw' if suffix == 'raw' else 'wav'}"
    return HeldOutSource(f"codec2-{stem}", "codec2-examples", folder, (f"{stem}.{suffix}",), "en", sex, "LGPL-2.1",
                         rate_hz, clips, mode="window")


HELD_OUT_SOURCES: tuple[HeldOutSource, ...] = (
    HeldOutSource("asterisk-es-co", "asterisk-prompt-es-co", f"{ASTERISK}/es", ("**/*.gsm",), "es-CO", "F", "GPL-2",
                  8000, 28, codec="gsm"),
    HeldOutSource("asterisk-fr-armelle", "asterisk-prompt-fr-armelle", f"{ASTERISK}/fr", ("**/*.gsm",), "fr-FR", "F",
                  "GPL", 8000, 28, codec="gsm"),
    HeldOutSource("asterisk-it-menardi", "asterisk-prompt-it-menardi-wav", f"{ASTERISK}/it_IT_f_Menardi", ("**/*.wav",),
                  "it-IT", "F", "CC-BY-SA-3.0", 8000, 28),
    HeldOutSource("pocketsphinx-librivox", "pocketsphinx-testdata", "/usr/share/pocketsphinx/test/data/librivox",
                  ("*.wav",), "en", None, "public domain (LibriVox)", 16000, 8),
    HeldOutSource("pocketsphinx-cards", "pocketsphinx-testdata", "/usr/share/pocketsphinx/test/data/cards",
                  ("*.wav",), "en", None, "BSD-2 (CMU)", 16000, 8),
    HeldOutSource("alsa-voice", "alsa-utils", "usr/share/sounds/alsa", ("*.wav",), "en", None, "GPL-2", 16000, 8,
                  exclude=r"Noise"),
    # codec2's speech references (not its modem/sine test signals); hts1/hts2 and morig/forig are male/female pairs
    _codec2("hts1", "M"), _codec2("hts2", "F"), _codec2("kristoff", None), _codec2("cq_ref", None),
    _codec2("g3plx", None), _codec2("david4", None, suffix="wav"), _codec2("vk2tpm_004", None, suffix="wav"),
    _codec2("vk5qi", None, suffix="wav"), _codec2("ve9qrp", None, suffix="wav"), _codec2("mmt1", None, suffix="wav"),
)


def find_sources(root: str | Path, sources: tuple[HeldOutSource, ...] = HELD_OUT_SOURCES) -> dict[str, list[Path]]:
    """Files of every source; a missing source is an error naming its package (never skipped silently)."""
    found, missing = {}, []
    for source in sources:
        files = source.files(root)
        if files:
            found[source.name] = files
        else:
            missing.append(f"{source.name} (package {source.package}, {source.folder}/{'|'.join(source.patterns)})")
    if missing:
        raise CohortError(f"held-out real sources not found under {root}: {'; '.join(missing)}. Install them with "
                          "`apt-get download PKG && dpkg-deb -x PKG_*.deb ROOT` (see data_cards/independent-real.md)")
    return found


def read_speech(path: Path, rate_hz: int) -> np.ndarray:
    """Samples of one file at `rate_hz`; codec2's headerless `.raw` files are 16-bit little-endian at 8 kHz."""
    if path.suffix == ".raw":
        raw = np.fromfile(path, dtype="<i2").astype(np.float32) / 32768.0
        if rate_hz != 8000:
            raise CohortError(f"{path}: headerless raw speech is read at 8 kHz only, not {rate_hz} Hz")
        return raw
    return load(path, rate_hz).samples


def trim(samples: np.ndarray, rate_hz: int, within_db: float = 40.0) -> np.ndarray:
    """Cut leading and trailing 10 ms frames more than `within_db` below the loudest frame."""
    frame = rate_hz // 100
    count = len(samples) // frame
    if count < 3:
        return samples
    power = np.mean(samples[: count * frame].reshape(count, frame).astype(float) ** 2, axis=1)
    loud = np.flatnonzero(power > power.max() * 10 ** (-within_db / 10))
    return samples[loud[0] * frame : (loud[-1] + 1) * frame]


class ClipGatherer:
    """Draws clips of one source, using every file before any file is used again."""

    def __init__(self, source: HeldOutSource, files: list[Path], rng: np.random.Generator, min_s: float, max_s: float):
        self.source, self.files, self.rng, self.min_s, self.max_s = source, files, rng, min_s, max_s
        self.queue: list[Path] = []
        self.cache: dict[Path, np.ndarray] = {}

    def _next(self) -> np.ndarray | None:
        if not self.queue:
            self.queue = [self.files[k] for k in self.rng.permutation(len(self.files))]
        path = self.queue.pop()
        if path not in self.cache:
            try:
                self.cache[path] = trim(read_speech(path, self.source.rate_hz), self.source.rate_hz)
            except AudioError:
                self.cache[path] = np.zeros(0, np.float32)  # an undecodable prompt in a system package: skipped
        return self.cache[path]

    def clip(self) -> np.ndarray:
        rate = self.source.rate_hz
        if self.source.mode == "window":
            whole = self._next()
            length = int(self.rng.uniform(self.min_s, self.max_s) * rate)
            if len(whole) <= length:
                return whole
            start = int(self.rng.integers(0, len(whole) - length))
            return trim(whole[start : start + length], rate)
        pieces, total = [], 0
        for _ in range(400):
            if total >= self.min_s * rate:
                break
            prompt = self._next()
            if len(prompt) < 0.15 * rate:
                continue
            if pieces:  # a pause between prompts, at a faint room-tone level (never digital silence)
                gap = coloured_noise(self.rng, int(self.rng.uniform(0.25, 0.6) * rate), 1.0) * 1e-3 * active_rms(prompt)
                pieces.append(gap.astype(np.float32))
                total += len(gap)
            pieces.append(prompt)
            total += len(prompt)
        if total < self.min_s * rate:
            raise CohortError(f"{self.source.name}: could not gather {self.min_s} s of speech from {len(self.files)} files")
        return np.concatenate(pieces)[: int(self.max_s * rate)]
