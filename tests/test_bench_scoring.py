"""`biomarker bench scoring`: every stage is measured on real work and a bad sign (a rejected clip) shows."""

import pytest

from biomarker.bench.scoring import main


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
        "forward_eager", "forward_onnxruntime", "forward_int8_dynamic"}
    assert comparison["forward_gflop"] > 0.1 and comparison["floor"]["wall_ms"] > 0
    assert comparison["logit_shift_vs_eager"]["forward_onnxruntime"] <= 1e-4  # the chosen runtime scores alike
    assert comparison["load_average_1min"] >= 0 and "GFLOP/s" in capsys.readouterr().out
