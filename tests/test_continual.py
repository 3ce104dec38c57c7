"""Adapter-incremental continual learning: earlier cohorts are untouched; the report measures forgetting."""

from __future__ import annotations

import math

import pytest

from biomarker.finetune.forgetting import CohortScore, ForgettingReport, Stage, plot_forgetting


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


# ------------------------------------------------------------------------------ adapter-incremental learning
import numpy as np
import soundfile
import torch

from biomarker.audio import check_quality, load
from biomarker.cohorts.manifest import CohortItem, read_manifest, write_manifest
from biomarker.evaluate import calibration
from biomarker.evaluate.report import fit_operating_point
from biomarker.finetune.continual import (
    ClipSet,
    ContinualError,
    StageConfig,
    add_cohort,
    cohort_logits,
    evaluate_bundle,
    load_cohort,
    require_unchanged,
    train_stage,
)
from biomarker.models import ScreeningModel, create_model, from_pretrained
from biomarker.models.catalog import Catalog
from biomarker.models.screening import snr_covariate
from biomarker.records import ModelConfigError
from typer.testing import CliRunner

from biomarker.cli import app

TINY = dict(embed_dim=16, depth=1, num_heads=2)
FAST = dict(steps=6, eval_every=6, batch_size=8, bootstrap_resamples=20)


def _clips(rng: np.random.Generator, n: int, shift: float, speakers_prefix: str) -> ClipSet:
    """Random 'features' whose patients have a raised lower band: a learnable signal, made here; SNRs from a
    quiet room to a ward."""
    labels = torch.tensor([i % 2 for i in range(n)])
    features = []
    for label in labels.tolist():
        clip = torch.from_numpy(rng.normal(size=(int(rng.integers(40, 60)), 128)).astype(np.float32))
        clip[:, :32] += shift * label
        features.append(clip)
    snr_db = torch.from_numpy(rng.uniform(5.0, 40.0, size=n))
    return ClipSet(features, labels, [f"{speakers_prefix}{i}" for i in range(n)], snr_db)


def _cohort(seed: int, shift: float) -> dict[str, ClipSet]:
    rng = np.random.default_rng(seed)
    return {split: _clips(rng, 8, shift, f"{seed}-{split}-") for split in ("train", "val", "test")}


def _bundle() -> ScreeningModel:
    torch.manual_seed(0)
    return ScreeningModel(create_model("ssast-tiny-patch", **TINY), name="tiny-bundle")


def test_new_adapter_cohort_leaves_earlier_cohort_bit_identical(tmp_path):
    model, a, b = _bundle(), _cohort(1, 1.0), _cohort(2, -1.0)
    train_stage(model, "a", a, StageConfig(**FAST), tmp_path)
    before = cohort_logits(model, "a", a["test"])
    fit = train_stage(model, "b", b, StageConfig(**FAST), tmp_path)
    assert torch.equal(cohort_logits(model, "a", a["test"]), before)
    assert not torch.equal(cohort_logits(model, "b", a["test"]), before)  # b really has its own path
    adapters = sum(p.numel() for p in model.encoder.adapter_parameters("b"))
    head = sum(p.numel() for p in model.heads["b"].parameters())
    assert fit.trainable_params == adapters + head
    assert fit.total_params == model.encoder.backbone_parameter_count() + adapters + head


def test_full_fine_tuning_baseline_changes_earlier_cohort(tmp_path):
    model, a, b = _bundle(), _cohort(1, 1.0), _cohort(2, -1.0)
    train_stage(model, "a", a, StageConfig(method="full", **FAST), tmp_path)
    before = {"a": cohort_logits(model, "a", a["val"])}
    fit = train_stage(model, "b", b, StageConfig(method="full", **FAST), tmp_path)
    assert fit.trainable_params == fit.total_params
    with pytest.raises(ContinualError, match="cohort 'a' changed"):
        require_unchanged(before, model, a["val"])


def test_conv_adapter_cohort_is_calibrated_and_small(tmp_path):
    model = _bundle()
    fit = train_stage(model, "a", _cohort(3, 1.0), StageConfig(method="conv-adapter", adapter_options={"hidden": 4}, **FAST), tmp_path)
    spec, point = model.cohort_spec("a"), fit.operating_point
    assert (spec.threshold, spec.temperature, spec.bias, spec.snr_slope) == (
        point.threshold, point.temperature, point.bias, point.snr_slope)
    assert 0 < fit.trainable_params < fit.total_params
    assert not any(p.requires_grad for p in model.parameters())  # nothing is left trainable by accident


