"""The Streamlit app through AppTest: every page and role, access rules, the bad-input catalogue, the spool,
concurrent scoring. A tiny random model stands in for the shipped one (its numbers mean nothing)."""

from __future__ import annotations

import os
import shutil
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from biomarker.screener import Screener, screen_and_record
from biomarker.settings import Settings
from biomarker.store import HistoryFilter, Store, UserInfo
from screening_helpers import TEST_MODEL_NAME, TEST_MODEL_VERSION, espeak_wav, save_tiny_screening_model, wav_bytes

HOME_SCRIPT = str(Path(__file__).resolve().parent.parent / "app" / "Home.py")
ALL_PAGES = ("views/screen.py", "views/samples.py", "views/history.py", "views/audit.py", "views/users.py")
PAGES_BY_ROLE = {
    "clinician": {"views/screen.py", "views/samples.py", "views/history.py"},
    "researcher": {"views/history.py", "views/audit.py"},
    "auditor": {"views/history.py", "views/audit.py"},
    "admin": set(ALL_PAGES),
}
PASSWORD = "correct horse battery"
TIMEOUT_S = 120  # first runs load the model and the plotting stack on a shared 2-core machine


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_screening_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    return espeak_wav(path, "The north wind and the sun were disputing which was the stronger.").read_bytes()


USERS = (("cleo", "clinician", "ward-1"), ("rita", "researcher", None), ("aldo", "auditor", None),
         ("adam", "admin", "ward-1"), ("cris", "clinician", "ward-2"))
SECRET = "app-tests-pseudonym-key-0123456789"


@pytest.fixture(scope="module")
def template_db(tmp_path_factory):
    """A migrated database holding the test accounts, built once: argon2 hashing is slow on purpose, so each
    test starts from a copy of this file instead of hashing five passwords again."""
    folder = tmp_path_factory.mktemp("template")
    settings = Settings.from_env({"BIOMARKER_HOME": str(folder), "BIOMARKER_SECRET": SECRET})
    store = Store(settings)
    for name, role, site in USERS:
        store.add_user(name, PASSWORD, role, site=site, actor=UserInfo("setup", "admin"))
    store.close()
    return folder / "biomarker.db"


@pytest.fixture
def env(tmp_path, model_dir, monkeypatch):
    """A fresh, empty data folder per test (SQLite in its own sub-folder, so a test can take the database away)."""
    (tmp_path / "db").mkdir()
    monkeypatch.setenv("BIOMARKER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'db' / 'biomarker.db'}")
    monkeypatch.setenv("BIOMARKER_SECRET", SECRET)
    monkeypatch.setenv("BIOMARKER_MODEL", str(model_dir))
    monkeypatch.setenv("BIOMARKER_DEVICE", "cpu")
    return tmp_path


@pytest.fixture
def store(env, template_db):
    shutil.copy(template_db, env / "db" / "biomarker.db")
    return Store(Settings.from_env())


def app_as(username: str | None = None) -> AppTest:
    """The app with `username` already signed in (the sign-in form itself is tested separately)."""
    at = AppTest.from_file(HOME_SCRIPT, default_timeout=TIMEOUT_S)
    if username is not None:
        [(role, site)] = [(role, site) for name, role, site in USERS if name == username]
        at.session_state["signed_in"] = UserInfo(username, role, site)
        at.session_state["last_activity"] = datetime.now(timezone.utc)
    at.run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest, kind: str) -> list[str]:
    return [element.value for element in getattr(at, kind)]


def screen(at: AppTest, data: bytes, *, patient: str = "P-001", via: str = "rec") -> AppTest:
    at.switch_page("views/screen.py").run()
    at.text_input(key="patient_id").input(patient)
    at.checkbox(key="consent").check()
    widget = at.audio_input(key="rec") if via == "rec" else at.file_uploader(key="upl")
    widget.upload("clip.wav", data, "audio/wav")
    at.run()
    assert not at.exception, at.exception
    return at


# ------------------------------------------------------------------------------------------------ access
def test_signed_out_sees_only_the_sign_in_page(store):
    at = app_as(None)
    assert [title.value for title in at.title] == ["Respiratory-insufficiency speech screener"]
    assert not at.dataframe and not at.metric
    for page in ALL_PAGES:
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(page)


def test_each_role_reaches_exactly_its_pages_and_each_page_renders(store):
    for username, role in (("cleo", "clinician"), ("rita", "researcher"), ("aldo", "auditor"), ("adam", "admin")):
        at = app_as(username)
        for page in ALL_PAGES:
            if page in PAGES_BY_ROLE[role]:
                at.switch_page(page).run()
                assert not at.exception, (role, page, at.exception)
                assert at.title, (role, page)
            else:
                with pytest.raises(ValueError, match="Could not find a navigation page"):
                    at.switch_page(page)


