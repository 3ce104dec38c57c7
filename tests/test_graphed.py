"""CUDA-graph scoring: padding a clip's tokens up to a bucket leaves its logit unchanged (checked eagerly on CPU),
and replayed graphs give the eager scores (the `gpu` tests, on the lent machine via scripts/gpu_check.sh)."""

from __future__ import annotations

import copy

import pytest
import torch

from biomarker.bench.gpu_check import QUICK, speech_like_clip, tiny_screening_model
from biomarker.models import ScreeningModel
from biomarker.models.graphed import GraphConfig, GraphedScorer, bucket_width
from biomarker.screener import Screener, ScreenerConfig
from test_models import tiny


def test_bucket_width_rounds_columns_up_to_whole_buckets():
    assert [bucket_width(c, 8) for c in (1, 8, 9, 16, 17)] == [8, 8, 16, 16, 24]


@pytest.mark.parametrize("name, overrides", [
    ("ssast-tiny-patch", {"positions": "sinusoidal"}),
    ("ssast-tiny-patch", {}),  # learned positions, cropped from their table
    ("ssast-tiny-frame", {}),
    ("mfccgram-transformer", {}),
    ("ssamba-tiny", {}),
])
def test_padding_a_clip_to_its_bucket_leaves_its_logit_unchanged(name, overrides):
    model = ScreeningModel(tiny(name, depth=2, **overrides), name="t").eval()
    model.add_cohort("default")
    scorer = GraphedScorer(model, GraphConfig(bucket_columns=8))
    features_per_frame = model.encoder.patch_embed.num_features
    padded_some = False
    for frames in (96, 137, 201):
        features, lengths = torch.randn(1, frames, features_per_frame), torch.tensor([frames])
        with torch.inference_mode():
            columns = model.encoder.tokenize(features, lengths).grid[1]
            padded_some |= bucket_width(columns, 8) > columns
            eager = model.recording_logits(features, lengths)
            bucketed = scorer.logits(features, lengths)
        assert torch.allclose(bucketed, eager, atol=1e-5), (frames, bucketed, eager)
    assert padded_some  # the check meant something: at least one clip got padded columns
    assert scorer.captured == []  # nothing is captured off CUDA


def test_the_cpu_path_never_builds_graphs():
    model = ScreeningModel(tiny("ssast-tiny-patch", depth=1), name="t").eval()
    model.add_cohort("default")
    assert not GraphedScorer(model).supports(torch.zeros(1, 100, 128), "default")
    assert Screener(model, torch.device("cpu")).graphed is None


@pytest.mark.gpu
def test_only_single_whole_utterance_clips_take_the_graph_path():
    model = tiny_screening_model(QUICK, "ssast-tiny-patch").cuda().eval()
    model.add_cohort("windowed")
    model.set_calibration("windowed", scoring="window-mean", window_frames=200, hop_frames=100)
    scorer = GraphedScorer(model)
    one, two = torch.zeros(1, 300, 128, device="cuda"), torch.zeros(2, 300, 128, device="cuda")
    assert scorer.supports(one, "default")
    assert not scorer.supports(two, "default") and not scorer.supports(one, "windowed")


@pytest.mark.gpu
@pytest.mark.parametrize("encoder", ["ssast-tiny-patch", "ssamba-tiny"])
def test_graph_replay_gives_the_eager_logits_and_reuses_a_bucket(encoder):
    model = tiny_screening_model(QUICK, encoder).cuda().eval()
    scorer = GraphedScorer(model, GraphConfig(bucket_columns=8))
    width = model.encoder.patch_embed.num_features
    with torch.inference_mode():
        for frames in (300, 310, 650, 300):
            features = torch.randn(1, frames, width, device="cuda")
            lengths = torch.tensor([frames], device="cuda")
            eager = model.recording_logits(features, lengths)
            assert torch.allclose(scorer.logits(features, lengths), eager, atol=1e-4), frames
    buckets = {bucket_width(model.encoder.tokenize(torch.zeros(1, f, width, device="cuda"),
                                                   torch.tensor([f], device="cuda")).grid[1], 8) for f in (300, 310, 650)}
    assert sorted(w for _, w in scorer.captured) == sorted(buckets)


@pytest.mark.gpu
def test_a_screener_scores_the_same_with_and_without_graphs():
    model = tiny_screening_model(QUICK, "ssast-tiny-patch")
    clip = speech_like_clip()
    eager = Screener(copy.deepcopy(model), torch.device("cuda"), ScreenerConfig(graphs=None))
    graphed = Screener(model, torch.device("cuda"))
    assert eager.graphed is None and graphed.graphed is not None
    assert abs(graphed.score(clip).probability - eager.score(clip).probability) <= 1e-5
    assert len(graphed.graphed.captured) == 1


@pytest.mark.gpu
def test_a_shape_that_cannot_be_captured_is_scored_eagerly_and_the_next_one_still_captures():
    model = tiny_screening_model(QUICK, "ssast-tiny-patch").cuda().eval()  # learned 8 x 64 positions
    scorer = GraphedScorer(model, GraphConfig(bucket_columns=8))
    with torch.inference_mode():
        # 1,200 frames = 75 columns, beyond the table: positions are stretched per clip, which asks the device
        for frames in (1200, 300):
            features = torch.randn(1, frames, 128, device="cuda")
            lengths = torch.tensor([frames], device="cuda")
            eager = model.recording_logits(features, lengths)
            assert torch.allclose(scorer.logits(features, lengths), eager, atol=1e-4), frames
    assert [width for _, width in scorer.captured] == [24]  # the long clip's bucket (80) fell back to eager
