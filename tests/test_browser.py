"""The app in a real browser: headless Debian Chromium with a fake microphone fed by an espeak-ng WAV.

- record -> Screen click -> score shown -> row in the database -> History -> the auditor's export;
- the reported wrong-patient sequence (upload for PAC-0003, type PAC-0004) files nothing under the second patient;
- a patient's timeline and trend after two screenings;
- the chart report downloaded as a PDF and read back;
- the whole app in pt-BR from the browser's language;
- lockout after repeated failures, the forced change of a one-time password, a refresh that keeps the sign-in;
- each shipped screener (`ri-screener`, `ri-screener-ssamba`) served by the app, scoring an upload.
Recipe and flags: shared/research/browser-recording.md. The model of the flows is a tiny random one. With BIOMARKER_SCREENSHOTS
set to a folder, each step's page is saved there as PNG (how docs/figures were made).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from pypdf import PdfReader

from biomarker.settings import Settings
from biomarker.store import HistoryFilter, Store, UserInfo
from screening_helpers import espeak_wav, save_tiny_screening_model

CHROMIUM = "/usr/bin/chromium"
HOME_SCRIPT = Path(__file__).resolve().parent.parent / "app" / "Home.py"
PASSWORD = "correct horse battery"
AUDITOR = UserInfo("x", "auditor")
FLAGS = ["--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-quic"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(root: Path, model: str) -> Iterator[tuple[str, Store]]:
    """The app on SQLite in `root` with its test accounts, serving `model` (a name or a bundle folder), run by
    `streamlit run`."""
    env = {**os.environ, "BIOMARKER_HOME": str(root / "home"), "BIOMARKER_SECRET": "browser-test-secret-0123456789",
           "BIOMARKER_MODEL": model, "BIOMARKER_DEVICE": "cpu"}
    store = Store(Settings.from_env(env))
    for name, role, site, forced in (("cleo", "clinician", "ward-1", False), ("aldo", "auditor", None, False),
                                     ("nina", "clinician", "ward-1", True), ("lola", "clinician", "ward-1", False)):
        store.add_user(name, PASSWORD, role, site=site, actor=UserInfo("setup", "admin", "ward-1"),
                       must_change_password=forced)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(HOME_SCRIPT), "--server.headless=true",
         "--server.address=127.0.0.1", f"--server.port={port}", "--browser.gatherUsageStats=false",
         "--server.fileWatcherType=none"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"streamlit did not come up on {url}")
                time.sleep(0.3)
        yield url, store
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app serving a tiny random model (the flows below do not depend on what it scores)."""
    root = tmp_path_factory.mktemp("browser")
    with serving(root, str(save_tiny_screening_model(root / "model"))) as (url, store):
        yield url, store, root


@pytest.fixture(scope="module")
def speech(server):
    _, _, root = server
    return espeak_wav(root / "speech.wav", "The north wind and the sun were disputing which was the stronger, "
                      "when a traveller came along wrapped in a warm cloak.", sample_rate_hz=48000)


@pytest.fixture
def browser(speech):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)  # a shared 2-core machine loads the model slowly on first use
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            *FLAGS, f"--use-file-for-fake-audio-capture={speech.resolve()}%noloop"])
        yield launched
        launched.close()


