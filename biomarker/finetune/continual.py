"""Adapter-incremental continual learning: add a cohort to a bundle without changing any earlier cohort.

WHY adapters per cohort (Selvaraj et al., INTERSPEECH 2023, "Adapter Incremental Continual Learning of Efficient
Audio Spectrogram Transformers"; AAT, ICASSP 2024): a new hospital, language or microphone teaches the model
something, but retraining the shared encoder on it erases what earlier cohorts taught (catastrophic forgetting).
Keeping the pretrained encoder frozen and giving each cohort its own small adapter set and head means a new
cohort only ever adds parameters; every earlier cohort's path through the network is untouched, so its outputs
stay bit-identical, and the cohort name (the task id) selects the path at inference.

This module owns three things:
- `add_cohort`: the researcher's operation (and what `biomarker finetune --cohort NAME --bundle DIR` calls).
- `sequential_full_finetune`: the baseline that forgets: one model fully fine-tuned on each cohort in turn.
- `forgetting_report`: after each stage, AUROC per cohort with CIs, backward transfer and trainable %, as a
  Markdown table and a PNG (what `biomarker evaluate --bundle` shows).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import torch
from torch.utils.data import DataLoader

from biomarker.models.catalog import Catalog
from biomarker.models.encoder import Encoder
from biomarker.records import BiomarkerError, ModelNotFoundError

if TYPE_CHECKING:
    from biomarker.evaluate.report import OperatingPoint

# ------------------------------------------------------------------------------------------------- report
@dataclass(frozen=True)
class CohortScore:
    """Subject-level AUROC of one cohort's test split after one stage, with its bootstrap 95% CI."""

    auroc: float
    ci_low: float
    ci_high: float
    n_subjects: int


@dataclass(frozen=True)
class Stage:
    """The state after training on `cohort`: every seen cohort's test score and how much was trainable."""

    cohort: str
    version: str  # model reference ('name@version') this stage produced, or a label for an unsaved baseline
    scores: dict[str, CohortScore]  # cohort -> score, for every cohort seen so far (incl. this one)
    trainable_params: int
    total_params: int

    @property
    def trainable_percent(self) -> float:
        return 100.0 * self.trainable_params / self.total_params


@dataclass
class ForgettingReport:
    """A method's run over a cohort sequence (R[j][i] = AUROC on cohort i after stage j).

    Backward transfer (Lopez-Paz & Ranzato, 2017): BWT = mean over i < T of (R[T][i] - R[i][i]); negative means
    forgetting. Per-cohort forgetting = best AUROC a cohort ever had minus its AUROC at the end.
    """

    method: str
    stages: list[Stage]
    synthetic: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def cohorts(self) -> list[str]:
        return [stage.cohort for stage in self.stages]

    def auroc(self, stage_index: int, cohort: str) -> float:
        score = self.stages[stage_index].scores.get(cohort)
        return score.auroc if score is not None else math.nan

    def backward_transfer(self, upto_stage: int | None = None) -> float:
        """BWT after stage `upto_stage` (default: the last); NaN when only one cohort has been seen."""
        last = len(self.stages) - 1 if upto_stage is None else upto_stage
        earlier = self.cohorts[:last]
        if not earlier:
            return math.nan
        return sum(self.auroc(last, c) - self.auroc(i, c) for i, c in enumerate(earlier)) / len(earlier)

    def forgetting(self, cohort: str) -> float:
        """Best AUROC this cohort reached at any stage minus its AUROC after the last stage (≥ 0)."""
        first = self.cohorts.index(cohort)
        history = [self.auroc(j, cohort) for j in range(first, len(self.stages))]
        return max(history) - history[-1]

    def to_markdown(self) -> str:
        """One row per stage: AUROC [95% CI] per cohort, BWT so far, trainable % of that stage."""
        label = "synthetic " if self.synthetic else ""
        header = ["after stage", "version", *[f"{c} AUROC [95% CI]" for c in self.cohorts], "BWT", "trainable %"]
        rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for j, stage in enumerate(self.stages):
            cells = [f"{j + 1}: +{stage.cohort}", f"`{stage.version}`"]
            for cohort in self.cohorts:
                score = stage.scores.get(cohort)
                cells.append(
                    "—" if score is None else f"{score.auroc:.3f} [{score.ci_low:.3f}, {score.ci_high:.3f}]"
                )
            bwt = self.backward_transfer(j)
            cells.append("—" if math.isnan(bwt) else f"{bwt:+.3f}")
            cells.append(f"{stage.trainable_percent:.2f}")
            rows.append("| " + " | ".join(cells) + " |")
        forgetting = ", ".join(f"{c} {self.forgetting(c):.3f}" for c in self.cohorts)
        lines = [
            f"**{self.method}** on {label}cohorts {' → '.join(self.cohorts)} (subject-level AUROC on each cohort's "
            "held-out test split, bootstrap 95% CI).",
            "",
            *rows,
            "",
            f"Forgetting (best − final AUROC): {forgetting}.",
            *self.notes,
        ]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "synthetic": self.synthetic,
            "cohorts": self.cohorts,
            "backward_transfer": self.backward_transfer(),
            "forgetting": {c: self.forgetting(c) for c in self.cohorts},
            "stages": [
                {
                    "cohort": s.cohort,
                    "version": s.version,
                    "trainable_params": s.trainable_params,
                    "total_params": s.total_params,
                    "trainable_percent": s.trainable_percent,
                    "scores": {c: vars(v) for c, v in s.scores.items()},
                }
                for s in self.stages
            ],
        }


