"""Cross-checks result rows against the audit events written with them.

The hash chain protects the audit events; this extends the protection to the recordings and scores: each was
described, field by field, by an event in the same transaction, so a score whose probability was edited, a
result row inserted behind the store's back, or a result deleted afterwards no longer matches the chain.
Pure function over plain values.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from biomarker.store.chain import VerifyResult

# Columns of each table that its audit event records under the same key (`created_by` is the event's actor).
RECORDING_FIELDS = ("sha256", "site", "patient", "duration_s", "created_by")
SCORE_FIELDS = ("recording_id", "model_name", "model_version", "cohort", "probability", "threshold", "decision",
                "device", "latency_ms")
EVENT_FOR_TABLE = {"recordings": "recording_stored", "scores": "score_stored"}


def cross_check(events: Iterable[tuple[int, str, str, str | None, str]],
                rows: Mapping[str, Mapping[int, Mapping[str, Any]]]) -> VerifyResult:
    """Compare `rows[table][id]` (column values) with the events `(seq, actor, action, object_id, payload)`.

    Returns the first mismatch: a row without its event, an event whose row is gone, or a differing value.
    """
    described: dict[str, dict[int, tuple[int, dict[str, Any]]]] = {table: {} for table in EVENT_FOR_TABLE}
    tables_by_action = {action: table for table, action in EVENT_FOR_TABLE.items()}
    for seq, actor, action, object_id, payload in events:
        table = tables_by_action.get(action)
        if table is not None:
            described[table][int(object_id)] = (seq, {**json.loads(payload), "created_by": actor})
    checked = 0
    for table, fields in (("recordings", RECORDING_FIELDS), ("scores", SCORE_FIELDS)):
        for row_id in sorted(rows[table].keys() | described[table].keys()):
            if row_id not in described[table]:
                return VerifyResult(False, checked, row_id, f"{table} row {row_id} has no audit event (inserted "
                                    "outside the store)", table)
            seq, payload = described[table][row_id]
            if row_id not in rows[table]:
                return VerifyResult(False, checked, row_id, f"{table} row {row_id} described by audit row {seq} "
                                    "is missing (deleted)", table)
            for field in fields:
                stored, logged = rows[table][row_id][field], payload.get(field)
                if stored != logged:
                    return VerifyResult(False, checked, row_id, f"{table} row {row_id}: {field} is {stored!r} but "
                                        f"audit row {seq} recorded {logged!r} (edited)", table)
            checked += 1
    return VerifyResult(True, checked)
