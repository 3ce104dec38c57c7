"""`biomarker bench sharded`: `biomarker score MANIFEST --out` as one process against `torchrun` with N processes,
on the same clips, in interleaved rounds (issue 28's goal: 2 processes >= 1.8x one, on a machine with spare cores).

Each side is a fresh command line, as a user runs it (model load and the cached ONNX graph included), one torch
thread per process, so the ratio says what sharding adds, not what threads do. The clips are `scoring.speechlike`
signals of 6-14 s. Wall time only: the work happens in child processes. The CPU, the cores this process may use and
the load average are printed with the numbers; on a machine whose cores are busy the ratio cannot reach N.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from biomarker.bench.features import cpu_name
from biomarker.bench.scoring import SAMPLE_RATE_HZ, speechlike, wav_bytes
from biomarker.bench.timing import measure
from biomarker.records import DEFAULT_MODEL

GOAL_SPEEDUP = 1.8


def main(model: str = DEFAULT_MODEL, clips: int = 64, processes: int = 2, repeats: int = 3,
         runtime: str = "onnxruntime", as_json: bool = False) -> dict:
    """Time one process against `processes` torchrun ranks over the same manifest of `clips` clips."""
    rng = np.random.default_rng(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        audio_s = 0.0
        for index in range(clips):
            wave = speechlike(float(rng.uniform(6, 14)), seed=index)
            audio_s += len(wave) / SAMPLE_RATE_HZ
            (root / f"clip{index:04d}.wav").write_bytes(wav_bytes(wave))
        manifest = root / "manifest.csv"
        manifest.write_text("path\n" + "".join(f"clip{index:04d}.wav\n" for index in range(clips)), encoding="utf-8")
        env = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE")}
        env.update(OMP_NUM_THREADS="1", XDG_CACHE_HOME=str(root / "cache"))
        score = ["score", str(manifest), "--model", model, "--device", "cpu", "--threads", "1", "--runtime", runtime]

        def single() -> None:
            subprocess.run([sys.executable, "-m", "biomarker", *score, "--out", str(root / "single.csv")],
                           env=env, check=True, capture_output=True)

        def sharded() -> None:
            subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                            str(processes), "-m", "biomarker", *score, "--out", str(root / "sharded.csv")],
                           env=env, check=True, capture_output=True)

        timings = measure({"one_process": single, f"torchrun_{processes}_processes": sharded}, repeats)
        same = (root / "single.csv").read_text(encoding="utf-8") == (root / "sharded.csv").read_text(encoding="utf-8")
    one, many = timings["one_process"].wall_ms / 1000.0, timings[f"torchrun_{processes}_processes"].wall_ms / 1000.0
    report = {"model": model, "cpu": cpu_name(), "usable_cores": len(os.sched_getaffinity(0)),
              "load_average_1min": round(os.getloadavg()[0], 2), "clips": clips, "audio_s": round(audio_s, 1),
              "processes": processes, "runtime": runtime, "one_process_s": round(one, 2),
              "sharded_s": round(many, 2), "one_process_x_realtime": round(audio_s / one, 1),
              "sharded_x_realtime": round(audio_s / many, 1), "speedup": round(one / many, 2),
              "goal_speedup_ge": GOAL_SPEEDUP, "same_csv": same}
    if as_json:
        print(json.dumps(report, indent=1))
    else:
        print(f"sharded scoring: {clips} clips ({report['audio_s']} s of audio), {model}, {runtime}, on {report['cpu']} "
              f"({report['usable_cores']} usable cores, load average {report['load_average_1min']})\n"
              f"  one process:            {one:8.2f} s wall = {report['one_process_x_realtime']}x real time\n"
              f"  torchrun, {processes} processes:  {many:8.2f} s wall = {report['sharded_x_realtime']}x real time\n"
              f"  speedup {report['speedup']}x (goal >= {GOAL_SPEEDUP}x on spare cores); same CSV: {same}")
    return report
