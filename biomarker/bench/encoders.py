"""`biomarker bench encoders`: SSAMBA-tiny against SSAST-tiny (SDPA and plain attention), and factorized
frequency-time attention against full attention.

What is measured, and why this way:
- Forward, batch 1, no grad, at growing token counts (512 = 10.24 s of audio at 16x16 patches, stride 16;
  22,000 = about 7 minutes, where SSAMBA's paper claims its advantage). The input is the token embeddings on an
  8-row patch grid (`encoder.encode`), so the front-end and the patch convolution, equal for both, stay out.
- A training step (forward, backward, AdamW) at 8 x 512 tokens, as in pretraining.
- Times: the encoders at one token count (and the three training steps) take turns in one process (SSAMBA,
  SSAST-SDPA, SSAST-plain, SSAMBA, ...), after one warm-up each, and each reports its median of `repeats` runs.
  This VM's speed drifts by ~30 % from minute to minute; timed one after another, in separate processes, that
  drift entered the ratios as noise (2.06x measured as 1.93-2.22x), interleaved every encoder sees the same
  machine (as `bench scoring`'s `measure` does). An encoder whose warm-up already took longer than `slow_s` is
  timed once (said in the table). Process CPU time is recorded beside wall time: on a shared, oversubscribed
  machine wall time measures the neighbours, and with one torch thread CPU time is the better estimate of the
  quiet-machine cost.
- Memory: every point also runs once in a fresh Python process, so its peak (ru_maxrss) is its own; "+MB" is
  the rise over that process's level after imports, model and inputs. A point whose fresh process fails or
  times out is reported with its error and left out of the timing.
- The time exponent is the least-squares slope of log time over log tokens.
- Factorized vs full attention on the 8 x 64 grid: attention FLOPs per layer from `attention_flops` and the
  median wall time of one attention layer (qkv, attention, projection) of SSAST-tiny, batch 8.
Inputs are seeded random tensors (speed does not depend on content), fp32, on the CPU threads torch was given.
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from biomarker.bench.features import cpu_name
from biomarker.bench.timing import measure, measure_one
from biomarker.models import create_model
from biomarker.nn.attention import SelfAttention, attention_flops
from biomarker.nn.tokens import TokenLayout

ENCODERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ssamba-tiny": ("ssamba-tiny", {}),
    "ssast-tiny (sdpa)": ("ssast-tiny-patch", {"attention": "sdpa"}),
    "ssast-tiny (plain)": ("ssast-tiny-patch", {"attention": "plain"}),
}
GRID_ROWS = 8  # frequency rows of 16x16 patches over 128 mel bins
DEFAULT_TOKENS = (512, 2048, 8192, 22000)


def _rss_mb() -> float:
    """Current resident memory of this process in MB (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build_run(encoder: str, mode: str, tokens: int, batch: int) -> Callable[[], None]:
    """The model, its seeded inputs and the closure that runs one point: a no-grad forward of `encode`, or a
    training step (forward, pooled loss, backward, AdamW)."""
    torch.manual_seed(0)
    name, overrides = ENCODERS[encoder]
    model = create_model(name, **overrides)
    embeddings = torch.randn(batch, tokens, model.embed_dim)
    lengths = torch.full((batch,), tokens)
    if mode == "forward":
        model.eval()

        def run() -> None:
            with torch.no_grad():
                model.encode(embeddings, lengths)

        return run
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        pooled = model.pool(model.encode(embeddings, lengths), lengths)
        pooled.square().mean().backward()
        optimizer.step()

    return step


def measure_point(encoder: str, mode: str, tokens: int, batch: int, threads: int) -> dict[str, Any]:
    """Peak memory of one point (one run), meant to run alone in a fresh process (see `run_point`)."""
    torch.set_num_threads(threads)
    run = build_run(encoder, mode, tokens, batch)
    baseline_mb = _rss_mb()
    run()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"encoder": encoder, "mode": mode, "tokens": tokens, "batch": batch, "peak_mb": peak_mb, "rise_mb": peak_mb - baseline_mb}


