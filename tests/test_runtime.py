"""The ONNX Runtime scoring path (issue 28) scores exactly as eager PyTorch: probabilities within 1e-4 and the same
decision on the app's samples and a cohort, for the shipped screener and a tiny one; every score names its engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from biomarker.models.runtime import RuntimeConfig, runtime_label
from biomarker.screener import PRETRAINED_DIR, Screener, ScreenerConfig
from screening_helpers import burst_clip, espeak_wav, save_tiny_screening_model, wav_bytes

APP_SAMPLES = sorted((Path(__file__).resolve().parent.parent / "app" / "samples").glob("*.wav"))
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> list[bytes]:
    """A small synthetic cohort: espeak-ng sentences and burst clips of both labels, clean and noisy, 2-9 s long
    (every clip a different length, so batches are padded)."""
    root = tmp_path_factory.mktemp("cohort")
    sentences = ("The north wind and the sun were disputing which was the stronger.",
                 "When a traveller came along wrapped in a warm cloak.",
                 "They agreed that the one who first succeeded in making the traveller take his cloak off should be "
                 "considered stronger than the other.")
    clips = [espeak_wav(root / f"s{i}.wav", text).read_bytes() for i, text in enumerate(sentences)]
    rng = np.random.default_rng(7)
    for index in range(8):
        clip = burst_clip(index % 2, rng, bursts=6 + index, noise=0.01 if index % 3 == 0 else None)
        clips.append(wav_bytes(clip))
    return [path.read_bytes() for path in APP_SAMPLES] + clips


def screeners(model: Path | str, cache: Path) -> tuple[Screener, Screener]:
    eager = Screener.load(model, device="cpu", config=ScreenerConfig(cpu_threads=1))
    onnx = Screener.load(model, device="cpu", config=ScreenerConfig(
        cpu_threads=1, runtime=RuntimeConfig("onnxruntime", cache_dir=cache)))
    return eager, onnx


@pytest.mark.parametrize("which", ["shipped", "tiny"])
def test_onnxruntime_scores_equal_eager_pytorch(which, cohort, tmp_path):
    if which == "shipped" and not (PRETRAINED_DIR / "ri-screener").is_dir():
        pytest.skip("no shipped ri-screener in this checkout")
    model = "ri-screener" if which == "shipped" else save_tiny_screening_model(tmp_path / "tiny")
    eager, onnx = screeners(model, tmp_path / "cache")
    assert len(APP_SAMPLES) >= 2
    for data in cohort:  # one clip at a time: the unpadded forward, through ONNX Runtime
        reference, score = eager.score(data), onnx.score(data)
        assert abs(score.probability - reference.probability) <= TOLERANCE
        assert score.decision == reference.decision
        assert reference.device == "cpu" and score.device == f"cpu/{runtime_label()}"
    # A batch of different lengths is never padded for the graph: each length is its own run through ONNX Runtime,
    # in input order, equal to eager PyTorch's padded batch.
    batch, eager_batch = onnx.score_many(cohort), eager.score_many(cohort)
    assert [s.device for s in batch] == [f"cpu/{runtime_label()}"] * len(cohort)
    assert [s.device for s in eager_batch] == ["cpu"] * len(cohort)
    assert max(abs(a.probability - b.probability) for a, b in zip(batch, eager_batch)) <= TOLERANCE
    assert [s.decision for s in batch] == [s.decision for s in eager_batch]
    twice = onnx.score_many([cohort[0], cohort[0]])  # one length: one batch of two through the graph
    assert [s.probability for s in twice] == pytest.approx([batch[0].probability] * 2, abs=TOLERANCE)


def test_the_exported_graph_is_reused_from_disk(cohort, tmp_path):
    """A second process (a restarted app, another torchrun rank) loads the cached graph instead of exporting."""
    model = save_tiny_screening_model(tmp_path / "tiny")
    _, first = screeners(model, tmp_path / "cache")
    first.score(cohort[0])
    [exported] = list((tmp_path / "cache").glob("*.onnx"))
    stamp = exported.stat().st_mtime_ns
    _, second = screeners(model, tmp_path / "cache")
    assert second.score(cohort[0]).probability == pytest.approx(first.score(cohort[0]).probability, abs=1e-7)
    assert list((tmp_path / "cache").glob("*")) == [exported] and exported.stat().st_mtime_ns == stamp


def test_an_encoder_that_does_not_export_is_scored_eagerly_and_says_so(cohort, tmp_path, monkeypatch):
    model = save_tiny_screening_model(tmp_path / "tiny")
    eager, onnx = screeners(model, tmp_path / "cache")

    def refuse(*args, **kwargs):
        raise RuntimeError("this encoder cannot be exported")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    score = onnx.score(cohort[0])
    assert score.device == "cpu" and score.probability == pytest.approx(eager.score(cohort[0]).probability, abs=1e-7)


def test_the_shipped_ssamba_screener_is_scored_eagerly_without_trying_the_export(cohort, tmp_path, monkeypatch):
    """Its scan is a C kernel that torch.export cannot trace; trying cost 6.5 s on the first clip of each process."""
    onnx = Screener.load("ri-screener-ssamba", device="cpu", config=ScreenerConfig(
        cpu_threads=1, runtime=RuntimeConfig("onnxruntime", cache_dir=tmp_path / "cache")))

    def tried(*args, **kwargs):
        raise AssertionError("the export was tried")

    monkeypatch.setattr(torch.onnx, "export", tried)
    assert onnx.score(cohort[0]).device == "cpu" and not (tmp_path / "cache").exists()


def test_warm_up_starts_the_engine_before_the_first_patient(tmp_path, monkeypatch):
    """After `warm_up` the graph is exported and its session open, so the first real clip exports nothing."""
    _, onnx = screeners(save_tiny_screening_model(tmp_path / "tiny"), tmp_path / "cache")
    onnx.warm_up()
    assert len(list((tmp_path / "cache").glob("*.onnx"))) == 1

    def exported_again(*args, **kwargs):
        raise AssertionError("exported on the first clip")

    def opened_again(*args, **kwargs):
        raise AssertionError("a session opened on the first clip")

    monkeypatch.setattr(torch.onnx, "export", exported_again)
    monkeypatch.setattr("biomarker.models.runtime._open_session", opened_again)
    assert onnx.score(wav_bytes(burst_clip(1, np.random.default_rng(0)))).device == f"cpu/{runtime_label()}"


def test_an_unknown_runtime_is_named():
    with pytest.raises(ValueError, match="'tensorrt' is not one of eager, onnxruntime"):
        RuntimeConfig("tensorrt")


def test_a_clip_longer_than_a_learned_position_table_is_scored_eagerly_and_says_so(tmp_path):
    """A graph exported from a short clip crops the learned position table; a longer clip stretches it, a branch
    the graph never traced (ONNX Runtime refused it: "broadcast ... 512 by 672"). It is scored eagerly instead."""
    model = save_tiny_screening_model(tmp_path / "tiny")
    eager, onnx = screeners(model, tmp_path / "cache")
    onnx.warm_up()  # the export traces a 4 s clip, as in the app
    rng = np.random.default_rng(3)
    short, long = (wav_bytes(burst_clip(1, rng, bursts=bursts)) for bursts in (4, 30))
    def columns(clip: bytes) -> int:  # the clip's token grid width
        samples = torch.from_numpy(np.asarray(onnx.load_audio(clip).samples, np.float32))[None]
        return onnx.model.encoder.tokenize(*onnx.extractor(samples, torch.tensor([samples.shape[1]]))).grid[1]

    # the two clips sit on either side of the table's width
    assert columns(short) <= onnx.model.encoder.positions.table.shape[2] < columns(long)
    scores = onnx.score_many([short, long])
    assert [s.device for s in scores] == [f"cpu/{runtime_label()}", "cpu"]
    for score, clip in zip(scores, (short, long)):
        assert abs(score.probability - eager.score(clip).probability) <= TOLERANCE
