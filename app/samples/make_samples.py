"""Regenerate the two bundled SYNTHETIC example recordings (no real person's voice is in them).

    python app/samples/make_samples.py

Both are made by the synthetic cohort's own generator (`biomarker.cohorts.synth.synthesize_clip`), so the app
demonstrates exactly the markers the shipped model was trained and measured on: one espeak-ng speaker (pt-br,
variant m3) reads the SPIRA-style sentence as a control (severity 0: natural breath groups and pauses) and as a
patient of severity 0.85 (short breath groups, inspiratory pauses mid-phrase with audible inhalation, slower
rate, breathy and less steady voice). Illustrations for the app's "Try a sample" page, not clinical data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from biomarker.cohorts.espeak import SAMPLE_RATE_HZ, Voice
from biomarker.cohorts.synth import Speaker, synthesize_clip

HERE = Path(__file__).resolve().parent
SENTENCE = "O amor ao próximo ajuda a enfrentar essa fase com a força que a gente precisa"
VOICE = Voice(language="pt-br", variant="m3", pitch=50, rate_wpm=165)
SAMPLES = {"synthetic_control.wav": (0, 0.0), "synthetic_patient.wav": (1, 0.85)}  # file: (label, severity)
SEED = 0


def main() -> None:
    for name, (label, severity) in SAMPLES.items():
        clip = synthesize_clip(SENTENCE, Speaker(name.removesuffix(".wav"), VOICE, label, severity), np.random.default_rng(SEED))
        sf.write(HERE / name, clip, SAMPLE_RATE_HZ, subtype="PCM_16")
        print(f"{name}: {len(clip) / SAMPLE_RATE_HZ:.1f} s, severity {severity}")


if __name__ == "__main__":
    main()
