"""Shared fixtures. Tests make their own inputs (no binary fixtures) and use tiny model configs."""

from __future__ import annotations

import sys

import pytest
import torch

# Session fixtures of the store tests: the throwaway PostgreSQL server and the store builders.
pytest_plugins = ("pg", "store_helpers")


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` run only where CUDA exists; everything else must pass on 2 CPU cores."""
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Two cores are shared by the suite: keep torch from oversubscribing them."""
    torch.set_num_threads(2)
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _restore_main_module():
    """Streamlit's AppTest runs each page as `__main__` and leaves it there; a spawned worker (cohort domain's
    pool, the DDP test) re-runs `__main__` first, so a later test's workers would die importing a page."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main
