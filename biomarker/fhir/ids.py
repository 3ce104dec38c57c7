"""Resource ids and references: stable, so exporting the same result twice gives the same resources.

Why uuid5 of what identifies a thing (a result's uuid, a pseudonym, `name@version`, an audit row's hash): a receiver
that is sent the same export again updates what it has instead of filing duplicates, and two installations never
collide (their results' uuids differ). References inside a Bundle point at `urn:uuid:` full URLs, which a FHIR
server resolves in a transaction.
"""

from __future__ import annotations

import uuid

from fhir.resources.R4B.resource import Resource

from biomarker.fhir.codes import LOCAL_BASE

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, LOCAL_BASE)


def stable_id(kind: str, key: str) -> str:
    """The id of the `kind` resource identified by `key` (a uuid string, valid as a FHIR id)."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}|{key}"))


def full_url(resource: Resource) -> str:
    return f"urn:uuid:{resource.id}"


def reference_to(resource: Resource, display: str | None = None) -> dict[str, str]:
    """A Reference to a resource carried in the same Bundle (a plain value: the resource holding it validates it)."""
    return {"reference": full_url(resource), **({"display": display} if display else {})}
