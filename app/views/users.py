"""Admins: who has an account; add, edit (role, site, active), reset a forgotten password, unlock.

The add form keeps what was typed when it is refused, and the table shows the new account at once (the add runs
in the button's callback, before the page is drawn). A new account's password, and a reset one, must be changed
at its first sign-in.
"""

from __future__ import annotations

import streamlit as st

import context
from biomarker.store import DuplicateUserError, InvalidUserError
from biomarker.store.accounts import MIN_PASSWORD_CHARS
from biomarker.store.auth import MANAGE_USERS, ROLES
from result_view import user_error_words

t = context.t()
user = context.require(MANAGE_USERS)
store = context.store()
NEW_FIELDS = ("new_username", "new_site", "new_password")


def _add_user() -> None:
    """Runs before the page: a success empties the form; a refusal keeps every field as typed."""
    state = st.session_state
    username, site = state["new_username"].strip(), state["new_site"].strip() or None
    try:
        store.add_user(username, state["new_password"], state["new_role"], site=site, actor=user)
    except DuplicateUserError:
        state["users_message"] = ("error", t("users.duplicate", user=username))
    except InvalidUserError as error:
        state["users_message"] = ("error", user_error_words(t, error))
    else:
        state["users_message"] = ("success", t("users.added", user=username, role=t(f"role.{state['new_role']}")))
        for key in NEW_FIELDS:
            state[key] = ""


st.title(t("users.title"))
st.subheader(t("users.add_title"))
with st.form("add_user", clear_on_submit=False):
    st.text_input(t("sign_in.username"), key="new_username")
    st.selectbox(t("users.role"), ROLES, key="new_role", format_func=lambda role: t(f"role.{role}"))
    st.text_input(t("users.site_help"), key="new_site")
    st.text_input(t("users.initial_password", chars=MIN_PASSWORD_CHARS), type="password", key="new_password")
    st.form_submit_button(t("users.add_button"), on_click=_add_user)
if message := st.session_state.pop("users_message", None):
    getattr(st, message[0])(message[1])

accounts = store.list_users(viewer=user)
st.subheader(t("users.list_title"))
st.dataframe([{
    t("sign_in.username"): account.username,
    t("users.role"): t(f"role.{account.role}"),
    t("column.site"): account.site or "—",
    t("users.state"): ", ".join(part for part in (
        t("users.active") if account.active else t("users.inactive"),
        t("users.must_change") if account.must_change_password else "",
        t("users.locked", until=t.datetime(account.locked_until, context.zone())) if account.locked_until else "",
    ) if part),
} for account in accounts], hide_index=True, width="stretch")

st.subheader(t("users.edit_title"))
by_name = {account.username: account for account in accounts}
chosen = by_name[st.selectbox(t("users.pick"), list(by_name), key="edit_user")]
with st.form("edit_user_form"):
    role = st.selectbox(t("users.role"), ROLES, index=ROLES.index(chosen.role), key=f"edit_role_{chosen.username}",
                        format_func=lambda role: t(f"role.{role}"))
    site = st.text_input(t("column.site"), value=chosen.site or "", key=f"edit_site_{chosen.username}")
    active = st.checkbox(t("users.active"), value=chosen.active, key=f"edit_active_{chosen.username}")
    if st.form_submit_button(t("users.save_button")):
        try:
            store.edit_user(chosen.username, actor=user, role=role, site=site.strip() or None, active=active,
                            clear_site=not site.strip())
        except InvalidUserError as error:
            st.error(user_error_words(t, error))
        else:
            st.session_state["users_message"] = ("success", t("users.saved", user=chosen.username))
            st.rerun()
columns = st.columns(2)
if columns[0].button(t("users.reset_button"), key="reset_password"):
    st.success(t("users.reset_done", user=chosen.username,
                 password=store.reset_password(chosen.username, actor=user)))
if chosen.locked_until is not None and columns[1].button(t("users.unlock_button"), key="unlock_user"):
    store.unlock_user(chosen.username, actor=user)
    st.session_state["users_message"] = ("success", t("users.unlocked", user=chosen.username))
    st.rerun()
