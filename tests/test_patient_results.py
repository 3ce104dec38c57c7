"""The ward flow's store rules: one patient's results stay together (canonical identifiers, earlier rows still
found), the same audio is not stored twice for a patient, every result has a site, refused attempts and opened
results are audited, clinicians open only their own site's results."""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

import pytest
from sqlalchemy import select

from biomarker.store import AccessDeniedError, HistoryFilter, ResultNotFoundError, Store, UserInfo
from biomarker.store.pseudonym import canonical_patient_id, short_pseudonym
from biomarker.store.schema import AuditEvent, Patient
from store_helpers import ADMIN, SECRET, record

CLINICIAN = UserInfo("dr-a", "clinician", site="ward-1")


def actions(store: Store) -> list[str]:
    with store.engine.connect() as connection:
        return list(connection.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


def test_canonical_identifier_folds_case_and_whitespace():
    assert canonical_patient_id("  PAC-0001 ") == canonical_patient_id("pac-0001") == "pac-0001"
    assert canonical_patient_id("Maria  da\tSilva") == "maria da silva"
    assert canonical_patient_id("JOSÉ") == canonical_patient_id(unicodedata.normalize("NFD", "josé"))
    assert canonical_patient_id("PAC-1") != canonical_patient_id("PAC-2")


def test_one_patient_typed_two_ways_has_one_timeline(store):
    record(store, CLINICIAN, patient_id="PAC-0001", audio=b"first")
    record(store, CLINICIAN, patient_id=" pac-0001", audio=b"second")
    rows = store.history(HistoryFilter(patient_id="Pac-0001"), viewer=CLINICIAN)
    assert len(rows) == 2 and len({row.patient_pseudonym for row in rows}) == 1


def test_results_stored_before_case_folding_are_still_found(store):
    """A row written under the old rule (NFC + trim only) is found when the identifier is typed as then."""
    legacy = hmac.new(SECRET, b"PAC-0009", hashlib.sha256).hexdigest()
    outcome = record(store, CLINICIAN, patient_id="placeholder", audio=b"old")
    with store.engine.begin() as connection:
        connection.execute(Patient.__table__.update().values(pseudonym=legacy))
    record(store, CLINICIAN, patient_id="PAC-0009", audio=b"new")
    rows = store.history(HistoryFilter(patient_id="PAC-0009"), viewer=CLINICIAN)
    assert {row.score_id for row in rows} >= {outcome.score_id} and len(rows) == 2


def test_the_same_audio_for_the_same_patient_is_not_stored_twice(store):
    first = record(store, CLINICIAN, patient_id="PAC-3", audio=b"same bytes")
    again = record(store, CLINICIAN, patient_id="pac-3", audio=b"same bytes")
    assert first.stored and not again.stored and again.duplicate_of.score_id == first.score_id
    other = record(store, CLINICIAN, patient_id="PAC-4", audio=b"same bytes")  # another patient: its own row
    assert other.stored
    assert len(store.history(viewer=ADMIN)) == 2 and store.verify_chain().ok


def test_every_result_has_a_site(store):
    with pytest.raises(AccessDeniedError, match="no site"):
        record(store, UserInfo("boss", "admin"), patient_id="PAC-5")
    assert record(store, UserInfo("boss", "admin"), patient_id="PAC-5", site="ward-9").stored


def test_refused_attempts_are_audited_without_the_identifier(store):
    assert store.record_attempt(actor=CLINICIAN, outcome="refused", reason="SilentAudioError", patient_id="PAC-6",
                                site=None, sha256="ab" * 32)
    with store.engine.connect() as connection:
        payload = connection.scalar(select(AuditEvent.payload).where(AuditEvent.action == "screening_not_stored"))
    assert "SilentAudioError" in payload and store.pseudonymise("PAC-6") in payload and "PAC-6" not in payload
    assert store.verify_chain().ok


def test_opening_a_result_is_audited_and_limited_to_the_clinicians_site(store):
    outcome = record(store, CLINICIAN, patient_id="PAC-7")
    row = store.open_result(outcome.score_id, viewer=CLINICIAN, purpose="audio")
    assert row.score_id == outcome.score_id and actions(store)[-1] == "result_audio_opened"
    with pytest.raises(ResultNotFoundError):
        store.open_result(outcome.score_id, viewer=UserInfo("dr-b", "clinician", site="ward-2"))
    with pytest.raises(ResultNotFoundError):
        store.open_result(10_000, viewer=ADMIN)
    assert short_pseudonym(row.patient_pseudonym) == row.patient_pseudonym[:8]
