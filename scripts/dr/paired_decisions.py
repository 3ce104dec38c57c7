"""Paired differences between two candidates' decisions on the same subjects: sensitivity, specificity and
Youden's J (sensitivity + specificity - 1) at each candidate's own shipped threshold, and AUROC, with 95 %
bootstrap CIs resampling subjects within each class (both candidates see the same resample).

`compare_runs` (biomarker.evaluate.compare) pairs AUROCs only; a screener is judged first by its decision, so
this pairs the decision too. Reads `biomarker evaluate` output folders (`<set>_subjects.csv`, `metrics.json`).

    python scripts/dr/paired_decisions.py EVAL_A EVAL_B [EVAL_A2 EVAL_B2 ...]
"""
import csv, json, sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

RESAMPLES, SEED = 2000, 0


def subjects(folder: Path, set_name: str) -> dict[str, tuple[int, float]]:
    with open(folder / f"{set_name}_subjects.csv", newline="") as handle:
        return {row["subject"]: (int(row["label"]), float(row["probability"])) for row in csv.DictReader(handle)}


def measures(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> np.ndarray:
    referred = probabilities >= threshold
    sensitivity, specificity = referred[labels == 1].mean(), (~referred[labels == 0]).mean()
    return np.array([sensitivity, specificity, sensitivity + specificity - 1, roc_auc_score(labels, probabilities)])


def compare(folder_a: Path, folder_b: Path) -> None:
    sets_a, sets_b = (json.loads((f / "metrics.json").read_text())["sets"] for f in (folder_a, folder_b))
    for set_name in [s for s in sets_a if s in sets_b and s != "all" and "mild" not in s]:
        a, b = subjects(folder_a, set_name), subjects(folder_b, set_name)
        common = sorted(set(a) & set(b))
        labels = np.array([a[s][0] for s in common])
        pa, pb = (np.array([d[s][1] for s in common]) for d in (a, b))
        ta, tb = sets_a[set_name]["threshold"], sets_b[set_name]["threshold"]
        point = measures(labels, pb, tb) - measures(labels, pa, ta)
        rng = np.random.default_rng(SEED)
        classes = [np.flatnonzero(labels == k) for k in (0, 1)]
        draws = []
        for _ in range(RESAMPLES):
            index = np.concatenate([rng.choice(c, len(c)) for c in classes])
            draws.append(measures(labels[index], pb[index], tb) - measures(labels[index], pa[index], ta))
        low, high = np.percentile(np.array(draws), [2.5, 97.5], axis=0)
        cells = [f"{p:+.3f} [{lo:+.3f}, {hi:+.3f}]" for p, lo, hi in zip(point, low, high)]
        print(f"| {set_name} | {len(common)} | " + " | ".join(cells) + " |")


print("| set | subjects | sensitivity B − A | specificity B − A | Youden's J B − A | AUROC B − A |")
print("|---|---|---|---|---|---|")
for a, b in zip(sys.argv[1::2], sys.argv[2::2]):
    compare(Path(a), Path(b))
