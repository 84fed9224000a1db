"""Widgets shared by the pages: a patient choice that follows the user from page to page."""

import streamlit as st

SELECTED = "selected_patient"


def pick_patient(container, options: list[str], key: str, label: str = "Patient") -> str:
    """A patient selectbox whose choice is remembered across pages (``session_state["selected_patient"]``)."""
    current = st.session_state.get(SELECTED)
    index = options.index(current) if current in options else 0

    def remember():
        st.session_state[SELECTED] = st.session_state[key]

    value = container.selectbox(label, options, index=index, key=key, on_change=remember)
    st.session_state[SELECTED] = value
    return value
