"""Experiment (issue 22): a validation rule that looks at domains, to choose probes that transfer.

The pooled validation AUROC did not rank candidates as the independent sets do (docs/screening.md, @3's section:
24 blocks scored lower on validation and higher on three of four independent sets). A pooled AUROC mixes domains: a
probe can rank the pool well while ranking badly inside one channel, and the independent sets are one voice source
and one channel at a time. Domain-generalisation practice (Gulrajani and Lopez-Paz, "In search of lost domain
generalization", 2021) judges a candidate inside each training domain instead. The rule here, fixed before any
independent set was scored for these variants:

    choose the variant whose WORST validation group ranks best: groups are voice source (espeak-ng / real) x
    channel (the source clip, or its randomised copy's codec: none, telephone-gsm, telephone-ulaw, opus, mp3);
    each group's subject AUROC over its own subjects. Ties (within 0.001) go to the higher pooled AUROC.

Candidates: the stored statistics of the three self-supervised encoders (`scripts/dr/layer_sets.sh`: SSAMBA-tiny's
12 blocks, SSAST-tiny's 12, the MFCC-gram Transformer's 3), each alone or concatenated, with or without the
interpretable pause and breath statistics (`biomarker.features.breathing`), at two regularisation strengths.

    python scripts/dr/domain_select.py            # validation only: every variant's pooled and worst-group AUROC
    python scripts/dr/domain_select.py --report   # + the independent sets, once, for each rule's choice
    python scripts/dr/domain_select.py --describe # + every variant's independent AUROC (a description of the rules)
"""
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from biomarker.evaluate.metrics import auroc, sensitivity_specificity, threshold_for_sensitivity
from biomarker.finetune.hybrid import breathing_matrix
from layer_probe import subject  # the same subject pooling as the layer grid (this folder is on the path when run)

ENCODERS = {"ssamba": "runs/dr/layers", "ssast": "runs/dr/layers-ssast", "mfccgram": "runs/dr/layers-mfccgram"}
SETS = ("train", "val", "real", "espeak", "heldout")
INDEPENDENT = ("real", "espeak")


@dataclass(frozen=True)
class Variant:
    encoders: tuple[str, ...]
    breathing: bool
    strength: float


def load_sets(encoders: tuple[str, ...]) -> dict[str, dict]:
    """Per set: every available encoder's [N, layers x 2 x D] statistics, labels, subjects, groups, breathing."""
    sets = {}
    for name in SETS:
        first = dict(np.load(f"{ENCODERS[encoders[0]]}/{name}.npz"))
        d = {k: first[k] for k in ("labels", "subjects", "cohorts", "channel", "paths")}
        for encoder in encoders:
            stored = np.load(f"{ENCODERS[encoder]}/{name}.npz")
            assert (stored["paths"] == d["paths"]).all(), f"{encoder} {name}: rows differ"
            n = len(d["labels"])
            d[encoder] = np.concatenate([stored["mean"].reshape(n, -1), stored["std"].reshape(n, -1)], 1)
        cache = Path(f"runs/dr/breathing/{name}.npy")
        if not cache.is_file():
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, breathing_matrix([SimpleNamespace(path=Path(p)) for p in d["paths"]], "runs/cache"))
        d["breathing"] = np.load(cache)
        voice = np.where(np.char.find(d["cohorts"].astype(str), "real") >= 0, "real", "espeak")
        d["group"] = np.char.add(np.char.add(voice, "/"), np.where(d["channel"] == "", "source", d["channel"]))
        sets[name] = d
    return sets


def features(d: dict, v: Variant) -> np.ndarray:
    parts = [d[e] for e in v.encoders] + ([d["breathing"]] if v.breathing else [])
    return np.concatenate(parts, 1)


