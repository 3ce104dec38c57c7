"""Experiment (issue 22): late fusion of the self-supervised encoders' probes, instead of concatenating their inputs.

Stop 36 found different transfer profiles: the MFCC-gram Transformer's layer-statistics probe ranks espeak-ng
telephone audio best (0.940-0.952) and espeak-ng wideband worst (0.72-0.86); SSAMBA-tiny's is the best on three of four
independent sets. Concatenating the encoders' statistics into one probe averaged the profiles (all three: 0.856 /
0.880 / 0.900 / 0.935). Late fusion keeps one probe per encoder and averages their scores, so each probe is fitted
as well as it is alone. The rule, fixed before any independent set is scored for these combinations:

    each encoder's probe: class-balanced standardised L2 logistic regression on the 8,040 training rows, C from
    {0.01, 0.1} by its pooled validation subject AUROC (the rule of stop 36 that tracked transfer, rho +0.65);
    a combination's score: the mean of its probes' logits, each z-scored by its own validation mean and std (no
    weight is fitted); choose the combination (SSAMBA alone, SSAMBA + MFCC-gram, SSAMBA + SSAST, all three) with the
    best pooled validation subject AUROC; its threshold for sensitivity 0.90 on the pooled validation subjects.

    python scripts/dr/late_fusion.py            # validation only
    python scripts/dr/late_fusion.py --report   # + the independent sets and the held-out cohort, once, for the
                                                #   choice and, as a description, every combination, with
                                                #   paired AUROC differences against SSAMBA alone
"""
import json
import sys
from pathlib import Path

import numpy as np

from biomarker.evaluate.compare import paired_auroc_difference
from biomarker.evaluate.metrics import auroc, threshold_for_sensitivity, to_subjects
from domain_select import INDEPENDENT, Variant, fit, independent, load_sets
from layer_probe import subject

COMBINATIONS = (("ssamba",), ("ssamba", "mfccgram"), ("ssamba", "ssast"), ("ssamba", "ssast", "mfccgram"))
STRENGTHS = (0.01, 0.1)
RESAMPLES, SEED = 2000, 0


def best_probe(encoder: str, sets: dict) -> tuple[float, object]:
    """(C, score function) of the encoder's probe with the best pooled validation subject AUROC."""
    fitted = {c: fit(Variant((encoder,), False, c), sets["train"]) for c in STRENGTHS}
    validation = {c: auroc(*subject(score(sets["val"]), sets["val"])) for c, score in fitted.items()}
    best = max(validation, key=validation.get)
    print(f"{encoder}: validation AUROC " + ", ".join(f"C {c}: {a:.4f}" for c, a in validation.items()), flush=True)
    return best, fitted[best]


def fused(probes: dict, combination: tuple[str, ...], sets: dict):
    """The mean of the combination's z-scored probe logits (z by each probe's validation logits)."""
    validation = {e: probes[e](sets["val"]) for e in combination}
    scales = {e: (validation[e].mean(), validation[e].std()) for e in combination}
    return lambda d: np.mean([(probes[e](d) - scales[e][0]) / scales[e][1] for e in combination], axis=0)


def paired_auroc(a, b, sets: dict) -> dict[str, str]:
    """AUROC of b minus a per independent set, same subjects (`biomarker.evaluate.compare.paired_auroc_difference`)."""
    out = {}
    for name in INDEPENDENT:
        d = sets[name]
        raw_a, raw_b = a(d), b(d)
        for cohort in sorted(set(d["cohorts"])):
            keep = d["cohorts"] == cohort
            rows = (d["labels"][keep].astype(int), list(d["subjects"][keep]))
            paired = paired_auroc_difference(to_subjects(raw_b[keep], *rows), to_subjects(raw_a[keep], *rows),
                                             cohort, RESAMPLES, SEED)
            low, high = paired.difference_ci
            out[cohort] = f"{paired.difference:+.3f} [{low:+.3f}, {high:+.3f}]"
    return out


def validate(probes: dict, combinations: tuple, sets: dict) -> tuple[dict, dict, dict]:
    """Per combination: its fused score function, pooled validation subject AUROC and threshold (sensitivity 0.90)."""
    scores, validation, thresholds = {}, {}, {}
    for combination in combinations:
        scores[combination] = fused(probes, combination, sets)
        vs, vl = subject(scores[combination](sets["val"]), sets["val"])
        validation[combination], thresholds[combination] = auroc(vs, vl), threshold_for_sensitivity(vs, vl)
        print(f"{' + '.join(combination)}: validation AUROC {validation[combination]:.5f}", flush=True)
    return scores, validation, thresholds


def describe(scores: dict, validation: dict, thresholds: dict, chosen: tuple, reference: tuple, sets: dict) -> dict:
    """Every combination on the independent sets and the held-out cohort at its own validation threshold, and the
    paired AUROC differences of every other combination against `reference`."""
    summary = {"chosen": " + ".join(chosen), "reference": " + ".join(reference), "combinations": {},
               "minus_reference_auroc": {}}
    for combination in scores:
        measured = independent(scores[combination], sets, thresholds[combination])
        summary["combinations"][" + ".join(combination)] = {"validation_auroc": validation[combination],
                                                             "threshold": thresholds[combination], "sets": measured}
        print(f"{' + '.join(combination)}{' (chosen)' if combination == chosen else ''}")
        for cohort, m in measured.items():
            print(f"  {cohort}: sens {m['sensitivity']:.3f} spec {m['specificity']:.3f} AUROC {m['auroc']:.3f}")
    for combination in (c for c in scores if c != reference):
        difference = paired_auroc(scores[reference], scores[combination], sets)
        summary["minus_reference_auroc"][" + ".join(combination)] = difference
        print(f"{' + '.join(combination)} - {' + '.join(reference)}, AUROC: {difference}")
    return summary


def run(sets: dict, encoders: tuple[str, ...], combinations: tuple, candidates: tuple, reference: tuple,
        out: str) -> None:
    """Fit each encoder's probe, validate every combination, choose among `candidates` by pooled validation AUROC;
    with --report, describe every combination on the independent sets and write the summary to `out`."""
    probes, strengths = {}, {}
    for encoder in encoders:
        strengths[encoder], probes[encoder] = best_probe(encoder, sets)
    scores, validation, thresholds = validate(probes, combinations, sets)
    chosen = max(candidates, key=validation.get)
    print(f"the rule chooses {' + '.join(chosen)}")
    if "--report" in sys.argv:
        summary = {"strengths": strengths, **describe(scores, validation, thresholds, chosen, reference, sets)}
        Path(out).write_text(json.dumps(summary, indent=2, default=float))


def main() -> None:
    run(load_sets(("ssamba", "ssast", "mfccgram")), ("ssamba", "ssast", "mfccgram"), COMBINATIONS, COMBINATIONS,
        COMBINATIONS[0], "runs/dr/late_fusion.json")


if __name__ == "__main__":
    main()
