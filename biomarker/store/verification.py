"""Checking the store: the keyed chain against its anchor, every user, recording and score against the events
written with it, and the audio files against their sha256. Part of `Store` (a mixin); reads only, in a
read-only transaction, so a check never waits for (or blocks) the ward's writes on SQLite.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import exc, select
from sqlalchemy.orm import Session

from biomarker.store.accounts import account_state
from biomarker.store.anchor import AnchorLine
from biomarker.store.audio_folder import audio_sha256
from biomarker.store.chain import GENESIS_HASH, Link, VerifyResult, verify_links
from biomarker.store.engine import READ_ONLY
from biomarker.store.errors import StoreBusyError
from biomarker.store.integrity import Event, cross_check
from biomarker.store.result_fields import recording_record, score_record
from biomarker.store.schema import AuditEvent, AuditHead, Patient, RecordingRow, ScoreRow, User


class Verification:
    """The integrity checks of `Store` (a mixin: uses the store's `engine`, `_sessions`, `_audit_key`, `anchor`
    and `settings`)."""

    def verify_chain(self, *, anchor_file: Path | None = None) -> VerifyResult:
        """Recompute every link, hold the chain against its anchor, then compare every user, recording and score
        with the events written with them.

        The result names the first row that was edited, deleted, inserted or moved (`table`, `first_bad_id`).
        `anchor_file` checks another copy of the anchor as well (a witness's, or an export's header). Raises
        `StoreBusyError` when SQLite stays locked by a writer past its wait.
        """
        try:
            return self._verify_chain(anchor_file)
        except exc.OperationalError as error:
            if "locked" in str(error) or "busy" in str(error):
                raise StoreBusyError("the database is busy: another process held its write lock for longer than "
                                     "the wait; nothing is wrong with the data, run the check again") from None
            raise

    def _verify_chain(self, anchor_file: Path | None) -> VerifyResult:
        with self.engine.connect().execution_options(**{READ_ONLY: True}) as connection, \
                Session(bind=connection) as session:
            head = session.get(AuditHead, 1)
            events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
            chain = verify_links(((_link(event), event.hash) for event in events),
                                 None if head is None else (head.seq, head.hash), self._audit_key)
            if not chain.ok:
                return chain
            hashes = {event.seq: event.hash for event in events}
            anchored = self.anchor.check(hashes)
            for source in () if anchor_file is None else (anchor_file,):
                if anchored.ok:
                    anchored = self.anchor.check(hashes, source)
            if not anchored.ok:
                return anchored
            recordings = session.execute(select(RecordingRow, Patient.pseudonym)
                                         .outerjoin(Patient, RecordingRow.patient_id == Patient.id))
            rows = {
                "users": {user.id: account_state(user) for user in session.scalars(select(User))},
                "recordings": {recording.id: recording_record(recording, pseudonym)
                               for recording, pseudonym in recordings},
                "scores": {score.id: score_record(score) for score in session.scalars(select(ScoreRow))},
            }
        results = cross_check((Event(e.seq, e.actor, e.action, e.object_type, e.object_id, e.payload,
                                     e.key_id is not None) for e in events), rows)
        if not results.ok:
            return results
        return VerifyResult(True, chain.checked, head_hash=chain.head_hash, unkeyed=chain.unkeyed,
                            anchored_seq=anchored.anchored_seq)

    def verify_audio(self) -> VerifyResult:
        """Read every stored recording back and compare its bytes with the sha256 its row (and the chain) holds:
        an overwritten, truncated or deleted audio file is named by its recording id."""
        with self.engine.connect().execution_options(**{READ_ONLY: True}) as connection, \
                Session(bind=connection) as session:
            stored = list(session.execute(select(RecordingRow.id, RecordingRow.audio_path, RecordingRow.sha256)
                                          .order_by(RecordingRow.id)))
        for checked, (recording_id, audio_path, sha256) in enumerate(stored):
            path = self.settings.audio_dir / audio_path
            try:
                data = path.read_bytes()
            except OSError as error:
                return VerifyResult(False, checked, recording_id, f"recordings row {recording_id}: its audio "
                                    f"{audio_path} cannot be read ({error.strerror or error})", "audio")
            if audio_sha256(data) != sha256:
                return VerifyResult(False, checked, recording_id, f"recordings row {recording_id}: its audio "
                                    f"{audio_path} no longer has sha256 {sha256[:12]}... (overwritten)", "audio")
        return VerifyResult(True, len(stored), table="audio")

    def anchor_head(self, *, witness: bool = True) -> AnchorLine:
        """Sign the chain's current head into the anchor file now (and hand it to the witness command when one
        is configured and `witness`); for a scheduled job, and for every export. Raises `WitnessError`."""
        with self._sessions() as session:
            head = session.get(AuditHead, 1)
        seq, digest = (0, GENESIS_HASH) if head is None else (head.seq, head.hash)
        line = self.anchor.append(seq, digest) or self.anchor.sign(seq, digest)
        if witness and self.settings.witness_command:
            self.anchor.witness(line, self.settings.witness_command)
        return line


def _link(event: AuditEvent) -> Link:
    return Link(seq=event.seq, occurred_at=event.occurred_at, actor=event.actor, action=event.action,
                object_type=event.object_type, object_id=event.object_id, payload=event.payload,
                prev_hash=event.prev_hash, key_id=event.key_id)
