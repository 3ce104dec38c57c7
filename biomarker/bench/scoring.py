"""`biomarker bench scoring`: what a clinician waits for, against what the model itself costs, in one run.

- End to end: a 10 s WAV as bytes -> decode -> quality gate -> features -> model -> stored row (SQLite, with
  its audit events), exactly the app's `screen_and_record`.
- The encoder forward alone (same clip, features precomputed), so the ratio says how much the plumbing adds.
  Goal: end to end <= 1.3x the forward and <= 150 ms on 2 CPU cores for the tiny model. Two models are measured
  side by side by default: the shipped screener (whatever size it is) and the tiny reference, SSAST-tiny
  (12 blocks, width 192, untrained: cost does not depend on the weights). The plumbing costs the same for both,
  so the pair shows both the absolute overhead and what it means next to a tiny-sized encoder.
- Batch throughput: `score_many` over many clips of 6-14 s, in x real time (goal >= 100x on 2 cores).
- Against what a user would pick instead and against the machine (issue 28), per thread count, in one interleaved
  run: eGeMAPS + LR and MFCC-statistics + LR from the same bytes to a probability; the FLOP floor (the forward's
  FLOPs counted by torch.utils.flop_counter, attention included (`counting_flops`), over the fp32 GEMM rate
  measured in the same rounds, on a GEMM of the model's own shape); eager PyTorch vs ONNX Runtime, forward and
  end to end; ONNX Runtime on the graph as exported, without the fused-attention pass (`onnx_attention`); int8
  dynamic quantisation (and, with `with_compile=True`, torch.compile) as the runtime candidates,
  with how far each moves the logit.

The clips are synthetic speech-like signals (harmonics with syllable-rate envelopes and pauses): cost does not
depend on content, and they pass the quality gate. Medians after a warm-up, because the machine may be shared;
the load average is reported beside the numbers so a reader can judge them.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from biomarker.audio import load, require_quality
from biomarker.bench.features import cpu_name
from biomarker.bench.timing import Timing, measure
from biomarker.evaluate.baselines import LogisticBaseline
from biomarker.models import ScreeningModel, create_model
from biomarker.models.runtime import RuntimeConfig
from biomarker.screener import DEFAULT_MODEL, PRETRAINED_DIR, Screener, ScreenerConfig, screen_and_record
from biomarker.settings import Settings
from biomarker.store import Store, UserInfo

SAMPLE_RATE_HZ = 16000
GOAL_RATIO, GOAL_E2E_MS, GOAL_THROUGHPUT_X = 1.3, 150.0, 100.0
# issue 28: forward and end to end against the FLOP floor at 1 thread, end to end against eGeMAPS + LR
GOAL_FORWARD_FLOOR, GOAL_E2E_FLOOR, GOAL_VS_EGEMAPS = 1.2, 1.4, 0.5


def speechlike(seconds: float, seed: int) -> np.ndarray:
    """A voiced-speech stand-in: 100-140 Hz harmonics, 4 Hz syllable envelope, a pause every ~2 s."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    f0 = rng.uniform(100, 140) * (1 + 0.05 * np.sin(2 * np.pi * 0.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE_HZ
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) * (np.sin(2 * np.pi * 0.5 * t) > -0.7)
    signal = 0.3 * voiced * envelope + 0.002 * rng.standard_normal(len(t))
    return (0.8 * signal / np.max(np.abs(signal))).astype(np.float32)


