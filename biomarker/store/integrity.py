"""Cross-checks the rows that matter against the audit events written with them.

The hash chain protects the audit events; this extends the protection to the tables. Each recording and score
was described, column by column, by an event in the same transaction, and every change to an account by an
event carrying the account's state after it. So a score whose probability was edited, a recording back-dated,
an account made admin or given another password hash, a row inserted behind the store's back, or one deleted
afterwards, no longer matches the chain. A pure function over plain values.

Events written before a column was recorded (unkeyed links, `key_id` None) are checked on the columns they
carry; a keyed event must carry them all, so dropping a field from a new event is itself a mismatch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from biomarker.store.chain import VerifyResult
from biomarker.store.result_fields import RECORDING_COLUMNS, SCORE_COLUMNS

# Columns each table's audit event records under the same key (`created_by` is the event's actor, `patient`
# the pseudonym): every stored column (result_fields). Events before keying carry fewer of them.
RECORDING_FIELDS = (*RECORDING_COLUMNS, "patient")
SCORE_FIELDS = ("recording_id", *SCORE_COLUMNS)
USER_FIELDS = ("username", "role", "site", "active", "must_change_password",
               "password", "failed_logins", "locked_until", "password_changed_at", "created_at")
EVENT_FOR_TABLE = {"recordings": "recording_stored", "scores": "score_stored"}
TABLES = ("users", "recordings", "scores")


@dataclass(frozen=True)
class Event:
    """The parts of an audit event the cross-check reads."""

    seq: int
    actor: str
    action: str
    object_type: str | None
    object_id: str | None
    payload: str
    keyed: bool


def account_state_of(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The account state a user event records: `after` (an edit), `account` (a sign-in, a lock), or the payload
    itself (created, password set, unlocked); None for a user event that changed nothing."""
    for key in ("after", "account"):
        if isinstance(payload.get(key), dict):
            return payload[key]
    return payload if "username" in payload else None


def cross_check(events: Iterable[Event], rows: Mapping[str, Mapping[int, Mapping[str, Any]]]) -> VerifyResult:
    """Compare `rows[table][id]` (column values, as the events record them) with the events.

    Returns the first mismatch, table by table: a row without its event, an event whose row is gone, or a
    differing value (naming the column and the audit row).
    """
    described: dict[str, dict[int, tuple[int, dict[str, Any], bool]]] = {table: {} for table in TABLES}
    tables_by_action = {action: table for table, action in EVENT_FOR_TABLE.items()}
    for event in events:
        table = tables_by_action.get(event.action)
        if table is not None:
            described[table][int(event.object_id)] = (event.seq, {**json.loads(event.payload),
                                                                  "created_by": event.actor}, event.keyed)
        elif event.object_type == "user" and event.object_id is not None:
            state = account_state_of(json.loads(event.payload))
            if state is not None:  # the newest state wins: events arrive in chain order
                described["users"][int(event.object_id)] = (event.seq, state, event.keyed)
    checked = 0
    for table, fields in (("users", USER_FIELDS), ("recordings", RECORDING_FIELDS), ("scores", SCORE_FIELDS)):
        for row_id in sorted(rows[table].keys() | described[table].keys()):
            if row_id not in described[table]:
                return VerifyResult(False, checked, row_id, f"{table} row {row_id} has no audit event (inserted "
                                    "outside the store)", table)
            seq, logged, keyed = described[table][row_id]
            if row_id not in rows[table]:
                return VerifyResult(False, checked, row_id, f"{table} row {row_id} described by audit row {seq} "
                                    "is missing (deleted)", table)
            for field in fields:
                if field not in logged and not keyed:
                    continue  # an event from before this column was recorded
                stored, recorded = rows[table][row_id][field], logged.get(field)
                if stored != recorded:
                    return VerifyResult(False, checked, row_id, f"{table} row {row_id}: {field} is {stored!r} but "
                                        f"audit row {seq} recorded {recorded!r} (edited)", table)
            checked += 1
    return VerifyResult(True, checked)
