"""BrisT1D ("Blood Glucose Prediction" competition) wide CSV.

Each row is one participant (``p_num``) at a time of day (``time``, no date) with the
previous six hours in 5-minute columns: ``bg-5:55`` ... ``bg-0:00`` (mmol/L),
``insulin-*`` (U), ``carbs-*`` (g), ``hr-*``, ``steps-*``, ... . Series are rebuilt per
participant: rows are ordered by the number in ``id`` (``p01_123``), a new day starts when
the time of day goes backwards, and each row contributes only the lag columns newer than
the previous row's time (all of them after a break), so overlapping windows are read once.
Dates are not in the data; they are counted from `BASE_DATE`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..ingest import RawData, check_file, event_frame, parse_numbers, parse_times, require_columns
from ..schema import DataError, validate_id

FORMAT = "bris"
DESCRIPTION = "BrisT1D wide CSV"
BASE_DATE = pd.Timestamp("2020-01-01")
_LAG = re.compile(r"^(bg|insulin|carbs)-(\d+):(\d\d)$")
WINDOW_MIN = 360


def sniff(path: Path, head: str) -> bool:
    first = head.splitlines()[0] if head else ""
    return "bg-0:00" in first and "p_num" in first


def _lag_columns(columns) -> dict[str, list[tuple[str, int]]]:
    lags: dict[str, list[tuple[str, int]]] = {"bg": [], "insulin": [], "carbs": []}
    for col in columns:
        m = _LAG.match(col)
        if m:
            lags[m.group(1)].append((col, int(m.group(2)) * 60 + int(m.group(3))))
    return lags


def read(path: Path, patient_id: str | None = None) -> RawData:
    """Read a BrisT1D train or test CSV (all participants in it)."""
    path = check_file(Path(path))
    header = pd.read_csv(path, nrows=0).columns
    require_columns(header, ("p_num", "time", "bg-0:00"), file=path, row=1)
    lags = _lag_columns(header)
    usecols = ["p_num", "time"] + (["id"] if "id" in header else []) + [c for v in lags.values() for c, _ in v]
    try:
        raw = pd.read_csv(path, usecols=usecols, engine="pyarrow", dtype={"p_num": str, "time": str, "id": str})
    except Exception as exc:  # pyarrow reports the offending line in its message
        raise DataError(f"unreadable CSV ({exc})", file=path, expected="BrisT1D columns") from None
    if raw.empty:
        raise DataError("no data rows", file=path, expected="rows after the header")
    rows = pd.Series(np.arange(2, len(raw) + 2))
    for pid in pd.unique(raw["p_num"].dropna()):
        validate_id(str(pid))
    if raw["p_num"].isna().any():
        bad = int(np.flatnonzero(raw["p_num"].isna().to_numpy())[0])
        raise DataError("missing participant", file=path, row=int(rows.iloc[bad]), column="p_num",
                        expected="a participant id such as p01")
    tod = parse_times(raw["time"], rows, file=path, column="time", formats=("%H:%M:%S", "%H:%M"))
    if tod.isna().any():
        bad = int(np.flatnonzero(tod.isna().to_numpy())[0])
        raise DataError("missing time of day", file=path, row=int(rows.iloc[bad]), column="time", expected="HH:MM:SS")
    minute = (tod.dt.hour * 60 + tod.dt.minute).to_numpy()

    order_key = (raw["id"].str.extract(r"_(\d+)$")[0].astype(float) if "id" in raw else pd.Series(np.arange(len(raw))))
    order = np.lexsort((np.arange(len(raw)), order_key.to_numpy(), raw["p_num"].to_numpy()))
    raw, rows, minute = raw.iloc[order].reset_index(drop=True), rows.iloc[order].reset_index(drop=True), minute[order]
    pid = raw["p_num"].to_numpy()
    first_row = np.r_[True, pid[1:] != pid[:-1]]
    back = np.r_[False, minute[1:] < minute[:-1]] & ~first_row
    day = pd.Series(back.astype(int)).groupby(pid).cumsum().to_numpy()
    anchor = BASE_DATE + pd.to_timedelta(day * 1440 + minute, unit="m")
    since_prev = np.r_[np.inf, np.diff(anchor.to_numpy()).astype("timedelta64[m]").astype(float)]
    since_prev[first_row] = np.inf

    def melt(signal: str) -> pd.DataFrame:
        cols = sorted(lags[signal], key=lambda c: c[1])
        if not cols:
            return event_frame(pid[:0], [], [], [], "value")
        offsets = np.array([o for _, o in cols])
        values = np.column_stack([parse_numbers(raw[c], rows, file=path, column=c).to_numpy() for c, _ in cols])
        new = offsets[None, :] < np.minimum(since_prev, WINDOW_MIN)[:, None]  # not covered by the previous row
        r, c = np.nonzero(new & ~np.isnan(values))
        times = anchor.to_numpy()[r] - offsets[c].astype("timedelta64[m]")
        events = event_frame(pid[r], times, values[r, c], rows.to_numpy()[r], "value")
        return events.drop_duplicates(["patient_id", "time"])

    glucose = melt("bg")
    carbs = melt("carbs").rename(columns={"value": "carbs"})
    insulin = melt("insulin").rename(columns={"value": "insulin"})
    ids = sorted(pd.unique(pid))
    if patient_id and len(ids) == 1:
        glucose["patient_id"] = carbs["patient_id"] = insulin["patient_id"] = patient_id
        ids = [patient_id]
    other = sorted({c.split("-")[0] for c in header if "-" in c and not _LAG.match(c) and c != "bg+1:00"})
    notes = [f"{path.name}: dates rebuilt from row order (BrisT1D has time of day only), "
             f"day 1 = {BASE_DATE.date()}"]
    if other:
        notes.append(f"{path.name}: signals not used in the canonical frame: {', '.join(other)}")
    patients = pd.DataFrame({"patient_id": ids, "age_group": "adult", "source": "BrisT1D"})
    return RawData(file=str(path), format=FORMAT, glucose=glucose, units="mmol/L", patients=patients,
                   carbs=carbs if lags["carbs"] else None, insulin=insulin if lags["insulin"] else None,
                   notes=notes)
