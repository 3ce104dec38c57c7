"""HL7 FHIR R4 exports (issue 26): every resource validates with fhir.resources, the Observation's numbers are the
store's row, the AuditEvents are the chain (recomputed from the FHIR copy alone), the CLI round-trips, `--post`
reaches a local FHIR endpoint that validates what it receives, the Audit page offers the download, and the CSV /
JSON exports carry `quality` and `payload` as JSON."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle
from pypdf import PdfReader
from typer.testing import CliRunner

from biomarker.cli import app
from biomarker.fhir import FhirPostError, export_bundle, parse_bundle, post_bundle, to_json
from biomarker.fhir.audit_events import AuditRow, audit_event
from biomarker.fhir.codes import (
    AUDIO_SHA256_SYSTEM,
    EXT_AUDIT_CHAIN,
    EXT_SAMPLE_RATE,
    PSEUDONYM_SYSTEM,
    SCORE_ID_SYSTEM,
    SCREENING_SYSTEM,
    WEIGHTS_SHA256_SYSTEM,
)
from biomarker.models.catalog import sha256_of_file
from biomarker.store import AccessDeniedError, AuthenticationError, Store, UserInfo
from biomarker.store.chain import Link
from biomarker.store.repository import AUDIT_COLUMNS, RESULT_COLUMNS
from store_helpers import ADMIN, make_settings, record
from test_report import MODEL, VERSION, make_catalog

AUDITOR = UserInfo("aud", "auditor")
CLINICIAN = UserInfo("dra.souza", "clinician", site="UBS Vila Mariana")
DOCS = Path(__file__).resolve().parent.parent / "docs" / "store.md"


@pytest.fixture
def store(tmp_path):
    opened = Store(make_settings(tmp_path / "home"))
    yield opened
    opened.close()


@pytest.fixture
def catalog(tmp_path):
    """The report tests' catalog of MODEL@VERSION, with a model card."""
    made = make_catalog(tmp_path / "models")
    (tmp_path / "models" / MODEL / VERSION / "card.md").write_text("# ri-screener-synthetic\n\nTrained on SYNTHETIC "
                                                                   "speech only.\n", encoding="utf-8")
    return made


@pytest.fixture
def screened(store):
    """Three results: two for one patient, one for another (the third with a failed quality gate reason)."""
    ids = [record(store, CLINICIAN, probability=p, patient_id=patient, audio=f"clip {n}".encode()).score_id
           for n, (p, patient) in enumerate(((0.83, "PAC-1"), (0.21, "PAC-1"), (0.5, "PAC-2")))]
    return ids


def resources(bundle: Bundle, kind: str) -> list:
    return [entry.resource for entry in bundle.entry if entry.resource.get_resource_type() == kind]


def identifier(resource, system: str) -> str:
    [value] = [item.value for item in resource.identifier if item.system == system]
    return value


def component(observation, code: str):
    [found] = [c for c in observation.component if c.code.coding[0].code == code]
    return found


def chain_extension(event) -> dict[str, object]:
    [extension] = [e for e in event.extension if e.url == EXT_AUDIT_CHAIN]
    return {part.url: part.valueInteger if part.url == "seq" else part.valueString for part in extension.extension}


# ---------------------------------------------------------------------------------------------------- results
def test_results_bundle_validates_every_resource_and_references_only_what_it_carries(store, catalog, screened):
    made = export_bundle(store, None, None, viewer=AUDITOR, catalog=catalog, language="en", zone="UTC")
    text = to_json(made.bundle)
    bundle = parse_bundle(text)
    assert bundle.type == "collection" and made.rows == 3
    assert json.loads(to_json(bundle)) == json.loads(text)  # the round trip changes nothing
    for entry in bundle.entry:  # each resource validates on its own, through its own class
        resource = entry.resource
        type(resource).model_validate(resource.model_dump())
        assert entry.fullUrl == f"urn:uuid:{resource.id}"
    counts = {kind: len(resources(bundle, kind)) for kind in
              ("Observation", "DiagnosticReport", "Media", "Provenance", "Patient", "Device", "DocumentReference",
               "CodeSystem", "Practitioner", "Organization")}
    assert counts == {"Observation": 3, "DiagnosticReport": 3, "Media": 3, "Provenance": 3, "Patient": 2,
                      "Device": 1, "DocumentReference": 1, "CodeSystem": 1, "Practitioner": 1, "Organization": 1}
    full_urls = {entry.fullUrl for entry in bundle.entry}
    references = set(re.findall(r'"reference":"(urn:uuid:[^"]+)"', text))
    assert references and references <= full_urls  # nothing dangles
    assert all(len(patient.identifier) == 1 and patient.identifier[0].system == PSEUDONYM_SYSTEM
               and patient.name is None and patient.birthDate is None for patient in resources(bundle, "Patient"))


