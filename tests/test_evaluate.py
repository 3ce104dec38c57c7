"""Evaluation: subject-level metrics, CIs, threshold selection, temperature scaling, reports (the baselines:
test_baselines.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from biomarker.evaluate.calibration import calibrated, fit_calibration
from biomarker.evaluate.metrics import (
    MetricError,
    auroc,
    bootstrap_ci,
    expected_calibration_error,
    predictive_values,
    sensitivity_at_specificity,
    sensitivity_specificity,
    threshold_for_sensitivity,
    to_subjects,
)
from biomarker.evaluate.report import ReportConfig, SetMeasurements, fit_operating_point, measure, read_subject_scores, write_report


def _scores(n=200, separation=1.5, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n // 2)
    return rng.normal(labels * separation, 1.0), labels


def test_subjects_average_their_recordings_and_reject_mixed_labels():
    subject = to_subjects([0.2, 0.4, 0.9], [0, 0, 1], ["a", "a", "b"])
    assert subject.subjects == ["a", "b"]
    np.testing.assert_allclose(subject.scores, [0.3, 0.9])
    assert subject.recordings.tolist() == [2, 1]
    with pytest.raises(MetricError, match="subject 'a' has recordings with both labels"):
        to_subjects([0.2, 0.4], [0, 1], ["a", "a"])


def test_auroc_is_the_share_of_patient_control_pairs_ranked_right_ties_counting_half():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 60)
    scores = np.round(rng.normal(labels, 1.0), 1)  # rounded: many ties, within and across classes
    pairs = [(p, c) for p in scores[labels == 1] for c in scores[labels == 0]]
    by_pairs = np.mean([1.0 if p > c else 0.5 if p == c else 0.0 for p, c in pairs])
    assert auroc(scores, labels) == pytest.approx(by_pairs)
    assert auroc(scores, labels.astype(float)) == pytest.approx(by_pairs)
    assert auroc(np.array([0.1, 0.2, 0.9]), np.array([1, 0, 0])) == 0.0


def test_auroc_needs_both_classes():
    with pytest.raises(MetricError, match="both patients and controls"):
        auroc(np.array([0.1, 0.2]), np.array([1, 1]))


def test_threshold_reaches_target_sensitivity_and_is_the_highest_that_does():
    scores, labels = _scores()
    threshold = threshold_for_sensitivity(scores, labels, 0.9)
    sensitivity, _ = sensitivity_specificity(scores, labels, threshold)
    assert sensitivity >= 0.9
    higher = np.min(scores[scores > threshold])
    assert sensitivity_specificity(scores, labels, higher)[0] < 0.9


def test_sensitivity_at_specificity_respects_the_specificity():
    scores, labels = _scores()
    sensitivity, threshold = sensitivity_at_specificity(scores, labels, 0.95)
    _, specificity = sensitivity_specificity(scores, labels, threshold)
    assert specificity >= 0.95
    assert sensitivity == sensitivity_specificity(scores, labels, threshold)[0]


def test_predictive_values_follow_bayes():
    ppv, npv = predictive_values(0.9, 0.9, 0.5)
    assert ppv == pytest.approx(0.9) and npv == pytest.approx(0.9)
    ppv_rare, _ = predictive_values(0.9, 0.9, 0.01)
    assert ppv_rare < 0.1
    with pytest.raises(MetricError, match="prevalence"):
        predictive_values(0.9, 0.9, 0.0)


def test_bootstrap_ci_contains_the_estimate_and_narrows_with_more_subjects():
    small = _scores(n=40, seed=1)
    large = _scores(n=800, seed=1)
    low_s, high_s = bootstrap_ci(auroc, *small, resamples=300)
    low_l, high_l = bootstrap_ci(auroc, *large, resamples=300)
    assert low_s <= auroc(*small) <= high_s
    assert high_l - low_l < high_s - low_s


def test_temperature_scaling_fixes_overconfidence():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0.0, 2.0, 4000)
    labels = (rng.random(4000) < calibrated(true_logits, 1.0)).astype(int)  # labels drawn from calibrated odds
    overconfident = true_logits * 4
    temperature, bias, slope = fit_calibration(overconfident, labels)
    assert slope == 0.0  # no SNR given: no noise term
    assert 3.0 < temperature < 5.5 and abs(bias) < 0.2
    before = expected_calibration_error(calibrated(overconfident, 1.0), labels)
    after = expected_calibration_error(calibrated(overconfident, temperature, bias), labels)
    assert after < before / 2


def test_calibration_sharpens_logits_of_any_scale():
    rng = np.random.default_rng(2)
    true_logits = rng.normal(0.0, 2.0, 4000)
    labels = (rng.random(4000) < calibrated(true_logits, 1.0)).astype(int)
    temperature, bias, _ = fit_calibration(true_logits * 0.001, labels)  # a head that has barely moved its logits
    assert temperature == pytest.approx(0.001, rel=0.15) and abs(bias) < 0.2


def test_the_calibration_bias_removes_an_offset_that_temperature_alone_cannot():
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0.0, 2.0, 4000)
    labels = (rng.random(4000) < calibrated(true_logits, 1.0)).astype(int)
    shifted = true_logits + 2.5  # every recording looks more RI than it is (no T can move the 0.5 point)
    temperature, bias, _ = fit_calibration(shifted, labels)
    assert abs(temperature - 1.0) < 0.15 and abs(bias + 2.5) < 0.3
    best_temperature_only = min(expected_calibration_error(calibrated(shifted, t), labels) for t in np.geomspace(0.2, 20, 60))
    assert expected_calibration_error(calibrated(shifted, temperature, bias), labels) < 0.03 < best_temperature_only


def test_the_snr_term_calibrates_clean_and_noisy_recordings_that_one_bias_cannot():
    """Ward noise shifts every logit down (both classes): one (T, b) fitted on a clean+noisy mix is off in
    opposite directions for each condition; the quality gate's SNR as a covariate fixes both."""
    rng = np.random.default_rng(4)
    true_logits = rng.normal(0.0, 2.5, 6000)
    labels = (rng.random(6000) < calibrated(true_logits, 1.0)).astype(int)
    noisy = rng.random(6000) < 0.5
    snr_db = np.where(noisy, rng.normal(10, 5, 6000), rng.normal(36, 6, 6000))
    observed = true_logits - 2.0 * noisy  # the model says "less RI" under noise
    temperature, bias, slope = fit_calibration(observed, labels, snr_db)
    assert slope < -0.3  # a lower SNR earns a higher bias: noisy logits are lifted back
    with_snr = calibrated(observed, temperature, bias, slope, snr_db)
    t0, b0, _ = fit_calibration(observed, labels)
    without = calibrated(observed, t0, b0)
    for condition in (noisy, ~noisy):
        assert expected_calibration_error(with_snr[condition], labels[condition]) < 0.04
        assert expected_calibration_error(without[condition], labels[condition]) > 0.08
    with pytest.raises(MetricError, match="SNR"):
        calibrated(observed, temperature, bias, slope)


