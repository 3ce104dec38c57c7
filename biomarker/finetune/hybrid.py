"""The hybrid screener: a trained deep screener's recording logit plus interpretable pause and breath statistics
(`biomarker.features.breathing`), combined by one class-balanced logistic regression (issue 22, item 3).

WHY: a deep encoder pools its frames into a mean, so it cannot count pauses or measure how long an utterance
took, and what it learnt of breathing was the training generator's rendering of it. The statistics a clinician
would name (pauses per second, their length, breath-group length, in-breath level, loudness decline, rate) are
measured the same way on any voice; the regression weighs them against the deep model's evidence and says, by
its coefficients, how much each one counts. The order of operations is `biomarker finetune`'s: fit on `train`
rows, choose the regularisation on validation subjects' AUROC, calibrate and set the threshold on validation,
then measure sets at that frozen operating point.

This measures a candidate; it is not served by the screener (the app and `biomarker score` load bundles only).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from tqdm import tqdm

from biomarker.audio import load
from biomarker.cohorts.manifest import CohortItem, read_manifest, select_split
from biomarker.evaluate.calibration import SubjectPooling, calibrated
from biomarker.evaluate.manifest import evaluation_sets
from biomarker.evaluate.metrics import auroc
from biomarker.evaluate.report import OperatingPoint, ReportConfig, SetMeasurements, fit_operating_point, write_report
from biomarker.features.breathing import FEATURE_NAMES, breathing_features
from biomarker.features.registry import front_end
from biomarker.finetune.data import load_features
from biomarker.finetune.scoring import recording_logits
from biomarker.models import from_pretrained

HYBRID_FILE = "hybrid.json"


@dataclass(frozen=True)
class HybridConfig:
    """`run_dir` is a finished `biomarker finetune` run (its bundle/ gives the deep logit); `manifest` is the one it
    was trained on (train rows fit the regression, val rows calibrate it)."""

    run_dir: str
    manifest: str
    out_dir: str
    extra_eval: tuple[str, ...] = ()
    strengths: tuple[float, ...] = (0.01, 0.1, 1.0)
    cache_dir: str = "runs/cache"
    report: ReportConfig = field(default_factory=ReportConfig)


def _subjects(rows: Sequence[CohortItem]) -> list[str]:
    return [f"{item.cohort}/{item.speaker_id}" for item in rows]


def breathing_matrix(rows: Sequence[CohortItem], cache_dir: str | Path) -> np.ndarray:
    """[N, len(FEATURE_NAMES)] for the rows, each recording cached under cache_dir/breathing by its samples' hash."""
    folder = Path(cache_dir) / "breathing"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for item in tqdm(rows, desc="pause and breath statistics", unit="clip", leave=False):
        samples = load(item.path, 16000).samples
        path = folder / f"{hashlib.sha1(np.ascontiguousarray(samples).tobytes()).hexdigest()}.npy"
        if path.is_file():
            out.append(np.load(path))
            continue
        values = breathing_features(samples)
        np.save(path, values)
        out.append(values)
    return np.stack(out)


class Hybrid:
    """The deep bundle plus the fitted regression; `logits(rows)` -> hybrid recording logits and the rows' SNR."""

    def __init__(self, run_dir: str | Path, cache_dir: str):
        self.bundle = from_pretrained(Path(run_dir) / "bundle").to(torch.float32).eval()
        self.cohort = self.bundle.resolve_cohort(None)
        self.spec = self.bundle.cohort_spec(self.cohort)
        self.extractor = front_end(self.bundle.feature_config)
        self.cache_dir = cache_dir
        self.coef: np.ndarray | None = None
        self.intercept = 0.0
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def inputs(self, rows: Sequence[CohortItem]) -> tuple[np.ndarray, np.ndarray]:
        """([N, 1 + features] = deep logit then breathing statistics, SNR dB [N])."""
        data = load_features(rows, self.extractor, self.cache_dir)
        deep = recording_logits(self.bundle, data, self.cohort, mode=self.spec.scoring, window_frames=self.spec.window_frames,
                                hop_frames=self.spec.hop_frames)
        return np.column_stack([np.asarray(deep, float), breathing_matrix(rows, self.cache_dir)]), np.asarray(data.snr_db, float)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept

    def fit(self, train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray, val_subjects: list[str],
            strengths: Sequence[float]) -> dict[str, float]:
        """Class-balanced L2 logistic regression on standardised inputs; the strength with the best validation
        subject AUROC wins. Returns {strength: validation AUROC}."""
        self.mean, self.scale = train_x.mean(axis=0), train_x.std(axis=0) + 1e-9
        scores, best = {}, None
        for strength in strengths:
            model = LogisticRegression(C=strength, class_weight="balanced", max_iter=5000).fit((train_x - self.mean) / self.scale, train_y)
            self.coef, self.intercept = model.coef_[0], float(model.intercept_[0])
            pooled = SubjectPooling().pool(1 / (1 + np.exp(-self.logits(val_x))), val_y, val_subjects)
            scores[str(strength)] = auroc(pooled.scores, pooled.labels)
            if best is None or scores[str(strength)] > best[0]:
                best = (scores[str(strength)], model)
        self.coef, self.intercept = best[1].coef_[0], float(best[1].intercept_[0])
        return scores

    def state(self) -> dict:
        return {"inputs": ["deep_logit", *FEATURE_NAMES], "coef": self.coef.tolist(), "intercept": self.intercept,
                "mean": self.mean.tolist(), "scale": self.scale.tolist()}

    def load_state(self, state: dict) -> None:
        self.coef, self.intercept = np.asarray(state["coef"]), float(state["intercept"])
        self.mean, self.scale = np.asarray(state["mean"]), np.asarray(state["scale"])


