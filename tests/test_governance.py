"""Acceptance-gated promotion: a tiny plan over tiny generated manifests; a version that meets it is promoted, one
that misses it is refused with the failing rows, an admin's override is promoted and audited as such, a changed
locked set decides nothing, and adapter versions must leave earlier cohorts' outputs unchanged. Tiny random model,
numpy-made clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from biomarker.cli import app
from biomarker.cohorts.manifest import CohortItem, write_manifest
from biomarker.governance.acceptance import (
    AcceptanceError,
    decide,
    evaluate_candidate,
    load_plan,
    read_records,
    set_digests,
)
from biomarker.models import from_pretrained
from biomarker.models.catalog import Catalog
from biomarker.screener import PRETRAINED_DIR
from biomarker.settings import Settings
from biomarker.store import Store, UserInfo
from screening_helpers import TEST_MODEL_NAME, burst_clip, save_tiny_screening_model

NAME = TEST_MODEL_NAME


def locked_manifest(folder: Path, n_per_class: int = 5, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for k, label in enumerate([1] * n_per_class + [0] * n_per_class):
        path = folder / f"clip-{k:02d}.wav"
        sf.write(path, burst_clip(label, rng, bursts=4), 16000)
        items.append(CohortItem(path, label, f"s{k:02d}", "locked", sex="F" if k % 2 else "M"))
    return write_manifest(items, folder / "locked.csv")


def write_plan(path: Path, manifest: Path, criteria: str, *, earlier_unchanged: bool = True) -> Path:
    manifest_sha, audio_sha = set_digests(manifest)
    path.write_text(f"""plan_version = "1"
[models.{NAME}]
earlier_cohorts_unchanged = {str(earlier_unchanged).lower()}
[models.{NAME}.criteria]
{criteria}
[[models.{NAME}.sets]]
name = "tiny-locked"
manifest = "{manifest.name}"
manifest_sha256 = "{manifest_sha}"
audio_sha256 = "{audio_sha}"
rebuild = "tests/test_governance.py locked_manifest()"
""")
    return path


@pytest.fixture()
def catalog(tmp_path, monkeypatch):
    """@1 (threshold 0.5) is the default; @2 has the same weights at threshold 0: every subject is referred, so its
    sensitivity is 1 and its specificity 0, while AUROC and ECE equal @1's."""
    monkeypatch.setenv("BIOMARKER_HOME", str(tmp_path / "home"))
    catalog = Catalog(shipped_root=PRETRAINED_DIR)
    for version, threshold in (("1", 0.5), ("2", 0.0)):
        model = from_pretrained(save_tiny_screening_model(tmp_path / f"tiny-{version}", threshold=threshold))
        catalog.publish(model, card="# tiny test screener\n\nrandom weights", cohorts=["default"])
    catalog.promote(f"{NAME}@1")
    return catalog


def events(action: str) -> list[dict]:
    store = Store(Settings.from_env())
    try:
        return [json.loads(e.payload) | {"_object": e.object_id}
                for e in store.audit_events(viewer=UserInfo.local_operator()) if e.action == action]
    finally:
        store.close()


def promote(tmp_path, plan: Path, *extra: str):
    return CliRunner().invoke(app, ["models", "promote", f"{NAME}@2", "--plan", str(plan), "--data-root",
                                    str(tmp_path / "data"), "--out", str(tmp_path / "acceptance"), *extra])


def test_a_version_meeting_the_plan_is_promoted_and_the_decision_audited(tmp_path, catalog):
    plan = write_plan(tmp_path / "acceptance.toml", locked_manifest(tmp_path / "data"), "min_sensitivity = 0.9\nmax_auroc_drop = 0.0")
    result = promote(tmp_path, plan)
    assert result.exit_code == 0, result.output
    assert "| tiny-locked | sensitivity at threshold | >= 0.900 | 1.000 |" in result.output
    assert catalog.get(NAME).ref == f"{NAME}@2"
    [event] = events("model_promoted")
    assert event["_object"] == f"{NAME}@2" and event["plan_sha256"] == load_plan(plan).sha256
    assert event["default_before"] == f"{NAME}@1" and {c["criterion"] for c in event["checks"]} == {
        "sensitivity at threshold", "AUROC vs default"}
    assert read_records(catalog.user_root)[f"{NAME}@2"]["decision"] == "promoted"


def test_a_version_missing_the_plan_is_refused_with_the_failing_rows(tmp_path, catalog):
    plan = write_plan(tmp_path / "acceptance.toml", locked_manifest(tmp_path / "data"),
                      "min_sensitivity = 0.9\nmin_specificity = 0.5")
    result = promote(tmp_path, plan)
    assert result.exit_code == 1, result.output
    assert "refused" in result.output and "tiny-locked: specificity at threshold (required >= 0.500; measured 0.000)" in result.output
    assert catalog.get(NAME).ref == f"{NAME}@1"  # the default did not move
    [event] = events("model_promotion_refused")
    assert event["failing"] == ["tiny-locked: specificity at threshold"] and not events("model_promoted")


