"""CLI commands: `biomarker evaluate --manifest M.csv [--model NAME_OR_DIR] [--out DIR]`, over a bundle's
history: `biomarker evaluate --bundle NAME@VERSION --cohort-manifest NAME=M.csv ...` (the forgetting table), and
`biomarker compare RUN_A RUN_B` (paired AUROC differences of two measured runs).

Scores every row through the screener (the one inference path, quality gate included), then writes
metrics.json (auroc, auroc_ci, sensitivity, specificity, threshold, ece, n, ...), plots and report.md.
With a bundle, each manifest cohort is scored with the bundle cohort of the same name when it has one.
"""

from __future__ import annotations

from pathlib import Path

import typer


def evaluate(
    manifest: Path = typer.Option(None, "--manifest", help="Cohort manifest CSV (path,label,speaker_id,cohort[,split])."),
    bundle: str = typer.Option(None, "--bundle", help="Replay this bundle version's history stage by stage instead."),
    cohort_manifests: list[str] = typer.Option([], "--cohort-manifest", help="With --bundle: NAME=MANIFEST per cohort."),
    model: str = typer.Option("ri-screener", "--model", help="Shipped model name or bundle directory."),
    out: Path = typer.Option(Path("runs/evaluate"), "--out", help="Folder for metrics.json, report.md and PNGs."),
    split: str = typer.Option("test", "--split", help="Evaluate rows of this split ('all' for every row)."),
    cohort: str = typer.Option(None, "--cohort", help="Bundle cohort to use for every row (default: matched by name)."),
    prevalence: float = typer.Option(0.10, "--prevalence", help="Prevalence at which PPV/NPV are stated."),
    synthetic: bool = typer.Option(True, "--synthetic/--real-labels", help="Label plots and report as SYNTHETIC data."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
) -> None:
    """Measure a screening model on a labelled manifest (subject-level metrics with bootstrap CIs); with --bundle,
    AUROC per cohort with CIs after each stage, backward transfer and trainable % (forgetting.md/.json/.png)."""
    if bundle is not None:
        from biomarker.cli.models import forgetting

        return forgetting(bundle, cohort_manifests, out, user_root=None, shipped_root=None)
    if manifest is None:
        raise typer.BadParameter("give --manifest M.csv (or --bundle REF with --cohort-manifest NAME=M.csv)")
    from biomarker.cohorts.manifest import read_manifest
    from biomarker.evaluate.calibration import SubjectPooling
    from biomarker.evaluate.manifest import evaluate_scored
    from biomarker.evaluate.report import ReportConfig
    from biomarker.records import AudioError
    from biomarker.screener import Screener

    items = read_manifest(manifest)
    if split != "all" and any(item.split for item in items):
        items = [item for item in items if item.split == split]
        if not items:
            raise typer.BadParameter(f"{manifest} has no rows in split {split!r}")
    screener = Screener.load(model, device=device)
    known = set(screener.model.cohorts)
    probabilities: list[float | None] = [None] * len(items)
    problems: list[str | None] = [None] * len(items)
    thresholds: dict[str, float] = {}
    poolings: dict[str, SubjectPooling] = {}
    for manifest_cohort in sorted({item.cohort for item in items}):
        chosen = cohort or (manifest_cohort if manifest_cohort in known else None)
        rows = [k for k, item in enumerate(items) if item.cohort == manifest_cohort]
        spec = screener.model.cohort_spec(chosen)
        thresholds[manifest_cohort] = float(spec.threshold)
        poolings[manifest_cohort] = SubjectPooling.of(spec)
        results = screener.score_many([items[k].path for k in rows], cohort=chosen)
        for k, result in zip(rows, results):
            if isinstance(result, AudioError):
                problems[k] = result.problem
            else:
                probabilities[k] = result.probability
    report = evaluate_scored(
        items, probabilities, problems, thresholds, out,
        title=f"{screener.model_label} on {manifest.name} ({split})",
        config=ReportConfig(prevalence=prevalence, synthetic=synthetic),
        model_label=screener.model_label, poolings=poolings,
    )
    for name, metrics in report["sets"].items():
        low, high = metrics["auroc_ci"]
        typer.echo(f"{name}: AUROC {metrics['auroc']:.3f} [{low:.3f}, {high:.3f}] n={metrics['n']} "
                   f"sens {metrics['sensitivity']:.3f} spec {metrics['specificity']:.3f}")
    for name, rate in report["flag_rates"].items():
        typer.echo(f"{name}: {rate['flagged']:.1%} of {rate['n']} flagged (label {rate['label']})")
    typer.echo(f"{report['n_rejected']} row(s) rejected; wrote {out / 'metrics.json'}")


def compare(
    run_a: Path = typer.Argument(..., help="A measured run: finetune run, baseline or evaluation folder."),
    run_b: Path = typer.Argument(..., help="The run to compare it with, measured on the same subjects."),
    out: Path = typer.Option(None, "--out", help="Also write the table here (Markdown) and its numbers beside it (.json)."),
    resamples: int = typer.Option(2000, "--resamples", help="Paired bootstrap resamples of subjects."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """AUROC of RUN_A minus RUN_B on every set both measured, with a paired bootstrap 95% CI over subjects and
    the share of resamples in which RUN_A is not better (does A beat B, or only tie?)."""
    import json
    from dataclasses import asdict

    from biomarker.evaluate.compare import compare_runs, markdown

    differences = compare_runs(run_a, run_b, resamples, seed)
    table = markdown(differences, run_a.name, run_b.name)
    typer.echo(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table)
        out.with_suffix(".json").write_text(json.dumps({"a": str(run_a), "b": str(run_b), "resamples": resamples,
                                                        "sets": [asdict(d) for d in differences]}, indent=2))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("evaluate")(evaluate)
    app.command("compare")(compare)
