"""CLI commands: `biomarker models list|show|promote` over the model catalog (shipped and user versions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from biomarker.cli.model_audit import audit_model_change

models_app = typer.Typer(
    help="Model versions: list, show (card, metrics, sha256), promote a default, replay a bundle's forgetting table.",
    no_args_is_help=True,
)


def _catalog(user_root: Optional[Path], shipped_root: Optional[Path]):
    from biomarker.models.catalog import Catalog, default_shipped_root, default_user_root

    return Catalog(user_root=user_root or default_user_root(), shipped_root=shipped_root or default_shipped_root())


_USER_ROOT = typer.Option(None, "--user-root", help="User models folder (default $BIOMARKER_HOME/models).")
_SHIPPED_ROOT = typer.Option(None, "--shipped-root", help="Shipped models folder (default the repo's pretrained/).")


def _fail(error: Exception) -> None:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(code=1)


@models_app.command("list")
def list_versions(
    name: Optional[str] = typer.Argument(None, help="Only this model name."),
    as_json: bool = typer.Option(False, "--json", help="One JSON array instead of a table."),
    user_root: Optional[Path] = _USER_ROOT,
    shipped_root: Optional[Path] = _SHIPPED_ROOT,
) -> None:
    """Every version: name@version, default mark, source, parent, cohorts, AUROC if recorded, sha256 prefix."""
    from biomarker.records import BiomarkerError

    try:
        versions = _catalog(user_root, shipped_root).versions(name)
    except BiomarkerError as error:
        _fail(error)
    if as_json:
        typer.echo(json.dumps([v.as_dict() for v in versions], indent=2))
        return
    if not versions:
        typer.echo("no model versions found")
        return
    header = f"{'':1} {'model':32} {'source':8} {'parent':28} {'cohorts':28} {'auroc':6} sha256"
    typer.echo(header)
    for v in versions:
        auroc = v.metrics.get("auroc")
        typer.echo(
            f"{'*' if v.is_default else ' ':1} {v.ref:32} {v.source:8} {(v.parent or '-'):28} "
            f"{(','.join(v.cohorts) or '-'):28} {(f'{auroc:.3f}' if isinstance(auroc, (int, float)) else '-'):6} "
            f"{(v.sha256 or 'missing')[:12]}"
        )
    typer.echo("* = default version for its name (change with `biomarker models promote NAME@VERSION`)")


@models_app.command("show")
def show(
    ref: str = typer.Argument(..., help="NAME (its default version) or NAME@VERSION."),
    as_json: bool = typer.Option(False, "--json", help="JSON instead of text + card."),
    user_root: Optional[Path] = _USER_ROOT,
    shipped_root: Optional[Path] = _SHIPPED_ROOT,
) -> None:
    """One version in full: provenance, metrics, sha256 check against the card, then the card itself."""
    from biomarker.records import BiomarkerError

    try:
        version = _catalog(user_root, shipped_root).get(ref)
    except BiomarkerError as error:
        _fail(error)
    if as_json:
        typer.echo(json.dumps(version.as_dict(), indent=2))
        return
    for key, value in version.as_dict().items():
        typer.echo(f"{key:12} {json.dumps(value) if isinstance(value, (dict, list)) else value}")
    if version.card_path is not None:
        typer.echo("")
        typer.echo(version.card_path.read_text(encoding="utf-8"))
    else:
        typer.echo("card         MISSING: every model version should have a card.md")


@models_app.command("promote")
def promote(
    ref: str = typer.Argument(..., help="NAME@VERSION to become the default for NAME."),
    user_root: Optional[Path] = _USER_ROOT,
    shipped_root: Optional[Path] = _SHIPPED_ROOT,
) -> None:
    """Make one exact version the default for its name. Nothing is copied or overwritten."""
    from biomarker.records import BiomarkerError

    try:
        version = _catalog(user_root, shipped_root).promote(ref)
    except BiomarkerError as error:
        _fail(error)
    typer.echo(f"{version.ref} is now the default for {version.name} (sha256 {version.sha256})")
    audit_model_change("model_promoted", version.ref, {"sha256": version.sha256})


@models_app.command("forgetting")
def forgetting(
    ref: str = typer.Argument(..., help="Bundle version NAME@VERSION (or NAME: its default) whose history to replay."),
    cohort_manifests: list[str] = typer.Option(
        ..., "--cohort", help="NAME=MANIFEST for every cohort of the bundle (its test rows are scored); repeatable."
    ),
    out: Path = typer.Option(Path("runs/forgetting"), "--out", help="Folder for forgetting.md, .json and .png."),
    user_root: Optional[Path] = _USER_ROOT,
    shipped_root: Optional[Path] = _SHIPPED_ROOT,
) -> None:
    """After each version in a bundle's history: AUROC per cohort with CIs, backward transfer, trainable %."""
    from biomarker.finetune.continual import evaluate_bundle
    from biomarker.records import BiomarkerError

    manifests = {}
    for entry in cohort_manifests:
        name, sep, manifest = entry.partition("=")
        if not sep or not name or not manifest:
            raise typer.BadParameter(f"--cohort {entry!r}: expected NAME=MANIFEST")
        manifests[name] = manifest
    try:
        report = evaluate_bundle(ref, manifests, out, catalog=_catalog(user_root, shipped_root))
    except BiomarkerError as error:
        _fail(error)
    typer.echo(report.to_markdown())
    typer.echo(f"written: {out / 'forgetting.md'}, {out / 'forgetting.json'}, {out / 'forgetting.png'}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(models_app, name="models")
