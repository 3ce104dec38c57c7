"""biomarker's clinical app: `streamlit run app/Home.py` (or `biomarker serve`).

This main script only decides which pages the signed-in role may open (`st.navigation`): a page the role may
not use is not registered at all, and every page checks the role again itself (`context.require`). An account
whose password was chosen by someone else sees only the page that changes it.
"""

from __future__ import annotations

import streamlit as st

import context
from biomarker.store.auth import EXPORT, HISTORY, MANAGE_USERS, SCORE, can
from biomarker.store.monitoring import MONITOR

st.set_page_config(page_title="biomarker", layout="wide")

# (file, title key, the action a role needs to see the page; None: every signed-in user)
PAGES = (
    ("views/screen.py", "nav.screen", SCORE),
    ("views/samples.py", "nav.samples", SCORE),
    ("views/history.py", "nav.history", HISTORY),
    ("views/audit.py", "nav.audit", EXPORT),
    ("views/models.py", "nav.models", MONITOR),
    ("views/monitor.py", "nav.monitor", MONITOR),
    ("views/users.py", "nav.users", MANAGE_USERS),
    ("views/account.py", "nav.account", None),
)

context.language_picker()
t = context.t()
user = context.current_user()
if user is None:
    pages = [st.Page("views/sign_in.py", title=t("nav.sign_in"))]
elif user.must_change_password:
    pages = [st.Page("views/account.py", title=t("nav.account"))]
else:
    pages = [st.Page(path, title=t(title)) for path, title, action in PAGES if action is None or can(user.role, action)]
if user is not None:
    with st.sidebar:
        st.write(t("app.signed_in_as", user=user.username, role=t(f"role.{user.role}"),
                   site=t("app.at_site", site=user.site) if user.site else ""))
        if st.button(t("app.sign_out"), key="sign_out"):
            context.sign_out()
            st.rerun()
st.navigation(pages).run()
