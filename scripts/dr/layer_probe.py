"""Experiment (issue 22): which pooled SSAMBA-tiny features make the best probe, chosen on validation only.

Reads runs/dr/layers/{train,val}.npz (train-dr) and reports validation subject AUROC per variant; with --report,
also the independent sets and the held-out cohort at the validation threshold (sensitivity 0.90), for the
variant validation chose and for the final tokens' mean (`@2`'s input), each scored once.
    python scripts/dr/layer_features.py runs/data/train-dr/manifest.csv train runs/dr/layers/train.npz  (and val,
        runs/independent/{real,espeak}/manifest.csv all -> real, espeak; runs/data/synth-heldout/manifest.csv all -> heldout)
    python scripts/dr/layer_probe.py [--report]
"""
import os
import sys
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from biomarker.evaluate.metrics import auroc, sensitivity_specificity, threshold_for_sensitivity, to_subjects

LAYERS = os.environ.get("LAYERS_DIR", "runs/dr/layers")  # runs/dr/layers24 for layer_features.py ... 24


def load(name):
    return dict(np.load(f"{LAYERS}/{name}.npz"))


@dataclass(frozen=True)
class Variant:
    layers: tuple[int, ...]  # indices into [block 0 .. block 11, final norm]
    std: bool
    nap: int  # nuisance directions projected out (within-pair source vs domain-copy differences)
    strength: float
    layernorm: bool = False  # LayerNorm over the concatenation first (what the shipped head's norm does)


def features(d, v: Variant):
    parts = [d["mean"][:, list(v.layers)].reshape(len(d["labels"]), -1)]
    if v.std:
        parts.append(d["std"][:, list(v.layers)].reshape(len(d["labels"]), -1))
    x = np.concatenate(parts, 1)
    if v.layernorm:
        x = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
    return x


def subject(scores, d):
    s = to_subjects(scores, d["labels"].astype(int), list(d["subjects"]))
    return s.scores, s.labels


def nap_basis(x_train, train, k):
    """Top-k directions of the differences between each source row and its randomised-domain copy."""
    if k == 0:
        return None
    n = len(train["labels"]) // 2
    assert all(train["subjects"][:n] == np.char.replace(train["subjects"][n:], "-dr/", "/")), "rows not paired"
    diff = x_train[n:] - x_train[:n]
    _, _, vt = np.linalg.svd(diff - diff.mean(0), full_matrices=False)
    return vt[:k]


def project(x, basis):
    return x if basis is None else x - (x @ basis.T) @ basis


def fit(v: Variant, train, val):
    scaler = StandardScaler().fit(features(train, v))
    x = scaler.transform(features(train, v))
    basis = nap_basis(x, train, v.nap)
    model = LogisticRegression(C=v.strength, class_weight="balanced", max_iter=3000).fit(project(x, basis), train["labels"])
    score = lambda d: model.decision_function(project(scaler.transform(features(d, v)), basis))
    return score


def report(v: Variant, score, val) -> str:
    """The sets at the validation threshold (sensitivity 0.90 on validation subjects) for one fitted variant."""
    vs, vl = subject(score(val), val)
    t, lines = threshold_for_sensitivity(vs, vl), [f"{v}:"]
    for name in ("real", "espeak", "heldout"):
        d = load(name)
        raw = score(d)
        for cohort in sorted(set(d["cohorts"])):
            keep = d["cohorts"] == cohort
            ss, sl = subject(raw[keep], {k: a[keep] for k, a in d.items()})
            se, sp = sensitivity_specificity(ss, sl, t)
            lines.append(f"  {cohort}: sens {se:.3f} spec {sp:.3f} AUROC {auroc(ss, sl):.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    train, val = load("train"), load("val")
    layers = val["mean"].shape[1]  # every block, then the final norm
    last, all_blocks = (layers - 1,), tuple(range(layers))
    variants = [Variant(last, False, 0, c) for c in (0.01, 0.1, 1.0)]
    variants += [Variant(all_blocks, s, 0, c) for s in (False, True) for c in (0.001, 0.01, 0.1)]
    variants += [Variant(all_blocks, True, k, c) for k in (4, 16, 64) for c in (0.001, 0.01)]
    variants += [Variant(tuple(sorted(set(range(3, layers, 3)) | set(last))), True, 0, c) for c in (0.001, 0.01, 0.1)]
    variants += [Variant(all_blocks, True, 0, c, True) for c in (0.001, 0.01, 0.1)]
    fitted = {}
    for v in variants:
        score = fit(v, train, val)
        fitted[v] = (auroc(*subject(score(val), val)), score)
        print(f"{v}: val subject AUROC {fitted[v][0]:.4f}", flush=True)
    if "--report" in sys.argv:  # the variant validation chose (the shipped head's form: layernorm first), and @2's input
        chosen = max((v for v in fitted if v.layernorm), key=lambda v: fitted[v][0])
        reference = max((v for v in fitted if v.layers == last), key=lambda v: fitted[v][0])
        for v in (reference, chosen):
            print(report(v, fitted[v][1], val), flush=True)
