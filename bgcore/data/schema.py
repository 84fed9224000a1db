"""The canonical data contract: columns, units, the 5-minute grid and `DataError`.

Every dataset inside bgcore is one long frame with one row per patient and 5-minute step:

========== ============== ==========================================================
column     dtype          meaning
========== ============== ==========================================================
patient_id category (str) validated id, safe to use in paths
time       datetime64[ns] step label, timezone-naive local time, multiple of 5 min
cgm        float64        sensor glucose in mg/dL, NaN where no reading
carbs      float64        carbohydrate eaten in the step, g (NaN: source has none)
insulin    float64        insulin delivered in the step, U, bolus + basal (NaN: none)
bg         float64        true plasma glucose, mg/dL (simulated data only, optional)
========== ============== ==========================================================

A step labelled ``t`` holds what happened in the half-open interval ``(t - 5 min, t]``,
so everything in the row was known at time ``t`` (readings are labelled by rounding
their timestamp *up* to the grid, never down, which would leak the future).

Patient metadata lives in a second small frame with one row per patient
(`PATIENT_COLUMNS`).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

MGDL_PER_MMOLL = 18.018
"""mg/dL per mmol/L of glucose (molar mass 180.16 g/mol)."""

STEP_MINUTES = 5
STEP = pd.Timedelta(minutes=STEP_MINUTES)

GLUCOSE_MIN_MGDL = 20.0
GLUCOSE_MAX_MGDL = 600.0
"""Plausible range for any glucose value; outside it the input is rejected."""

SENSOR_MIN_MGDL = 40.0
SENSOR_MAX_MGDL = 400.0
"""Reporting range of common CGM sensors ("Low" and "High" map to these)."""

FRAME_COLUMNS = ("patient_id", "time", "cgm", "carbs", "insulin")
OPTIONAL_FRAME_COLUMNS = ("bg",)
PATIENT_COLUMNS = ("patient_id", "age_group", "source")
AGE_GROUPS = ("child", "adolescent", "adult", "unknown")

UNITS = ("mg/dL", "mmol/L")

_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.#-]{1,64}$")


class DataError(ValueError):
    """Bad input, with where it is and what was expected.

    Parameters
    ----------
    message : str
        What is wrong.
    file, row, column : optional
        Where: file name, 1-based row or line number (or an event label), column.
    expected : str, optional
        What was expected there.
    found : object, optional
        What was found instead.
    """

    def __init__(self, message, *, file=None, row=None, column=None, expected=None, found=None):
        self.message = message
        self.file = None if file is None else str(file)
        self.row = row
        self.column = column
        self.expected = expected
        self.found = found
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file)
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        text = (": ".join([", ".join(where), self.message]) if where else self.message)
        if self.expected is not None:
            text += f"; expected {self.expected}"
        if self.found is not None:
            text += f", found {self.found!r}"
        return text


def to_mmol(mgdl):
    """Convert glucose from mg/dL to mmol/L (array-like or scalar)."""
    return np.divide(mgdl, MGDL_PER_MMOLL)


def to_mgdl(mmol):
    """Convert glucose from mmol/L to mg/dL (array-like or scalar)."""
    return np.multiply(mmol, MGDL_PER_MMOLL)


def convert_glucose(values, units: str):
    """Express mg/dL `values` in `units` (``"mg/dL"`` or ``"mmol/L"``)."""
    if units not in UNITS:
        raise ValueError(f"units must be one of {UNITS}, got {units!r}")
    return values if units == "mg/dL" else to_mmol(values)


def validate_id(value: str, what: str = "patient id") -> str:
    """Return `value` if it is safe to use as a file or folder name, else raise `DataError`."""
    if not isinstance(value, str) or not _ID_PATTERN.match(value) or value in {".", ".."}:
        raise DataError(f"invalid {what}", expected="1-64 characters from A-Z a-z 0-9 _ . # -",
                        found=value)
    return value


def validate_frame(frame: pd.DataFrame, patients: pd.DataFrame | None = None) -> None:
    """Check that `frame` (and `patients`) follow the canonical contract; raise `DataError` if not.

    This is the boundary check for data that bgcore itself produced (loaders, simulator,
    cache); raw user files are checked by the loaders, which report rows and columns.
    """
    missing = [c for c in FRAME_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError("canonical frame lacks columns", column=", ".join(missing),
                        expected=", ".join(FRAME_COLUMNS))
    if len(frame) == 0:
        raise DataError("canonical frame is empty", expected="at least one row")
    if not pd.api.types.is_datetime64_dtype(frame["time"]):
        raise DataError("time is not a timezone-naive datetime column", column="time",
                        expected="datetime64[ns]", found=str(frame["time"].dtype))
    for col in ("cgm", "carbs", "insulin") + tuple(c for c in OPTIONAL_FRAME_COLUMNS if c in frame):
        if not pd.api.types.is_float_dtype(frame[col]):
            raise DataError("column is not float", column=col, expected="float64",
                            found=str(frame[col].dtype))
    for pid in pd.unique(frame["patient_id"].astype(str)):
        validate_id(pid)
    off_grid = (frame["time"].dt.floor(STEP) != frame["time"])
    if off_grid.any():
        row = int(np.flatnonzero(off_grid.to_numpy())[0])
        raise DataError("time is not on the 5-minute grid", row=row, column="time",
                        found=str(frame["time"].iloc[row]))
    # Patients contiguous and, within each, exactly one step apart: this also rules out
    # duplicated or unsorted timestamps.
    pid = frame["patient_id"].astype(str).to_numpy()
    change = np.flatnonzero(pid[1:] != pid[:-1]) + 1
    firsts = pid[np.r_[0, change]]
    if len(set(firsts)) != len(firsts):
        raise DataError("rows of a patient are not contiguous; sort by patient_id, time")
    steps = np.diff(frame["time"].to_numpy())
    steps[change - 1] = STEP.to_timedelta64()
    bad = np.flatnonzero(steps != STEP.to_timedelta64())
    if bad.size:
        row = int(bad[0]) + 1
        raise DataError("time is not a consecutive 5-minute grid (duplicated, unsorted or missing "
                        "steps; missing readings must be rows with NaN cgm)", row=row, column="time",
                        found=str(frame["time"].iloc[row]))
    cgm = frame["cgm"].to_numpy()
    bad = np.flatnonzero((cgm < GLUCOSE_MIN_MGDL) | (cgm > GLUCOSE_MAX_MGDL))
    if bad.size:
        raise DataError("glucose outside the plausible range", row=int(bad[0]), column="cgm",
                        expected=f"{GLUCOSE_MIN_MGDL:g}-{GLUCOSE_MAX_MGDL:g} mg/dL",
                        found=float(cgm[bad[0]]))
    for col in ("carbs", "insulin"):
        neg = np.flatnonzero(frame[col].to_numpy() < 0)
        if neg.size:
            raise DataError("negative amount", row=int(neg[0]), column=col, expected=">= 0",
                            found=float(frame[col].iloc[neg[0]]))
    if patients is not None:
        missing = [c for c in PATIENT_COLUMNS if c not in patients.columns]
        if missing:
            raise DataError("patient table lacks columns", column=", ".join(missing))
        known = set(patients["patient_id"].astype(str))
        absent = sorted(set(pd.unique(frame["patient_id"].astype(str))) - known)
        if absent:
            raise DataError("patients without metadata", column="patient_id", found=absent[:5])
