"""Paired differences between two candidates' decisions on the same subjects: sensitivity, specificity and
Youden's J (sensitivity + specificity - 1) at each candidate's own shipped threshold, and AUROC, with 95 %
bootstrap CIs over subjects resampled within each class (both candidates see the same resample).

`compare_runs` (biomarker.evaluate.compare) pairs AUROCs only; a screener is judged first by its decision, so
this pairs the decision too, on the same per-subject scores and the same stratified resampling.

    python scripts/dr/paired_decisions.py EVAL_A EVAL_B [EVAL_A2 EVAL_B2 ...]
"""
import json, sys
from pathlib import Path

import numpy as np

from biomarker.evaluate.compare import common_subjects, report_dir, subject_sets
from biomarker.evaluate.metrics import auroc, bootstrap_ci

RESAMPLES, SEED = 2000, 0


def thresholds(run: Path) -> dict[str, float]:
    return {name: m["threshold"] for name, m in json.loads((report_dir(run) / "metrics.json").read_text())["sets"].items()}


def compare(run_a: Path, run_b: Path) -> None:
    sets_a, sets_b = subject_sets(run_a), subject_sets(run_b)
    limits_a, limits_b = thresholds(run_a), thresholds(run_b)
    for name in [n for n in sets_a if n in sets_b and n != "all" and "mild" not in n]:
        a, b = common_subjects(sets_a[name], sets_b[name])
        order_a, order_b = np.argsort(a.subjects), np.argsort(b.subjects)  # the same subjects, aligned by id
        labels, paired = a.labels[order_a], np.stack([a.scores[order_a], b.scores[order_b]], axis=1)

        def referred(scores: np.ndarray, labels: np.ndarray, model: int) -> tuple[float, float]:
            positive = scores[:, model] >= (limits_a[name], limits_b[name])[model]
            return positive[labels == 1].mean(), (~positive[labels == 0]).mean()

        measures = {
            "sensitivity": lambda s, y: referred(s, y, 1)[0] - referred(s, y, 0)[0],
            "specificity": lambda s, y: referred(s, y, 1)[1] - referred(s, y, 0)[1],
            "Youden's J": lambda s, y: sum(referred(s, y, 1)) - sum(referred(s, y, 0)),
            "AUROC": lambda s, y: auroc(s[:, 1], y) - auroc(s[:, 0], y),
        }
        cells = []
        for measure in measures.values():
            low, high = bootstrap_ci(measure, paired, labels, resamples=RESAMPLES, seed=SEED)
            cells.append(f"{measure(paired, labels):+.3f} [{low:+.3f}, {high:+.3f}]")
        print(f"| {name} | {len(labels)} | " + " | ".join(cells) + " |")


print("| set | subjects | sensitivity B − A | specificity B − A | Youden's J B − A | AUROC B − A |")
print("|---|---|---|---|---|---|")
for a, b in zip(sys.argv[1::2], sys.argv[2::2]):
    compare(Path(a), Path(b))
