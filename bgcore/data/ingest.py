"""From what a loader read to the canonical frame: units, validation, duplicates, the grid.

Loaders parse their format into a `RawData` (events at their own timestamps, glucose in
the file's units, a source row for every value) and call `finalise`, which is the one
place where units are resolved, values validated and everything put on the 5-minute grid.
The helpers `parse_times`, `parse_numbers` and `check_file` give every loader the same
error messages.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .schema import (GLUCOSE_MAX_MGDL, GLUCOSE_MIN_MGDL, MGDL_PER_MMOLL, PATIENT_COLUMNS, STEP,
                     STEP_MINUTES, DataError, validate_frame, validate_id)

DEFAULT_MAX_FILE_MB = 256
LONG_ACTING_HOURS = 24
"""Long-acting (basal) injections are spread evenly over this many hours."""
MMOL_DETECTION_LIMIT = 35.0
"""Glucose whose 95th percentile is at or below this is taken to be in mmol/L."""


def max_file_bytes() -> int:
    """Largest file an import accepts (``BGCORE_MAX_FILE_MB``, default 256 MB)."""
    return int(float(os.environ.get("BGCORE_MAX_FILE_MB", DEFAULT_MAX_FILE_MB)) * 1024 * 1024)


@dataclass
class RawData:
    """Events as a loader read them, before units, validation and the grid.

    Every event frame has ``patient_id``, ``time`` (naive local datetime) and ``row``
    (the source line or event label, for error messages).

    Attributes
    ----------
    glucose : DataFrame
        Readings: ``value`` in `units`.
    units : str or None
        Units the file states for glucose (``"mg/dL"``, ``"mmol/L"``) or None if it does not.
    carbs, insulin : DataFrame or None
        Instant events with ``carbs`` (g) or ``insulin`` (U); None when the format has no such data.
    insulin_segments : DataFrame or None
        Insulin delivered at a constant rate: ``start``, ``end``, ``insulin`` (U in the segment).
    patients : DataFrame
        One row per patient: ``patient_id``, ``age_group``, ``source`` and any extra metadata.
    """

    file: str
    format: str
    glucose: pd.DataFrame
    units: str | None
    patients: pd.DataFrame
    carbs: pd.DataFrame | None = None
    insulin: pd.DataFrame | None = None
    insulin_segments: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    """What an import detected and did, for the command line and the dashboard."""

    format: str
    files: list[str]
    units: str
    patients: int
    readings: int
    grid_rows: int
    days: float
    cgm_present_pct: float
    gaps_over_30min: int
    longest_gap_h: float
    median_interval_min: float
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        out = [f"format: {self.format}  ({len(self.files)} file(s))",
               f"units: {self.units}",
               f"patients: {self.patients}, glucose readings: {self.readings}, "
               f"5-min rows: {self.grid_rows}, days: {self.days:.1f}",
               f"CGM present: {self.cgm_present_pct:.1f}% of steps, median sampling "
               f"{self.median_interval_min:g} min, gaps > 30 min: {self.gaps_over_30min} "
               f"(longest {self.longest_gap_h:.1f} h)"]
        out += [f"note: {n}" for n in self.notes]
        return out


def id_from_name(text: str) -> str:
    """A valid patient id made from a file or folder name."""
    clean = re.sub(r"[^A-Za-z0-9_.#-]+", "_", Path(str(text)).stem).strip("._-") or "patient"
    return clean[:64]


def event_frame(patient_id, time, values, rows, column: str) -> pd.DataFrame:
    """An event frame (``patient_id``, ``time``, `column`, ``row``) without missing values."""
    frame = pd.DataFrame({"patient_id": patient_id, "time": time, column: values, "row": rows})
    return frame.dropna(subset=["time", column]).reset_index(drop=True)


def check_file(path: Path, max_bytes: int | None = None) -> Path:
    """Raise `DataError` unless `path` is a readable, non-empty file within the size limit."""
    path = Path(path)
    if not path.exists():
        raise DataError("no such file", file=path)
    if not path.is_file():
        raise DataError("not a file", file=path)
    size = path.stat().st_size
    if size == 0:
        raise DataError("file is empty", file=path, expected="glucose data")
    limit = max_file_bytes() if max_bytes is None else max_bytes
    if size > limit:
        raise DataError("file is too large", file=path,
                        expected=f"at most {limit / 2**20:.0f} MB (set BGCORE_MAX_FILE_MB)",
                        found=f"{size / 2**20:.1f} MB")
    return path


def parse_times(values: pd.Series, rows: pd.Series, *, file, column: str,
                formats: tuple[str, ...] = (), choose: str = "first") -> pd.Series:
    """Parse timestamps vectorised; raise `DataError` naming the first bad row.

    Parameters
    ----------
    values : Series of str
        Raw timestamps (empty or NaN entries stay NaT).
    rows : Series
        Source row of each value.
    formats : tuple of str
        strftime formats to try; empty means ISO 8601. Timezone offsets are dropped after
        converting to the local wall time written in the string.
    choose : {"first", "shortest"}
        ``"first"``: each value takes the first format that parses it. ``"shortest"``: one
        format for the whole column, among those that parse every value the one whose
        times span the shortest period (this resolves day-first vs month-first dates).
    """
    present = values.notna() & (values.astype(str).str.strip() != "")
    text = values.where(present).astype("string").str.strip()

    def attempt(fmt):
        parsed = pd.to_datetime(text, format=fmt, errors="coerce")
        return parsed.dt.tz_localize(None) if getattr(parsed.dt, "tz", None) is not None else parsed

    formats = formats or ("ISO8601",)
    if choose == "first":
        # Row by row, the first format that fits (exports mix "T" and space separators).
        parsed = attempt(formats[0])
        for fmt in formats[1:]:
            if not (present & parsed.isna()).any():
                break
            parsed = parsed.fillna(attempt(fmt))
        candidates = [parsed] if not (present & parsed.isna()).any() else []
        best = parsed
    else:
        # A spread-out sample rules most formats out before the full column is parsed.
        sample = text[present].iloc[:: max(1, int(present.sum()) // 500)]
        fits = [f for f in formats if pd.to_datetime(sample, format=f, errors="coerce").notna().all()]
        tried = [attempt(fmt) for fmt in (fits or formats)]
        candidates = [p for p in tried if not (present & p.isna()).any()]
        best = max(tried, key=lambda p: int(p.notna().sum()))
    if not candidates:
        bad = np.flatnonzero((present & best.isna()).to_numpy())[0]
        raise DataError("unparseable timestamp", file=file, row=rows.iloc[bad], column=column,
                        expected=" or ".join(formats) if formats != ("ISO8601",) else "an ISO 8601 date-time",
                        found=str(values.iloc[bad]))
    if len(candidates) == 1:
        return candidates[0]
    spans = [(c.max() - c.min()) if c.notna().any() else pd.Timedelta(0) for c in candidates]
    return candidates[int(np.argmin(spans))]


def parse_numbers(values: pd.Series, rows: pd.Series, *, file, column: str,
                  named: dict[str, float] | None = None) -> pd.Series:
    """Parse numbers vectorised; empty stays NaN; raise `DataError` at the first non-number.

    `named` maps special strings (case-insensitive, e.g. ``{"low": 40}``) to values.
    """
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(float)
    text = values.astype("string").str.strip()
    if named:
        mapped = text.str.lower().map({k.lower(): v for k, v in named.items()})
        text = text.where(mapped.isna(), mapped.astype("string"))
    present = text.notna() & (text != "")
    numbers = pd.to_numeric(text.where(present), errors="coerce").astype(float)
    bad = np.flatnonzero((present & numbers.isna()).to_numpy())
    if bad.size:
        raise DataError("not a number", file=file, row=rows.iloc[bad[0]], column=column,
                        expected="a number" + (f" or one of {sorted(named)}" if named else ""),
                        found=str(values.iloc[bad[0]]))
    return numbers


def require_columns(columns, required, *, file, row=None, what="columns") -> None:
    """Raise `DataError` listing the `required` columns missing from `columns`."""
    missing = [c for c in required if c not in set(columns)]
    if missing:
        raise DataError(f"missing {what}: " + ", ".join(repr(c) for c in missing), file=file,
                        row=row, expected=", ".join(repr(c) for c in required),
                        found=", ".join(map(str, list(columns)[:12])))


def detect_units(mg_or_mmol: np.ndarray) -> str:
    """Guess glucose units from the values: mmol/L if the 95th percentile is <= 35."""
    values = np.asarray(mg_or_mmol, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return "mg/dL"
    return "mmol/L" if np.percentile(values, 95) <= MMOL_DETECTION_LIMIT else "mg/dL"


def resolve_units(values: np.ndarray, declared: str | None) -> tuple[np.ndarray, str, str | None]:
    """Return glucose in mg/dL, the units used, and a note when detection overruled the file."""
    detected = detect_units(values)
    note = None
    if declared is None:
        note = f"glucose units not stated in the file; values look like {detected}"
    elif declared != detected:
        note = (f"glucose column says {declared} but the values look like {detected} "
                f"(95th percentile {np.nanpercentile(values, 95):.1f}); read as {detected}")
    factor = MGDL_PER_MMOLL if detected == "mmol/L" else 1.0
    if detected == "mmol/L":
        note = (note + "; " if note else "") + f"converted mmol/L to mg/dL (x {MGDL_PER_MMOLL})"
    return np.asarray(values, dtype=float) * factor, detected, note


def spread_segments(segments: pd.DataFrame) -> pd.DataFrame:
    """Turn constant-rate deliveries into per-step amounts on the 5-minute grid.

    Parameters
    ----------
    segments : DataFrame
        ``patient_id``, ``start``, ``end`` (datetimes, ``end > start``), ``insulin`` (U over
        the whole segment).

    Returns
    -------
    DataFrame
        ``patient_id``, ``time`` (step label), ``insulin`` (U delivered in that step), the
        exact overlap of each segment with each step interval ``(t - 5 min, t]``.
    """
    seg = segments[segments["end"] > segments["start"]]
    if seg.empty:
        return pd.DataFrame({"patient_id": pd.Series(dtype=object), "time": pd.Series(dtype="datetime64[ns]"),
                             "insulin": pd.Series(dtype=float)})
    start = seg["start"].to_numpy("datetime64[ns]")
    end = seg["end"].to_numpy("datetime64[ns]")
    step = np.timedelta64(STEP_MINUTES, "m").astype("timedelta64[ns]")
    first = pd.DatetimeIndex(start).ceil(STEP).to_numpy()
    first = np.where(first == start, first + step, first)  # step (s-5, s] has no overlap
    last = pd.DatetimeIndex(end).ceil(STEP).to_numpy()
    counts = ((last - first) // step).astype(np.int64) + 1
    idx = np.repeat(np.arange(len(seg)), counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    label = first[idx] + within * step
    lo = np.maximum(label - step, start[idx])
    hi = np.minimum(label, end[idx])
    overlap = (hi - lo) / (end[idx] - start[idx])
    return pd.DataFrame({"patient_id": seg["patient_id"].to_numpy()[idx], "time": label,
                         "insulin": seg["insulin"].to_numpy(dtype=float)[idx] * overlap})


def long_acting_segments(patient_id, times: pd.Series, doses: pd.Series) -> pd.DataFrame:
    """Segments for long-acting injections: each dose spread over `LONG_ACTING_HOURS`."""
    seg = pd.DataFrame({"patient_id": patient_id, "start": times,
                        "end": times + pd.Timedelta(hours=LONG_ACTING_HOURS), "insulin": doses})
    return seg.dropna().reset_index(drop=True)


def _drop_exact_duplicates(events: pd.DataFrame, value: str, what: str, notes: list[str]) -> pd.DataFrame:
    dup = events.duplicated(["patient_id", "time", value])
    if dup.any():
        notes.append(f"{int(dup.sum())} duplicated {what} rows (same time and value) dropped")
    return events[~dup]


def _build_grid(spans: pd.DataFrame) -> pd.MultiIndex:
    """Every 5-minute step from each patient's first to last step, vectorised."""
    counts = ((spans["end"] - spans["start"]) // STEP).astype(np.int64).to_numpy() + 1
    pid = np.repeat(spans.index.to_numpy(), counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    times = np.repeat(spans["start"].to_numpy(), counts) + within * np.timedelta64(STEP_MINUTES, "m")
    return pd.MultiIndex.from_arrays([pid, times], names=["patient_id", "time"])


def finalise(raws: list[RawData]) -> tuple[pd.DataFrame, pd.DataFrame, ImportReport]:
    """Validate, convert and regularise what the loaders read into the canonical frame.

    Returns
    -------
    frame, patients, report
        The canonical long frame, the patient table and what was done.

    Raises
    ------
    DataError
        No glucose readings, glucose outside 20-600 mg/dL, negative amounts or bad ids.

    Notes
    -----
    A patient id found in several parts (OhioT1DM training and testing files) is one
    patient: the records are merged.
    """
    notes: list[str] = []
    glucose_parts, carb_parts, insulin_parts, seg_parts, patient_parts = [], [], [], [], []
    units_seen = set()
    for raw in raws:
        notes += raw.notes
        g = raw.glucose.dropna(subset=["time", "value"])
        if g.empty:
            raise DataError("no glucose readings", file=raw.file, expected="at least one timestamped reading")
        mgdl, units, note = resolve_units(g["value"].to_numpy(), raw.units)
        units_seen.add(units)
        if note:
            notes.append(f"{Path(raw.file).name}: {note}")
        bad = np.flatnonzero((mgdl < GLUCOSE_MIN_MGDL) | (mgdl > GLUCOSE_MAX_MGDL))
        if bad.size:
            raise DataError(f"glucose outside the plausible range ({bad.size} value(s))", file=raw.file,
                            row=g["row"].iloc[bad[0]], column="glucose",
                            expected=f"{GLUCOSE_MIN_MGDL:g}-{GLUCOSE_MAX_MGDL:g} mg/dL",
                            found=f"{g['value'].iloc[bad[0]]:g} {units}")
        glucose_parts.append(pd.DataFrame({"patient_id": g["patient_id"].astype(str).to_numpy(),
                                           "time": g["time"].to_numpy(), "cgm": mgdl}))
        for events, col, parts in ((raw.carbs, "carbs", carb_parts), (raw.insulin, "insulin", insulin_parts)):
            if events is None or events.empty:
                continue
            events = events.dropna(subset=["time", col])
            neg = np.flatnonzero(events[col].to_numpy() < 0)
            if neg.size:
                raise DataError("negative amount", file=raw.file, row=events["row"].iloc[neg[0]],
                                column=col, expected=">= 0", found=float(events[col].iloc[neg[0]]))
            parts.append(events[["patient_id", "time", col]].astype({"patient_id": str}))
        if raw.insulin_segments is not None:
            seg_parts.append(raw.insulin_segments.astype({"patient_id": str}))
        patient_parts.append(raw.patients.astype({"patient_id": str}))

    patients = pd.concat(patient_parts, ignore_index=True)
    for pid in patients["patient_id"]:
        validate_id(pid)
    repeated = patients["patient_id"].value_counts()
    for pid, count in repeated[repeated > 1].items():
        notes.append(f"patient {pid} combined from {count} files")
    patients = patients.drop_duplicates("patient_id", keep="first")

    glucose = pd.concat(glucose_parts, ignore_index=True)
    glucose = _drop_exact_duplicates(glucose, "cgm", "glucose", notes)
    same_time = glucose.duplicated(["patient_id", "time"], keep=False)
    if same_time.any():
        notes.append(f"{int(same_time.sum())} glucose readings share a timestamp with a different "
                     "value; averaged")
    interval = (glucose.sort_values(["patient_id", "time"]).groupby("patient_id")["time"].diff()
                .dropna().dt.total_seconds() / 60)
    interval = interval[interval > 0]
    median_interval = float(interval.median()) if len(interval) else float(STEP_MINUTES)

    glucose["time"] = glucose["time"].dt.ceil(STEP)
    per_step = glucose.groupby(["patient_id", "time"])["cgm"].agg(["mean", "size"])
    shared = int((per_step["size"] - 1).clip(lower=0).sum())
    if shared and median_interval < STEP_MINUTES - 0.5:
        notes.append(f"sampling every {median_interval:g} min: {shared} readings averaged into "
                     "their 5-minute step")
    elif shared:
        notes.append(f"{shared} readings fell into an already filled 5-minute step; averaged")
    if median_interval > STEP_MINUTES + 0.5:
        notes.append(f"sampling every {median_interval:g} min; 5-minute steps without a reading are NaN")

    spans = per_step.reset_index().groupby("patient_id")["time"].agg(start="min", end="max")
    grid = _build_grid(spans)
    frame = pd.DataFrame(index=grid)
    frame["cgm"] = per_step["mean"].reindex(grid).to_numpy()

    def on_grid(events: pd.DataFrame, col: str, what: str) -> np.ndarray:
        """Sum `col` per step; zero on steps without events for patients with such records, else NaN."""
        events = events.assign(time=events["time"].dt.ceil(STEP))
        summed = events.groupby(["patient_id", "time"])[col].sum()
        outside = int((~summed.index.isin(grid)).sum())
        if outside:
            notes.append(f"{outside} {what} steps outside the glucose record were left out")
        known = grid.get_level_values("patient_id").isin(pd.unique(events["patient_id"]))
        return np.where(known, summed.reindex(grid, fill_value=0.0).to_numpy(), np.nan)

    def instant(parts, col, what):
        if not parts:
            return np.full(len(grid), np.nan)
        events = _drop_exact_duplicates(pd.concat(parts, ignore_index=True), col, what, notes)
        return on_grid(events, col, what)

    frame["carbs"] = instant(carb_parts, "carbs", "carbohydrate")
    insulin = instant(insulin_parts, "insulin", "insulin")
    if seg_parts:
        segments = pd.concat(seg_parts, ignore_index=True)
        if not segments.empty:
            extra = on_grid(spread_segments(segments), "insulin", "basal/extended insulin")
            insulin = np.where(np.isnan(insulin), extra, np.nan_to_num(insulin) + np.nan_to_num(extra))
    for col, values in (("carbs", frame["carbs"].to_numpy()), ("insulin", insulin)):
        unknown = pd.unique(grid.get_level_values("patient_id")[np.isnan(values)])
        if len(unknown):
            notes.append(f"no {col} records for {len(unknown)} patient(s); {col} left unknown (NaN)")
    frame["insulin"] = insulin
    frame = frame.reset_index()
    frame["patient_id"] = pd.Categorical(frame["patient_id"], categories=sorted(spans.index))
    frame = frame.sort_values(["patient_id", "time"], ignore_index=True)

    for col in PATIENT_COLUMNS:
        if col not in patients:
            patients[col] = "unknown"
    patients = patients[patients["patient_id"].isin(spans.index)].sort_values("patient_id", ignore_index=True)
    validate_frame(frame, patients)

    gap_lengths = _gap_lengths(frame)
    report = ImportReport(
        format=", ".join(sorted({r.format for r in raws})),
        files=[r.file for r in raws],
        units=" and ".join(sorted(units_seen)),
        patients=len(spans),
        readings=int(len(glucose)),
        grid_rows=int(len(frame)),
        days=float(len(frame) * STEP_MINUTES / 1440),
        cgm_present_pct=float(100 * frame["cgm"].notna().mean()),
        gaps_over_30min=int((gap_lengths > 30 // STEP_MINUTES).sum()),
        longest_gap_h=float(gap_lengths.max() * STEP_MINUTES / 60) if gap_lengths.size else 0.0,
        median_interval_min=round(median_interval, 2),
        notes=notes,
    )
    return frame, patients, report


def _gap_lengths(frame: pd.DataFrame) -> np.ndarray:
    """Lengths (in steps) of runs of missing CGM, per patient, vectorised."""
    missing = frame["cgm"].isna().to_numpy()
    if not missing.any():
        return np.zeros(0, dtype=int)
    new_patient = np.r_[True, frame["patient_id"].to_numpy()[1:] != frame["patient_id"].to_numpy()[:-1]]
    starts = missing & (~np.r_[False, missing[:-1]] | new_patient)
    run_id = np.cumsum(starts)[missing]
    return np.bincount(run_id)[1:]
