"""The report for the chart: the PDF is read back (pypdf) and every field the issue names is asserted, in both
languages; the CLI writes the same text; access, the audit event and the typed-identifier check hold."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import typer.main
from babel.messages.pofile import read_po
from pypdf import PdfReader
from typer.testing import CliRunner

from biomarker.cli import app
from biomarker.i18n import LANGUAGES, LOCALES_DIR, translator
from biomarker.models.catalog import Catalog, sha256_of_file
from biomarker.report import (
    DEFAULT_ZONE,
    ModelFacts,
    PatientMismatchError,
    ReportError,
    build_report,
    model_facts,
    report_for_result,
)
from biomarker.settings import Settings
from biomarker.store import ResultNotFoundError, Store, UserInfo
from biomarker.store.pseudonym import short_pseudonym
from store_helpers import ADMIN, make_settings, record

ZONE = "America/Sao_Paulo"
ZONE_WORDS = {"pt_BR": "Horário Padrão de Brasília", "en": "Brasilia Standard Time"}
PRINTED_AT = datetime(2026, 11, 27, 14, 30)
MODEL, VERSION = "ri-screener-synthetic", "1.0.0"  # what store_helpers.make_score records
CLINICIAN = UserInfo(username="dra.souza", role="clinician", site="UBS Vila Mariana")
OTHER_SITE = UserInfo(username="dr.lima", role="clinician", site="Hospital Sul")


def text_of(pdf: bytes) -> str:
    """The page's text with every run of whitespace as one space (wrapped lines join back)."""
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    return " ".join(reader.pages[0].extract_text().split())


def words(language: str, key: str, **fields) -> str:
    return " ".join(translator(language)(key, **fields).split())


def make_catalog(root: Path, *, synthetic: bool = True, recorded: bool = True) -> Catalog:
    """A user-root catalog holding MODEL@VERSION with fake weights (the catalog reads files, no torch model)."""
    version_dir = root / MODEL / VERSION
    version_dir.mkdir(parents=True)
    (version_dir / "model.safetensors").write_bytes(b"fake weights")
    (version_dir / "config.json").write_text(json.dumps({"name": MODEL, "version": VERSION, "kind": "screening",
                                                         "trained_on_synthetic": synthetic}))
    if recorded:
        digest = sha256_of_file(version_dir / "model.safetensors")
        (version_dir / "version.json").write_text(json.dumps({"name": MODEL, "version": VERSION, "sha256": digest}))
    return Catalog(user_root=root, shipped_root=None)


@pytest.fixture
def store(tmp_path):
    (tmp_path / "home").mkdir()
    opened = Store(make_settings(tmp_path / "home"))
    yield opened
    opened.close()


@pytest.fixture
def result_id(store) -> int:
    outcome = record(store, CLINICIAN, probability=0.83, patient_id="PAC-0003")
    assert outcome.stored
    return outcome.score_id


