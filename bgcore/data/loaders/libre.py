"""LibreView CSV export (FreeStyle Libre).

One or more title lines (``Glucose Data,Generated on,...``) precede the header row with
``Device Timestamp`` and ``Record Type``. Record types: 0 historic glucose (every 15 min),
1 scan glucose, 4 insulin (rapid-acting instant, long-acting spread like Dexcom's),
5 food; others are ignored. Glucose columns are
``Historic Glucose mg/dL`` / ``Scan Glucose mg/dL`` or their ``mmol/L`` versions; ``HI``
and ``LO`` are read as the sensor limits. Rows are not sorted and the date order depends
on the locale (``MM-DD-YYYY hh:mm AM``, ``DD-MM-YYYY HH:MM``, ...): every candidate order is
tried and the one giving the shortest record is kept.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..ingest import (RawData, check_file, event_frame, id_from_name, long_acting_segments, parse_numbers,
                      parse_times, require_columns)
from ..schema import MGDL_PER_MMOLL, DataError, validate_id

FORMAT = "libre"
DESCRIPTION = "LibreView CSV"
TIME_FORMATS = ("%m-%d-%Y %I:%M %p", "%m/%d/%Y %I:%M %p", "%d-%m-%Y %H:%M", "%m-%d-%Y %H:%M", "%d/%m/%Y %H:%M",
                "%m/%d/%Y %H:%M", "%d.%m.%Y %H:%M", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M:%S")
LIMITS_MGDL = {"lo": 40.0, "hi": 500.0}
_SEARCH_LINES = 10


def sniff(path: Path, head: str) -> bool:
    return path.suffix.lower() in (".csv", ".txt") and "Device Timestamp" in head and "Record Type" in head


def _header_line(path: Path) -> tuple[int, str]:
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for i, line in enumerate(fh):
            if i >= _SEARCH_LINES:
                break
            if "Device Timestamp" in line:
                return i, (";" if line.count(";") > line.count(",") else ",")
    raise DataError("no header row with 'Device Timestamp'", file=path, row=f"lines 1-{_SEARCH_LINES}",
                    expected="a LibreView export header")


def _glucose_column(columns, kind: str) -> tuple[str | None, str | None]:
    for col in columns:
        if col.startswith(f"{kind} Glucose"):
            return col, ("mmol/L" if "mmol" in col else "mg/dL")
    return None, None


def read(path: Path, patient_id: str | None = None) -> RawData:
    """Read one LibreView export (one patient)."""
    path = check_file(Path(path))
    skip, sep = _header_line(path)
    table = pd.read_csv(path, skiprows=skip, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    table.columns = [c.strip() for c in table.columns]
    require_columns(table.columns, ("Device Timestamp", "Record Type"), file=path, row=skip + 1)
    historic, units = _glucose_column(table.columns, "Historic")
    scan, scan_units = _glucose_column(table.columns, "Scan")
    if historic is None and scan is None:
        require_columns(table.columns, ("Historic Glucose mg/dL",), file=path, row=skip + 1)
    units = units or scan_units
    if scan_units and units != scan_units:
        raise DataError("historic and scan glucose in different units", file=path, column=scan,
                        expected=units, found=scan_units)
    rows = pd.Series(np.arange(len(table)) + skip + 2)
    pid = validate_id(patient_id or id_from_name(path.name))
    record = parse_numbers(table["Record Type"], rows, file=path, column="Record Type")
    used = record.isin([0, 1, 4, 5])
    times = parse_times(table["Device Timestamp"].where(used), rows, file=path, column="Device Timestamp",
                        formats=TIME_FORMATS, choose="shortest")
    limits = LIMITS_MGDL if units == "mg/dL" else {k: round(v / MGDL_PER_MMOLL, 1) for k, v in LIMITS_MGDL.items()}

    parts = []
    for code, col in ((0, historic), (1, scan)):
        mask = (record == code).to_numpy()
        if col is not None and mask.any():
            value = parse_numbers(table.loc[mask, col], rows[mask], file=path, column=col, named=limits)
            parts.append(event_frame(pid, times[mask], value, rows[mask], "value"))
    if not parts:
        raise DataError("no glucose records (Record Type 0 or 1)", file=path, column="Record Type",
                        expected="historic (0) or scan (1) rows")
    glucose = pd.concat(parts, ignore_index=True)

    def amounts(code: int, column: str) -> tuple[pd.Series, pd.Series, pd.Series] | None:
        mask = (record == code).to_numpy()
        if column not in table.columns or not mask.any():
            return None
        return times[mask], parse_numbers(table.loc[mask, column], rows[mask], file=path, column=column), rows[mask]

    rapid = amounts(4, "Rapid-Acting Insulin (units)")
    long_col = next((c for c in ("Long-Acting Insulin Value (units)", "Long-Acting Insulin (units)")
                     if c in table.columns), "")
    long = amounts(4, long_col)
    food = amounts(5, "Carbohydrates (grams)")
    insulin = event_frame(pid, *rapid[:2], rapid[2], "insulin") if rapid else None
    segments = long_acting_segments(pid, *long[:2]) if long else None
    carbs = event_frame(pid, *food[:2], food[2], "carbs") if food else None
    notes = []
    n_limits = int(sum(table[c].str.strip().str.lower().isin(limits).sum() for c in (historic, scan) if c))
    if n_limits:
        notes.append(f"{path.name}: {n_limits} HI/LO readings set to the sensor limits")
    patients = pd.DataFrame([{"patient_id": pid, "age_group": "unknown", "source": "LibreView"}])
    return RawData(file=str(path), format=FORMAT, glucose=glucose, units=units, patients=patients,
                   carbs=carbs, insulin=insulin, insulin_segments=segments, notes=notes)
