"""One audit row as a FHIR AuditEvent in the IHE BALP patterns, carrying its place in the hash chain.

Why every field of the row travels (sequence, time to the microsecond, actor, action, object, the canonical
payload text, previous hash, hash): a receiver can then recompute each link and check its copy against the
store's chain, not only read it. The `audit-chain` extension holds seq, prevHash, hash and keyId (the audit
key that signed the link: recomputing a keyed link needs that key); the payload is an
entity detail, byte for byte the text that was hashed.

The codes are BALP's (which build on DICOM's audit vocabulary): sign-in and sign-out are DCM 110114 User
Authentication with 110122 Login / 110123 Logout; storing is a RESTful create, opening a result a RESTful read
with the patient as an entity (BALP PatientCreate / PatientRead); an export is DCM 110106 Export; account and
model changes are DCM 110113 Security Alert with the DICOM subtypes. An action this module does not know (one
added to the store later) still becomes an AuditEvent, typed DCM 110100 Application Activity, so the count
always equals the rows. The store's own action name is kept as a local coding in `subtype` either way.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from fhir.resources.R4B.auditevent import AuditEvent

from biomarker.fhir.codes import (
    AUDIT_ACTION_SYSTEM,
    AUDIT_EVENT_TYPE_SYSTEM,
    DCM,
    ENTITY_TYPE_SYSTEM,
    EXT_AUDIT_CHAIN,
    OBJECT_ROLE_SYSTEM,
    PSEUDONYM_SYSTEM,
    RESTFUL_SYSTEM,
    SOURCE_TYPE_SYSTEM,
    USERNAME_SYSTEM,
    coding,
    object_id_system,
)
from biomarker.fhir.ids import stable_id
from biomarker.fhir.result import utc
from biomarker.store.chain import canonical_json

SUCCESS, MINOR_FAILURE = "0", "4"  # AuditEvent.outcome (R4)
SYSTEM_ACTOR_PREFIX = "system:"  # the store's own acts (a lockout), not a person's


@dataclass(frozen=True)
class AuditRow:
    """An audit row as the store's JSON export gives it (`payload` already parsed)."""

    seq: int
    occurred_at: datetime
    actor: str
    action: str
    object_type: str | None
    object_id: str | None
    payload: Any
    prev_hash: str
    hash: str
    key_id: str | None = None  # which audit key signed the link (None: written before the chain was keyed)

    @classmethod
    def from_export(cls, row: dict[str, Any]) -> "AuditRow":
        known = {field.name for field in fields(cls)}
        values = {name: value for name, value in row.items() if name in known}
        return cls(**{**values, "occurred_at": datetime.fromisoformat(row["occurred_at"])})


@dataclass(frozen=True)
class Pattern:
    """How one store action reads in BALP terms: event type, subtype, CRUDE action, outcome."""

    type: tuple[str, str, str]
    subtype: tuple[str, str, str] | None
    action: str
    outcome: str = SUCCESS


_AUTH = (DCM, "110114", "User Authentication")
_LOGIN, _LOGOUT = (DCM, "110122", "Login"), (DCM, "110123", "Logout")
_ALERT = (DCM, "110113", "Security Alert")
_USER_ATTRIBUTES = (DCM, "110137", "User Security Attributes Changed")
_ROLES = (DCM, "110136", "Security Roles Changed")
_SOFTWARE = (DCM, "110131", "Software Configuration")
_REST = (AUDIT_EVENT_TYPE_SYSTEM, "rest", "RESTful Operation")
_CREATE, _READ = (RESTFUL_SYSTEM, "create", "create"), (RESTFUL_SYSTEM, "read", "read")
_SEARCH = (RESTFUL_SYSTEM, "search-type", "search-type")
_EXPORT = (DCM, "110106", "Export")
_OTHER = (DCM, "110100", "Application Activity")

