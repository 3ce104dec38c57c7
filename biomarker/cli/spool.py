"""CLI command: `biomarker spool flush` — store the results kept while the database was unreachable.

The app flushes on its next page visit; this is the same `Store.flush_spool`, for a server whose app is not
running or for an operator who wants to see the outcome. Refused files (bad signature, insane values) are moved
to `spool/rejected/` and named; the exit code is 1 while results still wait or were refused.
"""

from __future__ import annotations

import typer

spool_app = typer.Typer(help="Results kept while the database was unreachable.", no_args_is_help=True)


@spool_app.command("flush")
def flush() -> None:
    """Write every spooled result to the configured database (oldest first), then say what happened."""
    from biomarker.settings import Settings
    from biomarker.store import Store

    store = Store(Settings.from_env(), migrate=False)
    try:
        report = store.flush_spool()
    finally:
        store.close()
    typer.echo(f"written {report.written}, already present {report.already_present}, still waiting "
               f"{report.remaining}, refused {len(report.unreadable)}")
    for problem in report.unreadable:
        typer.echo(f"refused: {problem}", err=True)
    if report.remaining or report.unreadable:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(spool_app, name="spool")
