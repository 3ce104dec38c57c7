"""`Store`: the one door the app and the CLI use to save, read, export and audit results.

Every write that matters appends to the audit hash chain in the SAME transaction as the rows it describes, so
either both exist or neither does. Access rules (`auth.require`) are checked inside each operation, not only in
the pages that call them. When the database cannot be reached, `record_result` keeps the result in the spool
and says so; `flush_spool` writes it once the database is back.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import Select, exc, select
from sqlalchemy.orm import Session, sessionmaker

from biomarker.records import DECISION_NEGATIVE, DECISION_POSITIVE, QualityReport, Score
from biomarker.settings import Settings
from biomarker.store import auth
from biomarker.store.accounts import Accounts, UserInfo, account_state
from biomarker.store.anchor import Anchor, AnchorLine
from biomarker.store.audio_folder import audio_sha256, relative_audio_path, save_audio, sha256_from_path
from biomarker.store.chain import GENESIS_HASH, Link, VerifyResult, canonical_json, key_id, verify_links
from biomarker.store.engine import READ_ONLY, make_engine
from biomarker.store.errors import (
    AccessDeniedError,
    AudioPathError,
    ExportFormatError,
    InvalidResultError,
    ResultNotFoundError,
    SpoolError,
    StoreBusyError,
)
from biomarker.store.export import check_format, render
from biomarker.store.integrity import SCORE_FIELDS, Event, cross_check
from biomarker.store.migrate import upgrade_to_head
from biomarker.store.pseudonym import legacy_pseudonym, pseudonymise
from biomarker.store.schema import AuditEvent, AuditHead, Patient, RecordingRow, ScoreRow, User, utc_now
from biomarker.store.spool import REJECTED_DIR, PendingResult, Spool

# Errors that mean "the database is not there right now" (refused connection, missing file, server gone away),
# as opposed to a bug or a constraint violation, which must surface.
UNREACHABLE_ERRORS = (exc.OperationalError, exc.InterfaceError)

RESULT_COLUMNS = (
    "score_id", "recording_id", "created_at", "patient_pseudonym", "site", "created_by", "model_name",
    "model_version", "cohort", "probability", "threshold", "decision", "device", "latency_ms", "duration_s",
    "sample_rate_hz", "sha256", "audio_path", "quality",
)
AUDIT_COLUMNS = ("seq", "occurred_at", "actor", "action", "object_type", "object_id", "payload", "prev_hash", "hash",
                 "key_id")
EXPORT_TABLES = ("results", "audit_events")
OPEN_PURPOSES = ("details", "audio", "report")
MODEL_ACTIONS = ("model_calibrated", "model_promoted", "model_promoted_override", "model_promotion_refused", "drift_alert")
ATTEMPT_OUTCOMES = ("refused", "rejected")  # refused: the quality gate; rejected: not decodable audio
# Where a transaction keeps its locked audit-chain head (see `Store._lock_chain_head`).
_CHAIN_HEAD_KEY = "biomarker.chain_head"


@dataclass(frozen=True)
class RecordOutcome:
    """What happened to a result: stored (with row ids) or spooled (with the file) — the UI shows `message`."""

    stored: bool
    result_uid: str
    recording_id: int | None = None
    score_id: int | None = None
    spool_path: Path | None = None
    message: str = ""
    duplicate_of: "HistoryRow | None" = None  # set when this audio was already screened for this patient


@dataclass(frozen=True)
class FlushReport:
    """`remaining` spool files are still waiting (database down, or `unreadable`: their problems, one each)."""

    written: int
    already_present: int
    remaining: int
    unreadable: tuple[str, ...] = ()


@dataclass(frozen=True)
class HistoryFilter:
    """Narrow the history. `patient_id` is the raw identifier typed by the user (pseudonymised here);
    `since` is inclusive and `until` exclusive (naive UTC)."""

    patient_id: str | None = None
    site: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 500


@dataclass(frozen=True)
class HistoryRow:
    score_id: int
    recording_id: int
    created_at: datetime
    patient_pseudonym: str | None
    site: str | None
    created_by: str
    model_name: str
    model_version: str
    cohort: str
    probability: float
    threshold: float
    decision: str
    device: str
    latency_ms: float
    duration_s: float
    sample_rate_hz: int
    sha256: str
    audio_path: str
    quality: dict | None


class Store(Accounts):
    """Repository over one database and one data folder (see `biomarker.settings.Settings`).

    Construction migrates the database to the newest schema unless `migrate=False` (which lets a process start,
    and spool, while the database is down); `record_result` and `flush_spool` then migrate on first contact.
    """

    def __init__(self, settings: Settings, *, migrate: bool = True):
        self.settings = settings
        self.engine = make_engine(settings.database_url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.spool = Spool(settings.spool_dir, settings.secret)
        self._audit_key = settings.resolved_audit_key()
        self._key_id = key_id(self._audit_key)
        self.anchor = Anchor(settings.anchor_path, self._audit_key)
        self.client_throttle = auth.ClientThrottle()
        self._schema_ready = False
        if migrate:
            self.init_db()

    def init_db(self) -> None:
        """Upgrade the schema to head (idempotent)."""
        upgrade_to_head(self.engine)
        self._schema_ready = True

    def _ensure_schema(self) -> None:
        """Migrate now if construction skipped it (the database was down then); raises if it still is."""
        if not self._schema_ready:
            self.init_db()

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------------------------------ audio, patients
    def save_audio(self, data: bytes, suffix: str = ".wav") -> Path:
        """Keep the uploaded bytes in the content-addressed folder; do this BEFORE scoring."""
        return save_audio(self.settings.audio_dir, data, suffix)

    def audio_file(self, stored_path: str) -> Path:
        """The file behind a `HistoryRow.audio_path`."""
        return self.settings.audio_dir / stored_path

    def pseudonymise(self, patient_id: str) -> str:
        """The pseudonym a new result for `patient_id` is stored under (its canonical form, keyed)."""
        return pseudonymise(self.settings.secret, patient_id)

    def patient_pseudonyms(self, patient_id: str) -> tuple[str, ...]:
        """Every pseudonym results for `patient_id` may be stored under: today's canonical one, and the one
        given before identifiers were case-folded (so earlier results stay in the patient's timeline)."""
        return tuple(dict.fromkeys((self.pseudonymise(patient_id), legacy_pseudonym(self.settings.secret, patient_id))))

    # -------------------------------------------------------------------------------------------------- results
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

    def history(self, filters: HistoryFilter | None = None, *, viewer: UserInfo | None) -> list[HistoryRow]:
        """Results newest first. Clinicians see only their own site; asking for another one is refused."""
        auth.require(None if viewer is None else viewer.role, auth.HISTORY)
        filters = filters or HistoryFilter()
        site = _visible_site(viewer, filters.site)
        query = _results_query()
        if filters.patient_id is not None:
            query = query.where(Patient.pseudonym.in_(self.patient_pseudonyms(filters.patient_id)))
        if site is not None:
            query = query.where(RecordingRow.site == site)
        query = _within(query, RecordingRow.created_at, filters.since, filters.until)
        query = query.order_by(RecordingRow.created_at.desc(), ScoreRow.id.desc()).limit(filters.limit)
        with self._sessions() as session:
            return [_history_row(*row) for row in session.execute(query)]

    def open_result(self, score_id: int, *, viewer: UserInfo | None, purpose: str = "details") -> HistoryRow:
        """One result, for its detail view, its audio or its report; the opening is an audit event.

        `purpose` is what was opened ("details", "audio", "report"). Clinicians open only their own site's
        results; another site's result reads as not found, so ids cannot be probed across sites.
        """
        auth.require(None if viewer is None else viewer.role, auth.HISTORY)
        if purpose not in OPEN_PURPOSES:
            raise InvalidResultError(f"purpose {purpose!r} is not one of {', '.join(OPEN_PURPOSES)}")
        found = self._row(score_id, site=_visible_site(viewer, None))
        if found is None:
            raise ResultNotFoundError(f"no result {score_id!r} that {viewer.username!r} may open")
        with self._transaction() as session:
            self._append_event(session, viewer.username, f"result_{purpose}_opened", "score", str(score_id), {})
        return found

    def record_model_event(self, *, actor: UserInfo, action: str, ref: str, payload: dict[str, Any]) -> None:
        """Audit a change to which model scores patients (a site calibration published, a default promoted): the
        trail then says which calibration was in force when each later result was scored. Admins only."""
        auth.require(actor.role, auth.MANAGE_USERS)
        if action not in MODEL_ACTIONS:
            raise InvalidResultError(f"model action {action!r} is not one of {', '.join(MODEL_ACTIONS)}")
        self._ensure_schema()
        with self._transaction() as session:
            self._append_event(session, actor.username, action, "model", ref[:64], payload)

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

    # ---------------------------------------------------------------------------------------------------- audit
    def export(self, since: datetime | None, until: datetime | None, fmt: str, *, viewer: UserInfo | None,
               table: str = "results") -> str:
        """Results or audit events with `since <= time < until` as CSV or JSON text; the export itself is audited.

        JSON carries the period, the exporter and (for audit events) the chain check beside the rows.
        """
        auth.require(None if viewer is None else viewer.role, auth.EXPORT)
        check_format(fmt)
        if table not in EXPORT_TABLES:
            raise ExportFormatError(f"export table {table!r} is not one of {', '.join(EXPORT_TABLES)}")
        header: dict[str, Any] = {"table": table, "since": since, "until": until, "exported_by": viewer.username,
                                  "exported_at": utc_now()}
        with self._sessions() as session:
            if table == "results":
                query = _within(_results_query(), RecordingRow.created_at, since, until).order_by(ScoreRow.id)
                rows = [asdict(_history_row(*row)) for row in session.execute(query)]
                columns = RESULT_COLUMNS
            else:
                auth.require(viewer.role, auth.AUDIT)
                query = _within(select(AuditEvent), AuditEvent.occurred_at, since, until).order_by(AuditEvent.seq)
                rows = [{column: getattr(event, column) for column in AUDIT_COLUMNS} for event in session.scalars(query)]
                columns = AUDIT_COLUMNS
        if table == "audit_events":
            header["chain"] = asdict(self.verify_chain())
        scope = self._transaction()
        with scope as session:
            self._append_event(session, viewer.username, "export", table, None,
                               {"format": fmt, "since": _iso(since), "until": _iso(until), "rows": len(rows)})
        header["anchor"] = asdict(scope.anchored or self.anchor_head(witness=False))
        if self.settings.witness_command:
            self.anchor.witness(AnchorLine(**header["anchor"]), self.settings.witness_command)
        return render(rows, columns, fmt, header)

    def audit_events(self, *, viewer: UserInfo | None, limit: int = 200) -> list[AuditEvent]:
        """The newest audit events, newest first (for the Audit page)."""
        auth.require(None if viewer is None else viewer.role, auth.AUDIT)
        with self._sessions() as session:
            return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit)))

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
                "recordings": {recording.id: _recording_record(recording, pseudonym)
                               for recording, pseudonym in recordings},
                "scores": {score.id: _score_record(score) for score in session.scalars(select(ScoreRow))},
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

    # ------------------------------------------------------------------------------------------------ internals
    def _transaction(self) -> "_TransactionScope":
        """A session inside one transaction: committed on success, rolled back on any exception; a commit that
        appended to the chain is then anchored."""
        return _TransactionScope(self._sessions, self.anchor)

    def _append_event(self, session: Session, actor: str, action: str, object_type: str | None,
                      object_id: str | None, payload: dict[str, Any], occurred_at: datetime | None = None) -> None:
        """Add the next link of the chain. Locks the head row first: appends are serialised per database."""
        head = self._lock_chain_head(session)
        link = Link(seq=head.seq + 1, occurred_at=occurred_at or utc_now(), actor=actor, action=action,
                    object_type=object_type, object_id=object_id, payload=canonical_json(payload),
                    prev_hash=head.hash, key_id=self._key_id)
        digest = link.compute_hash(self._audit_key)
        session.add(AuditEvent(seq=link.seq, occurred_at=link.occurred_at, actor=actor, action=action,
                               object_type=object_type, object_id=object_id, payload=link.payload,
                               prev_hash=link.prev_hash, hash=digest, key_id=link.key_id))
        head.seq, head.hash = link.seq, digest

    @staticmethod
    def _lock_chain_head(session: Session) -> AuditHead:
        """SELECT ... FOR UPDATE on PostgreSQL; on SQLite the BEGIN IMMEDIATE already holds the write lock.

        Locked once per transaction and kept in `session.info`: the lock holds until commit, so a second
        SELECT (and the autoflush it triggers) per appended event would only add round trips to every result.
        """
        head = session.info.get(_CHAIN_HEAD_KEY)
        if head is None:
            head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
            session.info[_CHAIN_HEAD_KEY] = head
        return head

    def _pending_result(self, score: Score, actor: UserInfo, audio_path: Path, duration_s: float,
                        sample_rate_hz: int, patient_id: str | None, site: str | None,
                        quality: QualityReport | None) -> PendingResult:
        _check_score(score)
        _check_positive("duration_s", duration_s)
        _check_positive("sample_rate_hz", sample_rate_hz)
        if actor.role == auth.CLINICIAN:
            _require_site(actor)
            if site is not None and site != actor.site:
                raise AccessDeniedError(f"clinician {actor.username!r} records at site {actor.site!r}, not {site!r}")
        site = site or actor.site
        if not site:  # a result with no site is seen by no clinician: it would be lost to the ward
            raise AccessDeniedError(f"{actor.username!r} has no site: an admin must set one before screening")
        stored_path = relative_audio_path(self.settings.audio_dir, audio_path)
        return PendingResult(
            result_uid=str(uuid.uuid4()), created_at=_iso(utc_now()), actor=actor.username,
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
                               {**_recording_record(recording, pending.pseudonym, with_actor=False), **spool_note})
            self._append_event(session, pending.actor, "score_stored", "score", str(score.id),
                               {**_score_record(score), **spool_note})
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

    def _row(self, score_id: int, *, site: str | None = None) -> HistoryRow | None:
        """Result `score_id` (only at `site` when one is given), or None."""
        query = _results_query().where(ScoreRow.id == score_id)
        if site is not None:
            query = query.where(RecordingRow.site == site)
        with self._sessions() as session:
            found = session.execute(query).first()
        return None if found is None else _history_row(*found)

    def _result_exists(self, result_uid: str) -> bool:
        with self._sessions() as session:
            return session.scalar(select(RecordingRow.id).where(RecordingRow.result_uid == result_uid)) is not None