def open_page(browser, url: str, locale: str = "en-US"):
    page = browser.new_context(permissions=["microphone"], locale=locale, timezone_id="America/Sao_Paulo",
                               viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    return page


def shot(page, name: str, focus=None) -> None:
    """Save the visible page (Streamlit scrolls inside its own container), scrolled to the locator `focus`."""
    folder = os.environ.get("BIOMARKER_SCREENSHOTS")
    if folder:
        settle(page)
        if focus is not None:
            focus.scroll_into_view_if_needed()
        page.wait_for_timeout(800)  # let plots and fonts settle
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def settle(page) -> None:
    """Wait until the app has finished its rerun (Streamlit's "running" indicator is gone): a widget touched
    during a rerun can be replaced by the rerun's own copy and lose the input."""
    page.wait_for_timeout(300)
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
    page.wait_for_timeout(200)


def sign_in(page, username: str, password: str = PASSWORD, *, user_label: str = "User name",
            password_label: str = "Password", button: str = "Sign in") -> None:
    page.get_by_role("textbox", name=user_label).fill(username)
    page.get_by_role("textbox", name=password_label).fill(password)
    page.get_by_role("button", name=button, exact=True).click()
    settle(page)


def enter_patient(page, patient: str, label: str = "Patient identifier") -> None:
    box = page.get_by_role("textbox", name=label)
    box.fill(patient)
    box.press("Enter")
    settle(page)


def go(page, link: str) -> None:
    page.get_by_role("link", name=link).click()
    settle(page)


def consent(page, label: str = "The patient consented") -> None:
    page.get_by_text(label).click()
    settle(page)


def test_record_score_store_history_and_export_in_a_real_browser(server, browser):
    from playwright.sync_api import expect

    url, store, _ = server
    page = open_page(browser, url)
    sign_in(page, "cleo")
    expect(page.get_by_role("heading", name="Screen a patient")).to_be_visible()
    enter_patient(page, "P-BROWSER-1")
    consent(page)
    page.get_by_role("button", name="Record", exact=True).click()
    stop = page.get_by_role("button", name="Stop recording")
    expect(stop).to_be_visible()
    page.wait_for_timeout(3000)
    stop.click()
    screen_button = page.get_by_role("button", name="Screen patient P-BROWSER-1")
    expect(screen_button).to_be_enabled()
    assert store.history(HistoryFilter(patient_id="P-BROWSER-1"), viewer=AUDITOR) == []  # nothing before the click
    screen_button.click()
    expect(page.get_by_text("Probability of RI")).to_be_visible(timeout=120_000)
    expect(page.get_by_text("Stored for patient P-BROWSER-1")).to_be_visible()
    shot(page, "screen-result-en", focus=page.get_by_text("Probability of RI"))

    [row] = store.history(HistoryFilter(patient_id="P-BROWSER-1"), viewer=AUDITOR)
    assert row.created_by == "cleo" and row.site == "ward-1" and row.sample_rate_hz == 16000
    assert 2.5 < row.duration_s < 4.0

    go(page, "History")
    enter_patient(page, "P-BROWSER-1")
    expect(page.get_by_text("Results of patient P-BROWSER-1")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, "aldo")
    go(page, "Audit / export")
    expect(page.get_by_text("Audit chain intact")).to_be_visible()
    page.get_by_role("button", name="Prepare export").click()
    expect(page.get_by_text(store.pseudonymise("P-BROWSER-1")).first).to_be_visible()
    # a CSV comes with the chain's signed head beside it
    expect(page.get_by_role("button", name="Download the chain's signed head (.anchor.json)")).to_be_visible()
    shot(page, "audit-export-en")
    go(page, "Models")  # the shipped versions, which is the default, and their acceptance records
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()  # the versions table (a canvas grid)
    shot(page, "models-en")


def test_the_reported_wrong_patient_sequence_files_nothing_under_the_second_patient(server, browser, speech):
    from playwright.sync_api import expect

    url, store, _ = server
    page = open_page(browser, url)
    sign_in(page, "cleo")
    enter_patient(page, "PAC-0003")
    consent(page)
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(speech))
    expect(page.get_by_text(speech.name)).to_be_visible()
    page.get_by_role("button", name="Screen patient PAC-0003").click()
    expect(page.get_by_text("Stored for patient PAC-0003")).to_be_visible(timeout=120_000)
    page.get_by_role("button", name="Prepare the report for the chart (PDF)").click()
    settle(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the report (PDF)").click()
    pdf_path = download.value.path()
    report_text = "".join(p.extract_text() for p in PdfReader(str(pdf_path)).pages)
    assert "PAC-0003" in report_text and "cleo" in report_text and "ward-1" in report_text
    if os.environ.get("BIOMARKER_SCREENSHOTS"):
        shutil.copy(pdf_path, Path(os.environ["BIOMARKER_SCREENSHOTS"]) / "report-browser-en.pdf")
    # now type the next patient while the file is still in the widget
    enter_patient(page, "PAC-0004")
    expect(page.get_by_text(speech.name)).to_have_count(0)  # the upload was cleared
    expect(page.get_by_role("checkbox", name="The patient consented")).not_to_be_checked()
    expect(page.get_by_role("button", name="Screen patient PAC-0004")).to_be_disabled()
    expect(page.get_by_text("Probability of RI")).to_have_count(0)
    shot(page, "screen-new-patient-cleared-en")
    page.reload()  # a rerun of the page stores nothing either
    expect(page.get_by_role("heading", name="Screen a patient")).to_be_visible()
    sha256 = hashlib.sha256(speech.read_bytes()).hexdigest()
    assert store.history(HistoryFilter(patient_id="PAC-0004"), viewer=AUDITOR) == []
    rows = [row for row in store.history(viewer=AUDITOR) if row.sha256 == sha256]
    assert len({row.patient_pseudonym for row in rows}) == 1 and len(rows) == 1


def test_a_patient_timeline_and_the_whole_app_in_portuguese(server, browser, speech, tmp_path):
    from playwright.sync_api import expect

    url, store, _ = server
    page = open_page(browser, url, locale="pt-BR")
    expect(page.get_by_role("heading", name="Triagem de insuficiência respiratória pela fala")).to_be_visible()
    sign_in(page, "lola", user_label="Usuário", password_label="Senha", button="Entrar")
    expect(page.get_by_role("heading", name="Triar um paciente")).to_be_visible()
    second = espeak_wav(tmp_path / "second.wav", "A traveller came along wrapped in a warm cloak, and the wind "
                        "blew as hard as he could.", sample_rate_hz=22050)
    for patient, clip in (("PAC-0100", speech), ("pac-0100", second)):  # one patient, typed two ways
        enter_patient(page, patient, label="Identificador do paciente")
        consent(page, "O paciente consentiu")
        page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(clip))
        page.get_by_role("button", name=f"Triar o paciente {patient}").click()
        expect(page.get_by_text(f"Armazenado para o paciente {patient}")).to_be_visible(timeout=120_000)
    expect(page.get_by_text("Resultados do paciente pac-0100")).to_be_visible()
    expect(page.get_by_role("img")).to_have_count(3)  # waveform, MFCC-gram and the trend
    shot(page, "screen-timeline-pt-BR", focus=page.get_by_role("img").last)
    assert len(store.history(HistoryFilter(patient_id="PAC-0100"), viewer=AUDITOR)) == 2
    go(page, "Histórico")
    expect(page.get_by_role("heading", name="Histórico")).to_be_visible()
    shot(page, "history-pt-BR")