def test_the_snr_term_cannot_rank_patients_by_their_snr():
    """Patients' recordings estimate a lower SNR (breath noise in their pauses) while this model's logits carry
    almost nothing: the SNR term must not turn that into ranking, only correct what noise does to the logits."""
    rng = np.random.default_rng(7)
    labels = np.repeat([0, 1], 3000)
    snr_db = rng.normal(30.0, 6.0, 6000) - 8.0 * labels
    logits = rng.normal(0.0, 0.05, 6000) + 0.01 * labels  # nearly constant, like a head that learned little
    assert auroc(-snr_db, labels) > 0.8  # the SNR alone would rank patients well
    temperature, bias, slope = fit_calibration(logits, labels, snr_db)
    assert abs(slope) < 0.05
    probabilities = calibrated(logits, temperature, bias, slope, snr_db)
    assert auroc(probabilities, labels) < auroc(logits, labels) + 0.02


def test_report_writes_the_contract_keys_and_plots(tmp_path):
    val_logits, val_labels = _scores(seed=2)
    test_logits, test_labels = _scores(seed=3)
    config = ReportConfig(bootstrap_resamples=100)
    val_subjects = [f"v{i}" for i in range(len(val_labels))]
    test_subjects = [f"t{i}" for i in range(len(test_labels))]
    point = fit_operating_point(val_logits, val_labels, val_subjects, config)
    probabilities = calibrated(test_logits, point.temperature, point.bias)
    results = SetMeasurements(tmp_path, config)
    results.add("clean test", probabilities, test_labels, test_subjects, point.threshold)
    results.add("healthy only", probabilities[test_labels == 0], test_labels[test_labels == 0],
                [s for s, y in zip(test_subjects, test_labels) if y == 0], point.threshold)
    write_report(tmp_path, results.measured, title="t", config=config, operating_point=point, notes=results.notes)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("auroc", "auroc_ci", "sensitivity", "specificity", "threshold", "ece", "ece_recording", "n"):
        assert key in saved
    assert saved["auroc_ci"][0] <= saved["auroc"] <= saved["auroc_ci"][1]
    assert saved["n"] == 200
    report = (tmp_path / "report.md").read_text()
    assert "SYNTHETIC" in report and "clean_test_roc.png" in report
    assert len(list(tmp_path.glob("*.png"))) == 3  # the one-class set has no plots, only its flag rate
    flagged = results.flagged["healthy only"]
    assert flagged["n"] == 100 and f"{flagged['flagged']:.1%} of 100 subjects flagged" in report
    assert flagged["flagged"] == pytest.approx(1 - saved["specificity"])
    subjects = read_subject_scores(tmp_path / "clean_test_subjects.csv")
    assert subjects.subjects == test_subjects and subjects.labels.tolist() == test_labels.tolist()
    assert auroc(subjects.scores, subjects.labels) == pytest.approx(saved["auroc"])


