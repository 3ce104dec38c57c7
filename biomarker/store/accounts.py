"""Accounts: who may sign in, and the rules a hospital's security review checks.

- A password someone else chose (the first admin's one-time password, an admin's reset, a new account's
  initial password) must be changed at the next sign-in (`UserInfo.must_change_password`).
- Repeated wrong passwords lock the account with exponential back-off (`auth.ACCOUNT_LOCKOUT`, kept in the
  database, so it holds across restarts and servers) and throttle the client (`auth.ClientThrottle`); an admin
  can unlock at once.
- Every sign-in, failure, lock, password change, sign-out and user edit is an audit event; an event that
  changes an account carries the account's whole state after the change (`account_state`: every column, the
  password hash only as a fingerprint), so `audit verify` can tell an account edited behind the store's back.
- The last active admin cannot be deactivated or demoted, so an install can always be administered.

`Accounts` is the part of `Store` that does this (a mixin over the store's transaction and audit helpers).
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exc, func, select
from zxcvbn import zxcvbn

from biomarker.store import auth
from biomarker.store.errors import (
    AccountLockedError,
    AuthenticationError,
    DuplicateUserError,
    InvalidUserError,
)
from biomarker.store.schema import User, utc_now

LOCAL_SITE_ENV, LOCAL_SITE = "BIOMARKER_SITE", "local"
USERNAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")  # used with fullmatch: no trailing newline
MIN_PASSWORD_CHARS = 10
# zxcvbn's 0-4 scale (Dropbox's estimator: dictionaries, keyboard walks, repeats, dates, l33t); 3 is "safely
# unguessable: moderate protection from offline slow-hash scenario" (our hashes are argon2id, slow on purpose).
MIN_PASSWORD_STRENGTH = 3


@dataclass(frozen=True)
class UserInfo:
    """Who is acting: what the app keeps in its session after sign-in (never the password hash)."""

    username: str
    role: str
    site: str | None = None
    id: int | None = None
    must_change_password: bool = False

    @classmethod
    def local_operator(cls) -> "UserInfo":
        """The person at the server's shell running the CLI: they hold the database already, so act as admin,
        under a name that shows in the audit trail as a CLI action by that OS account. Their results are filed
        under the site in `BIOMARKER_SITE` (default "local"): every stored result has a site."""
        return cls(username=f"cli:{getpass.getuser()}"[:64], role=auth.ADMIN,
                   site=os.environ.get(LOCAL_SITE_ENV) or LOCAL_SITE)


@dataclass(frozen=True)
class AccountRow:
    """One account as the Users page lists it."""

    username: str
    role: str
    site: str | None
    active: bool
    must_change_password: bool
    locked_until: datetime | None
    created_at: datetime


class Accounts:
    """Account operations of `Store` (uses its `_sessions`, `_transaction` and `_append_event`)."""

    def add_user(self, username: str, password: str, role: str, *, site: str | None = None, actor: UserInfo,
                 must_change_password: bool = True) -> UserInfo:
        """Create an account (argon2-hashed password). Clinicians need a site: their history is limited to it.

        The initial password was chosen by the admin, so by default its owner must change it at first sign-in.
        """
        auth.require(actor.role, auth.MANAGE_USERS)
        _check_new_user(username, password, auth.check_role(role), site)
        password_hash = auth.hash_password(password)  # slow on purpose: outside the transaction and its lock
        try:
            with self._transaction() as session:
                user = User(username=username, password_hash=password_hash, role=role, site=site, active=True,
                            created_at=utc_now(), must_change_password=must_change_password, failed_logins=0)
                session.add(user)
                session.flush()
                self._append_event(session, actor.username, "user_created", "user", str(user.id), account_state(user))
        except exc.IntegrityError:
            raise DuplicateUserError(f"user {username!r} exists already") from None
        return _user_info(user)

    def has_users(self) -> bool:
        with self._sessions() as session:
            return session.scalar(select(func.count()).select_from(User)) > 0

    def create_first_admin(self, username: str = "admin") -> str | None:
        """On a database with no accounts, create admin `username` and return its one-time password; otherwise
        return None. One-time for real: the first sign-in must replace it (`must_change_password`)."""
        if self.has_users():
            return None
        password = secrets.token_urlsafe(12)
        self.add_user(username, password, auth.ADMIN, actor=UserInfo(username="system:first-run", role=auth.ADMIN))
        return password

    def list_users(self, *, viewer: UserInfo) -> list[AccountRow]:
        auth.require(viewer.role, auth.MANAGE_USERS)
        with self._sessions() as session:
            return [AccountRow(user.username, user.role, user.site, user.active, user.must_change_password,
                               user.locked_until, user.created_at)
                    for user in session.scalars(select(User).order_by(User.username))]

    def user_info(self, username: str) -> UserInfo | None:
        """The active account `username` (how a signed session token becomes a user again), else None."""
        with self._sessions() as session:
            user = session.scalar(select(User).where(User.username == username))
        return _user_info(user) if user is not None and user.active else None

    # ------------------------------------------------------------------------------------------------ sign-in
    def authenticate(self, username: str, password: str, *, client: str | None = None,
                     now: datetime | None = None) -> UserInfo:
        """Check a sign-in; log it either way. Raises `AuthenticationError` with one message for every wrong
        name or password, and `AccountLockedError` (saying until when) for a locked account or client.

        The password is checked outside any transaction (argon2 is slow on purpose and must not hold the
        database lock), and an unknown name costs the same hash check, so timing does not reveal which
        accounts exist. A locked account is refused even with the right password.
        """
        now = now or utc_now()
        shown_name = _printable(username)
        if client is not None and (until := self.client_throttle.blocked_until(client, now)) is not None:
            self._audit(shown_name, "login_throttled", "client", None, {"client": client, "until": _iso(until)})
            raise AccountLockedError(until, "too many failed sign-ins from this computer")
        with self._sessions() as session:
            user = session.scalar(select(User).where(User.username == username))
        if user is not None and user.locked_until is not None and user.locked_until > now:
            self._audit(user.username, "login_locked", "user", str(user.id), {"until": _iso(user.locked_until)})
            raise AccountLockedError(user.locked_until, "too many wrong passwords for this account")
        if user is None:
            auth.verify_password(auth.dummy_hash(), password)
            reason = "unknown user"
        elif not auth.verify_password(user.password_hash, password):
            reason = "wrong password"
        elif not user.active:
            reason = "inactive"
        else:
            reason = None
        if reason is not None:
            self._failed_sign_in(user, shown_name, reason, client, now)
            raise AuthenticationError("wrong user name or password")
        new_hash = auth.hash_password(password) if auth.needs_rehash(user.password_hash) else None
        with self._transaction() as session:
            row = session.get(User, user.id)
            row.failed_logins, row.locked_until = 0, None
            if new_hash is not None:
                row.password_hash = new_hash
            self._append_event(session, user.username, "login", "user", str(user.id),
                               {"role": user.role, "client": client, "account": account_state(row)})
        if client is not None:
            self.client_throttle.success(client)
        return _user_info(user)

    def _failed_sign_in(self, user: User | None, shown_name: str, reason: str, client: str | None,
                        now: datetime) -> None:
        with self._transaction() as session:
            if user is None:
                self._append_event(session, shown_name, "login_failed", "user", None, {"reason": reason,
                                                                                       "client": client})
            else:
                row = session.get(User, user.id)
                row.failed_logins += 1
                lock_s = auth.lock_seconds(row.failed_logins, auth.ACCOUNT_LOCKOUT)
                if lock_s:
                    row.locked_until = now + timedelta(seconds=lock_s)
                self._append_event(session, shown_name, "login_failed", "user", str(user.id),
                                   {"reason": reason, "client": client, "account": account_state(row)})
                if lock_s:
                    self._append_event(session, "system:lockout", "account_locked", "user", str(user.id),
                                       {"failures": row.failed_logins, "until": _iso(row.locked_until),
                                        "account": account_state(row)})
        if client is not None and (held_s := self.client_throttle.failure(client, now)):
            self._audit("system:lockout", "client_throttled", "client", None, {"client": client, "seconds": held_s})

    def record_sign_out(self, user: UserInfo, reason: str) -> None:
        """Audit a sign-out ("user" clicked, "idle" timeout)."""
        self._audit(user.username, "logout", "user", None if user.id is None else str(user.id), {"reason": reason})

    # ------------------------------------------------------------------------------------------- passwords
    def change_password(self, username: str, old_password: str, new_password: str) -> UserInfo:
        """The user replaces their own password (knowing the current one); clears a forced change."""
        with self._sessions() as session:
            user = session.scalar(select(User).where(User.username == username))
        if user is None or not user.active or not auth.verify_password(user.password_hash, old_password):
            raise AuthenticationError("the current password is wrong")
        _check_password(username, new_password)
        if new_password == old_password:
            raise InvalidUserError(f"the new password for {username!r} must differ from the current one",
                                   "password_same")
        return self._set_password(user.id, new_password, must_change=False, actor=username,
                                  action="password_changed")

    def reset_password(self, username: str, *, actor: UserInfo) -> str:
        """An admin gives `username` a new one-time password (returned once) that must be changed at sign-in;
        the reset also unlocks the account."""
        auth.require(actor.role, auth.MANAGE_USERS)
        user = self._user(username)
        password = secrets.token_urlsafe(12)
        self._set_password(user.id, password, must_change=True, actor=actor.username, action="password_reset")
        return password

    def _set_password(self, user_id: int, password: str, *, must_change: bool, actor: str, action: str) -> UserInfo:
        password_hash = auth.hash_password(password)
        with self._transaction() as session:
            row = session.get(User, user_id)
            row.password_hash, row.must_change_password = password_hash, must_change
            row.password_changed_at, row.failed_logins, row.locked_until = utc_now(), 0, None
            self._append_event(session, actor, action, "user", str(row.id), account_state(row))
            return _user_info(row)

    # ------------------------------------------------------------------------------------------ admin edits
    def edit_user(self, username: str, *, actor: UserInfo, role: str | None = None, site: str | None = None,
                  active: bool | None = None, clear_site: bool = False) -> UserInfo:
        """Change an account's role, site or active flag (only what is given); the event records before and
        after. Refused when it would leave no active admin or a clinician without a site."""
        auth.require(actor.role, auth.MANAGE_USERS)
        if role is not None:
            auth.check_role(role)
        if site is not None:
            _check_site(username, site)
        with self._transaction() as session:
            row = session.scalar(select(User).where(User.username == username))
            if row is None:
                raise InvalidUserError(f"no user {username!r}", "no_user", user=username)
            before = account_state(row)
            row.role = role if role is not None else row.role
            row.site = None if clear_site else (site if site is not None else row.site)
            row.active = active if active is not None else row.active
            if row.role == auth.CLINICIAN and not row.site:
                raise InvalidUserError(f"clinician {username!r} needs a site (history is limited to it)",
                                       "clinician_needs_site")
            if before["role"] == auth.ADMIN and before["active"] and not (row.role == auth.ADMIN and row.active):
                others = session.scalar(select(func.count()).select_from(User).where(
                    User.role == auth.ADMIN, User.active.is_(True), User.id != row.id))
                if not others:
                    raise InvalidUserError(f"{username!r} is the last active admin: add another admin first",
                                           "last_admin", user=username)
            self._append_event(session, actor.username, "user_edited", "user", str(row.id),
                               {"before": before, "after": account_state(row)})
            return _user_info(row)

    def unlock_user(self, username: str, *, actor: UserInfo) -> None:
        """Lift a lockout now (the admin has checked who is asking)."""
        auth.require(actor.role, auth.MANAGE_USERS)
        with self._transaction() as session:
            row = session.scalar(select(User).where(User.username == username))
            if row is None:
                raise InvalidUserError(f"no user {username!r}", "no_user", user=username)
            row.failed_logins, row.locked_until = 0, None
            self._append_event(session, actor.username, "account_unlocked", "user", str(row.id), account_state(row))

    # ----------------------------------------------------------------------------------------------- helpers
    def _user(self, username: str) -> User:
        with self._sessions() as session:
            user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise InvalidUserError(f"no user {username!r}", "no_user", user=username)
        return user

    def _audit(self, actor: str, action: str, object_type: str, object_id: str | None,
               payload: dict[str, Any]) -> None:
        with self._transaction() as session:
            self._append_event(session, actor, action, object_type, object_id, payload)


def _user_info(user: User) -> UserInfo:
    return UserInfo(username=user.username, role=user.role, site=user.site, id=user.id,
                    must_change_password=bool(user.must_change_password))


def account_state(user: User) -> dict[str, Any]:
    """An account as its audit events record it: every column, the password hash only as its SHA-256 (enough to
    see it replaced; no use for guessing the password, since the salt stays in the database)."""
    return {"username": user.username, "role": user.role, "site": user.site, "active": bool(user.active),
            "must_change_password": bool(user.must_change_password),
            "password": hashlib.sha256(user.password_hash.encode("utf-8")).hexdigest(),
            "failed_logins": int(user.failed_logins or 0), "locked_until": _iso_us(user.locked_until),
            "password_changed_at": _iso_us(user.password_changed_at), "created_at": _iso_us(user.created_at)}


def _printable(name: str) -> str:
    """A typed user name as the audit trail may keep it: control characters shown as escapes, 64 chars."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in name)[:64]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def _iso_us(value: datetime | None) -> str | None:
    """A stored time as the integrity check compares it: to the microsecond, as the column holds it."""
    return None if value is None else value.isoformat(timespec="microseconds")