def test_sign_in_form_accepts_the_right_password_only(store):
    at = AppTest.from_file(HOME_SCRIPT, default_timeout=TIMEOUT_S).run()
    at.text_input(key="username").input("cleo")
    at.text_input(key="password").input(PASSWORD)
    at.button[0].click().run()
    at.switch_page("views/screen.py").run()
    assert not at.exception and at.title[0].value == "Screen a patient"


def test_wrong_password_is_refused(store):
    at = AppTest.from_file(HOME_SCRIPT, default_timeout=TIMEOUT_S).run()
    at.text_input(key="username").input("cleo")
    at.text_input(key="password").input("not the password")
    at.button[0].click().run()
    assert "Wrong user name or password." in texts(at, "error")
    with pytest.raises(ValueError):
        at.switch_page("views/screen.py")


def test_idle_session_times_out(store):
    at = app_as("cleo")
    at.session_state["last_activity"] = datetime.now(timezone.utc) - timedelta(hours=2)
    at.run()
    assert "Your session timed out. Please sign in again." in texts(at, "info")
    with pytest.raises(ValueError):
        at.switch_page("views/history.py")


def test_first_visit_creates_the_admin_and_its_one_time_password_signs_in(env):
    at = AppTest.from_file(HOME_SCRIPT, default_timeout=TIMEOUT_S).run()
    at.button(key="create_admin").click().run()
    [message] = texts(at, "success")
    password = message.split("`")[1]
    at.text_input(key="username").input("admin")
    at.text_input(key="password").input(password)
    at.button(key="FormSubmitter:sign_in-Sign in").click().run()
    at.switch_page("views/users.py").run()
    assert not at.exception and "admin" in at.dataframe[0].value["username"].tolist()
    assert "create_admin" not in [button.key for button in AppTest.from_file(HOME_SCRIPT).run().button]


# ---------------------------------------------------------------------------------------------- screening
def test_clinician_screens_a_recording_and_finds_it_in_history(store, speech):
    at = screen(app_as("cleo"), speech, patient="P-042")
    assert any(text.startswith("Good recording") for text in texts(at, "success"))
    assert {metric.label for metric in at.metric} == {"Probability of RI", "Threshold", "Device", "Latency"}
    assert any(TEST_MODEL_NAME in text and TEST_MODEL_VERSION in text for text in texts(at, "caption"))
    decision = [t for t in texts(at, "error") + texts(at, "info") if t.startswith("**")]
    assert decision in (["**Refer for SpO2 check**"], ["**No sign of respiratory insufficiency**"])
    assert any("SYNTHETIC" in text for text in texts(at, "warning"))  # the model's disclaimer
    assert len(at.get("image")) == 2  # waveform and MFCC-gram
    [row] = store.history(HistoryFilter(patient_id="P-042"), viewer=UserInfo("x", "auditor"))
    assert row.site == "ward-1" and row.created_by == "cleo"
    at.switch_page("views/history.py").run()
    assert at.dataframe[0].value["patient_pseudonym"].tolist() == [store.pseudonymise("P-042")]


def test_upload_alternative_scores_like_recording(store, speech):
    at = screen(app_as("adam"), speech, via="upl")
    assert len(store.history(viewer=UserInfo("x", "auditor"))) == 1 and at.metric


def test_screening_waits_for_patient_and_consent(store, speech):
    at = app_as("cleo")
    at.switch_page("views/screen.py").run()
    at.audio_input(key="rec").upload("clip.wav", speech, "audio/wav")
    at.run()
    assert "Enter the patient identifier before screening." in texts(at, "warning")
    at.text_input(key="patient_id").input("P-1").run()
    assert any("consent" in text for text in texts(at, "warning"))
    assert store.history(viewer=UserInfo("x", "auditor")) == []


def _bad_inputs() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    speechlike = (0.3 * np.sin(np.linspace(0, 20000, 48000)) * (rng.random(48000) > 0.3)).astype(np.float32)
    nan = speechlike.copy()
    nan[100] = np.nan
    return {
        "empty": b"",
        "random bytes": rng.bytes(4000),
        "truncated": wav_bytes(speechlike)[:30],
        "silent": wav_bytes(np.zeros(48000, np.float32)),
        "too short": wav_bytes(speechlike[:4000]),
        "clipped": wav_bytes(np.sign(speechlike) * 1.0),
        "non-finite": wav_bytes(nan, subtype="FLOAT"),
        "rate too low": wav_bytes(speechlike[:12000], sample_rate_hz=4000),
        "too many channels": wav_bytes(np.tile(speechlike[:, None], (1, 10))),
    }


def test_bad_input_catalogue_is_explained_and_never_stored_as_a_score(store):
    at = app_as("cleo")
    for case, data in _bad_inputs().items():
        screen(at, data, patient=f"P-{case}", via="upl")
        messages = texts(at, "error")
        assert len(messages) == 1 and messages[0].startswith("The recording cannot be screened: "), (case, messages)
        assert "Nothing was stored as a score" in messages[0], case
        assert not at.metric, case
    assert store.history(viewer=UserInfo("x", "auditor")) == []