def test_observation_numbers_and_media_equal_the_store_row(store, catalog, screened):
    bundle = export_bundle(store, None, None, viewer=AUDITOR, catalog=catalog, language="en", zone="UTC").bundle
    rows = {row.score_id: row for row in store.history(viewer=AUDITOR)}
    media = {f"urn:uuid:{m.id}": m for m in resources(bundle, "Media")}
    patients = {f"urn:uuid:{p.id}": identifier(p, PSEUDONYM_SYSTEM) for p in resources(bundle, "Patient")}
    observations = resources(bundle, "Observation")
    assert len(observations) == len(rows) == 3
    for observation in observations:
        row = rows[int(identifier(observation, SCORE_ID_SYSTEM))]
        assert observation.status == "final"
        assert {c.code for cat in observation.category for c in cat.coding} == {"survey", "screening-assessment"}
        assert observation.code.coding[0].system == SCREENING_SYSTEM
        assert observation.valueCodeableConcept.coding[0].code == row.decision
        assert float(component(observation, "calibrated-probability").valueQuantity.value) == row.probability
        assert float(component(observation, "decision-threshold").valueQuantity.value) == row.threshold
        assert float(component(observation, "inference-latency").valueQuantity.value) == row.latency_ms
        assert component(observation, "cohort").valueString == row.cohort
        for field, code in (("duration_s", "quality-duration"), ("speech_ratio", "quality-speech-ratio"),
                            ("snr_db", "quality-snr"), ("rms_dbfs", "quality-rms-dbfs")):
            assert float(component(observation, code).valueQuantity.value) == row.quality[field]
        assert component(observation, "quality-passed").valueBoolean is row.quality["passed"]
        assert patients[observation.subject.reference] == row.patient_pseudonym
        recording = media[observation.derivedFrom[0].reference]
        assert identifier(recording, AUDIO_SHA256_SYSTEM) == row.sha256
        assert float(recording.duration) == row.duration_s and recording.content.data is None  # no audio inline
        [rate] = [e for e in recording.extension if e.url == EXT_SAMPLE_RATE]
        assert float(rate.valueQuantity.value) == row.sample_rate_hz


def test_report_carries_the_pdf_and_a_conclusion_and_the_device_the_models_identity(store, catalog, screened):
    bundle = export_bundle(store, None, None, viewer=AUDITOR, catalog=catalog, language="en", zone="UTC").bundle
    [device] = resources(bundle, "Device")
    weights = sha256_of_file(Path(catalog.get(f"{MODEL}@{VERSION}").path) / "model.safetensors")
    assert identifier(device, WEIGHTS_SHA256_SYSTEM) == weights
    assert device.deviceName[0].name == MODEL and device.version[0].value == VERSION
    assert device.type.coding[0].code == "Artificial-Intelligence"
    properties = {p.type.text: p.valueCode[0].text for p in device.property}
    assert properties == {"training-data": "synthetic", "weights-sha256-check": "verified"}
    [card] = resources(bundle, "DocumentReference")
    assert device.extension[0].valueReference.reference == f"urn:uuid:{card.id}"
    card_file = catalog.get(f"{MODEL}@{VERSION}").card_path
    assert card.content[0].attachment.data == Path(card_file).read_bytes()  # the library holds it decoded
    observations = {f"urn:uuid:{o.id}": o for o in resources(bundle, "Observation")}
    for report in resources(bundle, "DiagnosticReport"):
        observation = observations[report.result[0].reference]
        [pdf] = report.presentedForm
        data = pdf.data
        assert pdf.contentType == "application/pdf" and data.startswith(b"%PDF") and pdf.size == len(data)
        assert pdf.hash == hashlib.sha1(data).digest()  # R4: SHA-1 (held decoded, sent as base64)
        page = " ".join(PdfReader(io.BytesIO(data)).pages[0].extract_text().split())
        assert f"{identifier(observation, SCORE_ID_SYSTEM)}" in page
        decision = observation.valueCodeableConcept.text
        assert report.conclusion.startswith(decision) and "SpO2" in report.conclusion
    for provenance in resources(bundle, "Provenance"):
        agents = {agent.type.coding[0].code: agent.who.reference for agent in provenance.agent}
        assert agents["author"] == f"urn:uuid:{device.id}"
        assert {target.reference for target in provenance.target} <= {e.fullUrl for e in bundle.entry}