class _TransactionScope:
    """Context manager behind `Store._transaction` (a class, not a generator, so exceptions pass through plainly).

    After a commit that moved the chain's head, the new head is appended to the anchor; `anchored` is that line.
    """

    def __init__(self, sessions: Callable[[], Session], anchor: Anchor):
        self._session = sessions()
        self._anchor = anchor
        self.anchored: AnchorLine | None = None

    def __enter__(self) -> Session:
        self._session.begin()
        return self._session

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        try:
            if exc_type is None:
                self._session.commit()
                head = self._session.info.get(_CHAIN_HEAD_KEY)
                if head is not None:
                    self.anchored = self._anchor.append(head.seq, head.hash)
            else:
                self._session.rollback()
        finally:
            self._session.info.pop(_CHAIN_HEAD_KEY, None)  # the lock ended with the transaction
            self._session.close()


# ---------------------------------------------------------------------------------------------------- helpers
def _results_query() -> Select:
    return (select(ScoreRow, RecordingRow, Patient.pseudonym)
            .join(RecordingRow, ScoreRow.recording_id == RecordingRow.id)
            .outerjoin(Patient, RecordingRow.patient_id == Patient.id))


def _within(query: Select, column, since: datetime | None, until: datetime | None) -> Select:
    if since is not None:
        query = query.where(column >= since)
    if until is not None:
        query = query.where(column < until)
    return query


