"""Who may do what, password hashing and the session timeout: pure functions, no database.

The app and the CLI ask `can(role, action)` before showing or doing anything; the store asks `require` again
inside each operation, so a page that forgets a check still cannot leak or write.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from dataclasses import dataclass
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
LISTEN = "listen"  # hear a stored recording and see its plots: the clinical roles only (it is the patient's voice)
ACTIONS = (SCORE, HISTORY, EXPORT, AUDIT, MANAGE_USERS, LISTEN)

# Researchers see pseudonymised results everywhere but never score patients; auditors check, never score.
# The admin can do everything so that the first account created on a fresh install can screen straight away.
PERMISSIONS: dict[str, frozenset[str]] = {
    CLINICIAN: frozenset({SCORE, HISTORY, LISTEN}),
    RESEARCHER: frozenset({HISTORY, EXPORT}),
    AUDITOR: frozenset({HISTORY, EXPORT, AUDIT}),
    ADMIN: frozenset(ACTIONS),
}

def reading_site(role: str, username: str, own_site: str | None, asked: str | None) -> str | None:
    """The one site rule for reading: a clinician sees only their own site (asking for another is refused, and
    a clinician without a site sees nothing rather than everything); other roles see the site they ask for, or
    all sites (None)."""
    if role != CLINICIAN:
        return asked
    _require_own_site(username, own_site)
    if asked is not None and asked != own_site:
        raise AccessDeniedError(f"clinician {username!r} may only see site {own_site!r}, not {asked!r}")
    return own_site


def recording_site(role: str, username: str, own_site: str | None, given: str | None) -> str:
    """The one site rule for writing: a clinician records at their own site; others at the site they name, or
    their own. Every result must have one: a result with no site is seen by no clinician, lost to the ward."""
    if role == CLINICIAN:
        _require_own_site(username, own_site)
        if given is not None and given != own_site:
            raise AccessDeniedError(f"clinician {username!r} records at site {own_site!r}, not {given!r}")
    site = given or own_site
    if not site:
        raise AccessDeniedError(f"{username!r} has no site: an admin must set one before screening")
    return site


def _require_own_site(username: str, own_site: str | None) -> None:
    if not own_site:
        raise AccessDeniedError(f"clinician {username!r} has no site; an admin must set one")


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


@dataclass(frozen=True)
class LockoutPolicy:
    """How repeated wrong passwords slow an attacker down: after `free_failures` in a row, each further failure
    locks for `first_lock_s`, doubling up to `max_lock_s` (exponential back-off; an admin can unlock at once).

    The same rule, with its own counts, throttles a client (one browser address) across accounts, so guessing
    many accounts' passwords from one place slows down too.
    """

    free_failures: int = 5
    first_lock_s: float = 60.0
    max_lock_s: float = 3600.0


ACCOUNT_LOCKOUT = LockoutPolicy()
CLIENT_THROTTLE = LockoutPolicy(free_failures=10, first_lock_s=30.0, max_lock_s=900.0)


def lock_seconds(failures: int, policy: LockoutPolicy) -> float:
    """How long `failures` consecutive failures lock for (0 while under the free allowance)."""
    if failures < policy.free_failures:
        return 0.0
    return min(policy.first_lock_s * 2 ** (failures - policy.free_failures), policy.max_lock_s)


class ClientThrottle:
    """Failed sign-ins per client in this process (thread-safe): the back-off of `CLIENT_THROTTLE`.

    Kept in memory on purpose: it guards the sign-in form of this server; the per-account lock, which must
    survive restarts and hold across servers, is in the database.
    """

    def __init__(self, policy: LockoutPolicy = CLIENT_THROTTLE):
        self.policy = policy
        self._failures: dict[str, tuple[int, datetime]] = {}
        self._lock = threading.Lock()

    def blocked_until(self, client: str, now: datetime) -> datetime | None:
        with self._lock:
            failures, last = self._failures.get(client, (0, now))
        until = last + timedelta(seconds=lock_seconds(failures, self.policy))
        return until if until > now else None

    def failure(self, client: str, now: datetime) -> float:
        """Count a failure; return the seconds this client is now held back (0: not yet)."""
        with self._lock:
            failures = self._failures.get(client, (0, now))[0] + 1
            self._failures[client] = (failures, now)
        return lock_seconds(failures, self.policy)

    def success(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


# ------------------------------------------------------------------------------------------- session tokens
SESSION_TOKEN_TTL_S = 12 * 3600  # a ward shift: the token expires even if the tab is kept busy all day


@dataclass(frozen=True)
class SessionClaims:
    """What a session token says: who, its own random id (for idle tracking and sign-out), when it expires."""

    username: str
    session_id: str
    expires_at: float  # POSIX seconds


def issue_session_token(secret: bytes, username: str, now: datetime, ttl_s: float = SESSION_TOKEN_TTL_S) -> str:
    """A signed, expiring token that lets a page refresh stay signed in without keeping the password anywhere.

    HMAC-SHA256 with a key derived from the server secret (never the pseudonym key itself), URL-safe.
    """
    claims = {"u": username, "s": secrets.token_urlsafe(12), "e": round(now.timestamp() + ttl_s)}
    body = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).decode().rstrip("=")
    return f"{body}.{_token_signature(secret, body)}"


def read_session_token(secret: bytes, token: str, now: datetime) -> SessionClaims | None:
    """The claims of a genuine, unexpired token; None for anything else (forged, edited, expired, garbage)."""
    body, _, signature = token.partition(".")
    if not body or not hmac.compare_digest(signature, _token_signature(secret, body)):
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        parsed = SessionClaims(str(claims["u"]), str(claims["s"]), float(claims["e"]))
    except (ValueError, KeyError, TypeError):
        return None
    return parsed if parsed.expires_at > now.timestamp() else None


def _token_signature(secret: bytes, body: str) -> str:
    key = hmac.new(secret, b"biomarker session token v1", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(hmac.new(key, body.encode(), hashlib.sha256).digest()).decode().rstrip("=")
