"""The store on SQLite and on a real PostgreSQL 15: results, history, access, users, spool, concurrency."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select, text
from store_helpers import ADMIN, make_score, make_settings, record

from biomarker.settings import Settings, SettingsError
from biomarker.store import (
    AccessDeniedError,
    AudioPathError,
    AuthenticationError,
    DuplicateUserError,
    HistoryFilter,
    InvalidResultError,
    InvalidUserError,
    Store,
    UnknownActionError,
    UnknownRoleError,
    UserInfo,
    can,
    session_expired,
)
from biomarker.store.schema import AuditEvent, Base, Patient, RecordingRow, ScoreRow

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


def _count(store: Store, table) -> int:
    with store.engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(table))


# ------------------------------------------------------------------------------------------------------ settings
def test_settings_default_to_sqlite_in_home_and_keep_a_private_secret(tmp_path):
    settings = Settings.from_env({"BIOMARKER_HOME": str(tmp_path / "home")})
    assert settings.database_url == f"sqlite:///{tmp_path / 'home' / 'biomarker.db'}"
    secret_file = tmp_path / "home" / "secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert Settings.from_env({"BIOMARKER_HOME": str(tmp_path / "home")}).secret == settings.secret
    assert settings.audio_dir == tmp_path / "home" / "audio"
    assert stat.S_IMODE((tmp_path / "home").stat().st_mode) == 0o700
    assert settings.secret.decode() not in repr(settings)


def test_settings_take_database_url_and_secret_from_the_environment(tmp_path):
    env = {"BIOMARKER_HOME": str(tmp_path), "DATABASE_URL": "postgresql+psycopg://u@db/x",
           "BIOMARKER_SECRET": "a-long-enough-server-secret"}
    settings = Settings.from_env(env)
    assert settings.database_url == "postgresql+psycopg://u@db/x"
    assert settings.secret == b"a-long-enough-server-secret"
    assert not (tmp_path / "secret").exists()


def test_an_empty_secret_variable_counts_as_unset(tmp_path):
    settings = Settings.from_env({"BIOMARKER_HOME": str(tmp_path), "BIOMARKER_SECRET": ""})
    assert (tmp_path / "secret").read_bytes() == settings.secret and len(settings.secret) >= 16


def test_settings_refuse_a_short_secret(tmp_path):
    with pytest.raises(SettingsError, match="BIOMARKER_SECRET"):
        Settings.from_env({"BIOMARKER_HOME": str(tmp_path), "BIOMARKER_SECRET": "short"})


def test_importing_the_store_does_not_load_torch():
    code = "import sys, biomarker.store, biomarker.settings; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------------- migrations
def test_migrations_create_exactly_the_orm_schema(store):
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_init_db_twice_is_harmless(store):
    record(store, ADMIN)
    store.init_db()
    assert _count(store, ScoreRow) == 1


# ------------------------------------------------------------------------------------------------------- results
def test_record_result_stores_recording_score_and_audit_events(store):
    clinician = UserInfo("dr-a", "clinician", site="ward-1")
    outcome = record(store, clinician, probability=0.8)
    assert outcome.stored and outcome.score_id is not None
    [row] = store.history(viewer=clinician)
    assert (row.score_id, row.site, row.created_by, row.decision, row.probability) == (
        outcome.score_id, "ward-1", "dr-a", "positive", 0.8)
    assert row.model_version == "1.0.0" and row.device == "cpu" and row.quality["passed"] is True
    assert store.audio_file(row.audio_path).read_bytes() == b"audio 0.8 MRN-0001"
    with store.engine.connect() as connection:
        actions = connection.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)).all()
    assert actions == ["recording_stored", "score_stored", "results_queried"]  # reading the history is audited
    assert store.verify_chain().ok


def test_a_history_query_is_audited_once_per_viewer_and_question_in_its_window(store, monkeypatch):
    import json

    from biomarker.store import queries

    clinician = UserInfo("dr-a", "clinician", site="ward-1")
    record(store, clinician, patient_id="MRN-7")
    for _ in range(3):  # a page redrawing the same list
        store.history(HistoryFilter(patient_id="MRN-7"), viewer=clinician)
    store.history(HistoryFilter(patient_id="MRN-8"), viewer=clinician)  # another question
    with store.engine.connect() as connection:
        queried = [json.loads(payload) for payload in connection.scalars(
            select(AuditEvent.payload).where(AuditEvent.action == "results_queried").order_by(AuditEvent.seq))]
    assert [q["patient"] for q in queried] == [store.pseudonymise("MRN-7"), store.pseudonymise("MRN-8")]
    assert queried[0]["rows"] == 1 and queried[1]["rows"] == 0 and queried[0]["site"] == "ward-1"
    assert "MRN-7" not in str(queried)  # the identifier itself never reaches the trail
    monkeypatch.setattr(queries, "QUERY_AUDIT_WINDOW_S", 0.0)  # the window has passed: asked again, audited again
    store.history(HistoryFilter(patient_id="MRN-7"), viewer=clinician)
    with store.engine.connect() as connection:
        assert connection.scalar(select(func.count()).where(AuditEvent.action == "results_queried")) == 3


def test_raw_patient_identifier_is_never_stored(store):
    clinician = UserInfo("dr-a", "clinician", site="ward-1")
    record(store, clinician, patient_id="MRN-SECRET-123")
    record(store, clinician, patient_id="  MRN-SECRET-123 ", audio=b"second")
    with store.engine.connect() as connection:
        dump = " ".join(str(row) for table in Base.metadata.sorted_tables
                        for row in connection.execute(table.select()))
    assert "MRN-SECRET-123" not in dump
    assert _count(store, Patient) == 1  # the same patient typed with spaces is the same pseudonym
    assert len(store.history(HistoryFilter(patient_id="MRN-SECRET-123"), viewer=clinician)) == 2
    assert store.history(HistoryFilter(patient_id="MRN-OTHER"), viewer=clinician) == []


def test_a_crash_mid_write_leaves_no_partial_rows(store, monkeypatch):
    record(store, ADMIN)
    before = [_count(store, table) for table in (RecordingRow, ScoreRow, Patient, AuditEvent)]
    original = Store._append_event

    def crash_on_score(self, session, actor, action, *args, **kwargs):
        if action == "score_stored":
            raise RuntimeError("power cut")
        return original(self, session, actor, action, *args, **kwargs)

    monkeypatch.setattr(Store, "_append_event", crash_on_score)
    with pytest.raises(RuntimeError, match="power cut"):
        record(store, ADMIN, patient_id="NEW-PATIENT", audio=b"other")
    assert [_count(store, table) for table in (RecordingRow, ScoreRow, Patient, AuditEvent)] == before
    assert store.verify_chain().ok


@pytest.mark.parametrize("field, value", [("probability", float("nan")), ("probability", 1.5),
                                          ("decision", "maybe"), ("latency_ms", -1.0), ("model_version", "")])
def test_invalid_scores_are_refused_with_the_field_named(store, field, value):
    path = store.save_audio(b"x")
    with pytest.raises(InvalidResultError, match=field):
        store.record_result(replace(make_score(), **{field: value}), actor=ADMIN, audio_path=path, duration_s=1.0,
                            sample_rate_hz=16000)
    assert _count(store, ScoreRow) == 0


def test_audio_must_come_from_the_audio_folder(store, tmp_path):
    outside = tmp_path / "elsewhere.wav"
    outside.write_bytes(b"data")
    with pytest.raises(AudioPathError, match="elsewhere.wav"):
        store.record_result(make_score(), actor=ADMIN, audio_path=outside, duration_s=1.0, sample_rate_hz=16000)


def test_audio_folder_is_content_addressed(store):
    first = store.save_audio(b"same bytes")
    again = store.save_audio(b"same bytes")
    other = store.save_audio(b"other bytes", ".flac")
    assert first == again and first.read_bytes() == b"same bytes"
    assert other.suffix == ".flac" and other != first
    with pytest.raises(AudioPathError, match="empty"):
        store.save_audio(b"")



def test_many_threads_saving_the_same_recording_at_once_all_succeed(store):
    """Sessions of one app process are threads; they share a pid, so temporaries must not be named by pid."""
    data = b"the same recording uploaded twice" * 1000
    with ThreadPoolExecutor(max_workers=20) as pool:
        paths = list(pool.map(lambda _: store.save_audio(data), range(20)))
    assert len(set(paths)) == 1 and paths[0].read_bytes() == data
    assert not [p for p in paths[0].parent.iterdir() if p.name.endswith(".tmp")]

def test_history_filters_by_date_and_site(store):
    record(store, ADMIN, site="ward-1", audio=b"1")
    record(store, ADMIN, site="ward-2", audio=b"2")
    assert {row.site for row in store.history(HistoryFilter(site="ward-2"), viewer=ADMIN)} == {"ward-2"}
    now = datetime.utcnow()
    assert len(store.history(HistoryFilter(since=now - timedelta(hours=1)), viewer=ADMIN)) == 2
    assert store.history(HistoryFilter(until=now - timedelta(hours=1)), viewer=ADMIN) == []


# -------------------------------------------------------------------------------------------------------- access
def test_clinicians_see_only_their_own_site(store):
    record(store, UserInfo("dr-a", "clinician", site="ward-1"), audio=b"a")
    record(store, UserInfo("dr-b", "clinician", site="ward-2"), audio=b"b")
    mine = store.history(viewer=UserInfo("dr-a2", "clinician", site="ward-1"))
    assert [row.created_by for row in mine] == ["dr-a"]
    with pytest.raises(AccessDeniedError, match="ward-2"):
        store.history(HistoryFilter(site="ward-2"), viewer=UserInfo("dr-a", "clinician", site="ward-1"))
    assert len(store.history(viewer=UserInfo("aud", "auditor"))) == 2


def test_signed_out_sees_nothing_clinician_cannot_export_auditor_cannot_score(store):
    record(store, ADMIN)
    with pytest.raises(AccessDeniedError, match="nobody"):
        store.history(viewer=None)
    with pytest.raises(AccessDeniedError, match="export"):
        store.export(None, None, "csv", viewer=UserInfo("dr-a", "clinician", site="ward-1"))
    with pytest.raises(AccessDeniedError, match="score"):
        record(store, UserInfo("aud", "auditor"), audio=b"auditor")
    assert _count(store, ScoreRow) == 1


def test_a_clinician_without_a_site_sees_nothing_rather_than_everything(store):
    record(store, ADMIN)
    with pytest.raises(AccessDeniedError, match="no site"):
        store.history(viewer=UserInfo("dr-x", "clinician"))


def test_access_table():
    assert not any(can(None, action) for action in ("score", "history", "export", "audit", "manage_users"))
    assert can("clinician", "score") and not can("clinician", "export")
    assert can("auditor", "export") and can("auditor", "audit") and not can("auditor", "score")
    assert not can("researcher", "score") and not can("researcher", "audit")
    assert all(can("admin", action) for action in ("score", "history", "export", "audit", "manage_users"))
    with pytest.raises(UnknownActionError, match="delete"):
        can("admin", "delete")
    with pytest.raises(UnknownRoleError, match="nurse"):
        can("nurse", "score")


def test_session_expires_after_the_timeout():
    start = datetime(2026, 1, 1, 12, 0, 0)
    assert not session_expired(start, start + timedelta(minutes=15), timeout_s=15 * 60)
    assert session_expired(start, start + timedelta(minutes=15, seconds=1), timeout_s=15 * 60)


# --------------------------------------------------------------------------------------------------------- users
def test_users_sign_in_and_every_attempt_is_audited(store):
    store.add_user("dr-a", "correct horse battery", "clinician", site="ward-1", actor=ADMIN)
    signed_in = store.authenticate("dr-a", "correct horse battery")
    assert (signed_in.username, signed_in.role, signed_in.site) == ("dr-a", "clinician", "ward-1")
    for username, password in (("dr-a", "wrong password!"), ("nobody", "correct horse battery")):
        with pytest.raises(AuthenticationError, match="wrong user name or password"):
            store.authenticate(username, password)
    with store.engine.connect() as connection:
        events = connection.execute(select(AuditEvent.actor, AuditEvent.action).order_by(AuditEvent.seq)).all()
        stored_hash = connection.scalar(text("SELECT password_hash FROM users WHERE username = 'dr-a'"))
    assert [tuple(e) for e in events] == [("root-admin", "user_created"), ("dr-a", "login"),
                                           ("dr-a", "login_failed"), ("nobody", "login_failed")]
    assert stored_hash.startswith("$argon2id$") and "correct horse" not in stored_hash


def test_passwords_are_hashed_with_the_recommended_argon2id_profile(monkeypatch):
    from argon2 import PasswordHasher, extract_parameters
    from argon2.profiles import RFC_9106_LOW_MEMORY

    from biomarker.store import auth

    monkeypatch.setattr(auth, "_HASHER", PasswordHasher())  # undo the module's cheap hashing for this test
    stored = auth.hash_password("correct horse battery")
    assert extract_parameters(stored) == RFC_9106_LOW_MEMORY
    assert auth.verify_password(stored, "correct horse battery")
    assert not auth.verify_password(stored, "correct horse batter") and not auth.verify_password("junk", "x")


def test_a_sign_in_upgrades_a_hash_made_with_weaker_parameters(store, monkeypatch):
    from argon2 import PasswordHasher, extract_parameters

    from biomarker.store import auth

    store.add_user("dr-a", "correct horse battery", "auditor", actor=ADMIN)
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    monkeypatch.setattr(auth, "_HASHER", stronger)  # as after an argon2-cffi upgrade with new defaults
    store.authenticate("dr-a", "correct horse battery")
    with store.engine.connect() as connection:
        stored = connection.scalar(text("SELECT password_hash FROM users WHERE username = 'dr-a'"))
    assert extract_parameters(stored).time_cost == 2
    assert store.authenticate("dr-a", "correct horse battery").username == "dr-a"


def test_first_admin_is_created_once_with_a_one_time_password(store):
    password = store.create_first_admin()
    assert store.authenticate("admin", password).role == "admin"
    assert store.create_first_admin() is None


@pytest.mark.parametrize("username, password, role, site, error, named", [
    ("dr a", "long enough pw", "clinician", "w", InvalidUserError, "dr a"),
    ("dr-a", "short", "clinician", "w", InvalidUserError, "5 characters"),
    ("dr-a", "long enough pw", "clinician", None, InvalidUserError, "needs a site"),
    ("dr-a", "long enough pw", "nurse", "w", UnknownRoleError, "nurse"),
])
def test_bad_new_users_are_refused(store, username, password, role, site, error, named):
    with pytest.raises(error, match=named):
        store.add_user(username, password, role, site=site, actor=ADMIN)


def test_duplicate_user_and_non_admin_creation_are_refused(store):
    store.add_user("aud", "long enough pw", "auditor", actor=ADMIN)
    with pytest.raises(DuplicateUserError, match="aud"):
        store.add_user("aud", "long enough pw", "auditor", actor=ADMIN)
    with pytest.raises(AccessDeniedError):
        store.add_user("aud2", "long enough pw", "admin", actor=UserInfo("aud", "auditor"))
    assert store.verify_chain().ok


# ------------------------------------------------------------------------------------------------------- exports
def test_export_writes_the_period_as_csv_and_json_and_is_audited(store):
    record(store, ADMIN, probability=0.2, audio=b"1")
    record(store, ADMIN, probability=0.9, audio=b"2")
    auditor = UserInfo("aud", "auditor")
    csv_text = store.export(datetime.utcnow() - timedelta(hours=1), None, "csv", viewer=auditor)
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("score_id,recording_id,created_at,patient_pseudonym") and len(lines) == 3
    document = json.loads(store.export(None, None, "json", viewer=auditor, table="audit_events"))
    assert document["chain"]["ok"] is True
    assert [row["action"] for row in document["rows"]][:4] == ["recording_stored", "score_stored"] * 2
    assert json.loads(store.export(None, datetime.utcnow() - timedelta(hours=1), "json", viewer=auditor))["rows"] == []
    with store.engine.connect() as connection:
        exports = connection.scalar(select(func.count()).where(AuditEvent.action == "export"))
    assert exports == 3


# ---------------------------------------------------------------------------------------------- spool, concurrency
def test_results_are_spooled_while_sqlite_is_unreachable_and_flushed_after(tmp_path):
    data = tmp_path / "db"
    data.mkdir()
    store = Store(make_settings(tmp_path / "home", f"sqlite:///{data / 'biomarker.db'}"))
    record(store, ADMIN, audio=b"before")
    store.close()
    os.rename(data, tmp_path / "db-away")  # the database file vanishes (unmounted volume)
    outcome = record(store, ADMIN, audio=b"during")
    assert not outcome.stored and outcome.spool_path.exists() and "unreachable" in outcome.message
    os.rename(tmp_path / "db-away", data)
    report = store.flush_spool()
    assert (report.written, report.remaining) == (1, 0) and not outcome.spool_path.exists()
    rows = store.history(viewer=ADMIN)
    assert len(rows) == 2 and store.audio_file(rows[0].audio_path).read_bytes() == b"during"
    assert store.verify_chain().ok


def test_a_result_already_stored_is_not_written_twice_from_the_spool(store):
    outcome = record(store, ADMIN)
    pending = store._pending_result(make_score(), ADMIN, store.save_audio(b"x"), 1.0, 16000, None, None, None)
    store._write_result(pending, spooled=False)
    store.spool.write(pending)  # as if the process died after the commit but before deleting the file
    report = store.flush_spool()
    assert (report.written, report.already_present, report.remaining) == (0, 1, 0)
    assert _count(store, ScoreRow) == 2 and outcome.stored


def test_an_unreadable_spool_file_is_kept_and_reported_while_the_others_are_flushed(store):
    pending = store._pending_result(make_score(), ADMIN, store.save_audio(b"x"), 1.0, 16000, None, None, None)
    store.spool.write(pending)
    broken = store.spool.folder / "broken.json"
    broken.write_text("{not json")
    report = store.flush_spool()
    assert (report.written, report.remaining) == (1, 0) and "broken.json" in report.unreadable[0]
    assert (store.spool.folder / "rejected" / "broken.json").exists()  # kept aside for the auditor, not deleted
    assert not broken.exists() and _count(store, ScoreRow) == 1


def _spooled(store, **changes):
    """A genuine spool file, then its JSON edited by hand as an attacker with folder access would."""
    pending = store._pending_result(make_score(), ADMIN, store.save_audio(b"x"), 1.0, 16000, None, None, None)
    path = store.spool.write(pending)
    document = json.loads(path.read_text())
    document["result"].update(changes)
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize("changes, named", [
    ({"probability": 7.5}, "signature"),
    ({"actor": "intruder", "created_at": "2020-01-01T00:00:00"}, "signature"),
])
def test_an_edited_spool_file_is_refused_named_and_kept_aside(store, changes, named):
    path = _spooled(store, **changes)
    report = store.flush_spool()
    assert report.written == 0 and named in report.unreadable[0] and path.name in report.unreadable[0]
    assert (store.spool.folder / "rejected" / path.name).exists() and _count(store, ScoreRow) == 0
    assert store.verify_chain().ok


def test_a_genuinely_signed_file_with_insane_values_is_still_refused(store):
    """The signature says who wrote it, not that its values are sane: a live write's checks run again."""
    for changes, named in (({"decision": "maybe"}, "decision"), ({"duration_s": -5.0}, "duration_s"),
                           ({"audio_path": "../../../etc/passwd"}, "audio"),
                           ({"created_at": "2999-01-01T00:00:00"}, "future")):
        pending = store._pending_result(make_score(), ADMIN, store.save_audio(b"x"), 1.0, 16000, None, None, None)
        store.spool.write(replace(pending, **changes))
        report = store.flush_spool()
        assert report.written == 0 and named in report.unreadable[-1], (changes, report.unreadable)
    assert _count(store, ScoreRow) == 0


