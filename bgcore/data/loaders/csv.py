"""Generic CSV: a time column and a glucose column, optional carbs, insulin and patient.

Columns are found by name (case and punctuation ignored): time from `TIME_NAMES`, glucose
from any name containing "glucose" or from `GLUCOSE_NAMES`, carbs, insulin and patient id
likewise. Units come from the glucose column's name (``mmol``/``mg``) and are checked
against the values. The delimiter may be ``,``, ``;`` or a tab. Timestamps may be ISO 8601,
common day-first or month-first formats, or epoch seconds/milliseconds (read as UTC).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..ingest import RawData, check_file, event_frame, id_from_name, parse_numbers, parse_times
from ..schema import DataError, validate_id

FORMAT = "csv"
DESCRIPTION = "generic CSV (time, glucose[, carbs, insulin, patient_id])"
TIME_NAMES = ("time", "timestamp", "datetime", "date_time", "date", "ts", "datestring", "dateandtime",
              "devicetimestamp", "displaytime")
GLUCOSE_NAMES = ("cgm", "sgv", "bg", "egv", "sensorglucose", "glucosevalue")
CARB_NAMES = ("carbs", "carb", "carbohydrates", "cho", "carbsg", "carbsgrams", "meal")
INSULIN_NAMES = ("insulin", "insulinu", "insulinunits", "bolus", "bolusu", "dose")
PATIENT_NAMES = ("patientid", "patient", "subject", "subjectid", "pid", "pnum", "participant")
TIME_FORMATS = ("ISO8601", "%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%m/%d/%Y %H:%M:%S",
                "%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M:%S", "%d-%m-%Y %H:%M", "%m-%d-%Y %H:%M", "%m/%d/%Y %I:%M %p")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _find(columns, names, contains: str | None = None) -> str | None:
    normed = {c: _norm(c) for c in columns}
    for name in names:
        for col, n in normed.items():
            if n == name:
                return col
    if contains:
        for col, n in normed.items():
            if contains in n:
                return col
    return None


def _strip_units(normed: str) -> str:
    return re.sub(r"(mgdl|mmoll|mmol|mg)$", "", normed)


def _glucose_column(columns) -> str | None:
    for col in columns:
        n = _strip_units(_norm(col))
        if n in GLUCOSE_NAMES or "glucose" in n:
            return col
    return None


def _delimiter(head: str) -> str:
    first = head.splitlines()[0] if head else ""
    return max((",", ";", "\t"), key=first.count)


def sniff(path: Path, head: str) -> bool:
    if path.suffix.lower() not in (".csv", ".tsv", ".txt"):
        return False
    first = head.splitlines()[0] if head else ""
    columns = [c.strip().strip('"') for c in first.split(_delimiter(head))]
    return _find(columns, TIME_NAMES) is not None and _glucose_column(columns) is not None


def read(path: Path, patient_id: str | None = None) -> RawData:
    """Read a generic CSV (one or several patients)."""
    path = check_file(Path(path))
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        head = fh.read(4096)
    sep = _delimiter(head)
    try:
        table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.ParserError as exc:
        raise DataError(f"malformed CSV ({exc})", file=path, expected=f"'{sep}'-separated rows") from None
    table.columns = [c.strip() for c in table.columns]
    time_col = _find(table.columns, TIME_NAMES)
    glucose_col = _glucose_column(table.columns)
    if time_col is None or glucose_col is None:
        raise DataError("missing time or glucose column", file=path, row=1,
                        expected="a time column (time, timestamp, datetime, ...) and a glucose column "
                                 "(glucose, cgm, sgv, bg, ...)", found=", ".join(table.columns[:12]))
    if table.empty:
        raise DataError("no data rows", file=path, expected="rows after the header")
    rows = pd.Series(np.arange(len(table)) + 2)
    name = _norm(glucose_col)
    units = "mmol/L" if "mmol" in name else "mg/dL" if name.endswith(("mgdl", "mg")) else None
    notes = []
    raw_time = table[time_col].str.strip()
    if raw_time.str.fullmatch(r"\d{9,13}(\.\d+)?").all():
        number = pd.to_numeric(raw_time)
        times = pd.to_datetime(number, unit="ms" if number.max() > 1e11 else "s")
        notes.append(f"{path.name}: epoch timestamps read as UTC")
    else:
        times = parse_times(raw_time, rows, file=path, column=time_col, formats=TIME_FORMATS, choose="shortest")

    pid_col = _find(table.columns, PATIENT_NAMES)
    if pid_col is not None and table[pid_col].str.strip().ne("").all():
        pid = table[pid_col].str.strip()
        for value in pd.unique(pid):
            validate_id(value)
    else:
        pid = pd.Series(validate_id(patient_id or id_from_name(path.name)), index=table.index)
    glucose = event_frame(pid, times, parse_numbers(table[glucose_col], rows, file=path, column=glucose_col),
                          rows, "value")
    carbs = insulin = None
    carb_col = _find(table.columns, CARB_NAMES)
    if carb_col is not None:
        carbs = event_frame(pid, times, parse_numbers(table[carb_col], rows, file=path, column=carb_col), rows, "carbs")
    insulin_col = _find(table.columns, INSULIN_NAMES)
    if insulin_col is not None:
        insulin = event_frame(pid, times, parse_numbers(table[insulin_col], rows, file=path, column=insulin_col),
                              rows, "insulin")
    used = {time_col, glucose_col, carb_col, insulin_col, pid_col} - {None}
    unused = [c for c in table.columns if c not in used]
    if unused:
        notes.append(f"{path.name}: columns not used: {', '.join(unused[:10])}")
    patients = pd.DataFrame({"patient_id": sorted(pd.unique(pid)), "age_group": "unknown", "source": "CSV"})
    return RawData(file=str(path), format=FORMAT, glucose=glucose, units=units, patients=patients,
                   carbs=carbs, insulin=insulin, notes=notes)
