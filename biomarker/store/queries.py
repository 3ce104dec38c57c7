"""Reading results and the audit trail: the history, one result, exports. Part of `Store` (a mixin over its
sessions and chain). Every read checks the reader's role, and a clinician's site, inside the operation.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select

from biomarker.store import auth
from biomarker.store.accounts import UserInfo
from biomarker.store.anchor import AnchorLine
from biomarker.store.errors import ExportFormatError, InvalidResultError, ResultNotFoundError
from biomarker.store.export import check_format, render
from biomarker.store.result_fields import RESULT_COLUMNS, HistoryRow, history_row, iso
from biomarker.store.schema import AuditEvent, Patient, RecordingRow, ScoreRow, utc_now

AUDIT_COLUMNS = ("seq", "occurred_at", "actor", "action", "object_type", "object_id", "payload", "prev_hash", "hash",
                 "key_id")
EXPORT_TABLES = ("results", "audit_events")
OPEN_PURPOSES = ("details", "audio", "report")
QUERY_AUDIT_WINDOW_S = 600.0  # the same question from the same viewer within this is not audited again


@dataclass(frozen=True)
class HistoryFilter:
    """Narrow the history. `patient_id` is the raw identifier typed by the user (pseudonymised here);
    `since` is inclusive and `until` exclusive (naive UTC)."""

    patient_id: str | None = None
    site: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 500


class Queries:
    """The reading operations of `Store` (a mixin: uses the store's `_sessions`, `_transaction`, `_append_event`,
    `patient_pseudonyms`, `verify_chain`, `anchor_head`, `anchor` and `settings`)."""

    def history(self, filters: HistoryFilter | None = None, *, viewer: UserInfo | None) -> list[HistoryRow]:
        """Results newest first. Clinicians see only their own site; asking for another one is refused.

        The query is an audit event (`results_queried`: who asked for which patient, site and period, and how
        many rows came back), once per viewer and question in `QUERY_AUDIT_WINDOW_S`: a page that redraws the
        same list on every click asks once, as far as the trail is concerned.
        """
        auth.require(None if viewer is None else viewer.role, auth.HISTORY)
        filters = filters or HistoryFilter()
        site = auth.reading_site(viewer.role, viewer.username, viewer.site, filters.site)
        query = results_query()
        if filters.patient_id is not None:
            query = query.where(Patient.pseudonym.in_(self.patient_pseudonyms(filters.patient_id)))
        if site is not None:
            query = query.where(RecordingRow.site == site)
        query = _within(query, RecordingRow.created_at, filters.since, filters.until)
        query = query.order_by(RecordingRow.created_at.desc(), ScoreRow.id.desc()).limit(filters.limit)
        with self._sessions() as session:
            rows = [history_row(*row) for row in session.execute(query)]
        self._audit_query(viewer, filters, site, len(rows))
        return rows

    def _audit_query(self, viewer: UserInfo, filters: HistoryFilter, site: str | None, rows: int) -> None:
        patient = None if filters.patient_id is None else self.pseudonymise(filters.patient_id)
        question = (viewer.username, patient, site, iso(filters.since), iso(filters.until))
        now = time.monotonic()
        with self._audited_queries_lock:
            last = self._audited_queries.get(question)
            if last is not None and now - last < QUERY_AUDIT_WINDOW_S:
                return
            self._audited_queries[question] = now
        with self._transaction() as session:
            self._append_event(session, viewer.username, "results_queried", "results", None,
                               {"patient": patient, "site": site, "since": question[3], "until": question[4],
                                "rows": rows})

    def open_result(self, score_id: int, *, viewer: UserInfo | None, purpose: str = "details") -> HistoryRow:
        """One result, for its detail view, its audio or its report; the opening is an audit event.

        `purpose` is what was opened ("details", "audio", "report"). Clinicians open only their own site's
        results; another site's result reads as not found, so ids cannot be probed across sites.
        """
        auth.require(None if viewer is None else viewer.role, auth.HISTORY)
        if purpose not in OPEN_PURPOSES:
            raise InvalidResultError(f"purpose {purpose!r} is not one of {', '.join(OPEN_PURPOSES)}")
        found = self._row(score_id, site=auth.reading_site(viewer.role, viewer.username, viewer.site, None))
        if found is None:
            raise ResultNotFoundError(f"no result {score_id!r} that {viewer.username!r} may open")
        with self._transaction() as session:
            self._append_event(session, viewer.username, f"result_{purpose}_opened", "score", str(score_id), {})
        return found

    def export(self, since: datetime | None, until: datetime | None, fmt: str, *, viewer: UserInfo | None,
               table: str = "results", details: dict[str, Any] | None = None) -> str:
        """Results or audit events with `since <= time < until` as CSV or JSON text; the export itself is audited.

        JSON carries the period, the exporter, the chain's signed head (`anchor`) and (for audit events) the chain
        check beside the rows. `details` go into the export's audit event as well: what the rows are turned into
        and where they are sent (a FHIR Bundle posted to a server), so the trail says where the data went.
        """
        auth.require(None if viewer is None else viewer.role, auth.EXPORT)
        check_format(fmt)
        if table not in EXPORT_TABLES:
            raise ExportFormatError(f"export table {table!r} is not one of {', '.join(EXPORT_TABLES)}")
        header: dict[str, Any] = {"table": table, "since": since, "until": until, "exported_by": viewer.username,
                                  "exported_at": utc_now()}
        with self._sessions() as session:
            if table == "results":
                query = _within(results_query(), RecordingRow.created_at, since, until).order_by(ScoreRow.id)
                rows = [asdict(history_row(*row)) for row in session.execute(query)]
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
                               {"format": fmt, "since": iso(since), "until": iso(until), "rows": len(rows),
                                **(details or {})})
        header["anchor"] = asdict(scope.anchored or self.anchor_head(witness=False))
        if self.settings.witness_command:
            self.anchor.witness(AnchorLine(**header["anchor"]), self.settings.witness_command)
        return render(rows, columns, fmt, header)

    def audit_events(self, *, viewer: UserInfo | None, limit: int = 200) -> list[AuditEvent]:
        """The newest audit events, newest first (for the Audit page)."""
        auth.require(None if viewer is None else viewer.role, auth.AUDIT)
        with self._sessions() as session:
            return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit)))

    def _row(self, score_id: int, *, site: str | None = None) -> HistoryRow | None:
        """Result `score_id` (only at `site` when one is given), or None."""
        query = results_query().where(ScoreRow.id == score_id)
        if site is not None:
            query = query.where(RecordingRow.site == site)
        with self._sessions() as session:
            found = session.execute(query).first()
        return None if found is None else history_row(*found)


def results_query() -> Select:
    return (select(ScoreRow, RecordingRow, Patient.pseudonym)
            .join(RecordingRow, ScoreRow.recording_id == RecordingRow.id)
            .outerjoin(Patient, RecordingRow.patient_id == Patient.id))


def _within(query: Select, column, since: datetime | None, until: datetime | None) -> Select:
    if since is not None:
        query = query.where(column >= since)
    if until is not None:
        query = query.where(column < until)
    return query