def test_repeated_failures_lock_and_a_refresh_keeps_the_sign_in(server, browser):
    from playwright.sync_api import expect

    url, store, _ = server
    page = open_page(browser, url)
    for attempt in range(5):
        sign_in(page, "cleo", f"wrong password {attempt}")
        expect(page.get_by_text("Wrong user name or password.")).to_be_visible()
    sign_in(page, "cleo")  # the right password, after five wrong ones
    expect(page.get_by_text("Too many failed attempts")).to_be_visible()
    shot(page, "sign-in-locked-en")
    store.unlock_user("cleo", actor=UserInfo("setup", "admin", "ward-1"))
    sign_in(page, "cleo")
    expect(page.get_by_role("heading", name="Screen a patient")).to_be_visible()
    page.reload()  # F5
    expect(page.get_by_role("heading", name="Screen a patient")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_a_one_time_password_must_be_changed_at_first_sign_in(server, browser):
    from playwright.sync_api import expect

    url, store, _ = server
    page = open_page(browser, url)
    sign_in(page, "nina")
    expect(page.get_by_role("heading", name="My account")).to_be_visible()
    expect(page.get_by_role("link", name="Screen a patient")).to_have_count(0)
    shot(page, "account-forced-change-en")
    page.get_by_role("textbox", name="Current password").fill(PASSWORD)
    page.get_by_role("textbox", name="New password (at least").fill("ninas own passphrase")
    page.get_by_role("textbox", name="New password again").fill("ninas own passphrase")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("Password changed.")).to_be_visible()
    expect(page.get_by_role("link", name="Screen a patient")).to_be_visible()
    assert not store.authenticate("nina", "ninas own passphrase").must_change_password


@pytest.mark.parametrize("model", ["ri-screener", "ri-screener-ssamba"])
def test_each_shipped_screener_serves_the_app_and_names_itself_on_the_result(model, tmp_path, browser, speech):
    """Both of the product's encoders serve: the app started with a shipped model's name scores an upload with it,
    the result page names the model, its engine and the calibration behind the threshold, and the row says so."""
    from playwright.sync_api import expect

    with serving(tmp_path, model) as (url, store):
        page = open_page(browser, url)
        sign_in(page, "cleo")
        enter_patient(page, "P-MODEL-1")
        consent(page)
        page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(speech))
        page.get_by_role("button", name="Screen patient P-MODEL-1").click()
        expect(page.get_by_text("Stored for patient P-MODEL-1")).to_be_visible(timeout=180_000)
        [row] = store.history(HistoryFilter(patient_id="P-MODEL-1"), viewer=AUDITOR)
        assert row.model_name == model
        # SSAMBA's scan does not export to ONNX, so it runs eagerly; the transformer runs in ONNX Runtime
        assert row.device.startswith("cpu/onnxruntime-") == (model == "ri-screener")
        expect(page.get_by_text(f"Model {model} version {row.model_version}, cohort {row.cohort}; ran on "
                                f"{row.device}").first).to_be_visible()
        expect(page.get_by_text(f"Calibration: {row.cohort}: as fitted at training").first).to_be_visible()
        shot(page, f"screen-result-{model}-en", focus=page.get_by_text("Probability of RI"))