def test_concurrent_flushes_write_each_result_once_and_report_no_phantoms(store):
    for index in range(12):
        pending = store._pending_result(make_score(), ADMIN, store.save_audio(f"c{index}".encode()), 1.0, 16000,
                                        None, None, None)
        store.spool.write(pending)
    reports: list = []
    threads = [threading.Thread(target=lambda: reports.append(store.flush_spool())) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.written for r in reports) == 12 and all(r.remaining == 0 for r in reports)
    assert _count(store, ScoreRow) == 12 and store.verify_chain().ok


def test_twenty_concurrent_writers_give_twenty_rows_and_a_valid_chain(store):
    errors: list[BaseException] = []

    def write(index: int) -> None:
        try:
            outcome = record(store, UserInfo(f"dr-{index}", "clinician", site="ward-1"),
                             patient_id="SHARED-PATIENT", audio=f"clip {index}".encode())
            assert outcome.stored
        except BaseException as error:  # collected: an exception in a thread would otherwise vanish
            errors.append(error)

    threads = [threading.Thread(target=write, args=(index,)) for index in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _count(store, ScoreRow) == 20 and _count(store, Patient) == 1
    result = store.verify_chain()
    assert result.ok and result.checked == 40


def test_the_cli_flushes_the_spool_and_names_what_it_refused(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from biomarker.cli import app
    from biomarker.settings import Settings

    env = {"BIOMARKER_HOME": str(tmp_path / "home"), "BIOMARKER_SECRET": "spool-cli-secret-0123456789"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    store = Store(Settings.from_env())
    pending = store._pending_result(make_score(), ADMIN, store.save_audio(b"x"), 1.0, 16000, None, None, None)
    store.spool.write(pending)
    (store.spool.folder / "forged.json").write_text('{"result": {}, "hmac": "00"}')
    result = CliRunner().invoke(app, ["spool", "flush"])
    assert result.exit_code == 1 and "written 1" in result.output and "refused 1" in result.output
    assert "forged.json" in result.output and _count(store, ScoreRow) == 1
    assert CliRunner().invoke(app, ["spool", "flush"]).exit_code == 0  # nothing left: success


def test_verify_reads_while_a_writer_holds_the_sqlite_lock(tmp_path):
    """`audit verify` must not queue behind (or fail with 'database is locked' under) a long write."""
    store = Store(make_settings(tmp_path))
    record(store, ADMIN)
    with store.engine.connect() as writer:
        writer.begin()  # BEGIN IMMEDIATE: holds the write lock until the end of this block
        writer.exec_driver_sql("UPDATE audit_head SET seq = seq WHERE id = 1")
        assert store.verify_chain().ok  # a deferred, read-only transaction: no lock needed
    store.close()