def _independent_recordings(subjects: int, separation: float = 1.0, seed: int = 0):
    """Two recordings per subject, each an independent N(+-separation, 1) observation: each recording's exact
    posterior is sigmoid(2 · separation · x) (calibrated), and the subject's is sigmoid(2 · separation · (x1 + x2))."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, subjects)
    x = rng.normal(np.where(labels, separation, -separation)[:, None], 1.0, (subjects, 2))
    recording_p = 1 / (1 + np.exp(-2 * separation * x))
    subject_p = 1 / (1 + np.exp(-2 * separation * x.sum(1)))
    names = [f"s{i}" for i in range(subjects)]
    return recording_p.ravel(), np.repeat(labels, 2), [n for n in names for _ in range(2)], subject_p, labels


def test_subject_pooling_learns_that_independent_recordings_add_evidence():
    from biomarker.evaluate.calibration import SubjectPooling

    p, y, subjects, truth, subject_labels = _independent_recordings(4000)
    pooling = SubjectPooling.fit(p, y, subjects)
    assert pooling.scale == pytest.approx(2.0, abs=0.25) and abs(pooling.shift) < 0.15
    pooled = pooling.pool(p, y, subjects)
    assert np.allclose(pooled.scores, truth, atol=0.08)
    mean_of_p = to_subjects(p, y, subjects).scores
    assert expected_calibration_error(pooled.scores, subject_labels) < 0.5 * expected_calibration_error(mean_of_p, subject_labels)


def test_subject_pooling_keeps_a_single_recording_as_the_app_shows_it():
    from biomarker.evaluate.calibration import SubjectPooling

    probabilities = np.array([0.2, 0.7, 0.9, 0.6])
    pooled = SubjectPooling(scale=3.0, shift=1.0).pool(probabilities, [0, 1, 1, 1], ["a", "b", "c", "c"])
    assert pooled.scores[:2] == pytest.approx([0.2, 0.7])
    mean_log_odds = np.mean(np.log([0.9 / 0.1, 0.6 / 0.4]))
    assert pooled.scores[2] == pytest.approx(1 / (1 + np.exp(-(3.0 * mean_log_odds + 1.0))))


def test_operating_point_threshold_is_chosen_on_pooled_subjects():
    p, y, subjects, _, _ = _independent_recordings(400, seed=1)
    logits = np.log(p / (1 - p))
    point = fit_operating_point(logits, y, subjects)
    assert point.subject_scale > 1.2
    pooled = point.pooling.pool(point.probabilities(logits), y, subjects)
    assert point.threshold == pytest.approx(threshold_for_sensitivity(pooled.scores, pooled.labels, 0.90))
    metrics = measure(point.probabilities(logits), y, subjects, point.threshold, ReportConfig(bootstrap_resamples=20), point.pooling)
    assert metrics["sensitivity"] >= 0.90 and "log-odds" in metrics["unit"]
