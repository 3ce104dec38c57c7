"""Tampering with any audit row, or with a stored result, is detected and named (library and CLI)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import delete, insert, select, update
from store_helpers import ADMIN, ENGINES, database_url_for, make_settings, record
from typer.testing import CliRunner

from biomarker.cli import app
from biomarker.settings import Settings
from biomarker.store import Store, UserInfo
from biomarker.store.schema import AuditEvent, RecordingRow, ScoreRow

EVENTS = AuditEvent.__table__

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


@pytest.fixture(params=ENGINES)
def store(request, tmp_path):
    """A store holding six audit events: a user created, a sign-in, and two results (two events each)."""
    store = Store(make_settings(tmp_path, database_url_for(request.param, tmp_path, request)))
    store.add_user("dr-a", "long enough pw", "clinician", site="ward-1", actor=ADMIN)
    clinician = store.authenticate("dr-a", "long enough pw")
    record(store, clinician, probability=0.3, audio=b"first")
    record(store, clinician, probability=0.9, audio=b"second")
    yield store
    store.close()


def _rewrite_events(store: Store, rows: list[dict]) -> None:
    with store.engine.begin() as connection:
        connection.execute(delete(EVENTS))
        if rows:
            connection.execute(insert(EVENTS), rows)


def _events(store: Store) -> list[dict]:
    with store.engine.connect() as connection:
        return [dict(row) for row in connection.execute(select(EVENTS).order_by(EVENTS.c.seq)).mappings()]


def _edited(rows, seq):
    return [{**row, "actor": "mallory"} if row["seq"] == seq else row for row in rows]


def _deleted(rows, seq):
    return [row for row in rows if row["seq"] != seq]


def _swapped_with_next(rows, seq):
    return [{**row, "seq": seq + 1 if row["seq"] == seq else seq if row["seq"] == seq + 1 else row["seq"]}
            for row in rows]


@pytest.mark.parametrize("tamper", [_edited, _deleted, _swapped_with_next], ids=["edit", "delete", "reorder"])
def test_tampering_with_any_audit_row_is_named(store, tamper):
    original = _events(store)
    assert store.verify_chain().ok
    last = original[-1]["seq"]
    for seq in range(1, last + (0 if tamper is _swapped_with_next else 1)):
        _rewrite_events(store, tamper(original, seq))
        result = store.verify_chain()
        assert (result.ok, result.table, result.first_bad_id) == (False, "audit_events", seq), result.reason
        assert f"row {seq}" in result.reason
        _rewrite_events(store, original)
    assert store.verify_chain().ok


@pytest.mark.parametrize("as_unkeyed", [False, True], ids=["keyed-row", "posing-as-unkeyed"])
def test_an_edited_row_re_hashed_without_the_audit_key_is_named(store, as_unkeyed):
    """A careful forger re-hashes the edited row with the code's own hash; without the audit key the keyed hash
    cannot be made, and posing as an early unkeyed link after keyed ones is refused too."""
    from biomarker.store.chain import Link

    rows = _events(store)
    forged = {**rows[2], "actor": "mallory", **({"key_id": None} if as_unkeyed else {})}
    forged["hash"] = Link(**{k: forged[k] for k in ("seq", "occurred_at", "actor", "action", "object_type",
                                                    "object_id", "payload", "prev_hash")}).compute_hash()
    _rewrite_events(store, rows[:2] + [forged] + rows[3:])
    result = store.verify_chain()
    assert (result.ok, result.first_bad_id) == (False, 3)
    assert ("unkeyed link after keyed" if as_unkeyed else "edited") in result.reason


@pytest.mark.parametrize("table, change, named", [
    (ScoreRow, {"probability": 0.01}, "probability"),
    (ScoreRow, {"model_version": "9.9"}, "model_version"),
    (RecordingRow, {"site": "ward-9"}, "site"),
    (RecordingRow, {"sha256": "f" * 64}, "sha256"),
])
def test_editing_a_stored_result_is_detected(store, table, change, named):
    with store.engine.begin() as connection:
        connection.execute(update(table).where(table.id == 2).values(**change))
    result = store.verify_chain()
    assert (result.ok, result.table, result.first_bad_id) == (False, table.__tablename__, 2)
    assert named in result.reason


def test_deleting_a_stored_score_is_detected(store):
    with store.engine.begin() as connection:
        connection.execute(delete(ScoreRow).where(ScoreRow.id == 1))
    result = store.verify_chain()
    assert (result.ok, result.table, result.first_bad_id) == (False, "scores", 1) and "deleted" in result.reason


def test_a_score_inserted_behind_the_stores_back_is_detected(store):
    with store.engine.begin() as connection:
        forged = dict(connection.execute(select(ScoreRow.__table__).where(ScoreRow.id == 2)).mappings().one())
        connection.execute(insert(ScoreRow.__table__), [{**forged, "id": 3, "probability": 0.99}])
    result = store.verify_chain()
    assert (result.ok, result.table, result.first_bad_id) == (False, "scores", 3)
    assert "no audit event" in result.reason


# ------------------------------------------------------------------------------------------------------------ CLI
@pytest.fixture
def cli_env(tmp_path):
    env = {"BIOMARKER_HOME": str(tmp_path / "home"), "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
           "BIOMARKER_SECRET": "cli-test-secret-0123456789"}
    store = Store(Settings.from_env(env))
    record(store, ADMIN, probability=0.4, audio=b"one")
    record(store, ADMIN, probability=0.7, audio=b"two")
    yield env, store
    store.close()


def test_cli_verify_passes_then_names_the_edited_row(cli_env):
    env, store = cli_env
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify"], env=env)
    assert ok.exit_code == 0 and "intact: 4 rows" in ok.output
    assert store.verify_chain().head_hash in ok.output and len(store.verify_chain().head_hash) == 64
    with store.engine.begin() as connection:
        connection.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(payload="{}"))
    broken = runner.invoke(app, ["audit", "verify"], env=env)
    assert broken.exit_code == 1 and "row 3" in broken.output and "edited" in broken.output


def test_cli_export_writes_csv_and_json_for_a_period(cli_env, tmp_path):
    env, _ = cli_env
    runner = CliRunner()
    out = tmp_path / "results.csv"
    result = runner.invoke(app, ["audit", "export", "--since", "2000-01-01", "--until", "2999-01-01", "--format",
                                 "csv", "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    assert len(out.read_text().strip().splitlines()) == 3
    events = runner.invoke(app, ["audit", "export", "--format", "json", "--table", "audit_events"], env=env)
    document = json.loads(events.stdout)
    assert document["chain"]["ok"] and [row["seq"] for row in document["rows"]] == [1, 2, 3, 4, 5]
    empty = runner.invoke(app, ["audit", "export", "--until", "2000-01-01", "--format", "json"], env=env)
    assert json.loads(empty.stdout)["rows"] == []


def test_cli_export_rejects_bad_dates_and_formats(cli_env):
    env, _ = cli_env
    bad_date = CliRunner().invoke(app, ["audit", "export", "--since", "last tuesday"], env=env)
    assert bad_date.exit_code == 2 and "last tuesday" in bad_date.output
    bad_format = CliRunner().invoke(app, ["audit", "export", "--format", "xml"], env=env)
    assert bad_format.exit_code == 2 and "'xml'" in bad_format.output


def test_cli_users_add_reads_the_password_from_stdin(cli_env):
    env, store = cli_env
    result = CliRunner().invoke(app, ["users", "add", "dr-b", "--role", "clinician", "--site", "ward-2",
                                      "--password-stdin"], input="a long password\n", env=env)
    assert result.exit_code == 0, result.output
    # an initial password chosen by someone else must be changed at first sign-in
    assert store.authenticate("dr-b", "a long password") == UserInfo("dr-b", "clinician", "ward-2", 1,
                                                                     must_change_password=True)
    refused = CliRunner().invoke(app, ["users", "add", "dr-c", "--role", "nurse", "--password-stdin"],
                                 input="a long password\n", env=env)
    assert refused.exit_code == 2 and "nurse" in refused.output
    listed = CliRunner().invoke(app, ["users", "list"], env=env)
    assert "dr-b\tclinician\tward-2\tactive,must-change-password" in listed.output


def test_cli_users_add_prompts_twice_for_the_password(cli_env):
    env, store = cli_env
    result = CliRunner().invoke(app, ["users", "add", "aud", "--role", "auditor"],
                                input="a long password\na long password\n", env=env)
    assert result.exit_code == 0, result.output
    assert store.authenticate("aud", "a long password").role == "auditor"
