"""One fine-tuning run: manifest -> ScreeningModel cohort (full | linear | adapter | conv-adapter) -> calibrated bundle
-> honest report. Training goes through the one loop, `biomarker.train.train`.

Order of operations (the honest one): train on `train` rows with class-balanced BCE; early-stop on validation
subject AUROC; choose whole-utterance vs window-mean scoring on validation; fit temperature and threshold on
validation; save the bundle in fp16; reload it and measure every test set with the shipped weights.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

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
from biomarker.finetune.probe import ProbeResult, fit_probe_head
from biomarker.finetune.scoring import SCORING_MODES, recording_logits, subject_auroc
from biomarker.models import ScreeningModel, create_model, from_pretrained
from biomarker.records import ModelConfigError
from biomarker.train import BEST_NAME, ResumableSampler, TrainConfig, load_checkpoint, train


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
    name: str = "ri-screener"
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


def fit_cohort(
    bundle: ScreeningModel,
    cohort: str,
    method: str,
    train_data: LabelledFeatures,
    val_data: LabelledFeatures,
    settings: FinetuneConfig,
    out_dir: Path,
) -> FitResult:
    """Train `cohort` of `bundle` with `method`, keep the best validation-AUROC weights, choose the scoring mode,
    and store temperature + threshold in the bundle. Reusable by continual learning (one cohort at a time)."""
    trainable = attach(bundle, cohort, method)
    positives = float(train_data.labels.sum())
    if positives == 0 or positives == len(train_data):
        raise FinetuneError(f"training rows of cohort {cohort!r} hold only one class ({int(positives)} of {len(train_data)} RI)")
    probe = None
    if settings.probe_first and not settings.from_best:
        probe = fit_probe_head(bundle.to(pick_device(settings.device)), cohort, train_data, val_data)
    objective = BalancedBCE(bundle, cohort, (len(train_data) - positives) / positives)
    frames_per_second = train_data.bank.meta["frames_per_second"]
    settings.augment.require_spectral(train_data.bank.meta["feature_config"]["kind"])
    dataset = CropDataset(train_data, int(settings.crop_s * frames_per_second), seed=settings.seed, augmentation=settings.augment)
    loader = DataLoader(dataset, batch_size=settings.batch_size, sampler=ResumableSampler(dataset, seed=settings.seed), collate_fn=collate)
    window = int(4 * frames_per_second)

    def evaluate(module: nn.Module) -> dict[str, float]:
        return {"auroc": subject_auroc(recording_logits(module.model, val_data, cohort, window_frames=window), val_data)}

    train_config = TrainConfig(
        out_dir=str(out_dir / "train"),
        max_steps=settings.steps,
        lr=settings.lr,
        warmup_steps=max(settings.steps // 10, 1),
        eval_every=settings.eval_every,
        evaluate_at_start=probe is not None,  # fine-tuning must beat the probe to replace it
        checkpoint_every=settings.steps + 1,
        monitor="auroc",
        monitor_mode="max",
        patience=settings.patience,
        device=settings.device,
        seed=settings.seed,
        progress=False,
        log_every=10,
    )
    if settings.from_best:
        steps, stop_reason = None, "interrupted; finished from best.pt"
    else:
        result = train(objective, loader, train_config, evaluate=evaluate, resume=False, plot_title=f"fine-tuning {method} (SYNTHETIC data)")
        steps, stop_reason = result.step, result.stop_reason
    best = load_checkpoint(out_dir / "train" / BEST_NAME, next(objective.parameters()).device)
    steps = best["step"] if steps is None else steps
    objective.load_state_dict(best["model"])
    bundle.eval()
    val_logits = {
        mode: recording_logits(bundle, val_data, cohort, mode=mode, window_frames=window, hop_frames=int(frames_per_second))
        for mode in SCORING_MODES
    }
    val_auroc = {mode: subject_auroc(logits, val_data) for mode, logits in val_logits.items()}
    scoring = "whole" if val_auroc["whole"] >= val_auroc["window-mean"] - WHOLE_SCORING_MARGIN else "window-mean"
    point = fit_operating_point(val_logits[scoring], val_data.labels.numpy().astype(int), val_data.subjects, settings.report,
                                snr_db=val_data.snr_db)
    # the mode is stored with the calibration: the app then scores recordings as they were calibrated here
    bundle.set_calibration(cohort, threshold=point.threshold, temperature=point.temperature, bias=point.bias,
                           snr_slope=point.snr_slope, subject_scale=point.subject_scale, subject_shift=point.subject_shift,
                           scoring=scoring, window_frames=window, hop_frames=int(frames_per_second))
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
    bundle.set_calibration(cohort, threshold=point.threshold, temperature=point.temperature, bias=point.bias,
                           snr_slope=point.snr_slope, subject_scale=point.subject_scale, subject_shift=point.subject_shift)
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
