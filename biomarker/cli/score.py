"""`biomarker score INPUT...`: score audio files, folders or a manifest CSV; one CSV row per input, always.

Columns are exactly `path,probability,decision,model,quality`. A bad input still gets its row: `quality` names
the problem and `probability` is empty, so a batch never silently loses a recording. Exit status 0 means every
input got a row. The body imports the library lazily so `biomarker --help` never loads torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

SCORE_COLUMNS = ("path", "probability", "decision", "model", "quality")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".gsm", ".aiff", ".aif", ".au")


def expand_inputs(inputs: list[str]) -> list[str]:
    """Files stay as given; a folder contributes its audio files (recursively, sorted); a `.csv` file is a
    manifest whose `path` column lists recordings relative to the manifest's folder. A path that does not
    exist is kept, so it gets a row saying so instead of vanishing."""
    import csv

    from biomarker.records import CohortError

    expanded: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            expanded += sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        elif path.suffix.lower() == ".csv" and path.is_file():
            with path.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                if reader.fieldnames is None or "path" not in reader.fieldnames:
                    raise CohortError(f"{path}: a manifest needs a 'path' column; found {reader.fieldnames}")
                for row_number, row in enumerate(reader, start=2):
                    if not (row["path"] or "").strip():
                        raise CohortError(f"{path}: row {row_number} has an empty 'path'")
                    listed = Path(row["path"].strip())
                    expanded.append(str(listed if listed.is_absolute() else path.parent / listed))
        else:
            expanded.append(item)
    return expanded


def score_rows(screener, paths: list[str], *, cohort: str | None, store=None) -> list[dict]:
    """One dict per path with SCORE_COLUMNS. Without a store, readable files are scored in padded batches;
    with one, each is scored and logged through the app's own path (`screen_and_record`), one by one."""
    from biomarker.records import AudioError
    from biomarker.screener import screen_and_record

    readable = [p for p in paths if Path(p).is_file()]
    if store is None:
        results = dict(zip(readable, screener.score_many(readable, names=readable, cohort=cohort)))
    else:
        from biomarker.store import UserInfo

        actor = UserInfo.local_operator()
        results = {}
        for path in readable:
            try:
                outcome = screen_and_record(screener, store, Path(path).read_bytes(), name=path, actor=actor,
                                            cohort=cohort)
                results[path] = outcome.assessment.score
                if not outcome.record.stored:  # spooled: the row is right, but say where the result went
                    typer.echo(f"{path}: {outcome.record.message}", err=True)
            except AudioError as error:
                results[path] = error
    return [_row(path, results.get(path), screener.model_label) for path in paths]


def _row(path: str, result, model_label: str) -> dict:
    """The CSV row of one input: its score, or an empty probability and the problem in `quality`."""
    from biomarker.records import AudioError

    row = {"path": path, "probability": "", "decision": "", "model": model_label, "quality": ""}
    if result is None:
        row["quality"] = "file not found" if not Path(path).exists() else "not a regular file"
    elif isinstance(result, AudioError):
        row["quality"] = result.problem
    else:
        row.update(probability=f"{result.probability:.6f}", decision=result.decision, quality=result.quality.summary())
    return row


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""

    @app.command("score")
    def score(
        inputs: List[str] = typer.Argument(..., help="Audio files, folders of audio, or manifest CSVs (column 'path')."),
        model: str = typer.Option("ri-screener", "--model", help="Shipped model name or a ScreeningModel directory."),
        out: Optional[Path] = typer.Option(None, "--out", help="Write the CSV here instead of standard output."),
        log: bool = typer.Option(False, "--log", help="Also record every score in the configured database."),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
        cohort: Optional[str] = typer.Option(None, "--cohort", help="Cohort head to use (default: the model's)."),
        threads: int = typer.Option(1, "--threads", min=1, help="torch threads on CPU (1 was fastest on a busy "
                                    "machine; see docs/app.md)."),
    ) -> None:
        """Score recordings for respiratory insufficiency (screening: refer for an SpO2 check)."""
        import csv
        import sys

        from biomarker.records import BiomarkerError
        from biomarker.screener import Screener, ScreenerConfig

        try:
            paths = expand_inputs(inputs)
            screener = Screener.load(model, device=device, config=ScreenerConfig(cpu_threads=threads))
            screener.model.resolve_cohort(cohort)  # an unknown cohort is named before any scoring
        except (BiomarkerError, RuntimeError) as error:  # RuntimeError: --device cuda without a GPU
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2)
        store = None
        if log:
            from biomarker.settings import Settings
            from biomarker.store import Store

            store = Store(Settings.from_env())
        rows = score_rows(screener, paths, cohort=cohort, store=store)
        if out:
            out.parent.mkdir(parents=True, exist_ok=True)
        handle = out.open("w", newline="", encoding="utf-8") if out else sys.stdout
        try:
            writer = csv.DictWriter(handle, fieldnames=SCORE_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        finally:
            if out:
                handle.close()
