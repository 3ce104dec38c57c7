"""Resources → one Bundle: a collection to file, or a transaction a FHIR server applies all-or-nothing.

Why these requests in a transaction: what this export owns (Observation, DiagnosticReport, Media, Provenance) is
PUT under its stable id, so sending the same export twice updates instead of duplicating; what the receiver may
already hold (the Patient by pseudonym, the Practitioner, the site, the model's Device and card, the CodeSystem)
is a conditional create (`ifNoneExist` on its identifier), so the receiver's own record is reused; AuditEvents are
plain creates, as an audit record repository takes them (IHE ITI-20), and carry their chain hash to dedupe by.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from urllib.parse import urlencode

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.resource import Resource

from biomarker.fhir.codes import EXT_AUDIT_ANCHOR, URI_SYSTEM
from biomarker.fhir.ids import full_url

COLLECTION, TRANSACTION = "collection", "transaction"
OWNED = frozenset({"Observation", "DiagnosticReport", "Media", "Provenance"})
APPENDED = frozenset({"AuditEvent"})


def _request(resource: Resource) -> dict[str, str]:
    kind = resource.get_resource_type()
    if kind in OWNED:
        return {"method": "PUT", "url": f"{kind}/{resource.id}"}
    if kind in APPENDED:
        return {"method": "POST", "url": kind}
    if kind == "CodeSystem":
        return {"method": "POST", "url": kind, "ifNoneExist": urlencode({"url": resource.url})}
    identifier = resource.identifier[0]
    return {"method": "POST", "url": kind, "ifNoneExist": urlencode({"identifier": f"{identifier.system}|{identifier.value}"})}


def make_bundle(resources: Iterable[Resource], *, timestamp: datetime, transaction: bool = False,
                anchor: dict | None = None) -> Bundle:
    """A Bundle of `resources` in order, each (type, id) once; `transaction` adds each entry's request. `anchor`
    (the store's signed chain head at export time) rides in `meta` as an extension: a Bundle, being a Resource
    and not a DomainResource, has no extensions of its own."""
    seen: set[tuple[str, str]] = set()
    entries = []
    for resource in resources:
        key = (resource.get_resource_type(), resource.id)
        if key in seen:
            continue
        seen.add(key)
        entry = {"fullUrl": full_url(resource), "resource": resource}
        if transaction:
            entry["request"] = _request(resource)
        entries.append(entry)
    meta = {"extension": [{"url": EXT_AUDIT_ANCHOR, "valueString": json.dumps(anchor, sort_keys=True)}]} if anchor else None
    return Bundle(type=TRANSACTION if transaction else COLLECTION, timestamp=timestamp, meta=meta,
                  identifier={"system": URI_SYSTEM, "value": f"urn:uuid:{uuid.uuid4()}"}, entry=entries)


def to_json(bundle: Bundle) -> str:
    """The Bundle as FHIR JSON text (fields in the spec's order, nothing empty)."""
    return bundle.model_dump_json(exclude_none=True)


def parse_bundle(text: str | bytes) -> Bundle:
    """Parse and validate FHIR JSON into a Bundle (raises pydantic's ValidationError naming the bad element)."""
    return Bundle.model_validate_json(text)