def subject_of(scores: np.ndarray, d: dict, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """layer_probe's subject pooling over the rows `keep` selects."""
    return subject(scores[keep], {k: a[keep] for k, a in d.items()})


def fit(v: Variant, train: dict):
    scaler = StandardScaler().fit(features(train, v))
    model = LogisticRegression(C=v.strength, class_weight="balanced", max_iter=3000)
    model.fit(scaler.transform(features(train, v)), train["labels"])
    return lambda d: model.decision_function(scaler.transform(features(d, v)))


def validation_scores(raw: np.ndarray, val: dict) -> dict[str, float]:
    groups = {g: auroc(*subject_of(raw, val, val["group"] == g)) for g in sorted(set(val["group"]))}
    return {"pooled": auroc(*subject(raw, val)), "worst": min(groups.values()), "worst_group": min(groups, key=groups.get),
            "groups": groups}


def independent(score, sets: dict, threshold: float) -> dict[str, dict[str, float]]:
    out = {}
    for name in INDEPENDENT + ("heldout",):
        d, raw = sets[name], score(sets[name])
        for cohort in sorted(set(d["cohorts"])):
            ss, sl = subject_of(raw, d, d["cohorts"] == cohort)
            se, sp = sensitivity_specificity(ss, sl, threshold)
            out[cohort] = {"sensitivity": se, "specificity": sp, "auroc": auroc(ss, sl)}
    return out


def main() -> None:
    available = tuple(e for e in ENCODERS if Path(ENCODERS[e], "heldout.npz").is_file())
    sets = load_sets(available)
    combos = [(e,) for e in available] + ([available] if len(available) > 1 else [])
    combos += [("ssamba", "ssast")] if {"ssamba", "ssast"} <= set(available) and len(available) > 2 else []
    variants = [Variant(c, b, s) for c in combos for b in (False, True) for s in (0.01, 0.1)]
    results = {}
    for v in variants:
        score = fit(v, sets["train"])
        raw = score(sets["val"])
        vs, vl = subject(raw, sets["val"])
        results[v] = {"validation": validation_scores(raw, sets["val"]), "score": score,
                      "threshold": threshold_for_sensitivity(vs, vl)}
        r = results[v]["validation"]
        print(f"{v}: pooled {r['pooled']:.4f} worst {r['worst']:.4f} ({r['worst_group']})", flush=True)
    rules = {"pooled": lambda v: results[v]["validation"]["pooled"],
             "worst-group": lambda v: (round(results[v]["validation"]["worst"], 3), results[v]["validation"]["pooled"])}
    chosen = {rule: max(variants, key=key) for rule, key in rules.items()}
    for rule, v in chosen.items():
        print(f"rule {rule} chooses {v}")
    if "--report" not in sys.argv and "--describe" not in sys.argv:
        return
    summary = {"chosen": {}, "variants": []}
    for rule, v in chosen.items():
        measured = independent(results[v]["score"], sets, results[v]["threshold"])
        summary["chosen"][rule] = {"variant": str(v), "threshold_logit": results[v]["threshold"],
                                   "validation": results[v]["validation"], "sets": measured}
        print(f"{rule}: {v}")
        for cohort, m in measured.items():
            print(f"  {cohort}: sens {m['sensitivity']:.3f} spec {m['specificity']:.3f} AUROC {m['auroc']:.3f}")
    if "--describe" in sys.argv:  # how well each rule's score predicts transfer, over every variant (a description)
        transfer = []
        for v in variants:
            measured = independent(results[v]["score"], sets, results[v]["threshold"])
            mean = float(np.mean([m["auroc"] for c, m in measured.items() if c.startswith("independent")]))
            transfer.append(mean)
            summary["variants"].append({"variant": str(v), "validation": results[v]["validation"], "independent_mean_auroc": mean,
                                        "sets": measured})
            print(f"{v}: independent mean AUROC {mean:.4f}")
        for rule in rules:
            rho = spearmanr([results[v]["validation"]["pooled" if rule == "pooled" else "worst"] for v in variants], transfer)
            summary[f"spearman_{rule}"] = float(rho.statistic)
            print(f"Spearman(rule {rule}, independent mean AUROC) over {len(variants)} variants: {rho.statistic:+.3f}")
    Path("runs/dr/domain_select.json").write_text(json.dumps(summary, indent=2, default=float))


if __name__ == "__main__":
    main()
