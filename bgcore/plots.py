"""Plotly figures of canonical data (no Streamlit here; pages only render them)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .data.schema import convert_glucose
from .evaluation.backtest import quantile_columns

TARGET_RANGE_MGDL = (70.0, 180.0)


def cgm_figure(patient: pd.DataFrame, units: str = "mmol/L", title: str | None = None) -> go.Figure:
    """CGM (and true glucose when simulated) above carbs and insulin, for one patient's rows.

    Parameters
    ----------
    patient : DataFrame
        Canonical rows of one patient (any time window).
    units : {"mmol/L", "mg/dL"}
        Glucose units to show.
    """
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.04,
                        specs=[[{}], [{"secondary_y": True}]])
    low, high = (float(convert_glucose(v, units)) for v in TARGET_RANGE_MGDL)
    fig.add_hrect(y0=low, y1=high, fillcolor="green", opacity=0.08, line_width=0, row=1, col=1)
    fig.add_trace(go.Scatter(x=patient["time"], y=convert_glucose(patient["cgm"], units), name="CGM",
                             mode="lines", line={"color": "#1f77b4", "width": 1.6}, connectgaps=False), row=1, col=1)
    if "bg" in patient and patient["bg"].notna().any():
        fig.add_trace(go.Scatter(x=patient["time"], y=convert_glucose(patient["bg"], units), name="true glucose",
                                 mode="lines", line={"color": "#7f7f7f", "width": 1, "dash": "dot"}), row=1, col=1)
    carbs = patient[patient["carbs"] > 0]
    fig.add_trace(go.Bar(x=carbs["time"], y=carbs["carbs"], name="carbs (g)", marker_color="#ff7f0e",
                         width=15 * 60 * 1000), row=2, col=1)
    fig.add_trace(go.Scatter(x=patient["time"], y=patient["insulin"], name="insulin (U / 5 min)", mode="lines",
                             line={"color": "#9467bd", "width": 1}), row=2, col=1, secondary_y=True)
    fig.update_yaxes(title_text=f"glucose ({units})", row=1, col=1)
    fig.update_yaxes(title_text="carbs (g)", row=2, col=1)
    fig.update_yaxes(title_text="insulin (U)", row=2, col=1, secondary_y=True)
    fig.update_layout(title=title, height=520, margin={"l": 40, "r": 20, "t": 50 if title else 20, "b": 30},
                      legend={"orientation": "h", "y": 1.02, "x": 0}, hovermode="x unified")
    return fig


def agp_figure(profile: pd.DataFrame, units: str = "mmol/L", title: str | None = None) -> go.Figure:
    """Ambulatory glucose profile of one patient: median, 25-75 % and 5-95 % bands by time of day.

    `profile` is one patient's rows of `bgcore.evaluation.glycemia.ambulatory_profile`.
    """
    hours = profile["minute"] / 60
    conv = {p: convert_glucose(profile[p], units) for p in ("p5", "p25", "p50", "p75", "p95")}
    fig = go.Figure()
    low, high = (float(convert_glucose(v, units)) for v in TARGET_RANGE_MGDL)
    fig.add_hrect(y0=low, y1=high, fillcolor="green", opacity=0.08, line_width=0)
    for lo, hi, name, alpha in (("p5", "p95", "5-95 %", 0.15), ("p25", "p75", "25-75 %", 0.35)):
        fig.add_trace(go.Scatter(x=hours, y=conv[hi], mode="lines", line={"width": 0}, showlegend=False,
                                 hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=hours, y=conv[lo], mode="lines", line={"width": 0}, fill="tonexty",
                                 fillcolor=f"rgba(31,119,180,{alpha})", name=name))
    fig.add_trace(go.Scatter(x=hours, y=conv["p50"], mode="lines", name="median", line={"color": "#1f77b4"}))
    fig.update_xaxes(title_text="time of day (h)", range=[0, 24], dtick=3)
    fig.update_yaxes(title_text=f"glucose ({units})")
    fig.update_layout(title=title, height=340, margin={"l": 40, "r": 20, "t": 40 if title else 20, "b": 30},
                      legend={"orientation": "h", "y": 1.05, "x": 0})
    return fig


HYPO_MGDL, HYPER_MGDL = 70.0, 180.0


def forecast_figure(history: pd.DataFrame, origin, runs: dict[str, pd.DataFrame], units: str = "mmol/L",
                    title: str | None = None) -> go.Figure:
    """Forecasts of several runs from one origin over the patient's actual glucose.

    Parameters
    ----------
    history : DataFrame
        The patient's canonical rows around the origin (context before, truth after).
    origin : Timestamp
        Forecast time (a vertical line).
    runs : dict
        Label -> that run's forecasts rows for this patient and origin (``horizon``, ``pred``,
        optional ``q<level>`` columns; the outermost quantiles are drawn as a band).
    """
    origin = pd.Timestamp(origin)
    conv = lambda v: convert_glucose(v, units)  # noqa: E731
    fig = go.Figure()
    fig.add_hrect(y0=float(conv(HYPO_MGDL)), y1=float(conv(HYPER_MGDL)), fillcolor="green", opacity=0.08, line_width=0)
    fig.add_hline(y=float(conv(HYPO_MGDL)), line={"color": "#d62728", "width": 1, "dash": "dot"})
    fig.add_trace(go.Scatter(x=history["time"], y=conv(history["cgm"]), name="CGM", mode="lines+markers",
                             marker={"size": 3}, line={"color": "#1f77b4"}))
    if "bg" in history and history["bg"].notna().any():
        fig.add_trace(go.Scatter(x=history["time"], y=conv(history["bg"]), name="true glucose", mode="lines",
                                 line={"color": "#7f7f7f", "dash": "dot", "width": 1}))
    palette = ("#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
    for i, (label, rows) in enumerate(runs.items()):
        color = palette[i % len(palette)]
        times = origin + pd.to_timedelta(rows["horizon"], unit="m")
        qcols, _ = quantile_columns(rows)
        if len(qcols) >= 2:
            fig.add_trace(go.Scatter(x=times, y=conv(rows[qcols[-1]]), mode="lines", line={"width": 0},
                                     showlegend=False, hoverinfo="skip"))
            fig.add_trace(go.Scatter(x=times, y=conv(rows[qcols[0]]), mode="lines", line={"width": 0}, fill="tonexty",
                                     fillcolor="rgba(255,127,14,0.15)", name=f"{label} {qcols[0][1:]}-{qcols[-1][1:]}"))
        fig.add_trace(go.Scatter(x=times, y=conv(rows["pred"]), name=label, mode="lines",
                                 line={"color": color, "width": 2.5}))
    fig.add_vline(x=origin, line={"color": "black", "width": 1})
    fig.update_yaxes(title_text=f"glucose ({units})")
    fig.update_layout(title=title, height=460, margin={"l": 40, "r": 20, "t": 50 if title else 20, "b": 30},
                      legend={"orientation": "h", "y": -0.15, "x": 0}, hovermode="x unified")
    return fig


# Clarke error grid boundaries (reference on x, forecast on y, mg/dL), as usually drawn.
CLARKE_LINES = (
    ((0, 70), (175 / 3, 70), (400, 480)),     # upper edge of A
    ((70, 0), (70, 56), (400, 320)),          # lower edge of A
    ((0, 180), (70, 180), (290, 400)),        # upper B | C and upper-left D | E
    ((70, 84), (70, 180)),                    # left D
    ((130, 0), (180, 70), (400, 70)),         # lower B | C and D
    ((180, 0), (180, 70)),                    # lower-right E
    ((240, 70), (240, 180), (400, 180)),      # right D
)
CLARKE_LABELS = (("A", 30, 15), ("B", 370, 260), ("B", 280, 370), ("C", 160, 370), ("C", 160, 15),
                 ("D", 30, 140), ("D", 370, 120), ("E", 30, 370), ("E", 370, 15))
ZONE_COLOURS = ("#2ca02c", "#bcbd22", "#ff7f0e", "#d62728", "#7f0000")


def error_grid_figure(reference, predicted, zones, units: str = "mmol/L", title: str | None = None,
                      grid: str = "clarke") -> go.Figure:
    """Clarke or Parkes (type 1) error grid: forecast against the reading, points coloured by zone.

    Parameters
    ----------
    reference, predicted : array-like
        mg/dL pairs (e.g. CGM and the 30-minute forecast of it).
    zones : array-like of int
        Zone 0..4 (A..E) of each pair, from `bgcore.evaluation.metrics.clarke_zones` (or
        ``parkes_zones`` with ``grid="parkes"``); colours run from A green to E dark red.
    grid : {"clarke", "parkes"}
        Which boundaries to draw.
    """
    import numpy as np
    from .evaluation.metrics import PARKES_TYPE1_LOWER, PARKES_TYPE1_UPPER
    ref, pred, zones = (np.asarray(v) for v in (reference, predicted, zones))
    conv = lambda v: np.asarray(convert_glucose(np.asarray(v, dtype=float), units))  # noqa: E731
    fig = go.Figure()
    lines = CLARKE_LINES if grid == "clarke" else PARKES_TYPE1_UPPER + PARKES_TYPE1_LOWER
    for points in lines:
        x, y = zip(*points)
        fig.add_trace(go.Scatter(x=conv(x), y=conv(y), mode="lines", line={"color": "black", "width": 1},
                                 showlegend=False, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=conv([0, 400]), y=conv([0, 400]), mode="lines", showlegend=False, hoverinfo="skip",
                             line={"color": "grey", "width": 1, "dash": "dot"}))
    for code, letter in enumerate("ABCDE"):
        mine = zones == code
        if mine.any():
            fig.add_trace(go.Scatter(x=conv(ref[mine]), y=conv(pred[mine]), mode="markers", name=f"zone {letter}",
                                       marker={"size": 4, "color": ZONE_COLOURS[code], "opacity": 0.6}))
    for letter, x, y in (CLARKE_LABELS if grid == "clarke" else ()):
        fig.add_annotation(x=float(conv(x)), y=float(conv(y)), text=letter, showarrow=False,
                           font={"size": 16, "color": "#444"})
    top = float(conv(400 if grid == "clarke" else 550))
    fig.update_xaxes(title_text=f"sensor reading ({units})", range=[0, top])
    fig.update_yaxes(title_text=f"forecast ({units})", range=[0, top], scaleanchor="x")
    fig.update_layout(title=title, height=480, margin={"l": 40, "r": 20, "t": 50 if title else 20, "b": 30},
                      legend={"orientation": "h", "y": -0.15, "x": 0})
    return fig


def board_figure(board: pd.DataFrame, units: str = "mmol/L", title: str | None = None) -> go.Figure:
    """Mean RMSE of each leaderboard row with its 95 % interval (dots), persistence as a dashed line.

    `board` is in display units already (`bgcore.evaluation.leaderboard.in_units`).
    """
    rows = board.sort_values("rmse", ascending=False)
    labels = rows["model"] + " · " + rows["goal"] + " · " + rows["run_id"].str[-6:]
    colours = ["#7f7f7f" if f == "reference" else "#1f77b4" for f in rows["family"]]
    fig = go.Figure(go.Scatter(
        x=rows["rmse"], y=labels, mode="markers", marker={"size": 9, "color": colours},
        error_x={"type": "data", "symmetric": False, "array": rows["rmse_hi"] - rows["rmse"],
                 "arrayminus": rows["rmse"] - rows["rmse_lo"], "color": "#555"},
        hovertemplate="%{y}: RMSE %{x:.2f}<extra></extra>", showlegend=False))
    persistence = rows.loc[rows["model"] == "persistence", "rmse"]
    if len(persistence):
        fig.add_vline(x=float(persistence.iloc[0]), line={"color": "#d62728", "dash": "dash", "width": 1},
                      annotation_text="persistence", annotation_position="top")
    fig.update_xaxes(title_text=f"RMSE ({units}), mean over patients, 95 % interval")
    fig.update_layout(title=title, height=max(260, 28 * len(rows) + 90),
                      margin={"l": 10, "r": 20, "t": 50 if title else 30, "b": 40})
    return fig


def horizon_figure(curves: pd.DataFrame, units: str = "mmol/L", title: str | None = None) -> go.Figure:
    """RMSE against minutes ahead, one line per run (`bgcore.evaluation.leaderboard.horizon_curves`, mg/dL)."""
    fig = go.Figure()
    for run_id, g in curves.groupby("run_id", sort=False):
        reference = g["goal"].iloc[0] == "reference"
        fig.add_trace(go.Scatter(x=g["horizon"], y=convert_glucose(g["rmse"], units), mode="lines+markers",
                                 name=f"{g['model'].iloc[0]} · {g['goal'].iloc[0]} · {run_id[-6:]}",
                                 line={"dash": "dash" if reference else "solid"}, marker={"size": 4}))
    fig.update_xaxes(title_text="minutes ahead", dtick=15)
    fig.update_yaxes(title_text=f"RMSE ({units})")
    fig.update_layout(title=title, height=400, margin={"l": 40, "r": 20, "t": 50 if title else 20, "b": 30},
                      legend={"orientation": "h", "y": -0.2, "x": 0})
    return fig


def trail_figure(history: pd.DataFrame, trails: dict[str, pd.DataFrame], horizon: int, units: str = "mmol/L",
                 origin=None, title: str | None = None) -> go.Figure:
    """Prediction trail: each run's `horizon`-minute forecast of every origin, drawn at the time it forecasts.

    Parameters
    ----------
    history : DataFrame
        The patient's canonical rows over the window (the actual curve).
    trails : dict
        Label -> forecasts rows of one patient at `horizon` (``origin``, ``pred``).
    origin : Timestamp, optional
        The origin chosen above (its forecast target is marked).
    """
    conv = lambda v: convert_glucose(v, units)  # noqa: E731
    fig = go.Figure()
    fig.add_hrect(y0=float(conv(HYPO_MGDL)), y1=float(conv(HYPER_MGDL)), fillcolor="green", opacity=0.08, line_width=0)
    fig.add_hline(y=float(conv(HYPO_MGDL)), line={"color": "#d62728", "width": 1, "dash": "dot"})
    fig.add_trace(go.Scatter(x=history["time"], y=conv(history["cgm"]), name="CGM", mode="lines",
                             line={"color": "#1f77b4", "width": 1.5}))
    palette = ("#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
    for i, (label, rows) in enumerate(trails.items()):
        times = pd.to_datetime(rows["origin"]) + pd.Timedelta(minutes=horizon)
        fig.add_trace(go.Scatter(x=times, y=conv(rows["pred"]), name=f"{label} ({horizon} min ahead)",
                                 mode="markers+lines", marker={"size": 5, "color": palette[i % len(palette)]},
                                 line={"width": 1, "color": palette[i % len(palette)]},
                                 customdata=rows["origin"].astype(str),
                                 hovertemplate="forecast made %{customdata}<br>%{y:.1f}<extra></extra>"))
    if origin is not None:
        fig.add_vline(x=pd.Timestamp(origin) + pd.Timedelta(minutes=horizon), line={"color": "black", "width": 1})
    fig.update_yaxes(title_text=f"glucose ({units})")
    fig.update_layout(title=title, height=380, margin={"l": 40, "r": 20, "t": 50 if title else 20, "b": 30},
                      legend={"orientation": "h", "y": -0.2, "x": 0}, hovermode="closest")
    return fig
