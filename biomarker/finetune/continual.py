"""Adapter-incremental continual learning: add a cohort to a bundle without changing any earlier cohort.

WHY adapters per cohort (Selvaraj et al., INTERSPEECH 2023, "Adapter Incremental Continual Learning of Efficient
Audio Spectrogram Transformers"; AAT, ICASSP 2024): a new hospital, language or microphone teaches the model
something, but retraining the shared encoder on it erases what earlier cohorts taught (catastrophic forgetting).
Keeping the pretrained encoder frozen and giving each cohort its own small adapter set and head means a new
cohort only ever adds parameters; every earlier cohort's path through the network is untouched, so its outputs
stay bit-identical, and the cohort name (the task id) selects the path at inference.

This module is the mechanism:
- `add_cohort`: the researcher's operation (and what `biomarker finetune --cohort NAME --bundle DIR` calls);
- `train_stage`: one cohort through the one fine-tuning pipeline (`run.fit_cohort` with `StageHooks`);
- `run_sequence` (adapters, or `full`: the baseline that forgets, one model fully fine-tuned on each cohort in
  turn) and `evaluate_bundle` (replay a saved bundle's versions).
Its judge, the forgetting report and plot, is `biomarker.finetune.forgetting`; the synthetic demonstration
cohorts and `run_demonstration` are `biomarker.finetune.continual_demo`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from biomarker.audio import check_quality, load
from biomarker.cohorts.manifest import read_manifest
from biomarker.cohorts.splits import SplitConfig, speaker_disjoint_split
from biomarker.evaluate.metrics import auroc, bootstrap_ci, to_subjects
from biomarker.evaluate.report import OperatingPoint, ReportConfig
from biomarker.features import front_end
from biomarker.features.bank import pad_batch
from biomarker.finetune.card import cohort_card
from biomarker.finetune.data import collate
from biomarker.finetune.forgetting import CohortScore, ForgettingReport, Stage, write_forgetting_report
from biomarker.finetune.methods import ContinualError, Trainable, attach
from biomarker.finetune.run import CohortFit, fit_cohort
from biomarker.models import ScreeningModel, create_model, from_pretrained, list_models
from biomarker.models.catalog import Catalog, read_version_dir
from biomarker.models.encoder import Encoder
from biomarker.records import ModelNotFoundError
from biomarker.train import TrainConfig

# ------------------------------------------------------------------------------------------ configuration
# The methods a stage may use (`methods.ADAPTER_KIND` maps them to adapter kinds); `full` is the baseline that forgets.
STAGE_METHODS = ("adapter", "conv-adapter", "full")
# Per-cohort adapter sizes: AAT's own ratio 0.25 costs 7.7% of ssast-base per cohort, above the < 5% goal;
# ratio 0.125 costs 4.0%, ConvPass with 32 channels 1.6% (measured, docs/continual.md).
DEFAULT_ADAPTERS: dict[str, dict[str, Any]] = {"adapter": {"ratio": 0.125}, "conv-adapter": {"hidden": 32}, "full": {}}


@dataclass(frozen=True)
class StageConfig:
    """How one cohort is trained. Defaults suit tiny demonstration models on 2 shared CPU cores."""

    method: str = "adapter"  # adapter | conv-adapter (frozen encoder) | full (the baseline that forgets)
    steps: int = 200
    lr: float = 1e-3
    batch_size: int = 16
    eval_every: int = 50  # validation AUROC this often; the best checkpoint is kept (early-stopping style)
    seed: int = 0
    device: str = "cpu"
    adapter_options: dict[str, Any] | None = None  # e.g. {"ratio": 0.25} or {"hidden": 16}; None: DEFAULT_ADAPTERS
    crop_frames: int | None = 300  # training sees random windows this long (augmentation, bounded cost); None: whole clips
    bootstrap_resamples: int = 1000

    def __post_init__(self) -> None:
        if self.method not in STAGE_METHODS:
            raise ContinualError(f"method {self.method!r} is not one of {', '.join(STAGE_METHODS)}")
        if self.crop_frames is not None and self.crop_frames < 1:
            raise ContinualError(f"StageConfig.crop_frames={self.crop_frames!r} must be at least 1 (or None)")
        for name in ("steps", "batch_size", "eval_every", "bootstrap_resamples"):
            if getattr(self, name) < 1:
                raise ContinualError(f"StageConfig.{name}={getattr(self, name)!r} must be at least 1")
        if not self.lr > 0:
            raise ContinualError(f"StageConfig.lr={self.lr!r} must be positive")


# ------------------------------------------------------------------------------------------------- data
@dataclass
class ClipSet:
    """One split of one cohort as model inputs: per-clip features [T_i, F] (unpadded), labels, speakers, and
    each recording's SNR as the app's quality gate estimates it (the calibration's noise term needs it)."""

    features: list[torch.Tensor]
    labels: torch.Tensor  # [N] 0/1
    subjects: list[str]
    snr_db: torch.Tensor  # [N] float64, `check_quality(recording).snr_db`
    crop_frames: int | None = None  # set for training sets only: items are random windows of this many frames

    def __post_init__(self) -> None:
        sizes = {"labels": len(self.labels), "subjects": len(self.subjects), "snr_db": len(self.snr_db)}
        if any(size != len(self.features) for size in sizes.values()):
            raise ContinualError(f"ClipSet of {len(self.features)} clips has per-clip fields of other lengths: {sizes}")

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        clip = self.features[index]
        if self.crop_frames is not None and clip.shape[0] > self.crop_frames:
            start = int(torch.randint(clip.shape[0] - self.crop_frames + 1, ()))  # the trainer seeds torch
            clip = clip[start : start + self.crop_frames]
        return clip, self.labels[index]

    def batches(self, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """In order, padded: (features [B, T, F], lengths [B])."""
        for start in range(0, len(self), size):
            batch = pad_batch([self[i][0] for i in range(start, min(start + size, len(self)))])
            yield batch["features"], batch["lengths"]

    def cropped(self, frames: int | None) -> "ClipSet":
        return replace(self, crop_frames=frames)


def load_cohort(manifest: str | Path, feature_config: dict[str, Any], *, split_seed: int = 0) -> dict[str, ClipSet]:
    """Read a cohort manifest and compute every clip's features and SNR once: {'train'|'val'|'test': ClipSet}.

    Rows keep the manifest's `split`; when no row has one, speakers are split (speaker-disjoint, stratified,
    seeded) and the choice is reproducible. A manifest where only some rows have a split is refused: mixing
    the two would silently move rows between splits.
    """
    items = read_manifest(manifest)
    with_split = [item for item in items if item.split]
    if with_split and len(with_split) != len(items):
        raise ContinualError(
            f"{manifest}: {len(items) - len(with_split)} of {len(items)} rows have no split; give every row a "
            "split or none (then speakers are split automatically)"
        )
    if not with_split:
        items = speaker_disjoint_split(items, SplitConfig(seed=split_seed))
    extractor = front_end(feature_config).eval()
    grouped: dict[str, tuple[list, list, list, list]] = {}
    with torch.inference_mode():
        for item in items:
            recording = load(item.path)
            samples = torch.from_numpy(recording.samples)[None]  # [1, S]
            features, lengths = extractor(samples, torch.tensor([samples.shape[1]]))
            clips, labels, subjects, snrs = grouped.setdefault(item.split, ([], [], [], []))
            clips.append(features[0, : int(lengths[0])].clone())
            labels.append(item.label)
            subjects.append(item.speaker_id)
            snrs.append(check_quality(recording).snr_db)  # the app's estimate, from the same decoded samples
    return {
        split: ClipSet(c, torch.tensor(y), s, torch.tensor(snr, dtype=torch.float64))
        for split, (c, y, s, snr) in grouped.items()
    }


def _require_split(data: dict[str, ClipSet], split: str, cohort: str) -> ClipSet:
    if split not in data or len(data[split]) == 0:
        raise ContinualError(f"cohort {cohort!r} has no {split!r} rows; it has {sorted(data)}")
    return data[split]


# ---------------------------------------------------------------------------------------------- training
def cohort_logits(model: torch.nn.Module, cohort: str, clips: ClipSet, batch_size: int = 16) -> torch.Tensor:
    """Uncalibrated logits [N] of `cohort`'s path for every clip, in order, with a fixed batching."""
    model.eval()
    device = next(model.parameters()).device
    with torch.inference_mode():
        return torch.cat([model.logits(f.to(device), n.to(device), cohort=cohort).cpu() for f, n in clips.batches(batch_size)])


@dataclass(frozen=True)
class StageFit:
    """What training one cohort produced (the calibration is already stored in the model)."""

    cohort: str
    method: str
    trainable_params: int
    total_params: int
    val_auroc: float
    operating_point: OperatingPoint  # temperature, bias, SNR slope and threshold, as stored in the cohort's spec


class StageHooks(CohortFit):
    """`fit_cohort`'s hooks for one continual-learning stage: `ClipSet` splits, random crops of
    `config.crop_frames` in a shuffled order seeded by `config.seed`, the loop's settings from `StageConfig` (no
    early stopping), whole-utterance scoring only, the default report settings; once the best weights are back,
    the model moves to the CPU and freezes (calibration, checks and saving then run on the CPU whatever trained,
    so comparisons are like for like)."""

    scoring_modes = ("whole",)
    error = ContinualError

    def __init__(self, config: StageConfig, run_dir: Path):
        self.config, self.run_dir = config, Path(run_dir)

    def attach(self, bundle: torch.nn.Module, cohort: str, method: str) -> Trainable:
        options = DEFAULT_ADAPTERS[method] if self.config.adapter_options is None else self.config.adapter_options
        return attach(bundle, cohort, method, adapter_options=options, make_default=False)

    def probe(self, bundle, cohort, train_data, val_data) -> None:
        return None

    def loader(self, train_data: ClipSet) -> DataLoader:
        config = self.config
        return DataLoader(train_data.cropped(config.crop_frames), batch_size=config.batch_size, shuffle=True,
                          collate_fn=collate, generator=torch.Generator().manual_seed(config.seed))

    def train_config(self, probed: bool) -> TrainConfig:
        config = self.config
        return TrainConfig(
            out_dir=str(self.run_dir),
            max_steps=config.steps,
            lr=config.lr,
            warmup_steps=max(1, config.steps // 10),
            eval_every=min(config.eval_every, config.steps),
            checkpoint_every=config.steps,
            log_every=max(1, config.steps // 10),
            monitor="auroc",
            monitor_mode="max",
            device=config.device,
            seed=config.seed,
            progress=False,
        )

    def plot_title(self, cohort: str, method: str) -> str:
        return f"{cohort} ({method})"

    @property
    def skip_training(self) -> bool:
        return False

    def validation_logits(self, bundle: torch.nn.Module, val_data: ClipSet, cohort: str, mode: str = "whole") -> np.ndarray:
        return cohort_logits(bundle, cohort, val_data).numpy()

    def on_best_restored(self, bundle: torch.nn.Module) -> None:
        bundle.cpu()
        for parameter in bundle.parameters():
            parameter.requires_grad_(False)

    def report_config(self) -> ReportConfig:
        return ReportConfig()

    def scoring_settings(self, scoring: str, val_data: ClipSet) -> dict[str, object]:
        return {}


def train_stage(model: torch.nn.Module, cohort: str, data: dict[str, ClipSet], config: StageConfig, work_dir: Path) -> StageFit:
    """Add `cohort` to the ScreeningModel `model` and train only what `config.method` allows, through the one
    fine-tuning pipeline (`biomarker.finetune.run.fit_cohort` with `StageHooks`).

    adapter / conv-adapter: a new adapter set + head on the frozen encoder; nothing that existed changes.
    full: a new head, and the whole shared encoder trains too (so earlier cohorts drift: the baseline).
    The best validation-AUROC weights are kept. The calibration (temperature, bias and SNR term, as single-cohort
    fine-tuning fits it) is fitted on validation recordings with their SNR, and the threshold on validation
    subjects: ward noise shifts both classes' logits, and without the SNR term one (T, b) fitted on a clean +
    noisy mix is off in opposite directions per condition. The run's log and loss curve are kept in
    `work_dir/<cohort>-<method>/`.
    """
    train_set, val_set = _require_split(data, "train", cohort), _require_split(data, "val", cohort)
    hooks = StageHooks(config, Path(work_dir) / f"{cohort}-{config.method}")
    fit = fit_cohort(model, cohort, config.method, train_set, val_set, None, hooks.run_dir, hooks)
    return StageFit(cohort, config.method, fit.trainable.trainable_params, fit.trainable.path_params,
                    fit.validation_auroc["whole"], fit.operating_point)


def require_unchanged(before: dict[str, torch.Tensor], model: torch.nn.Module, probe: ClipSet) -> None:
    """Every earlier cohort's logits on `probe` must equal `before` bit for bit (the adapter promise)."""
    for cohort, expected in before.items():
        if not torch.equal(cohort_logits(model, cohort, probe), expected):
            raise ContinualError(f"cohort {cohort!r} changed while adding a new cohort; this version is not published")


# ---------------------------------------------------------------------------------------------- evaluation
def score_cohort(model: torch.nn.Module, cohort: str, clips: ClipSet, *, resamples: int = 1000, seed: int = 0) -> CohortScore:
    """Subject-level AUROC of `cohort`'s path on `clips` with a label-stratified bootstrap 95% CI."""
    subject = to_subjects(cohort_logits(model, cohort, clips).float().numpy(), clips.labels.numpy(), clips.subjects)
    low, high = bootstrap_ci(auroc, subject.scores, subject.labels, resamples=resamples, seed=seed)
    return CohortScore(auroc(subject.scores, subject.labels), low, high, len(subject.scores))


def score_stage(model: torch.nn.Module, tests: dict[str, ClipSet], config: StageConfig) -> dict[str, CohortScore]:
    """Every cohort the model has, scored on its own test split."""
    return {
        cohort: score_cohort(model, cohort, tests[cohort], resamples=config.bootstrap_resamples, seed=config.seed)
        for cohort in model.cohorts
    }


# ------------------------------------------------------------------------------------- versions and cards
@dataclass(frozen=True)
class CohortAdded:
    """What `add_cohort` produced: the new immutable version and how small the cohort's share is."""

    ref: str  # 'name@version' of the new bundle version (also `ScreeningModel.version` inside it)
    path: Path
    fit: StageFit

    @property
    def trainable_percent(self) -> float:
        return 100.0 * self.fit.trainable_params / self.fit.total_params


def _is_synthetic(manifest: str | Path) -> bool:
    return any(item.extras.get("synthetic") == "yes" for item in read_manifest(manifest, check_files=False))


def publish_stage(model: torch.nn.Module, fit: StageFit, manifest: str | Path, parent: str | None, catalog: Catalog) -> str:
    """Write the bundle as a new catalog version with its card; returns 'name@version'."""
    synthetic = _is_synthetic(manifest)
    metrics = {
        "added_cohort": fit.cohort,
        "method": fit.method,
        "val_auroc": fit.val_auroc,
        "trainable_params": fit.trainable_params,
        "total_params": fit.total_params,
        "synthetic": synthetic,
    }
    model.parent = parent
    card = cohort_card(model, fit, manifest, parent, synthetic)
    return catalog.publish(model, card=card, parent=parent, cohorts=list(model.cohorts), metrics=metrics).ref


def _open_bundle(bundle: str | Path, catalog: Catalog, encoder: str | Path | None, name: str | None,
                 attention: str | None = None):
    """(model, parent ref) from a bundle dir or catalog ref; or a new bundle on `encoder` when none exists.

    `attention` sets a new bundle's encoder attention (e.g. 'factorized' on a pretrained full-attention encoder);
    an existing bundle keeps its own, since changing it would change every earlier cohort's outputs.
    """
    overrides = {} if attention is None else {"attention": attention}
    as_dir = Path(bundle)
    try:
        path = as_dir if as_dir.is_dir() else catalog.get(str(bundle)).path
    except ModelNotFoundError:
        if encoder is None:
            raise ContinualError(f"bundle {str(bundle)!r} does not exist; pass an encoder to start it") from None
        if str(encoder) in list_models():
            base, base_ref = create_model(str(encoder), **overrides), f"{encoder} (random init, not pretrained)"
        else:
            base_path = catalog.resolve(encoder)
            base, base_ref = from_pretrained(base_path, overrides=overrides), str(encoder)
        if not isinstance(base, Encoder):
            raise ContinualError(f"{encoder}: expected an encoder checkpoint, found {type(base).__name__}")
        return ScreeningModel(base, name=name or str(bundle), parent=base_ref), base_ref
    model = from_pretrained(path)
    if not isinstance(model, ScreeningModel):
        raise ContinualError(f"{bundle}: expected a ScreeningModel bundle, found {type(model).__name__}")
    current = getattr(model.encoder.config, "attention", None)
    if attention is not None and attention != current:
        raise ContinualError(
            f"{bundle} uses attention={current!r}; its earlier cohorts were trained with it, so a new cohort cannot "
            f"switch to {attention!r} (start a new bundle from the encoder instead)"
        )
    description = read_version_dir(path, name=model.name, source="user")
    return model, description.ref


def add_cohort(
    bundle: str | Path,
    cohort: str,
    manifest: str | Path,
    *,
    method: str = "adapter",
    encoder: str | Path | None = None,
    name: str | None = None,
    steps: int = 200,
    lr: float = 1e-3,
    batch_size: int = 16,
    seed: int = 0,
    device: str = "auto",
    out_dir: str | Path | None = None,
    adapter_options: dict[str, Any] | None = None,
    attention: str | None = None,
    catalog: Catalog | None = None,
) -> CohortAdded:
    """Add `cohort` (train/val rows of `manifest`) to `bundle` and publish the result as a new version.

    `bundle`: a catalog reference ('ri-screener', 'ri-screener@3') or a bundle directory; when it names nothing
    yet, `encoder` (a pretrained encoder dir or catalog ref, or a registry name for a random-init encoder)
    starts a new bundle called `name`. Only the new cohort's adapter set (`config.method` 'adapter' or
    'conv-adapter') and head train. Before publishing, every earlier cohort's logits on the new cohort's
    validation clips are compared bit for bit with the parent's; any difference refuses the version.
    `attention` ('sdpa' | 'factorized') only applies when this call starts the bundle: the encoder's saved
    weights are used with that attention pattern, and the bundle keeps it across versions.
    `out_dir` keeps the run's training log and loss curve (default: a temporary folder). This is what
    `biomarker finetune --bundle NAME --cohort NAME --method adapter|conv-adapter` calls.
    """
    config = StageConfig(method=method, steps=steps, lr=lr, batch_size=batch_size, seed=seed, device=device,
                         adapter_options=adapter_options)
    if config.method == "full":
        raise ContinualError("add_cohort keeps earlier cohorts intact; 'full' is only the forgetting baseline")
    catalog = catalog or Catalog()
    model, parent = _open_bundle(bundle, catalog, encoder, name, attention)
    data = load_cohort(manifest, model.feature_config, split_seed=config.seed)
    probe = _require_split(data, "val", cohort)
    before = {existing: cohort_logits(model, existing, probe) for existing in model.cohorts}
    if out_dir is not None:
        fit = train_stage(model, cohort, data, config, Path(out_dir))
    else:
        with tempfile.TemporaryDirectory() as scratch:
            fit = train_stage(model, cohort, data, config, Path(scratch))
    require_unchanged(before, model, probe)
    ref = publish_stage(model, fit, manifest, parent, catalog)
    return CohortAdded(ref, catalog.get(ref).path, fit)


# ------------------------------------------------------------------------------------------- the sequence
def run_sequence(
    encoder_dir: str | Path,
    cohorts: Sequence[tuple[str, str | Path]],
    config: StageConfig,
    *,
    data: dict[str, dict[str, ClipSet]],
    name: str,
    catalog: Catalog | None = None,
    work_dir: str | Path,
    attention: str | None = None,
    label: str | None = None,
) -> ForgettingReport:
    """Train the cohorts in order with `config.method` and score every seen cohort's test split after each stage.

    Adapter methods publish each stage as a catalog version when a catalog is given (the report names them);
    `full` is the baseline and is never published (its versions would break earlier cohorts' scores).
    `data` maps cohort -> its loaded splits (see `load_cohort`), shared between methods. `attention` overrides
    the encoder's attention (same weights, see `from_pretrained`); `label` names the run in the report.
    """
    encoder = from_pretrained(encoder_dir, overrides=None if attention is None else {"attention": attention})
    model = ScreeningModel(encoder, name=name, parent=str(encoder_dir))
    parent: str | None = str(encoder_dir)
    tests = {cohort: _require_split(data[cohort], "test", cohort) for cohort, _ in cohorts}
    stages = []
    for index, (cohort, manifest) in enumerate(cohorts):
        probe = _require_split(data[cohort], "val", cohort)
        before = {existing: cohort_logits(model, existing, probe) for existing in model.cohorts}
        fit = train_stage(model, cohort, data[cohort], config, Path(work_dir))
        if config.method != "full":
            require_unchanged(before, model, probe)
        version = f"(baseline, stage {index + 1}, not published)"
        if catalog is not None and config.method != "full":
            version = parent = publish_stage(model, fit, manifest, parent, catalog)
        stages.append(Stage(cohort, version, score_stage(model, tests, config), fit.trainable_params, fit.total_params))
    return ForgettingReport(method=label or config.method, stages=stages, synthetic=any(_is_synthetic(m) for _, m in cohorts))


# ------------------------------------------------------------------------------- report over saved versions
def bundle_history(ref: str, catalog: Catalog) -> list:
    """The versions that led to `ref`, oldest first, following `parent` links within the bundle's name."""
    chain = [catalog.get(ref)]
    while chain[-1].parent and chain[-1].parent.startswith(f"{chain[-1].name}@"):
        chain.append(catalog.get(chain[-1].parent))
    return chain[::-1]


def evaluate_bundle(
    ref: str,
    manifests: dict[str, str | Path],
    out_dir: str | Path,
    *,
    catalog: Catalog | None = None,
    config: StageConfig = StageConfig(),
) -> ForgettingReport:
    """`biomarker evaluate --bundle REF --cohort NAME=MANIFEST ...`: replay the bundle's history stage by stage.

    Every version from the first to `ref` is loaded from the catalog and scores each cohort it holds on that
    cohort's test rows (`manifests` must name every cohort of `ref`). Writes forgetting.md/.json/.png.
    """
    catalog = catalog or Catalog()
    history = bundle_history(ref, catalog)
    missing = sorted(set(history[-1].cohorts) - set(manifests))
    if missing:
        raise ContinualError(f"{ref}: no test manifest for cohort(s) {missing}; pass --cohort NAME=MANIFEST for each")
    tests: dict[str, ClipSet] = {}
    stages = []
    for version in history:
        model = from_pretrained(version.path)
        for cohort in model.cohorts:
            if cohort not in tests:
                tests[cohort] = _require_split(load_cohort(manifests[cohort], model.feature_config), "test", cohort)
        added = version.metrics.get("added_cohort") or list(model.cohorts)[-1]
        trainable = int(version.metrics.get("trainable_params", 0))
        total = int(version.metrics.get("total_params", 0)) or sum(p.numel() for p in model.parameters())
        stages.append(Stage(added, version.ref, score_stage(model, tests, config), trainable, total))
    method = history[-1].metrics.get("method", "adapter")
    report = ForgettingReport(method=f"{method} ({history[-1].name})", stages=stages,
                              synthetic=any(_is_synthetic(m) for m in manifests.values()))
    write_forgetting_report([report], out_dir)
    return report