def wav_bytes(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, SAMPLE_RATE_HZ, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def inference(run: Callable[[], object]) -> Callable[[], object]:
    """`run` under torch.inference_mode, as the screener runs its model."""

    def wrapped() -> object:
        with torch.inference_mode():
            return run()

    return wrapped


# Seeds never used before in this process: every end-to-end call stores audio the folder has not seen.
_NEW_CLIP_SEEDS = itertools.count(1000)
TINY_REFERENCE = "tiny"  # the `--model` keyword for the untrained SSAST-tiny bundle


def bench_models(model: str | None, directory: Path) -> list[Path]:
    """`model` alone when given (a name, a dir, or `tiny`); by default the shipped screener (when present) and
    the tiny reference, built here as an untrained SSAST-tiny bundle so the benchmark runs on a fresh checkout."""
    if model is not None and model != TINY_REFERENCE:
        return [Path(model)]
    chosen = [] if model is not None or not (PRETRAINED_DIR / DEFAULT_MODEL).is_dir() else [PRETRAINED_DIR / DEFAULT_MODEL]
    bundle = ScreeningModel(create_model("ssast-tiny-patch"), name="ssast-tiny-untrained", version="bench")
    bundle.add_cohort("default")
    bundle.save_pretrained(directory)
    return chosen + [directory]


def main(model: str | None = None, device: str = "cpu", repeats: int = 10, clips: int = 64,
         threads: tuple[int, ...] = (1, 2), as_json: bool = False, runtime: str = "onnxruntime",
         compare: bool = True, with_compile: bool = False) -> dict:
    """Run the three measurements per model and torch thread count (side by side: on a shared machine one
    thread can beat two by far, because OpenMP workers stall waiting for each other), with the screener on
    `runtime`; then, with `compare`, the issue-28 comparison per thread count; print tables (or JSON)."""
    rng = np.random.default_rng(1)
    waves = [speechlike(float(rng.uniform(6, 14)), seed=i) for i in range(clips)]
    batch = [wav_bytes(wave) for wave in waves]
    audio_s = sum(len(wave) for wave in waves) / SAMPLE_RATE_HZ
    runs, comparisons = [], []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Settings.from_env({"BIOMARKER_HOME": str(Path(tmp) / "home"),
                                         "BIOMARKER_SECRET": "benchmark-only-secret-0000"}))
        initial_threads = torch.get_num_threads()
        try:
            for directory in bench_models(model, Path(tmp) / "tiny"):
                config = ScreenerConfig(runtime=RuntimeConfig(runtime, cache_dir=Path(tmp) / "onnx"))
                screener = Screener.load(directory, device=device, config=config)
                for count in threads:
                    torch.set_num_threads(count)
                    runs.append(_measure_all(screener, store, repeats, batch, audio_s))
                if compare and screener.device.type == "cpu":
                    eager = Screener.load(directory, device="cpu")
                    onnx, unfused = (Screener.load(directory, device="cpu", config=ScreenerConfig(
                        runtime=RuntimeConfig("onnxruntime", cache_dir=Path(tmp) / "onnx", fused_attention=fused)))
                        for fused in (True, False))
                    for count in threads:
                        torch.set_num_threads(count)
                        comparisons.append(_compare(eager, onnx, unfused, repeats, with_compile))
        finally:
            torch.set_num_threads(initial_threads)
            store.close()
    report = {"device": screener.device_name, "cpu": cpu_name(), "runs": runs, "comparisons": comparisons,
              "goals": {"ratio_le": GOAL_RATIO, "end_to_end_ms_le": GOAL_E2E_MS, "throughput_x_ge": GOAL_THROUGHPUT_X,
                        "forward_vs_floor_le": GOAL_FORWARD_FLOOR, "end_to_end_vs_floor_le": GOAL_E2E_FLOOR,
                        "end_to_end_vs_egemaps_le": GOAL_VS_EGEMAPS}}
    tables = [_table(report, run) for run in runs] + [_comparison_table(report, c) for c in comparisons]
    print(json.dumps(report, indent=1) if as_json else "\n\n".join(tables))
    return report


def _cpu_flash_attention_flops(query, key, value, *_, out_shape=None, **__) -> int:
    return sdpa_flop_count(query, key, value)


# torch's counter has a formula for the CUDA attention kernels but none for the fused CPU one, which it then counts
# as 0 FLOPs: the shipped screener's forward read as 3.82 GFLOP instead of 5.78, a floor a third too low.
CPU_ATTENTION_FLOPS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention_flops}


def counting_flops() -> FlopCounterMode:
    """torch.utils.flop_counter's counter with the CPU attention kernel included (QK^T and attention x V:
    4 * heads * N^2 * head_dim per block)."""
    return FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS)