@pytest.mark.parametrize("bad", [dict(method="lora"), dict(steps=0), dict(lr=0.0)])
def test_stage_config_names_the_bad_setting(bad):
    with pytest.raises(ContinualError, match=next(iter(bad))):
        StageConfig(**bad)


def _tone_manifest(directory, cohort: str, seed: int) -> str:
    """Short WAVs of 150 Hz 'speech' bursts; patients' bursts also carry 300 Hz, which controls lack. Every
    split holds both classes recorded in a quiet room and on a noisy ward (SNR about 36 and 16 dB); splits by
    speaker."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    items = []
    t = np.arange(8000) / 16000
    bursts = (t * 5) % 1 < 0.5  # 100 ms on, 100 ms off
    for index, split in enumerate(["train"] * 8 + ["val"] * 4 + ["test"] * 4):
        label, ward = index % 2, (index // 2) % 2
        voice = bursts * (0.5 * np.sin(2 * np.pi * 150 * t) + label * 0.2 * np.sin(2 * np.pi * 300 * t))
        samples = voice + (0.05 if ward else 0.005) * rng.normal(size=t.size)
        path = directory / f"{cohort}-{index}.wav"
        soundfile.write(path, samples.astype(np.float32), 16000)
        items.append(CohortItem(path, label, f"{cohort}-spk{index}", cohort, split=split, extras={"synthetic": "yes"}))
    return str(write_manifest(items, directory / f"{cohort}.csv"))


def test_add_cohort_publishes_versions_whose_earlier_outputs_match_bit_for_bit(tmp_path):
    catalog = Catalog(user_root=tmp_path / "models", shipped_root=None)
    torch.manual_seed(0)
    create_model("ssast-tiny-patch", **TINY).save_pretrained(tmp_path / "encoder")
    manifests = {"a": _tone_manifest(tmp_path / "a", "a", 1), "b": _tone_manifest(tmp_path / "b", "b", 2)}
    tiny_run = dict(steps=6, batch_size=8, device="cpu", catalog=catalog)
    first = add_cohort("demo", "a", manifests["a"], encoder=tmp_path / "encoder", out_dir=tmp_path / "run-a", **tiny_run)
    second = add_cohort("demo", "b", manifests["b"], **tiny_run)
    assert (tmp_path / "run-a" / "a-adapter" / "log.csv").is_file()
    assert (first.ref, second.ref) == ("demo@1", "demo@2")
    v1, v2 = from_pretrained(first.path), from_pretrained(second.path)
    assert (v1.version, v2.version) == ("1", "2")  # the weights' own version agrees with the catalog
    probe = torch.randn(3, 70, 128)
    assert torch.equal(v1.logits(probe, cohort="a"), v2.logits(probe, cohort="a"))
    assert v2.cohort_spec("a") == v1.cohort_spec("a")
    entry = catalog.get("demo@2")
    assert entry.parent == "demo@1" and entry.cohorts == ("a", "b")
    assert entry.metrics["added_cohort"] == "b" and "SYNTHETIC" in entry.card_path.read_text()

    report = evaluate_bundle("demo@2", manifests, tmp_path / "report", catalog=catalog)  # the CLI's config, compared below
    assert [stage.version for stage in report.stages] == ["demo@1", "demo@2"]
    assert report.stages[1].scores["a"] == report.stages[0].scores["a"]  # same outputs, same AUROC and CI
    assert report.backward_transfer() == 0.0
    assert (tmp_path / "report" / "forgetting.png").is_file()
    roots = ["--user-root", str(catalog.user_root), "--shipped-root", str(tmp_path / "none")]
    missing = CliRunner().invoke(app, ["models", "forgetting", "demo@2", "--cohort", f"a={manifests['a']}", *roots])
    assert missing.exit_code == 1 and "no test manifest for cohort(s) ['b']" in missing.output
    over_bundle = CliRunner().invoke(
        app, ["evaluate", "--bundle", "demo@2", "--out", str(tmp_path / "via-evaluate"),
              *[f"--cohort-manifest={name}={path}" for name, path in manifests.items()]],
        env={"BIOMARKER_HOME": str(tmp_path)},
    )
    assert over_bundle.exit_code == 0, over_bundle.output
    assert (tmp_path / "via-evaluate" / "forgetting.md").read_text() == (tmp_path / "report" / "forgetting.md").read_text()


def test_load_cohort_keeps_the_quality_gates_snr_of_each_clip(tmp_path):
    manifest = _tone_manifest(tmp_path / "a", "a", 1)
    data = load_cohort(manifest, create_model("ssast-tiny-patch", **TINY).feature_config)
    for split, clips in data.items():
        paths = [item.path for item in read_manifest(manifest) if item.split == split]
        assert clips.snr_db.tolist() == [check_quality(load(path)).snr_db for path in paths]
    assert data["val"].snr_db.max() - data["val"].snr_db.min() > 10.0  # quiet and ward clips really differ
    assert torch.equal(data["train"].cropped(20).snr_db, data["train"].snr_db)
    with pytest.raises(ContinualError, match="snr_db"):
        ClipSet(data["val"].features, data["val"].labels, data["val"].subjects, data["val"].snr_db[:-1])


def test_added_cohort_is_calibrated_with_the_snr_term_the_app_applies(tmp_path, monkeypatch):
    monkeypatch.setattr(calibration, "SNR_TERM_MIN_PER_CLASS", 2)  # a toy validation split of a few tones
    catalog = Catalog(user_root=tmp_path / "models", shipped_root=None)
    torch.manual_seed(0)
    create_model("ssast-tiny-patch", **TINY).save_pretrained(tmp_path / "encoder")
    manifest = _tone_manifest(tmp_path / "a", "a", 1)
    added = add_cohort("demo", "a", manifest, encoder=tmp_path / "encoder", steps=6, batch_size=8, device="cpu",
                       catalog=catalog)
    model = from_pretrained(added.path)
    spec = model.cohort_spec("a")
    assert math.isfinite(spec.snr_slope) and spec.snr_slope != 0.0  # fitted, not left at "no SNR term"

    val = load_cohort(manifest, model.feature_config)["val"]  # the manifest fixes the split: the same clips
    refit = fit_operating_point(cohort_logits(model, "a", val).numpy(), val.labels.numpy(), val.subjects,
                                snr_db=val.snr_db.numpy())
    # published weights are float16: their logits are a rounding away from the trained ones, so the refit agrees to ~1e-4
    assert (spec.temperature, spec.bias, spec.snr_slope, spec.threshold) == pytest.approx(
        (refit.temperature, refit.bias, refit.snr_slope, refit.threshold), rel=1e-3)
    assert f"SNR slope {spec.snr_slope:+.3f}" in catalog.get(added.ref).card_path.read_text()

    clip = val.features[0][None].expand(2, -1, -1)  # one clip heard at 5 dB and at 35 dB
    snr_db = torch.tensor([5.0, 35.0])
    with torch.no_grad():
        moved = torch.logit(model.probability(clip, cohort="a", snr_db=snr_db).double())
        with pytest.raises(ModelConfigError, match="pass snr_db"):
            model.probability(clip, cohort="a")
    expected = spec.snr_slope * (snr_covariate(snr_db[1]) - snr_covariate(snr_db[0]))
    assert float(moved[1] - moved[0]) == pytest.approx(float(expected), abs=1e-4)


def test_add_cohort_refuses_full_fine_tuning(tmp_path):
    with pytest.raises(ContinualError, match="forgetting baseline"):
        add_cohort("demo", "a", "unused.csv", method="full", catalog=Catalog(tmp_path, None))


# ------------------------------------------------------------------------- factorized attention on saved weights
ROWS = 8  # 128 fbank bins / 16-bin patches: frequency rows of the tiny encoder's grid


def _bump_patch(x: torch.Tensor, row: int, column: int) -> torch.Tensor:
    """x [B, T, F] with the 16x16 input patch at (frequency row, time column) changed."""
    moved = x.clone()
    moved[:, 16 * column : 16 * (column + 1), 16 * row : 16 * (row + 1)] += 3.0
    return moved


def test_factorized_override_restricts_a_saved_encoder_to_row_and_column(tmp_path):
    torch.manual_seed(0)
    create_model("ssast-tiny-patch", **TINY).save_pretrained(tmp_path / "encoder")  # saved with full attention
    full = from_pretrained(tmp_path / "encoder")
    factorized = from_pretrained(tmp_path / "encoder", overrides={"attention": "factorized"})
    assert (full.config.attention, factorized.config.attention) == ("sdpa", "factorized")
    assert all(block.attn.mode == "factorized" for block in factorized.blocks)
    assert all(torch.equal(a, b) for a, b in zip(full.state_dict().values(), factorized.state_dict().values()))

    x = torch.randn(1, 64, 128)  # an 8 x 4 patch grid
    tokens = lambda model, inputs: model.forward_features(inputs)[0][0]  # noqa: E731  [N, D], time-major
    watched = 0 * ROWS + 1  # frequency row 1, time column 0
    with torch.no_grad():
        assert not torch.allclose(tokens(full, x), tokens(factorized, x), atol=1e-4)  # the pattern changed
        outside = _bump_patch(x, row=5, column=3)  # neither row 1 nor column 0
        assert torch.allclose(tokens(factorized, outside)[watched], tokens(factorized, x)[watched], atol=1e-6)
        assert not torch.allclose(tokens(full, outside)[watched], tokens(full, x)[watched], atol=1e-4)
        for row, column in [(1, 3), (5, 0)]:  # same frequency row, same time column: both still reach it
            moved = tokens(factorized, _bump_patch(x, row, column))[watched]
            assert not torch.allclose(moved, tokens(factorized, x)[watched], atol=1e-4)

    with pytest.raises(ModelConfigError, match="shapes the weights"):
        from_pretrained(tmp_path / "encoder", overrides={"embed_dim": 32})


def test_bundle_trained_with_factorized_attention_keeps_it_across_save_and_reload(tmp_path):
    torch.manual_seed(0)
    create_model("ssast-tiny-patch", **TINY).save_pretrained(tmp_path / "encoder")
    manifest = _tone_manifest(tmp_path / "a", "a", 1)
    result = CliRunner().invoke(
        app, ["finetune", "--bundle", "fz", "--cohort", "a", "--method", "adapter", "--manifest", manifest,
              "--encoder", str(tmp_path / "encoder"), "--attention", "factorized", "--steps", "3", "--batch-size", "8",
              "--device", "cpu", "--out", str(tmp_path / "run")],
        env={"BIOMARKER_HOME": str(tmp_path / "home")},
    )
    assert result.exit_code == 0, result.output
    catalog = Catalog(user_root=tmp_path / "home" / "models", shipped_root=None)
    saved = catalog.get("fz@1").path
    reloaded = from_pretrained(saved)
    assert reloaded.encoder.config.attention == "factorized"
    assert all(block.attn.mode == "factorized" for block in reloaded.encoder.blocks)
    probe = torch.randn(2, 64, 128)
    as_full = from_pretrained(saved, overrides={"attention": "sdpa"})  # same weights, full attention
    assert not torch.allclose(reloaded.logits(probe, cohort="a"), as_full.logits(probe, cohort="a"), atol=1e-5)
    with pytest.raises(ContinualError, match="cannot switch to 'sdpa'"):
        add_cohort("fz", "b", manifest, attention="sdpa", steps=3, batch_size=8, device="cpu", catalog=catalog)


def test_attention_comparison_sets_each_cohort_next_to_full_attention(forgetful: ForgettingReport):
    from biomarker.finetune.forgetting import attention_comparison

    factorized = ForgettingReport(method="full + factorized attention", stages=[
        _stage("a", {"a": 0.80}), _stage("b", {"a": 0.80, "b": 0.90}), _stage("c", {"a": 0.70, "b": 0.80, "c": 0.90})])
    table = attention_comparison(forgetful, factorized)
    assert "| a | 0.600 [0.550, 0.650] | 0.700 [0.650, 0.750] | +0.100 |" in table
    assert "| mean | 0.790 | 0.800 | +0.010 |" in table
    with pytest.raises(ContinualError, match="cannot compare"):
        attention_comparison(forgetful, ForgettingReport(method="x", stages=[_stage("a", {"a": 0.5})]))
