"""Builders shared by the store tests: a store on SQLite or PostgreSQL, users, and a score to record."""

from __future__ import annotations

from pathlib import Path

import pytest

from biomarker.records import DECISION_NEGATIVE, DECISION_POSITIVE, QualityReport, Score
from biomarker.settings import Settings
from biomarker.store import Store, UserInfo

SECRET = b"test-secret-of-at-least-16-bytes"
ADMIN = UserInfo(username="root-admin", role="admin")
ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def make_settings(home: Path, database_url: str | None = None) -> Settings:
    return Settings(home=home, database_url=database_url or f"sqlite:///{home / 'biomarker.db'}", secret=SECRET)


def database_url_for(engine: str, home: Path, request: pytest.FixtureRequest) -> str:
    """SQLite in `home`, or a fresh PostgreSQL database from the `postgres_url` fixture."""
    if engine == "postgres":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{home / 'biomarker.db'}"


def make_score(probability: float = 0.8, *, model_version: str = "1.0.0") -> Score:
    quality = QualityReport(duration_s=4.0, speech_ratio=0.6, clipping_ratio=0.0, peak=0.7, rms_dbfs=-22.0,
                            snr_db=25.0, passed=True)
    return Score(probability=probability, threshold=0.5,
                 decision=DECISION_POSITIVE if probability >= 0.5 else DECISION_NEGATIVE,
                 model_name="ri-screener-synthetic", model_version=model_version, cohort="default", device="cpu",
                 latency_ms=42.0, quality=quality)


def record(store: Store, actor: UserInfo, *, probability: float = 0.8, patient_id: str | None = "MRN-0001",
           audio: bytes | None = None, site: str | None = None):
    """Save fake audio bytes and record a score for them, as the app does."""
    path = store.save_audio(audio if audio is not None else f"audio {probability} {patient_id}".encode())
    return store.record_result(make_score(probability), actor=actor, audio_path=path, duration_s=4.0,
                               sample_rate_hz=16000, patient_id=patient_id, site=site)
