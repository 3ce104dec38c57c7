"""Who a result is about and who made it: a Patient known only by its pseudonym, a Practitioner by user name, the
site as an Organization.

Why so thin: the store never holds a name, a birth date or the raw identifier, and the export must not pretend
otherwise; a receiving system links the pseudonym to its own Patient (it holds the key only if the hospital gave
it the pseudonymisation secret). One resource per pseudonym, user and site however many results name them.
"""

from __future__ import annotations

from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner

from biomarker.fhir.codes import PSEUDONYM_SYSTEM, SITE_SYSTEM, USERNAME_SYSTEM
from biomarker.fhir.ids import stable_id


def patient(pseudonym: str) -> Patient:
    return Patient(id=stable_id("Patient", pseudonym), identifier=[{"system": PSEUDONYM_SYSTEM, "value": pseudonym}])


def practitioner(username: str) -> Practitioner:
    return Practitioner(id=stable_id("Practitioner", username),
                        identifier=[{"system": USERNAME_SYSTEM, "value": username}])


def organization(site: str) -> Organization:
    return Organization(id=stable_id("Organization", site), identifier=[{"system": SITE_SYSTEM, "value": site}],
                        name=site)