def _history_row(score: ScoreRow, recording: RecordingRow, pseudonym: str | None) -> HistoryRow:
    return HistoryRow(
        score_id=score.id, recording_id=recording.id, created_at=recording.created_at, patient_pseudonym=pseudonym,
        site=recording.site, created_by=recording.created_by, model_name=score.model_name,
        model_version=score.model_version, cohort=score.cohort, probability=score.probability,
        threshold=score.threshold, decision=score.decision, device=score.device, latency_ms=score.latency_ms,
        duration_s=recording.duration_s, sample_rate_hz=recording.sample_rate_hz, sha256=recording.sha256,
        audio_path=recording.audio_path, quality=recording.quality,
    )


def _link(event: AuditEvent) -> Link:
    return Link(seq=event.seq, occurred_at=event.occurred_at, actor=event.actor, action=event.action,
                object_type=event.object_type, object_id=event.object_id, payload=event.payload,
                prev_hash=event.prev_hash, key_id=event.key_id)


def _recording_record(recording: RecordingRow, pseudonym: str | None, *, with_actor: bool = True) -> dict[str, Any]:
    """A recording's columns as its `recording_stored` event records them (`integrity.RECORDING_FIELDS`); the
    event leaves out `created_by`, which is its actor."""
    actor = {"created_by": recording.created_by} if with_actor else {}
    return {"sha256": recording.sha256, "site": recording.site, "patient": pseudonym,
            "duration_s": recording.duration_s, **actor,
            "result_uid": recording.result_uid, "audio_path": recording.audio_path,
            "sample_rate_hz": recording.sample_rate_hz, "quality": recording.quality,
            "created_at": _iso(recording.created_at)}


