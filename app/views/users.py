"""Admins: who has an account, and new accounts (roles clinician, researcher, auditor, admin)."""

from __future__ import annotations

from dataclasses import asdict

import streamlit as st

import context
from biomarker.store import DuplicateUserError, InvalidUserError
from biomarker.store.auth import MANAGE_USERS, ROLES

user = context.require(MANAGE_USERS)
store = context.store()
st.title("Users")
st.dataframe([asdict(account) for account in store.list_users(viewer=user)], hide_index=True, width="stretch")

st.subheader("Add a user")
with st.form("add_user", clear_on_submit=True):
    username = st.text_input("User name", key="new_username")
    role = st.selectbox("Role", ROLES, key="new_role")
    site = st.text_input("Site (clinicians need one: they see only their site's results)", key="new_site")
    password = st.text_input("Initial password (at least 10 characters)", type="password", key="new_password")
    if st.form_submit_button("Add user"):
        try:
            store.add_user(username, password, role, site=site.strip() or None, actor=user)
        except (DuplicateUserError, InvalidUserError) as error:
            st.error(str(error))
        else:
            st.success(f"Added {username} ({role}).")
