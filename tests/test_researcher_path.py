"""The researcher's path after adding a cohort to a bundle: `evaluate --bundle` measures just the new cohort with
the version and its parent (no earlier cohort's manifest needed) and names the real flag when none is given;
`finetune --bundle`'s summary says the version, trainable share, validation AUROC and the threshold's sensitivity
and specificity on validation. Tiny random model, numpy-made clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from biomarker.cli import app
from biomarker.cli.finetune import bundle_summary
from biomarker.cohorts.manifest import CohortItem, write_manifest
from biomarker.evaluate.report import OperatingPoint
from biomarker.finetune.continual import CohortAdded, StageFit
from biomarker.models import from_pretrained
from biomarker.models.catalog import Catalog
from biomarker.screener import PRETRAINED_DIR
from screening_helpers import TEST_MODEL_NAME, burst_clip, save_tiny_screening_model


def new_cohort(folder: Path) -> Path:
    rng = np.random.default_rng(3)
    items = []
    for k, label in enumerate([1, 0] * 6):
        path = folder / f"b-{k:02d}.wav"
        sf.write(path, burst_clip(label, rng, bursts=4), 16000)
        items.append(CohortItem(path, label, f"b{k:02d}", "hospital-b", split="val" if k < 6 else "test"))
    return write_manifest(items, folder / "hospital-b.csv")


@pytest.fixture()
def catalog(tmp_path, monkeypatch):
    """@1: the tiny bundle (cohort 'default'); @2: @1 plus cohort 'hospital-b' with an AAT adapter."""
    monkeypatch.setenv("BIOMARKER_HOME", str(tmp_path / "home"))
    catalog = Catalog(shipped_root=PRETRAINED_DIR)
    model = from_pretrained(save_tiny_screening_model(tmp_path / "tiny"))
    catalog.publish(model, card="# tiny", cohorts=["default"])
    model = from_pretrained(catalog.get(f"{TEST_MODEL_NAME}@1").path)
    model.add_cohort("hospital-b", "aat", threshold=0.4)
    catalog.publish(model, card="# adds hospital-b", parent=f"{TEST_MODEL_NAME}@1", cohorts=list(model.cohorts),
                    metrics={"method": "adapter"})
    return catalog


def test_evaluate_bundle_measures_only_the_new_cohort_with_the_version_and_its_parent(tmp_path, catalog):
    manifest = new_cohort(tmp_path)
    result = CliRunner().invoke(app, ["evaluate", "--bundle", f"{TEST_MODEL_NAME}@2", "--cohort-manifest",
                                      f"hospital-b={manifest}", "--out", str(tmp_path / "eval"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert f"hospital-b with {TEST_MODEL_NAME}@2 (this version, bundle cohort hospital-b)" in result.output
    assert f"hospital-b with {TEST_MODEL_NAME}@1 (parent, bundle cohort default)" in result.output
    assert (tmp_path / "eval" / f"hospital-b-{TEST_MODEL_NAME}@2" / "metrics.json").is_file()


def test_evaluate_bundle_errors_name_the_real_flag(tmp_path, catalog):
    result = CliRunner().invoke(app, ["evaluate", "--bundle", f"{TEST_MODEL_NAME}@2"])
    assert result.exit_code != 0 and "--cohort-manifest NAME=M.csv" in result.output
    result = CliRunner().invoke(app, ["evaluate", "--bundle", f"{TEST_MODEL_NAME}@2", "--cohort-manifest",
                                      f"hospital-c={tmp_path / 'x.csv'}"])
    assert result.exit_code != 0 and "has no cohort(s) ['hospital-c']" in result.output


def test_finetune_bundle_summary_is_words_not_a_repr(tmp_path, catalog):
    manifest = new_cohort(tmp_path)
    version = catalog.get(f"{TEST_MODEL_NAME}@2")
    point = OperatingPoint(temperature=1.0, threshold=0.4, target_sensitivity=0.9)
    added = CohortAdded(version.ref, version.path, StageFit("hospital-b", "adapter", 1_234, 50_000, 0.812, point))
    lines = bundle_summary(added, manifest, "hospital-b", "cpu")
    text = "\n".join(lines)
    assert "CohortAdded(" not in text and "StageFit(" not in text
    assert lines[0].startswith(f"wrote {TEST_MODEL_NAME}@2") and "1,234 of 50,000" in lines[1] and "(2.47 %)" in lines[1]
    assert lines[2] == "validation AUROC (subjects): 0.812"
    assert "at threshold 0.400" in lines[3] and "sensitivity" in lines[3] and "specificity" in lines[3]
    assert "(n = 6 subjects, 3 RI; 0 refused)" in lines[3]
