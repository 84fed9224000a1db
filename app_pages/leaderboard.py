"""Leaderboard page: every stored run of the dataset against the reference forecasters."""

import streamlit as st

from bgcore.data.datasets import load_dataset
from bgcore.evaluation.leaderboard import build_leaderboard, in_units
from bgcore.evaluation.protocol import DEFAULT_PROTOCOL
from bgcore.store import list_runs


@st.cache_data(show_spinner="Scoring runs ...", max_entries=16)
def _board(name: str, horizon: int, target: str, run_ids: tuple[str, ...]):
    return build_leaderboard(load_dataset(name), horizon=horizon, target=target)


name = st.session_state.get("dataset", "virtual")
units = st.session_state.get("units", "mmol/L")
dataset = load_dataset(name)

st.title("Leaderboard")
left, right = st.columns(2)
horizon = left.select_slider("Horizon (minutes ahead)", options=list(DEFAULT_PROTOCOL.horizons_min), value=30,
                             key="board_horizon")
targets = ["cgm", "bg"] if "bg" in dataset.frame else ["cgm"]
target = right.radio("Score against", targets, horizontal=True, key="board_target",
                     format_func={"cgm": "CGM reading", "bg": "true glucose (simulated)"}.get)
result = _board(name, horizon, target, tuple(r["run_id"] for r in list_runs(name)))
board = in_units(result["board"], units)

st.caption(f"Dataset **{name}**, {horizon} min ahead, errors in {units}; mean over patients with a patient-"
           "bootstrap 95% interval. Skill is 1 - RMSE / RMSE of persistence on the same origins.")
fmt = "%.2f" if units == "mmol/L" else "%.1f"
st.dataframe(
    board[["rank", "model", "family", "goal", "patients", "rmse", "rmse_lo", "rmse_hi", "rmse_median", "mae",
           "mard", "skill", "clarke_A", "parkes_AB", "time_lag_min"]],
    hide_index=True, width="stretch",
    column_config={
        "rmse": st.column_config.NumberColumn("RMSE", format=fmt),
        "rmse_lo": st.column_config.NumberColumn("95% CI low", format=fmt),
        "rmse_hi": st.column_config.NumberColumn("95% CI high", format=fmt),
        "rmse_median": st.column_config.NumberColumn("median RMSE", format=fmt),
        "mae": st.column_config.NumberColumn("MAE", format=fmt),
        "mard": st.column_config.NumberColumn("MARD %", format="%.1f"),
        "skill": st.column_config.NumberColumn("skill", format="%.3f"),
        "clarke_A": st.column_config.NumberColumn("Clarke A %", format="%.1f"),
        "parkes_AB": st.column_config.NumberColumn("Parkes A+B %", format="%.1f"),
        "time_lag_min": st.column_config.NumberColumn("time lag (min)", format="%.0f"),
    },
)
if any(r["run_id"].startswith("unsaved-") for r in result["runs"]):
    st.info("Reference rows are computed for this view; `python -m bgcore baseline` stores them.")
if result["excluded"]:
    st.warning(f"{result['excluded']} stored run(s) were scored on other data or another protocol and are not shown.")
with st.expander("Protocol card"):
    st.json(result["card"])
