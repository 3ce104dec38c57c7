"""What every page shares: the one screener and store of this process, the signed-in user, and the access guard.

The model is loaded once per process (`st.cache_resource`) and shared by every session; the `Screener` runs its
forward under a lock, so concurrent sessions score safely. No torch here: the app talks to `biomarker.screener`
and `biomarker.store` only.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime, timezone

import streamlit as st

from biomarker.i18n import LANGUAGE_NAMES, LANGUAGES, Translator, negotiate, translator
from biomarker.models.runtime import RuntimeConfig
from biomarker.records import ModelNotFoundError
from biomarker.screener import DEFAULT_MODEL, Screener, ScreenerConfig
from biomarker.settings import Settings
from biomarker.store import Store, UserInfo
from biomarker.store.auth import can, issue_session_token, read_session_token, session_expired
from biomarker.store.repository import UNREACHABLE_ERRORS

# Which model and device the app serves; `biomarker serve` sets these, tests point them at a tiny model.
MODEL_ENV = "BIOMARKER_MODEL"
DEVICE_ENV = "BIOMARKER_DEVICE"
THREADS_ENV = "BIOMARKER_CPU_THREADS"
RUNTIME_ENV = "BIOMARKER_RUNTIME"  # CPU engine of the forward: onnxruntime (default, as `biomarker score`) | eager
USER_KEY = "signed_in"
TOKEN_KEY, SESSION_ID_KEY, TOKEN_PARAM = "session_token", "session_id", "session"
LANGUAGE_KEY = "language"


def language() -> str:
    """The user's choice in the sidebar; until they choose, the browser's language (Portuguese otherwise)."""
    if LANGUAGE_KEY not in st.session_state:
        st.session_state[LANGUAGE_KEY] = negotiate([st.context.locale])
    return st.session_state[LANGUAGE_KEY]


def t() -> Translator:
    """The translator of this session's language: every page writes its words through it."""
    return translator(language())


def zone() -> str:
    """The browser's time zone (IANA name), for showing times; the store keeps UTC."""
    return st.context.timezone or "UTC"


def language_picker() -> None:
    """The sidebar's language switch (on every page, the sign-in page included)."""
    language()
    st.sidebar.selectbox("Idioma / Language", LANGUAGES, format_func=LANGUAGE_NAMES.__getitem__, key=LANGUAGE_KEY)


@st.cache_resource(show_spinner="Carregando o modelo / Loading the model ...")
def _screener_for(model: str, device: str, cpu_threads: int | None, runtime: str) -> Screener:
    """Loaded and warmed up under the loading spinner: the engine's one-off start (ONNX graph and session, the
    native scan's build) is paid here, not by the first patient's result."""
    screener = Screener.load(model, device=device, config=ScreenerConfig(cpu_threads=cpu_threads,
                                                                         runtime=RuntimeConfig(runtime)))
    screener.warm_up()
    return screener


def screener() -> Screener:
    """The process-wide screener (loaded once per model and device). A missing model stops the page with the
    reason instead of a traceback."""
    try:
        threads = os.environ.get(THREADS_ENV)
        return _screener_for(os.environ.get(MODEL_ENV, DEFAULT_MODEL), os.environ.get(DEVICE_ENV, "auto"),
                             int(threads) if threads else None, os.environ.get(RUNTIME_ENV, "onnxruntime"))
    except ModelNotFoundError as error:
        st.error(t()("app.model_missing", error=error))
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


@st.cache_resource
def _live_sessions() -> dict[str, datetime]:
    """Last activity per session id of this server process, shared by every browser tab. A page refresh starts a
    new Streamlit session; its signed token names the session id, and this table says whether that session is
    still alive (not signed out, not idle past the timeout). A restart empties it: everyone signs in again."""
    return {}


@st.cache_resource
def _session_lock() -> threading.Lock:
    """Guards `_live_sessions` (sessions of many tabs run in threads of one process)."""
    return threading.Lock()


