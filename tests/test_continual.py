"""Adapter-incremental continual learning: earlier cohorts are untouched; the report measures forgetting."""

from __future__ import annotations

import math

import pytest

from biomarker.finetune.continual import CohortScore, ForgettingReport, Stage, plot_forgetting


def _stage(cohort: str, aurocs: dict[str, float], trainable: int = 10, total: int = 1000) -> Stage:
    scores = {c: CohortScore(auroc=a, ci_low=a - 0.05, ci_high=min(1.0, a + 0.05), n_subjects=20) for c, a in aurocs.items()}
    return Stage(cohort=cohort, version=f"m@{cohort}", scores=scores, trainable_params=trainable, total_params=total)


@pytest.fixture
def forgetful() -> ForgettingReport:
    return ForgettingReport(
        method="full",
        stages=[
            _stage("a", {"a": 0.90}),
            _stage("b", {"a": 0.70, "b": 0.95}),
            _stage("c", {"a": 0.60, "b": 0.85, "c": 0.92}),
        ],
    )


def test_backward_transfer_is_mean_change_of_earlier_cohorts(forgetful: ForgettingReport):
    assert math.isnan(forgetful.backward_transfer(0))
    assert forgetful.backward_transfer(1) == pytest.approx(0.70 - 0.90)
    assert forgetful.backward_transfer() == pytest.approx(((0.60 - 0.90) + (0.85 - 0.95)) / 2)


def test_forgetting_is_best_minus_final(forgetful: ForgettingReport):
    assert forgetful.forgetting("a") == pytest.approx(0.30)
    assert forgetful.forgetting("b") == pytest.approx(0.10)
    assert forgetful.forgetting("c") == 0.0


def test_markdown_has_a_row_per_stage_and_says_synthetic(forgetful: ForgettingReport):
    table = forgetful.to_markdown()
    assert "synthetic cohorts a → b → c" in table
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 3  # header + one per stage
    assert "0.600 [0.550, 0.650]" in rows[-1] and "-0.200" in rows[-1]
    assert "—" in rows[1]  # cohort b not yet seen after stage 1


def test_plot_writes_a_png(tmp_path, forgetful: ForgettingReport):
    steady = ForgettingReport(method="adapter", stages=[_stage("a", {"a": 0.9}), _stage("b", {"a": 0.9, "b": 0.9})])
    png = plot_forgetting([steady, forgetful], tmp_path / "forgetting.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