def test_no_pdf_leaves_presented_form_out_and_a_model_outside_the_catalog_has_no_hash(store, tmp_path, screened):
    from biomarker.models.catalog import Catalog

    empty = Catalog(user_root=tmp_path / "nothing", shipped_root=None)
    bundle = export_bundle(store, None, None, viewer=AUDITOR, catalog=empty, pdf=False).bundle
    assert all(report.presentedForm is None for report in resources(bundle, "DiagnosticReport"))
    [device] = resources(bundle, "Device")
    assert [i.system for i in device.identifier if i.system == WEIGHTS_SHA256_SYSTEM] == []
    assert {p.type.text: p.valueCode[0].text for p in device.property}["weights-sha256-check"] == "not_in_catalog"
    assert resources(bundle, "DocumentReference") == []


def test_transaction_puts_what_it_owns_and_conditionally_creates_what_the_receiver_may_hold(store, catalog, screened):
    bundle = export_bundle(store, None, None, viewer=AUDITOR, catalog=catalog, transaction=True).bundle
    assert bundle.type == "transaction"
    for entry in bundle.entry:
        kind, request = entry.resource.get_resource_type(), entry.request
        if kind in ("Observation", "DiagnosticReport", "Media", "Provenance"):
            assert (request.method, request.url) == ("PUT", f"{kind}/{entry.resource.id}")
        else:
            assert request.method == "POST" and request.url == kind and request.ifNoneExist
    again = export_bundle(store, None, None, viewer=AUDITOR, catalog=catalog, transaction=True).bundle
    assert [e.fullUrl for e in again.entry] == [e.fullUrl for e in bundle.entry]  # stable ids: re-sending updates


def test_fhir_export_is_audited_and_follows_the_stores_access_rules(store, catalog, screened):
    export_bundle(store, None, None, viewer=AUDITOR, catalog=catalog, pdf=False)
    [newest] = store.audit_events(viewer=AUDITOR, limit=1)
    assert (newest.action, newest.actor, json.loads(newest.payload)["rows"]) == ("export", "aud", 3)
    assert json.loads(newest.payload)["as"] == "fhir-r4-collection"  # the trail says what the rows became
    with pytest.raises(AccessDeniedError):
        export_bundle(store, None, None, viewer=CLINICIAN, catalog=catalog)
    with pytest.raises(AccessDeniedError):
        export_bundle(store, None, None, viewer=UserInfo("rita", "researcher"), table="audit_events")


# ------------------------------------------------------------------------------------------------------ audit
def object_of(event) -> tuple[str | None, str | None]:
    """(object_type, object_id) as the AuditEvent carries them: the identifier's system names the type."""
    what = event.entity[0].what
    if what is None:
        return None, None
    return what.identifier.system.rsplit("/", 1)[1].removesuffix("-id"), what.identifier.value


