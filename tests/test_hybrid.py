"""The hybrid screener's interpretable inputs (pause and breath statistics) and its fit/measure path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile

from biomarker.cohorts.manifest import CohortItem, write_manifest
from biomarker.cohorts.splits import SplitConfig, speaker_disjoint_split
from biomarker.evaluate.report import ReportConfig
from biomarker.features.breathing import FEATURE_NAMES, breathing_features
from biomarker.finetune.hybrid import HYBRID_FILE, HybridConfig, evaluate_hybrid, fit_hybrid
from screening_helpers import burst_clip, save_tiny_screening_model

RATE = 16000
NAMES = {name: index for index, name in enumerate(FEATURE_NAMES)}


def _speech(pause_s: float, pauses: int, level: float = 0.3, breath: float = 0.0, seed: int = 0) -> np.ndarray:
    """Voiced 0.6 s phrases separated by `pauses` gaps of `pause_s` (holding noise at `breath` when given)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.6 * RATE)) / RATE
    phrase = level * np.sin(2 * np.pi * 150 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t) ** 2)
    pieces = [np.zeros(int(0.2 * RATE))]
    for _ in range(pauses):
        pieces += [phrase, breath * rng.standard_normal(int(pause_s * RATE)) + 1e-5 * rng.standard_normal(int(pause_s * RATE))]
    pieces += [phrase, np.zeros(int(0.2 * RATE))]
    return np.concatenate(pieces).astype(np.float32)


def test_more_and_longer_pauses_are_counted_and_measured():
    calm, breathless = breathing_features(_speech(0.05, 3)), breathing_features(_speech(0.5, 5))
    assert calm[NAMES["pauses_per_s"]] == 0  # word joins are not pauses
    assert breathless[NAMES["pauses_per_s"]] * breathless[NAMES["duration_s"]] == pytest.approx(5)
    assert breathless[NAMES["mean_pause_s"]] == pytest.approx(0.5, abs=0.05)
    assert breathless[NAMES["duration_s"]] > calm[NAMES["duration_s"]]
    assert breathless[NAMES["mean_breath_group_s"]] == pytest.approx(0.6, abs=0.1)


def test_an_audible_in_breath_raises_the_pause_level_and_recording_level_changes_nothing():
    silent, audible = breathing_features(_speech(0.5, 4)), breathing_features(_speech(0.5, 4, breath=0.004))
    assert audible[NAMES["pause_level_db"]] > silent[NAMES["pause_level_db"]] + 20
    quiet = breathing_features(_speech(0.5, 4, level=0.03, breath=0.0004))
    assert np.allclose(quiet, audible, rtol=1e-3, atol=1e-4)  # the fixed 1e-5 room tone does not scale


def test_too_short_a_recording_is_refused_by_its_length():
    with pytest.raises(ValueError, match="at least"):
        breathing_features(np.zeros(800, dtype=np.float32))


@pytest.mark.slow
def test_the_hybrid_fits_on_train_calibrates_on_val_and_measures_another_manifest(tmp_path):
    rng = np.random.default_rng(0)
    items = []
    for speaker in range(32):
        label = speaker % 2
        path = tmp_path / f"clip{speaker:02d}.wav"
        soundfile.write(path, burst_clip(label, rng), RATE)
        items.append(CohortItem(path, label, f"s{speaker}", "tiny"))
    manifest = write_manifest(speaker_disjoint_split(items, SplitConfig(0.5, 0.25, 0.25, seed=1)), tmp_path / "m.csv")
    save_tiny_screening_model(tmp_path / "run" / "bundle")  # an untrained deep model: the statistics must carry it
    report = ReportConfig(bootstrap_resamples=50)
    summary = fit_hybrid(HybridConfig(str(tmp_path / "run"), str(manifest), str(tmp_path / "hybrid"),
                                      cache_dir=str(tmp_path / "cache"), report=report))
    assert summary["sets"]["tiny test"]["auroc"] >= 0.9
    state = json.loads((tmp_path / "hybrid" / HYBRID_FILE).read_text())
    assert state["inputs"] == ["deep_logit", *FEATURE_NAMES] and len(state["coef"]) == len(state["inputs"])
    measured = evaluate_hybrid(tmp_path / "hybrid", str(manifest), tmp_path / "eval", cache_dir=str(tmp_path / "cache"), config=report)
    assert set(measured["sets"]) >= {"tiny"} and (tmp_path / "eval" / "tiny_subjects.csv").is_file()