def test_database_down_spools_and_tells_the_clinician_then_flushes(store, env, speech):
    at = app_as("cleo")
    store.close()
    st.cache_resource.clear()  # the app's own store lets go of its open connection, as on a real outage
    os.rename(env / "db", env / "db-away")
    at = screen(at, speech)
    assert any("unreachable" in text and "Nothing is lost" in text for text in texts(at, "warning"))
    assert at.metric  # the clinician still sees the score
    os.rename(env / "db-away", env / "db")
    at.switch_page("views/screen.py").run()
    assert any("now stored" in text for text in texts(at, "info"))
    assert len(store.history(viewer=UserInfo("x", "auditor"))) == 1 and store.verify_chain().ok


# ------------------------------------------------------------------------------------------------ samples
def test_try_a_sample_shows_the_whole_flow_without_storing(store):
    at = app_as("cleo")
    at.switch_page("views/samples.py").run()
    for option in at.radio(key="sample").options:
        at.radio(key="sample").set_value(option)
        at.button(key="score_sample").click().run()
        assert not at.exception, at.exception
        assert option.startswith("Synthetic") and any("SYNTHETIC" in t for t in texts(at, "info"))
        assert {metric.label for metric in at.metric} == {"Probability of RI", "Threshold", "Device", "Latency"}
        assert len(at.get("image")) == 2
    assert store.history(viewer=UserInfo("x", "auditor")) == []


# ---------------------------------------------------------------------------------------- history, audit, users
def test_clinicians_see_only_their_own_site(store, speech):
    screen(app_as("cleo"), speech, patient="P-ward-1")
    at = app_as("cris")
    at.switch_page("views/history.py").run()
    assert not at.dataframe and "0 result(s)" in [m.value for m in at.markdown]
    at = app_as("rita")
    at.switch_page("views/history.py").run()
    assert at.dataframe[0].value["site"].tolist() == ["ward-1"]
    at.text_input(key="history_site").input("ward-2").run()
    assert not at.dataframe


def test_auditor_sees_chain_check_and_exports_results_and_events(store, speech):
    screen(app_as("cleo"), speech, patient="P-7")
    at = app_as("aldo")
    at.switch_page("views/audit.py").run()
    assert any(text.startswith("Audit chain intact") for text in texts(at, "success"))
    at.button(key="audit_export").click().run()
    exported = at.code[0].value
    assert exported.startswith("score_id,") and store.pseudonymise("P-7") in exported
    at.selectbox(key="audit_table").set_value("audit_events")
    at.radio(key="audit_format").set_value("json")
    at.button(key="audit_export").click().run()
    assert '"score_stored"' in at.code[0].value and '"chain"' in at.code[0].value


def test_researcher_exports_results_but_sees_no_audit_trail(store, speech):
    screen(app_as("cleo"), speech, patient="P-8")
    at = app_as("rita")
    at.switch_page("views/audit.py").run()
    assert at.title[0].value == "Export" and not texts(at, "success")  # no chain check shown
    assert at.selectbox(key="audit_table").options == ["results"]
    at.button(key="audit_export").click().run()
    assert store.pseudonymise("P-8") in at.code[0].value


def test_admin_adds_a_clinician_who_can_then_sign_in(store):
    at = app_as("adam")
    at.switch_page("views/users.py").run()
    at.text_input(key="new_username").input("nina")
    at.selectbox(key="new_role").set_value("clinician")
    at.text_input(key="new_site").input("ward-3")
    at.text_input(key="new_password").input(PASSWORD)
    at.button(key="FormSubmitter:add_user-Add user").click().run()
    assert "Added nina (clinician)." in texts(at, "success")
    assert store.authenticate("nina", PASSWORD).site == "ward-3"


# ------------------------------------------------------------------------------------------- concurrency
def test_twenty_concurrent_scoring_requests_give_twenty_rows_and_a_valid_chain(store, model_dir, speech):
    """The app's process-wide objects: one Screener and one Store shared by 20 sessions at once."""
    screener = Screener.load(model_dir, device="cpu")
    clinician = UserInfo("cleo", "clinician", site="ward-1")
    errors: list[BaseException] = []

    def session(index: int) -> None:
        try:
            outcome = screen_and_record(screener, store, speech, name=f"s{index}.wav", actor=clinician,
                                        patient_id=f"P-{index}", site="ward-1")
            assert outcome.record.stored
        except BaseException as error:  # collected and re-raised in the main thread
            errors.append(error)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = store.history(viewer=UserInfo("x", "auditor"))
    assert len(rows) == 20 and len({row.patient_pseudonym for row in rows}) == 20
    assert len({round(row.probability, 6) for row in rows}) == 1  # same clip, same answer under contention
    assert store.verify_chain().ok
