"""The data card (datasheet) of an independent evaluation set, written from its config and summary, with the
marker table generated from `strengths.KNOBS`, so the card cannot drift from the code."""

from __future__ import annotations

from biomarker.independent.build import IndependentSetConfig
from biomarker.independent.sources import HELD_OUT_SOURCES
from biomarker.independent.strengths import KNOBS, SEVERITY_BANDS
from biomarker.independent.voices import HELD_OUT_VARIANTS, LANGUAGE_SHARES, SENTENCES

REFERENCES = (
    "Asiaee M. et al. (2020). Voice quality evaluation in patients with COVID-19: an acoustic analysis. J Voice.",
    "Brown J. R., Simonson J. (1963). Organic voice tremor. Neurology 13.",
    "Campione E., Véronis J. (2002). A large-scale multilingual study of silent pause duration. Speech Prosody.",
    "de Jong N. H., Wempe T. (2009). Praat script to detect syllable nuclei and measure speech rate automatically. Behav Res Methods 41.",
    "Fernandes-Svartman F. et al. (2022). Temporal prosodic cues for COVID-19 in Brazilian Portuguese speakers. Speech Prosody (SPIRA).",
    "Hillenbrand J., Cleveland R. A., Erickson R. L. (1994). Acoustic correlates of breathy vocal quality. JSHR 37.",
    "Hixon T. J., Goldman M. D., Mead J. (1973). Kinematics of the chest wall during speech production. JSHR 16.",
    "Hoit J. D., Hixon T. J. (1987). Age and speech breathing. JSHR 30.",
    "IEC 60601-1-8: alarm systems in medical electrical equipment (alarm signal patterns).",
    "Klatt D. H., Klatt L. C. (1990). Analysis, synthesis, and perception of voice quality variations among female and male talkers. JASA 87.",
    "Lee L., Loudon R. G., Jacobson B. H., Stuebing R. (1993). Speech breathing in patients with lung disease. Am Rev Respir Dis 147.",
    "Lester R. A., Story B. H. (2013). Acoustic characteristics of simulated respiratory-induced vocal tremor. Am J Speech Lang Pathol 22.",
    "Mohamed E. E., El Maghraby R. A. (2014). Voice changes in patients with chronic obstructive pulmonary disease. Egypt J Chest Dis Tuberc 63.",
    "Nakano T., Ogata J., Goto M. (2008). Analysis and automatic detection of breath sounds in unaccompanied singing voice. ICMPC.",
    "Ruinskiy D., Lavner Y. (2007). An effective algorithm for automatic detection and exact demarcation of breath sounds in speech and song signals. IEEE TASLP 15.",
    "Teixeira J. P., Fernandes P. O. (2013). Jitter, shimmer and HNR classification within gender, tones and vowels in healthy voices. Procedia Technology 16.",
    "Verhelst W., Roelands M. (1993). An overlap-add technique based on waveform similarity (WSOLA). ICASSP.",
)


def marker_table() -> str:
    rows = ["| family | parameter | natural range (both classes) | + severity x | bounds | unit | follows |",
            "|---|---|---|---|---|---|---|"]
    for k in KNOBS:
        effect = "none" if k.effect == (0.0, 0.0) else f"U[{k.effect[0]:g}, {k.effect[1]:g}]"
        rows.append(f"| {k.family} | `{k.name}` | U[{k.natural[0]:g}, {k.natural[1]:g}] | {effect} | "
                    f"[{k.bounds[0]:g}, {k.bounds[1]:g}] | {k.unit} | {k.source} |")
    return "\n".join(rows)


def _counts(table: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in table.items())