def _score_record(score: ScoreRow) -> dict[str, Any]:
    """A score's columns as its `score_stored` event records them (`integrity.SCORE_FIELDS`)."""
    return {**{field: getattr(score, field) for field in SCORE_FIELDS if field != "created_at"},
            "created_at": _iso(score.created_at)}


def _quality_dict(quality: QualityReport) -> dict:
    values = asdict(quality)
    values["reasons"] = list(quality.reasons)
    for name, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            values[name] = None  # JSON has no NaN/inf; None says "not measurable" without breaking the export
    return values


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="microseconds")


class _AlreadyScreened(Exception):
    """Raised inside the write transaction (rolling it back) when this patient has this audio already."""

    def __init__(self, score_id: int):
        super().__init__(score_id)
        self.score_id = score_id


def _visible_site(viewer: UserInfo, asked: str | None) -> str | None:
    """The one site rule for reading: a clinician sees only their own site (asking for another is refused);
    other roles see the site they ask for, or all sites (None)."""
    if viewer.role != auth.CLINICIAN:
        return asked
    _require_site(viewer)
    if asked is not None and asked != viewer.site:
        raise AccessDeniedError(f"clinician {viewer.username!r} may only see site {viewer.site!r}, not {asked!r}")
    return viewer.site


def _require_site(clinician: UserInfo) -> None:
    """A clinician without a site would otherwise see every site's results."""
    if not clinician.site:
        raise AccessDeniedError(f"clinician {clinician.username!r} has no site; an admin must set one")


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
