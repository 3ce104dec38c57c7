"""Adapter-incremental continual learning: add a cohort to a bundle without changing any earlier cohort.

WHY adapters per cohort (Selvaraj et al., INTERSPEECH 2023, "Adapter Incremental Continual Learning of Efficient
Audio Spectrogram Transformers"; AAT, ICASSP 2024): a new hospital, language or microphone teaches the model
something, but retraining the shared encoder on it erases what earlier cohorts taught (catastrophic forgetting).
Keeping the pretrained encoder frozen and giving each cohort its own small adapter set and head means a new
cohort only ever adds parameters; every earlier cohort's path through the network is untouched, so its outputs
stay bit-identical, and the cohort name (the task id) selects the path at inference.

This module owns three things:
- `add_cohort`: the researcher's operation (and what `biomarker finetune --cohort NAME --bundle DIR` calls).
- `sequential_full_finetune`: the baseline that forgets: one model fully fine-tuned on each cohort in turn.
- `forgetting_report`: after each stage, AUROC per cohort with CIs, backward transfer and trainable %, as a
  Markdown table and a PNG (what `biomarker evaluate --bundle` shows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

STAGE_METHODS = ("adapter", "conv-adapter", "full")


# ------------------------------------------------------------------------------------------------- report
@dataclass(frozen=True)
class CohortScore:
    """Subject-level AUROC of one cohort's test split after one stage, with its bootstrap 95% CI."""

    auroc: float
    ci_low: float
    ci_high: float
    n_subjects: int


@dataclass(frozen=True)
class Stage:
    """The state after training on `cohort`: every seen cohort's test score and how much was trainable."""

    cohort: str
    version: str  # model reference ('name@version') this stage produced, or a label for an unsaved baseline
    scores: dict[str, CohortScore]  # cohort -> score, for every cohort seen so far (incl. this one)
    trainable_params: int
    total_params: int

    @property
    def trainable_percent(self) -> float:
        return 100.0 * self.trainable_params / self.total_params


@dataclass
class ForgettingReport:
    """A method's run over a cohort sequence (R[j][i] = AUROC on cohort i after stage j).

    Backward transfer (Lopez-Paz & Ranzato, 2017): BWT = mean over i < T of (R[T][i] - R[i][i]); negative means
    forgetting. Per-cohort forgetting = best AUROC a cohort ever had minus its AUROC at the end.
    """

    method: str
    stages: list[Stage]
    synthetic: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def cohorts(self) -> list[str]:
        return [stage.cohort for stage in self.stages]

    def auroc(self, stage_index: int, cohort: str) -> float:
        score = self.stages[stage_index].scores.get(cohort)
        return score.auroc if score is not None else math.nan

    def backward_transfer(self, upto_stage: int | None = None) -> float:
        """BWT after stage `upto_stage` (default: the last); NaN when only one cohort has been seen."""
        last = len(self.stages) - 1 if upto_stage is None else upto_stage
        earlier = self.cohorts[:last]
        if not earlier:
            return math.nan
        return sum(self.auroc(last, c) - self.auroc(i, c) for i, c in enumerate(earlier)) / len(earlier)

    def forgetting(self, cohort: str) -> float:
        """Best AUROC this cohort reached at any stage minus its AUROC after the last stage (≥ 0)."""
        first = self.cohorts.index(cohort)
        history = [self.auroc(j, cohort) for j in range(first, len(self.stages))]
        return max(history) - history[-1]

    def to_markdown(self) -> str:
        """One row per stage: AUROC [95% CI] per cohort, BWT so far, trainable % of that stage."""
        label = "synthetic " if self.synthetic else ""
        header = ["after stage", "version", *[f"{c} AUROC [95% CI]" for c in self.cohorts], "BWT", "trainable %"]
        rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for j, stage in enumerate(self.stages):
            cells = [f"{j + 1}: +{stage.cohort}", f"`{stage.version}`"]
            for cohort in self.cohorts:
                score = stage.scores.get(cohort)
                cells.append(
                    "—" if score is None else f"{score.auroc:.3f} [{score.ci_low:.3f}, {score.ci_high:.3f}]"
                )
            bwt = self.backward_transfer(j)
            cells.append("—" if math.isnan(bwt) else f"{bwt:+.3f}")
            cells.append(f"{stage.trainable_percent:.2f}")
            rows.append("| " + " | ".join(cells) + " |")
        forgetting = ", ".join(f"{c} {self.forgetting(c):.3f}" for c in self.cohorts)
        lines = [
            f"**{self.method}** on {label}cohorts {' → '.join(self.cohorts)} (subject-level AUROC on each cohort's "
            "held-out test split, bootstrap 95% CI).",
            "",
            *rows,
            "",
            f"Forgetting (best − final AUROC): {forgetting}.",
            *self.notes,
        ]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "synthetic": self.synthetic,
            "cohorts": self.cohorts,
            "backward_transfer": self.backward_transfer(),
            "forgetting": {c: self.forgetting(c) for c in self.cohorts},
            "stages": [
                {
                    "cohort": s.cohort,
                    "version": s.version,
                    "trainable_params": s.trainable_params,
                    "total_params": s.total_params,
                    "trainable_percent": s.trainable_percent,
                    "scores": {c: vars(v) for c, v in s.scores.items()},
                }
                for s in self.stages
            ],
        }


