"""`biomarker score`: files, folders and manifests in; one CSV row per input out, bad inputs included."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from typer.testing import CliRunner

from biomarker.cli import app
from biomarker.settings import Settings
from biomarker.store import Store, UserInfo
from screening_helpers import TEST_MODEL_NAME, TEST_MODEL_VERSION, espeak_wav, save_tiny_screening_model, wav_bytes

COLUMNS = ["path", "probability", "decision", "model", "quality"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_screening_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder with two good clips and a silent one, a manifest listing one of them, and a non-audio file."""
    root = tmp_path_factory.mktemp("inputs")
    folder = root / "clips"
    folder.mkdir()
    espeak_wav(folder / "a.wav", "The north wind and the sun were disputing which was the stronger.")
    espeak_wav(folder / "b.wav", "When a traveller came along wrapped in a warm cloak.")
    (folder / "silent.wav").write_bytes(wav_bytes(np.zeros(32000, np.float32)))
    (root / "manifest.csv").write_text("path,label\nclips/b.wav,1\n", encoding="utf-8")
    (root / "notes.wav").write_bytes(b"these are not audio samples" * 10)
    return root


def run(args, env=None):
    result = CliRunner().invoke(app, ["score", *args], env=env)
    return result, list(csv.DictReader(io.StringIO(result.stdout)))


def test_every_input_gets_a_row_and_bad_inputs_name_their_problem(model_dir, inputs):
    missing = str(inputs / "missing.wav")
    result, rows = run([str(inputs / "clips"), str(inputs / "manifest.csv"), str(inputs / "notes.wav"), missing,
                        "--model", str(model_dir), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert list(rows[0]) == COLUMNS
    by_path = {row["path"]: row for row in rows}
    assert [row["path"] for row in rows] == [str(inputs / "clips" / n) for n in ("a.wav", "b.wav", "silent.wav")] + [
        str(inputs / "clips" / "b.wav"), str(inputs / "notes.wav"), missing]
    for name in ("a.wav", "b.wav"):
        row = by_path[str(inputs / "clips" / name)]
        assert 0.0 <= float(row["probability"]) <= 1.0 and row["decision"] in ("positive", "negative")
        assert row["quality"] == "ok" and row["model"] == f"{TEST_MODEL_NAME}@{TEST_MODEL_VERSION}"
    for path, problem in ((inputs / "clips" / "silent.wav", "silent"), (inputs / "notes.wav", "not a recognised"),
                          (missing, "not found")):
        row = by_path[str(path)]
        assert row["probability"] == "" and row["decision"] == "" and problem in row["quality"]


def test_out_writes_the_csv_file(model_dir, inputs, tmp_path):
    out = tmp_path / "scores.csv"
    result, _ = run([str(inputs / "clips" / "a.wav"), "--model", str(model_dir), "--out", str(out)])
    assert result.exit_code == 0 and result.stdout == ""
    [row] = list(csv.DictReader(out.open()))
    assert row["path"].endswith("a.wav") and row["quality"] == "ok"


def test_log_records_scored_inputs_in_the_configured_database(model_dir, inputs, tmp_path):
    result, rows = run([str(inputs / "clips"), "--model", str(model_dir), "--log"], env={"BIOMARKER_HOME": str(tmp_path)})
    assert result.exit_code == 0, result.output
    store = Store(Settings.from_env({"BIOMARKER_HOME": str(tmp_path)}))
    history = store.history(viewer=UserInfo("auditor", "auditor"))
    scored = sorted(float(row["probability"]) for row in rows if row["probability"])
    assert sorted(row.probability for row in history) == pytest.approx(scored, abs=1e-6)
    assert len(history) == 2 and store.verify_chain().ok


def test_log_with_the_database_down_spools_every_result_and_a_flush_stores_them(model_dir, inputs, tmp_path):
    away = tmp_path / "db-away"
    env = {"BIOMARKER_HOME": str(tmp_path / "home"), "DATABASE_URL": f"sqlite:///{away / 'biomarker.db'}"}
    result, rows = run([str(inputs / "clips"), "--model", str(model_dir), "--log"], env=env)
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "home" / "spool").glob("*.json"))) == 2 and len(rows) >= 2
    away.mkdir()  # the database is back
    flushed = CliRunner().invoke(app, ["spool", "flush"], env=env)
    assert flushed.exit_code == 0 and "written 2" in flushed.output, flushed.output
    store = Store(Settings.from_env(env))
    assert len(store.history(viewer=UserInfo("auditor", "auditor"))) == 2 and store.verify_chain().ok


def test_missing_default_model_is_a_clear_error(inputs, monkeypatch, tmp_path):
    monkeypatch.setattr("biomarker.screener.PRETRAINED_DIR", tmp_path)
    result, _ = run([str(inputs / "clips" / "a.wav")])
    assert result.exit_code == 2
    assert "ri-screener" in result.stderr


