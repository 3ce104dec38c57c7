"""Experiment (issue 22): take the speaker out of SSAMBA-12's features before the probe (voice nuisance projection).

On the real independent set the probe's false referrals follow voices and recordings: all 20 healthy real voices it
refers at its threshold come from four 8 kHz sources, none from the two 16 kHz ones (`false_referrals.py`), and
neither narrowband inputs nor more real training voices moved them (`narrowband_probe.py`, `extra_voices.py`). A
probe can separate classes along directions that also tell speakers apart; a voice it has never heard then lands
on either side by where its identity falls. Speaker-state work removes the speaker subspace first (nuisance
attribute projection, Solomonoff et al. 2005; within-speaker normalisation in paralinguistics). Here the nuisance
is the voice: the training rows' per-voice means span it. The rule, fixed before any independent set is scored for
these variants:

    training rows: train-dr's train split (`@3`'s rows, 8,040), standardised; each voice's centre is the mean of
    its two class means (voices with one class only are left out, so no class direction enters); the top-k
    principal directions of the centred voice centres are projected out of every row, for k in {0, 16, 64, 128};
    a class-balanced L2 logistic regression with C in {0.01, 0.1}; choose (k, C) by pooled validation subject
    AUROC on train-dr's validation split plus the three validation voices (`extra_voices.py`: speakers no training
    row holds); its threshold for sensitivity 0.90 on those pooled subjects.

    python scripts/dr/voice_nap.py            # validation only
    python scripts/dr/voice_nap.py --report   # + the independent sets and the held-out cohort, once, for the
                                              #   best C of every k, with paired AUROC differences against k = 0
"""
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from biomarker.evaluate.metrics import auroc, sensitivity_specificity, threshold_for_sensitivity
from domain_select import independent, load_sets
from extra_voices import KEYS, extra, joined
from late_fusion import paired_auroc
from layer_probe import subject

DIRECTIONS = (0, 16, 64, 128)
STRENGTHS = (0.01, 0.1)


def voice_basis(x: np.ndarray, labels: np.ndarray, voices: np.ndarray, k: int) -> np.ndarray | None:
    """Top-k principal directions of the voices' centres (the mean of each voice's two class means)."""
    if k == 0:
        return None
    centres = [np.mean([x[(voices == v) & (labels == c)].mean(0) for c in (0, 1)], axis=0)
               for v in np.unique(voices) if {0, 1} <= set(labels[voices == v].tolist())]
    centres = np.array(centres)
    _, _, vt = np.linalg.svd(centres - centres.mean(0), full_matrices=False)
    print(f"  {len(centres)} voices with both classes; removing {k} directions", flush=True)
    return vt[:k]


def fit(train: dict, k: int, strength: float):
    scaler = StandardScaler().fit(train["ssamba"])
    x = scaler.transform(train["ssamba"])
    basis = voice_basis(x, train["labels"].astype(int), train["voice"], k)
    project = (lambda z: z) if basis is None else (lambda z: z - (z @ basis.T) @ basis)
    model = LogisticRegression(C=strength, class_weight="balanced", max_iter=3000).fit(project(x), train["labels"])
    return lambda d: model.decision_function(project(scaler.transform(d["ssamba"])))


def main() -> None:
    sets = load_sets(("ssamba",))
    train = {**sets["train"], "voice": np.load("runs/dr/layers/train.npz")["voice"]}
    voices = extra("val")
    sets["val"] = joined({k: sets["val"][k] for k in KEYS + ("ssamba",)}, voices)
    fitted, summary = {}, {"variants": {}}
    for k in DIRECTIONS:
        for strength in STRENGTHS:
            score = fit(train, k, strength)
            vs, vl = subject(score(sets["val"]), sets["val"])
            own = subject(score(voices), voices)
            fitted[(k, strength)] = score
            summary["variants"][f"k={k}, C={strength}"] = {
                "directions": k, "strength": strength, "validation_auroc": auroc(vs, vl),
                "threshold": threshold_for_sensitivity(vs, vl), "validation_voices_auroc": auroc(*own)}
            print(f"k {k} C {strength}: pooled validation AUROC {auroc(vs, vl):.5f}, validation voices {auroc(*own):.3f}",
                  flush=True)
    name = lambda k, c: f"k={k}, C={c}"
    best = {k: max(STRENGTHS, key=lambda c: summary["variants"][name(k, c)]["validation_auroc"]) for k in DIRECTIONS}
    chosen = max(DIRECTIONS, key=lambda k: summary["variants"][name(k, best[k])]["validation_auroc"])
    summary["chosen"] = name(chosen, best[chosen])
    print(f"the rule chooses {summary['chosen']}")
    if "--report" not in sys.argv:
        return
    for k in DIRECTIONS:
        variant = summary["variants"][name(k, best[k])]
        variant["sets"] = independent(fitted[(k, best[k])], sets, variant["threshold"])
        own = subject(fitted[(k, best[k])](voices), voices)
        variant["validation_voices_at_threshold"] = dict(zip(("sensitivity", "specificity"),
                                                             sensitivity_specificity(*own, variant["threshold"])))
        print(name(k, best[k]) + (" (chosen)" if k == chosen else ""))
        for cohort, m in variant["sets"].items():
            print(f"  {cohort}: sens {m['sensitivity']:.3f} spec {m['specificity']:.3f} AUROC {m['auroc']:.3f}")
    reference = fitted[(0, best[0])]
    summary["minus_k0_auroc"] = {name(k, best[k]): paired_auroc(reference, fitted[(k, best[k])], sets)
                                 for k in DIRECTIONS if k}
    for variant, difference in summary["minus_k0_auroc"].items():
        print(f"{variant} - k=0, AUROC: {difference}")
    Path("runs/dr/voice_nap.json").write_text(json.dumps(summary, indent=2, default=float))


if __name__ == "__main__":
    main()