def _baselines(clips: int = 8) -> dict[str, LogisticBaseline]:
    """eGeMAPS + LR and MFCC-statistics + LR fitted on a few speech-like clips (random labels: what is timed is the
    pipeline, whose cost does not depend on what the regression learnt)."""
    recordings = [speechlike(float(8 + index % 4), seed=500 + index) for index in range(clips)]
    labels = [index % 2 for index in range(clips)]
    return {name: LogisticBaseline(features=name).fit(recordings, labels) for name in ("egemaps", "mfcc-stats")}


def _compare(eager: Screener, onnx: Screener, unfused: Screener, repeats: int, with_compile: bool) -> dict:
    """The issue-28 comparison at the current thread count, all in one interleaved `measure`: the 10 s clip from
    bytes to a probability through ours (eager, ONNX Runtime) and the two classic pipelines; the forward in each
    runtime candidate (ONNX Runtime also on the graph as exported, without the fused-attention pass); and a GEMM of
    the model's own shape, whose rate turns the counted FLOPs into a floor."""
    data = wav_bytes(speechlike(10.0, seed=0))
    recording = eager.load_audio(data)
    waveform = torch.from_numpy(recording.samples)[None]  # [1, S]
    lengths = torch.tensor([waveform.shape[1]])
    with torch.inference_mode():
        features, frames = eager.extractor(waveform, lengths)
    model, cohort = eager.model, eager.model.resolve_cohort(None)
    with torch.inference_mode(), counting_flops() as counter:
        reference = model.recording_logits(features, frames, cohort)
    flops = counter.get_total_flops()
    with torch.inference_mode():
        tokens = model.encoder.tokenize(features, frames).embeddings.shape[1]
    width = model.encoder.embed_dim
    left, right = torch.randn(tokens, width), torch.randn(width, 4 * width)  # the MLP's first GEMM
    gemm_flops = 2 * tokens * width * 4 * width
    candidates: dict[str, Callable[[], torch.Tensor]] = {
        "forward_eager": inference(lambda: model.recording_logits(features, frames, cohort)),
        "forward_onnxruntime": inference(lambda: onnx.onnx.logits(features, frames, cohort)),
        "forward_onnxruntime_unfused": inference(lambda: unfused.onnx.logits(features, frames, cohort)),
    }
    int8 = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
    candidates["forward_int8_dynamic"] = inference(lambda: int8.recording_logits(features, frames, cohort))
    compile_s = None
    if with_compile:
        compiled = torch.compile(lambda f, n: model.recording_logits(f, n, cohort), dynamic=True)
        started = time.perf_counter()
        with torch.inference_mode():
            compiled(features, frames)
        compile_s = round(time.perf_counter() - started, 1)
        candidates["forward_torch_compile"] = inference(lambda: compiled(features, frames))
    logit_shift = {name: float((run().float() - reference).abs().max()) for name, run in candidates.items()}
    baselines = _baselines()
    runs = {
        "end_to_end_eager": lambda: eager.score(data),
        "end_to_end_onnxruntime": lambda: onnx.score(data),
        **{f"end_to_end_{name}_lr": (lambda b=baseline: b.logits([load(data).samples]))
           for name, baseline in baselines.items()},
        **candidates,
        "gemm": lambda: left @ right,
    }
    timings = measure(runs, repeats)
    gemm = timings.pop("gemm")
    rate_wall, rate_cpu = gemm_flops / gemm.wall_ms / 1e6, gemm_flops / gemm.cpu_ms / 1e6  # GFLOP/s
    floor = Timing(flops / rate_wall / 1e6, flops / rate_cpu / 1e6)

    def ratios(timing: Timing, base: Timing) -> dict:
        return {"wall": round(timing.wall_ms / base.wall_ms, 2), "cpu": round(timing.cpu_ms / base.cpu_ms, 2)}

    chosen = timings["end_to_end_onnxruntime"]
    return {
        "model": eager.model_label, "torch_threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2), "clip_s": 10.0,
        "forward_gflop": round(flops / 1e9, 3), "gemm_gflop_per_s": {"wall": round(rate_wall, 1), "cpu": round(rate_cpu, 1)},
        "floor": _rounded(floor), "timings": {name: _rounded(timing) for name, timing in timings.items()},
        "logit_shift_vs_eager": {name: float(f"{shift:.2g}") for name, shift in logit_shift.items()},
        "torch_compile_first_call_s": compile_s,
        "ratios": {
            "forward_eager_vs_floor": ratios(timings["forward_eager"], floor),
            "forward_onnxruntime_vs_floor": ratios(timings["forward_onnxruntime"], floor),
            "end_to_end_onnxruntime_vs_floor": ratios(chosen, floor),
            "end_to_end_onnxruntime_vs_egemaps_lr": ratios(chosen, timings["end_to_end_egemaps_lr"]),
            "end_to_end_onnxruntime_vs_mfcc_stats_lr": ratios(chosen, timings["end_to_end_mfcc-stats_lr"]),
            "end_to_end_onnxruntime_vs_eager": ratios(chosen, timings["end_to_end_eager"]),
            "forward_onnxruntime_vs_unfused": ratios(timings["forward_onnxruntime"],
                                                     timings["forward_onnxruntime_unfused"]),
            **{f"{name}_vs_eager": ratios(timings[name], timings["forward_eager"]) for name in candidates
               if name != "forward_eager"},
        },
    }


