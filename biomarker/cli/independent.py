"""CLI commands: `biomarker cohort independent OUT --source real|espeak` (an independent evaluation set) and
`biomarker cohort independent-breakdown EVAL_DIR --manifest M` (sensitivity by severity band and subgroup).

The sets come from `biomarker.independent`, a second marker implementation that no training or model-selection
path imports (tests/test_independent_eval.py). Bodies import the library lazily, like every command module.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from biomarker.cli.cohort import cohort_app


def independent(
    out: Path = typer.Argument(..., help="Folder for <channel>/ clips, manifest.csv (+ manifest-<channel>.csv), summary.json."),
    source: str = typer.Option("real", "--source", help="'real': held-out real voices; 'espeak': held-out espeak-ng voices, sentences, languages."),
    seed: int = typer.Option(0, "--seed"),
    n: int = typer.Option(128, "--n", help="espeak: number of speakers (one clip each)."),
    clips_scale: float = typer.Option(1.0, "--clips-scale", help="real: multiply every source's clip count."),
    channels: str = typer.Option("wideband,telephone", "--channels", help="Comma-separated: wideband, telephone (GSM 8 kHz)."),
    root: Path = typer.Option(Path("data/realspeech"), "--root", help="real: where the Debian speech packages were extracted."),
    card: Path = typer.Option(None, "--card", help="Also write the data card here (e.g. data_cards/independent-real.md)."),
) -> None:
    """An INDEPENDENT evaluation set: held-out voices with RI markers from a second, literature-based implementation."""
    from biomarker.independent.build import IndependentSetConfig, build_independent_set
    from biomarker.independent.card import datasheet

    config = IndependentSetConfig(source=source, seed=seed, n=n, clips_scale=clips_scale, root=str(root),
                                  channels=tuple(c.strip() for c in channels.split(",") if c.strip()))
    items = build_independent_set(out, config)
    text = datasheet(config, json.loads((out / "summary.json").read_text()))
    (out / "DATASHEET.md").write_text(text)
    if card is not None:
        card.parent.mkdir(parents=True, exist_ok=True)
        card.write_text(text)
    typer.echo(f"wrote {len(items)} recordings ({sum(i.label for i in items)} with independent synthetic markers) to {out / 'manifest.csv'}")


def independent_breakdown(
    eval_dir: Path = typer.Argument(..., help="A `biomarker evaluate --out` folder (or a baseline run folder)."),
    manifest: Path = typer.Option(..., "--manifest", help="The manifest that evaluation scored."),
    out: Path = typer.Option(None, "--out", help="Write the breakdown JSON here (default: EVAL_DIR/breakdown.json)."),
) -> None:
    """Sensitivity/specificity at the model's threshold per set, by severity band and subgroup (Wilson CIs)."""
    from biomarker.independent.breakdown import breakdown

    result = breakdown(eval_dir, manifest)
    target = out or eval_dir / "breakdown.json"
    target.write_text(json.dumps(result, indent=2))
    for name, b in result["sets"].items():
        bands = ", ".join(f"{k} {v['k']}/{v['n']}" for k, v in b["sensitivity_by_band"].items())
        typer.echo(f"{name}: AUROC {b['auroc']:.3f} [{b['auroc_ci'][0]:.3f}, {b['auroc_ci'][1]:.3f}] "
                   f"sens {b['sensitivity']:.3f} spec {b['specificity']:.3f} (threshold {b['threshold']:.3f}); {bands}")
    typer.echo(f"skipped: {', '.join(result['skipped']) or 'none'}; wrote {target}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to `biomarker cohort` (the group `biomarker.cli.cohort` registers on the root)."""
    cohort_app.command("independent")(independent)
    cohort_app.command("independent-breakdown")(independent_breakdown)
