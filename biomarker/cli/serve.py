"""`biomarker serve`: the clinical app on this machine, with the shipped model and the configured database.

On a fresh database it creates the `admin` account and prints its one-time password, so the README's first
command takes a new user straight to screening. The database defaults to SQLite in `BIOMARKER_HOME`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from biomarker.records import DEFAULT_MODEL

# The Streamlit app lives beside the package in the repository (`app/`), not inside it.
APP_MAIN = Path(__file__).resolve().parents[2] / "app" / "Home.py"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""

    @app.command("serve")
    def serve(
        model: str = typer.Option(DEFAULT_MODEL, "--model", help="Shipped model name or a ScreeningModel directory."),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
        port: int = typer.Option(8501, "--port", help="HTTP port of the app."),
        address: str = typer.Option("localhost", "--address", help="Interface to listen on (0.0.0.0 in a container)."),
        threads: int = typer.Option(1, "--threads", min=1, help="torch threads for scoring on CPU (1 was fastest "
                                    "on a busy machine; see docs/app.md)."),
    ) -> None:
        """Start the Streamlit screening app (SQLite by default; DATABASE_URL for PostgreSQL)."""
        import os
        import sys

        from biomarker.audio import AudioConfig
        from biomarker.records import BiomarkerError
        from biomarker.screener import resolve_model_dir
        from biomarker.settings import Settings
        from biomarker.store import Store

        if not APP_MAIN.is_file():
            typer.echo(f"error: the app is not at {APP_MAIN}; run from a checkout of the repository", err=True)
            raise typer.Exit(2)
        try:
            model_dir = resolve_model_dir(model)  # fail here, not on the first visitor's page
            settings = Settings.from_env()
        except BiomarkerError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2)
        store = Store(settings)
        password = store.create_first_admin()
        store.close()
        if password is not None:
            typer.echo(f"Created the first account. User: admin  One-time password: {password}")
            typer.echo("Write it down now (it is not shown again); add clinicians on the app's Users page.")
        typer.echo(f"Data folder: {settings.home}   Model: {model_dir}")
        env = {**os.environ, "BIOMARKER_MODEL": str(model_dir.resolve()), "BIOMARKER_DEVICE": device,
               "BIOMARKER_CPU_THREADS": str(threads)}
        command = [
            sys.executable, "-m", "streamlit", "run", str(APP_MAIN),
            f"--server.port={port}", f"--server.address={address}", "--server.headless=true",
            "--browser.gatherUsageStats=false", "--server.fileWatcherType=none", "--client.toolbarMode=viewer",
            # the upload widget states the same cap the audio intake enforces (AudioConfig.max_file_bytes)
            f"--server.maxUploadSize={AudioConfig().max_file_bytes // 1_000_000}",
        ]
        os.execvpe(command[0], command, env)
