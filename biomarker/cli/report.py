"""CLI command: `biomarker report RESULT_ID --out report.pdf` — the same PDF the app's download gives.

It reads the configured store (`Settings.from_env()`) as the local operator, so the opening is audited like a
download from the app; an id that does not exist, a wrong typed identifier or an unknown zone exits 2 and writes
no file. The model catalog is imported inside the command: `biomarker.models` pulls torch in with its package,
and `--help` should not pay for that.
"""

from __future__ import annotations

from pathlib import Path

import typer

from biomarker.atomic_files import write_atomically


def register(app: typer.Typer) -> None:
    """Add this module's command to the root app."""

    @app.command("report")
    def report(
        result_id: int = typer.Argument(..., help="The result's id (History's 'Result' column)."),
        out: Path = typer.Option(..., "--out", help="Where to write the PDF."),
        language: str = typer.Option("pt_BR", "--language", help="pt_BR | en"),
        patient_id: str = typer.Option(None, "--patient-id",
                                       help="The patient identifier as typed at the point of care; checked against "
                                            "the result. Without it the report shows the short pseudonym."),
        zone: str = typer.Option("America/Sao_Paulo", "--zone",  # = biomarker.report.DEFAULT_ZONE, kept lazy
                                 help="IANA time zone of the times shown."),
    ) -> None:
        """Write the one-page PDF report of one result, for the patient's chart."""
        from biomarker.models.catalog import Catalog
        from biomarker.records import BiomarkerError
        from biomarker.report import report_for_result
        from biomarker.settings import Settings
        from biomarker.store import Store, UserInfo

        store = Store(Settings.from_env())
        try:
            pdf = report_for_result(store, Catalog(), result_id, viewer=UserInfo.local_operator(), language=language,
                                    zone=zone, patient_label=patient_id)
        except BiomarkerError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None
        finally:
            store.close()
        write_atomically(out, pdf)
        typer.echo(f"wrote {out}", err=True)
