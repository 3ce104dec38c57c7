"""CLI command: `biomarker export fhir` — results or the audit trail of a period as an HL7 FHIR R4 Bundle.

`biomarker audit export --format csv|json` stays the store's own shape; this is the form a hospital's systems
take in. The Bundle is written (or pushed with `--post`) only after it parsed back through `fhir.resources`, so
what leaves is what validates. The export is audited by the store like every other. The model catalog is imported
inside the command (`biomarker.models` pulls torch in with its package, and `--help` should not pay for that).
"""

from __future__ import annotations

from pathlib import Path

import typer

from biomarker.cli.audit import _utc

export_app = typer.Typer(help="Export results or audit events in a hospital's formats.", no_args_is_help=True)


@export_app.command("fhir")
def fhir(
    since: str = typer.Option(None, "--since", help="Start of the period (inclusive), ISO date/time, UTC."),
    until: str = typer.Option(None, "--until", help="End of the period (exclusive), ISO date/time, UTC."),
    table: str = typer.Option("results", "--table", help="results | audit_events"),
    out: Path = typer.Option(None, "--out", help="Write the Bundle here (default: standard output, unless --post)."),
    transaction: bool = typer.Option(False, "--transaction",
                                     help="A transaction Bundle (each entry with its request) instead of a collection."),
    post: str = typer.Option(None, "--post", help="POST the transaction Bundle to this FHIR base URL."),
    timeout_s: float = typer.Option(30.0, "--timeout-s", help="Seconds to wait for the server, per try."),
    retries: int = typer.Option(3, "--retries", help="Tries after the first on no answer, 429 or 5xx."),
    language: str = typer.Option("pt_BR", "--language", help="Language of the PDF and the conclusion: pt_BR | en."),
    zone: str = typer.Option("America/Sao_Paulo", "--zone",  # = biomarker.report.DEFAULT_ZONE, kept lazy
                             help="IANA time zone of the times the PDF shows."),
    pdf: bool = typer.Option(True, "--pdf/--no-pdf", help="Put each result's chart PDF in its DiagnosticReport."),
) -> None:
    """Export results (Observation, DiagnosticReport with the PDF, AI Device, Provenance) or audit events
    (AuditEvent, IHE BALP) of a period as a FHIR R4 Bundle; the export is recorded in the audit trail."""
    from biomarker.fhir import FhirPostError, export_bundle, parse_bundle, post_bundle, to_json
    from biomarker.records import BiomarkerError
    from biomarker.settings import Settings
    from biomarker.store import Store, UserInfo

    catalog = None
    if table == "results":
        from biomarker.models.catalog import Catalog

        catalog = Catalog()
    start, end = _utc(since, "--since"), _utc(until, "--until")
    store = Store(Settings.from_env())
    try:
        made = export_bundle(store, start, end, viewer=UserInfo.local_operator(), table=table, catalog=catalog,
                             transaction=transaction or post is not None, language=language, zone=zone, pdf=pdf,
                             post_to=post)
    except BiomarkerError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    finally:
        store.close()
    text = to_json(made.bundle)
    checked = parse_bundle(text)  # the round trip: what is written is what the library reads back
    summary = f"Bundle {checked.type}, {len(checked.entry or [])} entries from {made.rows} {table} rows"
    if out is not None:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}: {summary}", err=True)
    elif post is None:
        typer.echo(text)
    if post is not None:
        try:
            result = post_bundle(checked, post, timeout_s=timeout_s, retries=retries)
        except FhirPostError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"posted to {post}: {summary}; the server answered {len(result.response.entry or [])} entries "
                   f"({result.response.type}) at try {result.attempts}", err=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(export_app, name="export")
