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
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

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
    text_columns = {c: pa.string() for c in ("p_num", "time", "id")}
    try:  # pyarrow straight to numpy: the file is wide (hundreds of lag columns)
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(include_columns=usecols,
                                                                         column_types=text_columns))
    except pa.ArrowInvalid as exc:  # its message names the offending row
        raise DataError(f"unreadable CSV ({exc})", file=path, expected="BrisT1D columns") from None
    if table.num_rows == 0:
        raise DataError("no data rows", file=path, expected="rows after the header")
    rows = pd.Series(np.arange(2, table.num_rows + 2))
    p_num = table.column("p_num").to_pandas()
    if p_num.isna().any():
        bad = int(np.flatnonzero(p_num.isna().to_numpy())[0])
        raise DataError("missing participant", file=path, row=int(rows.iloc[bad]), column="p_num",
                        expected="a participant id such as p01")
    for pid in pd.unique(p_num):
        validate_id(str(pid))
    tod = parse_times(table.column("time").to_pandas(), rows, file=path, column="time", formats=("%H:%M:%S", "%H:%M"))
    if tod.isna().any():
        bad = int(np.flatnonzero(tod.isna().to_numpy())[0])
        raise DataError("missing time of day", file=path, row=int(rows.iloc[bad]), column="time", expected="HH:MM:SS")
    minute = (tod.dt.hour * 60 + tod.dt.minute).to_numpy()

    if "id" in usecols:
        suffix = pc.struct_field(pc.extract_regex(table.column("id"), r"_(?P<n>\d+)$"), "n")
        order_key = pc.cast(suffix, pa.float64()).to_numpy(zero_copy_only=False)
    else:
        order_key = np.arange(table.num_rows, dtype=float)
    order = np.lexsort((np.arange(table.num_rows), order_key, p_num.to_numpy()))
    rows, minute = rows.to_numpy()[order], minute[order]
    pid = p_num.to_numpy()[order]
    first_row = np.r_[True, pid[1:] != pid[:-1]]
    back = np.r_[False, minute[1:] < minute[:-1]] & ~first_row
    day = pd.Series(back.astype(int)).groupby(pid).cumsum().to_numpy()
    anchor = (BASE_DATE + pd.to_timedelta(day * 1440 + minute, unit="m")).to_numpy()
    since_prev = np.r_[np.inf, np.diff(anchor).astype("timedelta64[m]").astype(float)]
    since_prev[first_row] = np.inf

    def column(name: str) -> np.ndarray:
        values = table.column(name)
        if pa.types.is_floating(values.type) or pa.types.is_integer(values.type) or pa.types.is_null(values.type):
            return values.to_numpy(zero_copy_only=False).astype(float)
        return parse_numbers(values.to_pandas(), pd.Series(np.arange(2, table.num_rows + 2)), file=path,
                             column=name).to_numpy()

    def melt(signal: str) -> pd.DataFrame:
        cols = sorted(lags[signal], key=lambda c: c[1])
        if not cols:
            return event_frame(pid[:0], [], [], [], "value")
        offsets = np.array([o for _, o in cols])
        values = np.column_stack([column(c) for c, _ in cols])[order]
        new = offsets[None, :] < np.minimum(since_prev, WINDOW_MIN)[:, None]  # not covered by the previous row
        r, c = np.nonzero(new & ~np.isnan(values))
        times = anchor[r] - offsets[c].astype("timedelta64[m]")
        events = event_frame(pid[r], times, values[r, c], rows[r], "value")
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
