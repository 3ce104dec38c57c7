"""What every page shares: the one screener and store of this process, the signed-in user, and the access guard.

The model is loaded once per process (`st.cache_resource`) and shared by every session; the `Screener` runs its
forward under a lock, so concurrent sessions score safely. No torch here: the app talks to `biomarker.screener`
and `biomarker.store` only.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

import streamlit as st

from biomarker.records import ModelNotFoundError
from biomarker.screener import DEFAULT_MODEL, Screener, ScreenerConfig
from biomarker.settings import Settings
from biomarker.store import Store, UserInfo
from biomarker.store.auth import can, session_expired
from biomarker.store.repository import UNREACHABLE_ERRORS

# Which model and device the app serves; `biomarker serve` sets these, tests point them at a tiny model.
MODEL_ENV = "BIOMARKER_MODEL"
DEVICE_ENV = "BIOMARKER_DEVICE"
THREADS_ENV = "BIOMARKER_CPU_THREADS"
USER_KEY = "signed_in"


@st.cache_resource(show_spinner="Loading the screening model ...")
def _screener_for(model: str, device: str, cpu_threads: int | None) -> Screener:
    return Screener.load(model, device=device, config=ScreenerConfig(cpu_threads=cpu_threads))


def screener() -> Screener:
    """The process-wide screener (loaded once per model and device). A missing model stops the page with the
    reason instead of a traceback."""
    try:
        threads = os.environ.get(THREADS_ENV)
        return _screener_for(os.environ.get(MODEL_ENV, DEFAULT_MODEL), os.environ.get(DEVICE_ENV, "auto"),
                             int(threads) if threads else None)
    except ModelNotFoundError as error:
        st.error(f"The screening model cannot be loaded: {error}")
        st.stop()


@st.cache_resource
def _store_for(home: str, database_url: str) -> Store:
    """One store per data folder and database (the arguments are the cache key; the values come from the
    environment). A database that is down at start-up does not stop the app: results go to the spool."""
    settings = Settings.from_env()
    try:
        return Store(settings)
    except UNREACHABLE_ERRORS:
        return Store(settings, migrate=False)


def store() -> Store:
    """The process-wide store for the current environment (a changed `BIOMARKER_HOME` gets its own store)."""
    return _store_for(os.environ.get("BIOMARKER_HOME", ""), os.environ.get("DATABASE_URL", ""))


def now() -> datetime:
    return datetime.now(timezone.utc)


def current_user() -> UserInfo | None:
    """The signed-in user, or None. An idle session past the timeout is signed out here, on its next click."""
    user: UserInfo | None = st.session_state.get(USER_KEY)
    if user is None:
        return None
    last = st.session_state.get("last_activity", now())
    if session_expired(last, now(), store().settings.session_timeout_s):
        sign_out()
        st.session_state["expired"] = True
        return None
    st.session_state["last_activity"] = now()
    return user


def sign_in(user: UserInfo) -> None:
    st.session_state[USER_KEY] = user
    st.session_state["last_activity"] = now()
    st.session_state.pop("expired", None)


def sign_out() -> None:
    for key in (USER_KEY, "last_activity"):
        st.session_state.pop(key, None)


def require(action: str) -> UserInfo:
    """Stop the page unless the signed-in user may do `action`: a page reached by URL shows nothing."""
    user = current_user()
    if user is None:
        st.warning("Please sign in.")
        st.stop()
    if not can(user.role, action):
        st.error(f"Your role ({user.role}) may not {action.replace('_', ' ')}.")
        st.stop()
    return user


def flush_spool() -> None:
    """Write results kept while the database was down, now that a page reached it, and say so."""
    if not store().spool.pending():
        return
    report = store().flush_spool()
    if report.written:
        st.info(f"{report.written} result(s) kept while the database was unreachable are now stored.")
    if report.remaining:
        st.warning(f"The database is still unreachable: {report.remaining} result(s) wait in the spool.")
