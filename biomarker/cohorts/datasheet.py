"""The datasheet written beside every synthesized or imported cohort (and copied to data_cards/).

WHY generated: the counts, durations and voices in a card must be the measured ones of the data it describes,
not numbers someone typed once.
"""

from __future__ import annotations

import json
from pathlib import Path

from biomarker.cohorts.synth import LANGUAGE_WEIGHTS, SENTENCES, VARIANTS

LITERATURE = """\
## Why these markers (literature)
- Pauses: in the SPIRA prosody study (Speech Prosody 2022; 94 COVID-19 RI patients vs 99 controls reading one
  sentence) patients made 3.16 vs 0.85 pauses per sentence, with mean pause 0.53 s vs 0.13 s; pauses alone
  classified 87-89 % correctly, i.e. the groups overlap. Synthetic speakers breathe after a breath group of
  about 9 words at rest, 3 when severe (`MarkerProfile.words_per_breath`), with pauses of about 0.1-0.4 s at
  rest growing by up to 0.6 s with severity.
- Inspiratory pauses mid-phrase with audible inhalation, shorter phrases, slower rate: speech-breathing studies
  of lung disease report patients taking more inspirations during reading and at non-grammatical locations,
  with shorter phrases (Lee, Loudon, Jacobson & Stuebing, "Speech breathing in patients with lung disease",
  Am. Rev. Respir. Dis. 1993; cited from memory, not re-verified offline). Synthetic patients breathe audibly in
  more breath pauses and speak up to 30 % slower.
- Breathy, weaker and less steady voice (reduced respiratory drive for phonation): aspiration noise riding on the
  speech envelope, amplitude tremor of 2-6 Hz and loudness declining over the utterance, all scaled by severity.
  These are modelling choices motivated by the above, not measured effect sizes.
- Overlap: every marker is natural variation drawn from the SAME range for patients and controls plus an effect
  proportional to severity (`biomarker.cohorts.markers.draw_profile`), so mild patients can sound like healthy
  speakers and no single cue separates the classes (the first version of this generator gave the classes
  disjoint ranges and every model, even a logistic regression on MFCC statistics, scored AUROC 1.0).
- Ward noise: SPIRA's noise shortcut (97-99 % clean vs ~50 % noisy when only patients carried ward noise) is why
  noise is added to BOTH classes with SPIRA's protocol (3 clips, peak U(0.0335, 0.1923)).
"""


def _variant_args(config: dict) -> str:
    """The CLI options that reproduce a cohort drawn from chosen variants under its own name ('' for the defaults)."""
    args = f" --variants {','.join(config['variants'])}" if config.get("variants") else ""
    return args + (f" --cohort {config['cohort']}" if config.get("cohort") else "")


def _voices_line(config: dict) -> str:
    if config.get("variants"):
        return f"{len(config['variants'])} espeak-ng variants chosen for pool `{config.get('pool')}`: {', '.join(config['variants'])}"
    return f"espeak-ng variants of pool `{config.get('pool')}`: {', '.join(VARIANTS[config['pool']])}"


def _languages_line(config: dict) -> str:
    languages = sorted(config.get("languages") or SENTENCES[config["pool"]])
    weighted = [f"{share:.0%} {language}" for language, share in LANGUAGE_WEIGHTS.items() if language in languages]
    rest = "the rest shared equally by" if weighted else "shared equally by"
    return ", ".join(weighted + [f"{rest} {', '.join(lang for lang in languages if lang not in LANGUAGE_WEIGHTS)}"])


def synthetic_datasheet(name: str, summary: dict, config: dict) -> str:
    """Markdown datasheet of a synthetic cohort from its measured summary and the config that made it."""
    return f"""# Data card: {name} (SYNTHETIC)

**This data set is SYNTHETIC.** Speech is produced by the espeak-ng formant synthesizer; "patients" are
synthetic speakers with respiratory-insufficiency (RI) markers added by rule. No real patient, no real
clinical recording and no SpO2 measurement is involved. Numbers measured on it say nothing about real patients.

## What it is for / not for
- For: developing and testing the pipeline (training, calibration, evaluation, app demo), checking that a model
  learns breathing/pause markers rather than noise, voice or sentence.
- Not for: any clinical claim, any estimate of accuracy on real patients, SpO2 estimation (never).

## How it was made
- Command: `biomarker cohort synth OUT --n {config.get('n')} --seed {config.get('seed')} --pool {config.get('pool')}{_variant_args(config)}`
- Voices: {_voices_line(config)} (train and heldout pools share no variant and no
  sentence); pitch 25-75, resting rate 140-185 wpm; {_languages_line(config)}.
- Speakers read {config.get('clips_per_speaker')} different sentences each; half of the speakers are patients
  with severity uniform in [0.15, 1] (mild cases included).
- Controls: severity 0, i.e. only the natural variation every speaker gets (breath groups, pause lengths,
  audible breaths, rate, aspiration, tremor, loudness decline), which overlaps the mild patients' range.
- Ward noise (generated bank: monitor beeps, ventilation, hum/fans, clatter, distant espeak voices) added to
  BOTH classes as a separate `-noisy` copy of every clip (SPIRA protocol); clean and noisy are reported apart.
- Recording level varies at random for both classes (peak 0.25-0.9).
- Splits: speaker-disjoint, stratified by label (train/val/test {config.get('split', {})}).

## Measured contents
```json
{json.dumps(summary, indent=2)}
```

{LITERATURE}
## Known limitations
- espeak-ng has no natural jitter, shimmer or breathiness; markers are rules, not physiology.
- Real RI speech differs (cough, hoarseness, comorbidities, microphones, real wards). A model good on this set is
  only known to detect these rules.
- Licence: espeak-ng output is not bound by its GPL; the generated audio is not committed (the command rebuilds it).
"""


def write_datasheet(text: str, *paths: str | Path) -> list[Path]:
    written = []
    for path in paths:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
