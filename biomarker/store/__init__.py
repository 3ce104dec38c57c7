"""The auditable store: SQLAlchemy rows, the audit hash chain, exports, accounts and the spool. No torch.

Start here: `Store(Settings.from_env())`. See docs/store.md for the API the app and the CLI use.
"""

from biomarker.records import StorageFullError
from biomarker.store.auth import ACTIONS, ROLES, can, require, session_expired
from biomarker.store.chain import VerifyResult
from biomarker.store.accounts import AccountRow, UserInfo
from biomarker.store.errors import (
    AccessDeniedError,
    AccountLockedError,
    AudioPathError,
    AuthenticationError,
    DuplicateUserError,
    ExportFormatError,
    InvalidResultError,
    InvalidUserError,
    ResultNotFoundError,
    SpoolError,
    StoreBusyError,
    StoreError,
    UnknownActionError,
    UnknownRoleError,
)
from biomarker.store.repository import FlushReport, HistoryFilter, HistoryRow, RecordOutcome, Store

__all__ = [
    "ACTIONS", "ROLES", "can", "require", "session_expired", "VerifyResult", "AccessDeniedError", "AccountLockedError",
    "AccountRow", "AudioPathError",
    "AuthenticationError", "DuplicateUserError", "ExportFormatError", "InvalidResultError", "InvalidUserError",
    "ResultNotFoundError", "SpoolError", "StorageFullError", "StoreBusyError", "StoreError", "UnknownActionError", "UnknownRoleError", "FlushReport", "HistoryFilter",
    "HistoryRow", "RecordOutcome", "Store", "UserInfo",
]
