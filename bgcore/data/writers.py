"""Write canonical data in the real export formats (round-trip tests, benchmarks, demos).

Each writer produces a file that the matching loader reads back to the same 5-minute
values: readings are stamped a little *before* their step label (as real sensors are off
the grid), and every per-step insulin amount is written as an instant dose.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .schema import MGDL_PER_MMOLL, SENSOR_MAX_MGDL, SENSOR_MIN_MGDL

READING_OFFSET = pd.Timedelta(seconds=147)
"""How far before its step label a written reading is stamped."""


def _one(frame: pd.DataFrame) -> pd.DataFrame:
    if frame["patient_id"].nunique() != 1:
        raise ValueError("this format holds one patient per file")
    return frame.reset_index(drop=True)


def write_csv(frame: pd.DataFrame, path: Path, units: str = "mg/dL") -> Path:
    """Generic CSV: ``patient_id, time, glucose_<units>, carbs, insulin`` (all patients)."""
    rows = frame[frame["cgm"].notna() | (frame["carbs"] > 0) | (frame["insulin"] > 0)]
    glucose = rows["cgm"] if units == "mg/dL" else (rows["cgm"] / MGDL_PER_MMOLL).round(2)
    col = "glucose_mg_dl" if units == "mg/dL" else "glucose_mmol_l"
    pd.DataFrame({"patient_id": rows["patient_id"].astype(str),
                  "time": (rows["time"] - READING_OFFSET).dt.strftime("%Y-%m-%d %H:%M:%S"),
                  col: glucose, "carbs": rows["carbs"].where(rows["carbs"] > 0),
                  "insulin": rows["insulin"].where(rows["insulin"] > 0).round(4)}).to_csv(path, index=False)
    return Path(path)


def write_dexcom(frame: pd.DataFrame, path: Path, units: str = "mg/dL") -> Path:
    """Dexcom Clarity export of one patient, with device rows, Low/High and insulin/carb events."""
    f = _one(frame)
    unit_col = f"Glucose Value ({units})"
    columns = ["Index", "Timestamp (YYYY-MM-DDThh:mm:ss)", "Event Type", "Event Subtype", "Patient Info",
               "Device Info", "Source Device ID", unit_col, "Insulin Value (u)", "Carb Value (grams)",
               "Duration (hh:mm:ss)", "Glucose Rate of Change (mg/dL/min)", "Transmitter Time (Long Integer)",
               "Transmitter ID"]
    header_rows = [("FirstName", "", "Jane"), ("LastName", "", "Doe"), ("Device", "", ""),
                   ("Alert", "High", ""), ("Alert", "Low", "")]
    meta = pd.DataFrame({"Event Type": [h[0] for h in header_rows], "Event Subtype": [h[1] for h in header_rows],
                         "Patient Info": [h[2] for h in header_rows]})
    egv = f[f["cgm"].notna()]
    value = (egv["cgm"].round(1) if units == "mg/dL" else (egv["cgm"] / MGDL_PER_MMOLL).round(1)).astype(str)
    value = value.where(egv["cgm"] > SENSOR_MIN_MGDL, "Low").where(egv["cgm"] < SENSOR_MAX_MGDL, "High")
    stamp = lambda t: (t - READING_OFFSET).dt.strftime("%Y-%m-%dT%H:%M:%S")  # noqa: E731
    parts = [meta,
             pd.DataFrame({"Timestamp (YYYY-MM-DDThh:mm:ss)": stamp(egv["time"]), "Event Type": "EGV",
                           unit_col: value.to_numpy(), "Source Device ID": "G6"})]
    ins = f[f["insulin"] > 0]
    parts.append(pd.DataFrame({"Timestamp (YYYY-MM-DDThh:mm:ss)": stamp(ins["time"]), "Event Type": "Insulin",
                               "Event Subtype": "Fast-Acting", "Insulin Value (u)": ins["insulin"].round(4)}))
    carbs = f[f["carbs"] > 0]
    parts.append(pd.DataFrame({"Timestamp (YYYY-MM-DDThh:mm:ss)": stamp(carbs["time"]), "Event Type": "Carbs",
                               "Carb Value (grams)": carbs["carbs"]}))
    out = pd.concat(parts, ignore_index=True).reindex(columns=columns)
    out["Index"] = np.arange(1, len(out) + 1)
    out.to_csv(path, index=False)
    return Path(path)


def write_libre(frame: pd.DataFrame, path: Path, units: str = "mg/dL", date_format: str = "%m-%d-%Y %I:%M %p",
                seed: int = 0) -> Path:
    """LibreView export of one patient: historic glucose every 15 min, insulin, food, shuffled rows."""
    f = _one(frame)
    historic = f[f["cgm"].notna() & (f["time"].dt.minute % 15 == 0)]
    unit = "mg/dL" if units == "mg/dL" else "mmol/L"
    conv = (lambda v: v) if units == "mg/dL" else (lambda v: (v / MGDL_PER_MMOLL).round(1))
    stamp = lambda t: t.dt.strftime(date_format)  # noqa: E731  (LibreView stamps whole minutes)
    parts = [pd.DataFrame({"Device Timestamp": stamp(historic["time"]), "Record Type": 0,
                           f"Historic Glucose {unit}": conv(historic["cgm"])})]
    ins = f[f["insulin"] > 0]
    parts.append(pd.DataFrame({"Device Timestamp": stamp(ins["time"]), "Record Type": 4,
                               "Rapid-Acting Insulin (units)": ins["insulin"].round(4)}))
    carbs = f[f["carbs"] > 0]
    parts.append(pd.DataFrame({"Device Timestamp": stamp(carbs["time"]), "Record Type": 5,
                               "Carbohydrates (grams)": carbs["carbs"]}))
    out = pd.concat(parts, ignore_index=True)
    out = out.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    out.insert(0, "Device", "FreeStyle LibreLink")
    out.insert(1, "Serial Number", "ABCD-1234")
    columns = ["Device", "Serial Number", "Device Timestamp", "Record Type", f"Historic Glucose {unit}",
               f"Scan Glucose {unit}", "Non-numeric Rapid-Acting Insulin", "Rapid-Acting Insulin (units)",
               "Non-numeric Food", "Carbohydrates (grams)", "Carbohydrates (servings)",
               "Non-numeric Long-Acting Insulin", "Long-Acting Insulin Value (units)", "Notes"]
    with open(path, "w", newline="") as fh:
        fh.write("Glucose Data,Generated on,01-31-2026 10:15 AM UTC,Generated by,bgcore\n")
        out.reindex(columns=columns).to_csv(fh, index=False)
    return Path(path)


def write_nightscout(frame: pd.DataFrame, folder: Path, utc_offset_min: int = 60) -> Path:
    """Nightscout ``entries.json`` and ``treatments.json`` of one patient (UTC with offsets)."""
    f = _one(frame)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    offset = pd.Timedelta(minutes=utc_offset_min)
    sign = "+" if utc_offset_min >= 0 else "-"
    tz = f"{sign}{abs(utc_offset_min) // 60:02d}:{abs(utc_offset_min) % 60:02d}"
    egv = f[f["cgm"].notna()]
    local = egv["time"] - READING_OFFSET
    utc = local - offset
    entries = pd.DataFrame({"type": "sgv", "sgv": egv["cgm"].astype(int),
                            "date": (utc.astype("int64") // 10**6), "utcOffset": utc_offset_min,
                            "dateString": local.dt.strftime("%Y-%m-%dT%H:%M:%S.000") + tz,
                            "direction": "Flat", "device": "xDrip-DexcomG6"})
    (folder / "entries.json").write_text(json.dumps(entries.to_dict(orient="records")))
    ev = f[(f["insulin"] > 0) | (f["carbs"] > 0)]
    created = (ev["time"] - offset).dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    treatments = pd.DataFrame({"eventType": np.where(ev["carbs"] > 0, "Meal Bolus", "Correction Bolus"),
                               "created_at": created, "insulin": ev["insulin"].where(ev["insulin"] > 0).round(4),
                               "carbs": ev["carbs"].where(ev["carbs"] > 0), "utcOffset": utc_offset_min})
    records = [{k: v for k, v in r.items() if not (isinstance(v, float) and np.isnan(v))}
               for r in treatments.to_dict(orient="records")]
    (folder / "treatments.json").write_text(json.dumps(records))
    return folder


def write_bris(frame: pd.DataFrame, path: Path, lag_steps: int = 72) -> Path:
    """BrisT1D wide CSV: one row per step, six hours of 5-minute lags per signal, mmol/L.

    Patients are named ``p01``, ``p02``, ... in the order of their ids.
    """
    parts = []
    for number, (pid, f) in enumerate(frame.groupby("patient_id", observed=True, sort=True), start=1):
        f = f.reset_index(drop=True)
        n = len(f)
        lags = np.arange(lag_steps - 1, -1, -1)  # oldest first, as in the competition files
        names = [f"{k * 5 // 60}:{k * 5 % 60:02d}" for k in lags]
        idx = np.arange(n)[:, None] - lags[None, :]
        valid = idx >= 0
        cols = {"id": [f"p{number:02d}_{i}" for i in range(n)], "p_num": f"p{number:02d}",
                "time": f["time"].dt.strftime("%H:%M:%S")}
        block = {}
        for signal, values in (("bg", (f["cgm"] / MGDL_PER_MMOLL).round(1)), ("insulin", f["insulin"].round(4)),
                               ("carbs", f["carbs"])):
            arr = values.to_numpy(dtype=float)
            mat = np.where(valid, arr[np.clip(idx, 0, None)], np.nan)
            block.update({f"{signal}-{name}": mat[:, j] for j, name in enumerate(names)})
        for signal in ("hr", "steps"):
            block.update({f"{signal}-{name}": np.nan for name in names})
        parts.append(pd.concat([pd.DataFrame(cols), pd.DataFrame(block)], axis=1))
    pd.concat(parts, ignore_index=True).to_csv(path, index=False, float_format="%.4g")
    return Path(path)


def write_ohio(frame: pd.DataFrame, path: Path, patient_id: str = "559") -> Path:
    """OhioT1DM-style XML of one patient: glucose, per-step insulin as boluses, meals."""
    f = _one(frame)
    fmt = "%d-%m-%Y %H:%M:%S"

    def events(rows: pd.DataFrame, attrs: dict[str, pd.Series]) -> str:
        if rows.empty:
            return ""
        text = pd.Series("", index=rows.index)
        for name, values in attrs.items():
            text = text + f' {name}="' + values.astype(str) + '"'
        return "\n".join("\t\t<event" + text + "/>")

    g = f[f["cgm"].notna()]
    b = f[f["insulin"] > 0]
    m = f[f["carbs"] > 0]
    bolus_ts = b["time"].dt.strftime(fmt)
    body = [f'<patient id="{patient_id}" weight="99" insulin_type="Novalog">',
            "\t<glucose_level>", events(g, {"ts": (g["time"] - READING_OFFSET).dt.strftime(fmt),
                                             "value": g["cgm"].round(1)}), "\t</glucose_level>",
            "\t<finger_stick>\n\t</finger_stick>", "\t<basal>\n\t</basal>", "\t<temp_basal>\n\t</temp_basal>",
            "\t<bolus>", events(b, {"ts_begin": bolus_ts, "ts_end": bolus_ts, "type": pd.Series("normal", index=b.index),
                                    "dose": b["insulin"].round(4)}), "\t</bolus>",
            "\t<meal>", events(m, {"ts": m["time"].dt.strftime(fmt), "type": pd.Series("Meal", index=m.index),
                                   "carbs": m["carbs"].round(1)}), "\t</meal>",
            "</patient>"]
    Path(path).write_text("<?xml version='1.0' encoding='UTF-8'?>\n" + "\n".join(x for x in body if x) + "\n")
    return Path(path)