# ------------------------------------------------------------------------------------------------- the fields
@pytest.mark.parametrize("language", LANGUAGES)
def test_report_reads_back_every_field_in_each_language(store, result_id, tmp_path, language):
    catalog = make_catalog(tmp_path / "models")
    pdf = report_for_result(store, catalog, result_id, viewer=CLINICIAN, language=language, zone=ZONE,
                            patient_label="PAC-0003", printed_at=PRINTED_AT)
    text = text_of(pdf)
    t = translator(language)
    row = store.history(viewer=ADMIN)[0]
    expected = [
        words(language, "report.title"),
        f"{words(language, 'report.field.patient')} PAC-0003",
        words(language, "decision.positive"),
        words(language, "probability.vs_threshold", probability=t.number(0.83, 2), threshold=t.number(0.5, 2)),
        words(language, "next_step.positive"),
        words(language, "report.model", name=MODEL, version=VERSION),
        words(language, "calibration.training", cohort=row.cohort),
        sha256_of_file(tmp_path / "models" / MODEL / VERSION / "model.safetensors"),
        row.sha256,  # the audio's
        "dra.souza", "UBS Vila Mariana",
        ZONE_WORDS[language], ZONE,
        words(language, "disclaimer.synthetic"),
        words(language, "disclaimer.screening"),
        words(language, "report.result_id", result_id=result_id),
        words(language, "report.printed", user="dra.souza", moment=f"{t.datetime(PRINTED_AT, ZONE)} ({ZONE})"),
        words(language, "quality.good", duration=t.number(4.0, 1), speech=t.number(60, 0),
              clipped=t.number(0, 1), snr=t.number(25, 0)),
    ]
    missing = [item for item in expected if item not in text]
    assert not missing, f"not in the {language} report: {missing}\n{text}"
    assert words(language, "decision.negative") not in text
    assert row.patient_pseudonym[:8] not in text  # the typed identifier replaces the pseudonym
    other = next(other for other in LANGUAGES if other != language)
    assert words(other, "decision.positive") not in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_pdf_metadata_names_the_result_the_author_and_the_language(store, result_id, language):
    pdf = report_for_result(store, Catalog(user_root=Path("/nonexistent"), shipped_root=None), result_id,
                            viewer=ADMIN, language=language, zone=ZONE, printed_at=PRINTED_AT)
    reader = PdfReader(io.BytesIO(pdf))
    assert reader.metadata.author == "biomarker"
    assert reader.metadata.title == translator(language)("report.subject", result_id=result_id)
    assert reader.trailer["/Root"]["/Lang"] == {"pt_BR": "pt-BR", "en": "en"}[language]
    # every character fits the standard fonts (Portuguese and English do): nothing to embed, a small file
    assert pdf.startswith(b"%PDF-") and b"/FontFile2" not in pdf and b"/Helvetica" in pdf


def test_an_identifier_the_standard_fonts_lack_embeds_dejavu_and_reads_back(store, tmp_path):
    """A name such as "Nguyễn Łucja" is outside Windows-1252: the page then embeds DejaVu and still shows it."""
    outcome = record(store, CLINICIAN, probability=0.7, patient_id="Nguyễn Łucja")
    pdf = report_for_result(store, make_catalog(tmp_path / "models"), outcome.score_id, viewer=CLINICIAN,
                            language="pt_BR", zone=ZONE, patient_label="Nguyễn Łucja", printed_at=PRINTED_AT)
    assert b"/FontFile2" in pdf and "Nguyễn Łucja" in text_of(pdf)


@pytest.mark.parametrize("language", LANGUAGES)
def test_without_an_identifier_the_short_pseudonym_is_shown_and_an_unknown_model_is_said_in_words(
        store, result_id, language):
    empty = Catalog(user_root=Path("/nonexistent"), shipped_root=None)
    pdf = report_for_result(store, empty, result_id, viewer=ADMIN, language=language, zone=ZONE,
                            printed_at=PRINTED_AT)
    text = text_of(pdf)
    pseudonym = store.history(viewer=ADMIN)[0].patient_pseudonym
    assert f"{words(language, 'report.field.pseudonym')} {short_pseudonym(pseudonym)}" in text
    assert pseudonym not in text  # never the full 64 characters
    assert words(language, "report.weights.not_in_catalog", name=MODEL, version=VERSION) in text
    assert words(language, "calibration.unknown", cohort=store.history(viewer=ADMIN)[0].cohort) in text
    assert words(language, "disclaimer.synthetic") in text  # unknown training data: the caveat stays


