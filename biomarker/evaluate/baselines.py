"""The classic clinical-speech baseline: MFCC statistics + logistic regression (scikit-learn).

WHY: a deep model that cannot beat 52 summary numbers and a linear classifier has not earned its complexity.
Features per recording: mean and standard deviation of 13 MFCCs (python_speech_features settings) and of their
first differences. Standardised, then L2 logistic regression with balanced class weights.
(eGeMAPS functionals via openSMILE would be the second baseline; openSMILE is not installed here and its
licence forbids commercial use, so it is left out rather than approximated.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from biomarker.features import mfcc

if TYPE_CHECKING:
    from biomarker.evaluate.report import ReportConfig

SAMPLE_RATE_HZ = 16000


def mfcc_statistics(samples: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """One recording [S] -> 52 numbers: mean and std of 13 MFCCs and of their frame-to-frame differences."""
    cepstra = mfcc(torch.as_tensor(samples, dtype=torch.float32), sample_rate_hz).numpy()
    deltas = np.diff(cepstra, axis=0)
    return np.concatenate([cepstra.mean(0), cepstra.std(0), deltas.mean(0), deltas.std(0)])


@dataclass
class MfccStatsBaseline:
    """Fit on training recordings, then `logits` gives decision values comparable to a network's logits."""

    regularisation: float = 1.0
    pipeline: Pipeline | None = None

    def fit(self, recordings: Sequence[np.ndarray], labels: Sequence[int]) -> "MfccStatsBaseline":
        features = np.stack([mfcc_statistics(r) for r in recordings])
        self.pipeline = make_pipeline(
            StandardScaler(), LogisticRegression(C=self.regularisation, class_weight="balanced", max_iter=2000)
        )
        self.pipeline.fit(features, np.asarray(labels))
        return self

    def logits(self, recordings: Sequence[np.ndarray]) -> np.ndarray:
        if self.pipeline is None:
            raise RuntimeError("MfccStatsBaseline.logits called before fit")
        return self.pipeline.decision_function(np.stack([mfcc_statistics(r) for r in recordings]))


def run_baseline(manifest: str, out_dir: str, extra_eval: Sequence[str] = (), config: "ReportConfig | None" = None,
                 labels: int | None = None, seed: int = 0) -> dict:
    """Train on the manifest's train rows, fit temperature + threshold on val, measure the same sets as
    `biomarker finetune` (test rows per cohort, extra manifests per cohort, real healthy/marked apart).

    `labels`/`seed` cap the training rows exactly as `biomarker finetune --labels N --seed S` does, so a
    label-budget row of the comparison table compares the baseline and the deep models on the same recordings."""
    import json
    from pathlib import Path

    from biomarker.audio import load
    from biomarker.cohorts.manifest import read_manifest, select_split
    from biomarker.evaluate.calibration import calibrated
    from biomarker.evaluate.report import ReportConfig, fit_operating_point, flag_rate, measure, plot_set, write_report
    from biomarker.evaluate.manifest import evaluation_sets

    config = config or ReportConfig()
    items = read_manifest(manifest)
    audio = lambda rows: [load(item.path, SAMPLE_RATE_HZ).samples for item in rows]  # noqa: E731
    from biomarker.finetune.run import label_budget

    train, val = label_budget(select_split(items, "train"), labels, seed), select_split(items, "val")
    baseline = MfccStatsBaseline().fit(audio(train), [i.label for i in train])
    point = fit_operating_point(baseline.logits(audio(val)), [i.label for i in val], [f"{i.cohort}/{i.speaker_id}" for i in val], config)
    report_dir = Path(out_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    measured, flagged = {}, {}
    for name, rows in evaluation_sets(select_split(items, "test"), extra_eval).items():
        probabilities = calibrated(baseline.logits(audio(rows)), point.temperature, point.bias)
        labels = np.array([i.label for i in rows])
        subjects = [f"{i.cohort}/{i.speaker_id}" for i in rows]
        if len(set(labels.tolist())) == 2:
            measured[name] = measure(probabilities, labels, subjects, point.threshold, config)
            plot_set(name, probabilities, labels, subjects, measured[name], report_dir, config.synthetic)
        else:
            flagged[name] = {**flag_rate(probabilities, subjects, point.threshold), "label": int(labels[0])}
    notes = [f"{n}: {v['flagged']:.1%} of {v['n']} subjects flagged positive (all label {v['label']})" for n, v in flagged.items()]
    write_report(report_dir, measured, title="MFCC statistics + logistic regression baseline (SYNTHETIC cohorts)",
                 config=config, operating_point=point, extra={"flag_rates": flagged, "method": "mfcc-stats+lr"}, notes=notes)
    summary = {"sets": measured, "flag_rates": flagged, "method": "mfcc-stats+lr", "train_recordings": len(train)}
    (report_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
