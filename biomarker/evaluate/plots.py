"""PNG plots for an evaluation: ROC curve, reliability (calibration) diagram, confusion matrix.

Titles carry the data's provenance ("SYNTHETIC data") so a plot lifted out of a report cannot pass for a
clinical result.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402


def _title(text: str, synthetic: bool) -> str:
    return f"{text}\n(SYNTHETIC data, not clinically validated)" if synthetic else text


def roc_png(scores: np.ndarray, labels: np.ndarray, auroc: float, path: Path, *, name: str, synthetic: bool) -> Path:
    false_pos, true_pos, _ = roc_curve(labels, scores)
    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    axis.plot(false_pos, true_pos, label=f"AUROC {auroc:.3f}")
    axis.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axis.set(xlabel="1 - specificity", ylabel="sensitivity", title=_title(f"ROC, subjects: {name}", synthetic))
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def calibration_png(probabilities: np.ndarray, labels: np.ndarray, ece: float, path: Path, *, name: str, synthetic: bool, bins: int = 10) -> Path:
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    centres, observed, counts = [], [], []
    for b in range(bins):
        members = index == b
        if members.any():
            centres.append(probabilities[members].mean())
            observed.append(labels[members].mean())
            counts.append(int(members.sum()))
    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    axis.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axis.plot(centres, observed, marker="o", label=f"ECE {ece:.3f}")
    for x, y, count in zip(centres, observed, counts):
        axis.annotate(str(count), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    axis.set(xlabel="predicted probability of RI", ylabel="observed fraction with RI", xlim=(0, 1), ylim=(0, 1))
    axis.set_title(_title(f"Calibration: {name}", synthetic))
    axis.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def confusion_png(scores: np.ndarray, labels: np.ndarray, threshold: float, path: Path, *, name: str, synthetic: bool) -> Path:
    positive = scores >= threshold
    matrix = np.array(
        [[np.sum(~positive & (labels == 0)), np.sum(positive & (labels == 0))],
         [np.sum(~positive & (labels == 1)), np.sum(positive & (labels == 1))]]
    )
    figure, axis = plt.subplots(figsize=(4.5, 4.2))
    axis.imshow(matrix, cmap="Blues")
    for (row, col), value in np.ndenumerate(matrix):
        axis.text(col, row, str(value), ha="center", va="center", fontsize=14)
    axis.set_xticks([0, 1], ["negative", "positive (refer)"])
    axis.set_yticks([0, 1], ["control", "RI"])
    axis.set(xlabel=f"decision at threshold {threshold:.3f}", ylabel="truth")
    axis.set_title(_title(f"Confusion, subjects: {name}", synthetic))
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
