"""HL7 FHIR R4 exports of results and of the audit trail, built and validated with `fhir.resources` (R4B models,
which the package keeps apart from its default R5 ones; R4B is R4's wire format for every resource used here).

    from biomarker.fhir import export_bundle, to_json, post_bundle
    made = export_bundle(store, since, until, viewer=user, table="results", catalog=Catalog(), transaction=True)
    text = to_json(made.bundle)                  # parse_bundle(text) gives it back, validated
    post_bundle(made.bundle, "https://fhir.example/r4")

Rooms: `codes` (every system and code, and the local CodeSystem) → `participants`, `device`, `result`,
`audit_events` (one resource family each) → `bundle` (entries, transaction requests, JSON) → `export` (store →
Bundle, audited by the store) and `post` (to a FHIR server). No torch: the model catalog is passed in. Mapping
table and an example Bundle: docs/store.md "FHIR export".
"""

from biomarker.fhir.bundle import COLLECTION, TRANSACTION, make_bundle, parse_bundle, to_json
from biomarker.fhir.export import AUDIT_EVENTS, RESULTS, FhirExport, FhirExportError, export_bundle
from biomarker.fhir.post import FhirPostError, PostResult, post_bundle

__all__ = [
    "AUDIT_EVENTS", "COLLECTION", "RESULTS", "TRANSACTION", "FhirExport", "FhirExportError", "FhirPostError",
    "PostResult", "export_bundle", "make_bundle", "parse_bundle", "post_bundle", "to_json",
]
