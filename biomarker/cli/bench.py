"""`biomarker bench ...`: speed and memory measured side by side, printed as ratios. Tests never time.

Each subcommand calls `biomarker.bench.<name>.main(...)`, which prints a table (or JSON) and returns a dict.
`hostile` measures peak memory per hostile input, each in its own process (issue 24); `fhir` times a FHIR Bundle
over 1,000 stored results (issue 26); `sharded` times `biomarker score` under torchrun against one process (issue 28).
"""

from __future__ import annotations

from pathlib import Path

import typer

from biomarker.records import DEFAULT_MODEL

bench_app = typer.Typer(help="Benchmarks: speed and memory ratios measured side by side in one run.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")


@bench_app.command("features")
def features(
    clips: int = typer.Option(64, help="Clips in the batch."),
    seconds: float = typer.Option(10.0, help="Seconds per clip (16 kHz)."),
    repeats: int = typer.Option(3, help="Timed runs per front-end; the best is reported."),
    device: str = typer.Option("cpu", "--device", help="Where ours runs: auto|cpu|cuda (the references run on CPU)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """MFCC and fbank: python_speech_features / torchaudio kaldi per clip vs our batched front-end."""
    from biomarker.bench.features import main

    main(clips=clips, seconds=seconds, repeats=repeats, device=device, as_json=as_json)


@bench_app.command("scan")
def scan(
    lengths: str = typer.Option("512,1024,2048,4096", help="Comma-separated sequence lengths timed at batch 1."),
    batch_points: str = typer.Option("8x512", help="Comma-separated BATCHxL points timed too ('' for none)."),
    memory_lengths: str = typer.Option("4096,22000", help="Comma-separated lengths whose peak memory is measured."),
    repeats: int = typer.Option(5, help="Timed runs per point; the median is reported (once if a run takes >10 s)."),
    threads: int = typer.Option(2, help="torch / kernel threads."),
    device: str = typer.Option("auto", "--device", help="auto|cpu|cuda."),
    out: Path = typer.Option(Path("runs/bench/scan"), help="Folder for scan.md, scan.json and scan.png."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Selective scan: sequential loop vs our fast scans (and mamba-ssm's kernel on CUDA), fwd and fwd+bwd."""
    from biomarker.bench.scan import ScanBenchConfig, main

    def ints(text: str) -> tuple[int, ...]:
        return tuple(int(part) for part in text.split(",") if part.strip())

    points = tuple(tuple(int(v) for v in part.split("x")) for part in batch_points.split(",") if part.strip())
    config = ScanBenchConfig(lengths=ints(lengths), batch_points=points, memory_lengths=ints(memory_lengths),
                             repeats=repeats, device=device, threads=threads)
    main(config, out=out, as_json=as_json)


@bench_app.command("encoders")
def encoders(
    tokens: str = typer.Option("512,2048,8192,22000", help="Comma-separated token counts (multiples of 8) for the forward points."),
    train_batch: int = typer.Option(8, help="Clips per training step (at the smallest token count)."),
    repeats: int = typer.Option(3, help="Timed runs per point after a warm-up; the median is reported."),
    slow_s: float = typer.Option(20.0, help="A point whose warm-up takes longer than this is timed once."),
    timeout_s: float = typer.Option(1800.0, help="Give up on one point after this many seconds (reported)."),
    max_plain_gb: float = typer.Option(16.0, help="Skip plain attention where its N x N matrices would exceed this."),
    threads: int = typer.Option(0, help="torch threads per point (0: torch's default). Use 1 on a shared machine."),
    plot: str = typer.Option("bench-encoders.png", help="Where to write the PNG plot ('' for none)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """SSAMBA-tiny vs SSAST-tiny (SDPA, plain): time, memory, exponent; factorized vs full attention at 8x64."""
    from pathlib import Path

    from biomarker.bench.encoders import main

    main(
        tokens=[int(n) for n in tokens.split(",") if n.strip()],
        train_batch=train_batch,
        repeats=repeats,
        slow_s=slow_s,
        timeout_s=timeout_s,
        max_plain_gb=max_plain_gb,
        threads=threads or None,
        plot_path=Path(plot) if plot else None,
        as_json=as_json,
    )


@bench_app.command("scoring")
def scoring(
    model: str = typer.Option(None, "--model", help="Model name or dir, or `tiny` (an untrained SSAST-tiny bundle); "
                              "default: the shipped ri-screener and the tiny reference, side by side."),
    device: str = typer.Option("cpu", "--device", help="auto|cpu|cuda."),
    repeats: int = typer.Option(10, help="Timed runs per point after a warm-up; the median is reported."),
    clips: int = typer.Option(64, help="Clips (6-14 s each) in the throughput batch."),
    threads: str = typer.Option("1,2", help="Comma-separated torch thread counts, each measured in turn."),
    runtime: str = typer.Option("onnxruntime", "--runtime", help="The screener's CPU engine: onnxruntime | eager."),
    compare: bool = typer.Option(True, "--compare/--no-compare", help="Also eGeMAPS + LR, MFCC-stats + LR, the "
                                 "FLOP floor and the runtime candidates, side by side."),
    with_compile: bool = typer.Option(False, "--compile", help="Add torch.compile to the candidates (minutes to compile)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """10 s clip end to end (bytes -> stored row) vs the forward, the FLOP floor and eGeMAPS + LR; batch throughput."""
    from biomarker.bench.scoring import main

    counts = tuple(int(part) for part in threads.split(",") if part.strip())
    main(model=model, device=device, repeats=repeats, clips=clips, threads=counts, as_json=as_json, runtime=runtime,
         compare=compare, with_compile=with_compile)


@bench_app.command("sharded")
def sharded(
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="Model name or dir scored by both sides."),
    clips: int = typer.Option(64, help="Clips (6-14 s each) in the manifest."),
    processes: int = typer.Option(2, help="torchrun processes on the sharded side."),
    repeats: int = typer.Option(3, help="Interleaved timed rounds after a warm-up; the median is reported."),
    runtime: str = typer.Option("onnxruntime", "--runtime", help="onnxruntime | eager."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """`biomarker score MANIFEST` as one process vs torchrun with N processes (goal: 2 processes >= 1.8x)."""
    from biomarker.bench.sharded import main

    main(model=model, clips=clips, processes=processes, repeats=repeats, runtime=runtime, as_json=as_json)


@bench_app.command("hostile")
def hostile(
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="Model each `biomarker score` child loads."),
    only: str = typer.Option("", help="Comma-separated case names to run (default: the whole catalogue)."),
    address_cap_gb: float = typer.Option(6.0, help="RLIMIT_AS of each child, so a regression cannot take the machine."),
    timeout_s: float = typer.Option(300.0, help="Kill a child after this many seconds (reported as no row)."),
    out: Path = typer.Option(Path("runs/bench/hostile.json"), help="Where to write the JSON report."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Hostile inputs: peak RSS of `biomarker score` per input, each in a fresh process (goal <= 1.5 GB, a row each)."""
    from biomarker.bench.hostile import main

    report = main(model=model, only=tuple(part.strip() for part in only.split(",") if part.strip()),
                  address_cap_gb=address_cap_gb, timeout_s=timeout_s, out=out, as_json=as_json)
    raise typer.Exit(0 if report["all_goals_met"] else 1)


@bench_app.command("fhir")
def fhir(
    results: int = typer.Option(1000, help="Results recorded in a throwaway store, then exported as one Bundle."),
    pdf: str = typer.Option("both", help="with | without | both: the chart PDFs in the DiagnosticReports."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """FHIR export: seconds to build, serialise and parse back a transaction Bundle over N results (goal < 60 s)."""
    from biomarker.bench.fhir import main

    report = main(results=results, pdf=pdf, as_json=as_json)
    raise typer.Exit(0 if all(run["goal_met"] for run in report["runs"]) else 1)
