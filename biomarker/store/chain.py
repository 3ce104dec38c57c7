"""The audit hash chain: how a link's hash is computed and how the whole chain is checked.

hash(n) = HMAC-SHA256 under the audit key of the canonical JSON of event n's fields together with hash(n-1)
and the key's id; the first link's previous hash is GENESIS_HASH. Keyed, because anyone with the code and
write access to the database could otherwise edit an event and re-hash every later one. Links written before
the chain was keyed (`key_id` None) are plain SHA-256 and stay valid, but only as a prefix: an unkeyed link
after a keyed one is a forgery. Pure functions over plain values, so verification needs no database tricks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

GENESIS_HASH = "0" * 64


def key_id(key: bytes) -> str:
    """A short public name for an audit key, stored in each link: says which key signed it, reveals nothing."""
    return hashlib.sha256(b"biomarker audit key id|" + key).hexdigest()[:16]


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
    key_id: str | None = None  # None: written before the chain was keyed (plain SHA-256)

    def compute_hash(self, key: bytes | None = None) -> str:
        """The link's hash: HMAC under `key` for a keyed link (`key` required), SHA-256 for a legacy one."""
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
        if self.key_id is None:
            return hashlib.sha256(canonical_json(fields).encode("utf-8")).hexdigest()
        if key is None:
            raise ValueError(f"link {self.seq} is keyed ({self.key_id}): its hash needs the audit key")
        fields["key_id"] = self.key_id
        return hmac.new(key, canonical_json(fields).encode("utf-8"), hashlib.sha256).hexdigest()


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
    unkeyed: int = 0  # links written before the chain was keyed (protected by the anchor only)
    anchored_seq: int = 0  # the newest chain head the anchor file vouches for


def verify_links(rows: Iterable[tuple[Link, str]], head: tuple[int, str] | None, key: bytes) -> VerifyResult:
    """Check `(link, stored_hash)` pairs in ascending `seq` order against each other and against the head.

    Detects an edited row (its hash no longer matches its fields, and without `key` no new hash can be made), a
    deleted row (a gap in `seq`, or the next row's `prev_hash` pointing at something else), reordered rows
    (`prev_hash` mismatch), an unkeyed or foreign-keyed link, and deleted newest rows (the head names a later link
    than the last row found). Deleting newest rows AND moving the head back is caught by the anchor
    (`biomarker.store.anchor`), not here.
    """
    expected_seq, expected_prev, checked, unkeyed, ours = 1, GENESIS_HASH, 0, 0, key_id(key)
    for link, stored_hash in rows:
        if link.seq != expected_seq:
            return VerifyResult(False, checked, expected_seq, f"row {expected_seq} is missing: the next row found is "
                                f"{link.seq} (deleted, or sequence numbers edited)")
        if link.prev_hash != expected_prev:
            return VerifyResult(False, checked, link.seq, f"row {link.seq}: previous-hash does not match row "
                                f"{link.seq - 1} (a row was deleted, inserted or reordered)")
        if link.key_id is None and checked > unkeyed:
            return VerifyResult(False, checked, link.seq, f"row {link.seq}: an unkeyed link after keyed ones "
                                "(forged by someone without the audit key)")
        if link.key_id is not None and link.key_id != ours:
            return VerifyResult(False, checked, link.seq, f"row {link.seq}: signed with audit key {link.key_id}, "
                                f"not this store's key {ours} (forged, or verified with the wrong key)")
        if not hmac.compare_digest(link.compute_hash(key), stored_hash):
            return VerifyResult(False, checked, link.seq, f"row {link.seq}: contents do not match its hash (edited)")
        unkeyed += link.key_id is None
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
    return VerifyResult(True, checked, head_hash=expected_prev, unkeyed=unkeyed)
