"""Who may do what, password hashing and the session timeout: pure functions, no database.

The app and the CLI ask `can(role, action)` before showing or doing anything; the store asks `require` again
inside each operation, so a page that forgets a check still cannot leak or write.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from biomarker.store.errors import AccessDeniedError, UnknownActionError, UnknownRoleError

CLINICIAN, RESEARCHER, AUDITOR, ADMIN = "clinician", "researcher", "auditor", "admin"
ROLES = (CLINICIAN, RESEARCHER, AUDITOR, ADMIN)

SCORE = "score"  # record a recording and score it
HISTORY = "history"  # read past results (clinicians: their own site only)
EXPORT = "export"  # download results or audit events for a period
AUDIT = "audit"  # read the audit trail and its chain check
MANAGE_USERS = "manage_users"
ACTIONS = (SCORE, HISTORY, EXPORT, AUDIT, MANAGE_USERS)

# Researchers see pseudonymised results everywhere but never score patients; auditors check, never score.
# The admin can do everything so that the first account created on a fresh install can screen straight away.
PERMISSIONS: dict[str, frozenset[str]] = {
    CLINICIAN: frozenset({SCORE, HISTORY}),
    RESEARCHER: frozenset({HISTORY, EXPORT}),
    AUDITOR: frozenset({HISTORY, EXPORT, AUDIT}),
    ADMIN: frozenset(ACTIONS),
}

# argon2-cffi's defaults (RFC 9106 low-memory profile) are what the library maintainers recommend; one shared
# hasher so `check_needs_rehash` follows them when they change.
_HASHER = PasswordHasher()


def check_role(role: str) -> str:
    """Return `role` when known, else raise `UnknownRoleError` naming it."""
    if role not in PERMISSIONS:
        raise UnknownRoleError(f"role {role!r} is not one of {', '.join(ROLES)}")
    return role


def can(role: str | None, action: str) -> bool:
    """True when `role` may do `action`. `None` (signed out) may do nothing."""
    if action not in ACTIONS:
        raise UnknownActionError(f"action {action!r} is not one of {', '.join(ACTIONS)}")
    if role is None:
        return False
    return action in PERMISSIONS[check_role(role)]


def require(role: str | None, action: str) -> None:
    """Raise `AccessDeniedError` unless `role` may do `action`."""
    if not can(role, action):
        who = "nobody signed in" if role is None else f"role {role!r}"
        raise AccessDeniedError(f"{who} may not {action.replace('_', ' ')}")


def hash_password(password: str) -> str:
    """An argon2id hash with its own salt and parameters (the only form a password is ever stored in)."""
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when `password` matches `password_hash`; a malformed hash counts as no match."""
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=1)
def dummy_hash() -> str:
    """A hash of no one's password, checked when a sign-in names an unknown user (equal timing either way)."""
    return hash_password("no account has this password")


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's defaults."""
    return _HASHER.check_needs_rehash(password_hash)


def session_expired(last_activity: datetime, now: datetime, timeout_s: float) -> bool:
    """True when more than `timeout_s` seconds passed since the session's last activity.

    A pure function of its arguments, so the app's timeout is testable without waiting.
    """
    return now - last_activity > timedelta(seconds=timeout_s)
