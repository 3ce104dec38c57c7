"""CLI commands: `biomarker pretrain run` (also under torchrun for DDP) and `biomarker pretrain export`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from biomarker.cli.options import parse_settings


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    pretrain_app = typer.Typer(help="Self-supervised masked-token pretraining of an encoder.", no_args_is_help=True)

    @pretrain_app.command("run")
    def run(
        model: str = typer.Argument(..., help="A registered encoder, e.g. ssamba-tiny, mfccgram-transformer; or a "
                                    "saved encoder's folder, e.g. pretrained/mfccgram-transformer, to continue its "
                                    "pretraining on your own unlabeled audio."),
        out: Path = typer.Option(..., "--out", help="Run folder: checkpoint (resumable), log.csv, PNG, encoder/."),
        manifest: Path = typer.Option(None, help="Corpus manifest.csv (from `biomarker corpus build`), or a cohort "
                                      "manifest: only its split=train rows are used, labels ignored."),
        audio_dir: Path = typer.Option(None, help="Or: a folder of your own audio files (any format)."),
        held_out_dir: Path = typer.Option(None, help="With --audio-dir: a folder of held-out audio."),
        steps: int = typer.Option(1000, help="Optimizer steps (the cosine schedule ends here)."),
        max_minutes: float = typer.Option(0.0, help="Wall-time budget; the run stops cleanly when spent (0: none)."),
        batch_size: int = typer.Option(16, help="Clips per step per process."),
        crop_s: float = typer.Option(4.0, help="Random crop length, seconds."),
        lr: float = typer.Option(5e-4),
        weight_decay: float = typer.Option(0.01),
        warmup: int = typer.Option(100, help="Linear warmup steps before cosine decay."),
        mask_ratio: float = typer.Option(0.78, help="Share of each clip's tokens masked (SSAST: 400/512)."),
        eval_every: int = typer.Option(250, help="Held-out evaluation period in steps (0: only at the end)."),
        checkpoint_every: int = typer.Option(50, help="Checkpoint period in steps (resume is exact)."),
        max_held_out_clips: int = typer.Option(192, help="Held-out clips evaluated per set."),
        max_train_clips: int = typer.Option(0, help="Train on a fixed random subset of this many clips (0: all)."),
        workers: int = typer.Option(0, help="DataLoader worker processes."),
        precompute: bool = typer.Option(True, help="Compute features once and cache them (recommended on CPU)."),
        feature_cache: Path = typer.Option(None, help="Feature cache folder (default OUT/feature_cache); "
                                           "runs sharing a corpus and front-end can share one."),
        device: str = typer.Option("auto", help="auto|cpu|cuda."),
        seed: int = typer.Option(0),
        override: list[str] = typer.Option([], help="Model setting key=value (repeatable), e.g. depth=4."),
        progress: bool = typer.Option(True, help="Show a progress bar."),
    ) -> None:
        """Pretrain MODEL; rerunning the same command resumes from the run folder's checkpoint."""
        from biomarker.pretrain.objective import MaskedObjectiveConfig
        from biomarker.pretrain.run import PretrainConfig, run_pretraining
        from biomarker.train import TrainConfig

        config = PretrainConfig(
            model=model, out_dir=str(out), manifest=str(manifest) if manifest else None,
            audio_dir=str(audio_dir) if audio_dir else None, held_out_dir=str(held_out_dir) if held_out_dir else None,
            crop_s=crop_s, batch_size=batch_size, workers=workers, precompute=precompute,
            feature_cache=str(feature_cache) if feature_cache else None,
            max_held_out_clips=max_held_out_clips, max_train_clips=max_train_clips or None, model_overrides=parse_settings(override, "--override"),
            objective=MaskedObjectiveConfig(mask_ratio=mask_ratio),
            train=TrainConfig(out_dir=str(out), max_steps=steps, lr=lr, weight_decay=weight_decay,
                              warmup_steps=warmup, eval_every=eval_every, checkpoint_every=checkpoint_every,
                              device=device, seed=seed, progress=progress, betas=(0.95, 0.999),
                              max_wall_time_s=max_minutes * 60 or None),
        )
        summary = run_pretraining(config, log=typer.echo)
        if os.environ.get("RANK", "0") == "0":  # under torchrun, one report
            typer.echo(json.dumps({"steps": summary["steps"], "held_out": summary["held_out"]}, indent=2))

    @pretrain_app.command("export")
    def export(
        run_dir: Path = typer.Argument(..., help="A finished `biomarker pretrain run` folder."),
        destination: Path = typer.Argument(..., help="e.g. pretrained/ssamba-tiny"),
        name: str = typer.Option(None, help="Name in the card (default: the destination folder's name)."),
        corpus_summary: Path = typer.Option(None, help="The corpus summary.json, quoted in the card."),
        conditions: str = typer.Option("", help="What the machine was doing, in words, for the card."),
    ) -> None:
        """Copy the fp16 encoder and write card.md (measured numbers, sha256) into DESTINATION."""
        from biomarker.pretrain.run import export_pretrained

        path = export_pretrained(run_dir, destination, name=name or destination.name, corpus_summary=corpus_summary,
                                 conditions=conditions)
        typer.echo(f"exported → {path}")

    app.add_typer(pretrain_app, name="pretrain")
