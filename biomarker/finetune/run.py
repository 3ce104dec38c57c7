"""One fine-tuning run: manifest -> ScreeningModel cohort (full | linear | adapter | conv-adapter) -> calibrated bundle
-> honest report. Training goes through the one loop, `biomarker.train.train`.

Order of operations (the honest one): train on `train` rows with class-balanced BCE; early-stop on validation
subject AUROC; choose whole-utterance vs window-mean scoring on validation; fit temperature and threshold on
validation; save the bundle in fp16; reload it and measure every test set with the shipped weights.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from biomarker.cohorts.manifest import CohortItem, read_manifest, select_split
from biomarker.cohorts.splits import label_budget
from biomarker.device import pick_device
from biomarker.evaluate.calibration import SubjectPooling, calibrated
from biomarker.evaluate.manifest import evaluation_sets
from biomarker.evaluate.report import OperatingPoint, ReportConfig, SetMeasurements, fit_operating_point, write_report
from biomarker.features import front_end
from biomarker.finetune.augment import AugmentConfig
from biomarker.finetune.data import CropDataset, LabelledFeatures, collate, load_features
from biomarker.finetune.methods import FinetuneError, Trainable, attach
from biomarker.finetune.probe import ProbeConfig, ProbeResult, fit_probe_head
from biomarker.finetune.scoring import SCORING_MODES, recording_logits, subject_auroc
from biomarker.models import ScreeningModel, create_model, from_pretrained
from biomarker.records import DEFAULT_MODEL, ModelConfigError
from biomarker.train import ResumableSampler, TrainConfig, restore_best, train


@dataclass
class FinetuneConfig:
    """Everything one run needs. `encoder` is a registry name (from scratch, with `encoder_overrides`) or a
    pretrained encoder directory. `max_train_recordings` caps the labelled training set (label-budget runs)."""

    manifest: str
    out_dir: str
    method: str = "adapter"
    encoder: str = "ssast-tiny-patch"
    encoder_overrides: dict = field(default_factory=dict)
    cohort: str = "synthetic-ri"
    name: str = DEFAULT_MODEL
    version: str = "1"
    steps: int = 600
    lr: float = 1e-3
    batch_size: int = 16
    crop_s: float = 6.0
    eval_every: int = 50
    patience: int = 4
    max_train_recordings: int | None = None
    extra_eval: list[str] = field(default_factory=list)  # manifests measured as separate sets (all their rows)
    seed: int = 0
    device: str = "auto"
    cache_dir: str = "runs/cache"
    from_best: bool = False  # skip training; finish an interrupted run from its best.pt (calibrate, save, measure)
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # training crops only; off by default
    probe_first: bool = False  # fit the fresh head as a linear probe of the frozen encoder first (LP-FT, probe.py)
    probe: ProbeConfig = field(default_factory=ProbeConfig)  # how that probe is fitted
    report: ReportConfig = field(default_factory=ReportConfig)


class BalancedBCE(nn.Module):
    """The training objective: the bundle's cohort logit vs the label, positives weighted by n_neg / n_pos so the
    two classes count equally whatever the cohort's prevalence."""

    def __init__(self, model: ScreeningModel, cohort: str, positive_weight: float):
        super().__init__()
        self.model, self.cohort = model, cohort
        self.register_buffer("positive_weight", torch.tensor(float(positive_weight)))

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """features [B, T, F], lengths [B], labels [B] -> {"loss", "accuracy"}."""
        logits = self.model.logits(features, lengths, cohort=self.cohort).float()
        loss = nn.functional.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=self.positive_weight)
        return {"loss": loss, "accuracy": ((logits > 0).float() == labels).float().mean()}


# Whole-utterance scoring is kept unless window-mean is better by more than this validation AUROC: a 10 s clip
# costs one forward whole and seven overlapping 4 s windows (hop 1 s) window-mean, i.e. 2.8x the clinician's wait
# and a third of the batch throughput, for a difference validation cannot tell from noise.
WHOLE_SCORING_MARGIN = 0.01


def build_encoder(config: FinetuneConfig) -> tuple[nn.Module, str]:
    """(encoder, parent label): a pretrained encoder directory, or a fresh registry model (scratch)."""
    if Path(config.encoder).is_dir():
        try:  # only weight-free settings (attention) may differ from a pretrained encoder's, and depth shrink
            encoder = from_pretrained(config.encoder, overrides=config.encoder_overrides)
        except ModelConfigError as error:
            raise FinetuneError(f"encoder_overrides cannot change pretrained encoder {config.encoder}: {error}") from None
        return encoder, f"pretrained:{Path(config.encoder).name}"
    torch.manual_seed(config.seed)
    return create_model(config.encoder, **config.encoder_overrides), f"scratch:{config.encoder}"


