"""Cohort page: who is in the dataset, and one patient's CGM record."""

import pandas as pd
import streamlit as st

from app_pages._shared import dataset as shared_dataset
from app_pages._shared import pick_patient, version
from bgcore.evaluation.glycemia import ambulatory_profile, cohort_summary
from bgcore.plots import agp_figure, cgm_figure


name = st.session_state.get("dataset", "virtual")
units = st.session_state.get("units", "mmol/L")
dataset = shared_dataset(name)

@st.cache_data(max_entries=16, show_spinner=False)
def _summary(name: str, stamp: str, units: str):
    return cohort_summary(shared_dataset(name), units=units)


st.title("Cohort")
summary = _summary(name, version(name), units)
st.caption(f"Dataset **{name}**: {len(summary)} patients, {summary['days'].sum():.0f} patient-days "
           f"of 5-minute CGM. Consensus targets: in range 70-180 mg/dL (3.9-10.0 mmol/L), below 70 / 54, above "
           "180 / 250 (cumulative, % of readings); GMI from the mean.")
st.dataframe(
    summary.drop(columns=["start", "end", "source"]),
    hide_index=True, width="stretch",
    column_config={
        "patient_id": "patient", "age_group": "group",
        "days": st.column_config.NumberColumn("days", format="%.1f"),
        "cgm_present_pct": st.column_config.NumberColumn("CGM present %", format="%.1f"),
        "tir_pct": st.column_config.NumberColumn("in range %", format="%.1f",
                                                 help="70-180 mg/dL (3.9-10.0 mmol/L)"),
        "tbr70_pct": st.column_config.NumberColumn("< 70 %", format="%.1f"),
        "tbr54_pct": st.column_config.NumberColumn("< 54 %", format="%.1f"),
        "tar180_pct": st.column_config.NumberColumn("> 180 %", format="%.1f"),
        "tar250_pct": st.column_config.NumberColumn("> 250 %", format="%.1f"),
        "mean_glucose": st.column_config.NumberColumn(f"mean ({units})", format="%.1f"),
        "gmi_pct": st.column_config.NumberColumn("GMI %", format="%.1f"),
        "cv_pct": st.column_config.NumberColumn("CV %", format="%.1f"),
    },
)

left, right = st.columns([2, 3])
patient_id = pick_patient(left, dataset.patient_ids, key="cohort_patient")
rows = dataset.patient(patient_id)
first, last = rows["time"].min().normalize(), rows["time"].max().normalize()
if first == last:  # a record within one day: nothing to choose
    window = (first.date(), last.date())
    right.caption(f"Record of {first.date()}")
else:
    window = right.slider("Days shown", min_value=first.date(), max_value=last.date(),
                          value=(first.date(), min(last, first + pd.Timedelta(days=2)).date()), key="cohort_days")
shown = dataset.patient(patient_id, start=window[0], end=pd.Timestamp(window[1]) + pd.Timedelta(days=1))
st.plotly_chart(cgm_figure(shown, units=units, title=patient_id), width="stretch")
st.plotly_chart(agp_figure(ambulatory_profile(rows), units=units,
                           title="Ambulatory glucose profile (all days)"), width="stretch")
