"""OhioT1DM XML (one ``<patient>`` per file, training and testing files of a patient merge).

Sections used: ``glucose_level`` (CGM, mg/dL), ``basal`` (U/h in effect until the next
basal event), ``temp_basal`` (U/h between ``ts_begin`` and ``ts_end``, overriding the
scheduled basal), ``bolus`` (``dose`` U, spread evenly from ``ts_begin`` to ``ts_end`` when
extended), ``meal`` (``carbs`` g). The other sections (``finger_stick``, ``exercise``,
``basis_heart_rate``, ...) are counted in the report but not part of the canonical frame.
Timestamps are ``%d-%m-%Y %H:%M:%S`` local time.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd

from ..ingest import RawData, event_frame, parse_numbers, parse_times, require_columns
from ..schema import DataError, validate_id

FORMAT = "ohio"
DESCRIPTION = "OhioT1DM XML"
TIME_FORMAT = "%d-%m-%Y %H:%M:%S"
USED = ("glucose_level", "basal", "temp_basal", "bolus", "meal")


def sniff(path: Path, head: str) -> bool:
    return path.suffix.lower() == ".xml" and "<patient" in head


def _section(root: ET.Element, tag: str) -> pd.DataFrame:
    """Events of one section as a frame of strings, with a ``row`` label per event."""
    node = root.find(tag)
    events = [] if node is None else node.findall("event")
    frame = pd.DataFrame([e.attrib for e in events], dtype=object)
    frame["row"] = [f"<{tag}> event {i}" for i in range(1, len(events) + 1)]
    return frame


def _times(frame: pd.DataFrame, column: str, file) -> pd.Series:
    return parse_times(frame[column], frame["row"], file=file, column=column, formats=(TIME_FORMAT,))


def _numbers(frame: pd.DataFrame, column: str, file) -> pd.Series:
    return parse_numbers(frame[column], frame["row"], file=file, column=column)


def basal_segments(scheduled: pd.DataFrame, temporary: pd.DataFrame, record_end: pd.Timestamp) -> pd.DataFrame:
    """Effective basal delivery as non-overlapping constant-rate segments.

    Parameters
    ----------
    scheduled : DataFrame
        ``time``, ``rate`` (U/h), each rate in effect until the next.
    temporary : DataFrame
        ``start``, ``end``, ``rate`` (U/h); a temp basal overrides the scheduled rate.
    record_end : Timestamp
        The last scheduled rate lasts until here.

    Returns
    -------
    DataFrame
        ``start``, ``end``, ``insulin`` (U delivered in the segment).
    """
    scheduled = scheduled.sort_values("time")
    temporary = temporary.sort_values("start")
    if scheduled.empty and temporary.empty:
        return pd.DataFrame(columns=["start", "end", "insulin"])
    points = pd.concat([scheduled["time"], temporary["start"], temporary["end"]])
    points = np.unique(np.r_[points.to_numpy("datetime64[ns]"), np.datetime64(max(record_end, points.max()), "ns")])
    seg = pd.DataFrame({"start": points[:-1], "end": points[1:]})
    rate = pd.merge_asof(seg[["start"]], scheduled.rename(columns={"time": "start"}), on="start")["rate"]
    rate = rate.fillna(0.0).to_numpy()
    if not temporary.empty:
        temp = pd.merge_asof(seg[["start"]], temporary.rename(columns={"end": "temp_end", "rate": "temp_rate"}), on="start")
        active = (temp["temp_end"] > temp["start"]).to_numpy()
        rate = np.where(active, temp["temp_rate"].to_numpy(), rate)
    hours = (seg["end"] - seg["start"]).dt.total_seconds().to_numpy() / 3600
    return pd.DataFrame({"start": seg["start"].to_numpy(), "end": seg["end"].to_numpy(), "insulin": rate * hours})


def read(path: Path, patient_id: str | None = None) -> RawData:
    """Read one OhioT1DM XML file."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        line, col = exc.position
        raise DataError(f"malformed XML ({exc.msg if hasattr(exc, 'msg') else exc})", file=path,
                        row=f"line {line}, column {col}", expected="well-formed OhioT1DM XML") from None
    if root.tag != "patient":
        raise DataError("root element is not <patient>", file=path, expected="<patient id=...>", found=f"<{root.tag}>")
    pid = patient_id or root.get("id")
    if not pid:
        raise DataError("<patient> has no id attribute", file=path, column="id", expected="a patient id")
    validate_id(pid)

    glucose = _section(root, "glucose_level")
    if len(glucose) == 0:
        raise DataError("no <glucose_level> events", file=path, expected="CGM readings")
    require_columns(glucose.columns, ("ts", "value"), file=path, what="attributes of <glucose_level> events")
    g_time = _times(glucose, "ts", path)
    g = event_frame(pid, g_time, _numbers(glucose, "value", path), glucose["row"], "value")

    meals = _section(root, "meal")
    carbs = None
    if len(meals):
        require_columns(meals.columns, ("ts", "carbs"), file=path, what="attributes of <meal> events")
        carbs = event_frame(pid, _times(meals, "ts", path), _numbers(meals, "carbs", path), meals["row"], "carbs")
    else:
        carbs = event_frame(pid, [], [], [], "carbs")

    bolus = _section(root, "bolus")
    instant = event_frame(pid, [], [], [], "insulin")
    extended = pd.DataFrame(columns=["patient_id", "start", "end", "insulin"])
    if len(bolus):
        require_columns(bolus.columns, ("ts_begin", "dose"), file=path, what="attributes of <bolus> events")
        begin = _times(bolus, "ts_begin", path)
        end = _times(bolus, "ts_end", path) if "ts_end" in bolus else begin
        dose = _numbers(bolus, "dose", path)
        spread = (end > begin).to_numpy()
        instant = event_frame(pid, begin[~spread], dose[~spread], bolus["row"][~spread], "insulin")
        extended = pd.DataFrame({"patient_id": pid, "start": begin[spread], "end": end[spread],
                                 "insulin": dose[spread]})

    basal = _section(root, "basal")
    temp = _section(root, "temp_basal")
    scheduled = pd.DataFrame({"time": pd.Series(dtype="datetime64[ns]"), "rate": pd.Series(dtype=float)})
    temporary = pd.DataFrame({"start": pd.Series(dtype="datetime64[ns]"), "end": pd.Series(dtype="datetime64[ns]"),
                              "rate": pd.Series(dtype=float)})
    if len(basal):
        require_columns(basal.columns, ("ts", "value"), file=path, what="attributes of <basal> events")
        scheduled = pd.DataFrame({"time": _times(basal, "ts", path), "rate": _numbers(basal, "value", path)}).dropna()
    if len(temp):
        require_columns(temp.columns, ("ts_begin", "ts_end", "value"), file=path,
                        what="attributes of <temp_basal> events")
        temporary = pd.DataFrame({"start": _times(temp, "ts_begin", path), "end": _times(temp, "ts_end", path),
                                  "rate": _numbers(temp, "value", path)}).dropna()
    segments = basal_segments(scheduled, temporary, g["time"].max()).assign(patient_id=pid)
    segments = pd.concat([segments, extended], ignore_index=True)

    other = {child.tag: len(child.findall("event")) for child in root if child.tag not in USED}
    other = {k: v for k, v in other.items() if v}
    notes = []
    if other:
        notes.append(f"{path.name}: sections not used in the canonical frame: "
                     + ", ".join(f"{k} ({v})" for k, v in other.items()))
    if not len(basal) and not len(temp):
        notes.append(f"{path.name}: no basal records; insulin counts boluses only")
    patients = pd.DataFrame([{"patient_id": pid, "age_group": "adult", "source": "OhioT1DM",
                              "weight_kg": pd.to_numeric(root.get("weight"), errors="coerce"),
                              "insulin_type": root.get("insulin_type")}])
    return RawData(file=str(path), format=FORMAT, glucose=g, units="mg/dL", patients=patients, carbs=carbs,
                   insulin=instant, insulin_segments=segments, notes=notes)
