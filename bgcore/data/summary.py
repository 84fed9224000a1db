"""Per-patient summary of a dataset: record length, sensor coverage, time in range."""

from __future__ import annotations

import pandas as pd

from .dataset import Dataset
from .schema import STEP_MINUTES, convert_glucose

RANGE_MGDL = (70.0, 180.0)


def cohort_summary(dataset: Dataset, units: str = "mg/dL") -> pd.DataFrame:
    """One row per patient: group, source, days, % CGM present, % time in 70-180 mg/dL, mean.

    Time in range is over the steps with a reading (consensus definition); the mean
    glucose column ``mean_glucose`` is in `units`.
    """
    frame = dataset.frame
    cgm = frame["cgm"]
    per = pd.DataFrame({
        "patient_id": frame["patient_id"].astype(str),
        "present": cgm.notna(),
        "in_range": cgm.between(*RANGE_MGDL),
        "cgm": cgm,
        "time": frame["time"],
    }).groupby("patient_id", sort=True).agg(
        start=("time", "min"), end=("time", "max"), steps=("time", "size"),
        present=("present", "sum"), in_range=("in_range", "sum"), mean_mgdl=("cgm", "mean"))
    out = pd.DataFrame({
        "days": per["steps"] * STEP_MINUTES / 1440,
        "cgm_present_pct": 100 * per["present"] / per["steps"],
        "tir_pct": 100 * per["in_range"] / per["present"].where(per["present"] > 0),
        "mean_glucose": convert_glucose(per["mean_mgdl"], units),
        "start": per["start"],
        "end": per["end"],
    }).reset_index()
    meta = dataset.patients[["patient_id", "age_group", "source"]].astype({"patient_id": str})
    return meta.merge(out, on="patient_id", how="right")[
        ["patient_id", "age_group", "source", "days", "cgm_present_pct", "tir_pct", "mean_glucose", "start", "end"]]