def test_audit_events_are_the_chain_in_balp_patterns(store, screened, cheap_password_hashing):
    admin = UserInfo("boss", "admin", site="ward-1")
    store.add_user("nina", "a long enough passphrase 9", "clinician", site="ward-1", actor=admin)
    with pytest.raises(AuthenticationError):
        store.authenticate("nina", "wrong password")
    nina = store.authenticate("nina", "a long enough passphrase 9")
    store.record_sign_out(nina, "user")
    store.open_result(screened[0], viewer=AUDITOR, purpose="report")
    store.record_model_event(actor=admin, action="model_promoted", ref="ri-screener@7", payload={"from": "6"})
    store.export(None, None, "csv", viewer=AUDITOR)
    made = export_bundle(store, None, None, viewer=AUDITOR, table="audit_events")
    rows = json.loads(store.export(None, None, "json", viewer=AUDITOR, table="audit_events"))["rows"][:made.rows]
    events = resources(made.bundle, "AuditEvent")
    assert len(events) == made.rows == len(rows) and made.bundle.type == "collection"
    key = store.settings.resolved_audit_key()
    previous = None
    for event, row in zip(events, rows):
        type(event).model_validate(event.model_dump())
        chain = chain_extension(event)
        assert (chain["seq"], chain["hash"], chain["prevHash"]) == (row["seq"], row["hash"], row["prev_hash"])
        assert previous is None or chain["prevHash"] == previous  # the FHIR copy links up on its own
        previous = chain["hash"]
        # every hashed field travels: the link recomputes from the FHIR copy and the audit key alone
        action = [c.code for c in event.subtype if c.system.endswith("audit-action")][0]
        [payload] = [d.valueString for d in event.entity[0].detail if d.type == "payload"]
        object_type, object_id = object_of(event)
        assert (object_type, object_id) == (row["object_type"], row["object_id"])
        link = Link(seq=chain["seq"], occurred_at=event.recorded.replace(tzinfo=None),
                    actor=event.agent[0].who.identifier.value, action=action, object_type=object_type,
                    object_id=object_id, payload=payload, prev_hash=chain["prevHash"], key_id=chain.get("keyId"))
        assert link.compute_hash(key) == chain["hash"]
    by_action = {}
    for event in events:
        by_action.setdefault([c.code for c in event.subtype if c.system.endswith("audit-action")][0], event)
    login, failed, logout = by_action["login"], by_action["login_failed"], by_action["logout"]
    assert (login.type.code, login.subtype[0].code, login.outcome) == ("110114", "110122", "0")
    assert (failed.outcome, failed.outcomeDesc) == ("4", "wrong password")
    assert logout.subtype[0].code == "110123"
    opened = by_action["result_report_opened"]
    assert (opened.type.code, opened.subtype[0].code, opened.action) == ("rest", "read", "R")
    patient = [e for e in opened.entity if e.role.code == "1"][0]  # BALP PatientRead: the patient as an entity
    assert patient.what.identifier.value == store.pseudonymise("PAC-1")
    assert by_action["export"].type.code == "110106"
    assert (by_action["user_created"].type.code, by_action["model_promoted"].subtype[0].code) == ("110113", "110131")
    assert by_action["score_stored"].subtype[0].code == "create"


def test_audit_period_is_respected_and_an_unknown_action_still_becomes_an_event(store, screened):
    everything = json.loads(store.export(None, None, "json", viewer=AUDITOR, table="audit_events"))["rows"]
    since, until = (datetime.fromisoformat(everything[n]["occurred_at"]) for n in (2, 5))
    made = export_bundle(store, since, until, viewer=AUDITOR, table="audit_events")
    expected = [row["seq"] for row in everything if since <= datetime.fromisoformat(row["occurred_at"]) < until]
    assert expected == [3, 4, 5]
    assert [chain_extension(e)["seq"] for e in resources(made.bundle, "AuditEvent")] == expected
    novel = audit_event(AuditRow(seq=1, occurred_at=datetime(2026, 1, 1), actor="x", action="brand_new_action",
                                 object_type=None, object_id=None, payload={}, prev_hash="0" * 64, hash="a" * 64),
                        {}, source="test")
    assert novel.type.code == "110100" and novel.subtype[-1].code == "brand_new_action"


# ------------------------------------------------------------------------------------------------------- post
class FhirEndpoint:
    """A local FHIR base URL that validates each POSTed Bundle with fhir.resources, as a real server would.

    `script` lists the status of each answer in turn (then 200 for ever); a 200 answers a transaction-response."""

    def __init__(self, script: list[int] | None = None, delay_s: float = 0.0):
        self.received: list[Bundle] = []
        self.script = list(script or [])
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if delay_s:
                    threading.Event().wait(delay_s)
                status = endpoint.script.pop(0) if endpoint.script else 200
                try:
                    bundle = Bundle.model_validate_json(body)
                except ValueError as error:
                    status, answer = 400, {"resourceType": "OperationOutcome",
                                           "issue": [{"severity": "error", "code": "invalid", "diagnostics": str(error)[:200]}]}
                else:
                    endpoint.received.append(bundle)
                    if status == 200 and bundle.type != "transaction":
                        status = 400
                    answer = {"resourceType": "Bundle", "type": "transaction-response",
                              "entry": [{"response": {"status": "201 Created"}} for _ in bundle.entry]} \
                        if status == 200 else {"resourceType": "OperationOutcome",
                                               "issue": [{"severity": "error", "code": "processing",
                                                          "diagnostics": f"scripted {status}"}]}
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/fhir+json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped waiting (the timeout test): nobody to answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/fhir"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint_factory():
    made: list[FhirEndpoint] = []

    def make(**kwargs) -> FhirEndpoint:
        made.append(FhirEndpoint(**kwargs))
        return made[-1]

    yield make
    for endpoint in made:
        endpoint.close()