def _material(config: IndependentSetConfig) -> list[str]:
    if config.source == "real":
        lines = ["| voice | package (Debian) | language | sex | rate | codec | licence | clips |", "|---|---|---|---|---|---|---|---|"]
        for s in HELD_OUT_SOURCES:
            count = max(2, 2 * round(s.clips * config.clips_scale / 2))
            lines.append(f"| {s.name} | {s.package} | {s.language} | {s.sex or 'not stated'} | {s.rate_hz // 1000} kHz | "
                         f"{s.codec} | {s.license} | {count} |")
        return [
            "## Voices (no training manifest, pretraining corpus or training-generator cohort uses them)",
            "Installed with `apt-get download PKG && dpkg-deb -x PKG_*.deb data/realspeech` (pocketsphinx-testdata "
            "is a run.sh package, read from /usr/share); audio is never committed.", "",
            *lines, "",
            "Seen before, as evaluation only: `asterisk-es-co`, `asterisk-fr-armelle` and `pocketsphinx` voices are in the "
            "project's `real-heldout` check (with the training generator's markers) and in the pretraining corpus's "
            "held-out split (es-co, fr-armelle, it-Menardi); people chose shipped versions partly by those numbers. "
            "Never seen by any path: `asterisk-it-menardi` in fine-tuning, all `codec2-*` voices and `alsa-voice`. "
            "The breakdown reports every source apart.",
            "Clips: 3.5-7 s of one voice: prompts joined by 0.25-0.6 s faint room tone (`prompts`), or a window of one "
            "long file (`window`, codec2); each clip is its own subject; the same voice gives patients and controls.",
        ]
    variants = ", ".join(f"{v} ({s})" if s else v for v, s in HELD_OUT_VARIANTS.items())
    languages = ", ".join(f"{k} {v:.0%}" for k, v in LANGUAGE_SHARES.items())
    return [
        "## Voices, languages, sentences (none in a training pool, the 40 extra training voices, the generator's own held-out pool or the pretraining corpus)",
        f"- espeak-ng variants (sex where the voice file states it): {variants}",
        f"- languages: {languages} (pt-br is the target language; the others are in no training or held-out pool)",
        f"- sentences: {sum(len(v) for v in SENTENCES.values())} new ones ({', '.join(f'{k} {len(v)}' for k, v in SENTENCES.items())}), "
        "none of them in the training generator's lists; listed in `biomarker/independent/voices.py`",
        "- per speaker: pitch 30-70, rate 135-185 wpm; one clip (one sentence) per speaker; resampled to 16 kHz by sox",
    ]


