"""The one way a benchmark times work: runs taking turns, wall and process-CPU time, CUDA synchronised.

Why one helper: five benchmarks each had their own loop, and they differed in what they waited for (only two
synchronised CUDA) and in what they reported. Here every measurement warms up first (lazy initialisation and
allocator growth are not what a user waits for), synchronises the device around each run when it is CUDA, and
interleaves several runs round by round: on a shared VM whose speed drifts from minute to minute (measured: the
same forward 30 % slower a few minutes later), timing one thing after another would turn the drift into a false
ratio. CPU time (all threads of this process) is reported beside wall time because other people's load stretches
the wall clock, not the work.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Timing:
    """Wall-clock and process CPU time of one operation, in ms."""

    wall_ms: float
    cpu_ms: float
    runs: int = 1  # how many timed runs the figures reduce

    @property
    def wall_s(self) -> float:
        return self.wall_ms / 1000.0

    @property
    def cpu_s(self) -> float:
        return self.cpu_ms / 1000.0


def synchronizer(device: torch.device | str | None) -> Callable[[], None]:
    """What waits for queued work on `device`: CUDA kernels run asynchronously, so a timer that does not wait
    measures the launch, not the work."""
    if device is not None and torch.device(device).type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def timed(run: Callable[[], object], sync: Callable[[], None] = lambda: None) -> Timing:
    """One run of `run`, the device synchronised at its end."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    sync()
    return Timing((time.perf_counter() - wall) * 1000.0, (time.process_time() - cpu) * 1000.0)


def measure(runs: dict[str, Callable[[], object]], repeats: int, *, device: torch.device | str | None = None,
            reduce: Callable[[list[float]], float] = statistics.median,
            slow_ms: float | None = None) -> dict[str, Timing]:
    """`reduce` (median by default; `min` for a best-of) of `repeats` timed runs of each entry, the entries taking
    turns round by round, after one warm-up run each. An entry whose warm-up took longer than `slow_ms` is
    reported from that single run (a reference loop at a size where one run is minutes)."""
    sync = synchronizer(device)
    sync()
    warm = {name: timed(run, sync) for name, run in runs.items()}
    slow = {name for name, timing in warm.items() if not repeats or (slow_ms is not None and timing.wall_ms > slow_ms)}
    samples: dict[str, list[Timing]] = {name: [] for name in runs if name not in slow}
    for _ in range(repeats):
        for name in samples:
            samples[name].append(timed(runs[name], sync))
    measured = {name: Timing(reduce([t.wall_ms for t in got]), reduce([t.cpu_ms for t in got]), len(got))
                for name, got in samples.items()}
    return {name: warm[name] if name in slow else measured[name] for name in runs}


def measure_one(run: Callable[[], object], repeats: int, **options) -> Timing:
    """`measure` of a single run."""
    return measure({"run": run}, repeats, **options)["run"]
