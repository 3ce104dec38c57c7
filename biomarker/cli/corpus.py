"""CLI commands: `biomarker corpus build OUT` assembles the pretraining corpus (see biomarker/pretrain/corpus.py)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    corpus_app = typer.Typer(help="Unlabeled speech for self-supervised pretraining.", no_args_is_help=True)

    @corpus_app.command("build")
    def build(
        out: Path = typer.Argument(..., help="Folder for audio/, manifest.csv and summary.json (not committed)."),
        synthetic_minutes: float = typer.Option(90.0, help="espeak-ng training speech, minutes (half pt-BR)."),
        held_out_synthetic_minutes: float = typer.Option(6.0, help="espeak-ng pt-BR with held-out voices."),
        max_real_minutes_per_source: float = typer.Option(
            0.0, help="Cap real speech per source (0: take all, about 7.5 h)."),
        segment_s: float = typer.Option(6.0, help="Pack each speaker's utterances into segments this long."),
        card: Path = typer.Option(Path("data_cards/pretraining-corpus.md"), help="Where to write the datasheet."),
        install: bool = typer.Option(True, help="apt-get the Debian speech packages that are missing."),
        workers: int = typer.Option(2, help="Parallel decoder / synthesiser processes."),
        seed: int = typer.Option(0),
    ) -> None:
        """Install the Debian speech packages, decode to 16 kHz, add espeak-ng speech, write the manifest."""
        from biomarker.pretrain.corpus import CorpusConfig, build_corpus

        summary = build_corpus(CorpusConfig(
            out_dir=str(out), synthetic_minutes=synthetic_minutes,
            held_out_synthetic_minutes=held_out_synthetic_minutes,
            max_real_minutes_per_source=max_real_minutes_per_source or None, segment_s=segment_s,
            card_path=str(card), install=install, workers=workers, seed=seed,
        ), log=typer.echo)
        typer.echo(f"{summary['hours_total']} h ({summary['hours_real']} h real, {summary['hours_synthetic']} h "
                   f"synthetic; {summary['hours_held_out']} h held out) → {out / 'manifest.csv'}")

    app.add_typer(corpus_app, name="corpus")
