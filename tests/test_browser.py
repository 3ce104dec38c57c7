"""One real browser end to end: headless Debian Chromium with a fake microphone fed by an espeak-ng WAV.

sign in -> record in st.audio_input -> score shown -> row in the database -> visible in History -> present in
the auditor's export. Recipe and flags: shared/research/browser-recording.md. The model is a tiny random one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from biomarker.settings import Settings
from biomarker.store import HistoryFilter, Store, UserInfo
from screening_helpers import espeak_wav, save_tiny_screening_model

CHROMIUM = "/usr/bin/chromium"
HOME_SCRIPT = Path(__file__).resolve().parent.parent / "app" / "Home.py"
PASSWORD = "correct horse battery"
PATIENT = "P-BROWSER-1"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app on SQLite in a temp folder with a clinician and an auditor, served by `streamlit run`."""
    root = tmp_path_factory.mktemp("browser")
    env = {**os.environ, "BIOMARKER_HOME": str(root / "home"), "BIOMARKER_SECRET": "browser-test-secret-0123456789",
           "BIOMARKER_MODEL": str(save_tiny_screening_model(root / "model")), "BIOMARKER_DEVICE": "cpu"}
    store = Store(Settings.from_env(env))
    for name, role, site in (("cleo", "clinician", "ward-1"), ("aldo", "auditor", None)):
        store.add_user(name, PASSWORD, role, site=site, actor=UserInfo("setup", "admin"))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(HOME_SCRIPT), "--server.headless=true",
         "--server.address=127.0.0.1", f"--server.port={port}", "--browser.gatherUsageStats=false",
         "--server.fileWatcherType=none"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not come up on {url}")
            time.sleep(0.3)
    yield url, store, root
    process.terminate()
    process.wait(timeout=30)


def test_record_score_store_history_and_export_in_a_real_browser(server):
    from playwright.sync_api import expect, sync_playwright

    url, store, root = server
    speech = espeak_wav(root / "speech.wav", "The north wind and the sun were disputing which was the stronger, "
                        "when a traveller came along wrapped in a warm cloak.", sample_rate_hz=48000)
    flags = ["--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
             f"--use-file-for-fake-audio-capture={speech.resolve()}%noloop", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
        page = browser.new_context(permissions=["microphone"]).new_page()
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)  # a shared 2-core machine loads the model slowly on first use
        page.goto(url)

        def sign_in(username: str) -> None:
            page.get_by_role("textbox", name="User name").fill(username)
            page.get_by_role("textbox", name="Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()

        sign_in("cleo")
        expect(page.get_by_role("heading", name="Screen a patient")).to_be_visible()
        page.get_by_role("textbox", name="Patient identifier").fill(PATIENT)
        page.get_by_role("textbox", name="Patient identifier").press("Enter")
        page.get_by_text("The patient consented").click()
        record = page.get_by_role("button", name="Record", exact=True)
        record.click()
        stop = page.get_by_role("button", name="Stop recording")
        expect(stop).to_be_visible()
        page.wait_for_timeout(3000)
        stop.click()
        expect(page.get_by_text("Probability of RI")).to_be_visible(timeout=120_000)
        expect(page.get_by_text("Good recording")).to_be_visible()

        [row] = store.history(HistoryFilter(patient_id=PATIENT), viewer=UserInfo("x", "auditor"))
        assert row.created_by == "cleo" and row.site == "ward-1" and row.sample_rate_hz == 16000
        assert 2.5 < row.duration_s < 4.0

        page.get_by_role("link", name="History").click()
        page.get_by_role("textbox", name="Patient identifier").fill(PATIENT)
        page.get_by_role("textbox", name="Patient identifier").press("Enter")
        expect(page.get_by_text("1 result(s)")).to_be_visible()

        page.get_by_role("button", name="Sign out").click()
        sign_in("aldo")
        page.get_by_role("link", name="Audit / export").click()
        expect(page.get_by_text("Audit chain intact")).to_be_visible()
        page.get_by_role("button", name="Prepare export").click()
        expect(page.get_by_text(store.pseudonymise(PATIENT)).first).to_be_visible()
        browser.close()
