"""Store → FHIR Bundle for a period: what `biomarker export fhir` and the Audit page's download call.

Why through `Store.export(..., "json")`: that is the store's one door for data leaving it. It checks the viewer's
role (results: export; audit events: audit too), reads the period, checks the chain for audit events and writes
the "export" audit event, so a FHIR export is audited exactly like any other (the trail records it as the JSON
export it is built from). This module then maps those rows; it reads one more thing (`lookup.score_patients`, the
patients of results that audit events name) only after the store has allowed and audited the export.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.resource import Resource

from biomarker.fhir.audit_events import AuditRow, audit_event
from biomarker.fhir.bundle import make_bundle
from biomarker.fhir.codes import code_system
from biomarker.fhir.device import ModelCatalog, ModelResources, model_resources
from biomarker.fhir.lookup import score_patients
from biomarker.fhir.result import result_resources
from biomarker.i18n import LANGUAGES
from biomarker.records import BiomarkerError
from biomarker.report import DEFAULT_ZONE, build_report, check_zone, report_content
from biomarker.store import HistoryRow, Store, UserInfo

RESULTS, AUDIT_EVENTS = "results", "audit_events"
SOURCE_FORMAT = "json"  # the store export the Bundle is built from (and the format its audit event records)


class FhirExportError(BiomarkerError, ValueError):
    """An export asked for something it cannot make (an unknown language, results without a catalog)."""


@dataclass(frozen=True)
class FhirExport:
    """The Bundle and what it was made of (`rows`: store rows of the period)."""

    bundle: Bundle
    table: str
    rows: int


def _history_row(row: dict[str, Any]) -> HistoryRow:
    return HistoryRow(**{**row, "created_at": datetime.fromisoformat(row["created_at"])})


def _conclusion(row: HistoryRow, model: ModelResources, *, language: str, zone: str, viewer: UserInfo,
                exported_at: datetime) -> tuple[str, str]:
    """(conclusion, decision words): the report's own sentences, so the chart's PDF and the FHIR text agree."""
    content = report_content(row, language=language, patient_label=None, printed_by=viewer.username, zone=zone,
                             model=model.facts, printed_at=exported_at)
    return " ".join((f"{content.decision}: {content.probability}.", content.next_step, *content.caveats)), content.decision


def _result_resources(rows: list[HistoryRow], catalog: ModelCatalog, *, viewer: UserInfo, language: str,
                      zone: str, pdf: bool, exported_at: datetime) -> list[Resource]:
    models: dict[tuple[str, str], ModelResources] = {}
    resources: list[Resource] = [code_system(exported_at)]
    for row in rows:
        model_key = (row.model_name, row.model_version)
        if model_key not in models:
            models[model_key] = model_resources(catalog, *model_key, exported_at=exported_at)
        model = models[model_key]
        conclusion, decision = _conclusion(row, model, language=language, zone=zone, viewer=viewer,
                                           exported_at=exported_at)
        chart_pdf = build_report(row, language=language, patient_label=None, printed_by=viewer.username, zone=zone,
                                 model=model.facts, printed_at=exported_at) if pdf else None
        made = result_resources(row, model.device, conclusion=conclusion,
                                decision_text=decision, pdf=chart_pdf, language=language)
        resources += [made.patient, made.practitioner, made.organization, model.device, model.card, made.media,
                      made.observation, made.report, made.provenance]
    return [resource for resource in resources if resource is not None]


def _audit_resources(store: Store, rows: list[AuditRow]) -> list[Resource]:
    score_ids = [int(row.object_id) for row in rows
                 if row.object_type == "score" and row.object_id is not None and row.object_id.isdigit()]
    patients = score_patients(store, score_ids)
    source = f"biomarker@{platform.node() or 'server'}"
    return [audit_event(row, patients, source=source) for row in rows]


def export_bundle(store: Store, since: datetime | None, until: datetime | None, *, viewer: UserInfo | None,
                  table: str = RESULTS, catalog: ModelCatalog | None = None, transaction: bool = False,
                  language: str = "pt_BR", zone: str = DEFAULT_ZONE, pdf: bool = True,
                  post_to: str | None = None) -> FhirExport:
    """Results (Observation, DiagnosticReport with the PDF, Device, Provenance, ...) or audit events (AuditEvent)
    with `since <= time < until` (naive UTC) as one Bundle; the export is audited by the store.

    `catalog` (`biomarker.models.catalog.Catalog()`) names each model's weights and card; it is needed for results
    only. `language` and `zone` are those of the PDF and the conclusion; `pdf=False` leaves the PDF out. The
    export's audit event says it became a FHIR Bundle and, with `post_to`, the server it is sent to; the Bundle
    carries the chain's signed head (`audit verify --anchor bundle.json` checks the store against it).
    """
    # refused before anything is read or audited
    if table == RESULTS and catalog is None:
        raise FhirExportError("a results export needs the model catalog (biomarker.models.catalog.Catalog())")
    if language not in LANGUAGES:
        raise FhirExportError(f"language {language!r} is not one of {', '.join(LANGUAGES)}")
    check_zone(zone)
    details = {"as": "fhir-r4-" + ("transaction" if transaction else "collection"), "pdf": pdf,
               **({"posted_to": post_to} if post_to else {})}
    document = json.loads(store.export(since, until, SOURCE_FORMAT, viewer=viewer, table=table, details=details))
    exported_at = datetime.fromisoformat(document["exported_at"]).replace(tzinfo=timezone.utc)
    if table == RESULTS:
        rows = [_history_row(row) for row in document["rows"]]
        resources = _result_resources(rows, catalog, viewer=viewer, language=language, zone=zone, pdf=pdf,
                                      exported_at=exported_at)
    else:
        rows = [AuditRow.from_export(row) for row in document["rows"]]
        resources = _audit_resources(store, rows)
    bundle = make_bundle(resources, timestamp=exported_at, transaction=transaction, anchor=document["anchor"])
    return FhirExport(bundle, table, len(rows))