def run_point(timeout_s: float, **point: Any) -> dict[str, Any]:
    """Run `measure_point(**point)` in a fresh interpreter; a timeout or crash is reported, not hidden."""
    command = [sys.executable, "-m", "biomarker.bench.encoders", json.dumps(point)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {**point, "error": f"timed out after {timeout_s:.0f} s"}
    if done.returncode != 0:
        return {**point, "error": (done.stderr.strip().splitlines() or ["crashed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_interleaved(points: list[dict[str, Any]], repeats: int, slow_s: float, threads: int) -> None:
    """Add median wall and CPU seconds and the number of timed runs to each point, the points taking turns in
    this process (see the module docstring); a point whose warm-up took longer than `slow_s` is timed once."""
    torch.set_num_threads(threads)
    runs = {i: build_run(p["encoder"], p["mode"], p["tokens"], p["batch"]) for i, p in enumerate(points)}
    timings = measure(runs, repeats, slow_ms=slow_s * 1000.0)
    for i, point in enumerate(points):
        point["seconds"], point["cpu_seconds"], point["runs"] = timings[i].wall_s, timings[i].cpu_s, timings[i].runs


def plain_attention_gb(tokens: int, heads: int = 3) -> float:
    """Memory of the logits and weights plain attention materializes ([heads, N, N] fp32, twice)."""
    return 2 * heads * tokens * tokens * 4 / 1e9


def fitted_exponent(points: list[dict[str, Any]], clock: str = "seconds") -> float | None:
    """Least-squares slope of log(time) over log(tokens); None with fewer than two points."""
    good = [(math.log(p["tokens"]), math.log(p[clock])) for p in points if clock in p]
    if len(good) < 2:
        return None
    mean_x = sum(x for x, _ in good) / len(good)
    mean_y = sum(y for _, y in good) / len(good)
    return sum((x - mean_x) * (y - mean_y) for x, y in good) / sum((x - mean_x) ** 2 for x, _ in good)


def attention_layer_comparison(grid: tuple[int, int], batch: int, repeats: int, threads: int) -> list[dict[str, Any]]:
    """FLOPs and median wall time of one SSAST-tiny attention layer per mode on `grid` (in this process)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dim, heads = 192, 3
    rows, columns = grid
    x = torch.randn(batch, 1 + rows * columns, dim)
    layout = TokenLayout.build(torch.full((batch,), rows * columns), grid, num_prefix=1)
    results = []
    for mode in ("sdpa", "plain", "factorized"):
        layer = SelfAttention(dim, heads, mode).eval()
        with torch.no_grad():
            timing = measure_one(lambda: layer(x, layout), repeats)
        seconds, cpu_seconds = timing.wall_s, timing.cpu_s
        flops = attention_flops(grid, dim, mode, num_prefix=1)
        results.append({"mode": mode, "flops": flops, "seconds": seconds, "cpu_seconds": cpu_seconds})
    return results


def _ratio(a: dict | None, b: dict | None, key: str) -> float | None:
    if not a or not b or key not in a or key not in b:
        return None
    return a[key] / b[key]


def summarize(points: list[dict[str, Any]], tokens: list[int], clock: str = "seconds") -> dict[str, Any]:
    """The ratios issue 3 sets goals for, from the measured points; `clock` 'seconds' (wall) or 'cpu_seconds'."""

    def find(encoder: str, mode: str, n: int) -> dict | None:
        return next((p for p in points if p["encoder"] == encoder and p["mode"] == mode and p["tokens"] == n), None)

    def ratio(mode: str, n: int, other: str, key: str = clock) -> float | None:
        return _ratio(find(mamba, mode, n), find(other, mode, n), key)

    small, large = min(tokens), max(tokens)
    mamba, sdpa, plain = "ssamba-tiny", "ssast-tiny (sdpa)", "ssast-tiny (plain)"
    train = find(sdpa, "train", small) or {"batch": "?"}
    return {
        f"forward_{small}_ssamba_over_sdpa": ratio("forward", small, sdpa),
        f"train_{train['batch']}x{small}_ssamba_over_sdpa": ratio("train", small, sdpa),
        f"forward_{large}_ssamba_over_plain_time": ratio("forward", large, plain),
        f"forward_{large}_ssamba_over_plain_rise_mb": ratio("forward", large, plain, "rise_mb"),
        f"forward_{large}_ssamba_over_plain_peak_mb": ratio("forward", large, plain, "peak_mb"),
        f"forward_{large}_ssamba_over_sdpa_time": ratio("forward", large, sdpa),
        "time_exponent": {
            name: fitted_exponent([p for p in points if p["encoder"] == name and p["mode"] == "forward"], clock)
            for name in ENCODERS
        },
    }


def plot(points: list[dict[str, Any]], path: Path, title: str) -> None:
    """Time and peak-memory rise against tokens, log-log, one line per encoder."""
    import matplotlib  # lazy: heavy (over a second on a busy 2-core machine); only plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in ENCODERS:
        mine = sorted((p for p in points if p["encoder"] == name and p["mode"] == "forward" and "seconds" in p), key=lambda p: p["tokens"])
        if mine:
            left.plot([p["tokens"] for p in mine], [p["seconds"] for p in mine], marker="o", label=name)
            right.plot([p["tokens"] for p in mine], [p["rise_mb"] for p in mine], marker="o", label=name)
    for axis, label in ((left, "forward time, s (median)"), (right, "peak memory rise, MB")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("tokens (batch 1)")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(
    tokens: list[int] = list(DEFAULT_TOKENS),
    train_batch: int = 8,
    repeats: int = 3,
    slow_s: float = 20.0,
    timeout_s: float = 1800.0,
    max_plain_gb: float = 16.0,
    threads: int | None = None,
    plot_path: Path | None = Path("bench-encoders.png"),
    as_json: bool = False,
) -> dict[str, Any]:
    """Measure every point, print a table (or JSON), write the plot; return the result dict."""
    threads = threads or torch.get_num_threads()
    bad = [n for n in tokens if n % GRID_ROWS]
    if bad:
        raise ValueError(f"token counts must fill an {GRID_ROWS}-row patch grid (multiples of {GRID_ROWS}); got {bad}")
    points: list[dict[str, Any]] = []

    def measure_group(group: list[dict[str, Any]]) -> None:
        """Memory of each point in its own process, then the times of those that ran, interleaved here."""
        measured = [p if "error" in p else run_point(timeout_s, **p, threads=threads) for p in group]
        points.extend(measured)
        time_interleaved([p for p in measured if "error" not in p], repeats, slow_s, threads)

    for n in tokens:
        group = []
        for encoder in ENCODERS:
            group.append({"encoder": encoder, "mode": "forward", "tokens": n, "batch": 1})
            if encoder.endswith("(plain)") and plain_attention_gb(n) > max_plain_gb:
                group[-1]["error"] = f"skipped: plain attention needs ~{plain_attention_gb(n):.0f} GB > --max-plain-gb"
        measure_group(group)
    measure_group([{"encoder": encoder, "mode": "train", "tokens": min(tokens), "batch": train_batch} for encoder in ENCODERS])
    attention = attention_layer_comparison((8, 64), batch=8, repeats=max(repeats, 5), threads=threads)
    full = next(row for row in attention if row["mode"] == "sdpa")
    for row in attention:
        row["flops_vs_full"] = row["flops"] / full["flops"]
        row["time_vs_sdpa"] = row["seconds"] / full["seconds"]
    machine = {"cpu": cpu_name(), "torch_threads": threads, "torch": torch.__version__, "dtype": "float32",
               "timing": "interleaved per token count in one process; memory from a fresh process per point"}
    result = {
        "machine": machine,
        "points": points,
        "summary": summarize(points, tokens),
        "summary_cpu_time": summarize(points, tokens, "cpu_seconds"),
        "attention_8x64": attention,
    }
    title = f"SSAMBA-tiny vs SSAST-tiny, forward, batch 1, fp32; {machine['cpu']}, {threads} threads"
    if plot_path is not None:
        plot(points, plot_path, title)
        result["plot"] = str(plot_path)
    print(json.dumps(result, indent=2) if as_json else format_table(result))
    return result


def format_table(result: dict[str, Any]) -> str:
    """Plain-text tables for the terminal and docs/models.md."""
    machine = result["machine"]
    lines = [f"machine: {machine['cpu']}, {machine['torch_threads']} torch threads, torch {machine['torch']}, fp32", ""]
    lines.append(f"{'encoder':<20}{'mode':<9}{'tokens':>7}{'batch':>6}{'wall s':>10}{'CPU s':>9}{'runs':>5}{'peak MB':>9}{'+MB':>8}")
    for p in result["points"]:
        head = f"{p['encoder']:<20}{p['mode']:<9}{p['tokens']:>7}{p['batch']:>6}"
        if "error" in p:
            lines.append(f"{head}  {p['error']}")
        else:
            cpu = p.get("cpu_seconds", float("nan"))
            lines.append(f"{head}{p['seconds']:>10.3f}{cpu:>9.3f}{p['runs']:>5}{p['peak_mb']:>9.0f}{p['rise_mb']:>8.0f}")
    for title, summary in (("wall time", result["summary"]), ("CPU time", result.get("summary_cpu_time", {}))):
        lines.append(f"\nratios on {title}:")
        for key, value in summary.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k} {v:.2f}" if v is not None else f"{k} n/a" for k, v in value.items())
            elif value is not None:
                value = f"{value:.2f}"
            lines.append(f"  {key}: {value}")
    lines.append("")
    lines.append("attention layer, SSAST-tiny (d 192, 3 heads), 8 x 64 patch grid + cls, batch 8:")
    for row in result["attention_8x64"]:
        lines.append(f"  {row['mode']:<11} {row['flops'] / 1e6:9.1f} MFLOP/clip ({row['flops_vs_full']:.3f} of full)"
                     f"  {row['seconds'] * 1e3:8.1f} ms wall ({row['time_vs_sdpa']:.2f}x sdpa)"
                     f"  {row.get('cpu_seconds', float('nan')) * 1e3:8.1f} ms CPU")
    return "\n".join(lines)


if __name__ == "__main__":  # one benchmark point in a fresh process: python -m biomarker.bench.encoders '{json}'
    print(json.dumps(measure_point(**json.loads(sys.argv[1]))))
