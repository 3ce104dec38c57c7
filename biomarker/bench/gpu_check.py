"""The GPU path check behind `scripts/gpu_check.sh`: one JSON that proves the CUDA path and prints the table.

What it measures, and why each number is there:
- scan agreement: every available scan backend on the chosen device against the sequential reference computed
  in float64 on the CPU (goal <= 1e-4 relative in fp32), so a fast kernel that drifts is caught on the card.
- scoring latency: a 10 s clip through `Screener` (bytes -> calibrated probability), through the app's path to a
  stored row, and in parts (decode, quality gate, features, model), median of repeated runs after warm-up with
  the device synchronised (goal <= 10 ms); for the shipped screener and untrained SSAMBA-tiny / SSAST-tiny bundles.
  On CUDA the screener replays CUDA graphs; the same path without them (`end_to_end_eager_ms`) is timed beside it.
- the SSAMBA-tiny vs SSAST-tiny table at 512 ... 22k tokens (batch 1, fp32, no grad): time and peak memory,
  with the ratios next to the SSAMBA paper's 0.076x time / 0.046x memory at ~22k tokens.
- pretraining steps per second (masked objective, 8 x 4 s crops) on the device vs the CPU of the same machine.
With `--quick` every size is cut down so CI runs the same code on two CPU cores in a minute.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import soundfile as sf
import torch

from biomarker.audio import require_quality
from biomarker.bench.timing import measure_one, synchronizer
from biomarker.device import autocast, describe, mamba_kernel_available, pick_device, precision_for
from biomarker.models import ScreeningModel, create_model, from_pretrained
from biomarker.nn.scan import selective_scan
from biomarker.nn.scan_triton import triton_available
from biomarker.pretrain.objective import MaskedTokenObjective
from biomarker.screener import DEFAULT_MODEL, PRETRAINED_DIR, Screener, ScreenerConfig, screen_and_record
from biomarker.settings import Settings
from biomarker.store import Store, UserInfo

PAPER_RATIOS_22K = {"time": 0.076, "memory": 0.046}  # SSAMBA README: 92.7% faster, 95.4% less memory (tiny)


@dataclass(frozen=True)
class CheckSizes:
    """Sizes of every measurement; `quick` keeps CI on CPU fast."""

    scan_lengths: tuple[int, ...]
    scan_channels: int
    encoder_tokens: tuple[int, ...]
    repeats: int
    pretrain_steps: int
    pretrain_batch: int
    model_overrides: tuple[tuple[str, Any], ...] = ()  # e.g. (("depth", 2),): cut models down for CI

    @property
    def overrides(self) -> dict[str, Any]:
        return dict(self.model_overrides)


FULL = CheckSizes((64, 513, 4096), 384, (512, 2048, 8192, 22000), 10, 20, 8)
QUICK = CheckSizes((7, 64), 16, (64,), 1, 1, 2, (("depth", 1), ("embed_dim", 48)))


def _median_ms(run: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median wall time in ms after one warm-up run, the device synchronised around each run."""
    return measure_one(run, repeats, device=device).wall_ms


# ------------------------------------------------------------------------------------------------ scan
def scan_agreement(device: torch.device, sizes: CheckSizes) -> list[dict[str, Any]]:
    """Max |backend - reference| / max |reference| for outputs and input gradients, per backend and length."""
    backends = ["torch"]
    if device.type == "cuda":
        backends += ["triton"] if triton_available() else []
        backends += ["cuda"] if mamba_kernel_available() else []
    rows = []
    generator = torch.Generator().manual_seed(0)
    d, n = sizes.scan_channels, 16
    for length in sizes.scan_lengths:
        inputs = {
            "u": torch.randn(2, d, length, generator=generator),
            "delta": torch.randn(2, d, length, generator=generator) * 0.5,
            "A": -torch.rand(d, n, generator=generator) * 4 - 0.1,
            "B": torch.randn(2, n, length, generator=generator),
            "C": torch.randn(2, n, length, generator=generator),
            "D": torch.randn(d, generator=generator),
            "z": torch.randn(2, d, length, generator=generator),
            "delta_bias": torch.randn(d, generator=generator) * 0.1,
        }
        reference, reference_grads = _scan_with_grads(selective_scan, inputs, torch.device("cpu"), torch.float64, "reference")
        scale = reference.abs().max().item()
        for backend in backends:
            output, grads = _scan_with_grads(selective_scan, inputs, device, torch.float32, backend)
            grad_error = max(
                ((grads[k].double().cpu() - reference_grads[k]).abs().max() / reference_grads[k].abs().max().clamp_min(1e-30)).item()
                for k in grads
            )
            rows.append({
                "backend": backend, "device": device.type, "length": length,
                "output_rel_error": ((output.double().cpu() - reference).abs().max() / scale).item(),
                "grad_rel_error": grad_error,
            })
    return rows