def test_a_model_trained_on_real_data_still_says_not_validated(store, result_id, tmp_path):
    catalog = make_catalog(tmp_path / "models", synthetic=False, recorded=False)
    facts = model_facts(catalog, MODEL, VERSION)
    assert (facts.synthetic, facts.status) == (False, "unverified")
    text = text_of(report_for_result(store, catalog, result_id, viewer=ADMIN, language="pt_BR", zone=ZONE,
                                     printed_at=PRINTED_AT))
    assert words("pt_BR", "report.not_validated") in text
    assert words("pt_BR", "report.weights.unverified") in text
    assert "SINTÉTICA" not in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_site_calibrated_version_says_whose_calibration_set_the_threshold(store, result_id, tmp_path, language):
    """A clinician must tell a site's own threshold (`biomarker calibrate`) from the one fitted at training."""
    catalog = make_catalog(tmp_path / "models")
    version_file = tmp_path / "models" / MODEL / VERSION / "version.json"
    meta = json.loads(version_file.read_text())
    meta.update(created_utc="2026-12-06T20:51:04+00:00", metrics={"site_calibration": {
        "parent": f"{MODEL}@0.9", "manifest": "runs/site/site-calibration.csv",
        "manifest_sha256": "28ce15a3dbad" + "0" * 52, "subjects": {"patients": 21, "controls": 20}}})
    version_file.write_text(json.dumps(meta))
    facts = model_facts(catalog, MODEL, VERSION)
    assert facts.site_calibration is not None and facts.site_calibration.patients == 21
    text = text_of(report_for_result(store, catalog, result_id, viewer=ADMIN, language=language, zone=ZONE,
                                     printed_at=PRINTED_AT))
    cohort = store.history(viewer=ADMIN)[0].cohort
    said = words(language, "calibration.site", cohort=cohort, parent=f"{MODEL}@0.9", manifest="site-calibration.csv",
                 sha="28ce15a3dbad", patients=21, controls=20, date="2026-12-06")
    assert said in text
    assert words(language, "calibration.training", cohort=cohort) not in text


def test_a_negative_result_reads_negative(store, tmp_path):
    score_id = record(store, CLINICIAN, probability=0.12, patient_id="PAC-0009").score_id
    text = text_of(report_for_result(store, make_catalog(tmp_path / "models"), score_id, viewer=CLINICIAN,
                                     language="en", zone="Europe/Lisbon", printed_at=PRINTED_AT))
    assert words("en", "decision.negative") in text and words("en", "next_step.negative") in text
    assert words("en", "decision.positive") not in text
    assert "Europe/Lisbon" in text


def test_build_report_is_a_pure_function_of_its_inputs(store, result_id):
    row = store.open_result(result_id, viewer=ADMIN, purpose="report")
    facts = ModelFacts(sha256="a" * 64, status="verified", synthetic=True)
    first, second = (build_report(row, language="en", patient_label=None, printed_by="x", zone=ZONE, model=facts,
                                  printed_at=PRINTED_AT) for _ in range(2))
    assert first == second


def test_bad_language_zone_or_facts_are_refused_by_name(store, result_id):
    row = store.open_result(result_id, viewer=ADMIN, purpose="report")
    facts = ModelFacts(sha256=None, status="not_in_catalog")
    with pytest.raises(ReportError, match="'fr'"):
        build_report(row, language="fr", patient_label=None, printed_by="x", zone=ZONE, model=facts)
    with pytest.raises(ReportError, match="Mars/Olympus"):
        build_report(row, language="en", patient_label=None, printed_by="x", zone="Mars/Olympus", model=facts)
    with pytest.raises(ValueError, match="does not fit"):
        ModelFacts(sha256=None, status="verified")


# ------------------------------------------------------------------------------------- who may print what
def test_a_wrong_typed_identifier_is_refused_and_the_canonical_form_is_accepted(store, result_id):
    empty = Catalog(user_root=Path("/nonexistent"), shipped_root=None)
    with pytest.raises(PatientMismatchError) as refused:
        report_for_result(store, empty, result_id, viewer=CLINICIAN, language="pt_BR", zone=ZONE,
                          patient_label="PAC-0004")
    assert "PAC-0004" not in str(refused.value)
    text = text_of(report_for_result(store, empty, result_id, viewer=CLINICIAN, language="pt_BR", zone=ZONE,
                                     patient_label="  pac-0003 "))
    assert "pac-0003" in text  # as typed (trimmed): the clinician sees what they typed


def test_a_clinician_of_another_site_cannot_get_the_report(store, result_id):
    empty = Catalog(user_root=Path("/nonexistent"), shipped_root=None)
    with pytest.raises(ResultNotFoundError):
        report_for_result(store, empty, result_id, viewer=OTHER_SITE, language="pt_BR", zone=ZONE)
    with pytest.raises(ResultNotFoundError):
        report_for_result(store, empty, result_id + 999, viewer=ADMIN, language="pt_BR", zone=ZONE)


