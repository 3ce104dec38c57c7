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