def _scan_with_grads(scan: Callable, inputs: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype,
                     backend: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    leaves = {k: v.to(device, dtype).requires_grad_(True) for k, v in inputs.items()}
    y = scan(**leaves, delta_softplus=True, backend=backend)
    weights = torch.linspace(-1, 1, y.numel(), dtype=dtype, device=device).reshape(y.shape)
    (y * weights).sum().backward()
    return y.detach(), {k: v.grad.detach() for k, v in leaves.items()}


# --------------------------------------------------------------------------------------------- scoring
def speech_like_clip(seconds: float = 10.0, sample_rate_hz: int = 16000, seed: int = 0) -> bytes:
    """A voiced, syllable-rhythmic test signal as 16-bit WAV bytes (the GPU machine has no espeak-ng).

    Speed does not depend on content, but the clip must pass the quality gate like speech would."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate_hz)) / sample_rate_hz
    f0 = 120 + 15 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate_hz
    voiced = sum(np.sin(k * phase) / k for k in range(1, 25))
    syllables = (np.sin(2 * np.pi * 4.0 * t) > -0.2).astype(float) * (np.sin(2 * np.pi * 0.3 * t) > -0.7)
    signal = 0.3 * voiced * syllables + 0.002 * rng.standard_normal(len(t))
    buffer = io.BytesIO()
    sf.write(buffer, (signal / np.abs(signal).max() * 0.5).astype(np.float32), sample_rate_hz, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def tiny_screening_model(sizes: CheckSizes, encoder: str = "ssamba-tiny") -> torch.nn.Module:
    """A randomly initialised screening bundle around `encoder` (cost does not depend on the weights)."""
    bundle = ScreeningModel(create_model(encoder, **sizes.overrides), name=f"random-{encoder}", version="gpu-check")
    bundle.add_cohort("default")
    return bundle


def scoring_models(sizes: CheckSizes) -> list[torch.nn.Module]:
    """What the latency goal is checked on: the shipped screener (full sizes, when present) and the two tiny
    encoders of the product, SSAMBA-tiny and SSAST-tiny, as untrained bundles."""
    shipped = PRETRAINED_DIR / DEFAULT_MODEL
    models = [from_pretrained(shipped)] if (shipped / "config.json").is_file() and not sizes.model_overrides else []
    return models + [tiny_screening_model(sizes, name) for name in ("ssamba-tiny", "ssast-tiny-patch")]


def scoring_latency(device: torch.device, sizes: CheckSizes) -> list[dict[str, Any]]:
    """Per model: a 10 s clip bytes -> calibrated probability (the `Screener` path), bytes -> stored row (the
    app's `screen_and_record`, SQLite with its audit events), and the parts, each a synchronised median."""
    clip = speech_like_clip()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Settings.from_env({"BIOMARKER_HOME": tmp, "BIOMARKER_SECRET": "gpu-check-only-secret-000"}))
        actor = UserInfo("gpu-check", "admin", site="gpu-check")
        try:
            for model in scoring_models(sizes):
                screener = Screener(model, device)  # CUDA graphs on CUDA (the default), eager on the CPU
                eager = Screener(model, device, ScreenerConfig(graphs=None))
                recording = screener.load_audio(clip, name="gpu-check-10s")
                lengths = torch.tensor([len(recording.samples)], device=device)
                waveform = torch.from_numpy(recording.samples.astype(np.float32))[None].to(device)
                snr_db = torch.tensor([require_quality(recording, screener.config.quality).snr_db], device=device)
                with torch.inference_mode():
                    features, frame_lengths = screener.extractor(waveform, lengths)

                def timed(run: Callable[[], object], inference: bool = True) -> float:
                    def once() -> object:
                        with torch.inference_mode(inference):
                            return run()
                    return round(_median_ms(once, device, sizes.repeats), 2)

                rows.append({
                    "model": screener.model_label,
                    "encoder_parameters": sum(p.numel() for p in screener.model.encoder.parameters()),
                    "clip_s": recording.duration_s,
                    "end_to_end_ms": timed(lambda: screener.score(clip), inference=False),
                    "end_to_end_eager_ms": timed(lambda: eager.score(clip), inference=False),
                    "cuda_graphs": screener.graphed is not None,
                    "end_to_end_stored_ms": timed(lambda: screen_and_record(screener, store, clip, name="gpu-check.wav",
                                                                            actor=actor), inference=False),
                    "decode_ms": timed(lambda: screener.load_audio(clip), inference=False),
                    "quality_gate_ms": timed(lambda: require_quality(recording, screener.config.quality), inference=False),
                    "features_ms": timed(lambda: screener.extractor(waveform, lengths)),
                    "model_forward_ms": timed(lambda: screener.model.probability(features, frame_lengths, snr_db=snr_db)),
                    **({"model_forward_graphed_ms": timed(lambda: screener.model.calibrate(
                        screener.graphed.logits(features, frame_lengths), snr_db=snr_db))} if screener.graphed else {}),
                    "goal_ms": 10.0,
                })
        finally:
            store.close()
    return rows


# -------------------------------------------------------------------------------------------- encoders
ENCODERS = {"ssamba-tiny": ("ssamba-tiny", {}), "ssast-tiny (sdpa)": ("ssast-tiny-patch", {"attention": "sdpa"}),
            "ssast-tiny (plain)": ("ssast-tiny-patch", {"attention": "plain"})}


def encoder_point(name: str, tokens: int, device: torch.device, repeats: int, overrides: dict[str, Any]) -> dict[str, Any]:
    """Forward of `encode` on token embeddings (batch 1, fp32, no grad): median ms and peak memory."""
    model_name, extra = ENCODERS[name]
    model = create_model(model_name, **{**overrides, **extra}).to(device).eval()
    embeddings = torch.randn(1, tokens, model.embed_dim, device=device)
    lengths = torch.tensor([tokens], device=device)
    try:
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        with torch.no_grad():
            ms = _median_ms(lambda: model.encode(embeddings, lengths), device, repeats)
        peak_mb = (torch.cuda.max_memory_allocated(device) - base) / 2**20 if device.type == "cuda" else None
        return {"encoder": name, "tokens": tokens, "ms": ms, "peak_mb": peak_mb}
    except torch.OutOfMemoryError:
        return {"encoder": name, "tokens": tokens, "error": "out of memory"}
    finally:
        del model, embeddings


def encoder_table(device: torch.device, sizes: CheckSizes) -> dict[str, Any]:
    points = [encoder_point(name, n, device, max(1, sizes.repeats // 2), sizes.overrides) for n in sizes.encoder_tokens for name in ENCODERS]
    by = {(p["encoder"], p["tokens"]): p for p in points}
    ratios = []
    for n in sizes.encoder_tokens:
        mamba = by[("ssamba-tiny", n)]
        row: dict[str, Any] = {"tokens": n}
        for baseline in ("ssast-tiny (sdpa)", "ssast-tiny (plain)"):
            other = by[(baseline, n)]
            if "error" in mamba or "error" in other:
                continue
            key = baseline.split("(")[1].rstrip(")")
            row[f"time_vs_{key}"] = mamba["ms"] / other["ms"]
            if mamba["peak_mb"] is not None and other["peak_mb"]:
                row[f"memory_vs_{key}"] = mamba["peak_mb"] / other["peak_mb"]
        ratios.append(row)
    return {"points": points, "ratios": ratios, "paper_ratios_22k_vs_ssast": PAPER_RATIOS_22K}


# ------------------------------------------------------------------------------------------ pretraining
def pretrain_steps_per_second(device: torch.device, sizes: CheckSizes, model_name: str) -> float:
    """Masked-objective training steps per second (8 x 4 s fbank crops), bf16 autocast on CUDA."""
    torch.manual_seed(0)
    objective = MaskedTokenObjective(create_model(model_name, **sizes.overrides)).to(device).train()
    optimizer = torch.optim.AdamW(objective.parameters(), lr=1e-4)
    frames = 400  # 4 s at 10 ms
    features = torch.randn(sizes.pretrain_batch, frames, 128, device=device)
    lengths = torch.full((sizes.pretrain_batch,), frames, device=device)
    dtype = precision_for(device).train_autocast_dtype

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            losses = objective(features, lengths)
        losses["loss"].backward()
        optimizer.step()

    sync = synchronizer(device)
    step()
    sync()
    start = time.perf_counter()
    for _ in range(sizes.pretrain_steps):
        step()
    sync()
    return sizes.pretrain_steps / (time.perf_counter() - start)


def pretraining(device: torch.device, sizes: CheckSizes) -> list[dict[str, Any]]:
    rows = []
    for name in ("ssast-tiny-patch", "ssamba-tiny"):
        row: dict[str, Any] = {"model": name, "device": device.type,
                               "steps_per_s": pretrain_steps_per_second(device, sizes, name)}
        if device.type == "cuda":
            cpu_sizes = dataclasses.replace(sizes, pretrain_steps=2)
            row["cpu_steps_per_s"] = pretrain_steps_per_second(torch.device("cpu"), cpu_sizes, name)
            row["speedup_vs_cpu"] = row["steps_per_s"] / row["cpu_steps_per_s"]
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------ main
def run(device_name: str, quick: bool) -> dict[str, Any]:
    device = pick_device(device_name)
    sizes = QUICK if quick else FULL
    result: dict[str, Any] = {
        "device": describe(device), "torch": torch.__version__, "host": platform.node(),
        "cpu_threads": torch.get_num_threads(), "quick": quick,
    }
    sections: dict[str, Callable[[], Any]] = {
        "scan_agreement": lambda: scan_agreement(device, sizes),
        "scoring_latency": lambda: scoring_latency(device, sizes),
        "encoders": lambda: encoder_table(device, sizes),
        "pretraining": lambda: pretraining(device, sizes),
    }
    failures = []
    for key, section in sections.items():
        started = time.perf_counter()
        try:
            result[key] = section()
        except Exception as error:  # one broken section must not hide the others' numbers; the exit code says it
            result[key] = {"error": f"{type(error).__name__}: {error}"}
            failures.append(key)
        print(f"[{key}] {time.perf_counter() - started:.1f} s", flush=True)
    worst = max((r["output_rel_error"] for r in result.get("scan_agreement", []) if isinstance(r, dict)), default=None)
    result["scan_ok"] = worst is not None and worst <= 1e-4
    result["failed_sections"] = failures
    return result


def format_table(result: dict[str, Any]) -> str:
    lines = [f"device: {result['device']}  torch {result['torch']}"]
    for row in result.get("scan_agreement", []) if isinstance(result.get("scan_agreement"), list) else []:
        lines.append(f"scan {row['backend']:<6} L={row['length']:<5} out {row['output_rel_error']:.1e}  grad {row['grad_rel_error']:.1e}")
    for row in result.get("scoring_latency", []) if isinstance(result.get("scoring_latency"), list) else []:
        graphed = f", graphed {row['model_forward_graphed_ms']:.1f}" if "model_forward_graphed_ms" in row else ""
        lines.append(f"scoring 10 s clip, {row['model']:<30} bytes->probability {row['end_to_end_ms']:6.1f} ms "
                     f"(eager {row['end_to_end_eager_ms']:.1f}; stored row {row['end_to_end_stored_ms']:.1f}; decode "
                     f"{row['decode_ms']:.1f}, gate {row['quality_gate_ms']:.1f}, features {row['features_ms']:.1f}, "
                     f"model {row['model_forward_ms']:.1f}{graphed})")
    encoders = result.get("encoders", {})
    for p in encoders.get("points", []):
        lines.append(f"{p['encoder']:<20} {p['tokens']:>6} tokens  " + (p["error"] if "error" in p else
                     f"{p['ms']:9.2f} ms  " + (f"{p['peak_mb']:9.1f} MB" if p["peak_mb"] is not None else "")))
    for r in encoders.get("ratios", []):
        lines.append("ratio ssamba/ssast @%d: " % r["tokens"] + ", ".join(f"{k} {v:.3f}" for k, v in r.items() if k != "tokens"))
    for r in result.get("pretraining", []) if isinstance(result.get("pretraining"), list) else []:
        lines.append(f"pretrain {r['model']:<17} {r['steps_per_s']:.2f} steps/s" + (f" (cpu {r['cpu_steps_per_s']:.2f}, x{r['speedup_vs_cpu']:.1f})" if "cpu_steps_per_s" in r else ""))
    for key in result.get("failed_sections", []):
        lines.append(f"FAILED {key}: {result[key]['error']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.device, args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(format_table(result))
    return 1 if result["failed_sections"] or not result["scan_ok"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
