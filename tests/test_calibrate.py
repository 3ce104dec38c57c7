"""Site calibration (`biomarker calibrate`): refusal below the minimum per class, a new immutable version whose
threshold reaches the target sensitivity on the sample, a card naming the manifest's sha256 and the CIs, and
scoring with the new version at its new threshold. Tiny random model, numpy-made clips: fast."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from biomarker.cli import app
from biomarker.cohorts.manifest import CohortItem, write_manifest
from biomarker.evaluate.calibration import SubjectPooling, sigmoid
from biomarker.evaluate.metrics import sensitivity_specificity
from biomarker.evaluate.site_calibration import (
    SiteSampleError,
    fit_site_calibration,
    robust_threshold,
    sample_from_scores,
)
from biomarker.models import from_pretrained
from biomarker.models.catalog import Catalog
from biomarker.models.screening import CohortSpec
from biomarker.records import DECISION_POSITIVE
from biomarker.screener import PRETRAINED_DIR, Screener
from screening_helpers import TEST_MODEL_NAME, burst_clip, save_tiny_screening_model


def _site_manifest(folder: Path, patients: int, controls: int, seed: int = 0) -> Path:
    """One clip per subject; every third clip has ward noise, so the SNR estimates vary."""
    rng = np.random.default_rng(seed)
    items = []
    for k, label in enumerate([1] * patients + [0] * controls):
        path = folder / f"clip-{k:02d}.wav"
        sf.write(path, burst_clip(label, rng, bursts=4, noise=0.02 if k % 3 == 0 else None), 16000)
        items.append(CohortItem(path=path, label=label, speaker_id=f"s{k:02d}", cohort="site-a"))
    return write_manifest(items, folder / "site.csv")


@pytest.fixture()
def catalog(tmp_path, monkeypatch):
    """A user root of its own with the tiny model published as `tiny-test-screener@1` (SNR slope 0.3)."""
    monkeypatch.setenv("BIOMARKER_HOME", str(tmp_path / "home"))
    catalog = Catalog(shipped_root=PRETRAINED_DIR)
    source = from_pretrained(save_tiny_screening_model(tmp_path / "tiny", snr_slope=0.3))
    catalog.publish(source, card="# tiny test screener\n\nrandom weights", cohorts=["default"])
    return catalog


def _files(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_refuses_below_the_minimum_per_class_naming_the_counts(tmp_path, catalog):
    manifest = _site_manifest(tmp_path, patients=4, controls=2)
    result = CliRunner().invoke(app, ["calibrate", "--manifest", str(manifest), "--model", f"{TEST_MODEL_NAME}@1",
                                      "--min-per-class", "3", "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert "4 patient and 2 control subject(s)" in result.output and "at least 3 subjects of each class" in result.output
    assert [v.ref for v in catalog.versions(TEST_MODEL_NAME)] == [f"{TEST_MODEL_NAME}@1"]  # nothing published


def test_publishes_a_new_version_whose_threshold_reaches_the_target_on_the_sample(tmp_path, catalog):
    manifest = _site_manifest(tmp_path, patients=8, controls=6)
    parent = catalog.get(f"{TEST_MODEL_NAME}@1")
    before = _files(parent.path)
    result = CliRunner().invoke(app, ["calibrate", "--manifest", str(manifest), "--model", parent.ref,
                                      "--min-per-class", "5", "--target-sensitivity", "0.75", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert f"published {TEST_MODEL_NAME}@2 (parent {parent.ref})" in result.output
    assert _files(parent.path) == before  # the parent version is bit-identical

    new = catalog.get(f"{TEST_MODEL_NAME}@2")
    assert new.parent == parent.ref and new.sha256 == parent.sha256  # same weights, only the calibration moved
    facts = new.metrics["site_calibration"]
    sha = hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert facts["manifest_sha256"] == sha and facts["subjects"] == {"patients": 8, "controls": 6}
    assert facts["clinically_validated"] is False
    spec = CohortSpec(**json.loads((new.path / "config.json").read_text())["cohorts"]["default"])
    assert spec.snr_slope == pytest.approx(0.3) and spec.threshold == pytest.approx(facts["fitted"]["threshold"])
    assert (spec.temperature, spec.bias, spec.threshold) != (1.0, 0.0, 0.5)

    card = new.card_path.read_text()
    low, high = facts["sample"]["sensitivity_ci"]
    assert sha in card and f"[95 % CI {low:.3f}, {high:.3f}]" in card and "Not clinically validated" in card
    assert "the sensitivity CI is wide" in card

    # Scoring with the new version uses its threshold, and the sample's patients are referred as promised.
    screener = Screener.load(new.ref, device="cpu")
    scores = screener.score_many(sorted(tmp_path.glob("clip-*.wav")))
    assert {s.threshold for s in scores} == {spec.threshold} and {s.model_version for s in scores} == {"2"}
    labels = np.array([1] * 8 + [0] * 6)
    pooled = SubjectPooling.of(spec).pool([s.probability for s in scores], labels, [f"s{k}" for k in range(14)])
    sensitivity, _ = sensitivity_specificity(pooled.scores, pooled.labels, spec.threshold)
    assert sensitivity >= 0.75
    assert all((s.decision == DECISION_POSITIVE) == (s.probability >= spec.threshold) for s in scores)
    assert sensitivity == pytest.approx(facts["sample"]["sensitivity"])

    # the audit trail records which calibration is now available to score with
    from biomarker.settings import Settings
    from biomarker.store import Store, UserInfo

    store = Store(Settings.from_env())
    [event] = [e for e in store.audit_events(viewer=UserInfo("aud", "auditor")) if e.action == "model_calibrated"]
    assert event.object_id == f"{TEST_MODEL_NAME}@2" and sha in event.payload and store.verify_chain().ok


def test_the_fit_recovers_temperature_and_bias_with_the_snr_term_kept():
    rng = np.random.default_rng(0)
    logits, snr = rng.normal(0, 3, 4000), rng.uniform(0, 40, 4000)
    covariate = (snr - 20) / 10
    labels = (rng.uniform(size=4000) < sigmoid(logits / 2.0 + 1.0 + 0.5 * covariate)).astype(int)
    sample = sample_from_scores(logits, labels, [f"s{k}" for k in range(4000)], snr, manifest="m.csv", manifest_sha256="0" * 64)
    result = fit_site_calibration(sample, CohortSpec(snr_slope=0.5), cohort="c", target_sensitivity=0.9)
    assert result.temperature == pytest.approx(2.0, rel=0.1) and result.bias == pytest.approx(1.0, abs=0.15)
    assert result.snr_slope == 0.5 and result.metrics["sensitivity"] >= 0.9
    with pytest.raises(SiteSampleError, match="2 patient and 3 control"):
        small = sample_from_scores([0.1, 0.2, 0.3, 0.4, 0.5], [1, 1, 0, 0, 0], list("abcde"), [20] * 5,
                                   manifest="m.csv", manifest_sha256="0" * 64)
        fit_site_calibration(small, CohortSpec(), cohort="c", min_per_class=3)


def test_the_threshold_moves_into_the_gap_below_the_boundary_patient_and_changes_no_decision():
    scores, labels = np.array([0.9, 0.8, 0.6, 0.5, 0.3, 0.2]), np.array([1, 1, 1, 0, 1, 0])
    threshold = robust_threshold(scores, labels, 0.75)  # the 3rd patient (0.6) must be referred
    assert 0.5 < threshold < 0.6
    assert sensitivity_specificity(scores, labels, threshold) == sensitivity_specificity(scores, labels, 0.6)
