"""What continual learning is judged by: after each stage, every seen cohort's test AUROC with its CI, backward
transfer and forgetting per cohort, and the trainable share; as a Markdown table, JSON and a PNG (what
`biomarker evaluate --bundle` and the demonstration write). The mechanism is `biomarker.finetune.continual`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from biomarker.finetune.methods import ContinualError


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
    import matplotlib  # lazy: heavy (over a second on a busy 2-core machine); only plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    png = Path(png)
    columns = min(3, len(reports))  # wrap: method x attention runs can make 6 panels
    rows = math.ceil(len(reports) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.0 * columns, 3.8 * rows), sharey=True, squeeze=False)
    for ax in axes.flat[len(reports):]:
        ax.set_visible(False)
    for ax, report in zip(axes.flat, reports):
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
    for row in axes:
        row[0].set_ylabel("subject-level AUROC (test)")
    axes.flat[len(reports) - 1].legend(title="cohort", fontsize=8)
    synthetic = any(r.synthetic for r in reports)
    fig.suptitle(("SYNTHETIC cohorts — " if synthetic else "") + "AUROC per cohort after each stage")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def write_forgetting_report(reports: Sequence[ForgettingReport], out_dir: str | Path) -> dict[str, Path]:
    """forgetting.md (one table per method), forgetting.json and forgetting.png in `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / "forgetting.md", "json": out_dir / "forgetting.json", "png": out_dir / "forgetting.png"}
    paths["markdown"].write_text("\n".join(r.to_markdown() for r in reports), encoding="utf-8")
    paths["json"].write_text(json.dumps({r.method: r.to_dict() for r in reports}, indent=2), encoding="utf-8")
    plot_forgetting(reports, paths["png"])
    return paths


def attention_comparison(full: ForgettingReport, other: ForgettingReport) -> str:
    """Markdown: each cohort's test AUROC [95% CI] after the last stage under `other`'s attention next to `full`'s.

    Both runs must cover the same cohorts in the same order (the same data, seed and steps make the attention
    pattern the only difference). For adapter methods the last stage's score is the score the cohort got when
    it was added, since adding later cohorts changes nothing.
    """
    if full.cohorts != other.cohorts:
        raise ContinualError(f"cannot compare {full.method} with {other.method}: cohorts {full.cohorts} vs {other.cohorts}")
    rows = [f"| cohort | {full.method} AUROC [95% CI] | {other.method} AUROC [95% CI] | difference |", "|---|---|---|---|"]
    for cohort in full.cohorts:
        a, b = full.stages[-1].scores[cohort], other.stages[-1].scores[cohort]
        rows.append(f"| {cohort} | {a.auroc:.3f} [{a.ci_low:.3f}, {a.ci_high:.3f}] | "
                    f"{b.auroc:.3f} [{b.ci_low:.3f}, {b.ci_high:.3f}] | {_signed(b.auroc - a.auroc)} |")
    mean = lambda r: sum(r.stages[-1].scores[c].auroc for c in r.cohorts) / len(r.cohorts)  # noqa: E731
    rows.append(f"| mean | {mean(full):.3f} | {mean(other):.3f} | {_signed(mean(other) - mean(full))} |")
    return "\n".join(rows) + "\n"


def _signed(difference: float) -> str:
    """'+0.012'; a difference that rounds to zero prints '+0.000', never '-0.000'."""
    return f"{round(difference, 3) + 0.0:+.3f}"