def test_opening_a_report_is_an_audit_event(store, result_id):
    empty = Catalog(user_root=Path("/nonexistent"), shipped_root=None)
    report_for_result(store, empty, result_id, viewer=CLINICIAN, language="en", zone=ZONE)
    opened = [event for event in store.audit_events(viewer=ADMIN) if event.action == "result_report_opened"]
    assert [(event.actor, event.object_type, event.object_id) for event in opened] == \
        [("dra.souza", "score", str(result_id))]
    assert store.verify_chain().ok


# --------------------------------------------------------------------------------------------------- the CLI
@pytest.fixture
def cli_env(tmp_path):
    env = {"BIOMARKER_HOME": str(tmp_path / "cli-home"), "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
           "BIOMARKER_SECRET": "cli-test-secret-0123456789"}
    store = Store(Settings.from_env(env))
    score_id = record(store, CLINICIAN, probability=0.83, patient_id="PAC-0003").score_id
    yield env, store, score_id
    store.close()


def _without_print_line(text: str, language: str) -> str:
    """The report text minus the print time (the CLI prints "now")."""
    start = text.index(words(language, "report.printed", user="@@", moment="").split("@@")[0])
    end = text.index(words(language, "report.result_id", result_id="@@").split("@@")[0])
    return text[:start] + text[end:]


def test_cli_writes_the_same_report_as_the_library(cli_env, tmp_path, monkeypatch):
    env, store, score_id = cli_env
    out = tmp_path / "out" / "report.pdf"
    result = CliRunner().invoke(app, ["report", str(score_id), "--out", str(out), "--language", "en",
                                      "--patient-id", "PAC-0003", "--zone", ZONE], env=env)
    assert result.exit_code == 0, result.output
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # the same catalog roots as the CLI
    operator = UserInfo.local_operator()
    same = report_for_result(store, Catalog(), score_id, viewer=operator, language="en", zone=ZONE,
                             patient_label="PAC-0003")
    cli_text = text_of(out.read_bytes())
    assert _without_print_line(cli_text, "en") == _without_print_line(text_of(same), "en")
    assert operator.username in cli_text and "PAC-0003" in cli_text
    assert words("en", "report.weights.not_in_catalog", name=MODEL, version=VERSION) in cli_text
    default = CliRunner().invoke(app, ["report", str(score_id), "--out", str(tmp_path / "pt.pdf")], env=env)
    assert default.exit_code == 0, default.output
    assert words("pt_BR", "decision.positive") in text_of((tmp_path / "pt.pdf").read_bytes())  # pt-BR default


@pytest.mark.parametrize("extra", [[], ["--patient-id", "PAC-0004"], ["--zone", "Nowhere/City"],
                                   ["--language", "fr"]])
def test_cli_refusals_exit_2_and_write_no_file(cli_env, tmp_path, extra):
    env, _, score_id = cli_env
    out = tmp_path / "report.pdf"
    wanted = score_id + 41 if not extra else score_id
    result = CliRunner().invoke(app, ["report", str(wanted), "--out", str(out), *extra], env=env)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ")
    assert not out.exists() and not list(tmp_path.glob(".report.pdf.*"))


# ---------------------------------------------------------------------------------------------- the contract
def test_importing_the_report_pulls_no_torch():
    code = "import sys, biomarker.report; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_report_keys_exist_in_both_languages_and_are_prefixed():
    keys = {}
    for language in LANGUAGES:
        with (LOCALES_DIR / language / "report.po").open("rb") as handle:
            keys[language] = {message.id: message.string for message in read_po(handle) if message.id}
    assert keys["en"].keys() == keys["pt_BR"].keys()
    assert all(key.startswith("report.") and keys["pt_BR"][key] and keys["en"][key] for key in keys["en"])


def test_the_cli_default_zone_is_the_library_default():
    command = typer.main.get_command(app).commands["report"]
    assert {param.name: param.default for param in command.params}["zone"] == DEFAULT_ZONE
