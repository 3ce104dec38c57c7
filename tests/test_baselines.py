"""The classic baselines (MFCC statistics, eGeMAPS functionals) + logistic regression: features, ranking, and a
tiny end-to-end run calibrated with the recordings' SNR like the deep models."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import soundfile

from biomarker.audio import load
from biomarker.cohorts.manifest import CohortItem, read_manifest, select_split, write_manifest
from biomarker.cohorts.splits import SplitConfig, speaker_disjoint_split
from biomarker.evaluate.baselines import FEATURE_KINDS, LogisticBaseline, egemaps_extractor, run_baseline
from biomarker.evaluate import calibration
from biomarker.evaluate.calibration import calibrated
from biomarker.evaluate.report import OperatingPoint, ReportConfig, measure
from biomarker.features.snr import recording_snr
from biomarker.records import FeatureError
from screening_helpers import burst_clip

RATE = 16000


def _tone(rng: np.random.Generator, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return 0.3 * np.sin(2 * np.pi * rng.uniform(150, 300) * t)


def _breathy(rng: np.random.Generator, seconds: float = 1.0) -> np.ndarray:
    return 0.3 * rng.standard_normal(int(seconds * RATE))


def test_egemaps_gives_88_finite_functionals_that_differ_between_signals():
    rng = np.random.default_rng(0)
    functionals = egemaps_extractor()
    tone, breathy = functionals(_tone(rng), RATE), functionals(_breathy(rng), RATE)
    assert tone.shape == breathy.shape == (88,)
    assert np.all(np.isfinite(tone)) and np.all(np.isfinite(breathy))
    assert not np.allclose(tone, breathy)


@pytest.mark.parametrize("features", sorted(FEATURE_KINDS))
def test_a_baseline_ranks_held_out_breathy_noise_above_tones(features):
    rng = np.random.default_rng(0)
    tones = [_tone(rng) for _ in range(12)]
    noises = [_breathy(rng) for _ in range(12)]
    baseline = LogisticBaseline(features).fit(tones[3:] + noises[3:], [0] * 9 + [1] * 9)
    logits = baseline.logits(tones[:3] + noises[:3])
    assert np.all(logits[:3] < 0) and np.all(logits[3:] > 0)
    assert baseline.method == f"{features}+lr"


def test_cached_features_are_reused_by_the_samples_not_recomputed(tmp_path):
    rng = np.random.default_rng(1)
    recordings, labels = [_tone(rng) for _ in range(6)] + [_breathy(rng) for _ in range(6)], [0] * 6 + [1] * 6
    first = LogisticBaseline("mfcc-stats", cache_dir=tmp_path).fit(recordings, labels)
    assert len(list((tmp_path / "baseline-mfcc-stats").glob("*.npy"))) == 12
    again = LogisticBaseline("mfcc-stats", cache_dir=tmp_path)
    again.extract = lambda samples, rate: pytest.fail("recomputed a cached recording")
    again.fit(recordings, labels)
    assert np.allclose(again.logits(recordings), first.logits(recordings))
    changed = recordings[0] * 0.5  # other samples, another key
    with pytest.raises(pytest.fail.Exception, match="recomputed"):
        again.logits([changed])

def test_unknown_features_are_a_clear_error():
    with pytest.raises(FeatureError, match=r"unknown baseline features 'wav2vec'; choose one of \['egemaps', 'mfcc-stats'\]"):
        LogisticBaseline("wav2vec")


def test_egemaps_without_opensmile_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "opensmile", None)  # `import opensmile` now raises ImportError
    with pytest.raises(FeatureError, match=r"pip install 'biomarker\[egemaps\]'"):
        LogisticBaseline("egemaps")


@pytest.fixture
def noisy_toy_cohort(tmp_path):
    """16 speakers, 2 clips each, every clip with its own background-noise level (SNR varies within each class).
    A quarter of the speakers carry the other class's label, as noisy clinical labels do: without them validation
    is separable, the calibration saturates every probability at 0 or 1, and the SNR term has nothing to move."""
    rng = np.random.default_rng(0)
    items = []
    for speaker in range(16):
        sounds_like = speaker % 2
        label = 1 - sounds_like if speaker % 8 in (0, 3) else sounds_like
        for take in range(2):
            path = tmp_path / f"clip{speaker:02d}-{take}.wav"
            soundfile.write(path, burst_clip(sounds_like, rng, bursts=4, noise=rng.choice([0.0005, 0.005, 0.02, 0.05])), RATE)
            items.append(CohortItem(path, label, f"s{speaker}", "toy"))
    return write_manifest(speaker_disjoint_split(items, SplitConfig(0.5, 0.25, 0.25, seed=1)), tmp_path / "manifest.csv")


def test_run_baseline_writes_an_egemaps_summary_calibrated_with_snr(noisy_toy_cohort, tmp_path, monkeypatch):
    monkeypatch.setattr(calibration, "SNR_TERM_MIN_PER_CLASS", 2)  # the toy validation split has 4 clips per class
    summary = run_baseline(str(noisy_toy_cohort), str(tmp_path / "run"), config=ReportConfig(bootstrap_resamples=50),
                           features="egemaps", cache_dir=str(tmp_path / "cache"))
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["method"] == summary["method"] == "egemaps+lr"
    assert set(saved["sets"]) == {"toy test"}
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["operating_point"] == saved["operating_point"]
    point = OperatingPoint(**saved["operating_point"])
    assert point.snr_slope != 0.0  # fitted on validation SNR (the slope is pinned to 0 without it)
    assert np.ptp(point.probabilities([0.0, 0.0], [5.0, 35.0])) > 0.01


def test_run_baseline_measures_test_recordings_with_their_snr(noisy_toy_cohort, tmp_path, monkeypatch):
    """Recompute the test set's Brier score from the same (deterministic) fit at its subject pooling, with and
    without the SNR term."""
    monkeypatch.setattr(calibration, "SNR_TERM_MIN_PER_CLASS", 2)
    config, cache = ReportConfig(bootstrap_resamples=50), tmp_path / "cache"
    saved = run_baseline(str(noisy_toy_cohort), str(tmp_path / "run"), config=config, cache_dir=str(cache))
    point = OperatingPoint(**saved["operating_point"])
    items = read_manifest(noisy_toy_cohort)
    train, test = select_split(items, "train"), select_split(items, "test")
    baseline = LogisticBaseline("mfcc-stats").fit([load(i.path, RATE).samples for i in train], [i.label for i in train])
    logits = baseline.logits([load(i.path, RATE).samples for i in test])
    labels, subjects = [i.label for i in test], [f"{i.cohort}/{i.speaker_id}" for i in test]
    snr_db = recording_snr([str(i.path) for i in test], cache)
    with_snr = measure(point.probabilities(logits, snr_db), labels, subjects, point.threshold, config, point.pooling)
    without = measure(calibrated(logits, point.temperature, point.bias), labels, subjects, point.threshold, config, point.pooling)
    assert saved["method"] == "mfcc-stats+lr"
    assert saved["sets"]["toy test"]["brier"] == pytest.approx(with_snr["brier"])
    assert with_snr["brier"] != pytest.approx(without["brier"], abs=1e-3)
