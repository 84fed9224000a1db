"""Reference forecasters that every leaderboard shows: persistence and Nightscout's AR2.

Both work on a whole `ContextBatch` at once (no Python loop over origins).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

QUANTILE_LEVELS = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975)


@dataclass
class ForecastArrays:
    """What a forecaster returns for a batch: point ``(n, H)``, optional quantiles ``(n, H, Q)``."""

    point: np.ndarray
    quantiles: np.ndarray | None = None
    levels: tuple[float, ...] | None = None


class Persistence:
    """Last value carried forward, with empirical quantiles of the change over each horizon.

    `fit` learns, per patient and horizon, the quantiles of ``cgm[t + h] - cgm[t]`` on the
    training part only; patients not seen in `fit` use the pooled quantiles.
    """

    name = "persistence"
    family = "reference"

    def __init__(self, levels=QUANTILE_LEVELS):
        self.levels = tuple(levels)

    def fit(self, train: pd.DataFrame, steps) -> "Persistence":
        steps = np.asarray(steps)
        cgm = train["cgm"].to_numpy(dtype=float)
        by = train["patient_id"].astype(str)
        changes = np.column_stack([train["cgm"].groupby(by, sort=False).shift(-s).to_numpy() - cgm for s in steps])
        self.quantiles_ = {}
        for pid, rows in pd.Series(np.arange(len(train))).groupby(by.to_numpy()).groups.items():
            self.quantiles_[pid] = np.nanquantile(changes[rows], self.levels, axis=0).T  # (H, Q)
        self.pooled_ = np.nanquantile(changes, self.levels, axis=0).T
        self.steps_ = steps
        return self

    def predict_arrays(self, batch, steps) -> ForecastArrays:
        last = batch.cgm[:, -1]
        point = np.repeat(last[:, None], len(steps), axis=1)
        if not hasattr(self, "quantiles_"):
            return ForecastArrays(point)
        if not np.array_equal(np.asarray(steps), self.steps_):
            raise ValueError("predict horizons differ from the fitted ones")
        offsets = np.stack([self.quantiles_.get(str(p), self.pooled_) for p in pd.unique(batch.patient_id)])
        which = pd.factorize(batch.patient_id)[0]
        quantiles = last[:, None, None] + offsets[which]
        return ForecastArrays(point, np.sort(quantiles, axis=2), self.levels)


class NightscoutAR2:
    """Nightscout's AR2 forecast: an AR(2) on ``log(glucose / 140)`` with fixed coefficients.

    ``y[k+1] = -0.723 y[k-1] + 1.716 y[k]`` per 5-minute step from the last two readings,
    back-transformed and clipped to 36-400 mg/dL (Nightscout ``lib/plugins/ar2.js``; values
    are not rounded here).
    """

    name = "nightscout_ar2"
    family = "reference"
    BG_REF, BG_MIN, BG_MAX = 140.0, 36.0, 400.0
    COEF = (-0.723, 1.716)

    def fit(self, train: pd.DataFrame, steps) -> "NightscoutAR2":
        return self

    def predict_arrays(self, batch, steps) -> ForecastArrays:
        prev = np.log(batch.cgm[:, -2] / self.BG_REF)
        cur = np.log(batch.cgm[:, -1] / self.BG_REF)
        steps = np.asarray(steps)
        path = np.empty((len(prev), steps.max()))
        for k in range(steps.max()):  # a loop over horizon steps, vectorised over origins
            prev, cur = cur, self.COEF[0] * prev + self.COEF[1] * cur
            path[:, k] = cur
        forecast = np.clip(self.BG_REF * np.exp(path), self.BG_MIN, self.BG_MAX)
        return ForecastArrays(forecast[:, steps - 1])


REFERENCES = {cls.name: cls for cls in (Persistence, NightscoutAR2)}
