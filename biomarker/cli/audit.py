"""CLI commands: `biomarker audit export|verify` — the auditor's paths, with no torch and no GPU stack."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import typer

audit_app = typer.Typer(help="Export results and audit events; verify the audit hash chain.", no_args_is_help=True)


def _utc(value: str | None, option: str) -> datetime | None:
    """ISO date or date-time; one with a UTC offset is converted, one without is taken as UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO date such as 2026-01-31 or 2026-01-31T08:00",
                                 param_hint=option) from None
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


@audit_app.command("export")
def export(
    since: str = typer.Option(None, "--since", help="Start of the period (inclusive), ISO date/time, UTC."),
    until: str = typer.Option(None, "--until", help="End of the period (exclusive), ISO date/time, UTC."),
    fmt: str = typer.Option("csv", "--format", help="csv | json"),
    table: str = typer.Option("results", "--table", help="results | audit_events"),
    out: Path = typer.Option(None, "--out", help="Write here instead of standard output."),
) -> None:
    """Export results or audit events of a period; the export itself is recorded in the audit trail."""
    from biomarker.settings import Settings
    from biomarker.store import Store, StoreError, UserInfo

    start, end = _utc(since, "--since"), _utc(until, "--until")
    store = Store(Settings.from_env())
    try:
        text = store.export(start, end, fmt, viewer=UserInfo.local_operator(), table=table)
    except StoreError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    finally:
        store.close()
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}", err=True)


@audit_app.command("verify")
def verify() -> None:
    """Recompute the audit hash chain; exit 1 naming the first bad row if any row was edited, deleted or moved."""
    from biomarker.settings import Settings
    from biomarker.store import Store

    store = Store(Settings.from_env())
    try:
        result = store.verify_chain()
    finally:
        store.close()
    if not result.ok:
        typer.echo(f"audit chain BROKEN at row {result.first_bad_id} of {result.table}: {result.reason}", err=True)
        raise typer.Exit(1)
    typer.echo(f"audit chain intact: {result.checked} rows, head {result.head_hash}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(audit_app, name="audit")