def _normalise_front_end(encoder: nn.Module, train_items: Sequence[CohortItem], cache_dir: str) -> nn.Module:
    """Front-ends without stored statistics (MFCC-gram from scratch) get the training set's mean/std, written
    into the encoder's feature config so scoring normalises exactly as training did."""
    extractor = front_end(encoder.feature_config)
    if getattr(extractor.config, "norm_mean", 0.0) is not None:
        return extractor
    values = load_features(train_items, extractor, cache_dir).bank.features.float()
    encoder.feature_config = {**encoder.feature_config, "norm_mean": float(values.mean()), "norm_std": float(values.std())}
    return front_end(encoder.feature_config)


@dataclass
class FitResult:
    trainable: Trainable
    scoring: str
    validation_auroc: dict[str, float]
    operating_point: OperatingPoint
    steps: int
    stop_reason: str
    best_step_auroc: float | None
    probe: ProbeResult | None = None
    best_step: int | None = None  # the step whose weights were kept (0: the probed head, untouched encoder)


class CohortFit:
    """The hooks of `fit_cohort`, in the spirit of SpeechBrain's `Brain`: the pipeline (attach the method, train
    with the one loop, keep the best validation-AUROC weights, choose the scoring mode, fit the operating point
    and store it as the cohort's calibration) is written once in `fit_cohort`; what a caller may change is here.

    This class is single-cohort fine-tuning (`biomarker finetune`): `LabelledFeatures`, crops and augmentation
    reproducible per (seed, epoch, index), early stopping with patience, both scoring modes. Continual learning
    (`biomarker.finetune.continual.StageHooks`) overrides the data, the loop's settings and what follows the
    restore, and calls the same `fit_cohort`."""

    scoring_modes: tuple[str, ...] = SCORING_MODES
    error: type[Exception] = FinetuneError

    def __init__(self, settings: FinetuneConfig, out_dir: Path):
        self.settings, self.out_dir = settings, Path(out_dir)

    def attach(self, bundle: ScreeningModel, cohort: str, method: str) -> Trainable:
        return attach(bundle, cohort, method)

    def probe(self, bundle: ScreeningModel, cohort: str, train_data, val_data) -> ProbeResult | None:
        if self.settings.probe_first and not self.settings.from_best:
            return fit_probe_head(bundle.to(pick_device(self.settings.device)), cohort, train_data, val_data,
                                  self.settings.probe)
        return None

    def frames_per_second(self, data) -> float:
        return data.bank.meta["frames_per_second"]

    def loader(self, train_data) -> DataLoader:
        settings = self.settings
        settings.augment.require_spectral(train_data.bank.meta["feature_config"]["kind"])
        crop = int(settings.crop_s * self.frames_per_second(train_data))
        dataset = CropDataset(train_data, crop, seed=settings.seed, augmentation=settings.augment)
        return DataLoader(dataset, batch_size=settings.batch_size, sampler=ResumableSampler(dataset, seed=settings.seed),
                          collate_fn=collate)

    def train_config(self, probed: bool) -> TrainConfig:
        settings = self.settings
        return TrainConfig(
            out_dir=str(self.out_dir / "train"),
            max_steps=settings.steps,
            lr=settings.lr,
            warmup_steps=max(settings.steps // 10, 1),
            eval_every=settings.eval_every,
            evaluate_at_start=probed,  # fine-tuning must beat the probe to replace it
            checkpoint_every=settings.steps + 1,
            monitor="auroc",
            monitor_mode="max",
            patience=settings.patience,
            device=settings.device,
            seed=settings.seed,
            progress=False,
            log_every=10,
        )

    def plot_title(self, cohort: str, method: str) -> str:
        return f"fine-tuning {method} (SYNTHETIC data)"

    @property
    def skip_training(self) -> bool:
        return self.settings.from_best

    def validation_logits(self, bundle: ScreeningModel, val_data, cohort: str, mode: str = "whole") -> np.ndarray:
        """Uncalibrated logit per validation recording, scored `mode` (windows of 4 s, hop 1 s)."""
        fps = self.frames_per_second(val_data)
        return recording_logits(bundle, val_data, cohort, mode=mode, window_frames=int(4 * fps), hop_frames=int(fps))

    def on_best_restored(self, bundle: ScreeningModel) -> None:
        bundle.eval()

    def report_config(self) -> ReportConfig:
        return self.settings.report

    def scoring_settings(self, scoring: str, val_data) -> dict[str, object]:
        """Stored with the calibration, so the app scores recordings as they were calibrated here."""
        fps = self.frames_per_second(val_data)
        return dict(scoring=scoring, window_frames=int(4 * fps), hop_frames=int(fps))


def store_operating_point(bundle: ScreeningModel, cohort: str, point: OperatingPoint, **scoring: object) -> None:
    """The one step from a fitted operating point to the cohort's stored calibration (threshold, temperature,
    bias, SNR slope, subject pooling; `scoring` adds the scoring mode and its windows)."""
    bundle.set_calibration(cohort, threshold=point.threshold, temperature=point.temperature, bias=point.bias,
                           snr_slope=point.snr_slope, subject_scale=point.subject_scale, subject_shift=point.subject_shift,
                           **scoring)


def fit_cohort(
    bundle: ScreeningModel,
    cohort: str,
    method: str,
    train_data: LabelledFeatures,
    val_data: LabelledFeatures,
    settings: FinetuneConfig | None,
    out_dir: Path,
    hooks: CohortFit | None = None,
) -> FitResult:
    """Train `cohort` of `bundle` with `method`, keep the best validation-AUROC weights, choose the scoring mode,
    and store temperature + threshold in the bundle. The one fine-tuning pipeline: `biomarker finetune` runs it
    with the default hooks (`CohortFit(settings, out_dir)`), continual learning with its own (one cohort at a
    time); `settings` may be None when `hooks` are given."""
    hooks = hooks or CohortFit(settings, out_dir)
    trainable = hooks.attach(bundle, cohort, method)
    positives = float(train_data.labels.sum())
    if positives == 0 or positives == len(train_data):
        raise hooks.error(f"training rows of cohort {cohort!r} hold only one class ({int(positives)} of {len(train_data)} RI)")
    probe = hooks.probe(bundle, cohort, train_data, val_data)
    objective = BalancedBCE(bundle, cohort, (len(train_data) - positives) / positives)
    loader = hooks.loader(train_data)

    def evaluate(module: nn.Module) -> dict[str, float]:
        return {"auroc": subject_auroc(hooks.validation_logits(module.model, val_data, cohort), val_data)}

    train_config = hooks.train_config(probed=probe is not None)
    if hooks.skip_training:
        steps, stop_reason = None, "interrupted; finished from best.pt"
    else:
        result = train(objective, loader, train_config, evaluate=evaluate, resume=False, plot_title=hooks.plot_title(cohort, method))
        steps, stop_reason = result.step, result.stop_reason
    best = restore_best(objective, train_config.out_dir)
    steps = best["step"] if steps is None else steps
    hooks.on_best_restored(bundle)
    val_logits = {mode: hooks.validation_logits(bundle, val_data, cohort, mode) for mode in hooks.scoring_modes}
    val_auroc = {mode: subject_auroc(logits, val_data) for mode, logits in val_logits.items()}
    scoring = "whole" if val_auroc["whole"] >= val_auroc.get("window-mean", -math.inf) - WHOLE_SCORING_MARGIN else "window-mean"
    point = fit_operating_point(val_logits[scoring], val_data.labels.numpy().astype(int), val_data.subjects,
                                hooks.report_config(), snr_db=np.asarray(val_data.snr_db))
    store_operating_point(bundle, cohort, point, **hooks.scoring_settings(scoring, val_data))
    return FitResult(trainable, scoring, val_auroc, point, steps, stop_reason, best.get("auroc"), probe, best["step"])


def run_finetune(config: FinetuneConfig, log: Callable[[str], None] = print) -> dict:
    """Fine-tune, save `out_dir/bundle/`, measure every test set and write `out_dir/report/` + `summary.json`."""
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    items = read_manifest(config.manifest)
    train_items = label_budget(select_split(items, "train"), config.max_train_recordings, config.seed)
    val_items, test_items = select_split(items, "val"), select_split(items, "test")
    encoder, parent = build_encoder(config)
    extractor = _normalise_front_end(encoder, train_items, config.cache_dir)
    log(f"features for {len(train_items)} train / {len(val_items)} val / {len(test_items)} test recordings")
    train_data, val_data = (load_features(x, extractor, config.cache_dir) for x in (train_items, val_items))
    bundle = ScreeningModel(encoder, name=config.name, version=config.version, parent=parent)
    fit = fit_cohort(bundle, config.cohort, config.method, train_data, val_data, config, out_dir)
    if fit.probe is not None:
        log(f"probed head first: C={fit.probe.strength}, val AUROC {fit.probe.validation_auroc:.3f}")
    log(f"trained {fit.steps} steps ({fit.stop_reason}), kept step {fit.best_step}; val AUROC {fit.validation_auroc}; scoring={fit.scoring}")
    bundle_dir = out_dir / "bundle"
    bundle.save_pretrained(bundle_dir)
    shipped = from_pretrained(bundle_dir).to(torch.float32).eval()  # measure what is saved (fp16 weights)
    sets = evaluation_sets(test_items, config.extra_eval)
    summary = measure_sets(shipped, config.cohort, sets, extractor, fit, config, out_dir / "report")
    summary.update(
        method=config.method,
        encoder=parent,
        encoder_overrides=config.encoder_overrides,
        train_recordings=len(train_items),
        trainable_params=fit.trainable.trainable_params,
        path_params=fit.trainable.path_params,
        trainable_percent=fit.trainable.percent,
        scoring=fit.scoring,
        validation_auroc=fit.validation_auroc,
        steps=fit.steps,
        stop_reason=fit.stop_reason,
        best_step=fit.best_step,
        probe=None if fit.probe is None else asdict(fit.probe),
        operating_point=asdict(fit.operating_point),
        synthetic=True,
        config={k: v for k, v in asdict(config).items() if k != "report"},
    )
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def measure_sets(
    model: ScreeningModel, cohort: str, sets: dict[str, list[CohortItem]], extractor: nn.Module, fit: FitResult, config: FinetuneConfig, report_dir: Path
) -> dict:
    """Metrics per set at the frozen operating point; single-class sets report the share flagged positive."""
    spec = model.cohort_spec(cohort)
    pooling = SubjectPooling.of(spec)
    results = SetMeasurements(report_dir, config.report)
    for name, rows in sets.items():
        data = load_features(rows, extractor, config.cache_dir)
        logits = recording_logits(model, data, cohort, mode=spec.scoring, window_frames=spec.window_frames, hop_frames=spec.hop_frames)
        probabilities = calibrated(logits, spec.temperature, spec.bias, spec.snr_slope, data.snr_db)
        results.add(name, probabilities, data.labels.numpy().astype(int), data.subjects, spec.threshold, pooling)
    write_report(
        report_dir,
        results.measured,
        title=f"{config.name} ({config.method}) on SYNTHETIC cohorts",
        config=config.report,
        operating_point=fit.operating_point,
        extra={"flag_rates": results.flagged, "scoring": fit.scoring, "method": config.method},
        notes=results.notes,
    )
    return {"sets": results.measured, "flag_rates": results.flagged}


def recalibrate(run_dir: str | Path, manifest: str, extra_eval: Sequence[str], cache_dir: str = "runs/cache",
                report: ReportConfig = ReportConfig()) -> dict:
    """Fit a finished run's calibration and threshold again on its validation split (same weights, same scoring
    mode; the current calibration, with the SNR term), save the bundle, then measure every set again."""
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    bundle = from_pretrained(run_dir / "bundle").to(torch.float32).eval()
    cohort = bundle.resolve_cohort(None)
    spec = bundle.cohort_spec(cohort)
    val_data = load_features(select_split(read_manifest(manifest), "val"), front_end(bundle.feature_config), cache_dir)
    logits = recording_logits(bundle, val_data, cohort, mode=spec.scoring, window_frames=spec.window_frames, hop_frames=spec.hop_frames)
    point = fit_operating_point(logits, val_data.labels.numpy().astype(int), val_data.subjects, report, snr_db=val_data.snr_db)
    store_operating_point(bundle, cohort, point)
    bundle.save_pretrained(run_dir / "bundle")
    summary["operating_point"] = asdict(point)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return remeasure(run_dir, manifest, extra_eval, cache_dir, report)


def remeasure(run_dir: str | Path, manifest: str, extra_eval: Sequence[str], cache_dir: str = "runs/cache", report: ReportConfig = ReportConfig()) -> dict:
    """Measure a finished run's saved bundle again (e.g. after new evaluation sets were added), at the operating
    point it shipped with; rewrites `report/` and the measurements in `summary.json`."""
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    bundle = from_pretrained(run_dir / "bundle").to(torch.float32).eval()
    cohort = bundle.resolve_cohort(None)
    point = OperatingPoint(**summary["operating_point"])
    fit = FitResult(None, summary["scoring"], summary["validation_auroc"], point, summary["steps"], summary["stop_reason"], None)
    config = FinetuneConfig(manifest=manifest, out_dir=str(run_dir), method=summary["method"], cache_dir=cache_dir, report=report)
    extractor = front_end(bundle.feature_config)
    sets = evaluation_sets(select_split(read_manifest(manifest), "test"), extra_eval)
    summary.update(measure_sets(bundle, cohort, sets, extractor, fit, config, run_dir / "report"))
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
