"""Patient identifiers become pseudonyms before anything is stored.

A keyed HMAC-SHA256 with the server secret: the same patient always gets the same pseudonym at this site (so
history can be filtered), and without the secret nobody can test a guessed identifier against the database, which
a plain hash of a hospital number would allow. The raw identifier is never written anywhere.

The identifier is first put in its canonical form (`canonical_patient_id`): Unicode NFC, surrounding whitespace
trimmed, inner runs of whitespace collapsed to one space, case-folded. Why: a clinician who types "pac-0001" and
another who types "PAC-0001 " mean the same patient, and a history that splits in two hides earlier results.
Results stored before this rule (identifier only NFC-normalised and trimmed) are still found: a lookup also asks
for the `legacy_pseudonym` of what was typed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

from biomarker.store.errors import StoreError

PSEUDONYM_HEX_CHARS = 64
SHORT_PSEUDONYM_CHARS = 8  # what tables and reports show: 32 bits tell a ward's patients apart at a glance
_WHITESPACE = re.compile(r"\s+")


class PatientIdError(StoreError, ValueError):
    """An empty patient identifier."""


def canonical_patient_id(patient_id: str) -> str:
    """The form an identifier is pseudonymised in: NFC, trimmed, inner whitespace collapsed, case-folded.

    Raises `PatientIdError` when nothing is left.
    """
    canonical = _WHITESPACE.sub(" ", unicodedata.normalize("NFC", patient_id).strip()).casefold()
    if not canonical:
        raise PatientIdError(f"patient identifier {patient_id!r} is empty")
    return canonical


def pseudonymise(secret: bytes, patient_id: str) -> str:
    """Return the 64-hex-character pseudonym of `patient_id`'s canonical form."""
    return _keyed(secret, canonical_patient_id(patient_id))


def legacy_pseudonym(secret: bytes, patient_id: str) -> str:
    """The pseudonym the store gave `patient_id` before identifiers were case-folded (NFC and trimmed only),
    so a lookup still finds results stored then under the identifier as it was typed."""
    canonical_patient_id(patient_id)  # same emptiness rule
    return _keyed(secret, unicodedata.normalize("NFC", patient_id).strip())


def short_pseudonym(pseudonym: str | None) -> str:
    """The first characters of a pseudonym, for tables and reports ("—" when a result has no patient)."""
    return "—" if not pseudonym else pseudonym[:SHORT_PSEUDONYM_CHARS]


def _keyed(secret: bytes, text: str) -> str:
    return hmac.new(secret, text.encode("utf-8"), hashlib.sha256).hexdigest()