def test_post_retries_a_busy_server_and_it_receives_a_valid_transaction(store, catalog, screened, endpoint_factory):
    server = endpoint_factory(script=[503, 429])
    bundle = export_bundle(store, None, None, viewer=AUDITOR, catalog=catalog, transaction=True, pdf=False).bundle
    pauses: list[float] = []
    result = post_bundle(bundle, server.url, retries=3, sleep=pauses.append)
    assert result.attempts == 3 and pauses == [1.0, 2.0]
    assert result.response.type == "transaction-response" and len(result.response.entry) == len(bundle.entry)
    assert len(server.received) == 3 and all(len(b.entry) == len(bundle.entry) for b in server.received)


def test_post_names_what_the_server_refused_and_gives_up_on_silence(store, catalog, screened, endpoint_factory):
    bundle = export_bundle(store, None, None, viewer=AUDITOR, catalog=catalog, transaction=True, pdf=False).bundle
    refusing = endpoint_factory(script=[422])
    with pytest.raises(FhirPostError, match="HTTP 422.*scripted 422"):
        post_bundle(bundle, refusing.url, sleep=lambda s: None)
    assert len(refusing.received) == 1  # a judged refusal is not retried
    silent = endpoint_factory(delay_s=2.0)
    with pytest.raises(FhirPostError, match=r"after 2 tries; last: no answer within 0.2 s"):
        post_bundle(bundle, silent.url, timeout_s=0.2, retries=1, sleep=lambda s: None)
    collection = export_bundle(store, None, None, viewer=AUDITOR, catalog=catalog, pdf=False).bundle
    with pytest.raises(FhirPostError, match="transaction"):
        post_bundle(collection, refusing.url)


# -------------------------------------------------------------------------------------------------------- CLI
def test_cli_export_fhir_writes_a_bundle_that_parses_and_posts_it(tmp_path, endpoint_factory):
    env = {"BIOMARKER_HOME": str(tmp_path / "home"), "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
           "BIOMARKER_SECRET": "cli-test-secret-0123456789"}
    from biomarker.settings import Settings

    store = Store(Settings.from_env(env))
    record(store, ADMIN, probability=0.4, audio=b"one")
    record(store, ADMIN, probability=0.7, audio=b"two")
    store.close()
    runner = CliRunner()
    out = tmp_path / "bundle.json"
    written = runner.invoke(app, ["export", "fhir", "--since", "2000-01-01", "--until", "2999-01-01", "--no-pdf",
                                  "--out", str(out)], env=env)
    assert written.exit_code == 0, written.output
    bundle = parse_bundle(out.read_text())
    assert bundle.type == "collection" and len(resources(bundle, "Observation")) == 2
    assert "from 2 results rows" in written.output
    events = runner.invoke(app, ["export", "fhir", "--table", "audit_events", "--transaction"], env=env)
    assert events.exit_code == 0, events.output
    audit = parse_bundle(events.stdout)
    assert audit.type == "transaction" and len(resources(audit, "AuditEvent")) == 5  # 4 stored + the first export
    server = endpoint_factory()
    posted = runner.invoke(app, ["export", "fhir", "--no-pdf", "--post", server.url], env=env)
    assert posted.exit_code == 0, posted.output
    assert server.received[0].type == "transaction" and len(resources(server.received[0], "Observation")) == 2
    store = Store(Settings.from_env(env))
    [posted_event] = [e for e in store.audit_events(viewer=ADMIN, limit=1)]
    assert json.loads(posted_event.payload)["posted_to"] == server.url  # ... and where they went
    store.close()
    # the Bundle carries the chain's signed head: the store can later be checked against this copy
    anchored = runner.invoke(app, ["audit", "verify", "--anchor", str(out)], env=env)
    assert anchored.exit_code == 0 and "anchored to row" in anchored.output, anchored.output
    down = runner.invoke(app, ["export", "fhir", "--no-pdf", "--post", "http://127.0.0.1:9/fhir", "--retries", "0"],
                         env=env)
    assert down.exit_code == 1 and "did not take the Bundle after 1 tries" in down.output
    bad = runner.invoke(app, ["export", "fhir", "--language", "klingon"], env=env)
    assert bad.exit_code == 2 and "klingon" in bad.output


