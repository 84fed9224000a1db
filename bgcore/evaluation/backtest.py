"""Run a forecaster over the protocol's origins and keep every forecast, tidy.

The forecasts frame has one row per origin and horizon, sorted by patient, origin and
horizon, with every horizon present for every origin:

=========== ==========================================================
patient_id  patient
origin      forecast time ``t`` (the forecaster saw data up to ``t``)
horizon     minutes ahead (5 .. 120)
pred        point forecast, mg/dL
q0.025 ...  quantile forecasts (when the forecaster gives them)
cgm         CGM reading at ``t + horizon`` (NaN: not observed, not scored)
bg          true glucose at ``t + horizon`` (simulated data only)
cgm_origin  CGM at ``t`` (the persistence forecast on exactly these origins)
bg_origin   true glucose at ``t`` (simulated data only)
=========== ==========================================================
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.dataset import Dataset
from ..data.splits import temporal_split
from .protocol import DEFAULT_PROTOCOL, Protocol, context_batch, make_origins, target_paths
from .reference import REFERENCES

CHUNK_ORIGINS = 20000
"""Origins per forecaster call (bounds the memory of context windows)."""


def quantile_column(level: float) -> str:
    return f"q{level:g}"


def quantile_columns(forecasts: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """Names and levels of the quantile columns of a forecasts frame, by level."""
    cols = sorted((c for c in forecasts.columns if c.startswith("q") and c[1:].replace(".", "", 1).isdigit()),
                  key=lambda c: float(c[1:]))
    return cols, np.array([float(c[1:]) for c in cols])


def backtest(dataset: Dataset, forecaster, protocol: Protocol = DEFAULT_PROTOCOL, patients=None,
             progress=None, fingerprint: str | None = None) -> tuple[pd.DataFrame, dict]:
    """Forecast every evaluated origin of `dataset` with a fitted `forecaster`.

    Parameters
    ----------
    forecaster : object
        ``predict_arrays(batch, steps) -> ForecastArrays`` on a `ContextBatch` (past data only),
        such as a fitted `bgcore.models.base.Forecaster`.
    patients : list of str, optional
        Restrict to these patients.
    progress : callable, optional
        ``progress(done_origins, total_origins)`` after each chunk.
    fingerprint : str, optional
        `data_fingerprint` of the whole `dataset` when the caller already has it (the card
        names the dataset the protocol was applied to, also when only some patients run).

    Returns
    -------
    forecasts, card
        The tidy forecasts frame (module docstring) and the protocol card.
    """
    data = dataset if patients is None else dataset.subset(patients)
    frame = data.frame
    origins = make_origins(frame, protocol)
    rows = origins["row"].to_numpy()
    steps = protocol.horizon_steps
    points, quantiles, levels = [], [], None
    for start in range(0, len(rows), CHUNK_ORIGINS):
        chunk = rows[start:start + CHUNK_ORIGINS]
        out = forecaster.predict_arrays(context_batch(frame, chunk, protocol.context_steps), steps)
        points.append(np.asarray(out.point, dtype=float))
        if out.quantiles is not None:
            quantiles.append(np.asarray(out.quantiles, dtype=float))
            levels = out.levels
        if progress is not None:
            progress(min(start + CHUNK_ORIGINS, len(rows)), len(rows))
    H = len(steps)
    point = np.concatenate(points) if points else np.empty((0, H))
    if point.shape != (len(rows), H):
        raise ValueError(f"forecaster returned shape {point.shape}, expected {(len(rows), H)}")
    table = {
        "patient_id": np.repeat(origins["patient_id"].astype(str).to_numpy(), H),
        "origin": np.repeat(origins["origin"].to_numpy(), H),
        "horizon": np.tile(np.asarray(protocol.horizons_min, dtype=np.int16), len(rows)),
        "pred": point.ravel(),
    }
    if quantiles:
        q = np.concatenate(quantiles)
        for j, level in enumerate(levels):
            table[quantile_column(level)] = q[:, :, j].ravel()
    table["cgm"] = target_paths(frame, rows, steps, "cgm").ravel()
    if "bg" in frame and frame["bg"].notna().any():
        table["bg"] = target_paths(frame, rows, steps, "bg").ravel()
    table["cgm_origin"] = np.repeat(frame["cgm"].to_numpy(dtype=float)[rows], H)
    if "bg" in table:
        table["bg_origin"] = np.repeat(frame["bg"].to_numpy(dtype=float)[rows], H)
    forecasts = pd.DataFrame(table)
    forecasts["patient_id"] = pd.Categorical(forecasts["patient_id"], categories=sorted(set(table["patient_id"])))
    card = protocol.card(dataset.name, fingerprint or dataset.fingerprint, n_origins=len(rows))
    return forecasts, card


def reference_backtests(dataset: Dataset, protocol: Protocol = DEFAULT_PROTOCOL, patients=None
                        ) -> dict[str, tuple[pd.DataFrame, dict]]:
    """Persistence and Nightscout AR2 on the protocol's origins (persistence quantiles fitted on train)."""
    data = dataset if patients is None else dataset.subset(patients)
    train = temporal_split(data.frame, protocol.split)["train"]
    fingerprint = dataset.fingerprint
    out = {}
    for name, cls in REFERENCES.items():
        model = cls().fit(train, protocol.horizon_steps)
        out[name] = backtest(dataset, model, protocol, patients=patients, fingerprint=fingerprint)
    return out