def _comparison_table(header: dict, report: dict) -> str:
    lines = [
        f"against the alternatives and the floor: {report['model']} on {header['cpu']}, {report['torch_threads']} "
        f"torch threads, load average {report['load_average_1min']}; forward {report['forward_gflop']} GFLOP, GEMM "
        f"{report['gemm_gflop_per_s']['wall']} GFLOP/s wall ({report['gemm_gflop_per_s']['cpu']} per CPU second) "
        f"-> floor {report['floor']['wall_ms']} ms wall / {report['floor']['cpu_ms']} ms CPU",
        "                                          wall ms      CPU ms   max |logit - eager|",
    ]
    for name, timing in report["timings"].items():
        shift = report["logit_shift_vs_eager"].get(name)
        lines.append(f"  {name:<38}{timing['wall_ms']:>9.1f}   {timing['cpu_ms']:>9.1f}"
                     + ("" if shift is None else f"   {shift:.1e}"))
    if report["torch_compile_first_call_s"] is not None:
        lines.append(f"  torch.compile first call (compilation): {report['torch_compile_first_call_s']} s")
    goals = {"forward_onnxruntime_vs_floor": GOAL_FORWARD_FLOOR, "end_to_end_onnxruntime_vs_floor": GOAL_E2E_FLOOR,
             "end_to_end_onnxruntime_vs_egemaps_lr": GOAL_VS_EGEMAPS}
    lines.append("  ratios (wall / CPU)")
    for name, ratio in report["ratios"].items():
        goal = f"   goal <= {goals[name]}" if name in goals else ""
        lines.append(f"    {name:<52}{ratio['wall']:>6.2f} / {ratio['cpu']:<6.2f}{goal}")
    return "\n".join(lines)


