"""The SYNTHETIC respiratory-insufficiency cohort: espeak-ng speakers reading sentences, patients with RI markers.

WHY synthetic: no clinical pt-BR recordings can be shipped or downloaded here; a cohort whose labels are known
by construction lets the whole pipeline (training, calibration, evaluation, app) be built and tested honestly.
Its numbers say nothing about real patients, and every artefact made from it is labelled SYNTHETIC.

Two disjoint sides exist so generalisation can be measured: the training side (pool `train`, and pool
`languages`, the same voices reading twelve further languages) and `heldout` (other variants, other sentences,
other languages: French and German, which no training pool has).
Each synthetic speaker reads `clips_per_speaker` different sentences; half of the speakers are patients with a
severity drawn uniformly from [MILD_SEVERITY, 1]. Ward noise from the bank is added to BOTH classes.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile
from scipy.signal import butter, resample_poly, sosfiltfilt

from biomarker.cohorts.espeak import SAMPLE_RATE_HZ, Voice, speak
from biomarker.cohorts.manifest import CohortItem, write_manifest
from biomarker.cohorts.markers import MILD_SEVERITY, MarkerProfile, MarkerStyle, Segmented, assemble, degrade_voice, draw_profile, draw_style
from biomarker.cohorts.noise import NoiseConfig, add_ward_noise, generate_noise_bank, load_noise_bank
from biomarker.cohorts.splits import SplitConfig, speaker_disjoint_split
from biomarker.records import CohortError

SENTENCES: dict[str, dict[str, tuple[str, ...]]] = {
    "train": {
        "pt-br": (
            "O amor ao próximo ajuda a enfrentar essa fase com a força que a gente precisa.",
            "O paciente relatou que tem dormido mal e sente cansaço durante o dia.",
            "Hoje de manhã eu caminhei até a padaria e comprei pão fresco.",
            "A minha família mora numa cidade pequena perto do litoral.",
            "Eu gosto de ouvir música quando estou cozinhando o jantar.",
            "O ônibus atrasou por causa da chuva forte na avenida principal.",
            "Minha irmã trabalha no hospital e chega tarde em casa.",
            "Vou ao mercado comprar frutas, arroz, feijão e um pouco de café.",
            "As crianças brincaram no parque até o sol se pôr.",
            "Preciso marcar uma consulta com o médico na próxima semana.",
            "O livro que eu estou lendo conta a história de um pescador.",
            "No fim de semana vamos visitar os meus avós no interior.",
        ),
        "es": (
            "Mañana por la mañana iremos al mercado a comprar verduras.",
            "Mi hermano trabaja en una oficina en el centro de la ciudad.",
        ),
        "it": ("Oggi il tempo è bello e andiamo a fare una passeggiata al parco.",),
        "en": ("The weather was lovely, so we walked along the river after lunch.",),
    },
    "heldout": {
        "pt-br": (
            "Batatinha quando nasce espalha a rama pelo chão.",
            "A professora explicou a lição com muita paciência para a turma.",
            "Ontem à noite choveu bastante e a rua ficou alagada.",
            "Meu vizinho plantou tomates e alfaces no quintal de casa.",
            "Depois do almoço eu sempre tomo um cafezinho com os colegas.",
        ),
        "fr": ("Nous avons pris le train pour rendre visite à nos cousins.",),
        "de": ("Am Wochenende fahren wir mit dem Fahrrad an den See.",),
    },
    # Breathing markers are the same in every language; a model that heard four training languages (pt-BR above
    # all) learnt part of them as pt-BR prosody and missed mild German patients of the held-out cohort. This pool
    # widens what training hears, with no French or German (the held-out languages stay unheard).
    "languages": {
        "nl": ("Gisteren zijn we met de hele familie naar het strand gegaan.",
               "Mijn buurman werkt in de bakkerij en begint al vroeg in de ochtend."),
        "sv": ("I morgon ska vi åka till landet och hälsa på min mormor.",
               "Min syster arbetar på ett sjukhus och kommer hem sent på kvällen."),
        "da": ("Om søndagen spiser vi altid frokost sammen med hele familien.",
               "Jeg cyklede til arbejde i morges, selvom det regnede meget."),
        "nb": ("Vi gikk en lang tur i skogen før vi spiste middag hjemme.",
               "Bussen var forsinket fordi det hadde snødd hele natten."),
        "ca": ("Aquest matí he anat al mercat a comprar fruita i verdura fresca.",
               "La meva germana treballa a l'hospital i arriba tard a casa."),
        "ro": ("Mâine dimineață mergem la piață să cumpărăm legume proaspete.",
               "Fratele meu lucrează într-un birou din centrul orașului."),
        "pl": ("Jutro rano pojedziemy na targ kupić świeże warzywa i owoce.",
               "Moja siostra pracuje w szpitalu i wraca późno do domu."),
        "cs": ("Včera večer jsme se dívali na film a potom šli spát.",
               "Můj bratr pracuje v kanceláři v centru města."),
        "hu": ("Holnap reggel elmegyünk a piacra friss zöldséget venni.",
               "A nővérem a kórházban dolgozik, és későn ér haza."),
        "fi": ("Huomenna aamulla menemme torille ostamaan tuoreita vihanneksia.",
               "Siskoni työskentelee sairaalassa ja tulee kotiin myöhään illalla."),
        "tr": ("Yarın sabah taze sebze almak için pazara gideceğiz.",
               "Kız kardeşim hastanede çalışıyor ve eve geç geliyor."),
        "id": ("Besok pagi kami akan pergi ke pasar untuk membeli sayuran segar.",
               "Kakak saya bekerja di rumah sakit dan pulang larut malam."),
    },
}

# Voice variants per pool: disjoint, so the generalisation cohort has voices training never heard.
VARIANTS: dict[str, tuple[str, ...]] = {
    "train": ("m1", "m2", "m3", "m4", "m5", "f1", "f2", "f3", "klatt", "Alex", "Andrea", "belinda", "max", "paul"),
    "heldout": ("m6", "m7", "f4", "f5", "klatt3", "Annie", "david", "iven2", "linda", "steph"),
}
VARIANTS["languages"] = VARIANTS["train"]
HELD_OUT_POOL = "heldout"
# More training voices, for cohorts that widen what training hears (`--variants extra`): every espeak-ng variant
# that is neither in a pool above, nor a sibling of a held-out voice (steph2/3, iven*, klatt2-6), nor a special
# effect (robots, whisper, croak). Alicia, sandro and victor are breathy and Mike has weak voicing, as the held-out
# f5 and Annie are: a naturally breathy healthy voice must not be mistaken for the breathy-voice marker.
EXTRA_TRAIN_VARIANTS: tuple[str, ...] = (
    "Alicia", "sandro", "victor", "Mike", "Andy", "Diogo", "Gene", "Henrique", "Hugo", "Jacky", "Lee", "Marco",
    "Mario", "Michael", "Nguyen", "adam", "anika", "antonio", "aunty", "benjamin", "boris", "edward", "gustave",
    "john", "kaukovalta", "m8", "marcelo", "michel", "miguel", "norbert", "pablo", "pedro", "quincy", "rob",
    "robert", "shelby", "travis", "zac", "grandma", "grandpa",
)
# Sex as each variant's espeak-ng voice file states it (`gender` line in espeak-ng-data/voices/!v/); a variant whose
# file states none is absent and its rows leave `sex` empty, so subgroup tables count them as unknown, not guessed.
VARIANT_SEX: dict[str, str] = {
    **{f"m{k}": "M" for k in range(1, 9)}, **{f"f{k}": "F" for k in range(1, 6)},
    "Andrea": "F", "belinda": "F", "Annie": "F", "linda": "F", "steph": "F", "Alicia": "F", "anika": "F",
    "aunty": "F", "grandma": "F", "sandro": "M", "victor": "M", "Andy": "M", "Diogo": "M", "Henrique": "M",
    "Hugo": "M", "Lee": "M", "Marco": "M", "antonio": "M", "michel": "M", "miguel": "M", "travis": "M",
}
LANGUAGE_WEIGHTS = {"pt-br": 0.75}  # the rest is shared equally by the pool's other languages
# Recording channels: "wideband" keeps the 16 kHz clip; "telephone" passes it through an 8 kHz narrowband phone
# line (300-3400 Hz), as cohorts recorded over the phone are, then back to 16 kHz so every model reads one rate.
CHANNELS = ("wideband", "telephone")
TELEPHONE_BAND_HZ = (300.0, 3400.0)


@dataclass(frozen=True)
class SynthConfig:
    """What to synthesize. `n` is the number of clips; speakers = ceil(n / clips_per_speaker)."""

    n: int = 400
    seed: int = 0
    pool: str = "train"
    clips_per_speaker: int = 2
    patient_fraction: float = 0.5
    noise: NoiseConfig = NoiseConfig()
    noisy_copy: bool = True  # also write a noise-injected copy of every clip (clean and noisy are reported apart)
    split: SplitConfig = SplitConfig()
    languages: tuple[str, ...] = ()  # only these languages of the pool (empty: all, pt-br weighted 0.75)
    channel: str = "wideband"  # one of CHANNELS; applied to clean and noisy clips alike
    cohort: str | None = None  # cohort name in the manifest (default: synthetic-<pool>)
    variants: tuple[str, ...] = ()  # voice variants to draw from (empty: the pool's own); never another pool's
    randomise_markers: bool = False  # each clip realises every marker family its own way (markers.draw_style)

    def voice_variants(self) -> tuple[str, ...]:
        return self.variants or VARIANTS[self.pool]

    def validate(self) -> None:
        if self.pool not in SENTENCES:
            raise CohortError(f"pool must be one of {sorted(SENTENCES)}, got {self.pool!r}")
        unknown = [lang for lang in self.languages if lang not in SENTENCES[self.pool]]
        if unknown:
            raise CohortError(f"languages {unknown} are not in pool {self.pool!r} (it has {sorted(SENTENCES[self.pool])})")
        foreign = sorted(_other_side_variants(self.pool) & set(self.variants))
        if foreign:
            raise CohortError(f"variants {foreign} belong to another pool's voices; using them in pool {self.pool!r} "
                              "would let training hear the voices the generalisation cohort must keep unheard")
        if self.channel not in CHANNELS:
            raise CohortError(f"channel must be one of {CHANNELS}, got {self.channel!r}")
        if self.n < 2:
            raise CohortError(f"n must be at least 2 clips, got {self.n}")
        if not 0 < self.patient_fraction < 1:
            raise CohortError(f"patient_fraction must lie in (0, 1), got {self.patient_fraction}")


@dataclass(frozen=True)
class Speaker:
    speaker_id: str
    voice: Voice
    label: int
    severity: float


def _other_side_variants(pool: str) -> set[str]:
    """The voices a pool must never draw: the held-out pool's for a training pool, every training voice for it."""
    held_out = pool == HELD_OUT_POOL
    return {v for other, own in VARIANTS.items() if (other == HELD_OUT_POOL) != held_out for v in own} | (
        set(EXTRA_TRAIN_VARIANTS) if held_out else set())


