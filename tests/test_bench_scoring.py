"""`biomarker bench scoring`: every stage is measured on real work and a bad sign (a rejected clip) shows."""

import pytest
import torch

from biomarker.bench.scoring import main
from screening_helpers import save_tiny_screening_model


def test_scoring_bench_measures_the_tiny_reference_end_to_end_and_in_parts(capsys):
    report = main(model="tiny", repeats=1, clips=3, threads=(1,), as_json=True)
    [run] = report["runs"]
    assert run["model"] == "ssast-tiny-untrained@bench"
    assert 5.0e6 < run["encoder_parameters"] < 6.0e6  # SSAST-tiny, not a stand-in
    assert set(run["parts"]) == {"decode", "quality_gate", "front_end", "model_call", "store_write"}
    assert all(part["wall_ms"] > 0 for part in run["parts"].values())
    # The reported ratio is the one of the two measured numbers (single runs are noisy: no ordering is asserted).
    ratio = run["end_to_end"]["wall_ms"] / run["encoder_forward"]["wall_ms"]  # from the rounded figures
    assert run["ratio_wall"] == pytest.approx(ratio, abs=0.011)
    assert run["batch_clips"] == 3 and run["batch_rejected"] == 0
    assert '"ratio_wall"' in capsys.readouterr().out


def test_scoring_bench_compares_the_classic_pipelines_the_floor_and_the_runtimes(capsys):
    report = main(model="tiny", repeats=1, clips=2, threads=(1,))
    [comparison] = report["comparisons"]
    assert set(comparison["timings"]) == {
        "end_to_end_eager", "end_to_end_onnxruntime", "end_to_end_egemaps_lr", "end_to_end_mfcc-stats_lr",
        "forward_eager", "forward_onnxruntime", "forward_onnxruntime_unfused", "forward_int8_dynamic"}
    assert comparison["forward_gflop"] > 0.1 and comparison["floor"]["wall_ms"] > 0
    for runtime in ("forward_onnxruntime", "forward_onnxruntime_unfused"):  # the chosen runtime scores alike
        assert comparison["logit_shift_vs_eager"][runtime] <= 1e-4
    assert comparison["ratios"]["forward_onnxruntime_vs_unfused"]["wall"] > 0
    assert comparison["load_average_1min"] >= 0 and "GFLOP/s" in capsys.readouterr().out


def test_the_floor_counts_the_attention_flops_the_torch_counter_misses_on_cpu(tmp_path):
    """torch's FlopCounterMode has no formula for the fused CPU attention kernel and counts it as 0; the bench's
    count adds 4 * N^2 * width per block (QK^T and attention x V), which a plain count lacks exactly."""
    from torch.utils.flop_counter import FlopCounterMode

    from biomarker.bench.scoring import counting_flops
    from biomarker.models import from_pretrained

    model = from_pretrained(save_tiny_screening_model(tmp_path / "m"))
    cohort = model.resolve_cohort(None)
    features, frames = torch.randn(1, 300, 128), torch.tensor([300])
    with torch.inference_mode(), FlopCounterMode(display=False) as plain:
        model.recording_logits(features, frames, cohort)
    with torch.inference_mode():
        patches = model.encoder.tokenize(features, frames).embeddings.shape[1]
    encoder = model.encoder
    tokens = patches + int(encoder.config.cls_token)  # what attention sees
    attention = len(encoder.blocks) * 4 * tokens * tokens * encoder.embed_dim
    with torch.inference_mode(), counting_flops() as counted:
        model.recording_logits(features, frames, cohort)
    assert counted.get_total_flops() - plain.get_total_flops() == attention > 0
