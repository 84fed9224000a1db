"""bgexplorer: the Streamlit entry point (navigation and the shared sidebar)."""

import streamlit as st

from bgcore.data.datasets import list_datasets

st.set_page_config(page_title="bgexplorer", page_icon=":material/monitor_heart:", layout="wide")

page = st.navigation([
    st.Page("app_pages/cohort.py", title="Cohort", icon=":material/groups:", default=True),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/forecasts.py", title="Forecasts", icon=":material/show_chart:"),
    st.Page("app_pages/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:"),
])
names = [d["name"] for d in list_datasets()]
with st.sidebar:
    st.selectbox("Dataset", names, key="dataset", help="The embedded virtual cohort, or a dataset imported "
                 "with `python -m bgcore import`.")
    st.radio("Glucose units", ["mmol/L", "mg/dL"], key="units", horizontal=True)
page.run()
