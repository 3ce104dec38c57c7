"""Read-only queries for drift monitoring: the results and the refused attempts of a period, per site.

Scores come through the Store's public `history`; refused attempts (the quality gate, undecodable audio) exist
only as `screening_not_stored` audit events, read here in a read-only transaction (on SQLite a deferred BEGIN: no
write lock is taken). Only what monitoring needs leaves this module: time, site, model, the score and the
recording's SNR and duration, or the refusal's reason; never a patient pseudonym. No torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from biomarker.store import auth
from biomarker.store.accounts import UserInfo
from biomarker.store.engine import READ_ONLY
from biomarker.store.repository import HistoryFilter, Store
from biomarker.store.schema import AuditEvent

MONITOR = auth.EXPORT  # who may read monitoring: researchers, auditors and admins (pseudonymised, every site)
ATTEMPT_EVENT = "screening_not_stored"
NO_LIMIT = 10_000_000


@dataclass(frozen=True)
class ScreeningRow:
    occurred_at: datetime
    site: str | None
    model: str  # name@version
    cohort: str
    probability: float
    threshold: float
    referred: bool
    duration_s: float
    snr_db: float | None


@dataclass(frozen=True)
class RefusalRow:
    occurred_at: datetime
    site: str | None
    outcome: str  # refused (quality gate) | rejected (not decodable)
    reason: str  # the error's class, e.g. TooShortError


def screenings(store: Store, *, viewer: UserInfo, since: datetime, until: datetime,
               site: str | None = None) -> list[ScreeningRow]:
    """Every stored result with `since <= time < until` (naive UTC), oldest first."""
    auth.require(viewer.role, MONITOR)
    rows = store.history(HistoryFilter(site=site, since=since, until=until, limit=NO_LIMIT), viewer=viewer)
    return [ScreeningRow(r.created_at, r.site, f"{r.model_name}@{r.model_version}", r.cohort, r.probability,
                         r.threshold, r.decision == "positive", r.duration_s,
                         (r.quality or {}).get("snr_db")) for r in reversed(rows)]


def refusals(store: Store, *, viewer: UserInfo, since: datetime, until: datetime,
             site: str | None = None) -> list[RefusalRow]:
    """Every attempt that stored no result in the period, with its site and reason, oldest first."""
    auth.require(viewer.role, MONITOR)
    query = (select(AuditEvent.occurred_at, AuditEvent.payload).where(AuditEvent.action == ATTEMPT_EVENT)
             .where(AuditEvent.occurred_at >= since).where(AuditEvent.occurred_at < until).order_by(AuditEvent.seq))
    with store.engine.connect().execution_options(**{READ_ONLY: True}) as connection, Session(bind=connection) as session:
        found = []
        for occurred_at, payload in session.execute(query):
            details = json.loads(payload)
            if site is None or details.get("site") == site:
                found.append(RefusalRow(occurred_at, details.get("site"), details.get("outcome", ""),
                                        details.get("reason", "")))
    return found
