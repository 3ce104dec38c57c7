"""Experiment (issue 22): do more real training voices, and validation on real voices no training set holds, make
the decision travel to healthy real voices?

Every healthy real voice that SSAMBA-12's probe refers on the independent wideband set comes from an 8 kHz source
(`false_referrals.py`), and its training saw one real 8 kHz voice (asterisk en-US Allison) among 7 real voices, 840
of 8,040 training rows. The narrowband probe showed it is not the band. A formant synthesiser has none of a real
voice's natural jitter, shimmer and breathiness, which the markers add, so a real voice the probe has not heard may
look like a marked one. The pretraining corpus holds six real voices no fine-tuning manifest used
(`biomarker.cohorts.real.EXTRA_TRAIN_VOICES`, `VALIDATION_VOICES`; none in any independent set):

    bash: biomarker cohort real data/realspeech runs/data/real-xv-train --voices extra-train --clips-per-voice 150 \
            --randomise-markers --noise-bank runs/data/noise_bank --split train --seed 31 --cohort real-xv
          biomarker cohort real data/realspeech runs/data/real-xv-val --voices validation --clips-per-voice 40 \
            --randomise-markers --noise-bank runs/data/noise_bank --split val --seed 32 --cohort real-xv-val
          biomarker cohort merge runs/data/xv-source.csv runs/data/real-xv-train/manifest.csv runs/data/real-xv-val/manifest.csv
          biomarker cohort domain runs/data/xv-source.csv runs/data/xv --rooms runs/data/rooms --copies 1 --seed 33 --workers 2
          python scripts/dr/layer_features.py runs/data/xv/manifest.csv train runs/dr/layers-xv/train.npz  (and val)

The rule, fixed before any independent set is scored for these candidates:

    validation pool: train-dr's validation split plus the three validation voices (speakers no candidate trains on);
    candidates: the SSAMBA-12 layer-statistics probe (class-balanced standardised L2 logistic regression) on
      "train-dr" (@3's rows), "+ extra voices" (train-dr's train split and the three extra training voices),
      "+ extra voices, real x3" (the same rows, every real-voice row weighted 3);
    each with C from {0.01, 0.1} by its pooled validation subject AUROC; choose the candidate with the best pooled
    validation subject AUROC; its threshold for sensitivity 0.90 on the pooled validation subjects.

    python scripts/dr/extra_voices.py            # validation only (pooled, and the validation voices alone)
    python scripts/dr/extra_voices.py --report   # + the independent sets and the held-out cohort, once, for every
                                                 #   candidate, with paired AUROC differences against "train-dr"
"""
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from biomarker.evaluate.metrics import auroc, sensitivity_specificity, threshold_for_sensitivity
from domain_select import independent, load_sets
from late_fusion import paired_auroc
from layer_probe import subject

EXTRA = "runs/dr/layers-xv"  # the extra and validation voices' SSAMBA-12 statistics
KEYS = ("labels", "subjects", "cohorts", "channel", "paths")
STRENGTHS = (0.01, 0.1)
CANDIDATES = {"train-dr": (False, 1.0), "+ extra voices": (True, 1.0), "+ extra voices, real x3": (True, 3.0)}


def extra(name: str) -> dict:
    stored = dict(np.load(f"{EXTRA}/{name}.npz"))
    n = len(stored["labels"])
    return {**{k: stored[k] for k in KEYS}, "ssamba": np.concatenate([stored["mean"].reshape(n, -1),
                                                                      stored["std"].reshape(n, -1)], 1)}


def joined(a: dict, b: dict) -> dict:
    return {k: np.concatenate([a[k], b[k]]) for k in KEYS + ("ssamba",)}


def is_real(d: dict) -> np.ndarray:
    return np.char.find(d["cohorts"].astype(str), "real") >= 0


def fit(train: dict, real_weight: float, strength: float):
    scaler = StandardScaler().fit(train["ssamba"])
    weights = np.where(is_real(train), real_weight, 1.0)
    model = LogisticRegression(C=strength, class_weight="balanced", max_iter=3000)
    model.fit(scaler.transform(train["ssamba"]), train["labels"], sample_weight=weights)
    return lambda d: model.decision_function(scaler.transform(d["ssamba"]))


def main() -> None:
    sets = load_sets(("ssamba",))
    voices = extra("val")
    sets["val"] = joined({k: sets["val"][k] for k in KEYS + ("ssamba",)}, voices)
    widened = joined({k: sets["train"][k] for k in KEYS + ("ssamba",)}, extra("train"))
    print(f"validation pool: {len(set(sets['val']['subjects']))} subjects, of them "
          f"{len(set(voices['subjects']))} of the validation voices", flush=True)
    scores, summary = {}, {"candidates": {}}
    for name, (widen, real_weight) in CANDIDATES.items():
        rows = widened if widen else sets["train"]
        fitted = {c: fit(rows, real_weight, c) for c in STRENGTHS}
        pooled = {c: auroc(*subject(score(sets["val"]), sets["val"])) for c, score in fitted.items()}
        strength = max(pooled, key=pooled.get)
        scores[name] = fitted[strength]
        vs, vl = subject(scores[name](sets["val"]), sets["val"])
        threshold = threshold_for_sensitivity(vs, vl)
        own = subject(scores[name](voices), voices)
        sensitivity, specificity = sensitivity_specificity(*own, threshold)
        summary["candidates"][name] = {
            "training_rows": len(rows["labels"]), "strength": strength, "validation_auroc": pooled[strength],
            "threshold": threshold, "validation_voices": {"auroc": auroc(*own), "sensitivity": sensitivity,
                                                          "specificity": specificity}}
        print(f"{name}: {len(rows['labels'])} rows, C {strength}, pooled validation AUROC {pooled[strength]:.5f}; "
              f"validation voices AUROC {auroc(*own):.3f}, sens {sensitivity:.3f} spec {specificity:.3f}", flush=True)
    chosen = max(CANDIDATES, key=lambda n: summary["candidates"][n]["validation_auroc"])
    summary["chosen"] = chosen
    print(f"the rule chooses {chosen}")
    if "--report" not in sys.argv:
        return
    for name in CANDIDATES:
        measured = independent(scores[name], sets, summary["candidates"][name]["threshold"])
        summary["candidates"][name]["sets"] = measured
        print(f"{name}{' (chosen)' if name == chosen else ''}")
        for cohort, m in measured.items():
            print(f"  {cohort}: sens {m['sensitivity']:.3f} spec {m['specificity']:.3f} AUROC {m['auroc']:.3f}")
    reference = next(iter(CANDIDATES))
    summary["minus_reference_auroc"] = {name: paired_auroc(scores[reference], scores[name], sets)
                                        for name in CANDIDATES if name != reference}
    for name, difference in summary["minus_reference_auroc"].items():
        print(f"{name} - {reference}, AUROC: {difference}")
    Path("runs/dr/extra_voices.json").write_text(json.dumps(summary, indent=2, default=float))


if __name__ == "__main__":
    main()
