"""Description (issue 22): the full-length DR MFCC-gram Transformer (`mfcc_full.sh`) against SSAMBA-12's probe
(`@3`'s input: the stored layer statistics, probe refit on train-dr's train split, C 0.1 as validation chose in
`extra_voices.py` and `voice_nap.py`), paired AUROC on the subjects both scored (the quality gate refused one real
clip for the MFCC-gram bundle). Chooses nothing: the rule in `mfcc_full.sh` decides from the decision tables.

    python scripts/dr/mfcc_full_paired.py [STEPS]   # the run of `STEPS=... mfcc_full.sh` (default 800)
"""
import csv
import json
import sys
from pathlib import Path

import numpy as np

from biomarker.evaluate.compare import paired_auroc_difference
from biomarker.evaluate.metrics import to_subjects
from domain_select import Variant, fit, load_sets

RESAMPLES, SEED = 2000, 0


def main() -> None:
    steps = sys.argv[1] if len(sys.argv) > 1 else "800"
    sets = load_sets(("ssamba",))
    probe = fit(Variant(("ssamba",), False, 0.1), sets["train"])
    out = {}
    for source in ("real", "espeak"):
        d = sets[source]
        raw = probe(d)
        for cohort in sorted(set(d["cohorts"])):
            rows = list(csv.DictReader(open(f"runs/dr/eval-dr-mfcc-{steps}-{source}/{cohort}_subjects.csv")))
            p = np.clip([float(r["probability"]) for r in rows], 1e-7, 1 - 1e-7)
            mfcc = to_subjects(np.log(p / (1 - p)), [int(r["label"]) for r in rows], [r["subject"] for r in rows])
            keep = (d["cohorts"] == cohort) & np.isin(d["subjects"], mfcc.subjects)
            ssamba = to_subjects(raw[keep], d["labels"][keep].astype(int), list(d["subjects"][keep]))
            paired = paired_auroc_difference(mfcc, ssamba, cohort, RESAMPLES, SEED)
            low, high = paired.difference_ci
            out[cohort] = {"mfccgram": paired.auroc_a, "ssamba_probe": paired.auroc_b,
                           "difference": paired.difference, "ci": [low, high], "subjects": len(mfcc.subjects)}
            print(f"{cohort}: MFCC-gram-{steps} {paired.auroc_a:.3f} - SSAMBA-12 probe {paired.auroc_b:.3f} = "
                  f"{paired.difference:+.3f} [{low:+.3f}, {high:+.3f}] ({len(mfcc.subjects)} subjects)")
    Path(f"runs/dr/mfcc_full_paired_{steps}.json").write_text(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    main()
