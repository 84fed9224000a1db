"""Model inputs computed from the past only: insulin and carbs on board, time of day, history.

Insulin on board (IOB) uses the exponential insulin action curve of LoopKit (peak
`INSULIN_PEAK_MIN`, duration `INSULIN_DURATION_MIN`); carbs on board (COB) use the
two-compartment gut absorption of Hovorka et al. (2004), whose cumulative absorption is
``1 - (1 + t/tmax) exp(-t/tmax)``. Both are causal convolutions of the dose series with
the fraction still active ``k`` steps after a dose, vectorised over all patients at once.
IOB is *total* insulin on board (basal + bolus), not relative to a basal schedule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .schema import STEP_MINUTES

INSULIN_PEAK_MIN = 75.0
"""Time of peak insulin activity for rapid-acting insulin (LoopKit "rapid-acting adult")."""
INSULIN_DURATION_MIN = 360.0
"""Duration of insulin action; IOB reaches exactly zero here."""
CARB_TMAX_MIN = 40.0
"""Time of maximal carbohydrate appearance (Hovorka 2004, t_max,G)."""
CARB_DURATION_MIN = 360.0
"""COB kernel length; 0.1 % of a meal is still unabsorbed at 6 h and is dropped."""
HISTORY_LAGS = (1, 2, 3, 6, 12)
"""CGM lags in steps (5, 10, 15, 30, 60 min) for recent-history features."""
ROLLING_STEPS = (6, 12, 24)
"""Rolling windows in steps (30, 60, 120 min)."""


def insulin_remaining(minutes, peak: float = INSULIN_PEAK_MIN, duration: float = INSULIN_DURATION_MIN):
    """Fraction of a dose still on board after `minutes` (exponential model, 1 at 0, 0 at `duration`)."""
    t = np.asarray(minutes, dtype=float)
    tau = peak * (1 - peak / duration) / (1 - 2 * peak / duration)
    a = 2 * tau / duration
    s = 1 / (1 - a + (1 + a) * np.exp(-duration / tau))
    iob = 1 - s * (1 - a) * ((t ** 2 / (tau * duration * (1 - a)) - t / tau - 1) * np.exp(-t / tau) + 1)
    return np.where(t < 0, 1.0, np.where(t >= duration, 0.0, iob))


def insulin_activity(minutes, peak: float = INSULIN_PEAK_MIN, duration: float = INSULIN_DURATION_MIN):
    """Fraction of a dose acting per minute after `minutes` (minus the derivative of `insulin_remaining`)."""
    t = np.asarray(minutes, dtype=float)
    tau = peak * (1 - peak / duration) / (1 - 2 * peak / duration)
    a = 2 * tau / duration
    s = 1 / (1 - a + (1 + a) * np.exp(-duration / tau))
    return np.where((t < 0) | (t > duration), 0.0, s / tau ** 2 * t * (1 - t / duration) * np.exp(-t / tau))


def carbs_remaining(minutes, tmax: float = CARB_TMAX_MIN, duration: float = CARB_DURATION_MIN):
    """Fraction of a meal not yet absorbed after `minutes` (Hovorka gut model)."""
    t = np.asarray(minutes, dtype=float)
    remaining = (1 + t / tmax) * np.exp(-t / tmax)
    return np.where(t < 0, 1.0, np.where(t >= duration, 0.0, remaining))


def on_board(frame: pd.DataFrame, column: str, remaining) -> np.ndarray:
    """Causal convolution of `column` with the `remaining(minutes)` kernel, per patient.

    Patients are laid end to end with a kernel-length run of zeros between them, so one
    convolution serves all of them without mixing. A patient with no records of `column`
    (all NaN) gets NaN; missing steps of a patient with records count as zero.
    """
    lags = np.arange(0, 24 * 60 // STEP_MINUTES)
    kernel = remaining(lags * STEP_MINUTES)
    kernel = kernel[: np.flatnonzero(kernel > 0).max() + 1]
    codes = pd.factorize(frame["patient_id"])[0]
    position = np.arange(len(frame)) + codes * len(kernel)
    doses = np.zeros(position[-1] + 1 if len(frame) else 0)
    doses[position] = np.nan_to_num(frame[column].to_numpy(dtype=float))
    result = np.convolve(doses, kernel)[: len(doses)][position]  # direct: exact zeros before a dose
    unknown = frame[column].isna().groupby(codes).transform("all").to_numpy()
    return np.where(unknown, np.nan, result)


def time_features(time: pd.Series) -> pd.DataFrame:
    """Time of day as a circle (sin, cos), hour of day and day of week."""
    minute = (time.dt.hour * 60 + time.dt.minute).to_numpy()
    angle = 2 * np.pi * minute / 1440
    return pd.DataFrame({"tod_sin": np.sin(angle), "tod_cos": np.cos(angle), "hour": minute / 60,
                         "dow": time.dt.dayofweek.to_numpy()}, index=time.index)


def history_features(frame: pd.DataFrame, lags=HISTORY_LAGS, windows=ROLLING_STEPS) -> pd.DataFrame:
    """CGM lags, rates of change (mg/dL per min) and rolling mean/sd, from the past only."""
    cgm = frame["cgm"]
    by = cgm.groupby(frame["patient_id"], observed=True, sort=False)
    out = {}
    for k in lags:
        lagged = by.shift(k)
        out[f"cgm_lag{k * STEP_MINUTES}"] = lagged
        out[f"roc{k * STEP_MINUTES}"] = (cgm - lagged) / (k * STEP_MINUTES)
    for w in windows:
        roll = by.rolling(w, min_periods=max(2, w // 2))
        out[f"cgm_mean{w * STEP_MINUTES}"] = roll.mean().reset_index(level=0, drop=True)
        out[f"cgm_sd{w * STEP_MINUTES}"] = roll.std().reset_index(level=0, drop=True)
    return pd.DataFrame(out, index=frame.index)


def add_features(frame: pd.DataFrame, history: bool = True) -> pd.DataFrame:
    """A copy of the canonical `frame` with ``iob``, ``cob``, time-of-day and history columns.

    Every feature at row ``t`` uses rows up to ``t`` of the same patient only.
    """
    out = frame.copy()
    out["iob"] = on_board(frame, "insulin", insulin_remaining)
    out["cob"] = on_board(frame, "carbs", carbs_remaining)
    out = out.join(time_features(frame["time"]))
    if history:
        out = out.join(history_features(frame))
    return out
