"""Glucose summaries for clinicians: consensus CGM metrics and the ambulatory glucose profile.

Targets follow the international consensus on time in range (Battelino et al., Diabetes
Care 42:1593, 2019). Percentages are over the readings present and cumulative: below 70
includes below 54, above 180 includes above 250. GMI (%) = 3.31 + 0.02392 x mean glucose
in mg/dL (Bergenstal et al., Diabetes Care 41:2275, 2018).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.dataset import Dataset
from ..data.schema import STEP_MINUTES, convert_glucose

AGP_PERCENTILES = (5, 25, 50, 75, 95)


def glucose_summary(frame: pd.DataFrame, column: str = "cgm") -> pd.DataFrame:
    """Per patient: readings, % present, TIR 70-180, TBR < 70 / < 54, TAR > 180 / > 250, mean, GMI, CV."""
    g = frame[column]
    present = g.notna()
    cols = pd.DataFrame({
        "patient_id": frame["patient_id"].astype(str), "present": present,
        "tir": g.between(70, 180), "tbr70": g < 70, "tbr54": g < 54, "tar180": g > 180, "tar250": g > 250,
        "value": g, "square": g ** 2,
    })
    sums = cols.groupby("patient_id", sort=True).sum(numeric_only=True)
    steps = cols.groupby("patient_id", sort=True).size()
    n = sums["present"]
    out = pd.DataFrame({"readings": n.astype(int), "cgm_present_pct": 100 * n / steps})
    for name in ("tir", "tbr70", "tbr54", "tar180", "tar250"):
        out[f"{name}_pct"] = 100 * sums[name] / n.where(n > 0)
    mean = sums["value"] / n.where(n > 0)
    var = (sums["square"] - n * mean ** 2) / (n - 1).where(n > 1)
    out["mean_mgdl"] = mean
    out["gmi_pct"] = 3.31 + 0.02392 * mean
    out["cv_pct"] = 100 * np.sqrt(var.clip(lower=0)) / mean
    return out.reset_index()


def ambulatory_profile(frame: pd.DataFrame, column: str = "cgm", bin_minutes: int = 15,
                       percentiles=AGP_PERCENTILES) -> pd.DataFrame:
    """Ambulatory glucose profile: glucose percentiles by time of day, per patient.

    Returns one row per patient and time-of-day bin (``minute`` from midnight) with
    columns ``p5 ... p95`` (mg/dL) and ``n`` readings, all days pooled.
    """
    minute = frame["time"].dt.hour * 60 + frame["time"].dt.minute
    data = pd.DataFrame({"patient_id": frame["patient_id"].astype(str), "minute": (minute // bin_minutes) * bin_minutes,
                         "g": frame[column]}).dropna(subset=["g"])
    grouped = data.groupby(["patient_id", "minute"], sort=True)["g"]
    out = grouped.quantile([p / 100 for p in percentiles]).unstack()
    out.columns = [f"p{p}" for p in percentiles]
    out["n"] = grouped.size()
    return out.reset_index()


def cohort_summary(dataset: Dataset, units: str = "mg/dL") -> pd.DataFrame:
    """One row per patient: group, source, days, % CGM present, the consensus metrics, first/last time.

    ``mean_glucose`` is in `units`; everything else is as in `glucose_summary`.
    """
    frame = dataset.frame
    span = frame.groupby(frame["patient_id"].astype(str), sort=True)["time"].agg(["min", "max", "size"])
    summary = glucose_summary(frame).set_index("patient_id")
    summary["days"] = span["size"] * STEP_MINUTES / 1440
    summary["mean_glucose"] = convert_glucose(summary["mean_mgdl"], units)
    summary["start"], summary["end"] = span["min"], span["max"]
    meta = dataset.patients[["patient_id", "age_group", "source"]].astype({"patient_id": str})
    out = meta.merge(summary.reset_index(), on="patient_id", how="right")
    return out[["patient_id", "age_group", "source", "days", "cgm_present_pct", "tir_pct", "tbr70_pct", "tbr54_pct",
                "tar180_pct", "tar250_pct", "mean_glucose", "gmi_pct", "cv_pct", "start", "end"]]
