"""bgexplorer: the Streamlit entry point (navigation and the shared sidebar)."""

import streamlit as st

from bgcore.data.datasets import list_datasets

st.set_page_config(page_title="bgexplorer", page_icon=":material/monitor_heart:", layout="wide")

page = st.navigation([
    st.Page("app_pages/cohort.py", title="Cohort", icon=":material/groups:", default=True),
    st.Page("app_pages/import_data.py", title="Import", icon=":material/upload_file:"),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/forecasts.py", title="Forecasts", icon=":material/show_chart:"),
    st.Page("app_pages/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:"),
    st.Page("app_pages/patient.py", title="Patient report", icon=":material/person:"),
])
names = [d["name"] for d in list_datasets()]
if st.session_state.get("dataset_pending") in names:  # a page asked to switch (e.g. after an import)
    st.session_state["dataset"] = st.session_state.pop("dataset_pending")
with st.sidebar:
    st.selectbox("Dataset", names, key="dataset", help="The embedded virtual cohort, or a dataset imported "
                 "on the Import page or with `python -m bgcore import`.")
    st.radio("Glucose units", ["mmol/L", "mg/dL"], key="units", horizontal=True)
page.run()