def _pick_language(pool: str, rng: np.random.Generator, allowed: Sequence[str] = ()) -> str:
    languages = list(allowed or SENTENCES[pool])
    others = [lang for lang in languages if lang not in LANGUAGE_WEIGHTS]
    weights = [LANGUAGE_WEIGHTS.get(lang, (1 - sum(LANGUAGE_WEIGHTS.values())) / max(len(others), 1)) for lang in languages]
    return str(rng.choice(languages, p=np.array(weights) / sum(weights)))


def make_speakers(config: SynthConfig, rng: np.random.Generator) -> list[Speaker]:
    """Distinct synthetic people: voice variant, pitch and resting rate vary; labels fixed per speaker."""
    count = -(-config.n // config.clips_per_speaker)
    patients = int(round(count * config.patient_fraction))
    labels = rng.permutation([1] * patients + [0] * (count - patients))
    speakers = []
    for index, label in enumerate(labels):
        voice = Voice(
            language=_pick_language(config.pool, rng, config.languages),
            variant=str(rng.choice(config.voice_variants())),
            pitch=int(rng.integers(25, 75)),
            rate_wpm=int(rng.integers(140, 185)),
        )
        severity = float(rng.uniform(MILD_SEVERITY, 1.0)) if label else 0.0
        speakers.append(Speaker(f"{config.pool}-s{config.seed}-{index:04d}", voice, int(label), severity))
    return speakers


def breath_groups(sentence: str, profile: MarkerProfile, rng: np.random.Generator) -> tuple[list[str], list[bool]]:
    """Split a sentence into chunks to synthesize separately, and say which junctions are breath pauses.

    Everyone breathes when a breath group of `profile.words_per_breath` words (about 9 at rest, 3 when severe)
    is used up, wherever grammar falls: mid-phrase inspiratory pauses in patients, the odd one in controls.
    Punctuation is a junction too, a breath pause half of the time.
    """
    words = sentence.split()
    chunks, breath_at, current = [], [], []
    group = max(2, int(round(profile.words_per_breath)))
    for index, word in enumerate(words):
        current.append(word)
        last = index == len(words) - 1
        at_punctuation = bool(re.search(r"[,;:]$", word))
        out_of_breath = len(current) >= group
        if not last and (out_of_breath or at_punctuation):
            chunks.append(" ".join(current))
            breath_at.append(out_of_breath or bool(rng.random() < 0.5))
            current = []
    chunks.append(" ".join(current))
    return chunks, breath_at


def synthesize_clip(sentence: str, speaker: Speaker, rng: np.random.Generator, *, randomise_markers: bool = False) -> np.ndarray:
    """One clean clip: breath groups synthesized at the speaker's (slower if ill) rate, assembled, voice degraded."""
    style = draw_style(rng) if randomise_markers else MarkerStyle()  # no draw for the fixed style: cohorts rebuild as before
    profile = draw_profile(speaker.severity, rng)
    chunks, breath_at = breath_groups(sentence, profile, rng)
    rate = int(speaker.voice.rate_wpm / profile.slowing)
    segments = [speak(chunk, speaker.voice, rate_wpm=rate) for chunk in chunks]
    gaps = [float(rng.uniform(0.05, 0.2)) for _ in breath_at]
    clip = degrade_voice(assemble(Segmented(segments, gaps), breath_at, profile, rng, style), profile, rng, style)
    gain = rng.uniform(0.25, 0.9) / (np.max(np.abs(clip)) + 1e-9)  # recording level varies for both classes
    return (clip * gain).astype(np.float32)


def apply_channel(samples: np.ndarray, channel: str) -> np.ndarray:
    """The recording channel: unchanged for "wideband"; for "telephone", down to 8 kHz, the 300-3400 Hz phone
    band, and back up to 16 kHz (the information above 4 kHz is gone, as on a real call)."""
    if channel == "wideband":
        return samples
    narrow = resample_poly(samples, 1, 2)
    sos = butter(4, TELEPHONE_BAND_HZ, btype="bandpass", fs=SAMPLE_RATE_HZ // 2, output="sos")
    return np.clip(resample_poly(sosfiltfilt(sos, narrow), 2, 1)[: len(samples)], -1.0, 1.0).astype(np.float32)


def synthesize_cohort(out_dir: str | Path, config: SynthConfig = SynthConfig(), noise_bank: str | Path | None = None) -> list[CohortItem]:
    """Write clips (clean and, if asked, ward-noise copies), `manifest.csv` and `synth_config.json`.

    The noise bank is generated under `out_dir/noise_bank` unless an existing one is given; the noisy copy of a
    clip keeps the clip's speaker and split, in cohort `<name>-noisy`, so clean and noisy are reported apart.
    """
    config.validate()
    out_dir = Path(out_dir)
    (out_dir / "clean").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    if noise_bank is None:
        noise_bank = out_dir / "noise_bank"
        generate_noise_bank(noise_bank, seed=config.seed + 10_000)
    bank = load_noise_bank(noise_bank)
    speakers = make_speakers(config, rng)
    cohort = config.cohort or f"synthetic-{config.pool}"
    items: list[CohortItem] = []
    for index in range(config.n):
        speaker = speakers[index // config.clips_per_speaker]
        sentences = SENTENCES[config.pool][speaker.voice.language]
        sentence_id = (index + int(rng.integers(len(sentences)))) % len(sentences)
        clip = apply_channel(synthesize_clip(sentences[sentence_id], speaker, rng, randomise_markers=config.randomise_markers),
                             config.channel)
        path = out_dir / "clean" / f"{index:05d}.wav"
        soundfile.write(path, clip, SAMPLE_RATE_HZ, subtype="PCM_16")
        extras = {
            "severity": f"{speaker.severity:.3f}",
            "voice": speaker.voice.name,
            "pitch": str(speaker.voice.pitch),
            "language": speaker.voice.language,
            "sentence_id": f"{config.pool}-{speaker.voice.language}-{sentence_id}",
            "synthetic": "yes",
        }
        items.append(CohortItem(path, speaker.label, speaker.speaker_id, cohort,
                                sex=VARIANT_SEX.get(speaker.voice.variant), extras=extras))
    items = speaker_disjoint_split(items, config.split)
    if config.noisy_copy:
        (out_dir / "noisy").mkdir(exist_ok=True)
        noisy = []
        for item in items:
            samples, _ = soundfile.read(item.path, dtype="float32")
            path = out_dir / "noisy" / item.path.name
            noisy_clip = apply_channel(add_ward_noise(samples, bank, rng, config.noise), config.channel)
            soundfile.write(path, noisy_clip, SAMPLE_RATE_HZ, subtype="PCM_16")
            noisy.append(CohortItem(path, item.label, item.speaker_id, f"{cohort}-noisy", sex=item.sex, split=item.split, extras=item.extras))
        items = items + noisy
    write_manifest(items, out_dir / "manifest.csv")
    (out_dir / "synth_config.json").write_text(_config_json(config))
    return items


def _config_json(config: SynthConfig) -> str:
    return json.dumps({"synthetic": True, **asdict(config)}, indent=2, default=str)


def summarise(items: Sequence[CohortItem]) -> dict[str, object]:
    """Counts for the datasheet: clips, speakers, patients, clean/noisy, per split, duration range."""
    durations = [soundfile.info(item.path).duration for item in items]
    by_split: dict[str, dict[str, int]] = {}
    for item in items:
        counts = by_split.setdefault(item.split or "none", {"clips": 0, "patients": 0})
        counts["clips"] += 1
        counts["patients"] += item.label
    return {
        "clips": len(items),
        "speakers": len({item.speaker_id for item in items}),
        "patient_clips": sum(item.label for item in items),
        "cohorts": sorted({item.cohort for item in items}),
        "by_split": by_split,
        "duration_s": {"min": round(min(durations), 2), "median": round(float(np.median(durations)), 2), "max": round(max(durations), 2)},
        "voices": sorted({item.extras.get("voice", "") for item in items}),
    }
