"""My account: change my own password. The only page of an account whose password someone else chose (the
first admin's one-time password, a new account's initial password, an admin's reset) until it is changed."""

from __future__ import annotations

import streamlit as st

import context
from biomarker.store import AuthenticationError, InvalidUserError
from biomarker.store.accounts import MIN_PASSWORD_CHARS
from result_view import user_error_words

t = context.t()
user = context.current_user()
if user is None:
    st.warning(t("app.please_sign_in"))
    st.stop()
st.title(t("account.title"))
if user.must_change_password:
    st.warning(t("account.must_change"))
st.write(t("account.who", user=user.username, role=t(f"role.{user.role}"), site=user.site or "—"))

with st.form("change_password", clear_on_submit=False):
    current = st.text_input(t("account.current"), type="password", key="pw_current")
    new = st.text_input(t("account.new", chars=MIN_PASSWORD_CHARS), type="password", key="pw_new")
    repeat = st.text_input(t("account.repeat"), type="password", key="pw_repeat")
    if st.form_submit_button(t("account.button")):
        if new != repeat:  # the one rule of the form itself; the password rules are the store's
            st.error(t("account.mismatch"))
        else:
            try:
                changed = context.store().change_password(user.username, current, new)
            except AuthenticationError:
                st.error(t("account.wrong_current"))
            except InvalidUserError as error:
                st.error(user_error_words(t, error))
            else:
                context.replace_user(changed)
                st.session_state["password_changed"] = True
                st.rerun()
if st.session_state.pop("password_changed", False):
    st.success(t("account.changed"))
