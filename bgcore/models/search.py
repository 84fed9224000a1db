"""Exhaustive hyper-parameter search per family, by temporal cross-validation inside train.

Folds are rolling origins over the last ``folds x fold_days`` of each patient's training
part: fold ``k`` fits on everything before its cutoff and scores origins (every 30 min)
in the ``fold_days`` after it, with context and targets from the training part only.
Every configuration's fold scores are recorded, not only the winner's. The search
reports progress and stops between grid points when `cancel` returns True.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..evaluation.protocol import HORIZONS_MIN, context_batch, target_paths

SCORE_HORIZONS = (30, 60)


@dataclass
class SearchResult:
    """All configurations with their scores (``table``), the best parameters, and whether it was cut short."""

    family: str
    table: pd.DataFrame
    best_params: dict | None
    cancelled: bool


def configurations(grid: dict) -> list[dict]:
    """Every combination of the grid's values, in a stable order."""
    keys = sorted(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def cv_folds(train: pd.DataFrame, folds: int = 3, fold_days: float = 1.0, stride_min: int = 30):
    """Yield ``(fit_frame, eval_rows)`` per fold; eval rows index `train` (origins on the clock)."""
    end = train.groupby("patient_id", observed=True)["time"].transform("max")
    cgm = train["cgm"].to_numpy(dtype=float)
    pid = train["patient_id"].astype(str).to_numpy()
    has_last_two = np.isfinite(cgm) & np.r_[False, np.isfinite(cgm[:-1]) & (pid[1:] == pid[:-1])]
    minute = (train["time"].dt.hour * 60 + train["time"].dt.minute).to_numpy()
    for k in range(folds):
        cutoff = end - pd.Timedelta(days=fold_days * (folds - k))
        fit_mask = (train["time"] < cutoff).to_numpy()
        window = (train["time"] >= cutoff) & (train["time"] < cutoff + pd.Timedelta(days=fold_days))
        rows = np.flatnonzero(window.to_numpy() & has_last_two & (minute % stride_min == 0))
        yield train[fit_mask].reset_index(drop=True), rows


def _score(model, train, rows, horizons) -> float:
    steps = np.asarray(horizons) // 5
    out = model.predict_arrays(context_batch(train, rows, 288)).point
    truth = target_paths(train, rows, steps)
    pid = train["patient_id"].astype(str).to_numpy()[rows]
    cols = [list(horizons).index(h) for h in SCORE_HORIZONS if h in horizons]
    err2 = pd.DataFrame((out[:, cols] - truth[:, cols]) ** 2).assign(pid=pid)
    per_patient = np.sqrt(err2.groupby("pid").mean())  # RMSE per patient and horizon
    return float(per_patient.mean().mean())


def grid_search(cls, train: pd.DataFrame, grid: dict | None = None, folds: int = 3, fold_days: float = 1.0,
                horizons=HORIZONS_MIN, base_params: dict | None = None, progress=None, cancel=None) -> SearchResult:
    """Score every configuration of `grid` (default: the family's ``_grid``) by temporal CV on `train`.

    The score is the mean over folds of the patient-averaged RMSE at 30 and 60 minutes (mg/dL).
    """
    grid = grid if grid is not None else getattr(cls, "_grid", {})
    configs = configurations(grid) or [{}]
    fold_list = list(cv_folds(train, folds, fold_days))
    rows, cancelled = [], False
    for i, params in enumerate(configs):
        if cancel is not None and cancel():
            cancelled = True
            break
        started = time.perf_counter()
        scores, error = [], None
        for fit_frame, eval_rows in fold_list:
            try:
                model = cls(**{**(base_params or {}), **params}).fit(fit_frame, horizons)
                scores.append(_score(model, train, eval_rows, horizons))
            except Exception as exc:  # noqa: BLE001 - one failing configuration must not stop the search
                error = f"{type(exc).__name__}: {exc}"
                break
        rows.append({"params": json.dumps(params, default=list), **{f"fold{k}": s for k, s in enumerate(scores)},
                     "score": float(np.mean(scores)) if scores and error is None else np.nan,
                     "seconds": time.perf_counter() - started, "error": error})
        if progress is not None:
            progress((i + 1) / len(configs), f"{cls.name} {params}: {rows[-1]['score']:.2f}")
    table = pd.DataFrame(rows).sort_values("score", na_position="last", ignore_index=True)
    best = None
    if len(table) and np.isfinite(table["score"].iloc[0]):
        best = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(table["params"].iloc[0]).items()}
    return SearchResult(cls.name, table, best, cancelled)
