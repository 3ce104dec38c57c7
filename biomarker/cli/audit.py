"""CLI commands: `biomarker audit export|verify|anchor` — the auditor's paths, with no torch and no GPU stack."""

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
    if fmt == "csv":  # JSON carries the anchor in its header; a CSV has no room for it, so it goes beside
        store = Store(Settings.from_env())
        try:
            line = store.anchor_head(witness=False).to_json()
        finally:
            store.close()
        if out is not None:
            sidecar = out.with_name(out.name + ".anchor.json")
            sidecar.write_text(line + "\n", encoding="utf-8")
            typer.echo(f"wrote {sidecar} (the chain head this export was taken at)", err=True)
        else:
            typer.echo(f"anchor: {line}", err=True)


@audit_app.command("verify")
def verify(
    audio: bool = typer.Option(False, "--audio", help="Also read every stored recording and check its sha256."),
    anchor: Path = typer.Option(None, "--anchor", exists=True, dir_okay=False,
                                help="Also check another copy of the anchor: a witness's file, or a JSON export."),
) -> None:
    """Recompute the keyed audit chain, hold it against its anchor and cross-check users, recordings and scores;
    exit 1 naming the first bad row if anything was edited, deleted, inserted, moved or truncated."""
    from biomarker.settings import Settings
    from biomarker.store import Store, StoreBusyError

    store = Store(Settings.from_env())
    try:
        result = store.verify_chain(anchor_file=anchor)
        files = store.verify_audio() if audio and result.ok else None
    except StoreBusyError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(3) from None
    finally:
        store.close()
    for checked in (result, files):
        if checked is not None and not checked.ok:
            where = f"row {checked.first_bad_id} of {checked.table}" if checked.first_bad_id is not None \
                else checked.table
            typer.echo(f"audit chain BROKEN at {where}: {checked.reason}", err=True)
            raise typer.Exit(1)
    unkeyed = f"; {result.unkeyed} early rows are unkeyed (protected by the anchor only)" if result.unkeyed else ""
    anchored = f", anchored to row {result.anchored_seq}" if result.anchored_seq else ", no anchor yet"
    audio_note = f"; {files.checked} audio files match their sha256" if files is not None else ""
    typer.echo(f"audit chain intact: {result.checked} rows, head {result.head_hash}{anchored}{unkeyed}{audio_note}")


@audit_app.command("anchor")
def anchor_now() -> None:
    """Sign the chain's current head into the anchor file and hand it to BIOMARKER_AUDIT_WITNESS (if set); run it
    from a scheduler so a witness outside this server holds a recent head."""
    from biomarker.settings import Settings
    from biomarker.store import Store, StoreError

    store = Store(Settings.from_env())
    try:
        line = store.anchor_head()
    except StoreError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    finally:
        store.close()
    typer.echo(line.to_json())


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(audit_app, name="audit")