# ------------------------------------------------------------------------------------------ existing exports
def test_csv_and_json_exports_carry_quality_and_payload_as_json(store, screened):
    csv_rows = list(csv.DictReader(io.StringIO(store.export(None, None, "csv", viewer=AUDITOR))))
    quality = json.loads(csv_rows[0]["quality"])
    assert quality["passed"] is True and quality["duration_s"] == 4.0
    document = json.loads(store.export(None, None, "json", viewer=AUDITOR))
    assert document["rows"][0]["quality"] == quality
    events = json.loads(store.export(None, None, "json", viewer=AUDITOR, table="audit_events"))["rows"]
    assert isinstance(events[0]["payload"], dict) and events[0]["payload"]["sha256"]
    audit_csv = list(csv.DictReader(io.StringIO(store.export(None, None, "csv", viewer=AUDITOR, table="audit_events"))))
    assert json.loads(audit_csv[0]["payload"]) == events[0]["payload"]


def test_docs_name_every_export_column_and_every_fhir_system():
    text = DOCS.read_text(encoding="utf-8")
    schemas = text[text.index("## Export schemas"):]
    for column in (*RESULT_COLUMNS, *AUDIT_COLUMNS):
        assert f"`{column}`" in schemas, column
    fhir = text[text.index("## FHIR export"):]
    for system in (SCREENING_SYSTEM, PSEUDONYM_SYSTEM, EXT_AUDIT_CHAIN, WEIGHTS_SHA256_SYSTEM):
        assert system.rsplit("/", 1)[1] in fhir, system


def test_a_period_with_nothing_gives_an_empty_bundle_that_still_validates(store, catalog, screened):
    made = export_bundle(store, None, datetime.utcnow() - timedelta(days=1), viewer=AUDITOR, catalog=catalog)
    assert made.rows == 0 and [e.resource.get_resource_type() for e in made.bundle.entry] == ["CodeSystem"]
    parse_bundle(to_json(made.bundle))


# -------------------------------------------------------------------------------------------------------- app
def test_audit_page_downloads_a_fhir_bundle_of_results_and_of_audit_events(tmp_path, monkeypatch):
    from datetime import timezone

    from streamlit.testing.v1 import AppTest

    from biomarker.settings import Settings

    env = {"BIOMARKER_HOME": str(tmp_path / "home"), "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
           "BIOMARKER_SECRET": "app-fhir-test-secret-0123456789"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    store = Store(Settings.from_env())
    record(store, CLINICIAN, probability=0.83, patient_id="PAC-9", audio=b"ward clip")
    store.close()
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app" / "Home.py"), default_timeout=120)
    at.session_state["language"] = "en"
    at.session_state["signed_in"] = UserInfo("aldo", "auditor")
    at.session_state["last_activity"] = datetime.now(timezone.utc)
    at.run()
    at.switch_page("views/audit.py").run()
    assert not at.exception, at.exception
    at.radio(key="audit_format").set_value("fhir").run()
    assert any("FHIR R4 Bundle" in caption.value for caption in at.caption)
    at.button(key="audit_export").click().run()
    assert not at.exception, at.exception
    [download] = at.get("download_button")
    assert download.proto.label.endswith(".fhir.json")  # the file offered is the Bundle previewed below
    bundle = parse_bundle(at.code[0].value)
    [observation] = resources(bundle, "Observation")
    assert float(component(observation, "calibrated-probability").valueQuantity.value) == 0.83
    assert resources(bundle, "DiagnosticReport")[0].presentedForm[0].data.startswith(b"%PDF")
    at.selectbox(key="audit_table").set_value("audit_events")
    at.button(key="audit_export").click().run()
    events = resources(parse_bundle(at.code[0].value), "AuditEvent")
    codes = [e.subtype[-1].code for e in events]
    # the page's own reads are in the trail too (results_queried), between the result and the first export
    assert codes[:2] == ["recording_stored", "score_stored"] and "export" in codes
