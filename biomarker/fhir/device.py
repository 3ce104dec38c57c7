"""The model that scored a result, as an HL7 AI Transparency Device with its model card as a DocumentReference.

Why from the catalog and not from the result row: a row records only `name@version`; the weights' sha256, the
training-data flag and the card belong to that version in this server's catalog (`report.model_facts` reads them
the same way for the chart's PDF, so the PDF and the FHIR copy cannot disagree). A version the catalog does not
hold still gets a Device, which says so instead of inventing a hash.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from fhir.resources.R4B.device import Device
from fhir.resources.R4B.documentreference import DocumentReference

from biomarker.fhir.codes import (
    AI_DEVICE_TYPE_CODE,
    AI_DEVICE_TYPE_SYSTEM,
    AI_INPUTS_SYSTEM,
    EXT_MODEL_CARD,
    MODEL_SYSTEM,
    WEIGHTS_SHA256_SYSTEM,
    coding,
)
from biomarker.fhir.ids import reference_to, stable_id
from biomarker.i18n import translator
from biomarker.records import BiomarkerError
from biomarker.report.model_facts import CatalogEntry, ModelFacts, model_facts

TRAINING_SYNTHETIC = "synthetic"  # the training-data statement the issue asks for
TRAINING_NOT_SYNTHETIC = "not synthetic"


class CardEntry(CatalogEntry, Protocol):
    """The part of `biomarker.models.catalog.ModelVersion` read here (the report's part plus the card)."""

    card_path: Path | None


class ModelCatalog(Protocol):
    """Anything with `get("name@version")`, like `biomarker.models.catalog.Catalog` (a protocol keeps torch out)."""

    def get(self, ref: str) -> CardEntry: ...


@dataclass(frozen=True)
class ModelResources:
    """The Device of one model version, the card's DocumentReference when the catalog holds the card, and the
    facts both were made from (the PDF report prints the same ones)."""

    device: Device
    card: DocumentReference | None
    facts: ModelFacts


def attachment_hash(data: bytes) -> str:
    """FHIR R4's Attachment.hash: the SHA-1 of the data, base64 (the spec fixes the algorithm)."""
    return base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")


def _card_bytes(catalog: ModelCatalog, ref: str) -> bytes | None:
    try:
        card_path = catalog.get(ref).card_path
    except BiomarkerError:  # not in this catalog: model_facts says so on the Device
        return None
    return None if card_path is None or not Path(card_path).is_file() else Path(card_path).read_bytes()


def _model_card(ref: str, card: bytes, exported_at: datetime) -> DocumentReference:
    return DocumentReference(
        id=stable_id("DocumentReference", f"{ref}|{hashlib.sha256(card).hexdigest()}"),
        identifier=[{"system": MODEL_SYSTEM, "value": ref}],
        status="current", date=exported_at, description=f"Model card of {ref}",
        type={"coding": [coding(AI_INPUTS_SYSTEM, "AIModelCard", "AI Model-Card")]},
        category=[{"coding": [coding(AI_INPUTS_SYSTEM, "AIModelCardMarkdownFormat", "Markdown Format")]}],
        content=[{"attachment": {"contentType": "text/markdown", "title": "card.md", "data": base64.b64encode(card),
                                 "size": len(card), "hash": attachment_hash(card)}}],
    )


def model_resources(catalog: ModelCatalog, name: str, version: str, *, exported_at: datetime) -> ModelResources:
    """Device `name@version`: name, version, weights sha256 (when this server can name them, with how far it
    checked them), the training-data statement and a link to the model card."""
    ref = f"{name}@{version}"
    facts = model_facts(catalog, name, version)
    card_bytes = _card_bytes(catalog, ref)
    card = None if card_bytes is None else _model_card(ref, card_bytes, exported_at)
    words = translator("en")
    training = TRAINING_SYNTHETIC if facts.synthetic else TRAINING_NOT_SYNTHETIC
    identifiers = [{"system": MODEL_SYSTEM, "value": ref}]
    if facts.sha256 is not None:
        identifiers.append({"system": WEIGHTS_SHA256_SYSTEM, "value": facts.sha256})
    device = Device(
        id=stable_id("Device", ref), identifier=identifiers, status="active",
        type={"coding": [coding(AI_DEVICE_TYPE_SYSTEM, AI_DEVICE_TYPE_CODE, "All kinds of Artificial Intelligence")]},
        deviceName=[{"name": name, "type": "model-name"}], version=[{"value": version}],
        property=[{"type": {"text": "training-data"}, "valueCode": [{"text": training}]},
                  {"type": {"text": "weights-sha256-check"}, "valueCode": [{"text": facts.status}]}],
        note=[{"text": words("disclaimer.synthetic") if facts.synthetic else words("report.not_validated")}],
        extension=None if card is None else [{"url": EXT_MODEL_CARD, "valueReference": reference_to(card)}],
    )
    return ModelResources(device=device, card=card, facts=facts)
