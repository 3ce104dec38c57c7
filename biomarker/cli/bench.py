"""`biomarker bench ...`: speed and memory measured side by side, printed as ratios. Tests never time.

Each subcommand calls `biomarker.bench.<name>.main(...)`, which prints a table (or JSON) and returns a dict.
"""

from __future__ import annotations

import typer

bench_app = typer.Typer(help="Benchmarks: speed and memory ratios measured side by side in one run.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