PATTERNS: dict[str, Pattern] = {
    "login": Pattern(_AUTH, _LOGIN, "E"),
    "login_failed": Pattern(_AUTH, _LOGIN, "E", MINOR_FAILURE),
    "login_locked": Pattern(_AUTH, _LOGIN, "E", MINOR_FAILURE),  # refused: the account is locked
    "login_throttled": Pattern(_AUTH, _LOGIN, "E", MINOR_FAILURE),  # refused: the client is held back
    "logout": Pattern(_AUTH, _LOGOUT, "E"),
    "account_locked": Pattern(_ALERT, _USER_ATTRIBUTES, "U"),  # the lockout itself
    "client_throttled": Pattern(_ALERT, (DCM, "110126", "Node Authentication"), "U"),
    "account_unlocked": Pattern(_ALERT, _USER_ATTRIBUTES, "U"),
    "user_created": Pattern(_ALERT, _ROLES, "C"),
    "user_edited": Pattern(_ALERT, _ROLES, "U"),
    "password_changed": Pattern(_ALERT, _USER_ATTRIBUTES, "U"),
    "password_reset": Pattern(_ALERT, _USER_ATTRIBUTES, "U"),
    "recording_stored": Pattern(_REST, _CREATE, "C"),
    "score_stored": Pattern(_REST, _CREATE, "C"),
    "screening_not_stored": Pattern(_REST, _CREATE, "C", MINOR_FAILURE),  # refused or undecodable audio
    "result_details_opened": Pattern(_REST, _READ, "R"),
    "result_audio_opened": Pattern(_REST, _READ, "R"),
    "result_report_opened": Pattern(_REST, _READ, "R"),
    "results_queried": Pattern(_REST, _SEARCH, "E"),  # BALP Query: a search of patient results
    "export": Pattern(_EXPORT, None, "R"),
    "model_calibrated": Pattern(_ALERT, _SOFTWARE, "C"),
    "model_promoted": Pattern(_ALERT, _SOFTWARE, "U"),
    "model_promoted_override": Pattern(_ALERT, _SOFTWARE, "U"),
    "model_promotion_refused": Pattern(_ALERT, _SOFTWARE, "E", MINOR_FAILURE),
    "drift_alert": Pattern(_ALERT, None, "E"),
}
_UNKNOWN = Pattern(_OTHER, None, "E")


def _entity_what(row: AuditRow) -> dict[str, Any] | None:
    """The object as a logical reference by the store's id (the trail names ids, not resources of this Bundle);
    the identifier's system says the object type, so both hashed fields come back from it."""
    if row.object_type is None:
        return None
    return {"identifier": {"system": object_id_system(row.object_type), "value": row.object_id},
            "display": " ".join(part for part in (row.object_type, row.object_id) if part)}


def _patient_of(row: AuditRow, score_patients: dict[int, str | None]) -> str | None:
    """The pseudonym an event is about: named in its payload (recordings, attempts), or that of the result it
    names (openings, scores)."""
    if isinstance(row.payload, dict) and isinstance(row.payload.get("patient"), str):
        return row.payload["patient"]
    if row.object_type == "score" and row.object_id is not None and row.object_id.isdigit():
        return score_patients.get(int(row.object_id))
    return None


def audit_event(row: AuditRow, score_patients: dict[int, str | None], *, source: str) -> AuditEvent:
    """AuditEvent for `row`; `score_patients` maps result ids to pseudonyms (`lookup.score_patients`), `source`
    names this server as the audit source."""
    pattern = PATTERNS.get(row.action, _UNKNOWN)
    payload_text = canonical_json(row.payload)
    entities: list[dict[str, Any]] = [{
        "what": _entity_what(row), "type": coding(ENTITY_TYPE_SYSTEM, "2", "System Object"),
        "role": coding(OBJECT_ROLE_SYSTEM, "4", "Domain Resource"),
        "detail": [{"type": "payload", "valueString": payload_text}],
    }]
    pseudonym = _patient_of(row, score_patients)
    if pseudonym is not None:
        entities.append({"what": {"identifier": {"system": PSEUDONYM_SYSTEM, "value": pseudonym}},
                         "type": coding(ENTITY_TYPE_SYSTEM, "1", "Person"),
                         "role": coding(OBJECT_ROLE_SYSTEM, "1", "Patient")})
    reason = row.payload.get("reason") if isinstance(row.payload, dict) else None
    return AuditEvent(
        id=stable_id("AuditEvent", row.hash),
        extension=[{"url": EXT_AUDIT_CHAIN, "extension": [{"url": "seq", "valueInteger": row.seq},
                                                          {"url": "prevHash", "valueString": row.prev_hash},
                                                          {"url": "hash", "valueString": row.hash}]
                    + ([] if row.key_id is None else [{"url": "keyId", "valueString": row.key_id}])}],
        type=coding(*pattern.type),
        subtype=[coding(*part) for part in (pattern.subtype,) if part] + [coding(AUDIT_ACTION_SYSTEM, row.action)],
        action=pattern.action, recorded=utc(row.occurred_at), outcome=pattern.outcome,
        outcomeDesc=reason if pattern.outcome != SUCCESS and isinstance(reason, str) else None,
        agent=[{"who": {"identifier": {"system": USERNAME_SYSTEM, "value": row.actor}, "display": row.actor},
                "requestor": not row.actor.startswith(SYSTEM_ACTOR_PREFIX)}],
        source={"site": source, "observer": {"display": source},
                "type": [coding(SOURCE_TYPE_SYSTEM, "4", "Application Server")]},
        entity=entities,
    )