def _measure(hybrid: Hybrid, point: OperatingPoint, sets: dict[str, list[CohortItem]], out_dir: Path, config: ReportConfig,
             title: str) -> dict:
    pooling = SubjectPooling(point.subject_scale, point.subject_shift)
    results = SetMeasurements(out_dir, config)
    for name, rows in sets.items():
        x, snr = hybrid.inputs(rows)
        probabilities = calibrated(hybrid.logits(x), point.temperature, point.bias, point.snr_slope, snr)
        results.add(name, probabilities, [i.label for i in rows], _subjects(rows), point.threshold, pooling)
    write_report(out_dir, results.measured, title=title, config=config, operating_point=point,
                 extra={"flag_rates": results.flagged}, notes=results.notes)
    return {"sets": results.measured, "flag_rates": results.flagged}


def fit_hybrid(config: HybridConfig) -> dict:
    """Fit, calibrate, save `out_dir/hybrid.json`, measure the manifest's test rows and `extra_eval`."""
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    items = read_manifest(config.manifest)
    train, val = select_split(items, "train"), select_split(items, "val")
    hybrid = Hybrid(config.run_dir, config.cache_dir)
    (train_x, _), (val_x, val_snr) = hybrid.inputs(train), hybrid.inputs(val)
    val_y = np.array([i.label for i in val])
    chosen = hybrid.fit(train_x, np.array([i.label for i in train]), val_x, val_y, _subjects(val), config.strengths)
    point = fit_operating_point(hybrid.logits(val_x), val_y, _subjects(val), config.report, snr_db=val_snr)
    state = {"synthetic": True, "run_dir": config.run_dir, "manifest": config.manifest, "validation_auroc": chosen,
             "operating_point": asdict(point), **hybrid.state()}
    (out_dir / HYBRID_FILE).write_text(json.dumps(state, indent=2))
    sets = evaluation_sets(select_split(items, "test"), list(config.extra_eval))
    summary = _measure(hybrid, point, sets, out_dir, config.report, "hybrid: deep logit + pause and breath statistics (SYNTHETIC data)")
    summary.update(operating_point=asdict(point), validation_auroc=chosen, coefficients=dict(zip(state["inputs"], state["coef"])),
                   train_recordings=len(train), synthetic=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def evaluate_hybrid(hybrid_dir: str | Path, manifest: str, out_dir: str | Path, cache_dir: str = "runs/cache",
                    config: ReportConfig = ReportConfig()) -> dict:
    """Measure a fitted hybrid on every row of `manifest`, one set per cohort (as `biomarker evaluate` names them)."""
    state = json.loads((Path(hybrid_dir) / HYBRID_FILE).read_text())
    hybrid = Hybrid(state["run_dir"], cache_dir)
    hybrid.load_state(state)
    sets: dict[str, list[CohortItem]] = {}
    for item in read_manifest(manifest):
        sets.setdefault(item.cohort, []).append(item)
    return _measure(hybrid, OperatingPoint(**state["operating_point"]), sets, Path(out_dir), config,
                    "hybrid: deep logit + pause and breath statistics (SYNTHETIC data)")