def plot_forgetting(reports: Sequence[ForgettingReport], png: str | Path) -> Path:
    """One panel per method: AUROC of each cohort (line) across stages (x), with CI bars.

    A cohort whose line falls after later stages was forgotten; flat lines are what adapters promise.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    png = Path(png)
    columns = min(3, len(reports))  # wrap: method x attention runs can make 6 panels
    rows = math.ceil(len(reports) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.0 * columns, 3.8 * rows), sharey=True, squeeze=False)
    for ax in axes.flat[len(reports):]:
        ax.set_visible(False)
    for ax, report in zip(axes.flat, reports):
        stages = range(1, len(report.stages) + 1)
        for i, cohort in enumerate(report.cohorts):
            xs = [j + 1 for j in range(i, len(report.stages))]
            scores = [report.stages[j].scores[cohort] for j in range(i, len(report.stages))]
            ys = [s.auroc for s in scores]
            err = [[y - s.ci_low for y, s in zip(ys, scores)], [s.ci_high - y for y, s in zip(ys, scores)]]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=cohort)
        bwt = report.backward_transfer()
        ax.set_title(f"{report.method} (BWT {bwt:+.3f})" if not math.isnan(bwt) else report.method)
        ax.set_xticks(list(stages), [f"+{c}" for c in report.cohorts], rotation=20)
        ax.set_xlabel("after training stage")
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel("subject-level AUROC (test)")
    axes.flat[len(reports) - 1].legend(title="cohort", fontsize=8)
    synthetic = any(r.synthetic for r in reports)
    fig.suptitle(("SYNTHETIC cohorts — " if synthetic else "") + "AUROC per cohort after each stage")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png




# ------------------------------------------------------------------------------------------ configuration
# User-facing method names -> adapter kinds of `biomarker.nn.adapters` (None: no adapter, encoder trains).
ADAPTER_KIND: dict[str, str | None] = {"adapter": "aat", "conv-adapter": "conv", "full": None}
# Per-cohort adapter sizes: AAT's own ratio 0.25 costs 7.7% of ssast-base per cohort, above the < 5% goal;
# ratio 0.125 costs 4.0%, ConvPass with 32 channels 1.6% (measured, docs/continual.md).
DEFAULT_ADAPTERS: dict[str, dict[str, Any]] = {"adapter": {"ratio": 0.125}, "conv-adapter": {"hidden": 32}, "full": {}}


class ContinualError(BiomarkerError, ValueError):
    """A continual-learning request cannot be honoured; the message names the cohort, file or setting."""


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
        if self.method not in ADAPTER_KIND:
            raise ContinualError(f"method {self.method!r} is not one of {', '.join(ADAPTER_KIND)}")
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
            batch = pad_batch([self[i] for i in range(start, min(start + size, len(self)))])
            yield batch["features"], batch["lengths"]

    def cropped(self, frames: int | None) -> "ClipSet":
        return replace(self, crop_frames=frames)


def pad_batch(items: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """[(features [T_i, F], label)] -> {features [B, T_max, F] zero-padded, lengths [B], labels [B]}."""
    lengths = torch.tensor([f.shape[0] for f, _ in items])
    features = torch.zeros(len(items), int(lengths.max()), items[0][0].shape[1])
    for row, (clip, _) in enumerate(items):
        features[row, : clip.shape[0]] = clip
    return {"features": features, "lengths": lengths, "labels": torch.stack([label for _, label in items]).float()}


def load_cohort(manifest: str | Path, feature_config: dict[str, Any], *, split_seed: int = 0) -> dict[str, ClipSet]:
    """Read a cohort manifest and compute every clip's features and SNR once: {'train'|'val'|'test': ClipSet}.

    Rows keep the manifest's `split`; when no row has one, speakers are split (speaker-disjoint, stratified,
    seeded) and the choice is reproducible. A manifest where only some rows have a split is refused: mixing
    the two would silently move rows between splits.
    """
    from biomarker.audio import check_quality, load
    from biomarker.cohorts.manifest import read_manifest
    from biomarker.cohorts.splits import SplitConfig, speaker_disjoint_split
    from biomarker.features import front_end

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


def _subject_auroc(logits: torch.Tensor, clips: ClipSet) -> float:
    from biomarker.evaluate.metrics import auroc, to_subjects

    subject = to_subjects(logits.float().numpy(), clips.labels.numpy(), clips.subjects)
    return auroc(subject.scores, subject.labels)


@dataclass(frozen=True)
class StageFit:
    """What training one cohort produced (the calibration is already stored in the model)."""

    cohort: str
    method: str
    trainable_params: int
    total_params: int
    val_auroc: float
    operating_point: OperatingPoint  # temperature, bias, SNR slope and threshold, as stored in the cohort's spec


def train_stage(model: torch.nn.Module, cohort: str, data: dict[str, ClipSet], config: StageConfig, work_dir: Path) -> StageFit:
    """Add `cohort` to the ScreeningModel `model` and train only what `config.method` allows.

    adapter / conv-adapter: a new adapter set + head on the frozen encoder; nothing that existed changes.
    full: a new head, and the whole shared encoder trains too (so earlier cohorts drift: the baseline).
    The best validation-AUROC weights are kept. The calibration (temperature, bias and SNR term, as single-cohort
    fine-tuning fits it) is fitted on validation recordings with their SNR, and the threshold on validation
    subjects: ward noise shifts both classes' logits, and without the SNR term one (T, b) fitted on a clean +
    noisy mix is off in opposite directions per condition.
    """
    from biomarker.evaluate.report import fit_operating_point
    from biomarker.finetune.run import BalancedBCE
    from biomarker.train import BEST_NAME, TrainConfig, load_checkpoint, train

    train_set, val_set = _require_split(data, "train", cohort), _require_split(data, "val", cohort)
    kind = ADAPTER_KIND[config.method]
    if kind is None:
        model.add_cohort(cohort)
    else:
        options = DEFAULT_ADAPTERS[config.method] if config.adapter_options is None else config.adapter_options
        model.add_cohort(cohort, kind, **options)
    trainable, on_path = model.train_only(cohort, encoder=config.method == "full")
    positives = float(train_set.labels.sum())
    if positives in (0, len(train_set)):
        raise ContinualError(f"training rows of cohort {cohort!r} hold only one class ({int(positives)} of {len(train_set)} RI)")
    objective = BalancedBCE(model, cohort, (len(train_set) - positives) / positives)
    loader = DataLoader(
        train_set.cropped(config.crop_frames),
        batch_size=config.batch_size,
        shuffle=True,
        collate_fn=pad_batch,
        generator=torch.Generator().manual_seed(config.seed),
    )
    run_dir = Path(work_dir) / f"{cohort}-{config.method}"
    train_config = TrainConfig(
        out_dir=str(run_dir),
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
    evaluate = lambda objective: {"auroc": _subject_auroc(cohort_logits(model, cohort, val_set), val_set)}  # noqa: E731
    train(objective, loader, train_config, evaluate=evaluate, resume=False, plot_title=f"{cohort} ({config.method})")
    objective.load_state_dict(load_checkpoint(run_dir / BEST_NAME, "cpu")["model"])
    model.cpu()  # calibration, checks and saving run on CPU whatever trained, so comparisons are like for like
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    logits = cohort_logits(model, cohort, val_set)
    point = fit_operating_point(logits.numpy(), val_set.labels.numpy(), val_set.subjects, snr_db=val_set.snr_db.numpy())
    model.set_calibration(cohort, threshold=point.threshold, temperature=point.temperature, bias=point.bias,
                          snr_slope=point.snr_slope, subject_scale=point.subject_scale, subject_shift=point.subject_shift)
    return StageFit(cohort, config.method, trainable, on_path, _subject_auroc(logits, val_set), point)


def require_unchanged(before: dict[str, torch.Tensor], model: torch.nn.Module, probe: ClipSet) -> None:
    """Every earlier cohort's logits on `probe` must equal `before` bit for bit (the adapter promise)."""
    for cohort, expected in before.items():
        if not torch.equal(cohort_logits(model, cohort, probe), expected):
            raise ContinualError(f"cohort {cohort!r} changed while adding a new cohort; this version is not published")


