"""PostgreSQL-only behaviour: the server goes down and comes back; app processes start together."""

from __future__ import annotations

import subprocess
import sys

import pytest
from store_helpers import ADMIN, make_settings, record

from biomarker.store import Store

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("cheap_password_hashing")]


@pytest.fixture
def server_down(postgres_server):
    """Stop the server for the test's first half; it is restarted by the test, or here if the test failed."""
    postgres_server.stop()
    yield postgres_server
    if not (postgres_server.data_dir / "postmaster.pid").exists():
        postgres_server.start()


def test_results_are_spooled_while_postgres_is_down_and_flushed_when_it_is_back(postgres_url, postgres_server,
                                                                                 tmp_path, request):
    store = Store(make_settings(tmp_path, postgres_url))
    request.addfinalizer(store.close)
    assert record(store, ADMIN, audio=b"before the outage").stored
    request.getfixturevalue("server_down")
    outcomes = [record(store, ADMIN, audio=f"during {i}".encode(), patient_id=f"P{i}") for i in range(3)]
    assert [o.stored for o in outcomes] == [False] * 3 and all(o.spool_path.exists() for o in outcomes)
    assert store.flush_spool().remaining == 3  # still down: nothing written, nothing dropped
    postgres_server.start()
    report = store.flush_spool()
    assert (report.written, report.remaining) == (3, 0)
    rows = store.history(viewer=ADMIN)
    assert sorted(store.audio_file(row.audio_path).read_bytes() for row in rows) == [
        b"before the outage", b"during 0", b"during 1", b"during 2"]
    assert store.verify_chain().ok and store.spool.pending() == []


def test_a_process_started_while_postgres_is_down_spools_then_migrates_when_flushing(postgres_url, postgres_server,
                                                                                    tmp_path, request):
    request.getfixturevalue("server_down")
    store = Store(make_settings(tmp_path, postgres_url), migrate=False)
    request.addfinalizer(store.close)
    outcome = record(store, ADMIN)
    assert not outcome.stored and "unreachable" in outcome.message
    postgres_server.start()
    assert store.flush_spool().written == 1  # migrates on first contact
    [row] = store.history(viewer=ADMIN)
    assert row.created_by == ADMIN.username and store.verify_chain().ok


def test_app_processes_starting_together_on_a_fresh_database_migrate_once(postgres_url, tmp_path):
    """Three processes upgrade one empty database at the same moment (the advisory lock in migrations/env.py)."""
    code = ("import sys; from pathlib import Path; from biomarker.settings import Settings; "
            "from biomarker.store import Store; "
            "Store(Settings(home=Path(sys.argv[1]), database_url=sys.argv[2], secret=b'x' * 16)).close()")
    starts = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), postgres_url], stderr=subprocess.PIPE,
                               text=True) for _ in range(3)]
    failures = [process.stderr.read()[-2000:] for process in starts if process.wait() != 0]
    assert failures == []
    store = Store(make_settings(tmp_path, postgres_url))
    assert record(store, ADMIN).stored and store.verify_chain().ok
    store.close()