def test_manifest_without_path_column_is_named(model_dir, tmp_path):
    manifest = tmp_path / "bad.csv"
    manifest.write_text("file,label\nx.wav,1\n", encoding="utf-8")
    result, _ = run([str(manifest), "--model", str(model_dir)])
    assert result.exit_code == 2 and "bad.csv" in result.stderr and "'path'" in result.stderr


def test_serve_creates_the_first_admin_once_and_starts_the_app(model_dir, tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr("os.execvpe", lambda file, args, env: started.append((args, env)))
    env = {"BIOMARKER_HOME": str(tmp_path)}
    first = CliRunner().invoke(app, ["serve", "--model", str(model_dir), "--port", "8765"], env=env)
    assert first.exit_code == 0, first.output
    password = first.stdout.split("One-time password: ")[1].split()[0]
    assert Store(Settings.from_env(env)).authenticate("admin", password).role == "admin"
    args, child_env = started[0]
    assert args[1:4] == ["-m", "streamlit", "run"] and args[4].endswith("Home.py") and "--server.port=8765" in args
    assert child_env["BIOMARKER_MODEL"] == str(model_dir) and child_env["BIOMARKER_CPU_THREADS"] == "1"
    again = CliRunner().invoke(app, ["serve", "--model", str(model_dir)], env=env)
    assert again.exit_code == 0 and "One-time password" not in again.stdout


def test_unknown_cohort_is_named_before_scoring(model_dir, inputs):
    result, _ = run([str(inputs / "clips" / "a.wav"), "--model", str(model_dir), "--cohort", "mars"])
    assert result.exit_code == 2 and "mars" in result.stderr


# ---------------------------------------------------------------------- a batch never dies for one input (issue 24)
def rows_by_path(rows):
    return {row["path"]: row for row in rows}


def test_a_wav_at_1000003_hz_gets_its_row_and_the_batch_goes_on(model_dir, inputs, tmp_path):
    """It once crashed the whole run with a 64 GB allocation: exit 1, no CSV for any input."""
    odd = tmp_path / "odd-rate.wav"
    odd.write_bytes(wav_bytes(np.zeros(20000, np.float32), sample_rate_hz=1_000_003))
    good = str(inputs / "clips" / "a.wav")
    result, rows = run([good, str(odd), good, "--model", str(model_dir), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert [row["path"] for row in rows] == [good, str(odd), good]
    assert rows[0]["quality"] == rows[2]["quality"] == "ok"
    assert rows[1]["probability"] == "" and "1000003 Hz" in rows[1]["quality"] and "8000-384000 Hz" in rows[1]["quality"]


def test_an_error_no_audio_error_names_costs_only_its_own_row(model_dir, inputs, monkeypatch):
    from biomarker import audio

    real_decode = audio._decode

    def decode(data, label, suffix, config):
        if label.endswith("b.wav"):
            raise MemoryError("the decoder ran out of memory")
        return real_decode(data, label, suffix, config)

    monkeypatch.setattr(audio, "_decode", decode)
    result, rows = run([str(inputs / "clips"), "--model", str(model_dir), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    by_path = rows_by_path(rows)
    assert by_path[str(inputs / "clips" / "a.wav")]["quality"] == "ok"
    assert by_path[str(inputs / "clips" / "b.wav")]["quality"] == "could not be scored: MemoryError: the decoder ran out of memory"
    assert "silent" in by_path[str(inputs / "clips" / "silent.wav")]["quality"]


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs (not even a final write)."""


def test_rows_are_on_disk_as_soon_as_their_batch_is_scored(model_dir, inputs, tmp_path, monkeypatch):
    from biomarker.screener import Screener

    real_score_many, calls = Screener.score_many, []

    def score_many(self, sources, **kwargs):
        calls.append(len(sources))
        if len(calls) == 2:
            raise Killed()
        return real_score_many(self, sources, **kwargs)

    monkeypatch.setattr(Screener, "score_many", score_many)
    out = tmp_path / "scores.csv"
    clip = str(inputs / "clips" / "a.wav")
    with pytest.raises(Killed):
        CliRunner().invoke(app, ["score", *[clip] * 20, "--model", str(model_dir), "--out", str(out)],
                           catch_exceptions=False)
    assert calls == [16, 4]  # the screener's batch size, then the rest
    finished = list(csv.DictReader(out.open()))
    assert len(finished) == 16 and all(row["quality"] == "ok" for row in finished)


def test_write_rows_flushes_each_row(tmp_path):
    from biomarker.cli.score import write_rows

    out = tmp_path / "rows.csv"
    seen_on_disk = []

    def rows():
        for number in range(3):
            yield {"path": f"clip{number}.wav", "probability": "", "decision": "", "model": "m", "quality": "ok"}
            seen_on_disk.append(len(out.read_text().splitlines()))

    with out.open("w", newline="") as handle:
        assert write_rows(rows(), handle) == 3
    assert seen_on_disk == [2, 3, 4]  # the header and every row written so far, before the next row is made


def test_directories_fifos_and_empty_folders_named_like_audio_get_rows(model_dir, tmp_path):
    import os

    folder = tmp_path / "clips"
    (folder / "x.wav").mkdir(parents=True)
    os.mkfifo(folder / "pipe.wav")
    empty = tmp_path / "empty.wav"
    empty.mkdir()
    result, rows = run([str(folder), str(empty), "--model", str(model_dir)])
    assert result.exit_code == 0, result.output
    by_path = rows_by_path(rows)
    assert by_path[str(folder / "x.wav")]["quality"] == "not a regular file (a directory)"
    assert by_path[str(folder / "pipe.wav")]["quality"] == "not a regular file (a FIFO)"
    assert by_path[str(empty)]["quality"].startswith("a folder with no audio entries")


def test_manifest_entries_outside_its_folder_are_refused_unless_allowed(model_dir, inputs, tmp_path):
    import shutil

    outside = tmp_path / "outside.wav"
    shutil.copy(inputs / "clips" / "a.wav", outside)
    folder = tmp_path / "site"
    folder.mkdir()
    shutil.copy(inputs / "clips" / "b.wav", folder / "inside.wav")
    (folder / "link.wav").symlink_to(outside)
    manifest = folder / "manifest.csv"
    manifest.write_text(f"path\ninside.wav\n../outside.wav\n{outside}\nlink.wav\n\n", encoding="utf-8")
    listed = [str(folder / "inside.wav"), str(folder / "../outside.wav"), str(outside), str(folder / "link.wav")]

    result, rows = run([str(manifest), "--model", str(model_dir)])
    assert result.exit_code == 0, result.output
    assert [row["path"] for row in rows] == listed
    assert rows[0]["quality"] == "ok"
    for row in rows[1:]:
        assert row["probability"] == "" and "outside the manifest's folder" in row["quality"]
        assert "--allow-outside" in row["quality"]

    result, rows = run([str(manifest), "--model", str(model_dir), "--allow-outside"])
    assert [row["quality"] for row in rows] == ["ok"] * 4

    result, rows = run([str(folder), "--model", str(model_dir)])  # a folder's symlink out is refused alike
    assert "outside the folder" in rows_by_path(rows)[str(folder / "link.wav")]["quality"]


def test_an_empty_manifest_path_is_its_own_row(model_dir, inputs):
    manifest = inputs / "holes.csv"
    manifest.write_text("path,label\n,1\nclips/a.wav,0\n", encoding="utf-8")
    result, rows = run([str(manifest), "--model", str(model_dir)])
    assert result.exit_code == 0, result.output
    assert rows[0]["path"] == f"{manifest}:2" and "empty 'path'" in rows[0]["quality"]
    assert rows[1]["quality"] == "ok"


def test_log_checks_the_size_cap_before_reading_the_file(model_dir, tmp_path, monkeypatch):
    """With --log a 2 GB file was read whole (2.9 GB peak) before the size cap was checked."""
    from pathlib import Path

    big = tmp_path / "big.wav"
    with big.open("wb") as handle:
        handle.truncate(60_000_000)  # sparse: over the 50 MB cap, no disk used

    real_read_bytes = Path.read_bytes

    def read_bytes(self):
        if self.name == big.name:
            raise AssertionError(f"{self} was read whole")
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    result, rows = run([str(big), "--model", str(model_dir), "--log"], env={"BIOMARKER_HOME": str(tmp_path / "home")})
    assert result.exit_code == 0, result.output
    [row] = rows
    assert row["quality"] == "60000000 bytes is over the 50000000-byte limit"


def test_hostile_bench_measures_each_input_in_its_own_process(model_dir, tmp_path):
    """Two catalogue entries through the real `biomarker bench hostile` path: each child's peak RSS is its own and
    each input's row and reason come back (the goal itself is measured by the bench, not asserted here)."""
    from biomarker.bench import hostile

    cases = {case.name: case for case in hostile.catalogue()}
    assert len(cases) == len(hostile.catalogue()) >= 45  # names are unique
    results = [hostile.measure(cases[name], tmp_path, model=str(model_dir), address_cap_bytes=8_000_000_000,
                               timeout_s=300) for name in ("rate-1000003", "fifo-x-wav")]
    for result in results:
        assert result.exit_code == 0 and result.rows == 1 and 0 < result.peak_rss_mb
    assert "1000003 Hz" in results[0].reasons[0] and results[1].reasons == ["not a regular file (a FIFO)"]
    assert "rate-1000003" in hostile.table({"cases": [{**vars(r), "goal_met": r.goal_met} for r in results],
                                            "all_goals_met": True})