def datasheet(config: IndependentSetConfig, summary: dict) -> str:
    """The card text for a set built with `config` whose `summary.json` is `summary`."""
    name = config.cohort
    kind = "real voices" if config.source == "real" else "held-out espeak-ng voices"
    contents = []
    for cohort, s in summary.items():
        if cohort == "config":
            continue
        contents.append(
            f"- `{cohort}`: {s['clips']} clips, {s['patients']} patients ({_counts(s['severity_band'])}); sex: {_counts(s['sex'])}; "
            f"languages: {_counts(s['language'])}; ward ambience: {_counts(s['ambient'])}; origin codec: {_counts(s['origin_codec'])}; "
            f"duration (s) min {s['duration_s']['min']}, median {s['duration_s']['median']}, max {s['duration_s']['max']}; "
            f"patients with at least one audible in-breath: {s['patients_with_inhalation']}"
        )
    bands = " / ".join(f"[{lo:g}, {hi:g})" for lo, hi in SEVERITY_BANDS)
    channels = ",".join(config.channels)
    command = (f"biomarker cohort independent runs/independent/{config.source} --source {config.source} --seed {config.seed}"
               + (f" --n {config.n}" if config.source == "espeak" else f" --clips-scale {config.clips_scale:g} --root {config.root}")
               + f" --channels {channels} --card data_cards/{name}.md")
    lines = [
        f"# Data card: `{name}` and `{name}-telephone` ({kind}, INDEPENDENT SYNTHETIC RI markers)", "",
        "**The respiratory-insufficiency markers are SYNTHETIC.** " + (
            "The voices are real recordings from Debian packages, but no speaker is a patient: " if config.source == "real"
            else "Every voice is espeak-ng's formant synthesizer: ")
        + "a \"patient\" clip is healthy speech with rule-based markers applied by `biomarker.independent`. Nothing here "
        "is clinical; no SpO2 exists for any clip. Numbers measured on it say nothing about real patients.", "",
        "## Why it exists",
        "Issue 22: the data that decides must be made independently of the training data's generator, or a model can "
        "learn the generator and every number still looks fine. This set is made by a second marker implementation, "
        "written from the literature without `biomarker.cohorts.markers`' code, parameters or noise sources, applied "
        "to material no training or model-selection path uses. **Never train, calibrate, choose a threshold or select "
        "a model on it**: tests/test_independent_eval.py proves that no such path imports `biomarker.independent`.", "",
        "## How it differs from the training generator",
        "- pauses at syllable valleys (intensity minima between nuclei), every N syllables, not at word gaps; log-normal lengths; filled with the recording's own room tone",
        "- in-breaths: pink-to-brown noise through three formant-like resonators, a weak fricative band, a beta-shaped envelope (training: white noise in two Butterworth bands, triangular envelope)",
        "- breathiness: aspiration noise above 1.8 kHz opening once per glottal cycle, plus a steeper spectral tilt, voiced frames only",
        "- jitter and shimmer: cycle-level period time-warps and per-cycle gains from an F0 track (training: none)",
        "- tremor: 4-8 Hz FM (periodic time-warp) and AM with a drifting rate (training: 2-6 Hz AM only)",
        "- slower rate: WSOLA (sox `tempo -s`); training: fixed-hop Hann overlap-add",
        "- intensity: weaker overall, a dB fall within every breath group, 0.5-3 Hz random unsteadiness (training: one linear decline over the clip)",
        "- ward ambience of its own (HVAC rumble, IEC 60601-1-8 alarm pattern, infusion-pump clicks), never the training noise bank",
        "- controls pass through the same code at severity 0 with natural variation, so processing is no cue", "",
        *_material(config), "",
        "## Markers: value = natural variation + severity x effect (`biomarker/independent/strengths.py`)",
        marker_table(), "",
        f"Patients: severity stratified over the bands {bands} (a third mild, < 0.4); at least one breath pause each. "
        "Controls: severity 0 (natural variation only). Labels balanced within every source or language to within one clip.", "",
        "## Per clip",
        "- speech brought to -23 dBFS active level; markers; 0.2-0.5 s room tone at each end; ward ambience at SNR "
        "U[8, 22] dB for half the clips of each class; microphone gain U[-4, +3] dB for all; peak kept <= 0.95",
        "- `wideband`: written at the voice's own rate (8 kHz voices stay 8 kHz: no marker adds a band the voice lacks)",
        "- `telephone`: the same clip through 300-3400 Hz, 8 kHz and GSM 06.10 (sox), decoded to 8 kHz PCM",
        "- manifest: `path,label,speaker_id,cohort,sex,...,split` with `split=test` and extras `severity`, "
        "`severity_band`, `source`, `language`, `channel`, `ambient`, `snr_db`, `origin_codec`, `breath_pauses`, "
        "`inhalations`, `hesitations`, `slowing`, `duration_s`", "",
        "## Contents (as written)", *contents, "",
        "## Rebuild", f"`{command}` (audio is never committed).", "",
        "## Must not be used for",
        "Training, calibration, threshold choice or model selection (it would stop being independent); any claim about "
        "real patients, clinical validation, or SpO2 estimation.", "",
        "## Limitations",
        "- The markers are rules from the literature; real RI speech (cough, hoarseness, comorbidity, effort) is not represented.",
        "- Few voices: " + ("about 16 real voice sets, mostly female IVR prompts and English codec references; sex is unknown for most."
                             if config.source == "real" else f"{len(HELD_OUT_VARIANTS)} espeak-ng variants, mostly male; a formant synthesizer has no natural jitter or breathiness."),
        "- One clip per subject: subject-level and recording-level metrics coincide.", "",
        "## References", *[f"- {r}" for r in REFERENCES], "",
    ]
    return "\n".join(lines)
