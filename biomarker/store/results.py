"""Writing results: a recording, its score and their audit events in one transaction, or the spool when the
database is down; and replaying the spool. Part of `Store` (a mixin over its sessions, chain and spool).

A spooled result is replayed only after every check a live write makes: the spool's signature says who wrote
it, not that what it says is sane.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import exc, select

from biomarker.records import DECISION_NEGATIVE, DECISION_POSITIVE, QualityReport, Score
from biomarker.store import auth
from biomarker.store.accounts import UserInfo
from biomarker.store.audio_folder import audio_sha256, relative_audio_path, sha256_from_path
from biomarker.store.errors import AudioPathError, InvalidResultError, SpoolError
from biomarker.store.result_fields import HistoryRow, iso, recording_record, score_record
from biomarker.store.schema import Patient, RecordingRow, ScoreRow, utc_now
from biomarker.store.spool import REJECTED_DIR, PendingResult

# Errors that mean "the database is not there right now" (refused connection, missing file, server gone away),
# as opposed to a bug or a constraint violation, which must surface.
UNREACHABLE_ERRORS = (exc.OperationalError, exc.InterfaceError)
ATTEMPT_OUTCOMES = ("refused", "rejected")  # refused: the quality gate; rejected: not decodable audio


@dataclass(frozen=True)
class RecordOutcome:
    """What happened to a result: stored (with row ids) or spooled (with the file) — the UI shows `message`."""

    stored: bool
    result_uid: str
    recording_id: int | None = None
    score_id: int | None = None
    spool_path: Path | None = None
    message: str = ""
    duplicate_of: HistoryRow | None = None  # set when this audio was already screened for this patient


@dataclass(frozen=True)
class FlushReport:
    """`remaining` spool files are still waiting (database down, or `unreadable`: their problems, one each)."""

    written: int
    already_present: int
    remaining: int
    unreadable: tuple[str, ...] = ()


class Results:
    """The result-writing operations of `Store` (a mixin: uses the store's `_sessions`, `_transaction`,
    `_append_event`, `_lock_chain_head`, `_ensure_schema`, `_row`, `pseudonymise` and `spool`)."""

    def record_result(self, score: Score, *, actor: UserInfo, audio_path: Path, duration_s: float,
                      sample_rate_hz: int, patient_id: str | None = None, site: str | None = None,
                      quality: QualityReport | None = None) -> RecordOutcome:
        """Store a recording, its score and their audit events in ONE transaction.

        `audio_path` is what `save_audio` returned. A clinician always records at their own site; others may
        name one. `quality` defaults to `score.quality`. If the database is unreachable the result goes to the
        spool and the outcome says so (`stored=False`, `message` for the user); nothing is lost.
        """
        auth.require(actor.role, auth.SCORE)
        pending = self._pending_result(score, actor, audio_path, duration_s, sample_rate_hz, patient_id, site,
                                       quality if quality is not None else score.quality)
        try:
            self._ensure_schema()
            recording_id, score_id = self._write_result(pending, spooled=False)
        except _AlreadyScreened as duplicate:
            earlier = self._row(duplicate.score_id)
            return RecordOutcome(False, pending.result_uid, earlier.recording_id, earlier.score_id,
                                 message="This recording was already screened for this patient: not stored again.",
                                 duplicate_of=earlier)
        except UNREACHABLE_ERRORS as error:
            path = self.spool.write(pending)
            return RecordOutcome(False, pending.result_uid, spool_path=path,
                                 message="The database is unreachable: the result was kept on this server and "
                                         f"will be stored when the database is back ({type(error).__name__}).")
        return RecordOutcome(True, pending.result_uid, recording_id, score_id, message="Result stored.")

    def flush_spool(self) -> FlushReport:
        """Write spooled results oldest first; stop (keeping the rest) at the first sign the database is down.

        Safe to call from several processes at once: a result another flusher wrote first counts as already
        present. A file that cannot be read back is left in place and named in the report, never deleted.
        """
        written = already = 0
        unreadable: list[str] = []
        paths = self.spool.pending()
        if paths:
            try:
                self._ensure_schema()
            except UNREACHABLE_ERRORS:
                return FlushReport(0, 0, len(paths))
        for index, path in enumerate(paths):
            if not path.exists():
                continue  # another flusher took it: neither written here nor still waiting
            try:
                pending = self.spool.read(path)
                self._check_replayed(pending, path)
            except (SpoolError, InvalidResultError, AudioPathError) as error:
                if self.spool.reject(path) is not None:
                    unreadable.append(f"{error} (moved to {self.spool.folder / REJECTED_DIR})")
                continue
            try:
                if self._result_exists(pending.result_uid):
                    already += 1
                else:
                    self._write_result(pending, spooled=True)
                    written += 1
            except exc.IntegrityError:
                if not self._result_exists(pending.result_uid):
                    raise
                already += 1
            except UNREACHABLE_ERRORS:
                return FlushReport(written, already, sum(p.exists() for p in paths[index:]), tuple(unreadable))
            self.spool.remove(path)
        return FlushReport(written, already, 0, tuple(unreadable))

    def record_attempt(self, *, actor: UserInfo, outcome: str, reason: str, patient_id: str | None,
                       site: str | None, sha256: str | None) -> bool:
        """Audit a screening attempt that stored no score (refused by the quality gate, or rejected as
        undecodable), so the trail shows every attempt, not only the successes.

        Returns False, and loses nothing that matters, when the database is unreachable: no result exists to
        keep, and the clinician was told why the recording was refused.
        """
        auth.require(actor.role, auth.SCORE)
        if outcome not in ATTEMPT_OUTCOMES:
            raise InvalidResultError(f"attempt outcome {outcome!r} is not one of {', '.join(ATTEMPT_OUTCOMES)}")
        payload = {"outcome": outcome, "reason": reason, "sha256": sha256, "site": site or actor.site,
                   "patient": None if patient_id is None else self.pseudonymise(patient_id)}
        try:
            self._ensure_schema()
            with self._transaction() as session:
                self._append_event(session, actor.username, "screening_not_stored", "recording", None, payload)
        except UNREACHABLE_ERRORS:
            return False
        return True

    def _pending_result(self, score: Score, actor: UserInfo, audio_path: Path, duration_s: float,
                        sample_rate_hz: int, patient_id: str | None, site: str | None,
                        quality: QualityReport | None) -> PendingResult:
        _check_score(score)
        _check_positive("duration_s", duration_s)
        _check_positive("sample_rate_hz", sample_rate_hz)
        site = auth.recording_site(actor.role, actor.username, actor.site, site)
        stored_path = relative_audio_path(self.settings.audio_dir, audio_path)
        return PendingResult(
            result_uid=str(uuid.uuid4()), created_at=iso(utc_now()), actor=actor.username,
            site=site,
            pseudonym=None if patient_id is None else self.pseudonymise(patient_id),
            audio_path=stored_path, sha256=sha256_from_path(stored_path), duration_s=float(duration_s),
            sample_rate_hz=int(sample_rate_hz), quality=None if quality is None else _quality_dict(quality),
            model_name=score.model_name, model_version=score.model_version, cohort=score.cohort,
            probability=float(score.probability), threshold=float(score.threshold), decision=score.decision,
            device=score.device, latency_ms=float(score.latency_ms),
        )

    def _write_result(self, pending: PendingResult, *, spooled: bool) -> tuple[int, int]:
        created_at = datetime.fromisoformat(pending.created_at)
        with self._transaction() as session:
            # Lock the chain head before reading patients, so two first results for one new patient cannot both
            # insert it (PostgreSQL read-committed would let them).
            self._lock_chain_head(session)
            patient = None
            if pending.pseudonym is not None:
                patient = session.scalar(select(Patient).where(Patient.pseudonym == pending.pseudonym))
                if patient is not None and not spooled:
                    earlier = session.scalar(select(ScoreRow.id).join(RecordingRow)
                                             .where(RecordingRow.patient_id == patient.id,
                                                    RecordingRow.sha256 == pending.sha256)
                                             .order_by(ScoreRow.id).limit(1))
                    if earlier is not None:
                        raise _AlreadyScreened(earlier)
                if patient is None:
                    patient = Patient(pseudonym=pending.pseudonym, created_at=created_at)
                    session.add(patient)
            recording = RecordingRow(
                result_uid=pending.result_uid, patient=patient, sha256=pending.sha256, audio_path=pending.audio_path,
                duration_s=pending.duration_s, sample_rate_hz=pending.sample_rate_hz, quality=pending.quality,
                site=pending.site, created_by=pending.actor, created_at=created_at,
            )
            score = ScoreRow(
                recording=recording, model_name=pending.model_name, model_version=pending.model_version,
                cohort=pending.cohort, probability=pending.probability, threshold=pending.threshold,
                decision=pending.decision, device=pending.device, latency_ms=pending.latency_ms,
                created_at=created_at,
            )
            session.add_all([recording, score])
            session.flush()
            spool_note = {"spooled_at": pending.created_at} if spooled else {}
            self._append_event(session, pending.actor, "recording_stored", "recording", str(recording.id),
                               {**recording_record(recording, pending.pseudonym, with_actor=False), **spool_note})
            self._append_event(session, pending.actor, "score_stored", "score", str(score.id),
                               {**score_record(score), **spool_note})
            return recording.id, score.id

    def _check_replayed(self, pending: PendingResult, path: Path) -> None:
        """A genuine spool file still gets every check a live write makes (values, time, audio path and its
        content): the signature says who wrote it, not that what it says is sane."""
        _check_score(Score(probability=pending.probability, threshold=pending.threshold, decision=pending.decision,
                           model_name=pending.model_name, model_version=pending.model_version, cohort=pending.cohort,
                           device=pending.device, latency_ms=pending.latency_ms, quality=None))
        _check_positive("duration_s", pending.duration_s)
        _check_positive("sample_rate_hz", pending.sample_rate_hz)
        try:
            created = datetime.fromisoformat(pending.created_at)
        except (TypeError, ValueError):
            raise InvalidResultError(f"{path}: created_at {pending.created_at!r} is not a time") from None
        if created > utc_now():
            raise InvalidResultError(f"{path}: created_at {pending.created_at} is in the future")
        audio = self.settings.audio_dir / pending.audio_path
        if relative_audio_path(self.settings.audio_dir, audio) != pending.audio_path or \
                sha256_from_path(pending.audio_path) != pending.sha256 or audio_sha256(audio.read_bytes()) != pending.sha256:
            raise AudioPathError(f"{path}: its audio {pending.audio_path!r} is not the stored recording it names")

    def _result_exists(self, result_uid: str) -> bool:
        with self._sessions() as session:
            return session.scalar(select(RecordingRow.id).where(RecordingRow.result_uid == result_uid)) is not None


def _quality_dict(quality: QualityReport) -> dict:
    values = asdict(quality)
    values["reasons"] = list(quality.reasons)
    for name, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            values[name] = None  # JSON has no NaN/inf; None says "not measurable" without breaking the export
    return values


class _AlreadyScreened(Exception):
    """Raised inside the write transaction (rolling it back) when this patient has this audio already."""

    def __init__(self, score_id: int):
        super().__init__(score_id)
        self.score_id = score_id


def _check_score(score: Score) -> None:
    for name in ("probability", "threshold"):
        value = getattr(score, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0):
            raise InvalidResultError(f"score {name} {value!r} must be a finite number in [0, 1]")
    if score.decision not in (DECISION_POSITIVE, DECISION_NEGATIVE):
        raise InvalidResultError(f"score decision {score.decision!r} must be {DECISION_POSITIVE!r} or "
                                 f"{DECISION_NEGATIVE!r}")
    if not (math.isfinite(score.latency_ms) and score.latency_ms >= 0):
        raise InvalidResultError(f"score latency_ms {score.latency_ms!r} must be finite and >= 0")
    for name in ("model_name", "model_version", "cohort", "device"):
        if not getattr(score, name):
            raise InvalidResultError(f"score {name} {getattr(score, name)!r} must not be empty")


def _check_positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise InvalidResultError(f"recording {name} {value!r} must be a positive finite number")