def _measure_all(screener: Screener, store: Store, repeats: int, batch: list[bytes], audio_s: float) -> dict:
    """One 10 s clip end to end and in parts, then the batch, at the current torch thread count."""
    actor = UserInfo("bench", "admin", site="bench")
    # A new recording per call, as in a clinic: each one is really written to the audio folder.
    clips = iter([wav_bytes(speechlike(10.0, seed=next(_NEW_CLIP_SEEDS))) for _ in range(repeats + 2)])
    data = wav_bytes(speechlike(10.0, seed=0))
    counter = iter(range(10**9))
    recording = screener.load_audio(data)
    score = screener.assess_recording(recording).score
    waveform = torch.from_numpy(recording.samples)[None].to(screener.device)  # [1, S]
    lengths = torch.tensor([waveform.shape[1]], device=screener.device)
    snr_db = torch.tensor([score.quality.snr_db], device=screener.device)
    with torch.inference_mode():
        features, frames = screener.extractor(waveform, lengths)
    timings = measure({
        "end_to_end": lambda: screen_and_record(screener, store, next(clips), name="bench.wav", actor=actor,
                                                patient_id=f"bench-{next(counter)}"),
        "encoder_forward": inference(lambda: screener.model.encoder(features, frames)),
        "decode": lambda: screener.load_audio(data),
        "quality_gate": lambda: require_quality(recording, screener.config.quality),
        "front_end": inference(lambda: screener.extractor(waveform, lengths)),
        "model_call": inference(lambda: screener.model.probability(features, frames, snr_db=snr_db)),
        "store_write": lambda: store.record_result(
            score, actor=actor, audio_path=store.save_audio(data), duration_s=recording.duration_s,
            sample_rate_hz=recording.sample_rate_hz, patient_id=f"bench-{next(counter)}"),
    }, repeats)
    end_to_end, forward = timings.pop("end_to_end"), timings.pop("encoder_forward")
    parts = timings

    screener.score_many(batch[:2])
    wall, cpu = time.perf_counter(), time.process_time()
    results = screener.score_many(batch)
    batch_wall_s, batch_cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    threads = torch.get_num_threads()
    return {
        "model": screener.model_label,
        "encoder_parameters": sum(p.numel() for p in screener.model.encoder.parameters()),
        "torch_threads": threads,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "clip_s": 10.0,
        "end_to_end": _rounded(end_to_end),
        "encoder_forward": _rounded(forward),
        "parts": {name: _rounded(timing) for name, timing in parts.items()},
        "ratio_wall": round(end_to_end.wall_ms / forward.wall_ms, 2),
        "ratio_cpu": round(end_to_end.cpu_ms / forward.cpu_ms, 2),
        "batch_clips": len(batch),
        "batch_audio_s": round(audio_s, 1),
        "batch_wall_s": round(batch_wall_s, 2),
        "batch_cpu_s": round(batch_cpu_s, 2),
        "throughput_x_realtime_wall": round(audio_s / batch_wall_s, 1),
        # If the process had the cores to itself: CPU seconds spread over `threads` cores.
        "throughput_x_realtime_cpu": round(audio_s / (batch_cpu_s / threads), 1),
        "batch_rejected": sum(not hasattr(result, "probability") for result in results),
    }


def _rounded(timing: Timing) -> dict:
    return {"wall_ms": round(timing.wall_ms, 1), "cpu_ms": round(timing.cpu_ms, 1)}


def _table(header: dict, report: dict) -> str:
    e2e, forward = report["end_to_end"], report["encoder_forward"]
    lines = [
        f"scoring benchmark: {report['model']} ({report['encoder_parameters'] / 1e6:.2f} M encoder parameters) "
        f"on {header['device']} ({header['cpu']}, "
        f"{report['torch_threads']} torch threads, load average {report['load_average_1min']})",
        "                                     wall ms      CPU ms",
        f"  10 s clip, bytes -> stored row  {e2e['wall_ms']:>9.1f}   {e2e['cpu_ms']:>9.1f}   goal <= {GOAL_E2E_MS:.0f} ms",
        f"  encoder forward alone           {forward['wall_ms']:>9.1f}   {forward['cpu_ms']:>9.1f}",
        f"  ratio end to end / forward      {report['ratio_wall']:>9.2f}   {report['ratio_cpu']:>9.2f}   goal <= {GOAL_RATIO}",
    ]
    lines += [f"    {name:<28}{t['wall_ms']:>9.1f}   {t['cpu_ms']:>9.1f}" for name, t in report["parts"].items()]
    lines.append(
        f"  batch: {report['batch_clips']} clips, {report['batch_audio_s']} s of audio: {report['batch_wall_s']} s wall"
        f" = {report['throughput_x_realtime_wall']}x real time; {report['batch_cpu_s']} CPU s = "
        f"{report['throughput_x_realtime_cpu']}x on {report['torch_threads']} free cores   goal >= {GOAL_THROUGHPUT_X:.0f}x"
    )
    return "\n".join(lines)
