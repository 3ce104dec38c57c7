"""Runs the Alembic migrations shipped inside the package, programmatically (no alembic.ini needed)."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Alembic keeps the running migration in module globals (`alembic.context`), so two threads of one process must
# not migrate at once; processes are kept apart by the database lock taken in migrations/env.py.
_ALEMBIC_GLOBALS = threading.Lock()


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade_to_head(engine: Engine) -> None:
    """Bring the database at `engine` to the newest schema; a no-op when it is there already."""
    with _ALEMBIC_GLOBALS:
        command.upgrade(alembic_config(engine), "head")
