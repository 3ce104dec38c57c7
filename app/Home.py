"""biomarker's clinical app: `streamlit run app/Home.py` (or `biomarker serve`).

This main script only decides which pages the signed-in role may open (`st.navigation`): a page the role may
not use is not registered at all, and every page checks the role again itself (`context.require`).
"""

from __future__ import annotations

import streamlit as st

import context
from biomarker.store.auth import EXPORT, HISTORY, MANAGE_USERS, SCORE, can

st.set_page_config(page_title="biomarker: respiratory-insufficiency speech screener", layout="wide")

# (file, title, the action a role needs to see the page)
PAGES = (
    ("views/screen.py", "Screen", SCORE),
    ("views/samples.py", "Try a sample", SCORE),
    ("views/history.py", "History", HISTORY),
    ("views/audit.py", "Audit / export", EXPORT),
    ("views/users.py", "Users", MANAGE_USERS),
)

user = context.current_user()
if user is None:
    pages = [st.Page("views/sign_in.py", title="Sign in")]
else:
    pages = [st.Page(path, title=title) for path, title, action in PAGES if can(user.role, action)]
    with st.sidebar:
        st.write(f"Signed in as **{user.username}** ({user.role}{', site ' + user.site if user.site else ''})")
        if st.button("Sign out", key="sign_out"):
            context.sign_out()
            st.rerun()
st.navigation(pages).run()
