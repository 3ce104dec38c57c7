"""CLI commands: `biomarker models list|show|promote|reference|forgetting` over the model catalog (shipped and user
versions). Importing this module loads no torch: `governance.acceptance` and `governance.reference` score lazily."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from biomarker.cli.model_audit import audit_model_change
from biomarker.governance.acceptance import PLAN_FILE
from biomarker.governance.reference import REFERENCE_FILE

models_app = typer.Typer(
    help="Model versions: list, show (card header, metrics, sha256), promote a default through the acceptance plan, "
         "write a drift reference, replay a bundle's forgetting table.",
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
    """One version in full: provenance, metrics, sha256 check against the card, the card's machine-readable header
    (license, intended use, training data, metrics per set), then the card itself."""
    from biomarker.governance.cards import CardError, read_card, summary
    from biomarker.records import BiomarkerError

    try:
        version = _catalog(user_root, shipped_root).get(ref)
    except BiomarkerError as error:
        _fail(error)
    card, header_problem = None, None
    if version.card_path is not None:
        try:
            card = read_card(version.card_path)
        except CardError as error:
            header_problem = str(error)
    if as_json:
        typer.echo(json.dumps({**version.as_dict(), "card_header": card.header if card else None}, indent=2, default=str))
        return
    for key, value in version.as_dict().items():
        typer.echo(f"{key:12} {json.dumps(value) if isinstance(value, (dict, list)) else value}")
    if version.card_path is None:
        typer.echo("card         MISSING: every model version should have a card.md")
        return
    if card is None:
        typer.echo(f"header       MISSING: {header_problem}")
        typer.echo("")
        typer.echo(version.card_path.read_text(encoding="utf-8"))
        return
    for line in summary(card):
        typer.echo(line)
    typer.echo("")
    typer.echo(card.body)


@models_app.command("promote")
def promote(
    ref: str = typer.Argument(..., help="NAME@VERSION to become the default for NAME."),
    plan: Optional[Path] = typer.Option(None, "--plan", help=f"Acceptance plan (default: {PLAN_FILE} in the user root, else pretrained/)."),
    data_root: Path = typer.Option(Path("."), "--data-root", help="Folder the plan's relative manifest paths start from."),
    override: bool = typer.Option(False, "--override", help="Admin only: promote although the plan fails (needs --reason)."),
    reason: Optional[str] = typer.Option(None, "--reason", help="Why the plan is set aside (goes into the audit event)."),
    check: bool = typer.Option(False, "--check", help="Evaluate and record the table for the model page; promote nothing."),
    out: Path = typer.Option(Path("runs/acceptance"), "--out", help="Folder for each locked set's evaluation reports."),
    device: str = typer.Option("cpu", "--device", help="auto | cpu | cuda"),
    user_root: Optional[Path] = _USER_ROOT,
    shipped_root: Optional[Path] = _SHIPPED_ROOT,
) -> None:
    """Evaluate NAME@VERSION on the plan's locked sets beside the current default, print the table, then promote
    it or refuse naming the failing rows (exit 1). The decision, the plan's sha256 and the table are audited."""
    from biomarker.governance.acceptance import (AcceptanceError, decide, evaluate_candidate, find_plan, load_plan,
                                                  no_plan_report)
    from biomarker.models.catalog import parse_ref
    from biomarker.records import BiomarkerError
    from biomarker.store import UserInfo

    if override != (reason is not None):
        raise typer.BadParameter("--override and --reason go together: say why the plan is set aside")
    catalog = _catalog(user_root, shipped_root)
    try:
        name, version = parse_ref(ref)
        if version is None:
            raise AcceptanceError(f"promote needs an exact version, e.g. {name}@2 (got {ref!r})")
        candidate, default = catalog.get(ref), catalog.get(name)
        try:
            plan_path = plan or find_plan(catalog.user_root, catalog.shipped_root)
        except AcceptanceError as missing:
            report = no_plan_report(candidate, default, str(missing))
        else:
            report = evaluate_candidate(load_plan(plan_path), candidate, default, data_root=data_root,
                                        out_dir=out / candidate.ref, device=device)
        typer.echo(report.to_markdown())
        decision = decide(report, catalog=catalog, actor=UserInfo.local_operator(),
                          audit=lambda action, target, payload: audit_model_change(action, target, payload, required=True),
                          override_reason=reason if override else None, check_only=check)
    except BiomarkerError as error:
        _fail(error)
    typer.echo(f"record: {decision.record_path}")
    if decision.outcome == "refused":
        typer.echo(f"refused: {candidate.ref} fails {len(report.failing)} row(s):", err=True)
        for row in report.failing:
            typer.echo(f"  {row.set}: {row.criterion} (required {row.required}; measured "
                       f"{'–' if row.candidate is None else f'{row.candidate:.3f}'}) {row.note}", err=True)
        raise typer.Exit(code=1)
    if decision.outcome == "checked":
        typer.echo(f"checked only: {candidate.ref} {'passes' if report.passed else 'FAILS'} the plan; nothing promoted")
        return
    typer.echo(f"{candidate.ref} is now the default for {candidate.name}"
               + (" (OVERRIDE of a failing plan, audited with the reason)" if decision.outcome == "overridden" else ""))


