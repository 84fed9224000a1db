"""Patient report (clinician-facing): glucose summary and profile, the best model in plain words, downloads."""

import streamlit as st

from app_pages._shared import dataset as shared_dataset
from app_pages._shared import pick_patient
from bgcore.data.schema import convert_glucose
from bgcore.evaluation.report import error_grid_points, format_glucose, patient_report, report_csv, report_html
from bgcore.plots import agp_figure, error_grid_figure
from bgcore.store import list_runs

name = st.session_state.get("dataset", "virtual")
units = st.session_state.get("units", "mmol/L")
dataset = shared_dataset(name)


@st.cache_data(show_spinner="Scoring the stored runs for this patient ...", max_entries=16)
def _report(dataset_name: str, patient_id: str, horizon: int, units: str, run_ids: tuple):
    return patient_report(shared_dataset(dataset_name), patient_id, horizon, units)


st.title("Patient report")
left, right = st.columns([2, 1])
patient = pick_patient(left, dataset.patient_ids, key="report_patient")
horizon = right.select_slider("Forecast horizon (min)", [15, 30, 45, 60], value=30, key="report_horizon")
run_ids = tuple(r["run_id"] for r in list_runs(name))
report = _report(name, patient, horizon, units, run_ids)

s = report.summary
cols = st.columns(5)
cols[0].metric("Time in range", f"{s['tir_pct']:.0f} %", help="70-180 mg/dL (3.9-10.0 mmol/L); target > 70 %")
cols[1].metric("Below range", f"{s['tbr70_pct']:.1f} %", help="< 70 mg/dL (3.9 mmol/L); target < 4 %")
cols[2].metric("Above range", f"{s['tar180_pct']:.0f} %", help="> 180 mg/dL (10.0 mmol/L); target < 25 %")
cols[3].metric("Mean glucose", format_glucose(s["mean_mgdl"], units),
               help=f"GMI {s['gmi_pct']:.1f} %")
cols[4].metric("Variability (CV)", f"{s['cv_pct']:.0f} %", help="target 36 % or less")
for sentence in report.sentences:
    st.markdown(f"- {sentence}")

figures = [agp_figure(report.profile, units=units, title="Ambulatory glucose profile (all days)")]
if report.best is not None:
    ref, pred, zones = error_grid_points(report.forecasts, horizon)
    figures.append(error_grid_figure(ref, pred, zones, units=units,
                                     title=f"Clarke error grid, {report.best['model']} at {horizon} min"))
chart_cols = st.columns(len(figures))
for col, fig in zip(chart_cols, figures):
    col.plotly_chart(fig, width="stretch")
if not report.ranking.empty:
    st.subheader("Models run for this patient")
    st.dataframe(report.ranking.assign(rmse=convert_glucose(report.ranking["rmse"], units),
                                       mae=convert_glucose(report.ranking["mae"], units)),
                 hide_index=True, width="stretch",
                 column_config={"rmse": st.column_config.NumberColumn(f"RMSE ({units})", format="%.2f"),
                                "mae": st.column_config.NumberColumn(f"MAE ({units})", format="%.2f"),
                                "skill": st.column_config.NumberColumn("skill vs persistence", format="%.3f")})
cols = st.columns(2)
# Built only when clicked: the HTML embeds plotly.js (several MB) so that it opens offline.
cols[0].download_button("Download the report (HTML)", lambda: report_html(report, figures, units),
                        file_name=f"{patient}-report.html", mime="text/html", key="report_html")
cols[1].download_button("Download the forecasts (CSV, mg/dL)", lambda: report_csv(report),
                        file_name=f"{patient}-forecasts.csv", mime="text/csv", key="report_csv",
                        disabled=report.forecasts is None)
