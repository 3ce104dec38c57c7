"""Held-out espeak-ng speakers: voice variants, languages and sentences that no training generator, pretraining
corpus or model-selection cohort uses (tests/test_independent_eval.py checks each list against them).

Voices: espeak-ng variants outside the training pools, the 40 extra training voices, the generator's own
held-out pool and the pretraining variants (`biomarker.cohorts.synth`, `biomarker.pretrain.corpus`). Sex is recorded where
the variant file states a gender. Languages: Brazilian Portuguese (the target language) with new sentences, and
five languages no pool has: European Portuguese, Greek, Slovak, Croatian and Bulgarian.
"""

from __future__ import annotations

import io
import subprocess
import shutil
from dataclasses import dataclass

import numpy as np
import soundfile

from biomarker.independent.analysis import SAMPLE_RATE_HZ
from biomarker.independent.soxio import sox_float
from biomarker.records import CohortError

# variant -> sex stated by its voice file (None where the file states none)
HELD_OUT_VARIANTS: dict[str, str | None] = {
    "Denis": "M", "Storm": "M", "steph2": "F", "steph3": "F", "ed": None, "Gene2": None, "iven3": None,
    "iven4": None, "edward2": None, "klatt2": None, "klatt4": None, "klatt6": None,
}
LANGUAGE_SHARES: dict[str, float] = {"pt-br": 0.5, "pt": 0.1, "el": 0.1, "sk": 0.1, "hr": 0.1, "bg": 0.1}
SENTENCES: dict[str, tuple[str, ...]] = {
    "pt-br": (
        "Quando o dia amanhece, os pássaros cantam na janela do meu quarto.",
        "Minha avó fazia bolo de fubá todo domingo à tarde.",
        "O motorista parou o carro para ajudar uma senhora a atravessar a rua.",
        "Depois da reunião, fomos todos almoçar num restaurante simples perto do trabalho.",
        "A farmácia da esquina fecha às dez horas da noite.",
        "Meu filho aprendeu a andar de bicicleta nas férias de julho.",
        "Choveu tanto na semana passada que o rio transbordou.",
        "Eu sempre leio o jornal enquanto espero o trem chegar.",
        "O médico pediu que eu fizesse uma caminhada leve todas as manhãs.",
        "Nós plantamos flores amarelas no jardim da escola.",
        "A vizinha trouxe uma sopa quente quando eu estava gripado.",
        "O time do bairro ganhou o campeonato depois de muitos anos.",
    ),
    "pt": (
        "O comboio para Lisboa partiu com vinte minutos de atraso.",
        "A minha tia vive numa aldeia no norte, perto da serra.",
        "Ao fim da tarde gosto de passear à beira do rio.",
    ),
    "el": (
        "Σήμερα το πρωί πήγα στη λαϊκή αγορά να αγοράσω φρούτα.",
        "Η γιαγιά μου μένει σε ένα μικρό χωριό κοντά στη θάλασσα.",
    ),
    "sk": (
        "Včera večer sme išli na prechádzku do parku pri rieke.",
        "Moja mama pracuje v lekárni v centre mesta.",
    ),
    "hr": (
        "Moj brat svake subote igra nogomet s prijateljima.",
        "Ljeti često putujemo na more s cijelom obitelji.",
    ),
    "bg": (
        "Всяка сутрин пия чаша кафе преди да тръгна на работа.",
        "Децата играят в двора до късно вечерта.",
    ),
}


@dataclass(frozen=True)
class HeldOutSpeaker:
    """One synthetic speaker of the independent set: variant, language, sentence and prosody knobs."""

    variant: str
    language: str
    sentence: str
    pitch: int
    rate_wpm: int

    @property
    def sex(self) -> str | None:
        return HELD_OUT_VARIANTS[self.variant]


def draw_speaker(rng: np.random.Generator) -> HeldOutSpeaker:
    languages = list(LANGUAGE_SHARES)
    language = languages[int(rng.choice(len(languages), p=np.array(list(LANGUAGE_SHARES.values()))))]
    variants = list(HELD_OUT_VARIANTS)
    sentences = SENTENCES[language]
    return HeldOutSpeaker(variants[int(rng.integers(len(variants)))], language, sentences[int(rng.integers(len(sentences)))],
                          int(rng.integers(30, 71)), int(rng.integers(135, 186)))


def synthesize(speaker: HeldOutSpeaker) -> np.ndarray:
    """The speaker reading its sentence: espeak-ng at its native rate, resampled to 16 kHz by sox."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise CohortError("espeak-ng is not installed; run `apt-get install -y espeak-ng`")
    command = [espeak, "-v", f"{speaker.language}+{speaker.variant}", "-p", str(speaker.pitch), "-s", str(speaker.rate_wpm),
               "--stdout", speaker.sentence]
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0 or not result.stdout:
        raise CohortError(f"espeak-ng failed for {speaker.language}+{speaker.variant} on {speaker.sentence!r}: {result.stderr.decode()[:200]}")
    samples, rate = soundfile.read(io.BytesIO(result.stdout), dtype="float32")
    return sox_float(samples, [], in_rate_hz=int(rate), out_rate_hz=SAMPLE_RATE_HZ) if rate != SAMPLE_RATE_HZ else samples
