"""The screener: the one inference path (audio -> quality gate -> features -> model -> calibrated Score)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from biomarker.records import (
    DECISION_NEGATIVE,
    DECISION_POSITIVE,
    EmptyAudioError,
    ModelNotFoundError,
    NotAudioError,
    SilentAudioError,
    TooShortError,
    TruncatedAudioError,
)
from biomarker.screener import PRETRAINED_DIR, Screener, resolve_model_dir, screen_and_record
from biomarker.settings import Settings
from biomarker.store import HistoryFilter, Store, UserInfo
from screening_helpers import TEST_MODEL_NAME, TEST_MODEL_VERSION, espeak_wav, save_tiny_screening_model, wav_bytes


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_screening_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def screener(model_dir):
    return Screener.load(model_dir, device="cpu")


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """Two espeak-ng clips of different lengths (bytes), so batches need padding."""
    folder = tmp_path_factory.mktemp("speech")
    short = espeak_wav(folder / "short.wav", "The north wind and the sun were disputing.")
    long = espeak_wav(folder / "long.wav", "Which was the stronger, when a traveller came along wrapped in a warm cloak.")
    return short.read_bytes(), long.read_bytes()


def test_score_reports_calibrated_probability_decision_and_identity(screener, speech):
    score = screener.score(speech[0], name="short.wav")
    assert 0.0 <= score.probability <= 1.0
    assert score.decision == (DECISION_POSITIVE if score.probability >= score.threshold else DECISION_NEGATIVE)
    assert (score.model_name, score.model_version) == (TEST_MODEL_NAME, TEST_MODEL_VERSION)
    assert screener.model_label == f"{TEST_MODEL_NAME}@{TEST_MODEL_VERSION}"
    assert score.device == "cpu" and score.latency_ms > 0
    assert score.quality.passed and score.cohort == "default"


def test_the_calibrations_snr_term_uses_the_quality_gates_estimate(tmp_path, speech):
    """A cohort calibrated with the SNR term moves each recording's logit by slope x snr_covariate(its SNR),
    the SNR the quality report shows; the model refuses to guess when no SNR is passed."""
    import torch
    from scipy.special import logit

    from biomarker.models.screening import snr_covariate
    from biomarker.records import ModelConfigError

    plain = Screener.load(save_tiny_screening_model(tmp_path / "plain"), device="cpu")
    noisy_aware = Screener.load(save_tiny_screening_model(tmp_path / "snr", snr_slope=2.0), device="cpu")
    for clip in speech:
        without, with_snr = plain.score(clip), noisy_aware.score(clip)
        shift = logit(with_snr.probability) - logit(without.probability)
        assert shift == pytest.approx(2.0 * float(snr_covariate(np.array(with_snr.quality.snr_db))), abs=1e-4)
    features = torch.zeros(1, 200, noisy_aware.model.encoder.patch_embed.num_features)
    with pytest.raises(ModelConfigError, match="snr_db"):
        noisy_aware.model.probability(features)


@pytest.mark.parametrize("threshold, decision", [(0.0, DECISION_POSITIVE), (1.0, DECISION_NEGATIVE)])
def test_decision_uses_the_models_operating_threshold(tmp_path, speech, threshold, decision):
    screener = Screener.load(save_tiny_screening_model(tmp_path / "m", threshold=threshold), device="cpu")
    score = screener.score(speech[0])
    assert score.threshold == threshold and score.decision == decision


def test_batched_scores_equal_single_scores(screener, speech):
    singles = [screener.score(clip).probability for clip in speech]
    batched = [score.probability for score in screener.score_many([speech[0], speech[1], speech[0]])]
    np.testing.assert_allclose(batched, [singles[0], singles[1], singles[0]], atol=1e-5)


def test_score_many_keeps_bad_inputs_in_their_slots(screener, speech):
    silence = wav_bytes(np.zeros(32000, np.float32))
    results = screener.score_many([b"", speech[0], b"not audio at all" * 10, silence], names=["a", "b", "c", "d"])
    assert len(results) == 4
    assert isinstance(results[0], EmptyAudioError) and "a" in str(results[0])
    assert results[1].probability == pytest.approx(screener.score(speech[0]).probability, abs=1e-6)
    assert isinstance(results[2], NotAudioError) and "c" in str(results[2])
    assert isinstance(results[3], SilentAudioError)


@pytest.mark.parametrize(
    "data, error",
    [(b"", EmptyAudioError), (b"RIFF....WAVEjunk" * 4, TruncatedAudioError), (b"\x07junk" * 20, NotAudioError),
     (wav_bytes(np.zeros(32000, np.float32)), SilentAudioError),
     (wav_bytes(0.3 * np.sin(np.linspace(0, 900, 4000)).astype(np.float32)), TooShortError)],
)
def test_score_raises_the_specific_error_naming_the_input(screener, data, error):
    with pytest.raises(error, match="patient-7.wav"):
        screener.score(data, name="patient-7.wav")


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ModelNotFoundError, match="no-such-model"):
        resolve_model_dir("no-such-model")


def test_a_bare_encoder_is_refused_as_a_screening_model(tmp_path):
    from biomarker.models import create_model

    create_model("ssast-tiny-patch", embed_dim=32, depth=1, num_heads=2).save_pretrained(tmp_path / "encoder")
    with pytest.raises(ModelNotFoundError, match="not a screening model"):
        Screener.load(tmp_path / "encoder", device="cpu")


def test_concurrent_scoring_gives_the_same_answer(screener, speech):
    expected = screener.score(speech[1]).probability
    results: list[float] = []

    def work() -> None:
        results.append(screener.score(speech[1]).probability)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == pytest.approx([expected] * 6, abs=1e-6)


def test_screen_and_record_stores_audio_then_result(tmp_path, screener, speech):
    store = Store(Settings.from_env({"BIOMARKER_HOME": str(tmp_path)}))
    admin = UserInfo("ana", "admin", site="ward-1")
    outcome = screen_and_record(screener, store, speech[0], name="visit.wav", actor=admin, patient_id="P-1")
    assert outcome.record.stored
    [row] = store.history(HistoryFilter(patient_id="P-1"), viewer=admin)
    assert row.probability == pytest.approx(outcome.assessment.score.probability)
    assert row.model_version == TEST_MODEL_VERSION and row.site == "ward-1"
    assert store.audio_file(row.audio_path).read_bytes() == speech[0]


def test_screen_and_record_never_stores_a_rejected_recording_as_a_score(tmp_path, screener):
    store = Store(Settings.from_env({"BIOMARKER_HOME": str(tmp_path)}))
    admin = UserInfo("ana", "admin")
    with pytest.raises(SilentAudioError):
        screen_and_record(screener, store, wav_bytes(np.zeros(32000, np.float32)), name="quiet.wav", actor=admin)
    with pytest.raises(NotAudioError):
        screen_and_record(screener, store, b"garbage" * 50, name="junk.wav", actor=admin)
    assert store.history(viewer=admin) == []


def test_the_shipped_model_refers_the_bundled_patient_sample_and_not_the_control():
    """The app's "Try a sample" page must show what the shipped model does on the cohort it was measured on: the
    samples come from that generator, so a shipped model that misreads them is a regression worth stopping."""
    shipped = Screener.load(PRETRAINED_DIR / "ri-screener", device="cpu")
    samples = Path(__file__).resolve().parents[1] / "app" / "samples"
    control, patient = (shipped.score(samples / name) for name in ("synthetic_control.wav", "synthetic_patient.wav"))
    assert control.decision == "negative" and patient.decision == "positive"
    assert patient.probability > control.probability
