"""Faults keep every result (issue #24, deliverables 4 and 6): a full disk, and `kill -9` in the middle of writes.

The rest of the reliability suite lives beside the code it exercises (docs/store.md, "Guarantees", lists it):
20 concurrent writers (tests/test_store.py, SQLite and PostgreSQL), a PostgreSQL stop mid-batch with replay
(tests/test_store_postgres.py), the signed spool and concurrent flushes (tests/test_store.py), hostile inputs
(tests/test_score_cli.py, tests/test_audio.py) and tampering (tests/test_tamper.py).
"""

from __future__ import annotations

import csv
import errno
import io
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import func, select
from store_helpers import ADMIN, ENGINES, SECRET, database_url_for, make_settings, record
from typer.testing import CliRunner

from biomarker.cli import app
from biomarker.records import StorageFullError
from biomarker.settings import Settings
from biomarker.store import Store
from biomarker.store.schema import RecordingRow, ScoreRow
from screening_helpers import espeak_wav, save_tiny_screening_model

TESTS = Path(__file__).resolve().parent


def _no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


class _HalfWriter:
    """A file whose write stores half the bytes and then finds the disk full, as a real full disk does."""

    def __init__(self, handle):
        self._handle = handle

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._handle.close()

    def write(self, data):
        self._handle.write(data[: len(data) // 2])
        self._handle.flush()
        _no_space()


def _fill_disk_for_writers(monkeypatch) -> None:
    """Every file opened for writing through `os.fdopen` (how the audio folder writes) finds the disk full."""
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, mode="r", *args, **kwargs: _HalfWriter(real_fdopen(fd, mode))
                        if "w" in mode else real_fdopen(fd, mode, *args, **kwargs))


def _temporaries(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.suffix == ".tmp"] if folder.exists() else []


# ------------------------------------------------------------------------------------------------- full disk
def test_a_full_audio_folder_is_named_and_leaves_no_half_written_file(tmp_path, monkeypatch):
    store = Store(make_settings(tmp_path))
    _fill_disk_for_writers(monkeypatch)
    with pytest.raises(StorageFullError) as raised:
        store.save_audio(b"a recording that does not fit")
    assert str(store.settings.audio_dir) in str(raised.value) and "No space left" in str(raised.value)
    assert raised.value.folder == str(store.settings.audio_dir)
    monkeypatch.undo()
    assert _temporaries(store.settings.audio_dir) == [] and list(store.settings.audio_dir.rglob("*.wav")) == []
    store.close()


def test_a_full_spool_is_named_and_leaves_no_half_written_file(tmp_path, monkeypatch):
    away = tmp_path / "db-away"  # the database's folder does not exist: every write goes to the spool
    store = Store(make_settings(tmp_path, f"sqlite:///{away / 'biomarker.db'}"), migrate=False)
    path = store.save_audio(b"kept audio")
    monkeypatch.setattr("biomarker.store.spool.os.fsync", _no_space)
    with pytest.raises(StorageFullError) as raised:
        record(store, ADMIN, audio=path.read_bytes())
    assert str(store.settings.spool_dir) in str(raised.value)
    assert _temporaries(store.settings.spool_dir) == [] and store.spool.pending() == []
    store.close()


@pytest.fixture(scope="module")
def scored_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("full-disk")
    (root / "clips").mkdir()
    espeak_wav(root / "clips" / "a.wav", "The north wind and the sun were disputing which was the stronger.")
    espeak_wav(root / "clips" / "b.wav", "When a traveller came along wrapped in a warm cloak.")
    return root / "clips", save_tiny_screening_model(root / "model")


@pytest.mark.parametrize("full", ["audio", "spool"])
def test_score_log_on_a_full_disk_keeps_every_result_in_its_csv_row_and_the_log(scored_inputs, tmp_path,
                                                                              monkeypatch, caplog, full):
    """No room for the audio (or, with the database down, for the spool): each input still gets its score in
    the CSV row, stderr names the full folder, the log keeps every field, and no temporary file remains."""
    clips, model_dir = scored_inputs
    home = tmp_path / "home"
    env = {"BIOMARKER_HOME": str(home), "BIOMARKER_SECRET": SECRET.decode(),
           "DATABASE_URL": f"sqlite:///{tmp_path / ('db' if full == 'audio' else 'db-away') / 'biomarker.db'}"}
    (tmp_path / "db").mkdir()
    Store(Settings.from_env(env), migrate=False).close()  # the keys exist before the disk fills
    if full == "audio":
        _fill_disk_for_writers(monkeypatch)
    else:
        monkeypatch.setattr("biomarker.store.spool.os.fsync", _no_space)
    with caplog.at_level(logging.ERROR, logger="biomarker.screener"):
        result = CliRunner().invoke(app, ["score", str(clips), "--model", str(model_dir), "--log"], env=env)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 2 and all(row["probability"] and row["decision"] for row in rows)
    folder = home / full
    assert result.stderr.count("NOT STORED") == 2 and str(folder) in result.stderr
    logged = [entry for entry in caplog.records if "NOT STORED" in entry.getMessage()]
    assert len(logged) == 2 and all(row["probability"][:6] in " ".join(e.getMessage() for e in logged) for row in rows)
    assert _temporaries(home) == []


# ---------------------------------------------------------------------------------------------------- kill -9
def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_opening_the_store_removes_what_a_killed_writer_left_and_keeps_a_live_writers_work(tmp_path):
    """A temporary of a dead writer (killed between write and rename) is swept when a store opens; one of a
    live writer (this process) is its work in progress and stays, as does every whole recording."""
    settings = make_settings(tmp_path)
    kept = Store(settings).save_audio(b"a whole recording")
    folder = kept.parent
    dead = folder / f".{kept.name}.{_dead_pid()}.abc123.tmp"
    live = folder / f".{kept.name}.{os.getpid()}.def456.tmp"
    unnamed = settings.spool_dir / ".older-writer.tmp"  # written before temporaries carried a pid
    legacy_spool = settings.spool_dir / "0f3c-result-uid.tmp"  # the spool's own name for them before
    settings.spool_dir.mkdir(parents=True, exist_ok=True)
    for path in (dead, live, unnamed, legacy_spool):
        path.write_bytes(b"half")
    Store(settings).close()
    assert not dead.exists() and not unnamed.exists() and not legacy_spool.exists()
    assert live.exists() and kept.read_bytes() == b"a whole recording"


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from store_helpers import ADMIN, make_settings, record
    from biomarker.store import Store

    store = Store(make_settings(Path(sys.argv[1]), sys.argv[2]))
    for i in range(100000):
        record(store, ADMIN, probability=0.5 + (i % 40) / 100, audio=f"round {sys.argv[3]} take {i}".encode(), patient_id=f"P{i % 7}")
        print(i, flush=True)
""")


@pytest.mark.parametrize("engine", ENGINES)
def test_kill_9_in_the_middle_of_writes_leaves_whole_results_and_an_intact_chain(engine, tmp_path, request):
    """A writer killed with SIGKILL at a random point (several times, on one database): every stored recording
    has its score, the chain (and its anchor) verify, and no temporary file is left in the data folder."""
    url = database_url_for(engine, tmp_path, request)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    for round_number in range(3):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), url, str(round_number)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(5 + 3 * round_number):  # let it write a few results, then kill it mid-stride
            if not writer.stdout.readline():
                pytest.fail(f"the writer died on its own: {writer.stderr.read()}")
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
        writer.stdout.close()
        writer.stderr.close()
    store = Store(make_settings(tmp_path, url))
    request.addfinalizer(store.close)
    result = store.verify_chain()
    assert result.ok, result.reason
    assert result.anchored_seq > 0
    with store.engine.connect() as connection:
        recordings = connection.scalar(select(func.count()).select_from(RecordingRow))
        orphans = connection.scalar(select(func.count()).select_from(RecordingRow).where(
            ~RecordingRow.id.in_(select(ScoreRow.recording_id))))
    assert recordings >= 5 + 8 + 11 and orphans == 0
    assert store.verify_audio().ok and _temporaries(tmp_path) == []
