"""One pretraining run: data → `MaskedTokenObjective(create_model(name))` → `biomarker.train.train` → encoder.

`run_pretraining(PretrainConfig(...))` is what `biomarker pretrain run` calls, alone or under
`torchrun --nproc_per_node=N -m biomarker pretrain run ...` (DDP: gloo on CPU, nccl on CUDA; rank 0 builds
the feature cache and writes every file). Held-out evaluation reports real and synthetic held-out speech
separately, each with the mean-patch baseline, so the card's evidence comes straight from the run.
`export_pretrained` turns a finished run into `pretrained/<name>/` (fp16 weights, config.json, card.md).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from biomarker.device import describe
from biomarker.features import get_extractor
from biomarker.features.bank import FeatureBank, bank_key, pad_batch
from biomarker.models import create_model, from_pretrained, list_models
from biomarker.models.checkpoint import read_description
from biomarker.pretrain.corpus import read_manifest
from biomarker.pretrain.data import AudioCropDataset, FeatureCropDataset, PretrainDataError, list_audio
from biomarker.pretrain.objective import MaskedObjectiveConfig, MaskedTokenObjective
from biomarker.train import (
    ResumableSampler,
    TrainConfig,
    batch_evaluator,
    init_distributed_from_env,
    is_distributed,
    local_device,
    rank,
    train,
    world_size,
)

SUMMARY_NAME = "pretrain_summary.json"
ENCODER_DIR = "encoder"


@dataclass
class PretrainConfig:
    """What to pretrain, on what, for how long. `train` holds the loop's settings (out_dir is set from here)."""

    model: str  # a registered encoder name, or a saved encoder's folder whose pretraining continues (`initial_encoder`)
    out_dir: str
    manifest: str | None = None  # corpus manifest.csv (path[, split, kind]); or
    audio_dir: str | None = None  # a folder of audio files (all used for training)
    held_out_dir: str | None = None  # a folder of held-out audio (with audio_dir)
    crop_s: float = 4.0
    min_clip_s: float = 1.0
    batch_size: int = 16
    workers: int = 0
    precompute: bool = True
    max_held_out_clips: int = 192
    feature_cache: str | None = None  # default out_dir/feature_cache; share one across runs of the same corpus
    max_train_clips: int | None = None  # a fixed random subset: bounds feature precomputation on small budgets
    model_overrides: dict[str, Any] = field(default_factory=dict)
    objective: MaskedObjectiveConfig = field(default_factory=MaskedObjectiveConfig)
    train: TrainConfig | None = None

    def __post_init__(self) -> None:
        if (self.manifest is None) == (self.audio_dir is None):
            raise PretrainDataError("give exactly one of a manifest or an audio folder")
        if self.crop_s <= 0 or self.batch_size < 1:
            raise PretrainDataError(f"crop_s={self.crop_s} and batch_size={self.batch_size} must be positive")


def _split_paths(config: PretrainConfig) -> dict[str, list[str]]:
    """'train', 'held_out_real', 'held_out_synthetic' → file paths (the last two may be empty)."""
    if config.manifest is not None:
        rows = read_manifest(config.manifest)
        splits = {
            "train": [r["path"] for r in rows if r.get("split", "train") == "train"],
            "held_out_real": [r["path"] for r in rows if r.get("split") == "held_out" and r.get("kind") != "synthetic"],
            "held_out_synthetic": [r["path"] for r in rows
                                   if r.get("split") == "held_out" and r.get("kind") == "synthetic"],
        }
    else:
        splits = {"train": [str(p) for p in list_audio(config.audio_dir)],
                  "held_out_real": [str(p) for p in list_audio(config.held_out_dir)] if config.held_out_dir else [],
                  "held_out_synthetic": []}
    if not splits["train"]:
        raise PretrainDataError(f"{config.manifest or config.audio_dir}: no training audio")
    return splits


