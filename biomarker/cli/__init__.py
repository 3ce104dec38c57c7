"""The `biomarker` command: thin commands over the library (the app calls the same functions).

Each module in this package owns one group of commands and exposes `register(app)`. Command bodies import
the library lazily, so `biomarker audit export` or `--help` never loads torch.

Imports: the library's rule is imports at the top of a module (a reader sees a room's real dependencies; a lazy
import is for a heavy optional dependency only and says so). `cli/` is the one exception, for start-up time:
every command module is imported to build `--help`, so a command's own dependencies (torch, the store, numpy)
are imported inside its body, and a command that does not need torch never pays for it (a test checks).
"""

from __future__ import annotations

import importlib

import typer

from biomarker import __version__

# One entry per command module; each defines `register(app: typer.Typer) -> None`.
COMMAND_MODULES = (
    "bench",  # biomarker bench features|scan|encoders|scoring
    "features",  # feature statistics for normalisation
    "score",  # biomarker score INPUT... [--log]
    "corpus",  # pretraining corpus
    "pretrain",
    "cohort",  # cohort synth / import / splits
    "independent",  # cohort independent: evaluation sets from a second marker implementation (never trained on)
    "finetune",
    "evaluate",  # evaluate a manifest; compare two measured runs
    "calibrate",  # biomarker calibrate --manifest site.csv --model NAME: site recalibration as a new version
    "models",  # list | show | promote (acceptance-gated) | reference
    "monitor",  # biomarker monitor --since --until [--site]: drift against the validation reference
    "users",
    "audit",
    "export",  # biomarker export fhir: results or the audit trail as an HL7 FHIR R4 Bundle (--post to a server)
    "spool",  # biomarker spool flush: store results kept while the database was down
    "report",  # biomarker report RESULT_ID --out report.pdf (the chart's PDF)
    "serve",  # start the Streamlit app
)

app = typer.Typer(
    name="biomarker",
    help="Speech-biomarker screener for respiratory insufficiency: score, train, evaluate, audit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"biomarker {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Speech-biomarker screener for respiratory insufficiency."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"biomarker.cli.{_name}").register(app)


def main() -> None:
    app()