# ---------------------------------------------------------------------------------------------- evaluation
def score_cohort(model: torch.nn.Module, cohort: str, clips: ClipSet, *, resamples: int = 1000, seed: int = 0) -> CohortScore:
    """Subject-level AUROC of `cohort`'s path on `clips` with a label-stratified bootstrap 95% CI."""
    from biomarker.evaluate.metrics import auroc, bootstrap_ci, to_subjects

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


def cohort_card(model: torch.nn.Module, fit: StageFit, manifest: str | Path, parent: str | None, synthetic: bool) -> str:
    """The new version's card: what it adds, what it was trained on, measured numbers, what it must not do."""
    from biomarker.finetune.card import SNR_TERM

    label, point = "SYNTHETIC " if synthetic else "", fit.operating_point
    cohorts = ", ".join(f"`{c}`" + (" (default)" if c == model.default_cohort else "") for c in model.cohorts)
    return "\n".join(
        [
            f"# {model.name} — respiratory-insufficiency screening bundle",
            "",
            f"Adds cohort `{fit.cohort}` ({fit.method}) to `{parent or 'a new bundle'}`. Cohorts: {cohorts}.",
            "Pick a cohort (task id) when scoring; earlier cohorts' outputs are bit-identical to the parent's"
            + (" (checked before publishing)." if fit.method != "full" else " — NOT for `full`: the encoder moved."),
            "",
            "## Training data",
            "",
            f"- {label}cohort manifest `{manifest}` (train rows fit the {fit.method} parameters; validation rows "
            "chose the best step and fitted the calibration and threshold).",
            *(
                ["- The data are SYNTHETIC (espeak-ng voices with simulated breathing markers); no number here says "
                 "anything about real patients."]
                if synthetic
                else []
            ),
            "",
            "## Measured (validation split of this cohort; test numbers are in the forgetting report)",
            "",
            f"- Subject-level validation AUROC: {fit.val_auroc:.3f}",
            f"- Trainable for this cohort: {fit.trainable_params:,} of {fit.total_params:,} parameters on its path "
            f"({100.0 * fit.trainable_params / fit.total_params:.2f}%)",
            f"- Calibration (validation recordings): temperature {point.temperature:.3f}, bias {point.bias:+.3f}, "
            f"SNR slope {point.snr_slope:+.3f} (p = sigmoid(logit / T + b + s · {SNR_TERM}), SNR the quality "
            f"gate's estimate of the recording); threshold {point.threshold:.3f} on that probability "
            f"(sensitivity ≥ {point.target_sensitivity:.2f} on validation subjects)",
            "",
            "## Must not be used for",
            "",
            "- Diagnosis, or estimating SpO2: it screens (refer for an SpO2 check).",
            "- Any clinical decision while it is trained on synthetic data or is not clinically validated.",
            "- A cohort it was not adapted to without choosing the closest cohort knowingly and checking it.",
            "",
        ]
    )