def initial_encoder(model: str, overrides: dict[str, Any]) -> torch.nn.Module:
    """A new encoder of a registered name, or the saved encoder in folder `model`, to pretrain further.

    Why the second: masked pretraining continued on the unlabeled audio of the target domain (its language,
    voices and microphones) adapts an encoder whose first corpus lies far from that domain, before any label is
    spent (domain-adaptive pretraining, Gururangan et al. 2020). Overrides follow `from_pretrained`'s rules: only
    settings that leave the saved weights usable.
    """
    if not Path(model).is_dir():
        if model not in list_models():
            raise PretrainDataError(f"{model!r} is neither a registered encoder ({', '.join(list_models())}) "
                                    "nor a saved encoder's folder")
        return create_model(model, **overrides)
    if read_description(model).get("kind") == "screening":
        raise PretrainDataError(f"{model} is a screening bundle; continue pretraining from a bare encoder "
                                "(e.g. pretrained/ssast-tiny-patch)")
    return from_pretrained(model, overrides=overrides or None)


def _fixed_subset(paths: list[str], limit: int, seed: int) -> list[str]:
    """A fixed random subset (the same in every run with this seed), so evaluation (or, with
    `max_train_clips`, feature precomputation) cost stays bounded."""
    if len(paths) <= limit:
        return paths
    return sorted(random.Random(seed).sample(paths, limit))


def _bank(paths: list[str], extractor: torch.nn.Module, min_frames: int, cache_dir: Path,
          log: Callable[[str], None]) -> FeatureBank:
    """Build (rank 0) or load the cached bank for these files and this front-end."""
    path = cache_dir / f"features-{bank_key(paths, extractor.config.to_dict(), min_frames)}.safetensors"
    if rank() == 0 and not path.exists():
        started = time.perf_counter()
        bank = FeatureBank.build(paths, extractor, min_frames=min_frames, log=log)
        cache_dir.mkdir(parents=True, exist_ok=True)
        bank.save(path)
        log(f"features: {len(bank)} clips, {bank.meta['hours']:.2f} h in {time.perf_counter() - started:.0f} s "
            f"→ {path}")
    if is_distributed():
        dist.barrier()
    return FeatureBank.load(path)


def _normalise_if_unset(encoder: torch.nn.Module, extractor: torch.nn.Module, bank: FeatureBank,
                        log: Callable[[str], None]) -> torch.nn.Module:
    """Front-ends without stored statistics (MFCC-gram) get the corpus mean/std, written into the encoder's
    feature config so fine-tuning and scoring normalise exactly as pretraining did."""
    if extractor.config.norm_mean is not None:
        return extractor
    values = bank.features.float()
    mean, std = float(values.mean()), float(values.std())
    log(f"features: corpus statistics mean={mean:.4f} std={std:.4f} stored in the encoder's feature config")
    encoder.feature_config = {**encoder.feature_config, "norm_mean": mean, "norm_std": std}
    return get_extractor(**encoder.feature_config)


def _apply_norm(bank: FeatureBank, mean: float, std: float) -> FeatureBank:
    bank.features = ((bank.features.float() - mean) / (2.0 * std)).to(torch.float16)
    return bank


