"""Accounts a hospital's security review accepts: forced change of a one-time password, own password change,
admin reset, edit and deactivation, lockout with back-off and admin unlock, client throttling, signed session
tokens; every one of them audited. SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from biomarker.store import AccountLockedError, AuthenticationError, InvalidUserError, Store, UserInfo, auth
from biomarker.store.schema import AuditEvent
from store_helpers import ADMIN

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")
PASSWORD = "correct horse battery"
NOW = datetime(2026, 12, 6, 12, 0, 0)


def actions(store: Store) -> list[str]:
    with store.engine.connect() as connection:
        return list(connection.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


def test_the_first_admins_one_time_password_forces_a_change_and_then_stops_working(store):
    password = store.create_first_admin()
    assert store.authenticate("admin", password).must_change_password
    changed = store.change_password("admin", password, "a brand new passphrase")
    assert not changed.must_change_password
    with pytest.raises(AuthenticationError):
        store.authenticate("admin", password)
    assert not store.authenticate("admin", "a brand new passphrase").must_change_password
    assert "password_changed" in actions(store)


def test_password_change_needs_the_current_password_and_a_valid_new_one(store):
    store.add_user("dr-a", PASSWORD, "clinician", site="w1", actor=ADMIN, must_change_password=False)
    with pytest.raises(AuthenticationError):
        store.change_password("dr-a", "not it at all", "another long one")
    for bad, named in (("short", "characters"), (PASSWORD, "differ")):
        with pytest.raises(InvalidUserError, match=named):
            store.change_password("dr-a", PASSWORD, bad)
    store.add_user("longname-user", PASSWORD, "auditor", actor=ADMIN)
    with pytest.raises(InvalidUserError, match="user name"):
        store.change_password("longname-user", PASSWORD, "LONGNAME-USER")


def test_wrong_passwords_lock_the_account_with_back_off_even_for_the_right_password(store):
    store.add_user("dr-a", PASSWORD, "clinician", site="w1", actor=ADMIN, must_change_password=False)
    policy = auth.ACCOUNT_LOCKOUT
    for attempt in range(policy.free_failures):
        with pytest.raises(AuthenticationError) as refused:
            store.authenticate("dr-a", f"wrong {attempt}", now=NOW)
    assert not isinstance(refused.value, AccountLockedError)  # the fifth failure locks the NEXT try
    with pytest.raises(AccountLockedError, match="until") as locked:
        store.authenticate("dr-a", PASSWORD, now=NOW + timedelta(seconds=1))
    assert locked.value.until == NOW + timedelta(seconds=policy.first_lock_s)
    # after the lock runs out one more failure doubles it
    later = NOW + timedelta(seconds=policy.first_lock_s + 1)
    with pytest.raises(AuthenticationError):
        store.authenticate("dr-a", "wrong again", now=later)
    with pytest.raises(AccountLockedError) as doubled:
        store.authenticate("dr-a", PASSWORD, now=later + timedelta(seconds=1))
    assert doubled.value.until == later + timedelta(seconds=2 * policy.first_lock_s)
    store.unlock_user("dr-a", actor=ADMIN)
    assert store.authenticate("dr-a", PASSWORD, now=later + timedelta(seconds=2)).username == "dr-a"
    events = actions(store)
    assert events.count("account_locked") == 2 and "login_locked" in events and "account_unlocked" in events


def test_a_client_guessing_many_accounts_is_throttled_and_audited(store):
    store.add_user("dr-a", PASSWORD, "clinician", site="w1", actor=ADMIN, must_change_password=False)
    for attempt in range(auth.CLIENT_THROTTLE.free_failures):
        with pytest.raises(AuthenticationError):
            store.authenticate(f"guess-{attempt}", "whatever it is", client="10.0.0.9", now=NOW)
    with pytest.raises(AccountLockedError, match="this computer"):
        store.authenticate("dr-a", PASSWORD, client="10.0.0.9", now=NOW + timedelta(seconds=1))
    assert store.authenticate("dr-a", PASSWORD, client="10.0.0.10", now=NOW).username == "dr-a"
    assert {"client_throttled", "login_throttled"} <= set(actions(store))


def test_admin_resets_edits_and_deactivates_accounts_but_keeps_one_admin(store):
    store.add_user("dr-a", PASSWORD, "clinician", site="w1", actor=ADMIN, must_change_password=False)
    temporary = store.reset_password("dr-a", actor=ADMIN)
    assert store.authenticate("dr-a", temporary).must_change_password
    assert store.edit_user("dr-a", actor=ADMIN, site="w2").site == "w2"
    with pytest.raises(InvalidUserError, match="needs a site"):
        store.edit_user("dr-a", actor=ADMIN, clear_site=True)
    store.edit_user("dr-a", actor=ADMIN, active=False)
    with pytest.raises(AuthenticationError):
        store.authenticate("dr-a", temporary)
    store.add_user("boss", PASSWORD, "admin", site="w1", actor=ADMIN)
    with pytest.raises(InvalidUserError, match="last active admin"):
        store.edit_user("boss", actor=ADMIN, role="auditor")
    assert {"password_reset", "user_edited"} <= set(actions(store))
    with store.engine.connect() as connection:
        payloads = list(connection.scalars(select(AuditEvent.payload).where(AuditEvent.action == "user_edited")))
    assert any('"site":"w1"' in p and '"site":"w2"' in p for p in payloads) and all("argon2" not in p for p in payloads)


def test_user_names_are_matched_whole_and_typed_names_are_audited_printable(store):
    with pytest.raises(InvalidUserError):
        store.add_user("dr-a\n", PASSWORD, "auditor", actor=ADMIN)
    with pytest.raises(AuthenticationError):
        store.authenticate("evil\x1b[31m", "whatever it is")
    with store.engine.connect() as connection:
        actor = connection.scalar(select(AuditEvent.actor).where(AuditEvent.action == "login_failed"))
    assert "\x1b" not in actor and "\\x1b" in actor


def test_sign_out_is_audited(store):
    store.record_sign_out(UserInfo("dr-a", "clinician", "w1", 3), "idle")
    assert actions(store) == ["logout"]


def test_session_tokens_are_signed_and_expire():
    secret = b"s" * 32
    token = auth.issue_session_token(secret, "dr-a", NOW, ttl_s=60)
    claims = auth.read_session_token(secret, token, NOW + timedelta(seconds=59))
    assert claims is not None and claims.username == "dr-a" and claims.session_id
    assert auth.read_session_token(secret, token, NOW + timedelta(seconds=61)) is None
    assert auth.read_session_token(b"t" * 32, token, NOW) is None
    body, signature = token.split(".")
    forged = auth.issue_session_token(secret, "admin", NOW, ttl_s=60).split(".")[0] + "." + signature
    assert auth.read_session_token(secret, forged, NOW) is None
    assert auth.read_session_token(secret, "garbage", NOW) is None
    assert auth.issue_session_token(secret, "dr-a", NOW) != auth.issue_session_token(secret, "dr-a", NOW)


def test_typed_names_reach_the_audit_csv_as_text_never_as_formulas(store):
    for name in ("=cmd|' /C calc'!A0", "+SUM(A1)", "@x", "evil\x1b[31m"):
        with pytest.raises(AuthenticationError):
            store.authenticate(name, "whatever it is")
    exported = store.export(None, None, "csv", viewer=UserInfo("aud", "auditor"), table="audit_events")
    actors = [row["actor"] for row in csv.DictReader(io.StringIO(exported)) if row["action"] == "login_failed"]
    assert actors == ["'=cmd|' /C calc'!A0", "'+SUM(A1)", "'@x", "evil\\x1b[31m"] and "\x1b" not in exported


@pytest.mark.parametrize("weak", ["aaaaaaaaaa", "1234567890", "password123", "qwertyuiop"])
def test_long_but_guessable_passwords_are_refused(store, weak):
    with pytest.raises(InvalidUserError, match="too easy to guess"):
        store.add_user("dr-z", weak, "auditor", actor=ADMIN)


def test_a_password_made_of_the_user_name_is_refused(store):
    with pytest.raises(InvalidUserError, match="too easy to guess"):
        store.add_user("dr-zeta-name", "dr-zeta-name1", "auditor", actor=ADMIN)