def _is_synthetic(manifest: str | Path) -> bool:
    from biomarker.cohorts.manifest import read_manifest

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
    from biomarker.models import ScreeningModel, create_model, from_pretrained, list_models
    from biomarker.models.catalog import read_version_dir

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
    from biomarker.models import ScreeningModel, from_pretrained

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


def write_forgetting_report(reports: Sequence[ForgettingReport], out_dir: str | Path) -> dict[str, Path]:
    """forgetting.md (one table per method), forgetting.json and forgetting.png in `out_dir`."""
    import json

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / "forgetting.md", "json": out_dir / "forgetting.json", "png": out_dir / "forgetting.png"}
    paths["markdown"].write_text("\n".join(r.to_markdown() for r in reports), encoding="utf-8")
    paths["json"].write_text(json.dumps({r.method: r.to_dict() for r in reports}, indent=2), encoding="utf-8")
    plot_forgetting(reports, paths["png"])
    return paths


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
    from biomarker.models import from_pretrained

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


# ------------------------------------------------------------------------------------------ demonstration
@dataclass(frozen=True)
class DemoCohort:
    """A synthetic cohort that differs from the others the way real ones do (see scripts/continual_demo.sh)."""

    name: str
    pool: str  # synthesizer pool: 'train' voices/sentences or the disjoint 'heldout' ones
    languages: tuple[str, ...]  # empty: every language of the pool
    noise: str  # 'none' (quiet room: the clean clips) or 'ward' (the SPIRA-protocol noisy copies, both classes)
    channel: str  # 'wideband' (16 kHz) or 'telephone' (8 kHz, 300-3400 Hz)
    seed: int

    def __post_init__(self) -> None:
        if self.noise not in ("none", "ward"):
            raise ContinualError(f"DemoCohort {self.name!r}: noise must be 'none' or 'ward', got {self.noise!r}")