def run_pretraining(config: PretrainConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Pretrain, evaluate on held-out speech, save `out_dir/encoder/` and `out_dir/pretrain_summary.json`."""
    train_config = config.train or TrainConfig(out_dir=config.out_dir, max_steps=1000)
    train_config = dataclasses.replace(train_config, out_dir=config.out_dir)
    device = local_device(train_config.device)
    started_group = init_distributed_from_env(device)
    try:
        torch.manual_seed(train_config.seed)  # identical initial weights on every rank
        encoder = initial_encoder(config.model, config.model_overrides)
        extractor = get_extractor(**encoder.feature_config)
        out_dir = Path(config.out_dir)
        min_frames = max(int(config.min_clip_s * extractor.frames_per_second), encoder.patch_embed.patch[1] * 2)
        crop_frames = int(round(config.crop_s * extractor.frames_per_second))
        splits = _split_paths(config)
        held_out = {name: _fixed_subset(paths, config.max_held_out_clips, train_config.seed)
                    for name, paths in splits.items() if name != "train" and paths}
        if config.max_train_clips is not None:
            splits["train"] = _fixed_subset(splits["train"], config.max_train_clips, train_config.seed)

        if config.precompute:
            cache = Path(config.feature_cache) if config.feature_cache else out_dir / "feature_cache"
            train_bank = _bank(splits["train"], extractor, min_frames, cache, log)
            held_banks = {name: _bank(paths, extractor, min_frames, cache, log) for name, paths in held_out.items()}
            if extractor.config.norm_mean is None:
                extractor = _normalise_if_unset(encoder, extractor, train_bank, log)
                for bank in [train_bank, *held_banks.values()]:
                    _apply_norm(bank, extractor.config.norm_mean, extractor.config.norm_std)
            train_set = FeatureCropDataset(train_bank, crop_frames, seed=train_config.seed)
            held_sets = {name: FeatureCropDataset(bank, crop_frames, random_crop=False)
                         for name, bank in held_banks.items()}
            hours = train_bank.meta["hours"]
        else:
            if extractor.config.norm_mean is None:
                raise PretrainDataError(
                    f"{config.model}'s front-end {extractor.config.name!r} has no normalisation statistics; "
                    "use precomputed features (they measure them) or pass norm_mean/norm_std model features")
            train_set = AudioCropDataset(splits["train"], extractor, config.crop_s, seed=train_config.seed)
            held_sets = {name: AudioCropDataset(paths, extractor, config.crop_s, random_crop=False)
                         for name, paths in held_out.items()}
            hours = None

        loader = DataLoader(train_set, batch_size=config.batch_size, sampler=ResumableSampler(train_set,
                            seed=train_config.seed, drop_last=True), collate_fn=pad_batch,
                            num_workers=config.workers, drop_last=True)
        evaluators = {name: batch_evaluator(DataLoader(data, batch_size=config.batch_size, collate_fn=pad_batch))
                      for name, data in held_sets.items()}

        def evaluate(objective: torch.nn.Module) -> dict[str, float]:
            metrics: dict[str, float] = {}
            for name, evaluator in evaluators.items():
                values = evaluator(objective)
                values["mse_ratio"] = values["mse"] / max(values["mse_mean_patch"], 1e-12)
                values["acc_over_chance"] = values["acc"] / max(values["chance"], 1e-12)
                metrics.update({f"{name}/{key}": value for key, value in values.items()})
            return metrics

        objective = MaskedTokenObjective(encoder, config.objective)
        result = train(objective, loader, train_config, evaluate=evaluate if evaluators else None,
                       plot_title=f"{config.model} masked pretraining")
        summary = {
            "model": config.model,
            "continued_from_saved_encoder": Path(config.model).is_dir(),
            "model_overrides": config.model_overrides,
            "parameters_encoder": sum(p.numel() for p in encoder.parameters()),
            "steps": result.step,
            "epochs": result.epoch + 1,
            "stop_reason": result.stop_reason,
            "wall_time_s": round(result.wall_time_s, 1),
            "device": _describe(device),
            "host": f"{os.cpu_count()} CPU cores visible, {torch.get_num_threads()} torch threads per process",
            "world_size": world_size(),
            "train_hours": hours,
            "train_clips": len(train_set),
            "train_clips_available": len(_split_paths(config)["train"]),
            "held_out_clips": {name: len(data) for name, data in held_sets.items()},
            "crop_s": config.crop_s,
            "batch_size_per_rank": config.batch_size,
            "final_train": result.train_metrics,
            "held_out": result.eval_metrics,
            "objective": asdict(config.objective),
            "train_config": asdict(train_config),
            "data": config.manifest or config.audio_dir,
            "feature_config": encoder.feature_config,
        }
        if rank() == 0:
            encoder.save_pretrained(out_dir / ENCODER_DIR)
            (out_dir / SUMMARY_NAME).write_text(json.dumps(summary, indent=2, default=str))
            log(f"encoder → {out_dir / ENCODER_DIR}; summary → {out_dir / SUMMARY_NAME}")
        return summary
    finally:
        if started_group:
            dist.destroy_process_group()


def _describe(device: torch.device) -> str:
    return describe(device)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_pretrained(run_dir: str | Path, destination: str | Path, *, name: str,
                      corpus_summary: str | Path | None = None, conditions: str = "") -> Path:
    """Copy a run's fp16 encoder and loss curves into `destination` and write its card from the run's measured
    summary; `conditions` says in words what the machine was doing (shared, throttled...)."""
    run_dir, destination = Path(run_dir), Path(destination)
    summary = json.loads((run_dir / SUMMARY_NAME).read_text())
    destination.mkdir(parents=True, exist_ok=True)
    for item in (run_dir / ENCODER_DIR).iterdir():
        shutil.copy2(item, destination / item.name)
    if (run_dir / "loss_curves.png").exists():
        shutil.copy2(run_dir / "loss_curves.png", destination / "loss_curves.png")
    corpus = json.loads(Path(corpus_summary).read_text()) if corpus_summary else None
    summary["final_train"] = _last_logged_train_metrics(run_dir) or summary.get("final_train", {})
    weights = destination / "model.safetensors"
    (destination / "card.md").write_text(render_model_card(name, summary, sha256_of(weights),
                                                           weights.stat().st_size, corpus, conditions))
    return destination


def _last_logged_train_metrics(run_dir: Path) -> dict[str, float]:
    """The last training window in log.csv (with its step): what the card calls the final training losses."""
    path = run_dir / "log.csv"
    if not path.exists():
        return {}
    rows = [r for r in csv.DictReader(path.open(newline="")) if r["split"] == "train"]
    if not rows:
        return {}
    last = max(int(r["step"]) for r in rows)
    metrics = {r["metric"]: float(r["value"]) for r in rows if int(r["step"]) == last}
    return {**metrics, "step": last}


def render_model_card(name: str, summary: dict[str, Any], sha256: str, size_bytes: int,
                      corpus: dict[str, Any] | None, conditions: str = "") -> str:
    held = summary.get("held_out", {})
    train_metrics = summary.get("final_train", {})

    def fmt(key: str, digits: int = 3) -> str:
        value = held.get(key)
        return "n/a" if value is None else f"{value:.{digits}f}"

    evidence = []
    real_label = ("real speech, held-out speakers (asterisk es-CO, fr-FR Armelle, it-IT Menardi)" if corpus
                  else "held-out audio")
    for split, label in (("held_out_real", real_label),
                         ("held_out_synthetic", "synthetic espeak-ng pt-BR, held-out voices")):
        if f"{split}/mse" not in held:
            continue
        ratio = held[f"{split}/mse_ratio"]
        over = held[f"{split}/acc_over_chance"]
        evidence.append(
            f"| {label} | {summary['held_out_clips'].get(split, 'n/a')} | {fmt(split + '/mse')} | "
            f"{fmt(split + '/mse_mean_patch')} | **{ratio:.2f}** ({'meets' if ratio <= 0.7 else 'misses'} ≤ 0.7) | "
            f"{fmt(split + '/acc')} | {fmt(split + '/chance', 4)} | **{over:.1f}×** "
            f"({'meets' if over >= 5 else 'misses'} ≥ 5×) |")
    corpus_line = f"the audio of `{summary.get('data', 'n/a')}`"  # an audio folder or any manifest
    if corpus:
        corpus_line = "the pretraining corpus of `biomarker corpus build` (see data_cards/pretraining-corpus.md)"
        corpus_line += (f": {corpus['hours_train']} h of training audio ({corpus['hours_real']} h real in total, "
                        f"{corpus['hours_synthetic']} h synthetic espeak-ng, {corpus['hours_held_out']} h held out)")
    minutes = summary["wall_time_s"] / 60
    lines = [
        f"# Model card: `{name}` (self-supervised pretrained encoder)",
        "",
        f"- Architecture: `{summary['model']}`{' ' + str(summary['model_overrides']) if summary.get('model_overrides') else ''}"
        f"{' (pretraining continued from this saved encoder)' if summary.get('continued_from_saved_encoder') else ''}, "
        f"{summary['parameters_encoder'] / 1e6:.2f} M parameters; front-end `{summary['feature_config']}`.",
        f"- Objective: masked token modelling (InfoNCE + 10·MSE, mask ratio {summary['objective']['mask_ratio']}; "
        f"cluster masking for patch tokens, random masking for frame tokens), as in SSAST/SSAMBA.",
        f"- Trained on {corpus_line}. Training features: {summary.get('train_hours') or 'n/a'} h in "
        f"{summary['train_clips']} clips, random {summary['crop_s']} s crops.",
        f"- Steps: {summary['steps']} (batch {summary['batch_size_per_rank']} × {summary['world_size']} process(es), "
        f"{summary['epochs']} epoch(s), stopped by {summary['stop_reason']}); training wall time {minutes:.0f} min "
        f"on {summary['device']} ({summary.get('host', 'host not recorded')}), feature precomputation excluded."
        + (f" Conditions: {conditions}." if conditions else ""),
        f"- Final training losses (mean of the last logged window, step {train_metrics.get('step', 'n/a')}): loss {train_metrics.get('loss', float('nan')):.3f}, "
        f"InfoNCE {train_metrics.get('nce', float('nan')):.3f}, MSE {train_metrics.get('mse', float('nan')):.4f}, "
        f"accuracy {train_metrics.get('acc', float('nan')):.3f}.",
        f"- Weights: `model.safetensors`, fp16, {size_bytes / 1e6:.1f} MB, sha256 `{sha256}`.",
        "",
        "## Evidence that pretraining learned something (held-out, measured at the end of the run)",
        "",
        "Masked reconstruction MSE against the MSE of predicting each masked token by its clip's mean token, and "
        "InfoNCE accuracy (the true masked position wins among all masked positions of the clip) against chance "
        "(1 / masked positions). Centred crops, fixed masks (seeded).",
        "",
        "| held-out set | clips | MSE | mean-patch MSE | ratio | InfoNCE acc | chance | acc / chance |",
        "|---|---|---|---|---|---|---|---|",
        *evidence,
        "",
        "## Intended use",
        "",
        "- Initialisation for fine-tuning speech screeners in this project (`biomarker finetune`), feature "
        "extraction for research, and benchmarks of the training pipeline.",
        "",
        "## Must not be used for",
        "",
        "- Any clinical decision on its own: it was never trained on clinical or respiratory-insufficiency speech, "
        "and it outputs embeddings, not diagnoses.",
        "- Claims about Brazilian-Portuguese speakers: the only pt-BR in its corpus is synthetic (espeak-ng) plus "
        "1.7 min of letters and syllables.",
        "",
        "## Limitations",
        "",
        "- Tiny data by SSL standards (hours, not thousands of hours; a few dozen real speakers, much of it 8 kHz "
        "telephone prompts, acted game dialogue and robotic synthetic speech), and a short CPU budget: "
        "expect much weaker representations than the published SSAST/SSAMBA checkpoints.",
        "- Held-out figures are from a subset of held-out clips and one centred crop each; they measure the "
        "pretraining objective on unseen speakers, not whether downstream screening improves (see the "
        "fine-tuning reports).",
        "",
        "Reproduce: `bash scripts/pretrain_shipped.sh` (see docs/pretraining.md). Loss curves: "
        "`loss_curves.png` beside this card (the full `log.csv` stays in the run folder).",
        "",
    ]
    return "\n".join(lines)
