"""`biomarker compare`: paired AUROC differences of two measured runs on the same subjects."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from biomarker.cli import app
from biomarker.evaluate.calibration import sigmoid
from biomarker.evaluate.compare import compare_runs, paired_auroc_difference
from biomarker.evaluate.metrics import MetricError, SubjectScores, auroc
from biomarker.evaluate.report import ReportConfig, SetMeasurements, write_report

SUBJECTS = 300


def _measured_run(folder, evidence: np.ndarray, labels: np.ndarray, noise: float, seed: int, subjects=None):
    """A run folder as `biomarker finetune` leaves it (report/ with metrics.json and per-subject scores): a model
    that sees each subject's evidence plus its own noise."""
    rng = np.random.default_rng(seed)
    subjects = subjects or [f"s{i}" for i in range(len(labels))]
    probabilities = sigmoid(evidence + rng.normal(0.0, noise, len(labels)))
    config = ReportConfig(bootstrap_resamples=50)
    results = SetMeasurements(folder / "report", config)
    results.add("test", probabilities, labels, subjects, 0.5)
    write_report(folder / "report", results.measured, title="toy", config=config)
    return folder


@pytest.fixture
def cohort():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, SUBJECTS)
    return rng.normal(np.where(labels, 1.0, -1.0), 1.0), labels


def test_a_sharper_model_beats_a_noisier_one_on_the_same_subjects(tmp_path, cohort):
    evidence, labels = cohort
    sharp = _measured_run(tmp_path / "sharp", evidence, labels, noise=0.3, seed=1)
    noisy = _measured_run(tmp_path / "noisy", evidence, labels, noise=2.0, seed=2)
    (difference,) = compare_runs(sharp, noisy, resamples=500)
    assert difference.set_name == "test" and difference.n == SUBJECTS
    assert difference.difference == pytest.approx(difference.auroc_a - difference.auroc_b)
    assert difference.difference_ci[0] > 0 and difference.a_not_better < 0.025
    (reverse,) = compare_runs(noisy, sharp, resamples=500)
    assert reverse.difference == pytest.approx(-difference.difference) and reverse.a_not_better > 0.975


def test_the_paired_interval_is_narrower_than_either_runs_own(tmp_path, cohort):
    """Two close models: their own CIs overlap widely, the paired one is much tighter (shared subjects cancel)."""
    evidence, labels = cohort
    a = _measured_run(tmp_path / "a", evidence, labels, noise=0.3, seed=3)
    b = _measured_run(tmp_path / "b", evidence, labels, noise=0.4, seed=4)
    (difference,) = compare_runs(a, b, resamples=500)
    own = json.loads((a / "report" / "metrics.json").read_text())["auroc_ci"]
    assert difference.difference_ci[1] - difference.difference_ci[0] < 0.5 * (own[1] - own[0])


def test_a_run_compared_with_itself_differs_by_nothing(tmp_path, cohort):
    run = _measured_run(tmp_path / "run", *cohort, noise=1.0, seed=5)
    (difference,) = compare_runs(run, run, resamples=200)
    assert difference.difference == 0 and difference.difference_ci == (0.0, 0.0) and difference.a_not_better == 1.0


def test_subjects_are_matched_by_id_not_by_row_order(cohort):
    evidence, labels = cohort
    names = [f"s{i}" for i in range(SUBJECTS)]
    a = SubjectScores(sigmoid(evidence), labels, names, np.ones(SUBJECTS, int))
    order = np.random.default_rng(6).permutation(SUBJECTS)
    shuffled = SubjectScores(a.scores[order], labels[order], [names[i] for i in order], np.ones(SUBJECTS, int))
    assert paired_auroc_difference(a, shuffled, resamples=100).difference == 0
    assert auroc(shuffled.scores, shuffled.labels) == pytest.approx(auroc(a.scores, a.labels))