@models_app.command("reference")
def reference(
    ref: str = typer.Argument(..., help="NAME@VERSION (or NAME: its default) whose validation reference to write."),
    manifest: Path = typer.Option(..., "--manifest", help="The manifest whose validation rows the threshold was fitted on."),
    split: str = typer.Option("val", "--split", help="Rows of this split ('all' for every row)."),
    out: Optional[Path] = typer.Option(None, "--out", help=f"Where to write it (default: {REFERENCE_FILE} in the version's folder)."),
    cohort: Optional[str] = typer.Option(None, "--cohort", help="Bundle cohort to score with (default: matched by name)."),
    device: str = typer.Option("cpu", "--device", help="auto | cpu | cuda"),
    user_root: Optional[Path] = _USER_ROOT,
    shipped_root: Optional[Path] = _SHIPPED_ROOT,
) -> None:
    """Score the validation rows and store what `biomarker monitor` compares a site's weeks with: score, SNR and
    duration distributions, the referral rate and the quality gate's refusals."""
    from biomarker.governance.reference import build_reference
    from biomarker.records import BiomarkerError

    try:
        version = _catalog(user_root, shipped_root).get(ref)
        target = out or version.path / REFERENCE_FILE
        built = build_reference(version, manifest, target, split=split, cohort=cohort, device=device)
    except BiomarkerError as error:
        _fail(error)
    typer.echo(f"wrote {target}: {built.n} recordings scored, {sum(built.refusals.values())} refused, "
               f"referral rate {built.referral_rate:.3f}")


def parse_cohort_manifests(entries: list[str], flag: str) -> dict[str, str]:
    """NAME=MANIFEST entries of a repeatable option (`flag` names it in the error)."""
    manifests = {}
    for entry in entries:
        name, sep, manifest = entry.partition("=")
        if not sep or not name or not manifest:
            raise typer.BadParameter(f"{flag} {entry!r}: expected NAME=MANIFEST")
        manifests[name] = manifest
    return manifests


@models_app.command("forgetting")
def forgetting(
    ref: str = typer.Argument(..., help="Bundle version NAME@VERSION (or NAME: its default) whose history to replay."),
    cohort_manifests: list[str] = typer.Option(
        ..., "--cohort", help="NAME=MANIFEST for every cohort of the bundle (its test rows are scored); repeatable."
    ),
    out: Path = typer.Option(Path("runs/forgetting"), "--out", help="Folder for forgetting.md, .json and .png."),
    user_root: Optional[Path] = _USER_ROOT,
    shipped_root: Optional[Path] = _SHIPPED_ROOT,
    flag: str = typer.Option("--cohort", hidden=True, help="The option name errors mention (evaluate --bundle: --cohort-manifest)."),
) -> None:
    """After each version in a bundle's history: AUROC per cohort with CIs, backward transfer, trainable %."""
    from biomarker.finetune.continual import evaluate_bundle
    from biomarker.records import BiomarkerError

    manifests = parse_cohort_manifests(cohort_manifests, flag)
    try:
        report = evaluate_bundle(ref, manifests, out, catalog=_catalog(user_root, shipped_root))
    except BiomarkerError as error:
        _fail(error)
    typer.echo(report.to_markdown())
    typer.echo(f"written: {out / 'forgetting.md'}, {out / 'forgetting.json'}, {out / 'forgetting.png'}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(models_app, name="models")
