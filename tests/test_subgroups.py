"""Subgroup performance: groups read from the manifest's columns only, metrics with CIs, the best-worst gap over
groups large enough, severity bands against every control, columns a manifest lacks left out; `evaluate_scored`
puts the tables in metrics.json and report.md; the synthetic generator's sexes agree with espeak-ng's voice files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from biomarker.cohorts.manifest import CohortItem
from biomarker.cohorts.synth import EXTRA_TRAIN_VARIANTS, VARIANT_SEX, VARIANTS
from biomarker.evaluate.manifest import evaluate_scored
from biomarker.evaluate.report import ReportConfig
from biomarker.evaluate.subgroups import SubgroupConfig, subgroup_metrics


def cohort(n_per_cell: int = 12) -> tuple[list[CohortItem], np.ndarray]:
    """Women: patients score high (found); men: patients score like controls (missed). One clip per subject."""
    rng = np.random.default_rng(0)
    items, scores = [], []
    for sex in ("F", "M"):
        for label in (1, 0):
            for k in range(n_per_cell):
                band = ("mild", "severe")[k % 2] if label else ""
                extras = {"language": "pt-br" if k % 3 else "el", "severity_band": band}
                items.append(CohortItem(Path(f"{sex}{label}{k}.wav"), label, f"{sex}{label}{k}", "c", sex=sex,
                                        age=35.0 + 30 * (k % 2), extras=extras))
                high = label == 1 and (sex == "F" or band == "severe")
                scores.append(rng.uniform(0.7, 0.95) if high else rng.uniform(0.05, 0.4))
    return items, np.array(scores)


def test_by_sex_the_gap_names_the_best_and_worst_group():
    items, scores = cohort()
    found = subgroup_metrics(items, scores, [i.speaker_id for i in items], threshold=0.5,
                             config=SubgroupConfig(resamples=200))
    sex = found["sex"]
    assert sex["groups"]["F"]["sensitivity"] == 1.0 and sex["groups"]["M"]["sensitivity"] == 0.5
    low, high = sex["groups"]["M"]["sensitivity_ci"]
    assert low < 0.5 < high  # Wilson interval around 6/12
    assert sex["gaps"]["sensitivity"] == {"gap": 0.5, "best": "F", "worst": "M"}
    assert sex["groups"]["F"]["auroc"] == 1.0 and len(sex["groups"]["F"]["auroc_ci"]) == 2
    assert set(found) == {"sex", "age band", "language", "severity band"}  # no noise/codec/channel column here
    assert set(found["age band"]["groups"]) == {"<40", "60-79"}


def test_severity_bands_hold_their_patients_against_every_control():
    items, scores = cohort()
    bands = subgroup_metrics(items, scores, [i.speaker_id for i in items], 0.5, config=SubgroupConfig(resamples=50))["severity band"]
    assert bands["groups"]["severe"]["sensitivity"] == 1.0 and bands["groups"]["mild"]["sensitivity"] == 0.5
    assert bands["groups"]["mild"]["n_controls"] == 24  # all controls of both sexes
    assert "specificity" not in bands["gaps"] and bands["unassigned_rows"] == 0


def test_small_groups_stay_out_of_the_gap():
    items, scores = cohort(n_per_cell=4)
    found = subgroup_metrics(items, scores, [i.speaker_id for i in items], 0.5, config=SubgroupConfig(resamples=50))
    assert found["sex"]["gaps"] == {}  # 4 patients per sex < min_subjects 10
    assert found["sex"]["groups"]["M"]["n"] == 8


def test_evaluate_scored_writes_subgroup_tables(tmp_path):
    items, scores = cohort()
    evaluate_scored(items, list(scores), [None] * len(items), {"c": 0.5}, tmp_path, title="t",
                    config=ReportConfig(bootstrap_resamples=100))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["sets"]["all"]["subgroups"]["sex"]["gaps"]["sensitivity"]["worst"] == "M"
    report = (tmp_path / "report.md").read_text()
    assert "#### all: by sex" in report and "| M | 24 (12) | 0.500 [" in report


def test_the_generators_sexes_agree_with_espeak_ng_voice_files():
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng is not installed")
    data = re.search(r"Data at:\s*(\S+)", subprocess.run([espeak, "--version"], capture_output=True, text=True).stdout)
    folder = Path(data.group(1)) / "voices" / "!v"
    for variant in {*VARIANTS["train"], *VARIANTS["heldout"], *EXTRA_TRAIN_VARIANTS}:
        stated = re.search(r"^gender\s+(\w+)", (folder / variant).read_text(errors="replace"), re.MULTILINE | re.IGNORECASE)
        expected = {"male": "M", "female": "F"}.get(stated.group(1).lower()) if stated else None
        assert VARIANT_SEX.get(variant) == expected, variant
