"""The data folder, the SQLite database and the session timeout are checked before anything is stored."""

from __future__ import annotations

import stat

import pytest

from biomarker.settings import Settings, SettingsError
from biomarker.store import Store

SECRET = "a-test-secret-of-enough-bytes-0123"


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_pre_existing_wide_home_is_made_private_with_a_warning(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    with pytest.warns(UserWarning, match="readable by other users"):
        settings = Settings.from_env({"BIOMARKER_HOME": str(home), "BIOMARKER_SECRET": SECRET})
    assert mode(home) == 0o700
    Store(settings).close()
    assert mode(home / "biomarker.db") == 0o600


def test_an_existing_world_readable_database_is_tightened(tmp_path):
    database = tmp_path / "old.db"
    database.write_bytes(b"")
    database.chmod(0o644)
    settings = Settings.from_env({"BIOMARKER_HOME": str(tmp_path / "h"), "BIOMARKER_SECRET": SECRET,
                                  "DATABASE_URL": f"sqlite:///{database}"})
    Store(settings).close()
    assert mode(database) == 0o600


@pytest.mark.parametrize("value", ["5", "86401", "0"])
def test_session_timeouts_out_of_bounds_are_refused(tmp_path, value):
    with pytest.raises(SettingsError, match="BIOMARKER_SESSION_TIMEOUT_S"):
        Settings.from_env({"BIOMARKER_HOME": str(tmp_path), "BIOMARKER_SECRET": SECRET,
                           "BIOMARKER_SESSION_TIMEOUT_S": value})