def test_an_admin_override_promotes_and_is_audited_with_its_reason(tmp_path, catalog):
    plan = write_plan(tmp_path / "acceptance.toml", locked_manifest(tmp_path / "data"), "min_specificity = 0.5")
    assert promote(tmp_path, plan, "--override").exit_code == 2  # --override without --reason is refused
    result = promote(tmp_path, plan, "--override", "--reason", "site pilot, reviewed by the QA board")
    assert result.exit_code == 0, result.output
    assert catalog.get(NAME).ref == f"{NAME}@2" and "OVERRIDE" in result.output
    [event] = events("model_promoted_override")
    assert event["reason"] == "site pilot, reviewed by the QA board" and event["failing"]


def test_only_an_admin_may_override(tmp_path, catalog):
    plan = load_plan(write_plan(tmp_path / "acceptance.toml", locked_manifest(tmp_path / "data"), "min_specificity = 0.5"))
    report = evaluate_candidate(plan, catalog.get(f"{NAME}@2"), catalog.get(NAME), data_root=tmp_path / "data",
                                out_dir=tmp_path / "out")
    researcher = UserInfo(username="rita", role="researcher", site=None)
    written = []
    with pytest.raises(AcceptanceError, match="only an admin may override"):
        decide(report, catalog=catalog, actor=researcher, audit=lambda *event: written.append(event),
               override_reason="I am sure")
    assert not written and catalog.get(NAME).ref == f"{NAME}@1"


def test_a_changed_locked_set_is_a_failing_row_and_not_evaluated(tmp_path, catalog):
    manifest = locked_manifest(tmp_path / "data")
    plan = write_plan(tmp_path / "acceptance.toml", manifest, "min_sensitivity = 0.0")
    sf.write(tmp_path / "data" / "clip-00.wav", np.zeros(16000, np.float32), 16000)  # one clip replaced
    report = evaluate_candidate(load_plan(plan), catalog.get(f"{NAME}@2"), catalog.get(NAME),
                                data_root=tmp_path / "data", out_dir=tmp_path / "out")
    [check] = report.checks
    assert not report.passed and check.criterion == "locked set" and "changed" in check.note and "rebuild it" in check.note


def test_a_model_without_a_plan_is_refused(tmp_path, catalog):
    plan = tmp_path / "acceptance.toml"
    plan.write_text('plan_version = "1"\n')
    result = promote(tmp_path, plan)
    assert result.exit_code == 1 and f"has no plan for {NAME}" in result.output
    assert catalog.get(NAME).ref == f"{NAME}@1"


def test_plan_errors_name_the_entry(tmp_path):
    plan = tmp_path / "acceptance.toml"
    plan.write_text(f'[models.{NAME}.criteria]\nmin_sensitivty = 0.9\n')
    with pytest.raises(AcceptanceError, match=r"unknown criteria \['min_sensitivty'\]"):
        load_plan(plan)
    plan.write_text(f'[models.{NAME}.criteria]\nmin_sensitivity = 90\n')
    with pytest.raises(AcceptanceError, match=r"min_sensitivity must be a number in \[0, 1\], got 90"):
        load_plan(plan)


def test_adapter_versions_must_leave_earlier_cohorts_unchanged(tmp_path, catalog):
    """@3 adds a cohort with an adapter (earlier outputs bit-identical: passes); @4 claims to be an adapter version
    but re-calibrated the earlier cohort (its outputs moved: fails)."""
    manifest = locked_manifest(tmp_path / "data")
    plan = load_plan(write_plan(tmp_path / "acceptance.toml", manifest, "min_sensitivity = 0.0"))
    added = from_pretrained(catalog.get(f"{NAME}@1").path)
    added.add_cohort("hospital-b", "aat")
    catalog.publish(added, card="# adds hospital-b", parent=f"{NAME}@1", cohorts=list(added.cohorts),
                    metrics={"method": "adapter"})
    moved = from_pretrained(catalog.get(f"{NAME}@1").path)
    moved.add_cohort("hospital-b", "aat")
    moved.set_calibration("default", temperature=3.0)
    catalog.publish(moved, card="# moves default", parent=f"{NAME}@1", cohorts=list(moved.cohorts),
                    metrics={"method": "adapter"})
    checks = {}
    for version in ("3", "4"):
        report = evaluate_candidate(plan, catalog.get(f"{NAME}@{version}"), catalog.get(NAME),
                                    data_root=tmp_path / "data", out_dir=tmp_path / "out")
        [checks[version]] = [c for c in report.checks if c.criterion.startswith("outputs of earlier cohort")]
    assert checks["3"].passed and checks["3"].candidate == 0.0
    assert not checks["4"].passed and checks["4"].candidate > 0
