"""`biomarker score INPUT...`: score audio files, folders or a manifest CSV; one CSV row per input, always.

Columns are exactly `path,probability,decision,model,quality`. A bad input still gets its row: `quality` names
the problem and `probability` is empty, so a batch never silently loses a recording. Exit status 0 means every
input got a row. The body imports the library lazily so `biomarker --help` never loads torch.

A batch never dies for one input (issue 24): every input is scored inside its own guard, so even an error no
`AudioError` names (a decoder bug, memory exhausted) costs only that input's row; rows are written and flushed
one by one as their batch finishes, so a run killed part-way keeps every finished row. Entries of a manifest or a
folder that resolve outside it (`../../etc/shadow`, a symlink out) get a refusal row unless `--allow-outside`.

Under `torchrun` (RANK / WORLD_SIZE set) the same command shards the inputs over every process of every node, merges
the rows into `--out` in input order, and resumes an interrupted run (`biomarker.cli.shards`, docs/performance.md).
Single clips are scored through ONNX Runtime by default (`--runtime`, issue 28); the CSV's columns do not change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, TextIO

import typer

from biomarker.records import DEFAULT_MODEL

SCORE_COLUMNS = ("path", "probability", "decision", "model", "quality")
MAX_REASON_CHARS = 300  # an unexpected error's message is cut here, so one row cannot flood the CSV


@dataclass(frozen=True)
class Input:
    """One input of the batch: its path as given (or as listed, joined to its manifest's folder) and, when it was
    refused while the inputs were gathered, the reason its row will carry."""

    path: str
    problem: str | None = None


def expand_inputs(inputs: list[str], *, allow_outside: bool = False) -> list[Input]:
    """Files stay as given; a folder contributes its audio entries (recursively, sorted), and a folder holding none
    gets a row saying so; a `.csv` file is a manifest whose `path` column lists recordings relative to the
    manifest's folder. A path that does not exist is kept, so it gets a row saying so instead of vanishing.
    Entries of a folder or a manifest must resolve inside it unless `allow_outside`."""
    expanded: list[Input] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            expanded += _folder_entries(path, allow_outside) or [Input(item, _empty_folder_reason())]
        elif path.suffix.lower() == ".csv" and path.is_file():
            expanded += _manifest_entries(path, allow_outside)
        else:
            expanded.append(Input(item))
    return expanded


def _empty_folder_reason() -> str:
    from biomarker.audio import AUDIO_SUFFIXES

    return f"a folder with no audio entries ({', '.join(AUDIO_SUFFIXES)})"


def _folder_entries(folder: Path, allow_outside: bool) -> list[Input]:
    """Every entry with an audio suffix, whatever its type: a directory named x.wav, a FIFO or a dangling symlink
    gets a row naming what it is, instead of being skipped."""
    from biomarker.audio import AUDIO_SUFFIXES

    entries = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    return [Input(str(p), None if allow_outside else _outside_reason(p, folder, "folder")) for p in entries]


def _manifest_entries(manifest: Path, allow_outside: bool) -> list[Input]:
    """The manifest's `path` column, each joined to the manifest's folder. A bad row is its own refusal row; only
    a manifest that cannot be read as CSV at all (or lacks the column) stops the run, before anything is scored."""
    import csv

    from biomarker.records import CohortError

    entries: list[Input] = []
    try:
        with manifest.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or "path" not in reader.fieldnames:
                raise CohortError(f"{manifest}: a manifest needs a 'path' column; found {reader.fieldnames}")
            for row_number, row in enumerate(reader, start=2):
                listed = (row.get("path") or "").strip()
                if not listed:
                    entries.append(Input(f"{manifest}:{row_number}", f"row {row_number} of the manifest has an empty 'path'"))
                    continue
                path = Path(listed) if Path(listed).is_absolute() else manifest.parent / listed
                entries.append(Input(str(path), None if allow_outside else _outside_reason(path, manifest.parent, "manifest's folder")))
    except (UnicodeDecodeError, csv.Error) as error:
        raise CohortError(f"{manifest}: not a readable CSV manifest ({error})") from None
    return entries


def _outside_reason(path: Path, folder: Path, what: str) -> str | None:
    """None when `path` (symlinks and `..` resolved) lies inside `folder`, else the refusal."""
    if path.resolve().is_relative_to(folder.resolve()):
        return None
    return f"resolves outside the {what} {folder} (pass --allow-outside to score it)"


def score_rows(screener, inputs: Iterable[Input], *, cohort: str | None, store=None) -> Iterator[dict]:
    """One dict per input with SCORE_COLUMNS, yielded in input order as soon as it is known. Without a store,
    inputs are scored in padded batches of the screener's batch size; with one, each is scored and logged through
    the app's own path (`screen_and_record`), one by one."""
    score_batch = _batch_scorer(screener, cohort) if store is None else _logging_scorer(screener, store, cohort)
    size = screener.config.batch_size if store is None else 1
    pending: list[Input] = []
    for item in inputs:
        pending.append(item)
        if len(pending) >= size:
            yield from _rows_of(pending, score_batch, screener.model_label)
            pending = []
    yield from _rows_of(pending, score_batch, screener.model_label)


def _rows_of(batch: list[Input], score_batch: Callable[[list[str]], list], model_label: str) -> Iterator[dict]:
    """Rows of one batch: refused inputs keep their reason; the rest go to `score_batch` together."""
    scored = [item.path for item in batch if item.problem is None]
    results = iter(score_batch(scored) if scored else [])
    for item in batch:
        yield _row(item.path, item.problem if item.problem is not None else next(results), model_label)


def _batch_scorer(screener, cohort: str | None) -> Callable[[list[str]], list]:
    """`score_many` over a batch; if it raises anything (an error no AudioError names), each input is scored on
    its own so that only the input that caused it loses its score."""

    def score_batch(paths: list[str]) -> list:
        try:
            return screener.score_many(paths, names=paths, cohort=cohort)
        except Exception:  # noqa: BLE001 - the batch must survive; the culprit's own row names the error
            return [_guarded(lambda path=path: screener.score(path, name=path, cohort=cohort)) for path in paths]

    return score_batch


def _logging_scorer(screener, store, cohort: str | None) -> Callable[[list[str]], list]:
    """Score and log each input as the app does. The bytes are read through `audio.read_input`, which checks the
    size cap with fstat before reading (a 2 GB file is refused unread)."""
    from biomarker.audio import read_input
    from biomarker.screener import screen_and_record
    from biomarker.store import UserInfo

    actor = UserInfo.local_operator()

    def score_and_log(path: str):
        data = read_input(path, name=path, config=screener.config.audio)
        outcome = screen_and_record(screener, store, data, name=path, actor=actor, cohort=cohort)
        score = outcome.assessment.score
        if outcome.not_stored is not None:  # a full disk: this row and this line are the only copies
            typer.echo(f"{path}: NOT STORED: {outcome.not_stored}; its result is kept in this CSV row "
                       f"(probability {score.probability:.6f}, {score.decision}, threshold {score.threshold:.6f}, "
                       f"{score.model_name}@{score.model_version})", err=True)
        elif not outcome.record.stored:  # spooled: the row is right, but say where the result went
            typer.echo(f"{path}: {outcome.record.message}", err=True)
        return score

    return lambda paths: [_guarded(lambda path=path: score_and_log(path)) for path in paths]


def _guarded(work: Callable[[], object]) -> object:
    """`work()`, or the exception that stopped it (as a result, not a raise): one input never ends the batch."""
    try:
        return work()
    except Exception as error:  # noqa: BLE001 - AudioErrors and the unexpected alike become that input's row
        return error


def _row(path: str, result, model_label: str) -> dict:
    """The CSV row of one input: its score, or an empty probability and the problem in `quality`."""
    from biomarker.records import AudioError

    row = {"path": path, "probability": "", "decision": "", "model": model_label, "quality": ""}
    if isinstance(result, str):
        row["quality"] = result
    elif isinstance(result, AudioError):
        row["quality"] = result.problem
    elif isinstance(result, BaseException):
        typer.echo(f"{path}: could not be scored: {type(result).__name__}: {result}", err=True)
        row["quality"] = f"could not be scored: {type(result).__name__}: {result}"[:MAX_REASON_CHARS]
    else:
        row.update(probability=f"{result.probability:.6f}", decision=result.decision, quality=result.quality.summary())
    return row


def write_rows(rows: Iterable[dict], handle: TextIO) -> int:
    """Write the header, then each row as it comes, flushed at once: a run killed part-way keeps its finished
    rows. Returns the number of rows written."""
    import csv

    writer = csv.DictWriter(handle, fieldnames=SCORE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    handle.flush()
    count = 0
    for row in rows:
        writer.writerow(row)
        handle.flush()
        count += 1
    return count


def score_share(screener, items: list[Input], shard, out: Path, *, cohort: str | None, store=None) -> None:
    """This rank's share of `items` into its part file, skipping the rows a part from an interrupted run already
    holds; rank 0 then waits for every rank and merges the parts into `out` in input order."""
    from biomarker.cli.shards import merge_parts, read_part, wait_for_parts, write_share

    paths = [item.path for item in items]
    part = shard.part(out)
    kept = read_part(part, paths, SCORE_COLUMNS)
    todo = [index for index in shard.indices(len(items)) if index not in kept]
    if kept:
        typer.echo(f"rank {shard.rank}: resuming, {len(kept)} row(s) already in {part}, {len(todo)} to score", err=True)
    rows = score_rows(screener, (items[index] for index in todo), cohort=cohort, store=store)
    write_share(part, kept, zip(todo, rows), SCORE_COLUMNS)
    if shard.rank == 0:
        merge_parts(out, wait_for_parts(out, shard.world_size), paths, SCORE_COLUMNS, write_rows)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""

    @app.command("score")
    def score(
        inputs: List[str] = typer.Argument(..., help="Audio files, folders of audio, or manifest CSVs (column 'path')."),
        model: str = typer.Option(DEFAULT_MODEL, "--model", help="Shipped model name or a ScreeningModel directory."),
        out: Optional[Path] = typer.Option(None, "--out", help="Write the CSV here instead of standard output."),
        log: bool = typer.Option(False, "--log", help="Also record every score in the configured database."),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
        cohort: Optional[str] = typer.Option(None, "--cohort", help="Cohort head to use (default: the model's)."),
        threads: int = typer.Option(1, "--threads", min=1, help="torch threads on CPU (1 was fastest on a busy "
                                    "machine; see docs/app.md)."),
        allow_outside: bool = typer.Option(False, "--allow-outside", help="Score manifest and folder entries that "
                                           "resolve outside the manifest's (or folder's) own folder."),
        runtime: str = typer.Option("onnxruntime", "--runtime", help="CPU engine of the forward: onnxruntime | "
                                    "eager (PyTorch). Padded batches always run eagerly."),
    ) -> None:
        """Score recordings for respiratory insufficiency (screening: refer for an SpO2 check)."""
        import sys

        from biomarker.cli.shards import Shard
        from biomarker.models.runtime import RuntimeConfig
        from biomarker.records import BiomarkerError
        from biomarker.screener import Screener, ScreenerConfig

        try:
            shard = Shard.from_env()
            if shard is not None and out is None:
                raise BiomarkerError("under torchrun, pass --out FILE: the ranks' rows are merged into it")
            items = expand_inputs(inputs, allow_outside=allow_outside)
            config = ScreenerConfig(cpu_threads=threads, runtime=RuntimeConfig(runtime))
            screener = Screener.load(model, device=device, config=config)
            screener.model.resolve_cohort(cohort)  # an unknown cohort is named before any scoring
        except (BiomarkerError, RuntimeError, ValueError) as error:  # --device cuda without a GPU; a bad --runtime
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2)
        store = None
        if log:
            from biomarker.settings import Settings
            from biomarker.store import Store

            # not migrated up front: a database that is down now means spooling each result, not a traceback
            store = Store(Settings.from_env(), migrate=False)
        if out:
            out.parent.mkdir(parents=True, exist_ok=True)
        if shard is not None:
            try:
                score_share(screener, items, shard, out, cohort=cohort, store=store)
            except BiomarkerError as error:  # parts of another run: named, never mixed in
                typer.echo(f"error: {error}", err=True)
                raise typer.Exit(2)
            return
        handle = out.open("w", newline="", encoding="utf-8") if out else sys.stdout
        try:
            write_rows(score_rows(screener, items, cohort=cohort, store=store), handle)
        finally:
            if out:
                handle.close()