def _check_new_user(username: str, password: str, role: str, site: str | None) -> None:
    if not USERNAME_PATTERN.fullmatch(username):
        raise InvalidUserError(f"user name {username!r}: use 1-64 letters, digits or . _ @ - (starting with a letter "
                               "or digit)", "username_pattern")
    _check_password(username, password)
    if role == auth.CLINICIAN and not site:
        raise InvalidUserError(f"clinician {username!r} needs a site (history is limited to it)",
                               "clinician_needs_site")
    if site is not None:
        _check_site(username, site)


def _check_password(username: str, password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidUserError(f"password for {username!r}: {len(password)} characters, need at least "
                               f"{MIN_PASSWORD_CHARS}", "password_short", chars=MIN_PASSWORD_CHARS)
    if password.casefold() == username.casefold():
        raise InvalidUserError(f"password for {username!r} must not be the user name", "password_is_username")
    strength = password_strength(password, username)
    if strength < MIN_PASSWORD_STRENGTH:
        raise InvalidUserError(f"password for {username!r} is too easy to guess (strength {strength} of 4, need "
                               f"{MIN_PASSWORD_STRENGTH}): use several unrelated words", "password_weak")


def password_strength(password: str, username: str = "") -> int:
    """zxcvbn's 0-4 estimate of how hard `password` is to guess, knowing the user name (a maintained estimator
    rather than our own rules: "aaaaaaaaaa" and "1234567890" are long enough but score 0)."""
    return int(zxcvbn(password[:100], user_inputs=[username] if username else [])["score"])


def _check_site(username: str, site: str) -> None:
    if not 0 < len(site) <= 64:
        raise InvalidUserError(f"site {site!r} for {username!r}: 1-64 characters", "site_length")
