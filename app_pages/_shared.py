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


@st.cache_resource(max_entries=8, show_spinner="Loading dataset ...")
def _dataset(name: str, version: str):
    from bgcore.data.datasets import load_dataset
    return load_dataset(name)


def version(name: str) -> str:
    """The creation stamp of a dataset: a cache key that changes when an import replaces it."""
    from bgcore.data.datasets import list_datasets
    return next((str(d.get("created")) for d in list_datasets() if d["name"] == name), "")


def dataset(name: str):
    """The dataset `name`, loaded once per server and version (pages treat it as read-only)."""
    return _dataset(name, version(name))
