"""Two runs on the same subjects: the AUROC difference per set, with a paired bootstrap 95 % CI.

WHY paired: two models scored on the same test subjects share those subjects' difficulty. Resampling the
subjects once for both models cancels it, so a difference much smaller than either model's own CI can still be
told apart from zero, and an overlap of the two CIs is not mistaken for "no difference". It is how the
comparison table says whether a deep model beats a baseline rather than leaving the reader to compare intervals.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biomarker.evaluate.metrics import MetricError, SubjectScores, auroc, bootstrap_values, percentile_ci
from biomarker.evaluate.report import read_subject_scores, set_slug


@dataclass(frozen=True)
class PairedDifference:
    """AUROC of run A minus run B on one set's subjects. `a_not_better` is the share of bootstrap resamples in
    which A's AUROC does not exceed B's: a one-sided bootstrap p-value for "A beats B"."""

    set_name: str
    n: int
    auroc_a: float
    auroc_b: float
    difference: float
    difference_ci: tuple[float, float]
    a_not_better: float


def report_dir(run: str | Path) -> Path:
    """The folder holding a run's metrics.json: a finetune run keeps it in report/, a baseline or an
    evaluation in the run folder itself."""
    run = Path(run)
    for folder in (run / "report", run):
        if (folder / "metrics.json").exists():
            return folder
    raise MetricError(f"{run} has no metrics.json (neither in it nor in its report/ folder): not a measured run")


def subject_sets(run: str | Path) -> dict[str, SubjectScores]:
    """Every measured set of a run, as the per-subject scores its report saved."""
    folder = report_dir(run)
    names = json.loads((folder / "metrics.json").read_text())["sets"]
    missing = [n for n in names if not (folder / f"{set_slug(n)}_subjects.csv").exists()]
    if missing:
        raise MetricError(f"{folder} has no per-subject scores for {missing}: measure the run again "
                          "(`biomarker recalibrate` or `biomarker evaluate`) to write them")
    return {name: read_subject_scores(folder / f"{set_slug(name)}_subjects.csv") for name in names}


def paired_auroc_difference(a: SubjectScores, b: SubjectScores, set_name: str = "", resamples: int = 2000,
                            seed: int = 0) -> PairedDifference:
    """A's AUROC minus B's on the same subjects (matched by id; their labels must agree)."""
    if sorted(a.subjects) != sorted(b.subjects):
        only = sorted(set(a.subjects) ^ set(b.subjects))
        raise MetricError(f"set {set_name!r}: the runs scored different subjects ({len(only)} in one only, e.g. {only[:3]})")
    order = {subject: index for index, subject in enumerate(b.subjects)}
    matched = np.array([order[subject] for subject in a.subjects])
    if not np.array_equal(a.labels, b.labels[matched]):
        raise MetricError(f"set {set_name!r}: the runs give some subjects different labels")
    paired = np.stack([a.scores, b.scores[matched]], axis=1)
    difference = lambda s, y: auroc(s[:, 0], y) - auroc(s[:, 1], y)  # noqa: E731
    resampled = bootstrap_values(difference, paired, a.labels, resamples=resamples, seed=seed)
    return PairedDifference(
        set_name, int(len(a.labels)), auroc(a.scores, a.labels), auroc(b.scores[matched], a.labels),
        difference(paired, a.labels), percentile_ci(resampled), float(np.mean(resampled <= 0)),
    )


ALL_ROWS = " (all rows)"


def set_key(name: str) -> str:
    """A set's name without the " (all rows)" that a training run's extra manifests carry, so the same cohort
    measured by `biomarker evaluate` (named by cohort alone) and by a run or baseline pairs up."""
    return name.replace(ALL_ROWS, "")


def common_subjects(a: SubjectScores, b: SubjectScores) -> tuple[SubjectScores, SubjectScores]:
    """Both runs' scores on the subjects both scored (e.g. without a clip one model's quality gate refused)."""
    shared = set(a.subjects) & set(b.subjects)

    def keep(scores: SubjectScores) -> SubjectScores:
        mask = np.array([subject in shared for subject in scores.subjects])
        return SubjectScores(scores.scores[mask], scores.labels[mask], [s for s, m in zip(scores.subjects, mask) if m],
                             scores.recordings[mask])

    return keep(a), keep(b)


def compare_runs(run_a: str | Path, run_b: str | Path, resamples: int = 2000, seed: int = 0,
                 only_common_subjects: bool = False) -> list[PairedDifference]:
    """One paired difference per set both runs measured (matched by `set_key`), in run A's order, named as in A.

    `only_common_subjects` pairs each set on the subjects both runs scored instead of refusing a set where one run
    scored a subject the other did not (the screener's quality gate refuses clips a baseline scores); `n` says
    how many subjects were paired."""
    sets_a, sets_b = subject_sets(run_a), subject_sets(run_b)
    keyed_b = {set_key(name): scores for name, scores in sets_b.items()}
    shared = [name for name in sets_a if set_key(name) in keyed_b]
    if not shared:
        raise MetricError(f"{run_a} and {run_b} measured no set in common ({sorted(sets_a)} vs {sorted(sets_b)})")
    pairs = [(name, sets_a[name], keyed_b[set_key(name)]) for name in shared]
    if only_common_subjects:
        pairs = [(name, *common_subjects(a, b)) for name, a, b in pairs]
    return [paired_auroc_difference(a, b, name, resamples, seed) for name, a, b in pairs]


def markdown(differences: list[PairedDifference], name_a: str, name_b: str) -> str:
    lines = [
        f"| set | n subjects | AUROC {name_a} | AUROC {name_b} | difference [paired 95% CI] | resamples where {name_a} is not better |",
        "|---|---|---|---|---|---|",
    ]
    for d in differences:
        lines.append(f"| {d.set_name} | {d.n} | {d.auroc_a:.3f} | {d.auroc_b:.3f} | {d.difference:+.3f} "
                     f"[{d.difference_ci[0]:+.3f}, {d.difference_ci[1]:+.3f}] | {d.a_not_better:.1%} |")
    return "\n".join(lines) + "\n"
