"""`biomarker features stats`: measure the normalisation mean/std of a feature extractor over a corpus."""

from __future__ import annotations

from pathlib import Path

import typer

features_app = typer.Typer(help="Feature front-end: normalisation statistics over a corpus.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(features_app, name="features")


def _expand(inputs: list[Path]) -> list[Path]:
    """Files as given; folders become their audio files (recursively, sorted, so runs are reproducible)."""
    from biomarker.audio import AUDIO_SUFFIXES

    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            files += sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
        elif item.is_file():
            files.append(item)
        else:
            raise typer.BadParameter(f"{item}: no such file or folder")
    return files


@features_app.command("stats")
def stats(
    inputs: list[Path] = typer.Argument(None, help="Audio files and/or folders (searched recursively)."),
    manifest: Path | None = typer.Option(None, "--manifest", help="A cohort manifest CSV; its `path` column is used."),
    extractor: str = typer.Option("fbank", "--extractor", help="Registered extractor name."),
    out: Path = typer.Option(..., "--out", help="JSON file to write (norm_mean, norm_std, counts)."),
) -> None:
    """Compute (mean, std) of the extractor's raw features over every frame, and write them to JSON.

    Use them with `get_extractor(name, **biomarker.features.normalization.load_stats(out))`.
    """
    from biomarker.features.normalization import compute_stats

    files = _expand(list(inputs or []))
    if manifest is not None:
        from biomarker.cohorts.manifest import read_manifest

        files += [item.path for item in read_manifest(manifest)]
    if not files:
        raise typer.BadParameter("give audio files, folders or --manifest")
    result = compute_stats(files, extractor)
    result.save(out)
    typer.echo(
        f"{extractor}: mean {result.norm_mean:.6f}, std {result.norm_std:.6f} over {result.num_frames} frames "
        f"of {result.num_clips} clips -> {out}"
    )
