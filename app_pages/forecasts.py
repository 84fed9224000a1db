"""Forecasts page: the forecasts of stored runs from one origin, and the trail of every origin's forecast."""

import pandas as pd
import streamlit as st

from app_pages._shared import dataset as shared_dataset
from app_pages._shared import pick_patient
from bgcore.plots import forecast_figure, trail_figure
from bgcore.store import list_runs, load_forecasts, weights_lines


@st.cache_data(show_spinner="Loading forecasts ...", max_entries=8)
def _forecasts(run_id: str) -> pd.DataFrame:
    return load_forecasts(run_id)


name = st.session_state.get("dataset", "virtual")
units = st.session_state.get("units", "mmol/L")
dataset = shared_dataset(name)
st.title("Forecasts")
runs = {f"{r['model']} · {r['goal']} · {r['run_id'][-6:]}": r for r in list_runs(name)}
if not runs:
    st.info("No stored runs for this dataset yet: train one on the Train page or run `python -m bgcore baseline`.")
    st.stop()
wanted = [label for label, r in runs.items() if r["run_id"] in st.session_state.get("selected_runs", [])]
chosen = st.multiselect("Runs", list(runs), default=wanted or list(runs)[:2], key="fc_runs")
if not chosen:
    st.stop()
patients = sorted(set.intersection(*(set(runs[c]["patients"]) for c in chosen)))
if not patients:
    st.warning("The chosen runs have no patient in common.")
    st.stop()
patient = pick_patient(st, patients, key="fc_patient")
frames = {c: _forecasts(runs[c]["run_id"]) for c in chosen}
mine = {c: f[f["patient_id"] == patient] for c, f in frames.items()}
origins = sorted(set.intersection(*(set(m["origin"]) for m in mine.values())))
clicked = st.session_state.get("fc_trail")  # a point clicked on the trail below (last run) sets the origin
points = (clicked or {}).get("selection", {}).get("points") or []
if points and str(points[0]) != st.session_state.get("fc_trail_applied"):  # apply each click once
    st.session_state["fc_trail_applied"] = str(points[0])
    made = pd.Timestamp(points[0].get("customdata"))
    match = [o for o in origins if pd.Timestamp(o) == made]
    if match:
        st.session_state["fc_origin"] = match[0]
def step_origin(delta: int) -> None:
    """Move the origin slider by `delta` origins (the buttons' callback, run before the slider is drawn)."""
    current = st.session_state.get("fc_origin", origins[len(origins) // 2])
    at = origins.index(current) if current in origins else len(origins) // 2
    st.session_state["fc_origin"] = origins[min(max(at + delta, 0), len(origins) - 1)]


steps = st.columns([1, 1, 8])
steps[0].button("◀ earlier", key="fc_prev", on_click=step_origin, args=(-1,), width="stretch")
steps[1].button("later ▶", key="fc_next", on_click=step_origin, args=(1,), width="stretch")
origin = st.select_slider("Origin", options=origins, value=origins[len(origins) // 2], key="fc_origin",
                          format_func=lambda t: pd.Timestamp(t).strftime("%a %d %b %H:%M"))
history = dataset.patient(patient, start=pd.Timestamp(origin) - pd.Timedelta(hours=3),
                          end=pd.Timestamp(origin) + pd.Timedelta(hours=2, minutes=5))
at_origin = {c: m[m["origin"] == origin] for c, m in mine.items()}
st.plotly_chart(forecast_figure(history, origin, at_origin, units=units, title=f"{patient}, forecasts from "
                                f"{pd.Timestamp(origin):%H:%M}"), width="stretch")
st.subheader("Prediction trail")
cols = st.columns([1, 2])
trail_h = cols[0].select_slider("Minutes ahead", [15, 30, 45, 60, 90, 120], value=30, key="fc_trail_h")
span = cols[1].slider("Hours shown around the origin", 6, 48, 24, step=6, key="fc_trail_span")
start, end = pd.Timestamp(origin) - pd.Timedelta(hours=span / 2), pd.Timestamp(origin) + pd.Timedelta(hours=span / 2)
trails = {c: m[(m["horizon"] == trail_h) & (m["origin"] >= start) & (m["origin"] <= end)] for c, m in mine.items()}
st.plotly_chart(trail_figure(dataset.patient(patient, start=start, end=end + pd.Timedelta(hours=2)), trails, trail_h,
                             units=units, origin=origin, title=f"{trail_h}-minute forecasts of every origin "
                             "(click a point to forecast from its origin)"),
                width="stretch", on_select="rerun", selection_mode="points", key="fc_trail")
for c in chosen:
    lines = weights_lines(runs[c])
    if lines:
        with st.expander(f"Weights of {c}"):
            st.text("\n".join(lines[:50]))
