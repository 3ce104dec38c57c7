"""`biomarker score` under torchrun (issue 28): ranks share the inputs, rows merge in input order, bad inputs keep
their rows, an interrupted run resumes without rescoring what its parts hold. Two real CPU processes, a tiny model."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from biomarker.cli import app
from screening_helpers import burst_clip, espeak_wav, save_tiny_screening_model, wav_bytes

COLUMNS = ["path", "probability", "decision", "model", "quality"]
SENTINEL = "0.123456"  # a probability no scoring of these clips gives: proof a kept row was not rescored


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny model and a manifest of seven entries: five clips of different lengths, a silent one, a missing one."""
    root = tmp_path_factory.mktemp("sharded")
    model = save_tiny_screening_model(root / "model")
    clips = root / "clips"
    clips.mkdir()
    espeak_wav(clips / "a.wav", "The north wind and the sun were disputing which was the stronger.")
    rng = np.random.default_rng(3)
    for index in range(4):
        (clips / f"b{index}.wav").write_bytes(wav_bytes(burst_clip(index % 2, rng, bursts=5 + 2 * index)))
    (clips / "silent.wav").write_bytes(wav_bytes(np.zeros(32000, np.float32)))
    names = ["b3.wav", "a.wav", "silent.wav", "b0.wav", "missing.wav", "b2.wav", "b1.wav"]
    manifest = root / "manifest.csv"
    manifest.write_text("path\n" + "".join(f"clips/{name}\n" for name in names), encoding="utf-8")
    return model, manifest, root


def score(args, env=None):
    result = CliRunner().invoke(app, ["score", *args], env=env)
    assert result.exit_code == 0, result.output
    return result


def read(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_two_torchrun_processes_write_the_single_process_rows_in_input_order(setup, tmp_path):
    model, manifest, root = setup
    single = tmp_path / "single.csv"
    score([str(manifest), "--model", str(model), "--device", "cpu", "--out", str(single)])
    sharded = tmp_path / "sharded.csv"
    env = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # both ranks export the tiny model's graph at once
    process = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "biomarker",
         "score", str(manifest), "--model", str(model), "--device", "cpu", "--out", str(sharded)],
        env=env, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    assert sharded.read_text(encoding="utf-8").splitlines()[0] == ",".join(COLUMNS)
    rows = read(sharded)
    assert rows == read(single)
    assert [Path(row["path"]).name for row in rows] == ["b3.wav", "a.wav", "silent.wav", "b0.wav", "missing.wav",
                                                        "b2.wav", "b1.wav"]
    assert "silent" in rows[2]["quality"] and "not found" in rows[4]["quality"] and rows[4]["probability"] == ""
    assert sum(row["probability"] != "" for row in rows) == 5
    # the ranks' part files are removed (the graph cache exists only where ONNX Runtime scored)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["sharded.csv", "single.csv"]


def test_an_interrupted_run_resumes_and_keeps_the_rows_already_written(setup, tmp_path):
    """Rank 1 of 2 was killed after one row and half of the next; the rerun keeps that row and scores the rest."""
    model, manifest, root = setup
    out = tmp_path / "scores.csv"
    first = str(root / "clips" / "a.wav")  # input 1: rank 1's first
    part = tmp_path / "scores.csv.part-00001-of-00002"
    part.write_text(f"index,{','.join(COLUMNS)}\n1,{first},{SENTINEL},negative,tiny@x,ok\n3,{root}/clips/b0",
                    encoding="utf-8")
    args = [str(manifest), "--model", str(model), "--device", "cpu", "--runtime", "eager", "--out", str(out)]
    resumed = score(args, env={"RANK": "1", "WORLD_SIZE": "2"})
    assert "resuming, 1 row(s) already" in resumed.output and not out.exists()  # rank 1 never merges
    score(args, env={"RANK": "0", "WORLD_SIZE": "2"})  # rank 0 scores its share, finds rank 1 done, merges
    rows = read(out)
    assert len(rows) == 7 and rows[1]["path"] == first and rows[1]["probability"] == SENTINEL
    assert rows[3]["path"].endswith("b0.wav") and rows[3]["probability"] not in ("", SENTINEL)
    assert [p.name for p in tmp_path.iterdir()] == ["scores.csv"]


def test_parts_of_another_run_are_refused_not_mixed_in(setup, tmp_path):
    model, manifest, _ = setup
    out = tmp_path / "scores.csv"
    (tmp_path / "scores.csv.part-00000-of-00001").write_text(
        f"index,{','.join(COLUMNS)}\n0,/elsewhere/x.wav,0.5,negative,m@1,ok\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["score", str(manifest), "--model", str(model), "--device", "cpu",
                                      "--out", str(out)], env={"RANK": "0", "WORLD_SIZE": "1"})
    assert result.exit_code == 2 and "is not input 0 of this run" in result.output and not out.exists()


def test_torchrun_needs_an_output_file(setup):
    model, manifest, _ = setup
    result = CliRunner().invoke(app, ["score", str(manifest), "--model", str(model)], env={"RANK": "0", "WORLD_SIZE": "2"})
    assert result.exit_code == 2 and "pass --out FILE" in result.output
