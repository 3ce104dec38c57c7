"""The audit hash chain: how a link's hash is computed and how the whole chain is checked.

hash(n) = SHA-256 of the canonical JSON of event n's fields together with hash(n-1); the first link's
previous hash is GENESIS_HASH. Pure functions over plain values, so verification needs no database tricks.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces, UTF-8 kept; what is hashed is exactly what is stored."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True)
class Link:
    """The hashed fields of one audit event (all plain values)."""

    seq: int
    occurred_at: datetime
    actor: str
    action: str
    object_type: str | None
    object_id: str | None
    payload: str  # canonical JSON text
    prev_hash: str

    def compute_hash(self) -> str:
        fields = {
            "seq": self.seq,
            "occurred_at": self.occurred_at.isoformat(timespec="microseconds"),
            "actor": self.actor,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
        }
        return hashlib.sha256(canonical_json(fields).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of an integrity check.

    When not `ok`, `first_bad_id` is the first row that fails (its `seq` for `table` "audit_events", its `id` for
    "recordings" or "scores") and `reason` says what is wrong with it.
    """

    ok: bool
    checked: int
    first_bad_id: int | None = None
    reason: str = ""
    table: str = "audit_events"
    head_hash: str = ""  # the last link's hash when ok: note it outside the database to anchor the chain


def verify_links(rows: Iterable[tuple[Link, str]], head: tuple[int, str] | None) -> VerifyResult:
    """Check `(link, stored_hash)` pairs in ascending `seq` order against each other and against the head.

    Detects an edited row (its hash no longer matches its fields), a deleted row (a gap in `seq`, or the next
    row's `prev_hash` pointing at something else), reordered rows (`prev_hash` mismatch) and deleted newest rows
    (the head names a later link than the last row found).
    """
    expected_seq, expected_prev, checked = 1, GENESIS_HASH, 0
    for link, stored_hash in rows:
        if link.seq != expected_seq:
            return VerifyResult(False, checked, expected_seq, f"row {expected_seq} is missing: the next row found is "
                                f"{link.seq} (deleted, or sequence numbers edited)")
        if link.prev_hash != expected_prev:
            return VerifyResult(False, checked, link.seq, f"row {link.seq}: previous-hash does not match row "
                                f"{link.seq - 1} (a row was deleted, inserted or reordered)")
        if link.compute_hash() != stored_hash:
            return VerifyResult(False, checked, link.seq, f"row {link.seq}: contents do not match its hash (edited)")
        expected_seq, expected_prev, checked = expected_seq + 1, stored_hash, checked + 1
    head_seq, head_hash = head if head is not None else (0, GENESIS_HASH)
    last_seq = expected_seq - 1
    if head_seq > last_seq:
        return VerifyResult(False, checked, expected_seq, f"row {expected_seq} is missing: the chain head names row "
                            f"{head_seq} but the last row is {last_seq} (the newest rows were deleted)")
    if (head_seq, head_hash) != (last_seq, expected_prev):
        return VerifyResult(False, checked, head_seq + 1 if head_seq < last_seq else last_seq,
                            f"the chain head names row {head_seq} ({head_hash[:12]}...) but the last row is {last_seq} "
                            f"({expected_prev[:12]}...): rows appended outside the store, or the head edited")
    return VerifyResult(True, checked, head_hash=expected_prev)
