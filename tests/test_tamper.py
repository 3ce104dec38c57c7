"""Every kind of tampering a security review tried on the database is detected, with the first bad row named,
on SQLite and on PostgreSQL (issue #24, deliverable 2). Each case edits the database (or the audio folder) the
way someone with database access and the project's code would, then asks `verify_chain` / `verify_audio`."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import delete, insert, select, update
from store_helpers import ADMIN, ENGINES, database_url_for, make_settings, record
from typer.testing import CliRunner

from biomarker.cli import app
from biomarker.store import Store
from biomarker.store.auth import hash_password
from biomarker.store.chain import GENESIS_HASH, Link
from biomarker.store.schema import AuditEvent, AuditHead, Patient, RecordingRow, ScoreRow, User

EVENTS = AuditEvent.__table__
LINK_FIELDS = ("seq", "occurred_at", "actor", "action", "object_type", "object_id", "payload", "prev_hash")

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


@pytest.fixture(params=ENGINES)
def store(request, tmp_path):
    """Two accounts with sign-ins and a failed one, two patients, three results."""
    store = Store(make_settings(tmp_path, database_url_for(request.param, tmp_path, request)))
    store.add_user("dr-a", "long enough pw", "clinician", site="ward-1", actor=ADMIN)
    store.add_user("aud-b", "long enough pw", "auditor", actor=ADMIN)
    clinician = store.authenticate("dr-a", "long enough pw")
    with pytest.raises(Exception):
        store.authenticate("aud-b", "wrong password!")
    record(store, clinician, probability=0.3, audio=b"first", patient_id="MRN-1")
    record(store, clinician, probability=0.9, audio=b"second", patient_id="MRN-2")
    record(store, clinician, probability=0.6, audio=b"third", patient_id="MRN-1")
    assert store.verify_chain().ok
    yield store
    store.close()


def _events(store: Store) -> list[dict]:
    with store.engine.connect() as connection:
        return [dict(row) for row in connection.execute(select(EVENTS).order_by(EVENTS.c.seq)).mappings()]


def _rewrite(store: Store, rows: list[dict], head: tuple[int, str] | None = None) -> None:
    with store.engine.begin() as connection:
        connection.execute(delete(EVENTS))
        if rows:
            connection.execute(insert(EVENTS), rows)
        if head is not None:
            connection.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=head[0], hash=head[1]))


def _execute(store: Store, statement) -> None:
    with store.engine.begin() as connection:
        connection.execute(statement)


def _broken(store: Store, table: str, first_bad, *words: str) -> None:
    result = store.verify_chain()
    assert (result.ok, result.table, result.first_bad_id) == (False, table, first_bad), result.reason
    for word in words:
        assert word in result.reason, result.reason


def _rehashed_unkeyed(rows: list[dict]) -> list[dict]:
    """The chain rewritten as a forger without the key would: every link plain SHA-256, `key_id` cleared."""
    prev, out = GENESIS_HASH, []
    for row in rows:
        row = {**row, "prev_hash": prev, "key_id": None}
        row["hash"] = prev = Link(**{k: row[k] for k in LINK_FIELDS}).compute_hash()
        out.append(row)
    return out


# -------------------------------------------------------------------------------------------- the chain itself
def test_an_edited_event_is_named(store):
    rows = _events(store)
    _rewrite(store, [{**row, "payload": "{}"} if row["seq"] == 5 else row for row in rows])
    _broken(store, "audit_events", 5, "edited")


def test_deleting_the_newest_events_and_moving_the_head_back_is_caught_by_the_anchor(store):
    rows = _events(store)
    kept = rows[:-4]
    _rewrite(store, kept, head=(kept[-1]["seq"], kept[-1]["hash"]))
    _broken(store, "audit_events", kept[-1]["seq"] + 1, "truncated")


def test_emptying_the_chain_and_resetting_the_head_to_genesis_is_caught(store):
    _execute(store, delete(ScoreRow))
    _execute(store, delete(RecordingRow))
    _execute(store, delete(Patient))
    _execute(store, delete(User))
    _rewrite(store, [], head=(0, GENESIS_HASH))
    _broken(store, "audit_events", 1, "truncated or reset")


def test_the_whole_chain_re_hashed_without_the_key_disagrees_with_the_anchor(store):
    rows = _rehashed_unkeyed([{**row, "actor": "mallory"} if row["seq"] == 2 else row for row in _events(store)])
    _rewrite(store, rows, head=(rows[-1]["seq"], rows[-1]["hash"]))
    result = store.verify_chain()
    # every re-hashed link differs from its keyed original, so the first anchored head already disagrees
    assert (result.ok, result.table, result.first_bad_id) == (False, "audit_events", 1)
    assert "rewritten" in result.reason


def test_a_made_up_anchor_line_is_named(store):
    with store.settings.anchor_path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"seq": 1, "hash": "0" * 64, "at": "2026-01-01T00:00:00", "mac": "f" * 64}) + "\n")
    result = store.verify_chain()
    assert (result.ok, result.table) == (False, "anchor") and "signature" in result.reason


def test_an_exported_anchor_checks_a_later_truncation_even_without_the_local_file(store):
    exported = store.settings.home / "export.json"
    exported.write_text(store.export(None, None, "json", viewer=ADMIN, table="audit_events"), encoding="utf-8")
    assert store.verify_chain(anchor_file=exported).ok
    store.settings.anchor_path.unlink()  # whoever truncates the chain deletes the local anchor too
    kept = _events(store)[:3]
    _rewrite(store, kept, head=(3, kept[-1]["hash"]))
    assert store.verify_chain().ok is False  # the users no longer match their events
    result = store.verify_chain(anchor_file=exported)
    assert (result.ok, result.first_bad_id) == (False, 4) and "truncated" in result.reason


# --------------------------------------------------------------------------------------------------- accounts
@pytest.mark.parametrize("change, named", [
    ({"role": "admin"}, "role"),
    ({"site": "ward-9"}, "site"),
    ({"active": False}, "active"),
    ({"failed_logins": 0}, "failed_logins"),
    ({"must_change_password": False}, "must_change_password"),
], ids=["role", "site", "active", "failures", "forced-change"])
def test_an_account_edited_behind_the_stores_back_is_named(store, change, named):
    user_id = store._user("aud-b").id if named == "failed_logins" else store._user("dr-a").id
    _execute(store, update(User).where(User.id == user_id).values(**change))
    _broken(store, "users", user_id, named, "edited")


def test_a_replaced_password_hash_is_named(store):
    user_id = store._user("dr-a").id
    _execute(store, update(User).where(User.id == user_id).values(password_hash=hash_password("mallory's pw")))
    _broken(store, "users", user_id, "password")


def test_an_admin_inserted_behind_the_stores_back_is_named(store):
    created_at = _events(store)[0]["occurred_at"]
    with store.engine.begin() as connection:
        connection.execute(insert(User.__table__), [{"username": "mallory", "password_hash": hash_password("x" * 12),
                                                     "role": "admin", "site": None, "active": True,
                                                     "created_at": created_at,
                                                     "must_change_password": False, "failed_logins": 0}])
        new_id = connection.scalar(select(User.id).where(User.username == "mallory"))
    _broken(store, "users", new_id, "no audit event")


def test_a_deleted_user_is_named(store):
    user_id = store._user("aud-b").id
    _execute(store, delete(User).where(User.id == user_id))
    _broken(store, "users", user_id, "deleted")


# ------------------------------------------------------------------------------------------ recordings, scores
@pytest.mark.parametrize("table, change, named", [
    (RecordingRow, {"created_at": "2020-01-01 08:00:00"}, "created_at"),
    (RecordingRow, {"audio_path": "ab/" + "a" * 64 + ".wav"}, "audio_path"),
    (RecordingRow, {"sample_rate_hz": 8000}, "sample_rate_hz"),
    (RecordingRow, {"quality": {"passed": True, "snr_db": 99.0}}, "quality"),
    (RecordingRow, {"result_uid": "00000000-0000-0000-0000-000000000000"}, "result_uid"),
    (RecordingRow, {"duration_s": 60.0}, "duration_s"),
    (RecordingRow, {"created_by": "mallory"}, "created_by"),
    (ScoreRow, {"created_at": "2020-01-01 08:00:00"}, "created_at"),
    (ScoreRow, {"threshold": 0.99}, "threshold"),
    (ScoreRow, {"decision": "negative"}, "decision"),
    (ScoreRow, {"device": "cuda:0"}, "device"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_every_stored_column_is_covered(store, table, change, named):
    from datetime import datetime

    values = {key: datetime.fromisoformat(value) if key == "created_at" else value for key, value in change.items()}
    _execute(store, update(table).where(table.id == 2).values(**values))
    _broken(store, table.__tablename__, 2, named)


def test_a_recording_moved_to_another_patient_is_named(store):
    with store.engine.connect() as connection:
        other = connection.scalar(select(RecordingRow.patient_id).where(RecordingRow.id == 2))
    _execute(store, update(RecordingRow).where(RecordingRow.id == 1).values(patient_id=other))
    _broken(store, "recordings", 1, "patient")


# --------------------------------------------------------------------------------------------------- audio files
def _audio_of(store: Store, recording_id: int):
    with store.engine.connect() as connection:
        return store.audio_file(connection.scalar(select(RecordingRow.audio_path).where(RecordingRow.id == recording_id)))


@pytest.mark.parametrize("damage", ["overwritten", "deleted"])
def test_an_overwritten_or_deleted_audio_file_is_named(store, damage):
    assert store.verify_audio().ok and store.verify_audio().checked == 3
    path = _audio_of(store, 2)
    if damage == "overwritten":
        path.write_bytes(b"someone else's voice")
    else:
        path.unlink()
    result = store.verify_audio()
    assert (result.ok, result.table, result.first_bad_id) == (False, "audio", 2)
    assert ("overwritten" if damage == "overwritten" else "cannot be read") in result.reason
    assert store.verify_chain().ok  # the rows are untouched: only --audio can see this


def test_cli_verify_audio_exits_1_naming_the_recording(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("BIOMARKER_HOME", str(home))
    monkeypatch.setenv("BIOMARKER_SECRET", "cli-test-secret-0123456789")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    from biomarker.settings import Settings

    store = Store(Settings.from_env())
    record(store, ADMIN, audio=b"one")
    runner = CliRunner()
    intact = runner.invoke(app, ["audit", "verify", "--audio"])
    assert intact.exit_code == 0 and "1 audio files match" in intact.output and "anchored to row" in intact.output
    _audio_of(store, 1).write_bytes(b"replaced")
    broken = runner.invoke(app, ["audit", "verify", "--audio"])
    assert broken.exit_code == 1 and "row 1 of audio" in broken.output
    store.close()


# ------------------------------------------------------------------------------------------ chains from before
def test_a_chain_written_before_keying_still_verifies_and_only_as_a_prefix(store):
    """Rows from before the chain was keyed (plain SHA-256, fewer fields) stay valid; new rows are keyed after
    them; editing an early row and re-hashing the early prefix breaks at the first keyed row."""
    legacy = _rehashed_unkeyed(_events(store))
    _rewrite(store, legacy, head=(legacy[-1]["seq"], legacy[-1]["hash"]))
    store.settings.anchor_path.unlink()  # stores from before keying had no anchor
    result = store.verify_chain()
    assert result.ok and result.unkeyed == len(legacy), result.reason
    record(store, store.authenticate("dr-a", "long enough pw"), probability=0.7, audio=b"fourth")
    after = store.verify_chain()
    assert after.ok and after.unkeyed == len(legacy) and after.checked > len(legacy)
    rows = _events(store)
    forged = _rehashed_unkeyed([{**row, "actor": "mallory"} if row["seq"] == 2 else row for row in rows[:len(legacy)]])
    _rewrite(store, forged + rows[len(legacy):])
    _broken(store, "audit_events", len(legacy) + 1, "previous-hash")


# ------------------------------------------------------------------------------------------------ the witness
def test_the_witness_command_receives_each_anchor_and_a_failing_one_is_named(tmp_path):
    from dataclasses import replace

    from biomarker.store.anchor import WitnessError

    witnessed = tmp_path / "witness.jsonl"
    settings = replace(make_settings(tmp_path), witness_command=f"cat >> {witnessed}")
    store = Store(settings)
    record(store, ADMIN, audio=b"witnessed")
    line = store.anchor_head()
    assert json.loads(witnessed.read_text().splitlines()[-1])["hash"] == line.hash == store.verify_chain().head_hash
    store.export(None, None, "json", viewer=ADMIN)  # every export is witnessed too
    assert len(witnessed.read_text().splitlines()) == 2
    assert store.verify_chain(anchor_file=witnessed).ok  # the witness's copy checks the chain as the local one does
    store.close()
    failing = Store(replace(settings, witness_command="echo refused >&2; exit 3"))
    with pytest.raises(WitnessError, match="exit 3.*refused"):
        failing.anchor_head()
    failing.close()
