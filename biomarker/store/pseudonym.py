"""Patient identifiers become pseudonyms before anything is stored.

A keyed HMAC-SHA256 with the server secret: the same patient always gets the same pseudonym at this site (so
history can be filtered), and without the secret nobody can test a guessed identifier against the database, which
a plain hash of a hospital number would allow. The raw identifier is never written anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

from biomarker.store.errors import StoreError

PSEUDONYM_HEX_CHARS = 64


class PatientIdError(StoreError, ValueError):
    """An empty patient identifier."""


def pseudonymise(secret: bytes, patient_id: str) -> str:
    """Return the 64-hex-character pseudonym of `patient_id`.

    The identifier is NFC-normalised and stripped of surrounding spaces first, so ' 123 ' typed in a form and
    '123' from a CSV map to the same patient.
    """
    canonical = unicodedata.normalize("NFC", patient_id).strip()
    if not canonical:
        raise PatientIdError(f"patient identifier {patient_id!r} is empty")
    return hmac.new(secret, canonical.encode("utf-8"), hashlib.sha256).hexdigest()
