"""`biomarker bench fhir`: how long a FHIR Bundle over N stored results takes, with and without the chart PDFs
(issue 26; goal: 1,000 results in under 60 s on the machine that runs it).

A throwaway store (SQLite, in /dev/shm when there is one, so the setup's fsyncs cost little) gets N results through
`Store.record_result`, as the ward flow writes them, scored by the shipped default model's name and version (so
the Device names real weights from the catalog). Then the export is timed as a user waits for it: `export_bundle`
(the audited store read, the lookups, every resource and each PDF), `to_json`, and `parse_bundle` (the round trip
the CLI does before writing). Each is timed once: a run of this size is long next to timer noise, and the load
average is recorded because a shared machine stretches wall time.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

from biomarker.bench.features import cpu_name
from biomarker.fhir import export_bundle, parse_bundle, to_json
from biomarker.models.catalog import Catalog
from biomarker.records import DECISION_NEGATIVE, DECISION_POSITIVE, DEFAULT_MODEL, QualityReport, Score
from biomarker.settings import Settings
from biomarker.store import Store, UserInfo

GOAL_S = 60.0
CLINICIAN = UserInfo("bench.clinician", "clinician", site="bench-ward")
AUDITOR = UserInfo("bench.auditor", "auditor")


def _fill(store: Store, results: int, model_name: str, model_version: str) -> float:
    """Record `results` results (distinct audio, 50 patients); returns the seconds it took."""
    start = time.perf_counter()
    for n in range(results):
        probability = (n % 97) / 96
        quality = QualityReport(duration_s=4.0 + n % 7, speech_ratio=0.6, clipping_ratio=0.0, peak=0.7,
                                rms_dbfs=-22.0, snr_db=20.0 + n % 11, passed=True)
        score = Score(probability=probability, threshold=0.5,
                      decision=DECISION_POSITIVE if probability >= 0.5 else DECISION_NEGATIVE,
                      model_name=model_name, model_version=model_version, cohort="default", device="cpu",
                      latency_ms=40.0 + n % 13, quality=quality)
        path = store.save_audio(f"bench recording {n}".encode())
        store.record_result(score, actor=CLINICIAN, audio_path=path, duration_s=quality.duration_s,
                            sample_rate_hz=16000, patient_id=f"BENCH-{n % 50:03d}")
    return time.perf_counter() - start


def _timed_export(store: Store, catalog: Catalog, *, pdf: bool, expected: int) -> dict:
    start = time.perf_counter()
    made = export_bundle(store, None, None, viewer=AUDITOR, catalog=catalog, transaction=True, pdf=pdf)
    built = time.perf_counter()
    text = to_json(made.bundle)
    serialised = time.perf_counter()
    parsed = parse_bundle(text)
    parsed_at = time.perf_counter()
    if made.rows != expected:
        raise RuntimeError(f"the export read {made.rows} results, the store holds {expected}")
    total = parsed_at - start
    return {"pdf": pdf, "results": made.rows, "entries": len(parsed.entry), "megabytes": round(len(text) / 1e6, 1),
            "build_s": round(built - start, 2), "to_json_s": round(serialised - built, 2),
            "parse_s": round(parsed_at - serialised, 2), "total_s": round(total, 2),
            "per_result_ms": round(1000 * total / max(made.rows, 1), 1), "goal_met": total < GOAL_S}


def main(*, results: int = 1000, pdf: str = "both", as_json: bool = False) -> dict:
    """Time the export of `results` results; `pdf` is "both", "with" or "without"."""
    catalog = Catalog()
    model = catalog.get(DEFAULT_MODEL)
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as folder:
        store = Store(Settings(home=Path(folder), database_url=f"sqlite:///{Path(folder) / 'bench.db'}",
                               secret=b"fhir bench pseudonym key, not a secret"))
        try:
            setup_s = _fill(store, results, model.name, model.version)
            runs = [_timed_export(store, catalog, pdf=choice, expected=results)
                    for choice in {"both": (False, True), "with": (True,), "without": (False,)}[pdf]]
        finally:
            store.close()
    report = {
        "machine": {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "host": platform.node(),
                    "python": platform.python_version(), "load_average": [round(v, 1) for v in os.getloadavg()]},
        "model": model.ref, "setup_s": round(setup_s, 1), "goal_s": GOAL_S, "runs": runs,
    }
    if as_json:
        print(json.dumps(report, indent=1))
        return report
    machine = report["machine"]
    print(f"machine: {machine['cpu']} ({machine['cpu_count']} CPUs, host {machine['host']}), load average "
          f"{machine['load_average']}; {results} results of {model.ref} recorded in {report['setup_s']} s")
    print("| PDFs | entries | MB | build s | to_json s | parse s | total s | ms/result | < 60 s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        print(f"| {'with' if run['pdf'] else 'without'} | {run['entries']} | {run['megabytes']} | {run['build_s']} | "
              f"{run['to_json_s']} | {run['parse_s']} | {run['total_s']} | {run['per_result_ms']} | "
              f"{'yes' if run['goal_met'] else 'NO'} |")
    return report
