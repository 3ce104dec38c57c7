"""The classic clinical-speech baselines: recording-level features + logistic regression (scikit-learn).

WHY: a deep model that cannot beat a few dozen summary numbers and a linear classifier has not earned its
complexity. Two feature kinds, the same classifier and the same calibration for both:
- `mfcc-stats`: mean and standard deviation of 13 MFCCs (python_speech_features settings) and of their first
  differences, 52 numbers;
- `egemaps`: the 88 eGeMAPSv02 functionals (Eyben et al., 2016), the standard clinical-voice set, computed by
  openSMILE. openSMILE is the optional `[egemaps]` extra, for benchmarks only: audEERING's licence forbids
  commercial use, so nothing in the app or the scoring path imports it.
Features are standardised, then L2 logistic regression with balanced class weights.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from biomarker.audio import load
from biomarker.cohorts.manifest import read_manifest, select_split
from biomarker.cohorts.splits import label_budget
from biomarker.evaluate.calibration import calibrated
from biomarker.evaluate.manifest import evaluation_sets
from biomarker.evaluate.report import ReportConfig, SetMeasurements, fit_operating_point, write_report
from biomarker.features import mfcc
from biomarker.features.snr import recording_snr
from biomarker.records import FeatureError

SAMPLE_RATE_HZ = 16000

FeatureFunction = Callable[[np.ndarray, int], np.ndarray]


def mfcc_statistics(samples: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """One recording [S] -> 52 numbers: mean and std of 13 MFCCs and of their frame-to-frame differences."""
    cepstra = mfcc(torch.as_tensor(samples, dtype=torch.float32), sample_rate_hz).numpy()
    deltas = np.diff(cepstra, axis=0)
    return np.concatenate([cepstra.mean(0), cepstra.std(0), deltas.mean(0), deltas.std(0)])


def egemaps_extractor() -> FeatureFunction:
    """A function: one recording [S] -> the 88 eGeMAPSv02 functionals. openSMILE is imported here, not at module
    import, so the MFCC baseline and everything else work without the non-commercial extra."""
    try:
        import opensmile
    except ImportError as error:
        raise FeatureError(
            "the eGeMAPS baseline needs openSMILE: pip install 'biomarker[egemaps]' (benchmark only; its licence "
            "forbids commercial use)"
        ) from error
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals)

    def functionals(samples: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
        return smile.process_signal(np.asarray(samples, dtype=np.float32), sample_rate_hz).to_numpy(dtype=float)[0]

    return functionals


@dataclass(frozen=True)
class FeatureKind:
    """A recording-level feature set a baseline is trained on; `extractor` builds the feature function (it may
    need an optional package), `title` names the baseline in its report."""

    title: str
    extractor: Callable[[], FeatureFunction]


FEATURE_KINDS = {
    "mfcc-stats": FeatureKind("MFCC statistics + logistic regression", lambda: mfcc_statistics),
    "egemaps": FeatureKind("eGeMAPSv02 functionals (openSMILE) + logistic regression", egemaps_extractor),
}


def feature_kind(name: str) -> FeatureKind:
    if name not in FEATURE_KINDS:
        raise FeatureError(f"unknown baseline features {name!r}; choose one of {sorted(FEATURE_KINDS)}")
    return FEATURE_KINDS[name]


@dataclass
class LogisticBaseline:
    """Fit on training recordings, then `logits` gives decision values comparable to a network's logits.

    With `cache_dir`, each recording's features are kept under it, keyed by the samples' hash: openSMILE takes
    about as long per recording as a deep model's forward pass on CPU, and every comparison row measures the
    same test and held-out recordings again."""

    features: str = "mfcc-stats"
    regularisation: float = 1.0
    cache_dir: str | Path | None = None
    pipeline: Pipeline | None = None
    extract: FeatureFunction = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.extract = feature_kind(self.features).extractor()

    @property
    def method(self) -> str:
        """The name summary.json and the comparison table record, e.g. `egemaps+lr`."""
        return f"{self.features}+lr"

    def _matrix(self, recordings: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([self._features(r) for r in recordings])

    def _features(self, recording: np.ndarray) -> np.ndarray:
        if self.cache_dir is None:
            return self.extract(recording, SAMPLE_RATE_HZ)
        samples = np.ascontiguousarray(recording, dtype=np.float32)
        path = Path(self.cache_dir) / f"baseline-{self.features}" / f"{hashlib.sha1(samples.tobytes()).hexdigest()}.npy"
        if path.exists():
            return np.load(path)
        values = self.extract(samples, SAMPLE_RATE_HZ)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, values)
        return values

    def fit(self, recordings: Sequence[np.ndarray], labels: Sequence[int]) -> "LogisticBaseline":
        self.pipeline = make_pipeline(
            StandardScaler(), LogisticRegression(C=self.regularisation, class_weight="balanced", max_iter=2000)
        )
        self.pipeline.fit(self._matrix(recordings), np.asarray(labels))
        return self

    def logits(self, recordings: Sequence[np.ndarray]) -> np.ndarray:
        if self.pipeline is None:
            raise RuntimeError("LogisticBaseline.logits called before fit")
        return self.pipeline.decision_function(self._matrix(recordings))


def run_baseline(manifest: str, out_dir: str, extra_eval: Sequence[str] = (), config: ReportConfig | None = None,
                 labels: int | None = None, seed: int = 0, features: str = "mfcc-stats", cache_dir: str = "runs/cache") -> dict:
    """Train on the manifest's train rows, fit the operating point on val as `biomarker finetune` does (temperature,
    bias, SNR slope, subject pooling, threshold), measure the same sets (test rows per cohort, extra manifests per
    cohort, real healthy/marked apart).

    `labels`/`seed` cap the training rows exactly as `biomarker finetune --labels N --seed S` does, so a
    label-budget row of the comparison table compares the baseline and the deep models on the same recordings.
    The SNR of every recording is the quality gate's estimate, cached in `cache_dir` as the deep models cache it,
    so both sides of the table are calibrated the same way; the baseline's features are cached there too."""
    config = config or ReportConfig()
    items = read_manifest(manifest)
    audio = lambda rows: [load(item.path, SAMPLE_RATE_HZ).samples for item in rows]  # noqa: E731
    snr = lambda rows: recording_snr([str(item.path) for item in rows], cache_dir)  # noqa: E731
    subjects = lambda rows: [f"{i.cohort}/{i.speaker_id}" for i in rows]  # noqa: E731

    train, val = label_budget(select_split(items, "train"), labels, seed), select_split(items, "val")
    baseline = LogisticBaseline(features, cache_dir=cache_dir).fit(audio(train), [i.label for i in train])
    point = fit_operating_point(baseline.logits(audio(val)), [i.label for i in val], subjects(val), config, snr_db=snr(val))
    results = SetMeasurements(Path(out_dir), config)
    for name, rows in evaluation_sets(select_split(items, "test"), extra_eval).items():
        probabilities = calibrated(baseline.logits(audio(rows)), point.temperature, point.bias, point.snr_slope, snr(rows))
        results.add(name, probabilities, [i.label for i in rows], subjects(rows), point.threshold, point.pooling)
    write_report(out_dir, results.measured, title=f"{feature_kind(features).title} baseline (SYNTHETIC cohorts)",
                 config=config, operating_point=point, extra={"flag_rates": results.flagged, "method": baseline.method}, notes=results.notes)
    summary = {"sets": results.measured, "flag_rates": results.flagged, "method": baseline.method, "train_recordings": len(train),
               "operating_point": asdict(point)}
    (Path(out_dir) / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
