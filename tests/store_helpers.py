"""Builders shared by the store tests: a store on SQLite or PostgreSQL, users, and a score to record.

Loaded as a pytest plugin by tests/conftest.py, so its fixtures exist once per session.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from biomarker.records import DECISION_NEGATIVE, DECISION_POSITIVE, QualityReport, Score
from biomarker.settings import Settings
from biomarker.store import Store, UserInfo

SECRET = b"test-secret-of-at-least-16-bytes"
ADMIN = UserInfo(username="root-admin", role="admin", site="site-test")
ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture
def cheap_password_hashing(monkeypatch):
    """Argon2 at its cheapest (about 1 ms instead of ~0.3 s a hash on 2 shared cores) for tests about something
    else than password strength; `test_passwords_are_hashed_with_the_recommended_argon2id_profile` checks the
    real parameters."""
    from argon2 import PasswordHasher

    from biomarker.store import auth

    monkeypatch.setattr(auth, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def make_settings(home: Path, database_url: str | None = None) -> Settings:
    return Settings(home=home, database_url=database_url or f"sqlite:///{home / 'biomarker.db'}", secret=SECRET)


@pytest.fixture(scope="session")
def migrated_postgres_template(postgres_server, tmp_path_factory) -> str:
    """A PostgreSQL database migrated to head once per session; tests get copies (faster than migrating each)."""
    name = postgres_server.create_database()
    Store(make_settings(tmp_path_factory.mktemp("template-home"), postgres_server.url(name))).close()
    return name


def database_url_for(engine: str, home: Path, request: pytest.FixtureRequest) -> str:
    """SQLite in `home`, or a fresh copy of the migrated PostgreSQL template."""
    if engine == "postgres":
        template = request.getfixturevalue("migrated_postgres_template")
        server = request.getfixturevalue("postgres_server")
        name = server.create_database(template)
        request.addfinalizer(lambda: server.drop_database(name))
        return server.url(name)
    return f"sqlite:///{home / 'biomarker.db'}"


@pytest.fixture(params=ENGINES)
def store(request, tmp_path):
    """An empty, migrated store on SQLite and on PostgreSQL (the store tests' default; a test file may define
    its own `store` with more in it)."""
    store = Store(make_settings(tmp_path, database_url_for(request.param, tmp_path, request)))
    yield store
    store.close()


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