def test_runs_on_different_subjects_or_labels_are_refused_by_set_name(tmp_path, cohort):
    evidence, labels = cohort
    a = SubjectScores(sigmoid(evidence), labels, [f"s{i}" for i in range(SUBJECTS)], np.ones(SUBJECTS, int))
    other = SubjectScores(a.scores, labels, [f"t{i}" for i in range(SUBJECTS)], a.recordings)
    with pytest.raises(MetricError, match="set 'noisy test': the runs scored different subjects"):
        paired_auroc_difference(a, other, "noisy test")
    flipped = SubjectScores(a.scores, 1 - labels, a.subjects, a.recordings)
    with pytest.raises(MetricError, match="different labels"):
        paired_auroc_difference(a, flipped, "noisy test")


def test_a_run_measured_before_subject_scores_were_saved_says_how_to_get_them(tmp_path, cohort):
    run = _measured_run(tmp_path / "old", *cohort, noise=1.0, seed=7)
    (run / "report" / "test_subjects.csv").unlink()
    with pytest.raises(MetricError, match="measure the run again"):
        compare_runs(run, run)
    with pytest.raises(MetricError, match="not a measured run"):
        compare_runs(tmp_path / "nothing", run)


def test_cli_compare_prints_and_writes_the_table(tmp_path, cohort):
    evidence, labels = cohort
    sharp = _measured_run(tmp_path / "sharp", evidence, labels, noise=0.3, seed=1)
    noisy = _measured_run(tmp_path / "noisy", evidence, labels, noise=2.0, seed=2)
    out = tmp_path / "cmp" / "sharp-vs-noisy.md"
    result = CliRunner().invoke(app, ["compare", str(sharp), str(noisy), "--out", str(out), "--resamples", "200"])
    assert result.exit_code == 0, result.output
    assert "| test | 300 |" in result.output and out.read_text() in result.output
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["sets"][0]["difference"] > 0 and saved["resamples"] == 200


def test_the_card_states_the_paired_difference_against_each_rival(tmp_path, cohort):
    from biomarker.finetune.card import paired_comparisons

    evidence, labels = cohort
    model = _measured_run(tmp_path / "model", evidence, labels, noise=0.3, seed=1)
    rivals = {"eGeMAPS + LR": _measured_run(tmp_path / "egemaps", evidence, labels, noise=2.0, seed=2),
              "MFCC + LR": model}
    section = paired_comparisons(model, rivals, resamples=200)
    (beaten,) = compare_runs(model, rivals["eGeMAPS + LR"], resamples=200)
    assert "### This model vs eGeMAPS + LR" in section and "### This model vs MFCC + LR" in section
    assert f"| test | 300 | {beaten.auroc_a:.3f} | {beaten.auroc_b:.3f} | {beaten.difference:+.3f} [" in section
    assert "| +0.000 [+0.000, +0.000] | 100.0% |" in section  # against itself: a tie, never better


def _run_with_set(folder, name: str, probabilities: np.ndarray, labels: np.ndarray, subjects: list[str]):
    config = ReportConfig(bootstrap_resamples=50)
    results = SetMeasurements(folder / "report", config)
    results.add(name, probabilities, labels, subjects, 0.5)
    write_report(folder / "report", results.measured, title="toy", config=config)
    return folder


def test_an_evaluation_pairs_with_a_run_that_measured_the_same_cohort_as_an_extra_manifest(tmp_path, cohort):
    """`biomarker evaluate` names a set by its cohort, a run or baseline by "<cohort> (all rows)"; and the
    screener's quality gate may refuse a clip the baseline scored: the pair is then made on the shared subjects."""
    evidence, labels = cohort
    subjects = [f"s{i}" for i in range(SUBJECTS)]
    screener = _run_with_set(tmp_path / "a", "independent-real", sigmoid(evidence[1:]), labels[1:], subjects[1:])
    baseline = _run_with_set(tmp_path / "b", "independent-real (all rows)", sigmoid(0.5 * evidence), labels, subjects)
    with pytest.raises(MetricError, match="different subjects"):
        compare_runs(screener, baseline, resamples=50)
    (difference,) = compare_runs(screener, baseline, resamples=50, only_common_subjects=True)
    assert difference.set_name == "independent-real" and difference.n == SUBJECTS - 1
    assert difference.difference == pytest.approx(0.0, abs=1e-12)  # a monotone rescaling ranks alike
