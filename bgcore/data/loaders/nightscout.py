"""Nightscout JSON: ``entries`` (sensor glucose) and ``treatments`` (insulin, carbs, temp basal).

Accepted layouts: a folder with ``entries.json`` (and optionally ``treatments.json``); a
JSON array of entries; or an object ``{"entries": [...], "treatments": [...]}``.
Entries of type ``sgv`` give glucose (``sgv`` in mg/dL, ``date`` in epoch ms). Treatments
give ``insulin`` (U, instant), ``carbs`` (g) and ``Temp Basal`` (``rate`` or ``absolute``
in U/h for ``duration`` minutes). Nightscout stores UTC; local time comes from each
record's ``utcOffset`` (minutes), else the offset written in ``dateString``, else the
entries' most common offset, else UTC (and the report says so). The scheduled basal
profile is not in these collections, so outside temp basals insulin counts boluses only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..ingest import RawData, check_file, event_frame, id_from_name, parse_numbers, require_columns
from ..schema import DataError, validate_id

FORMAT = "nightscout"
DESCRIPTION = "Nightscout JSON"


def sniff(path: Path, head: str) -> bool:
    text = head.lstrip()
    return path.suffix.lower() == ".json" and text[:1] in "[{" and ('"sgv"' in head or '"entries"' in head)


def is_folder(path: Path) -> bool:
    return path.is_dir() and (path / "entries.json").is_file()


def _load_json(path: Path):
    check_file(path)
    try:
        with open(path, encoding="utf-8-sig") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise DataError(f"malformed JSON ({exc.msg})", file=path, row=f"line {exc.lineno}, column {exc.colno}",
                        expected="a Nightscout JSON export") from None


def _records(data, what: str, path: Path) -> pd.DataFrame:
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError(f"{what} is not a list of records", file=path, expected=f"a JSON array of {what} objects",
                        found=type(data).__name__)
    frame = pd.DataFrame.from_records(data)
    frame["row"] = [f"{what} {i}" for i in range(1, len(frame) + 1)]
    return frame


def _utc(frame: pd.DataFrame, column: str, path: Path, epoch_ms: bool = False) -> pd.Series:
    """UTC timestamps (naive) of a column of ISO strings or epoch milliseconds."""
    values = frame[column]
    if epoch_ms:
        ms = parse_numbers(values, frame["row"], file=path, column=column)
        return pd.to_datetime(ms, unit="ms", errors="coerce")
    parsed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    bad = np.flatnonzero((parsed.isna() & values.notna()).to_numpy())
    if bad.size:
        raise DataError("unparseable timestamp", file=path, row=frame["row"].iloc[bad[0]], column=column,
                        expected="an ISO 8601 date-time", found=str(values.iloc[bad[0]]))
    return parsed.dt.tz_localize(None)


def _written_offset(strings: pd.Series) -> pd.Series:
    """Local UTC offset in minutes written in ISO strings (``+01:00``); NaN for none or ``Z``.

    ``Z`` says the string is in UTC, not what the local time was.
    """
    m = strings.astype("string").str.extract(r"([+-]\d\d:?\d\d)$")[0]
    sign = np.where((m.str[0] == "-").fillna(False).to_numpy(dtype=bool), -1, 1)
    digits = m.str.replace(":", "").str[1:]
    minutes = pd.to_numeric(digits.str[:2], errors="coerce") * 60 + pd.to_numeric(digits.str[2:], errors="coerce")
    return pd.Series(sign * minutes.to_numpy(dtype=float), index=strings.index, dtype=float)


def _offsets(frame: pd.DataFrame, string_column: str) -> pd.Series:
    offset = pd.to_numeric(frame["utcOffset"], errors="coerce") if "utcOffset" in frame else pd.Series(np.nan, index=frame.index)
    if string_column in frame:
        offset = offset.fillna(_written_offset(frame[string_column]))
    return offset


def read(path: Path, patient_id: str | None = None) -> RawData:
    """Read a Nightscout folder or JSON file (one patient)."""
    path = Path(path)
    if path.is_dir():
        entries_data = _load_json(path / "entries.json")
        treat_path = path / "treatments.json"
        treatments_data = _load_json(treat_path) if treat_path.is_file() else None
        source = path / "entries.json"
    else:
        data = _load_json(path)
        source = path
        if isinstance(data, dict):
            require_columns(data.keys(), ("entries",), file=path, what="keys")
            entries_data, treatments_data = data["entries"], data.get("treatments")
        else:
            entries_data, treatments_data = data, None
    pid = validate_id(patient_id or id_from_name(path.name))
    entries = _records(entries_data, "entry", source)
    if entries.empty:
        raise DataError("no entries", file=source, expected="sensor glucose entries")
    require_columns(entries.columns, ("sgv",), file=source, what="fields in entries")
    if "type" in entries:
        entries = entries[entries["type"].fillna("sgv") == "sgv"]
    if "date" in entries:
        utc = _utc(entries, "date", source, epoch_ms=True)
    else:
        require_columns(entries.columns, ("dateString",), file=source, what="fields in entries (date or dateString)")
        utc = _utc(entries, "dateString", source)
    offset = _offsets(entries, "dateString")
    notes = []
    default_offset = float(offset.mode().iloc[0]) if offset.notna().any() else 0.0
    if offset.isna().all():
        notes.append(f"{source.name}: no UTC offsets in the data; times are UTC")
    local = utc + pd.to_timedelta(offset.fillna(default_offset), unit="m")
    sgv = parse_numbers(entries["sgv"], entries["row"], file=source, column="sgv")
    glucose = event_frame(pid, local, sgv, entries["row"], "value")

    carbs = insulin = segments = None
    if treatments_data is not None:
        tsource = path / "treatments.json" if path.is_dir() else path
        treat = _records(treatments_data, "treatment", tsource)
        if not treat.empty:
            time_col = "created_at" if "created_at" in treat else "timestamp"
            require_columns(treat.columns, (time_col,), file=tsource, what="fields in treatments")
            t_local = _utc(treat, time_col, tsource) + pd.to_timedelta(
                _offsets(treat, time_col).fillna(default_offset), unit="m")
            kind = treat["eventType"].fillna("") if "eventType" in treat else pd.Series("", index=treat.index)
            temp = (kind == "Temp Basal").to_numpy()
            if "insulin" in treat:
                dose = parse_numbers(treat["insulin"], treat["row"], file=tsource, column="insulin")
                insulin = event_frame(pid, t_local[~temp], dose[~temp], treat["row"][~temp], "insulin")
            if "carbs" in treat:
                grams = parse_numbers(treat["carbs"], treat["row"], file=tsource, column="carbs")
                carbs = event_frame(pid, t_local, grams, treat["row"], "carbs")
            if temp.any():
                rate_col = "absolute" if "absolute" in treat else "rate"
                require_columns(treat.columns, (rate_col, "duration"), file=tsource, what="fields of Temp Basal")
                rate = parse_numbers(treat.loc[temp, rate_col], treat["row"][temp], file=tsource, column=rate_col)
                minutes = parse_numbers(treat.loc[temp, "duration"], treat["row"][temp], file=tsource, column="duration")
                temps = pd.DataFrame({"start": t_local[temp], "rate": rate,
                                      "end": t_local[temp] + pd.to_timedelta(minutes, unit="m")})
                temps = temps.dropna().sort_values("start")
                # A new temp basal cancels the running one.
                temps["end"] = np.minimum(temps["end"], temps["start"].shift(-1).fillna(temps["end"]))
                hours = (temps["end"] - temps["start"]).dt.total_seconds() / 3600
                segments = pd.DataFrame({"patient_id": pid, "start": temps["start"], "end": temps["end"],
                                         "insulin": temps["rate"] * hours})
            notes.append(f"{tsource.name}: the scheduled basal profile is not in the treatments; outside temp "
                         "basals insulin counts boluses only")
    patients = pd.DataFrame([{"patient_id": pid, "age_group": "unknown", "source": "Nightscout"}])
    return RawData(file=str(source), format=FORMAT, glucose=glucose, units="mg/dL", patients=patients,
                   carbs=carbs, insulin=insulin, insulin_segments=segments, notes=notes)
