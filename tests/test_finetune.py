"""Fine-tuning: methods as switches (trainable shares), label budgets, windows, and a tiny end-to-end run whose
bundle reloads as a calibrated ScreeningModel and is measured by `biomarker evaluate`."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile
import torch
from typer.testing import CliRunner

from biomarker.cli import app
from biomarker.cohorts.manifest import CohortItem, write_manifest
from biomarker.cohorts.splits import SplitConfig, speaker_disjoint_split
from biomarker.evaluate.report import ReportConfig
from biomarker.finetune.methods import FinetuneError, attach
from biomarker.finetune.probe import ProbeConfig
from biomarker.finetune.run import FinetuneConfig, label_budget, run_finetune
from biomarker.finetune.scoring import windows
from biomarker.models import ScreeningModel, create_model, from_pretrained
from screening_helpers import burst_clip

TINY = {"depth": 1, "embed_dim": 48, "num_heads": 3}
RATE = 16000


def test_methods_train_the_right_share():
    shares = {}
    for method in ("linear", "adapter", "conv-adapter", "full"):
        bundle = ScreeningModel(create_model("ssast-tiny-patch", **TINY), name="t")
        shares[method] = attach(bundle, "c", method).percent
        trainable = {n for n, p in bundle.named_parameters() if p.requires_grad}
        assert all(n.startswith("heads.") for n in trainable) == (method == "linear")
    assert shares["linear"] < shares["adapter"] < shares["full"] == 100.0
    assert shares["conv-adapter"] < 100.0
    with pytest.raises(FinetuneError, match="method must be one of"):
        attach(ScreeningModel(create_model("ssast-tiny-patch", **TINY), name="t"), "c", "lora")


def test_label_budget_keeps_whole_speakers_and_both_classes(tmp_path):
    items = [CohortItem(tmp_path / f"{s}{k}.wav", s % 2, f"s{s}", "c") for s in range(20) for k in range(2)]
    chosen = label_budget(items, 10, seed=0)
    assert len(chosen) == 10
    assert {i.label for i in chosen} == {0, 1}
    speakers = {i.speaker_id for i in chosen}
    assert all(sum(i.speaker_id == s for i in chosen) == 2 for s in speakers)


def test_windows_cover_the_whole_clip():
    clip = torch.arange(1050.0)[:, None]
    pieces = windows(clip, 400, 100)
    assert pieces[0][0, 0] == 0 and pieces[-1][-1, 0] == 1049
    assert all(len(p) == 400 for p in pieces)
    assert len(windows(clip[:300], 400, 100)) == 1


@pytest.fixture
def tiny_cohort(tmp_path):
    rng = np.random.default_rng(0)
    items = []
    for speaker in range(24):
        label = speaker % 2
        path = tmp_path / f"clip{speaker:02d}.wav"
        soundfile.write(path, burst_clip(label, rng), RATE)
        items.append(CohortItem(path, label, f"s{speaker}", "tiny"))
    items = speaker_disjoint_split(items, SplitConfig(0.5, 0.25, 0.25, seed=1))
    return write_manifest(items, tmp_path / "manifest.csv")


@pytest.mark.slow
def test_finetune_end_to_end_ships_a_calibrated_bundle(tiny_cohort, tmp_path):
    out = tmp_path / "run"
    summary = run_finetune(
        FinetuneConfig(
            manifest=str(tiny_cohort), out_dir=str(out), method="adapter", encoder_overrides=TINY, steps=30,
            eval_every=10, patience=10, batch_size=8, crop_s=1.0, lr=3e-3, cache_dir=str(tmp_path / "cache"),
            report=ReportConfig(bootstrap_resamples=50), device="cpu", probe_first=True,
        )
    )
    assert summary["sets"]["tiny test"]["auroc"] >= 0.8
    assert summary["probe"]["strength"] in ProbeConfig().strengths
    # the probed head (step 0) competed for the kept weights with the validation AUROC the probe was chosen by
    log = list(csv.DictReader((out / "train" / "log.csv").open()))
    at_start = [float(r["value"]) for r in log if r["step"] == "0" and r["metric"] == "auroc"]
    assert at_start == [pytest.approx(summary["probe"]["validation_auroc"], abs=1e-6)]
    assert 0 < summary["trainable_percent"] < 100
    bundle = from_pretrained(out / "bundle")
    assert isinstance(bundle, ScreeningModel)
    spec = bundle.cohort_spec("synthetic-ri")
    assert spec.threshold == pytest.approx(summary["operating_point"]["threshold"], abs=1e-6)
    assert spec.temperature == pytest.approx(summary["operating_point"]["temperature"], abs=1e-6)
    for key in ("auroc", "auroc_ci", "sensitivity", "specificity", "threshold", "ece", "n"):
        assert key in json.loads((out / "report" / "metrics.json").read_text())

    result = CliRunner().invoke(app, ["evaluate", "--manifest", str(tiny_cohort), "--model", str(out / "bundle"),
                                      "--out", str(tmp_path / "eval"), "--split", "all", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n"] == 24 and metrics["n_rejected"] == 0
    assert (tmp_path / "eval" / "all_roc.png").exists()


def test_the_card_describes_each_training_cohort_once_and_points_elsewhere_for_unknown_ones():
    from biomarker.finetune.card import training_data

    text = training_data(["synthetic-voices-noisy", "real-train", "synthetic-voices", "clinic-x"])
    lines = text.splitlines()
    assert [line.split("`")[1] for line in lines] == ["clinic-x", "real-train", "synthetic-voices"]
    assert "40 more training-only" in lines[2] and "data_cards/" in lines[0]


def _features_with_a_label_band(n_clips: int, seed: int):
    """Clips [T, 128] whose lower mel bands are louder for patients: what any encoder's pooled embedding shows."""
    from biomarker.finetune.data import LabelledFeatures
    from biomarker.features.bank import FeatureBank

    generator = torch.Generator().manual_seed(seed)
    clips, labels = [], []
    for index in range(n_clips):
        label = index % 2
        clip = torch.randn(int(torch.randint(80, 160, (1,), generator=generator)), 128, generator=generator)
        clip[:, :40] += 1.5 * label
        clips.append(clip.half())
        labels.append(label)
    offsets = torch.cumsum(torch.tensor([0] + [len(c) for c in clips]), 0)
    bank = FeatureBank(torch.cat(clips), offsets, {})
    subjects = [f"s{i}" for i in range(n_clips)]
    return LabelledFeatures(bank, torch.tensor(labels), subjects, [None] * n_clips, np.zeros(n_clips))