DEMO_SPLIT = (0.5, 0.2, 0.3)  # speakers: enough test subjects per cohort for a usable AUROC CI at demo sizes
DEMO_ENCODER = dict(embed_dim=64, depth=2, num_heads=4)  # ssast-tiny-patch cut down for 2 shared CPU cores
# The demo encoder is 64 wide: AAT keeps its default (64 -> 8 -> 64); ConvPass's 3x3 convolution grows with the
# square of its channels, so 4 channels keep it at 2% (32 would be 35% of this tiny encoder).
DEMO_ADAPTERS = {"conv-adapter": {"hidden": 4}}
# On the pretrained ssast-tiny-patch (192 wide) ConvPass 16 channels costs 3.66% per cohort (32: 8.70%, over the
# < 5% goal), next to AAT ratio 0.125's 3.97% (measured with `ScreeningModel.train_only`).
PRETRAINED_DEMO_ADAPTERS = {"conv-adapter": {"hidden": 16}}


def make_demo_cohort(cohort: DemoCohort, out_dir: str | Path, *, n: int = 96) -> Path:
    """Synthesize one demonstration cohort and write `<out_dir>/<name>.csv` (only its rows) and its data card.

    An existing `<name>.csv` is reused as is (rerunning the demo does not re-synthesize)."""
    from dataclasses import replace

    from biomarker.cohorts.manifest import write_manifest
    from biomarker.cohorts.splits import SplitConfig
    from biomarker.cohorts.synth import SynthConfig, summarise, synthesize_cohort

    manifest = Path(out_dir) / f"{cohort.name}.csv"
    if manifest.is_file():
        return manifest
    train, val, test = DEMO_SPLIT
    config = SynthConfig(
        n=n,
        seed=cohort.seed,
        pool=cohort.pool,
        languages=cohort.languages,
        channel=cohort.channel,
        cohort=cohort.name,
        noisy_copy=cohort.noise == "ward",
        split=SplitConfig(train=train, val=val, test=test, seed=cohort.seed),
    )
    items = synthesize_cohort(Path(out_dir) / cohort.name, config)
    wanted = f"{cohort.name}-noisy" if cohort.noise == "ward" else cohort.name
    rows = [replace(item, cohort=cohort.name) for item in items if item.cohort == wanted]
    write_manifest(rows, manifest)
    card = Path(__file__).resolve().parents[2] / "data_cards" / f"cohort-{cohort.name}.md"
    card.write_text(demo_cohort_card(cohort, config, summarise(rows)), encoding="utf-8")
    return manifest


