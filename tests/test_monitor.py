"""Drift monitoring on a store seeded with a shifted site: ward-a scores like the validation reference, ward-b
is louder-noised, refused more often and referred far more; the shift is caught per site and week (PSI against
the reference), shown in drift.md and a PNG, exits with code 2 and is written as drift_alert audit events; the
steady site raises nothing. PSI itself: ~0 for the same distribution, large for a shifted one."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import timedelta

import numpy as np
import pytest
from typer.testing import CliRunner

from biomarker.cli import app
from biomarker.governance.drift import DriftBounds, psi, weekly_drift
from biomarker.governance.reference import REFERENCE_FILE, ValidationReference, reference_for, summarise
from biomarker.models import from_pretrained
from biomarker.models.catalog import Catalog
from biomarker.records import DECISION_NEGATIVE, DECISION_POSITIVE, QualityReport, Score
from biomarker.screener import PRETRAINED_DIR
from biomarker.settings import Settings
from biomarker.store import Store, UserInfo
from biomarker.store.monitoring import refusals, screenings
from biomarker.store.schema import utc_now
from screening_helpers import TEST_MODEL_NAME, save_tiny_screening_model

MODEL = f"{TEST_MODEL_NAME}@1"
THRESHOLD = 0.5


def reference_values(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {"probability": rng.beta(2, 5, n), "snr_db": rng.normal(25, 3, n), "duration_s": rng.uniform(4, 8, n)}


def shifted_values(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {"probability": rng.beta(5, 2, n), "snr_db": rng.normal(8, 2, n), "duration_s": rng.uniform(4, 8, n)}


def record(store: Store, site: str, probability: float, snr_db: float, duration_s: float) -> None:
    quality = QualityReport(duration_s=duration_s, speech_ratio=0.6, clipping_ratio=0.0, peak=0.7, rms_dbfs=-22.0,
                            snr_db=snr_db, passed=True)
    score = Score(probability=float(probability), threshold=THRESHOLD,
                  decision=DECISION_POSITIVE if probability >= THRESHOLD else DECISION_NEGATIVE,
                  model_name=TEST_MODEL_NAME, model_version="1", cohort="default", device="cpu", latency_ms=40.0,
                  quality=quality)
    path = store.save_audio(f"{site} {probability} {snr_db}".encode())
    outcome = store.record_result(score, actor=UserInfo.local_operator(), audio_path=path, duration_s=duration_s,
                                  sample_rate_hz=16000, site=site)
    assert outcome.stored


@pytest.fixture()
def seeded(tmp_path, monkeypatch):
    """A catalog whose tiny model has a validation reference, and a store with 40 results per site (ward-b
    shifted) and 25 noise refusals at ward-b (2 at ward-a)."""
    monkeypatch.setenv("BIOMARKER_HOME", str(tmp_path / "home"))
    catalog = Catalog(shipped_root=PRETRAINED_DIR)
    catalog.publish(from_pretrained(save_tiny_screening_model(tmp_path / "tiny")), card="# tiny", cohorts=["default"])
    rng = np.random.default_rng(0)
    values = reference_values(rng, 800)
    reference = ValidationReference(model=MODEL, source={"manifest": "val.csv"}, created_utc="2026-12-01T00:00:00",
                                    n=800, threshold=THRESHOLD,
                                    referral_rate=float(np.mean(values["probability"] >= THRESHOLD)),
                                    refusals={"DrownedInNoiseError": 8},
                                    samples={k: summarise(v) for k, v in values.items()})
    (catalog.get(MODEL).path / REFERENCE_FILE).write_text(json.dumps(asdict(reference)))
    store = Store(Settings.from_env())
    for site, draw in (("ward-a", reference_values), ("ward-b", shifted_values)):
        drawn = draw(rng, 40)
        for p, snr, duration in zip(drawn["probability"], drawn["snr_db"], drawn["duration_s"]):
            record(store, site, p, snr, duration)
    for site, count in (("ward-a", 2), ("ward-b", 25)):
        for _ in range(count):
            store.record_attempt(actor=UserInfo.local_operator(), outcome="refused", reason="DrownedInNoiseError",
                                 patient_id=None, site=site, sha256=None)
    yield catalog, store
    store.close()


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, 2000)
    assert psi(base, rng.normal(0, 1, 500)) < 0.05
    assert psi(base, rng.normal(1.5, 1, 500)) > 1.0


def test_the_shifted_site_is_caught_and_the_steady_one_is_not(seeded):
    catalog, store = seeded
    viewer = UserInfo.local_operator()
    since, until = utc_now() - timedelta(days=1), utc_now() + timedelta(days=1)
    rows = screenings(store, viewer=viewer, since=since, until=until)
    refused = refusals(store, viewer=viewer, since=since, until=until)
    weeks = {w.site: w for w in weekly_drift(rows, refused, {MODEL: reference_for(catalog.get(MODEL))})}
    assert weeks["ward-a"].judged and weeks["ward-a"].alerts == []
    shifted = weeks["ward-b"]
    assert shifted.recordings == 40 and shifted.refusals == {"DrownedInNoiseError": 25}
    assert any(a.startswith("probability PSI") for a in shifted.alerts)
    assert any(a.startswith("snr_db PSI") for a in shifted.alerts)
    assert any(a.startswith("referral rate") for a in shifted.alerts)
    assert any(a.startswith("refusal rate") for a in shifted.alerts)
    assert not any(a.startswith("duration_s") for a in shifted.alerts)  # durations were not shifted


def test_a_researcher_may_read_monitoring_but_a_clinician_may_not(seeded):
    _, store = seeded
    since, until = utc_now() - timedelta(days=1), utc_now() + timedelta(days=1)
    researcher = UserInfo(username="rita", role="researcher", site=None)
    assert len(screenings(store, viewer=researcher, since=since, until=until, site="ward-b")) == 40
    with pytest.raises(Exception, match="may not export"):
        refusals(store, viewer=UserInfo(username="cleo", role="clinician", site="ward-a"), since=since, until=until)


def test_few_recordings_are_shown_but_not_judged(seeded):
    catalog, store = seeded
    viewer = UserInfo.local_operator()
    rows = screenings(store, viewer=viewer, since=utc_now() - timedelta(days=1), until=utc_now() + timedelta(days=1),
                      site="ward-b")[:10]
    [week] = weekly_drift(rows, [], {MODEL: reference_for(catalog.get(MODEL))}, DriftBounds(min_recordings=30))
    assert not week.judged and week.alerts == [] and "not judged" in week.note and week.psi["probability"] > 0.25


def test_monitor_cli_exits_non_zero_writes_plots_and_audits_each_alert(seeded, tmp_path):
    today = utc_now().date().isoformat()
    result = CliRunner().invoke(app, ["monitor", "--since", today, "--until", today, "--out", str(tmp_path / "mon")])
    assert result.exit_code == 2, result.output
    assert "ALERT ward-b" in result.output and "ALERT ward-a" not in result.output
    assert (tmp_path / "mon" / "drift-ward-a.png").stat().st_size > 0 and (tmp_path / "mon" / "drift-ward-b.png").is_file()
    assert "Bounds: alert when PSI > 0.25 with a KS p-value < 0.01" in (tmp_path / "mon" / "drift.md").read_text()
    _, store = seeded
    alerts = [json.loads(e.payload) for e in store.audit_events(viewer=UserInfo.local_operator()) if e.action == "drift_alert"]
    assert [a["site"] for a in alerts] == ["ward-b"] and alerts[0]["recordings"] == 40
    steady = CliRunner().invoke(app, ["monitor", "--since", today, "--until", today, "--site", "ward-a",
                                      "--out", str(tmp_path / "mon-a")])
    assert steady.exit_code == 0, steady.output
