"""Model inputs from a `ContextBatch` (the past only), and training examples from a train frame.

Training and prediction build features with the same function on the same kind of
context windows, so a model cannot see at training time anything it will not have at
forecast time.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..data.features import carbs_remaining, insulin_remaining
from ..data.schema import STEP_MINUTES
from ..evaluation.protocol import ContextBatch, context_batch, target_paths

LAGS = (0, 1, 2, 3, 4, 6, 9, 12, 18, 24, 36)
ROLLING = (6, 12, 24)
SUMS = (6, 12, 24)
ACTION_STEPS = 72  # six hours: the insulin and carb kernels are no longer


def fill_past(values: np.ndarray) -> np.ndarray:
    """Forward-fill NaN along each row (leading NaN take the row's first value), vectorised."""
    values = np.asarray(values, dtype=float)
    valid = np.isfinite(values)
    idx = np.where(valid, np.arange(values.shape[1])[None, :], 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    filled = np.take_along_axis(values, idx, axis=1)
    first = np.take_along_axis(values, np.argmax(valid, axis=1)[:, None], axis=1)
    return np.where(np.isfinite(filled), filled, first)


def observed_past(cgm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Context windows with gaps forward-filled (rows never observed are 0), and the observed mask."""
    cgm = np.asarray(cgm, dtype=float)
    return np.nan_to_num(fill_past(cgm), nan=0.0), np.isfinite(cgm)


def on_board_at_origin(amounts: np.ndarray, remaining) -> np.ndarray:
    """Insulin or carbs on board at the origin from the context window (NaN doses count as 0)."""
    steps = min(ACTION_STEPS, amounts.shape[1])
    kernel = remaining(np.arange(steps) * STEP_MINUTES)
    recent = np.nan_to_num(amounts[:, -steps:][:, ::-1])
    return recent @ kernel


def batch_features(batch: ContextBatch, covariates: bool = True) -> tuple[np.ndarray, list[str]]:
    """Feature matrix ``(n, F)`` at each origin: lags, deltas, rolling stats, IOB/COB, sums, time of day."""
    cgm = batch.cgm
    filled = fill_past(cgm)
    L = cgm.shape[1]
    cols, names = [], []
    for lag in LAGS:
        if lag < L:
            cols.append(filled[:, -1 - lag])
            names.append(f"cgm_lag{lag * STEP_MINUTES}")
    for k in (1, 3, 6, 12):
        if k < L:
            cols.append((filled[:, -1] - filled[:, -1 - k]) / (k * STEP_MINUTES))
            names.append(f"roc{k * STEP_MINUTES}")
    for w in ROLLING:
        window = cgm[:, -w:]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing window gives NaN, set to 0 below
            cols += [np.nanmean(window, axis=1), np.nanstd(window, axis=1)]
        names += [f"mean{w * STEP_MINUTES}", f"sd{w * STEP_MINUTES}"]
    cols.append(np.isfinite(cgm[:, -12:]).mean(axis=1))
    names.append("present60")
    if covariates:
        cols += [on_board_at_origin(batch.insulin, insulin_remaining), on_board_at_origin(batch.carbs, carbs_remaining)]
        names += ["iob", "cob"]
        for w in SUMS:
            cols += [np.nansum(batch.insulin[:, -w:], axis=1), np.nansum(batch.carbs[:, -w:], axis=1)]
            names += [f"insulin{w * STEP_MINUTES}", f"carbs{w * STEP_MINUTES}"]
    minute = pd.DatetimeIndex(batch.origin).hour * 60 + pd.DatetimeIndex(batch.origin).minute
    angle = 2 * np.pi * np.asarray(minute) / 1440
    cols += [np.sin(angle), np.cos(angle)]
    names += ["tod_sin", "tod_cos"]
    X = np.column_stack(cols)
    return np.where(np.isfinite(X), X, 0.0), names


def training_examples(train: pd.DataFrame, steps: np.ndarray, context_steps: int, stride_steps: int = 1,
                      min_target_fraction: float = 0.5) -> tuple[ContextBatch, np.ndarray]:
    """Origins inside `train` (every `stride_steps`) with their past windows and future targets.

    Origins need their last two readings; targets come from `train` itself, so nothing
    after the end of the training part is ever used.
    """
    cgm = train["cgm"].to_numpy(dtype=float)
    pid = train["patient_id"].astype(str).to_numpy()
    same_prev = np.r_[False, pid[1:] == pid[:-1]]
    candidates = np.flatnonzero(np.isfinite(cgm) & np.r_[False, np.isfinite(cgm[:-1])] & same_prev)
    candidates = candidates[::stride_steps]
    targets = target_paths(train, candidates, steps)
    keep = np.isfinite(targets).mean(axis=1) >= min_target_fraction
    rows = candidates[keep]
    return context_batch(train, rows, context_steps), targets[keep]
