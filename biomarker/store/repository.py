"""`Store`: the one door the app and the CLI use to save, read, export and audit results.

A thin front over one database and one data folder. What it does lives in one mixin per job: `Accounts`
(accounts.py: sign-in, lockout, user administration), `Results` (results.py: writing results and the spool),
`Queries` (queries.py: history, one result, exports) and `Verification` (verification.py: the chain, its anchor,
the rows and the audio). This module holds what they share: the sessions, the transaction that anchors the
chain after it commits, and the appending of audit events.

Every write that matters appends to the audit chain in the SAME transaction as the rows it describes, so either
both exist or neither does. Access rules (`auth.require`) are checked inside each operation, not only in the
pages that call them.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from biomarker.settings import Settings
from biomarker.store import auth
from biomarker.store.accounts import Accounts, UserInfo
from biomarker.store.anchor import Anchor, AnchorLine
from biomarker.store.audio_folder import save_audio
from biomarker.store.chain import Link, canonical_json, key_id
from biomarker.store.engine import make_engine
from biomarker.store.errors import InvalidResultError
from biomarker.store.migrate import upgrade_to_head
from biomarker.store.pseudonym import legacy_pseudonym, pseudonymise
from biomarker.store.queries import AUDIT_COLUMNS, EXPORT_TABLES, HistoryFilter, Queries
from biomarker.store.result_fields import RESULT_COLUMNS, HistoryRow
from biomarker.store.results import UNREACHABLE_ERRORS, FlushReport, RecordOutcome, Results
from biomarker.store.schema import AuditEvent, AuditHead, utc_now
from biomarker.store.spool import Spool
from biomarker.store.temporaries import sweep_dead_writers
from biomarker.store.verification import Verification

__all__ = ["AUDIT_COLUMNS", "EXPORT_TABLES", "RESULT_COLUMNS", "UNREACHABLE_ERRORS", "FlushReport", "HistoryFilter",
           "HistoryRow", "RecordOutcome", "Store"]

DRIFT_ALERT = "drift_alert"
MODEL_ACTIONS = ("model_calibrated", "model_promoted", "model_promoted_override", "model_promotion_refused", DRIFT_ALERT)
# Where a transaction keeps its locked audit-chain head (see `Store._lock_chain_head`).
_CHAIN_HEAD_KEY = "biomarker.chain_head"


class Store(Accounts, Results, Queries, Verification):
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
        self._audited_queries: dict[tuple, float] = {}  # Queries: when each history question was last audited
        self._audited_queries_lock = threading.Lock()
        self.client_throttle = auth.ClientThrottle()
        self._schema_ready = False
        for folder in (settings.audio_dir, settings.spool_dir):  # what a writer killed mid-write left behind
            sweep_dead_writers(folder)
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

    # ---------------------------------------------------------------------------------------------- model events
    def record_model_event(self, *, actor: UserInfo, action: str, ref: str, payload: dict[str, Any]) -> None:
        """Audit a change to which model scores patients (a site calibration published, a default promoted): the
        trail then says which calibration was in force when each later result was scored. Admins only; but a
        drift alert may be recorded by whoever may see the monitor (the roles that export), so an alert seen by a
        researcher is in the trail too."""
        if action not in MODEL_ACTIONS:
            raise InvalidResultError(f"model action {action!r} is not one of {', '.join(MODEL_ACTIONS)}")
        auth.require(actor.role, auth.EXPORT if action == DRIFT_ALERT else auth.MANAGE_USERS)
        self._ensure_schema()
        with self._transaction() as session:
            self._append_event(session, actor.username, action, "model", ref[:64], payload)

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
