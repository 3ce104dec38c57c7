"""Sign in, or, on a fresh database, create the first admin account (so a new install reaches screening at once)."""

from __future__ import annotations

import streamlit as st

import context
from biomarker.store import AuthenticationError

st.title("Respiratory-insufficiency speech screener")
st.caption("Screening aid only: a positive result means *refer for an SpO2 check*. It never estimates SpO2.")
if st.session_state.pop("expired", False):
    st.info("Your session timed out. Please sign in again.")

store = context.store()
if not store.has_users():
    st.subheader("First run: create the administrator account")
    st.write("No account exists yet. This creates the user **admin** with a one-time password shown once here.")
    if st.button("Create the admin account", key="create_admin"):
        password = store.create_first_admin()
        if password is not None:  # another visitor may have created it a moment ago
            st.session_state["first_admin_password"] = password
        st.rerun()
if password := st.session_state.pop("first_admin_password", None):
    st.success(f"Created user **admin** with the one-time password `{password}`. Write it down now: it is not "
               "shown again. Add clinicians on the Users page after signing in.")

st.subheader("Sign in")
with st.form("sign_in"):
    username = st.text_input("User name", key="username")
    password = st.text_input("Password", type="password", key="password")
    if st.form_submit_button("Sign in"):
        try:
            account = store.authenticate(username, password)
        except AuthenticationError:
            st.error("Wrong user name or password.")
        else:
            context.sign_in(account)
            st.rerun()