def demo_cohort_card(cohort: DemoCohort, config: Any, summary: dict[str, Any]) -> str:
    """Datasheet of a demonstration cohort, from the numbers of the rows actually written."""
    languages = ", ".join(cohort.languages) or f"all of pool {cohort.pool!r}"
    environment = (
        "hospital ward: SPIRA-protocol ward noise (generated bank: monitor beeps, ventilation, distant voices) in "
        "EVERY clip of both classes"
        if cohort.noise == "ward"
        else "quiet room: no added noise"
    )
    channel = (
        "telephone: resampled to 8 kHz, band-passed 300-3400 Hz, back to 16 kHz (nothing above 4 kHz)"
        if cohort.channel == "telephone"
        else "wideband 16 kHz"
    )
    by_split = summary["by_split"]
    splits = "; ".join(f"{s}: {by_split[s]['clips']} clips, {by_split[s]['patients']} patient clips"
                       for s in [*(s for s in ("train", "val", "test") if s in by_split), *sorted(set(by_split) - {"train", "val", "test"})])
    return f"""# Data card: `{cohort.name}` (SYNTHETIC demonstration cohort)

**Synthetic.** Made by `biomarker.cohorts.synth` (espeak-ng voices reading sentences; patients carry simulated
respiratory-insufficiency markers: shorter breath groups, mid-phrase inspiratory pauses with audible inhalation,
slower rate, breathy, less steady voice; the literature is cited in `data_cards/synthetic-ri-train.md`). No real
person is recorded; numbers measured on it say nothing about real patients.

## Why it exists
One of the continual-learning demonstration cohorts (`scripts/continual_demo.sh`, `docs/continual.md`): each
differs from the others the way a new hospital, language or microphone does, so that training on it one after
the other shows what adapters keep and what sequential full fine-tuning forgets.

## How it differs
- Language: {languages}
- Voices and sentences: synthesizer pool `{cohort.pool}` ({'voices and sentences disjoint from the training pool' if cohort.pool == 'heldout' else 'the training pool'})
- Recording environment: {environment}
- Channel: {channel}

## Contents (as written)
- Clips: {summary['clips']}; speakers: {summary['speakers']}; patient clips: {summary['patient_clips']}
- Speaker-disjoint, label-stratified splits ({DEMO_SPLIT[0]:.0%}/{DEMO_SPLIT[1]:.0%}/{DEMO_SPLIT[2]:.0%} of speakers): {splits}
- Duration (s): min {summary['duration_s']['min']}, median {summary['duration_s']['median']}, max {summary['duration_s']['max']}
- Voices: {', '.join(summary['voices'])}

## Rebuild
`N_CLIPS={config.n} bash scripts/continual_demo.sh` (synthesizer seed {config.seed}, n={config.n}, {config.clips_per_speaker}
clips per speaker, patient fraction {config.patient_fraction}). Audio is never committed.

## Must not be used for
Any claim about real patients, clinical validation, or SpO2 estimation. It is a pipeline and forgetting demo.
"""


