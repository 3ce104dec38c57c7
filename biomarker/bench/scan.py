"""`biomarker bench scan`: the sequential loop against our fast selective scans, forward and forward+backward.

Shapes are SSAMBA-tiny's: d = 384 (d_inner), n = 16, Mamba-initialised A and dt, fp32. Each time is the
median of `repeats` runs after one warm-up (the machine may be shared, so the load average is recorded too).
Peak memory of each point comes from a fresh subprocess: ru_maxrss after the scan minus ru_maxrss once the
inputs exist (on CUDA: max_memory_allocated over the same span), so one point's garbage never inflates the
next. The report names the CPU or GPU, the thread count and the torch version; it is written as a markdown
table, a JSON file and a PNG plot under `out`.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from biomarker.bench.features import cpu_name
from biomarker.bench.timing import measure_one
from biomarker.device import describe, pick_device
from biomarker.nn.scan import resolve_backend, selective_scan

LOOP = "reference"
SLOW_S = 10.0


@dataclass(frozen=True)
class ScanShape:
    """One benchmark point: batch, channels (d_inner), state size, length."""

    batch: int = 1
    dim: int = 384
    state: int = 16
    length: int = 4096


@dataclass
class ScanBenchConfig:
    lengths: tuple[int, ...] = (512, 1024, 2048, 4096)
    batch_points: tuple[tuple[int, int], ...] = ((8, 512),)  # (batch, length): SSAMBA-tiny's training step
    memory_lengths: tuple[int, ...] = (4096, 22000)
    loop_backward_max_length: int = 4096  # the loop's fwd+bwd at 22k would hold ~10 GB; it is not run there
    repeats: int = 5
    dim: int = 384
    state: int = 16
    device: str = "auto"
    threads: int = field(default_factory=torch.get_num_threads)


def make_inputs(shape: ScanShape, device: torch.device, requires_grad: bool) -> dict[str, torch.Tensor]:
    """SSAMBA-like inputs: S4D-real A, dt = softplus(delta + bias) with bias for dt in [1e-3, 1e-1]."""
    g = torch.Generator().manual_seed(0)
    b, d, n, length = shape.batch, shape.dim, shape.state, shape.length
    dt0 = torch.exp(torch.rand(d, generator=g) * (torch.log(torch.tensor(0.1)) - torch.log(torch.tensor(1e-3))) + torch.log(torch.tensor(1e-3)))
    inputs = {
        "u": torch.randn(b, d, length, generator=g),
        "delta": torch.randn(b, d, length, generator=g) * 0.5,
        "A": -torch.arange(1, n + 1, dtype=torch.float32).repeat(d, 1),
        "B": torch.randn(b, n, length, generator=g),
        "C": torch.randn(b, n, length, generator=g),
        "D": torch.ones(d),
        "z": torch.randn(b, d, length, generator=g),
        "delta_bias": dt0 + torch.log(-torch.expm1(-dt0)),
    }
    return {k: v.to(device).requires_grad_(requires_grad) for k, v in inputs.items()}


def run_scan(inputs: dict[str, torch.Tensor], backend: str, backward: bool) -> None:
    """One scan as SSAMBA calls it (D, z, softplus), optionally followed by the gradient of every input.

    `autograd.grad` rather than `.backward()`: accumulating into `.grad` between repeats is not scan work.
    """
    if backward:
        out = selective_scan(**inputs, delta_softplus=True, backend=backend)
        torch.autograd.grad(out, list(inputs.values()), torch.ones_like(out))
    else:
        with torch.no_grad():
            selective_scan(**inputs, delta_softplus=True, backend=backend)


def median_seconds(inputs, backend: str, backward: bool, repeats: int, device: torch.device) -> tuple[float, float]:
    """Median wall seconds and median process CPU seconds (all threads) per call, after one warm-up.

    A point whose warm-up takes longer than SLOW_S is reported from that single run.

    CPU seconds are reported beside wall time because a shared machine stretches wall time with other
    people's load, while the CPU work a scan needs stays roughly the same.
    """
    # the loop at large sizes: its warm-up is the measurement (slow_ms)
    timing = measure_one(lambda: run_scan(inputs, backend, backward), repeats, device=device, slow_ms=SLOW_S * 1000.0)
    return timing.wall_s, timing.cpu_s


def peak_memory_child(request: str) -> None:
    """Entry point of the fresh process: one scan, print its peak-memory rise in MB as JSON."""
    spec = json.loads(request)
    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    inputs = make_inputs(ScanShape(**spec["shape"]), device, spec["backward"])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        run_scan(inputs, spec["backend"], spec["backward"])
        torch.cuda.synchronize(device)
        rise_mb = (torch.cuda.max_memory_allocated(device) - before) / 2**20
    else:
        _reset_peak_rss()
        before = _peak_rss_kib()
        run_scan(inputs, spec["backend"], spec["backward"])
        rise_mb = (_peak_rss_kib() - before) / 1024
    print(json.dumps({"peak_rise_mb": rise_mb}))


def _peak_rss_kib() -> int:
    """The RSS high-water mark: VmHWM, which `_reset_peak_rss` lowers (getrusage's ru_maxrss may keep the
    import's peak and read a rise of 0), else ru_maxrss where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _reset_peak_rss() -> None:
    """Lower the process's RSS high-water mark to its current RSS (Linux: write 5 to /proc/self/clear_refs).

    Importing torch touches more memory than it keeps, so without this the scan's rise can hide under the
    import's peak and ru_maxrss reads 0.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # not Linux: the rise may be under-reported; the table says it comes from ru_maxrss


def peak_memory_mb(shape: ScanShape, backend: str, backward: bool, device: torch.device, threads: int) -> float:
    request = json.dumps({"shape": asdict(shape), "backend": backend, "backward": backward, "device": str(device), "threads": threads})
    code = "import sys; from biomarker.bench.scan import peak_memory_child; peak_memory_child(sys.argv[1])"
    done = subprocess.run([sys.executable, "-c", code, request], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_rise_mb"]


def fast_backends(device: torch.device) -> list[str]:
    """The fast backends this machine can run, best first as `auto` would pick them, then the portable one."""
    probe = torch.zeros(1, 1, 1, device=device)
    best = resolve_backend("auto", probe)
    return [best] if best == "torch" else [best, "torch"]


def machine(device: torch.device, threads: int) -> dict:
    return {
        "device": describe(device),
        "cpu": cpu_name(),
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_1min_at_start": os.getloadavg()[0],
    }


def main(config: ScanBenchConfig = ScanBenchConfig(), out: Path | None = None, as_json: bool = False) -> dict:
    """Time and measure every point, print the table (or JSON), write table, JSON and plot to `out`."""
    torch.set_num_threads(config.threads)
    device = pick_device(config.device)
    backends = [LOOP, *fast_backends(device)]
    report = {"machine": machine(device, config.threads), "shape": {"dim": config.dim, "state": config.state},
              "timing": [], "memory": []}

    points = [(1, length) for length in config.lengths] + list(config.batch_points)
    for batch, length in points:
        shape = ScanShape(batch, config.dim, config.state, length)
        for backward in (False, True):
            row = {"batch": batch, "length": length, "pass": "fwd+bwd" if backward else "fwd"}
            for backend in backends:
                inputs = make_inputs(shape, device, backward)
                row[f"{backend}_s"], row[f"{backend}_cpu_s"] = median_seconds(inputs, backend, backward, config.repeats, device)
            for backend in backends[1:]:
                row[f"speedup_{backend}"] = row[f"{LOOP}_s"] / row[f"{backend}_s"]
                row[f"cpu_speedup_{backend}"] = row[f"{LOOP}_cpu_s"] / row[f"{backend}_cpu_s"]
            report["timing"].append(row)
            _progress(row, as_json)

    for length in config.memory_lengths:
        shape = ScanShape(1, config.dim, config.state, length)
        for backward in (False, True):
            row = {"batch": 1, "length": length, "pass": "fwd+bwd" if backward else "fwd",
                   "full_state_tensor_mb": length * config.dim * config.state * 4 / 2**20}
            for backend in backends:
                if backend == LOOP and backward and length > config.loop_backward_max_length:
                    row[f"{backend}_mb"] = None
                    continue
                row[f"{backend}_mb"] = peak_memory_mb(shape, backend, backward, device, config.threads)
            report["memory"].append(row)
            _progress(row, as_json)

    table = format_table(report, backends)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "scan.json").write_text(json.dumps(report, indent=2))
        (out / "scan.md").write_text(table)
        plot(report, backends, out / "scan.png")
    print(json.dumps(report, indent=2) if as_json else table)
    return report


def _progress(row: dict, as_json: bool) -> None:
    if not as_json:
        print("  measured " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), file=sys.stderr)


def format_table(report: dict, backends: list[str]) -> str:
    m = report["machine"]
    lines = [f"Selective scan, d={report['shape']['dim']}, n={report['shape']['state']}, fp32, on {m['device']} "
             f"({m['cpu']}, {m['threads']} threads, torch {m['torch']}, load average {m['load_average_1min_at_start']:.1f} at start)",
             "", "Median wall seconds per call; speed-up = loop time / backend time, by wall time and (in brackets) by "
             "process CPU time, which a shared machine disturbs less.", ""]
    fast = backends[1:]
    lines.append("| batch | L | pass | " + " | ".join(f"{b} (s)" for b in backends) + " | " + " | ".join(f"loop/{b}" for b in fast) + " |")
    lines.append("|---" * (3 + len(backends) + len(fast)) + "|")
    for r in report["timing"]:
        lines.append(f"| {r['batch']} | {r['length']} | {r['pass']} | " + " | ".join(f"{r[f'{b}_s']:.4f}" for b in backends)
                     + " | " + " | ".join(f"{r[f'speedup_{b}']:.1f}x ({r[f'cpu_speedup_{b}']:.1f}x)" for b in fast) + " |")
    lines += ["", "Peak memory rise in MB (fresh process per cell; '-' = not run). A full (L, d, n) fp32 state tensor is shown for scale.", ""]
    lines.append("| L | pass | full (L,d,n) | " + " | ".join(backends) + " |")
    lines.append("|---" * (3 + len(backends)) + "|")
    for r in report["memory"]:
        cells = ["-" if r[f"{b}_mb"] is None else f"{r[f'{b}_mb']:.0f}" for b in backends]
        lines.append(f"| {r['length']} | {r['pass']} | {r['full_state_tensor_mb']:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(report: dict, backends: list[str], path: Path) -> None:
    """Time against L for each backend and batch size, forward and forward+backward side by side, log-log."""
    import matplotlib  # lazy: heavy (over a second on a busy 2-core machine); only plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, which in zip(axes, ("fwd", "fwd+bwd")):
        for batch in sorted({r["batch"] for r in report["timing"]}):
            rows = [r for r in report["timing"] if r["pass"] == which and r["batch"] == batch]
            for backend in backends:
                ax.plot([r["length"] for r in rows], [r[f"{backend}_s"] for r in rows], marker="o" if batch == 1 else "s",
                        label=f"{backend}, batch {batch}")
        if report["timing"]:
            ax.set(xscale="log", yscale="log")
        ax.set(xlabel="sequence length L", title=which)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("median seconds per scan")
    axes[0].legend()
    m = report["machine"]
    fig.suptitle(f"Selective scan d={report['shape']['dim']} n={report['shape']['state']} fp32 — {m['device']}, {m['cpu']}, {m['threads']} threads")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
