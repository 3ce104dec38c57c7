"""CLI commands: `biomarker evaluate --manifest M.csv [--model NAME_OR_DIR] [--out DIR]`, over a bundle:
`biomarker evaluate --bundle NAME@VERSION --cohort-manifest NAME=M.csv ...` (every cohort: the forgetting table;
some: those cohorts with the version and its parent), and
`biomarker compare RUN_A RUN_B` (paired AUROC differences of two measured runs).

Scores every row through the screener (the one inference path, quality gate included), then writes
metrics.json (auroc, auroc_ci, sensitivity, specificity, threshold, ece, n, ...), plots and report.md.
With a bundle, each manifest cohort is scored with the bundle cohort of the same name when it has one.
"""

from __future__ import annotations

from pathlib import Path

import typer

from biomarker.records import DEFAULT_MODEL


def evaluate(
    manifest: Path = typer.Option(None, "--manifest", help="Cohort manifest CSV (path,label,speaker_id,cohort[,split])."),
    bundle: str = typer.Option(None, "--bundle", help="A bundle version NAME@VERSION: measure the cohorts given by "
                               "--cohort-manifest (all of them: replay its history stage by stage)."),
    cohort_manifests: list[str] = typer.Option([], "--cohort-manifest", help="With --bundle: NAME=MANIFEST per cohort."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="Shipped model name or bundle directory."),
    out: Path = typer.Option(Path("runs/evaluate"), "--out", help="Folder for metrics.json, report.md and PNGs."),
    split: str = typer.Option("test", "--split", help="Evaluate rows of this split ('all' for every row)."),
    cohort: str = typer.Option(None, "--cohort", help="Bundle cohort to use for every row (default: matched by name)."),
    prevalence: float = typer.Option(0.10, "--prevalence", help="Prevalence at which PPV/NPV are stated."),
    synthetic: bool = typer.Option(True, "--synthetic/--real-labels", help="Label plots and report as SYNTHETIC data."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
) -> None:
    """Measure a screening model on a labelled manifest (subject-level metrics with bootstrap CIs, and by subgroup
    wherever the manifest has the column); with --bundle, the cohorts named by --cohort-manifest (every cohort of
    the bundle: AUROC per cohort after each stage, backward transfer and trainable %, forgetting.md/.json/.png)."""
    from biomarker.evaluate.report import ReportConfig

    config = ReportConfig(prevalence=prevalence, synthetic=synthetic)
    if bundle is not None:
        return _evaluate_bundle(bundle, cohort_manifests, out, split, config, device)
    if manifest is None:
        raise typer.BadParameter("give --manifest M.csv (or --bundle NAME@VERSION with --cohort-manifest NAME=M.csv)")
    from biomarker.screener import Screener

    screener = Screener.load(model, device=device)
    _measure(screener, _rows(manifest, split), out, f"{screener.model_label} on {manifest.name} ({split})", config,
             cohort=cohort)


def _rows(manifest: Path, split: str) -> list:
    """The manifest's rows of `split` (every row for 'all', or when the manifest has no split column)."""
    from biomarker.cohorts.manifest import read_manifest

    items = read_manifest(manifest)
    if split != "all" and any(item.split for item in items):
        items = [item for item in items if item.split == split]
        if not items:
            raise typer.BadParameter(f"{manifest} has no rows in split {split!r}")
    return items


def _measure(screener, items: list, out: Path, title: str, config, *, cohort: str | None = None) -> dict:
    """Score `items`, write the report to `out`, print one line per set and the subgroup gaps."""
    from biomarker.evaluate.manifest import evaluate_scored
    from biomarker.evaluate.scoring import score_items

    scored = score_items(screener, items, cohort=cohort)
    report = evaluate_scored(items, scored.probabilities, scored.problems, scored.thresholds, out, title=title,
                             config=config, model_label=screener.model_label, poolings=scored.poolings)
    for name, metrics in report["sets"].items():
        low, high = metrics["auroc_ci"]
        typer.echo(f"{name}: AUROC {metrics['auroc']:.3f} [{low:.3f}, {high:.3f}] n={metrics['n']} "
                   f"sens {metrics['sensitivity']:.3f} spec {metrics['specificity']:.3f}")
        for kind, block in metrics.get("subgroups", {}).items():
            gaps = ", ".join(f"{metric} {gap['gap']:.3f} ({gap['best']} > {gap['worst']})"
                             for metric, gap in block["gaps"].items())
            typer.echo(f"  by {kind} ({len(block['groups'])} groups): {gaps or 'no gap: fewer than two groups large enough'}")
    for name, rate in report["flag_rates"].items():
        typer.echo(f"{name}: {rate['flagged']:.1%} of {rate['n']} flagged (label {rate['label']})")
    typer.echo(f"{report['n_rejected']} row(s) rejected; wrote {out / 'metrics.json'}")
    return report


def _evaluate_bundle(ref: str, entries: list[str], out: Path, split: str, config, device: str) -> None:
    """Every cohort of the bundle given: the stage-by-stage replay (`models forgetting`). Fewer (e.g. only the
    cohort just added, without the shipped training data): each given cohort measured with this version and with
    its parent, so the before/after on that cohort needs nothing else."""
    from biomarker.cli.models import forgetting, parse_cohort_manifests
    from biomarker.models.catalog import Catalog
    from biomarker.records import BiomarkerError
    from biomarker.screener import Screener

    manifests = parse_cohort_manifests(entries, "--cohort-manifest")
    if not manifests:
        raise typer.BadParameter(f"--bundle {ref} needs at least one --cohort-manifest NAME=M.csv")
    try:
        catalog = Catalog()
        version = catalog.get(ref)
        unknown = sorted(set(manifests) - set(version.cohorts))
        if unknown:
            raise typer.BadParameter(f"{version.ref} has no cohort(s) {unknown}; its cohorts: {list(version.cohorts)}")
        if set(version.cohorts) <= set(manifests):
            return forgetting(ref, entries, out, user_root=None, shipped_root=None, flag="--cohort-manifest")
        for name, manifest in manifests.items():
            items = _rows(Path(manifest), split)
            for label, model_ref in (("this version", version.ref), ("parent", version.parent)):
                if model_ref is None:
                    continue
                screener = Screener.load(model_ref, device=device)
                used = name if name in screener.model.cohorts else None
                typer.echo(f"{name} with {screener.model_label} ({label}, bundle cohort {used or screener.model.default_cohort}):")
                _measure(screener, items, out / f"{name}-{screener.model_label}",
                         f"{screener.model_label} on {Path(manifest).name} ({split})", config, cohort=used)
    except BiomarkerError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1)


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
