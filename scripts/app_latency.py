"""The app's own latency (issue 28): seconds from the clinician's "Screen" click to the result on screen, in a real
browser. A benchmark, not a test: it prints numbers and asserts nothing.

    .venv/bin/python scripts/app_latency.py [--model ri-screener] [--rounds 8] [--out runs/bench/app_latency.json]

The recipe is tests/test_browser.py's (headless Debian Chromium driven by Playwright, the app served by `streamlit
run` on SQLite in a temporary folder; shared/research/browser-recording.md). Each round signs in on a fresh page,
enters a new patient, consents, uploads the same 10 s speech-like WAV `biomarker bench scoring` uses, then times the
click on "Screen patient ..." until "Probability of RI" is visible: the server's decode, gate, features, model and
durable store write, Streamlit's rerun, and the browser drawing the result and its plots. The first round (model
loading, graph export) is reported apart. The CPU, host and load average are printed with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from biomarker.bench.features import cpu_name
from biomarker.bench.scoring import speechlike, wav_bytes
from biomarker.settings import Settings
from biomarker.store import Store, UserInfo

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]
USER, PASSWORD = "cleo", "correct horse battery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(root: Path, model: str) -> tuple[subprocess.Popen, str]:
    """The app on SQLite under `root`, with one clinician account; returns once its health check answers."""
    env = {**os.environ, "BIOMARKER_HOME": str(root / "home"), "BIOMARKER_SECRET": "latency-bench-secret-0123456789",
           "BIOMARKER_MODEL": model, "BIOMARKER_DEVICE": "cpu"}
    store = Store(Settings.from_env(env))
    store.add_user(USER, PASSWORD, "clinician", site="ward-1", actor=UserInfo("setup", "admin", "ward-1"),
                   must_change_password=False)  # a one-time password would stop every round at the change form
    store.close()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "Home.py"), "--server.headless=true",
         "--server.address=127.0.0.1", f"--server.port={port}", "--browser.gatherUsageStats=false",
         "--server.fileWatcherType=none"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return process, url
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.terminate()
                raise RuntimeError(f"streamlit did not come up on {url}")
            time.sleep(0.3)


def settle(page) -> None:
    """Until Streamlit's "running" indicator is gone (as tests/test_browser.py waits)."""
    page.wait_for_timeout(300)
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)
    page.wait_for_timeout(200)


def one_round(browser, url: str, clip: Path, patient: str) -> float:
    """Seconds from the Screen click to "Probability of RI" visible, for one new patient on a fresh page."""
    page = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(120_000)
    page.goto(url)
    page.get_by_role("textbox", name="User name").fill(USER)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    settle(page)
    box = page.get_by_role("textbox", name="Patient identifier")
    box.fill(patient)
    box.press("Enter")
    settle(page)
    page.get_by_text("The patient consented").click()
    settle(page)
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(clip))
    page.get_by_text(clip.name).wait_for()
    settle(page)
    button = page.get_by_role("button", name=f"Screen patient {patient}")
    started = time.perf_counter()
    button.click()
    page.get_by_text("Probability of RI").wait_for(state="visible")
    elapsed = time.perf_counter() - started
    page.context.close()
    return elapsed


def main(model: str, rounds: int, out: Path | None) -> dict:
    from playwright.sync_api import sync_playwright  # the test extra; only this script needs it

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clip = root / "clip-10s.wav"
        clip.write_bytes(wav_bytes(speechlike(10.0, seed=0)))
        process, url = serve(root, model)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
                times = [one_round(browser, url, clip, f"LAT-{index:04d}") for index in range(rounds + 1)]
                browser.close()
        finally:
            process.terminate()
            process.wait(timeout=30)
    report = {"model": model, "cpu": cpu_name(), "host": socket.gethostname(), "load_average_1min": round(os.getloadavg()[0], 2),
              "clip_s": 10.0, "first_round_s": round(times[0], 3), "rounds_s": [round(t, 3) for t in times[1:]],
              "median_s": round(statistics.median(times[1:]), 3)}
    print(json.dumps(report, indent=1))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ri-screener", help="Model name or ScreeningModel directory.")
    parser.add_argument("--rounds", type=int, default=8, help="Timed rounds after the first (which loads the model).")
    parser.add_argument("--out", type=Path, default=None, help="Also write the JSON report here.")
    arguments = parser.parse_args()
    main(arguments.model, arguments.rounds, arguments.out)
