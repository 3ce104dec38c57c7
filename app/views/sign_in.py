"""Sign in, or, on a fresh database, create the first admin account (so a new install reaches screening at once).

The first admin's password is shown once and must be changed at the first sign-in. Wrong passwords lock the
account, and then the client, with growing waits (`biomarker.store.auth.LockoutPolicy`).
"""

from __future__ import annotations

import streamlit as st

import context
from biomarker.store import AccountLockedError, AuthenticationError

t = context.t()
st.title(t("sign_in.title"))
st.caption(t("disclaimer.screening"))
if st.session_state.pop("expired", False):
    st.info(t("sign_in.timed_out"))

store = context.store()
if not store.has_users():
    st.subheader(t("sign_in.first_run_title"))
    st.write(t("sign_in.first_run_text"))
    if st.button(t("sign_in.create_admin"), key="create_admin"):
        password = store.create_first_admin()
        if password is not None:  # another visitor may have created it a moment ago
            st.session_state["first_admin_password"] = password
        st.rerun()
if password := st.session_state.pop("first_admin_password", None):
    st.success(t("sign_in.admin_created", password=password))

st.subheader(t("sign_in.subtitle"))
with st.form("sign_in"):
    username = st.text_input(t("sign_in.username"), key="username")
    password = st.text_input(t("sign_in.password"), type="password", key="password")
    if st.form_submit_button(t("sign_in.button")):
        try:
            account = store.authenticate(username.strip(), password, client=context.client_address())
        except AccountLockedError as locked:
            st.error(t("sign_in.locked", until=t.datetime(locked.until, context.zone())))
        except AuthenticationError:
            st.error(t("sign_in.wrong"))
        else:
            context.sign_in(account)
            st.rerun()
