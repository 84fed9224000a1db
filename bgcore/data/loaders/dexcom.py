"""Dexcom Clarity CSV export.

The header row (``Index, Timestamp (YYYY-MM-DDThh:mm:ss), Event Type, Event Subtype, ...,
Glucose Value (mg/dL)`` or ``(mmol/L)``, ``Insulin Value (u)``, ``Carb Value (grams)``) may
follow preamble lines; after it come device and patient rows without a timestamp, then
events. ``EGV`` rows are sensor glucose (``Low``/``High`` mean below/above the 40-400 mg/dL
range and are read as those limits), ``Insulin`` rows are doses (``Long-Acting`` doses are
spread evenly over ``ingest.LONG_ACTING_HOURS``), ``Carbs`` rows are carbohydrates. Timestamps are
local, with ``T`` or a space.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..ingest import (LONG_ACTING_HOURS, RawData, check_file, event_frame, id_from_name, long_acting_segments,
                      parse_numbers, parse_times, require_columns)
from ..schema import MGDL_PER_MMOLL, SENSOR_MAX_MGDL, SENSOR_MIN_MGDL, DataError, validate_id

FORMAT = "dexcom"
DESCRIPTION = "Dexcom Clarity CSV"
TIME_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M")
_SEARCH_LINES = 40


def sniff(path: Path, head: str) -> bool:
    return path.suffix.lower() in (".csv", ".txt") and "Event Type" in head and "Glucose Value" in head


def _header_line(path: Path) -> int:
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for i, line in enumerate(fh):
            if i >= _SEARCH_LINES:
                break
            if "Event Type" in line and "Timestamp" in line:
                return i
    raise DataError("no header row with 'Timestamp' and 'Event Type'", file=path,
                    row=f"lines 1-{_SEARCH_LINES}", expected="a Dexcom Clarity export header")


def _column(columns, prefix: str) -> str | None:
    return next((c for c in columns if c.startswith(prefix)), None)


def read(path: Path, patient_id: str | None = None) -> RawData:
    """Read one Clarity export (one patient)."""
    path = check_file(Path(path))
    skip = _header_line(path)
    table = pd.read_csv(path, skiprows=skip, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    table.columns = [c.strip() for c in table.columns]
    time_col = _column(table.columns, "Timestamp")
    glucose_col = _column(table.columns, "Glucose Value")
    require_columns(table.columns, ("Event Type",), file=path, row=skip + 1)
    if time_col is None or glucose_col is None:
        require_columns(table.columns, ("Timestamp (YYYY-MM-DDThh:mm:ss)", "Glucose Value (mg/dL)"),
                        file=path, row=skip + 1)
    units = "mmol/L" if "mmol" in glucose_col else "mg/dL" if "mg" in glucose_col else None
    rows = pd.Series(np.arange(len(table)) + skip + 2)  # 1-based file line of each row
    event = table["Event Type"].str.strip()
    pid = validate_id(patient_id or id_from_name(path.name))

    egv = (event == "EGV").to_numpy()
    if not egv.any():
        raise DataError("no EGV (sensor glucose) rows", file=path, column="Event Type", expected="rows with EGV")
    limits = {"low": SENSOR_MIN_MGDL, "high": SENSOR_MAX_MGDL}
    if units == "mmol/L":
        limits = {k: round(v / MGDL_PER_MMOLL, 1) for k, v in limits.items()}
    relevant = event.isin(["EGV", "Insulin", "Carbs"])  # device/profile rows have no timestamp
    times = parse_times(table[time_col].where(relevant), rows, file=path, column=time_col, formats=TIME_FORMATS)
    value = parse_numbers(table.loc[egv, glucose_col], rows[egv], file=path, column=glucose_col, named=limits)
    glucose = event_frame(pid, times[egv], value, rows[egv], "value")
    n_limits = int(table.loc[egv, glucose_col].str.strip().str.lower().isin(limits).sum())

    notes = []
    if n_limits:
        notes.append(f"{path.name}: {n_limits} Low/High readings set to the sensor limits")
    carbs = insulin = segments = None
    carb_col = _column(table.columns, "Carb Value")
    is_carb = (event == "Carbs").to_numpy()
    if carb_col is not None:
        carbs = event_frame(pid, times[is_carb],
                            parse_numbers(table.loc[is_carb, carb_col], rows[is_carb], file=path, column=carb_col),
                            rows[is_carb], "carbs")
    insulin_col = _column(table.columns, "Insulin Value")
    is_insulin = (event == "Insulin").to_numpy()
    if insulin_col is not None:
        dose = parse_numbers(table.loc[is_insulin, insulin_col], rows[is_insulin], file=path, column=insulin_col)
        subtype = table.loc[is_insulin, "Event Subtype"].str.strip() if "Event Subtype" in table else ""
        long_acting = (subtype == "Long-Acting").to_numpy() if len(dose) else np.zeros(0, bool)
        t = times[is_insulin]
        insulin = event_frame(pid, t[~long_acting], dose[~long_acting], rows[is_insulin][~long_acting], "insulin")
        segments = long_acting_segments(pid, t[long_acting], dose[long_acting])
        if long_acting.any():
            notes.append(f"{path.name}: {int(long_acting.sum())} long-acting doses spread over "
                         f"{LONG_ACTING_HOURS} h each")
    patients = pd.DataFrame([{"patient_id": pid, "age_group": "unknown", "source": "Dexcom Clarity"}])
    return RawData(file=str(path), format=FORMAT, glucose=glucose, units=units, patients=patients,
                   carbs=carbs, insulin=insulin, insulin_segments=segments, notes=notes)
