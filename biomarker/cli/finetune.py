"""CLI command: `biomarker finetune` — train a screening cohort (full | linear | adapter | conv-adapter)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from biomarker.records import DEFAULT_MODEL

from biomarker.cli.options import parse_settings


def finetune(
    manifest: Path = typer.Option(..., "--manifest", help="Cohort manifest with train/val/test splits."),
    out: Path = typer.Option(Path("runs/finetune"), "--out", help="Run folder: bundle/, report/, summary.json."),
    method: str = typer.Option("adapter", "--method", "--mode", help="full | linear | adapter | conv-adapter."),
    encoder: str = typer.Option("ssast-tiny-patch", "--encoder", help="Registry name (from scratch) or pretrained encoder dir."),
    depth: int = typer.Option(None, "--depth", help="Encoder depth: from scratch any; of a pretrained encoder, keep its first N blocks (cheaper scoring)."),
    settings: list[str] = typer.Option([], "--set", help="Encoder config override KEY=VALUE (JSON, or a bare word as a string), e.g. --set embed_dim=96 --set 'patch=[16,32]' --set positions=sinusoidal."),
    attention: str = typer.Option(
        None, "--attention",
        help="sdpa | factorized: transformer attention (also on a pretrained encoder: same weights, each patch then "
        "attends to its frequency row and time column). Default: the encoder's own.",
    ),
    cohort: str = typer.Option("synthetic-ri", "--cohort", help="Cohort name inside the bundle (the task id)."),
    bundle: str = typer.Option(None, "--bundle", help="Add the cohort to this existing bundle (continual learning)."),
    name: str = typer.Option(DEFAULT_MODEL, "--name"),
    steps: int = typer.Option(600, "--steps"),
    lr: float = typer.Option(1e-3, "--lr"),
    batch_size: int = typer.Option(16, "--batch-size"),
    crop_s: float = typer.Option(6.0, "--crop-s", help="Training crop length in seconds."),
    eval_every: int = typer.Option(50, "--eval-every", help="Validation AUROC every N steps (early stopping)."),
    patience: int = typer.Option(4, "--patience", help="Evaluations without improvement before stopping."),
    labels: int = typer.Option(None, "--labels", help="Use at most this many labelled training recordings."),
    extra_eval: list[Path] = typer.Option([], "--eval", help="Extra manifest measured as separate sets (repeatable)."),
    seed: int = typer.Option(0, "--seed"),
    freq_warp: float = typer.Option(0.0, "--freq-warp", help="Training augmentation (fbank encoders): mel axis scaled by U[1-w, 1+w], vocal-tract-length style; 0 = off."),
    freq_masks: int = typer.Option(0, "--freq-masks", help="Training augmentation: this many random frequency bands flattened per crop (SpecAugment); 0 = off."),
    freq_mask_bands: int = typer.Option(0, "--freq-mask-bands", help="Widest frequency mask, in mel bands."),
    probe_first: bool = typer.Option(
        False, "--probe-first",
        help="Fit the fresh head as a linear probe of the frozen encoder before fine-tuning (LP-FT): with few labels a "
        "random head's gradients can wreck a pretrained encoder (docs/screening.md).",
    ),
    probe_standardise: bool = typer.Option(
        False, "--probe-standardise",
        help="Scale each head input to zero mean, unit variance over the training rows before the probe's L2 penalty "
        "(folded into the head after); for `--set pooling=layer-stats`, whose inputs differ in scale by layer.",
    ),
    from_best: bool = typer.Option(False, "--from-best", help="Finish an interrupted run in --out from its best.pt."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
) -> None:
    """Fine-tune a ScreeningModel cohort; prints the summary (test metrics are on SYNTHETIC data)."""
    if bundle is not None:
        from biomarker.finetune.continual import add_cohort

        added = add_cohort(bundle, cohort, manifest, method=method, encoder=encoder, steps=steps, lr=lr,
                           batch_size=batch_size, seed=seed, device=device, out_dir=out, attention=attention)
        for line in bundle_summary(added, manifest, cohort, device):
            typer.echo(line)
        return
    from biomarker.finetune.augment import AugmentConfig
    from biomarker.finetune.probe import ProbeConfig
    from biomarker.finetune.run import FinetuneConfig, run_finetune

    overrides = {"depth": depth} if depth else {}
    if attention is not None:
        overrides["attention"] = attention
    overrides.update(parse_settings(settings, "--set"))

    config = FinetuneConfig(
        manifest=str(manifest), out_dir=str(out), method=method, encoder=encoder,
        encoder_overrides=overrides, cohort=cohort, name=name, steps=steps, lr=lr,
        batch_size=batch_size, crop_s=crop_s, eval_every=eval_every, patience=patience, max_train_recordings=labels, extra_eval=[str(p) for p in extra_eval], seed=seed, device=device,
        from_best=from_best, probe_first=probe_first, probe=ProbeConfig(standardise=probe_standardise), augment=AugmentConfig(freq_warp, freq_masks, freq_mask_bands),
    )
    summary = run_finetune(config)
    typer.echo(json.dumps({k: v for k, v in summary.items() if k != "sets"}, indent=2))


def bundle_summary(added, manifest: Path, cohort: str, device: str) -> list[str]:
    """What a researcher needs after `finetune --bundle`: the version written, the trainable share, the validation
    AUROC, and sensitivity and specificity at the fitted threshold, measured on the validation subjects by scoring
    them again through the screener (the path every later score takes)."""
    from biomarker.cohorts.manifest import read_manifest
    from biomarker.evaluate.metrics import MetricError
    from biomarker.evaluate.report import measure
    from biomarker.evaluate.scoring import score_items
    from biomarker.screener import Screener

    fit, point = added.fit, added.fit.operating_point
    lines = [f"wrote {added.ref} ({added.path}): cohort {fit.cohort!r} added with {fit.method}",
             f"trainable: {fit.trainable_params:,} of {fit.total_params:,} parameters on the cohort's path "
             f"({added.trainable_percent:.2f} %)",
             f"validation AUROC (subjects): {fit.val_auroc:.3f}"]
    val = [item for item in read_manifest(manifest) if item.split == "val"]
    scored = score_items(Screener.load(str(added.path), device=device), val, cohort=cohort)
    kept = [(item, p) for item, p in zip(val, scored.probabilities) if p is not None]
    try:
        metrics = measure([p for _, p in kept], [item.label for item, _ in kept],
                          [f"{item.cohort}/{item.speaker_id}" for item, _ in kept], point.threshold,
                          pooling=point.pooling)
    except MetricError as error:  # e.g. the quality gate refused every validation clip of one class
        lines.append(f"at threshold {point.threshold:.3f}: sensitivity and specificity not measurable on "
                     f"validation ({error}; {len(val) - len(kept)} of {len(val)} recordings refused)")
        return lines + [_next_steps(added.ref, fit.cohort, manifest)]
    lines.append(f"at threshold {point.threshold:.3f} (fitted for sensitivity >= {point.target_sensitivity:.2f}) on "
                 f"validation: sensitivity {metrics['sensitivity']:.3f} [{metrics['sensitivity_ci'][0]:.3f}, "
                 f"{metrics['sensitivity_ci'][1]:.3f}], specificity {metrics['specificity']:.3f} "
                 f"[{metrics['specificity_ci'][0]:.3f}, {metrics['specificity_ci'][1]:.3f}] "
                 f"(n = {metrics['n']} subjects, {metrics['n_patients']} RI; {len(val) - len(kept)} refused)")
    return lines + [_next_steps(added.ref, fit.cohort, manifest)]


def _next_steps(ref: str, cohort: str, manifest: Path) -> str:
    return (f"not the default yet: measure it (biomarker evaluate --bundle {ref} --cohort-manifest "
            f"{cohort}={manifest}) and promote it (biomarker models promote {ref})")


def recalibrate(
    run_dir: Path = typer.Argument(..., help="A finished `biomarker finetune` run folder (bundle/, summary.json)."),
    manifest: Path = typer.Option(..., "--manifest", help="The cohort manifest the run was trained on (its val split)."),
    extra_eval: list[Path] = typer.Option([], "--eval", help="Extra manifest measured as separate sets (repeatable)."),
    cache_dir: Path = typer.Option(Path("runs/cache"), "--cache-dir", help="Feature and SNR cache."),
) -> None:
    """Refit a run's calibration (temperature, bias, SNR slope) and threshold on validation, keep its weights,
    and measure every set again (report/ and summary.json are rewritten)."""
    from biomarker.finetune.run import recalibrate as refit

    summary = refit(run_dir, str(manifest), [str(p) for p in extra_eval], str(cache_dir))
    typer.echo(json.dumps({"operating_point": summary["operating_point"],
                           "sets": {name: {k: m[k] for k in ("auroc", "ece", "ece_recording")} for name, m in summary["sets"].items()}},
                          indent=2))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("finetune")(finetune)
    app.command("recalibrate")(recalibrate)