def run_demonstration(
    manifests: Sequence[tuple[str, Path]],
    out_dir: str | Path,
    *,
    steps: int = 24,
    batch_size: int = 8,
    crop_frames: int = 200,
    bootstrap_resamples: int = 200,
    encoder: str | Path | None = None,
    methods: Sequence[str] = ("adapter", "conv-adapter", "full"),
    attentions: Sequence[str] = ("sdpa",),
    seed: int = 0,
    catalog: Catalog | None = None,
) -> dict[str, Any]:
    """Run every method x attention over the cohort sequence; write forgetting.md/.json/.png (and attention.md).

    `encoder`: a pretrained encoder dir; None builds a tiny random-init `ssast-tiny-patch` (said in the report).
    `attentions`: 'sdpa' (full) and/or 'factorized'; every one runs on the same saved weights, so with more than
    one, attention.md sets each cohort's test AUROC under factorized attention next to full attention's.
    `seed` seeds each stage's trainer (batch order and random crops; through the RNG state it leaves, also the
    initial weights of the cohorts added after the first). The splits are fixed by the manifests, so a second
    seed shows how much of a difference between methods is training noise.
    """
    from biomarker.models import create_model

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder_dir, adapters = out_dir / "encoder", DEMO_ADAPTERS
    if encoder is None:
        torch.manual_seed(0)
        create_model("ssast-tiny-patch", **DEMO_ENCODER).save_pretrained(encoder_dir)
        encoder_note = f"Encoder: `ssast-tiny-patch` with {DEMO_ENCODER}, random init (not pretrained)"
    else:
        encoder_dir, encoder_note = Path(encoder), f"Encoder: `{encoder}` (pretrained)"
        adapters = PRETRAINED_DEMO_ADAPTERS
    from biomarker.models import from_pretrained

    feature_config = from_pretrained(encoder_dir).feature_config
    data = {cohort: load_cohort(manifest, feature_config) for cohort, manifest in manifests}
    catalog = catalog or Catalog()
    reports: dict[tuple[str, str], ForgettingReport] = {}
    for attention, method in ((a, m) for a in attentions for m in methods):
        config = StageConfig(
            method=method,
            steps=steps,
            batch_size=batch_size,
            eval_every=max(1, steps // 3),
            crop_frames=crop_frames,
            adapter_options=adapters.get(method),
            lr=3e-4 if method == "full" else 1e-3,
            bootstrap_resamples=bootstrap_resamples,
            seed=seed,
        )
        factorized = attention != "sdpa"
        report = run_sequence(
            encoder_dir, manifests, config, data=data, name=f"demo-{method}" + (f"-{attention}" if factorized else ""),
            catalog=catalog, work_dir=out_dir / "runs" / attention, attention=attention,
            label=f"{method} + {attention} attention" if factorized else method,
        )
        role = "trained with every cohort" if method == "full" else "frozen and shared by every cohort"
        report.notes.append(f"{encoder_note}, attention `{attention}`, {role}; {steps} steps per stage, seed {seed}.")
        reports[attention, method] = report
    write_forgetting_report(list(reports.values()), out_dir)
    if len(attentions) > 1:
        tables = [attention_comparison(reports[attentions[0], m], reports[a, m]) for m in methods for a in attentions[1:]]
        (out_dir / "attention.md").write_text("\n".join(tables), encoding="utf-8")
    return {r.method: {"backward_transfer": r.backward_transfer(), "versions": [st.version for st in r.stages]}
            for r in reports.values()}


def attention_comparison(full: ForgettingReport, other: ForgettingReport) -> str:
    """Markdown: each cohort's test AUROC [95% CI] after the last stage under `other`'s attention next to `full`'s.

    Both runs must cover the same cohorts in the same order (the same data, seed and steps make the attention
    pattern the only difference). For adapter methods the last stage's score is the score the cohort got when
    it was added, since adding later cohorts changes nothing.
    """
    if full.cohorts != other.cohorts:
        raise ContinualError(f"cannot compare {full.method} with {other.method}: cohorts {full.cohorts} vs {other.cohorts}")
    rows = [f"| cohort | {full.method} AUROC [95% CI] | {other.method} AUROC [95% CI] | difference |", "|---|---|---|---|"]
    for cohort in full.cohorts:
        a, b = full.stages[-1].scores[cohort], other.stages[-1].scores[cohort]
        rows.append(f"| {cohort} | {a.auroc:.3f} [{a.ci_low:.3f}, {a.ci_high:.3f}] | "
                    f"{b.auroc:.3f} [{b.ci_low:.3f}, {b.ci_high:.3f}] | {_signed(b.auroc - a.auroc)} |")
    mean = lambda r: sum(r.stages[-1].scores[c].auroc for c in r.cohorts) / len(r.cohorts)  # noqa: E731
    rows.append(f"| mean | {mean(full):.3f} | {mean(other):.3f} | {_signed(mean(other) - mean(full))} |")
    return "\n".join(rows) + "\n"


def _signed(difference: float) -> str:
    """'+0.012'; a difference that rounds to zero prints '+0.000', never '-0.000'."""
    return f"{round(difference, 3) + 0.0:+.3f}"
