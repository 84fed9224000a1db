"""The clinician's patient report: glucose summary, the best stored model for the patient in plain words.

`patient_report` gathers, for one patient of a dataset: the consensus CGM metrics, the
ambulatory glucose profile, every stored run that forecast this patient ranked by RMSE at
the chosen horizon (against CGM, on the protocol's test origins), and for the best one
the typical error, the Clarke error grid and how many lows (< 70 mg/dL within the next
hour) it would have warned of, and how early. `report_html` renders it as one
self-contained HTML file (figures included, works offline); `report_csv` gives the
underlying forecasts. Everything is computed from stored runs: nothing is trained here.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..data.dataset import Dataset, select_patients
from ..data.schema import MGDL_PER_MMOLL, convert_glucose
from ..store import list_runs, load_forecasts
from .glycemia import ambulatory_profile, glucose_summary
from .metrics import clarke_zones, zone_percentages
from .scoring import score_events, score_patients

ZONES = ("A", "B", "C", "D", "E")
LOW_MGDL = 70.0
WARNING_WINDOW_MIN = 60


@dataclass
class PatientReport:
    """Everything the Patient page and the downloads show (plain data, mg/dL inside)."""

    dataset: str
    patient_id: str
    horizon: int
    summary: dict
    profile: pd.DataFrame
    ranking: pd.DataFrame  # one row per run: run_id, model, goal, rmse, mae, skill
    best: dict | None = None  # run_id, model, goal, rmse, median/p90 absolute error, zones, lows
    forecasts: pd.DataFrame | None = None  # the best run's forecasts of this patient (all horizons)
    sentences: list[str] = field(default_factory=list)


def format_glucose(mgdl: float, units: str) -> str:
    """A glucose value in display units with its unit (mmol/L one decimal, mg/dL whole numbers)."""
    value = float(convert_glucose(mgdl, units))
    return f"{value:.1f} {units}" if units == "mmol/L" else f"{value:.0f} {units}"


def patient_report(dataset: Dataset, patient_id: str, horizon: int = 30, units: str = "mmol/L",
                   runs: list[dict] | None = None) -> PatientReport:
    """Build the report of one patient from the stored runs of `dataset`.

    Parameters
    ----------
    horizon : int
        Minutes ahead the accuracy sentences are about (5..120).
    units : {"mmol/L", "mg/dL"}
        Units of the sentences (tables stay in mg/dL).
    runs : list of dict, optional
        Run records to consider (default: every stored run of the dataset).
    """
    frame = select_patients(dataset.frame, [patient_id])
    if frame.empty:
        raise KeyError(f"patient {patient_id!r} is not in dataset {dataset.name!r}")
    summary = glucose_summary(frame).iloc[0].to_dict()
    profile = ambulatory_profile(frame)
    rows, tables = [], {}
    for record in (runs if runs is not None else list_runs(dataset.name)):
        if patient_id not in record["patients"]:
            continue
        mine = load_forecasts(record["run_id"])
        mine = mine[mine["patient_id"].astype(str) == patient_id].reset_index(drop=True)
        at = score_patients(mine)
        at = at[at["horizon"] == horizon]
        if at.empty:
            continue
        tables[record["run_id"]] = mine
        row = at.iloc[0]
        rows.append({"run_id": record["run_id"], "model": record["model"], "goal": record["goal"],
                     "rmse": float(row["rmse"]), "mae": float(row["mae"]),
                     "skill": float(1 - row["rmse"] / row["rmse_persistence"])})
    ranking = pd.DataFrame(rows, columns=["run_id", "model", "goal", "rmse", "mae", "skill"]).sort_values(
        "rmse", ignore_index=True)
    report = PatientReport(dataset.name, patient_id, horizon, summary, profile, ranking)
    report.sentences = [_summary_sentence(summary, units)]
    if ranking.empty:
        report.sentences.append("No forecasting model has been run for this patient yet: train one on the "
                                "Train page, then come back.")
        return report
    best = ranking.iloc[0].to_dict()
    forecasts = tables[best["run_id"]]
    at_h = forecasts[forecasts["horizon"] == horizon]
    error = (at_h["pred"] - at_h["cgm"]).abs().dropna().to_numpy()
    zones = zone_percentages(clarke_zones(at_h["cgm"].to_numpy(), at_h["pred"].to_numpy()))
    events = score_events(forecasts)
    lows = events[(events["event"] == "hypo<70") & (events["window_min"] == WARNING_WINDOW_MIN)].iloc[0]
    best.update({"median_abs_error": float(np.median(error)), "p90_abs_error": float(np.quantile(error, 0.9)),
                 "n_forecasts": int(error.size), "zones_pct": dict(zip(ZONES, np.round(zones, 1).tolist())),
                 "lows_total": int(lows["tp"] + lows["fn"]), "lows_warned": int(lows["tp"]),
                 "warning_lead_min": None if np.isnan(lows["median_lead_min"]) else float(lows["median_lead_min"]),
                 "false_alarms_per_day": float(lows["false_alarms_per_day"])})
    report.best, report.forecasts = best, forecasts
    report.sentences += _accuracy_sentences(best, horizon, units)
    return report


def _summary_sentence(s: dict, units: str) -> str:
    return (f"Time in range (70-180 mg/dL, 3.9-10.0 mmol/L) {s['tir_pct']:.0f} %, below range {s['tbr70_pct']:.1f} % "
            f"(below 54 mg/dL: {s['tbr54_pct']:.1f} %), above range {s['tar180_pct']:.0f} %; mean glucose "
            f"{format_glucose(s['mean_mgdl'], units)}, GMI {s['gmi_pct']:.1f} %, variability (CV) {s['cv_pct']:.0f} % "
            f"({'stable' if s['cv_pct'] <= 36 else 'labile'}: the consensus target is 36 % or less).")


def _accuracy_sentences(best: dict, horizon: int, units: str) -> list[str]:
    how = "a reference forecaster" if best["goal"] == "reference" else f"{best['goal']}-patient training"
    how = how.replace("multi_holdout-patient", "multi-patient, patient held out").replace("finetune-patient",
                                                                                          "fine-tuned")
    out = [f"Best model for this patient: {best['model']} ({how}), out of the stored runs scored on the "
           f"patient's test days.",
           f"Its {horizon}-minute forecast is typically within {format_glucose(best['median_abs_error'], units)} of the sensor "
           f"reading (half of {best['n_forecasts']} forecasts were closer), and 9 in 10 were within "
           f"{format_glucose(best['p90_abs_error'], units)}.",
           f"{best['zones_pct']['A'] + best['zones_pct']['B']:.1f} % of its {horizon}-minute forecasts fall in the "
           f"clinically acceptable zones A and B of the Clarke error grid ({best['zones_pct']['A']:.1f} % in A)."]
    if best["lows_total"]:
        lead = (f", typically {best['warning_lead_min']:.0f} minutes before the low began"
                if best["warning_lead_min"] is not None else "")
        out.append(f"At {best['lows_total']} forecast times a low (below {format_glucose(LOW_MGDL, units)}) followed within the "
                   f"hour: the model would have warned at {best['lows_warned']} of them{lead}, with "
                   f"{best['false_alarms_per_day']:.1f} false alarms per day.")
    else:
        out.append("There was no low (below 70 mg/dL) in the test days to warn of.")
    return out


def report_csv(report: PatientReport) -> bytes:
    """The best run's forecasts of the patient (mg/dL), with the run's identity in each row."""
    if report.forecasts is None:
        return b""
    table = report.forecasts.assign(run_id=report.best["run_id"], model=report.best["model"], units="mg/dL")
    buffer = io.StringIO()
    table.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def report_html(report: PatientReport, figures: list, units: str = "mmol/L") -> str:
    """A self-contained HTML report (plotly.js embedded once, so it opens offline)."""
    parts = [f"<h1>Patient report: {html.escape(report.patient_id)}</h1>",
             f"<p>Dataset {html.escape(report.dataset)}; glucose in {html.escape(units)} "
             f"(1 mmol/L = {MGDL_PER_MMOLL} mg/dL). Research use only; not a medical device.</p>",
             "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in report.sentences) + "</ul>"]
    for i, fig in enumerate(figures):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0)))
    if not report.ranking.empty:
        shown = report.ranking.assign(rmse=convert_glucose(report.ranking["rmse"], units).round(2),
                                      mae=convert_glucose(report.ranking["mae"], units).round(2),
                                      skill=report.ranking["skill"].round(3))
        parts.append(f"<h2>Models run for this patient ({report.horizon} min, RMSE/MAE in {html.escape(units)})</h2>")
        parts.append(shown.to_html(index=False, escape=True))
    body = "\n".join(parts)
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>bgexplorer patient report</title>"
            "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px}</style></head><body>" + body + "</body></html>")


def error_grid_points(forecasts: pd.DataFrame, horizon: int, target: str = "cgm", grid: str = "clarke"):
    """Reference, forecast and error-grid zone (0..4 = A..E) of every forecast at `horizon` (mg/dL)."""
    from .metrics import parkes_zones
    at = forecasts[forecasts["horizon"] == horizon]
    ref, pred = at[target].to_numpy(dtype=float), at["pred"].to_numpy(dtype=float)
    zones = (clarke_zones if grid == "clarke" else parkes_zones)(ref, pred)
    return ref, pred, zones
