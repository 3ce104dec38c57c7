"""Errors the store raises on purpose. Each names the item and the value that was refused.

They derive from `biomarker.records.BiomarkerError` so callers can catch every deliberate library error at once.
"""

from __future__ import annotations

from biomarker.records import BiomarkerError


class StoreError(BiomarkerError):
    """Base of the store's errors."""


class UnknownRoleError(StoreError, ValueError):
    """A role outside clinician / researcher / auditor / admin."""


class UnknownActionError(StoreError, ValueError):
    """An action name the access table does not know (a typo must not silently mean 'denied')."""


class AccessDeniedError(StoreError, PermissionError):
    """The signed-in role (or nobody) may not do this."""


class AuthenticationError(StoreError):
    """Wrong user name or password. The message never says which, so accounts cannot be enumerated."""


class AccountLockedError(AuthenticationError):
    """Sign-in refused for a while after repeated failures (the account's lock, or this client's throttle)."""

    def __init__(self, until, why: str):
        self.until = until  # naive UTC
        super().__init__(f"{why}: sign-in is refused until {until:%H:%M} UTC (or an admin unlocks the account)")


class InvalidUserError(StoreError, ValueError):
    """A user name, password or site that cannot be stored.

    `code` names the rule that was broken ("password_short", "clinician_needs_site", ...) and `fields` its
    values, so the app can say it in the user's language from the catalog (`user_error.<code>`) while the CLI
    prints the English message: the rule is checked once, here, not again in each page.
    """

    def __init__(self, message: str, code: str = "invalid", **fields: object):
        super().__init__(message)
        self.code = code
        self.fields = fields


class DuplicateUserError(StoreError, ValueError):
    """A user of that name exists already."""


class AudioPathError(StoreError, ValueError):
    """A recording path that is not inside the content-addressed audio folder."""


class ExportFormatError(StoreError, ValueError):
    """An export format or table the store does not write."""


class SpoolError(StoreError, ValueError):
    """A spool file that cannot be read back; it is left in place, never deleted."""


class InvalidResultError(StoreError, ValueError):
    """A score or recording value that must not be stored (NaN probability, unknown decision, ...)."""


class ResultNotFoundError(StoreError, LookupError):
    """No result with that id that this user may open (another site's result reads the same: not found)."""


class StoreBusyError(StoreError):
    """The database stayed locked by another writer past the wait: nothing is wrong with the data; try again."""