def plot_forgetting(reports: Sequence[ForgettingReport], png: str | Path) -> Path:
    """One panel per method: AUROC of each cohort (line) across stages (x), with CI bars.

    A cohort whose line falls after later stages was forgotten; flat lines are what adapters promise.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    png = Path(png)
    fig, axes = plt.subplots(1, len(reports), figsize=(5.0 * len(reports), 3.8), sharey=True, squeeze=False)
    for ax, report in zip(axes[0], reports):
        stages = range(1, len(report.stages) + 1)
        for i, cohort in enumerate(report.cohorts):
            xs = [j + 1 for j in range(i, len(report.stages))]
            scores = [report.stages[j].scores[cohort] for j in range(i, len(report.stages))]
            ys = [s.auroc for s in scores]
            err = [[y - s.ci_low for y, s in zip(ys, scores)], [s.ci_high - y for y, s in zip(ys, scores)]]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=cohort)
        bwt = report.backward_transfer()
        ax.set_title(f"{report.method} (BWT {bwt:+.3f})" if not math.isnan(bwt) else report.method)
        ax.set_xticks(list(stages), [f"+{c}" for c in report.cohorts], rotation=20)
        ax.set_xlabel("after training stage")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("subject-level AUROC (test)")
    axes[0][-1].legend(title="cohort", fontsize=8)
    synthetic = any(r.synthetic for r in reports)
    fig.suptitle(("SYNTHETIC cohorts — " if synthetic else "") + "AUROC per cohort after each stage")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


# ------------------------------------------------------------------------------------------- add a cohort
@dataclass(frozen=True)
class CohortAdded:
    """What `add_cohort` produced: the new immutable model version and how small the cohort's share is."""

    ref: str  # 'name@version' of the new bundle version (also `ScreeningModel.version` inside it)
    path: Path
    cohort: str
    method: str
    trainable_params: int  # parameters added (and trained) for this cohort: its adapter set + head
    total_params: int  # parameters on this cohort's inference path: shared encoder + its adapters + head

    @property
    def trainable_percent(self) -> float:
        return 100.0 * self.trainable_params / self.total_params


def add_cohort(
    bundle: str | Path,
    cohort: str,
    manifest: str | Path,
    *,
    method: str = "adapter",
    encoder: str | Path | None = None,
    name: str | None = None,
    steps: int = 300,
    lr: float = 1e-3,
    batch_size: int = 16,
    seed: int = 0,
    device: str = "auto",
    out_dir: str | Path | None = None,
) -> CohortAdded:
    """Add `cohort` (train/val rows of `manifest`) to `bundle` and publish the result as a new version.

    `bundle`: a catalog reference ('ri-screener', 'ri-screener@3') or a bundle directory; when it names nothing
    yet, `encoder` (a pretrained encoder dir or name) starts a new bundle called `name`. The encoder and every
    existing cohort's adapters and head are frozen; only the new cohort's adapter set (`method` 'adapter' or
    'conv-adapter') and head train. Threshold and temperature are fitted on the cohort's validation rows. The
    new version is written by the catalog (never over an existing one) with a card naming the parent version,
    the cohorts, the trainable share and that the data were synthetic when they were.
    """
    raise NotImplementedError("add_cohort lands with ScreeningModel.add_cohort and the finetune step functions")
