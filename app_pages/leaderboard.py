"""Leaderboard page: every stored run of the dataset against the reference forecasters."""

import streamlit as st

from app_pages._shared import dataset as shared_dataset
from bgcore.evaluation.leaderboard import (board_view, build_leaderboard, goal_comparisons, horizon_curves,
                                           in_units, patient_scores)
from bgcore.evaluation.report import error_grid_points
from bgcore.evaluation.protocol import DEFAULT_PROTOCOL
from bgcore.plots import board_figure, error_grid_figure, horizon_figure
from bgcore.store import list_runs, load_forecasts


@st.cache_data(show_spinner="Scoring runs ...", max_entries=16)
def _board(name: str, horizon: int, target: str, run_ids: tuple[str, ...]):
    return build_leaderboard(shared_dataset(name), horizon=horizon, target=target)


@st.cache_data(show_spinner="Comparing training goals ...", max_entries=8)
def _goals(name: str, horizon: int, target: str, run_ids: tuple[str, ...]):
    return goal_comparisons(_board(name, horizon, target, run_ids), horizon, target)


@st.cache_data(max_entries=8)
def _forecasts(run_id: str):
    return load_forecasts(run_id)


name = st.session_state.get("dataset", "virtual")
units = st.session_state.get("units", "mmol/L")
dataset = shared_dataset(name)

st.title("Leaderboard")
cols = st.columns([2, 1, 1])
horizon = cols[0].select_slider("Horizon (minutes ahead)", options=list(DEFAULT_PROTOCOL.horizons_min), value=30,
                                key="board_horizon")
targets = ["cgm", "bg"] if "bg" in dataset.frame else ["cgm"]
target = cols[1].radio("Score against", targets, key="board_target",
                       format_func={"cgm": "CGM reading", "bg": "true glucose (simulated)"}.get)
groups = sorted(dataset.patients["age_group"].astype(str).unique())
group = cols[2].selectbox("Patient group", ["all", *groups], key="board_group")
run_ids = tuple(r["run_id"] for r in list_runs(name))
result = _board(name, horizon, target, run_ids)
all_runs = result["runs"]
filters = st.columns(2)
goals = filters[0].multiselect("Training goals", sorted({r["goal"] for r in all_runs if r["family"] != "reference"}),
                               key="board_goals", placeholder="all goals")
families = filters[1].multiselect("Families", sorted({r["family"] for r in all_runs if r["family"] != "reference"}),
                                  key="board_families", placeholder="all families")
board = in_units(board_view(result, dataset.patients, horizon, goals, families, None if group == "all" else group),
                 units)

st.caption(f"Dataset **{name}**, {horizon} min ahead, errors in {units}; mean over "
           f"{'all' if group == 'all' else group} patients with a patient-bootstrap 95% interval. Skill is "
           "1 - RMSE / RMSE of persistence on the same origins. Select a row to look into that run.")
fmt = "%.2f" if units == "mmol/L" else "%.1f"
shown = board[["rank", "model", "family", "goal", "patients", "rmse", "rmse_lo", "rmse_hi", "rmse_median", "mae",
               "mard", "skill", "clarke_A", "parkes_AB", "time_lag_min", "run_id"]]
selection = st.dataframe(
    shown, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row", key="board_table",
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
        "run_id": st.column_config.TextColumn("run"),
    },
)
if any(r["run_id"].startswith("unsaved-") for r in all_runs):
    st.info("Reference rows are computed for this view; `python -m bgcore baseline` stores them.")
if result["excluded"]:
    st.warning(f"{result['excluded']} stored run(s) were scored on other data or another protocol and are not shown.")

charts = st.columns(2)
charts[0].plotly_chart(board_figure(board, units, title=f"RMSE at {horizon} min"), width="stretch")
chosen_rows = selection.selection.rows if selection is not None else []
chosen = board.iloc[chosen_rows[0]]["run_id"] if chosen_rows else None
curve_ids = list(dict.fromkeys([*([chosen] if chosen else []), *board["run_id"].head(5)]))
charts[1].plotly_chart(horizon_figure(horizon_curves(result, curve_ids), units, title="RMSE by horizon"),
                       width="stretch")

st.subheader("Training goals compared")
paired = _goals(name, horizon, target, run_ids)
if paired.empty:
    st.caption("Train one family under two goals (e.g. multi and finetune) to compare them on the same patients "
               "and origins.")
else:
    st.dataframe(in_units(paired, units, columns=("rmse_a", "rmse_b", "difference", "difference_lo",
                                                  "difference_hi")),
                 hide_index=True, width="stretch",
                 column_config={"difference": st.column_config.NumberColumn(f"B - A RMSE ({units})", format=fmt,
                                                                            help="negative: goal B is better")})

if chosen is None:
    st.caption("Select a run in the table for its error grid and its patients.")
else:
    record = next(r for r in all_runs if r["run_id"] == chosen)
    st.subheader(f"{record['model']} · {record['goal']}")
    left, right = st.columns(2)
    grid = left.radio("Error grid", ["clarke", "parkes"], horizontal=True, key="board_grid",
                      format_func={"clarke": "Clarke", "parkes": "Parkes (type 1)"}.get)
    if chosen.startswith("unsaved-"):
        left.caption("Store the reference runs (`python -m bgcore baseline`) to see their error grid.")
    else:
        forecasts = _forecasts(chosen)
        ref, pred, zones = error_grid_points(forecasts, horizon, target, grid)
        left.plotly_chart(error_grid_figure(ref, pred, zones, units=units, grid=grid,
                                            title=f"{grid.title()} error grid at {horizon} min"), width="stretch")
    per_patient = in_units(patient_scores(result, chosen, horizon), units, columns=("rmse", "mae"))
    picked = right.dataframe(per_patient, hide_index=True, on_select="rerun", selection_mode="single-row",
                             key="board_patients", column_config={
                                 "rmse": st.column_config.NumberColumn(f"RMSE ({units})", format=fmt),
                                 "mae": st.column_config.NumberColumn(f"MAE ({units})", format=fmt)})
    buttons = right.columns(2)
    if not chosen.startswith("unsaved-") and buttons[0].button("Open in Forecasts", key="board_open_fc"):
        st.session_state["selected_runs"] = [chosen]
        st.switch_page("app_pages/forecasts.py")
    if picked is not None and picked.selection.rows:
        st.session_state["selected_patient"] = str(per_patient.iloc[picked.selection.rows[0]]["patient_id"])
    if buttons[1].button("Open patient report", key="board_open_patient"):
        st.session_state.setdefault("selected_patient", str(per_patient.iloc[0]["patient_id"]))
        st.switch_page("app_pages/patient.py")

with st.expander("Protocol card"):
    st.json(result["card"])
