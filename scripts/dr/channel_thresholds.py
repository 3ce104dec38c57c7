"""Would a threshold per channel make ri-screener-ssamba's decision travel? (issue 22)

Fits one threshold for telephone-band audio and one for the rest on the validation pool by channel (the training
generator's own validation subjects: no independent set chooses anything), each at sensitivity 0.90 there. It then
applies them to the independent sets' subjects, a telephone set getting the telephone threshold. The output is
the shipped single threshold's (sensitivity, specificity) beside the per-channel one's.

    python scripts/dr/channel_thresholds.py runs/dr/eval-dr-ssamba-val/all_subjects.csv \
        runs/dr/eval-dr-ssamba-real/independent-real*_subjects.csv runs/dr/eval-dr-ssamba-espeak/independent-*_subjects.csv
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

TELEPHONE_CHANNELS = ("val-telephone-gsm", "val-telephone-ulaw")
SHIPPED_BUNDLE = Path("pretrained/ri-screener-ssamba")
TARGET_SENSITIVITY = 0.90


def subjects(path: Path) -> list[tuple[str, int, float]]:
    """(cohort, label, probability) per subject of an `evaluate` subjects CSV."""
    with path.open(newline="") as handle:
        return [(row["subject"].split("/")[0], int(row["label"]), float(row["probability"]))
                for row in csv.DictReader(handle)]


def threshold_at_sensitivity(rows: list[tuple[str, int, float]], sensitivity: float) -> float:
    """The highest threshold that still refers `sensitivity` of the patients."""
    patients = np.sort([p for _, label, p in rows if label == 1])
    return float(patients[int(np.floor((1 - sensitivity) * len(patients)))])


def rates(rows: list[tuple[str, int, float]], threshold: float) -> tuple[float, float]:
    """(sensitivity, specificity) when probability >= threshold refers."""
    labels = np.array([label for _, label, _ in rows])
    probabilities = np.array([p for _, _, p in rows])
    return float((probabilities[labels == 1] >= threshold).mean()), float((probabilities[labels == 0] < threshold).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("validation", type=Path)
    parser.add_argument("independent", type=Path, nargs="+")
    args = parser.parse_args()
    bundle = json.loads((SHIPPED_BUNDLE / "config.json").read_text())
    shipped_threshold = float(bundle["cohorts"][bundle["default_cohort"]]["threshold"])
    validation = subjects(args.validation)
    telephone = [row for row in validation if row[0] in TELEPHONE_CHANNELS]
    wideband = [row for row in validation if row[0] not in TELEPHONE_CHANNELS]
    thresholds = {True: threshold_at_sensitivity(telephone, TARGET_SENSITIVITY),
                  False: threshold_at_sensitivity(wideband, TARGET_SENSITIVITY)}
    print(f"validation: telephone threshold {thresholds[True]:.3f} ({len(telephone)} subjects), "
          f"wideband {thresholds[False]:.3f} ({len(wideband)})")
    print("set | shipped threshold: sensitivity, specificity | per-channel threshold: sensitivity, specificity")
    for path in args.independent:
        rows = subjects(path)
        per_channel = thresholds["telephone" in path.name]
        shipped, channel = rates(rows, shipped_threshold), rates(rows, per_channel)
        print(f"{path.name} | {shipped[0]:.3f}, {shipped[1]:.3f} | {per_channel:.3f}: {channel[0]:.3f}, {channel[1]:.3f}")


if __name__ == "__main__":
    main()