@pytest.mark.parametrize("standardise", [False, True])
def test_the_probed_head_ranks_validation_as_its_probe_did_and_moves_no_encoder_weight(standardise):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from biomarker.evaluate.metrics import auroc
    from biomarker.finetune.probe import fit_probe_head, head_inputs
    from biomarker.finetune.scoring import recording_logits

    torch.manual_seed(0)
    bundle = ScreeningModel(create_model("ssast-tiny-patch", **TINY), name="t")
    attach(bundle, "c", "full")
    train, val = _features_with_a_label_band(24, seed=1), _features_with_a_label_band(40, seed=2)
    encoder_before = {k: v.clone() for k, v in bundle.encoder.state_dict().items()}
    random_head = auroc(recording_logits(bundle, val, "c"), val.labels.numpy())

    result = fit_probe_head(bundle, "c", train, val, ProbeConfig(strengths=(0.001, 1.0), standardise=standardise))

    assert result.strength in (0.001, 1.0) and result.standardised == standardise
    logits = recording_logits(bundle, val, "c")
    # the head now holds the chosen probe: the model ranks validation exactly as the probe was scored
    assert auroc(logits, val.labels.numpy()) == pytest.approx(result.validation_auroc, abs=1e-6)
    assert result.validation_auroc > 0.95 > random_head
    assert all(torch.equal(encoder_before[k], v) for k, v in bundle.encoder.state_dict().items())
    # and gives the very logits of the scikit-learn model it was fitted as (the standardising folded in)
    train_x, val_x = head_inputs(bundle, train, "c"), head_inputs(bundle, val, "c")
    if standardise:
        scaler = StandardScaler().fit(train_x)
        train_x, val_x = scaler.transform(train_x), scaler.transform(val_x)
    probe = LogisticRegression(C=result.strength, class_weight="balanced", max_iter=5000)
    probe.fit(train_x, train.labels.numpy().astype(int))
    np.testing.assert_allclose(logits, probe.decision_function(val_x), atol=1e-3, rtol=1e-4)


def test_the_finetune_command_hands_the_pooling_and_the_standardised_probe_to_the_run(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    import biomarker.finetune.run as run_module
    from biomarker.cli import app

    seen = []
    monkeypatch.setattr(run_module, "run_finetune", lambda config: seen.append(config) or {"sets": {}})
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,speaker_id,cohort\n")
    args = ["finetune", "--manifest", str(manifest), "--out", str(tmp_path / "out"), "--method", "linear",
            "--encoder", "pretrained/ssamba-tiny", "--depth", "12", "--set", "pooling=layer-stats", "--probe-first"]
    for extra, standardised in (([], False), (["--probe-standardise"], True)):
        result = CliRunner().invoke(app, args + extra)
        assert result.exit_code == 0, result.output
        assert seen[-1].probe.standardise is standardised and seen[-1].probe_first
        assert seen[-1].encoder_overrides == {"depth": 12, "pooling": "layer-stats"}