def current_user() -> UserInfo | None:
    """The signed-in user, or None. A refreshed page is signed in again from its signed token; an idle session
    past the timeout is signed out here, on its next click (and that sign-out is audited)."""
    user: UserInfo | None = st.session_state.get(USER_KEY) or _resume_from_token()
    if user is None:
        return None
    last = st.session_state.get("last_activity", now())
    session_id = st.session_state.get(SESSION_ID_KEY)
    if session_id is not None:
        with _session_lock():
            last = max(last, _live_sessions().get(session_id, last))
    if session_expired(last, now(), store().settings.session_timeout_s):
        sign_out("idle")
        st.session_state["expired"] = True
        return None
    touch()
    return user


def touch() -> None:
    """Record activity now (every rerun of a signed-in page), and keep the token in the address bar: page
    navigation drops query parameters, and the token is what lets a refresh keep the user signed in."""
    st.session_state["last_activity"] = now()
    session_id = st.session_state.get(SESSION_ID_KEY)
    if session_id is not None:
        with _session_lock():
            _live_sessions()[session_id] = now()
    token = st.session_state.get(TOKEN_KEY)
    if token is not None and st.query_params.get(TOKEN_PARAM) != token:
        st.query_params[TOKEN_PARAM] = token


def _resume_from_token() -> UserInfo | None:
    token = st.query_params.get(TOKEN_PARAM)
    if not token:
        return None
    claims = read_session_token(store().settings.secret, token, now())
    with _session_lock():
        alive = claims is not None and claims.session_id in _live_sessions()
    user = store().user_info(claims.username) if alive else None
    if user is None:
        del st.query_params[TOKEN_PARAM]  # forged, expired, signed out, or from before a restart
        return None
    st.session_state.update({USER_KEY: user, TOKEN_KEY: token, SESSION_ID_KEY: claims.session_id})
    return user


def sign_in(user: UserInfo) -> None:
    """Keep the user in this session and give the browser a signed, expiring token (never the password)."""
    token = issue_session_token(store().settings.secret, user.username, now())
    claims = read_session_token(store().settings.secret, token, now())
    st.session_state.update({USER_KEY: user, TOKEN_KEY: token, SESSION_ID_KEY: claims.session_id,
                             "last_activity": now()})
    with _session_lock():
        _live_sessions()[claims.session_id] = now()
    st.query_params[TOKEN_PARAM] = token
    st.session_state.pop("expired", None)


def replace_user(user: UserInfo) -> None:
    """The signed-in account changed (its password was just changed): keep the session, update the user."""
    st.session_state[USER_KEY] = user


def sign_out(reason: str = "user") -> None:
    """End the session here and for its token (a refresh does not bring it back); audited."""
    user = st.session_state.get(USER_KEY)
    session_id = st.session_state.get(SESSION_ID_KEY)
    if session_id is not None:
        with _session_lock():
            _live_sessions().pop(session_id, None)
    for key in (USER_KEY, "last_activity", TOKEN_KEY, SESSION_ID_KEY):
        st.session_state.pop(key, None)
    if TOKEN_PARAM in st.query_params:
        del st.query_params[TOKEN_PARAM]
    if user is not None:
        try:
            store().record_sign_out(user, reason)
        except UNREACHABLE_ERRORS:
            pass  # the sign-out itself holds; the trail misses this one line while the database is down


def client_address() -> str | None:
    """The browser's address as this server sees it (behind the TLS proxy: the proxy's forwarded header)."""
    forwarded = st.context.headers.get("X-Forwarded-For")
    address = forwarded.split(",")[0].strip() if isinstance(forwarded, str) and forwarded else st.context.ip_address
    return address if isinstance(address, str) else None  # None where no browser is attached (tests, scripts)


def require(action: str) -> UserInfo:
    """Stop the page unless the signed-in user may do `action`: a page reached by URL shows nothing."""
    user = current_user()
    if user is None:
        st.warning(t()("app.please_sign_in"))
        st.stop()
    if not can(user.role, action):
        st.error(t()("app.role_may_not", role=t()(f"role.{user.role}"), action=t()(f"action.{action}")))
        st.stop()
    return user


def flush_spool() -> None:
    """Write results kept while the database was down, now that a page reached it, and say so."""
    if not store().spool.pending():
        return
    report = store().flush_spool()
    if report.written:
        st.info(t()("app.spool_flushed", count=report.written))
    if report.remaining:
        st.warning(t()("app.spool_waiting", count=report.remaining))
