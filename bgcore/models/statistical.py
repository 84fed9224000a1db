"""Statistical family: naive baselines, ARIMA, exponential smoothing, Theta, ARX, Nightscout AR2.

Parameters are fitted once per patient (statsmodels) on the training part; forecasts for
many origins apply those fixed parameters to each origin's context window by filtering
(vectorised over origins, one small loop over the window), never refitting per origin.
NaN inside a context window are forward-filled before filtering.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..data.features import carbs_remaining, insulin_remaining
from ..data.schema import DataError
from ..evaluation.reference import ForecastArrays, NightscoutAR2, Persistence
from .base import Forecaster
from .features import fill_past, on_board_at_origin, training_examples
from .registry import register


class _Statistical(Forecaster):
    _tags = {"family": "statistical", "scope": "local"}

    def _patient_rows(self, batch):
        """Index of each origin's patient in the fitted parameter table; error for unseen patients."""
        unknown = sorted(set(batch.patient_id) - set(self.patients_))
        if unknown:
            raise DataError(f"{self.name} is a per-patient model and was not fitted for {unknown[:3]}",
                            column="patient_id", expected="patients of the training data")
        lookup = {p: i for i, p in enumerate(self.patients_)}
        return np.array([lookup[p] for p in batch.patient_id], dtype=int)

    @staticmethod
    def _series(train: pd.DataFrame, days: float | None):
        """Per patient: the train CGM of the last `days` (all if None)."""
        out = {}
        for pid, g in train.groupby("patient_id", observed=True, sort=True):
            if days is not None:
                g = g[g["time"] > g["time"].max() - pd.Timedelta(days=days)]
            out[str(pid)] = g["cgm"].to_numpy(dtype=float)
        return out


@register
class Naive(_Statistical):
    """Last value carried forward, with per-patient empirical quantiles of the change (from train).

    Patients not seen in training get the pooled quantiles, so it forecasts anyone (scope global).
    """

    name = "naive"
    _tags = {"probabilistic": True, "min_train_steps": 48, "scope": "global"}

    def _fit(self, train):
        self.model_ = Persistence().fit(train, self.steps_)
        self.patients_ = sorted(self.model_.quantiles_)

    def _predict(self, batch):
        return self.model_.predict_arrays(batch, self.steps_)

    def _save_state(self, folder):
        np.savez(folder / "quantiles.npz", pooled=self.model_.pooled_,
                 **{f"p_{i}": self.model_.quantiles_[p] for i, p in enumerate(self.patients_)})
        (folder / "patients.txt").write_text("\n".join(self.patients_))

    def _load_state(self, folder):
        data = np.load(folder / "quantiles.npz")
        self.patients_ = (folder / "patients.txt").read_text().splitlines()
        self.model_ = Persistence()
        self.model_.quantiles_ = {p: data[f"p_{i}"] for i, p in enumerate(self.patients_)}
        self.model_.pooled_, self.model_.steps_ = data["pooled"], self.steps_


class _Stateless(_Statistical):
    """Rules that learn nothing: they forecast any patient from its context alone."""

    _tags = {"scope": "global", "min_train_steps": 2}

    def _fit(self, train):
        pass


@register
class WindowMean(_Stateless):
    """Mean of the last `window` readings."""

    name = "mean"
    _defaults = {"window": 12}
    _grid = {"window": [3, 6, 12, 24, 72]}

    def _predict(self, batch):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            level = np.nanmean(batch.cgm[:, -self.window:], axis=1)
        return ForecastArrays(np.repeat(level[:, None], len(self.steps_), axis=1))


@register
class Drift(_Stateless):
    """Straight line through the first and last of the last `window` readings, extended."""

    name = "drift"
    _defaults = {"window": 6}
    _grid = {"window": [2, 3, 6, 12, 24]}

    def _predict(self, batch):
        recent = fill_past(batch.cgm[:, -self.window:])
        slope = (recent[:, -1] - recent[:, 0]) / max(self.window - 1, 1)
        return ForecastArrays(recent[:, -1:] + slope[:, None] * self.steps_[None, :])


@register
class SeasonalNaive(_Stateless):
    """The reading one day before the target time (daily seasonality)."""

    name = "seasonal_naive"
    _tags = {"min_history_steps": 288}

    def _predict(self, batch):
        filled = fill_past(batch.cgm)
        L = filled.shape[1]
        return ForecastArrays(filled[:, L - 1 - 288 + self.steps_])


@register
class NightscoutAR2Forecaster(_Stateless):
    """Nightscout's AR2 (log-space AR(2) around 140 mg/dL), what CGM users already see."""

    name = "nightscout_ar2"

    def _predict(self, batch):
        return NightscoutAR2().predict_arrays(batch, self.steps_)


def arima_filter_forecast(context: np.ndarray, ar: np.ndarray, ma: np.ndarray, d: int, mean: np.ndarray,
                          steps: np.ndarray) -> np.ndarray:
    """Forecast ARIMA(p, d, q) with fixed parameters from each row of `context` (n, L), vectorised.

    ``ar`` (n, p), ``ma`` (n, q), ``mean`` (n,) are per row (each origin's patient). The
    differenced series is filtered through the window to recover the innovations, then
    forecast recursively with future innovations zero, then integrated back.
    """
    y = fill_past(context)
    w = np.diff(y, n=d, axis=1) if d else y
    n, L = w.shape
    p, q = ar.shape[1], ma.shape[1]
    x = w - mean[:, None]
    e = np.zeros_like(x)
    start = max(p, q)
    for t in range(start, L):  # innovations through the window; one step per column, all origins at once
        pred = (ar * x[:, t - np.arange(1, p + 1)]).sum(axis=1) if p else 0.0
        if q:
            pred = pred + (ma * e[:, t - np.arange(1, q + 1)]).sum(axis=1)
        e[:, t] = x[:, t] - pred
    H = int(steps.max())
    hist_x = np.concatenate([x, np.zeros((n, H))], axis=1)
    hist_e = np.concatenate([e, np.zeros((n, H))], axis=1)
    for k in range(L, L + H):
        val = (ar * hist_x[:, k - np.arange(1, p + 1)]).sum(axis=1) if p else np.zeros(n)
        if q:
            val = val + (ma * hist_e[:, k - np.arange(1, q + 1)]).sum(axis=1)
        hist_x[:, k] = val
    future = hist_x[:, L:] + mean[:, None]
    for level in range(d, 0, -1):  # integrate back: cumulative sums from the last observed levels
        last = np.diff(y, n=level - 1, axis=1)[:, -1] if level > 1 else y[:, -1]
        future = last[:, None] + np.cumsum(future, axis=1)
    return future[:, steps - 1]


@register
class ARIMA(_Statistical):
    """ARIMA(p, d, q) fitted per patient (statsmodels) on the last `fit_days` of train."""

    name = "arima"
    _defaults = {"order": (2, 1, 0), "fit_days": 7.0}
    _grid = {"order": [(p, d, q) for p in (1, 2, 3) for d in (0, 1) for q in (0, 1)]}
    _tags = {"min_history_steps": 24, "min_train_steps": 288, "requires": ("statsmodels",)}

    def _fit_one(self, y, order):
        from statsmodels.tsa.arima.model import ARIMA as SMARIMA
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = SMARIMA(y, order=order, trend="c" if order[1] == 0 else "n").fit()
        names = res.model.param_names
        params = dict(zip(names, np.asarray(res.params)))
        ar = np.array([params.get(f"ar.L{i}", 0.0) for i in range(1, order[0] + 1)])
        ma = np.array([params.get(f"ma.L{i}", 0.0) for i in range(1, order[2] + 1)])
        return ar, ma, params.get("const", 0.0), float(res.aic)

    def _fit(self, train):
        series = self._series(train, self.fit_days)
        self.patients_ = sorted(series)
        p, d, q = self.order
        self.ar_, self.ma_, self.mean_ = np.zeros((len(series), p)), np.zeros((len(series), q)), np.zeros(len(series))
        self.d_ = d
        for i, pid in enumerate(self.patients_):
            if self._cancelled():
                raise InterruptedError("fit cancelled")
            self.ar_[i], self.ma_[i], self.mean_[i], _ = self._fit_one(series[pid], self.order)
            self._report((i + 1) / len(series), f"{self.name} {pid}")

    def _predict(self, batch):
        rows = self._patient_rows(batch)
        return ForecastArrays(arima_filter_forecast(batch.cgm, self.ar_[rows], self.ma_[rows], self.d_,
                                                    self.mean_[rows], self.steps_))


@register
class AutoARIMA(ARIMA):
    """ARIMA whose order is chosen per patient by AIC over `orders` (the auto-ARIMA idea)."""

    name = "auto_arima"
    _defaults = {"orders": ((1, 1, 0), (2, 1, 0), (1, 1, 1), (2, 0, 1), (3, 0, 0)), "fit_days": 4.0}
    _grid = {"fit_days": [2.0, 4.0, 7.0]}

    def _fit(self, train):
        series = self._series(train, self.fit_days)
        self.patients_ = sorted(series)
        fits = {}
        for i, pid in enumerate(self.patients_):
            best = None
            for order in self.orders:
                if self._cancelled():
                    raise InterruptedError("fit cancelled")
                ar, ma, mean, aic = self._fit_one(series[pid], tuple(order))
                if best is None or aic < best[-1]:
                    best = (tuple(order), ar, ma, mean, aic)
            fits[pid] = best
            self._report((i + 1) / len(series), f"{self.name} {pid}: order {best[0]}")
        self.orders_ = np.array([fits[p][0] for p in self.patients_])
        pmax = max(o[0] for o in self.orders)
        qmax = max(o[2] for o in self.orders)
        self.ar_ = np.array([np.pad(fits[p][1], (0, pmax - len(fits[p][1]))) for p in self.patients_]).reshape(-1, pmax)
        self.ma_ = np.array([np.pad(fits[p][2], (0, qmax - len(fits[p][2]))) for p in self.patients_]).reshape(-1, qmax)
        self.mean_ = np.array([fits[p][3] for p in self.patients_])

    def _predict(self, batch):
        rows = self._patient_rows(batch)
        out = np.empty((len(batch), len(self.steps_)))
        for d in np.unique(self.orders_[:, 1]):  # one vectorised pass per differencing order
            mine = self.orders_[rows, 1] == d
            out[mine] = arima_filter_forecast(batch.cgm[mine], self.ar_[rows[mine]], self.ma_[rows[mine]], int(d),
                                              np.where(d == 0, self.mean_[rows[mine]], 0.0), self.steps_)
        return ForecastArrays(out)


def holt_filter_forecast(context, alpha, beta, phi, steps) -> np.ndarray:
    """Damped-trend Holt smoothing with fixed parameters over each context row, then forecast."""
    y = fill_past(context)
    level, trend = y[:, 0].copy(), np.zeros(len(y))
    for t in range(1, y.shape[1]):
        prev = level
        level = alpha * y[:, t] + (1 - alpha) * (prev + phi * trend)
        trend = beta * (level - prev) + (1 - beta) * phi * trend
    damp = np.cumsum(phi[:, None] ** np.arange(1, int(steps.max()) + 1)[None, :], axis=1)
    return level[:, None] + trend[:, None] * damp[:, steps - 1]


@register
class ETS(_Statistical):
    """Exponential smoothing with additive damped trend (Holt), fitted per patient (statsmodels)."""

    name = "ets"
    _defaults = {"damped": True, "fit_days": 7.0}
    _grid = {"damped": [True, False], "fit_days": [3.0, 7.0]}
    _tags = {"min_history_steps": 24, "requires": ("statsmodels",)}

    def _fit(self, train):
        from statsmodels.tsa.holtwinters import ExponentialSmoothing
        series = self._series(train, self.fit_days)
        self.patients_ = sorted(series)
        self.alpha_, self.beta_, self.phi_ = (np.zeros(len(series)) for _ in range(3))
        for i, pid in enumerate(self.patients_):
            y = pd.Series(series[pid]).ffill().bfill().to_numpy()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = ExponentialSmoothing(y, trend="add", damped_trend=bool(self.damped)).fit()
            self.alpha_[i] = res.params["smoothing_level"]
            self.beta_[i] = res.params["smoothing_trend"]
            self.phi_[i] = res.params["damping_trend"] if self.damped else 1.0
            self._report((i + 1) / len(series), f"{self.name} {pid}")

    def _predict(self, batch):
        rows = self._patient_rows(batch)
        return ForecastArrays(holt_filter_forecast(batch.cgm, self.alpha_[rows], self.beta_[rows], self.phi_[rows],
                                                   self.steps_))


@register
class Theta(_Statistical):
    """Theta method: simple exponential smoothing plus half the linear trend of the last `trend_window` steps."""

    name = "theta"
    _defaults = {"trend_window": 36, "fit_days": 7.0}
    _grid = {"trend_window": [12, 36, 144, 288]}
    _tags = {"min_history_steps": 12, "requires": ("statsmodels",)}

    def _fit(self, train):
        from statsmodels.tsa.holtwinters import SimpleExpSmoothing
        series = self._series(train, self.fit_days)
        self.patients_ = sorted(series)
        self.alpha_ = np.zeros(len(series))
        for i, pid in enumerate(self.patients_):
            y = pd.Series(series[pid]).ffill().bfill().to_numpy()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.alpha_[i] = SimpleExpSmoothing(y, initialization_method="estimated").fit().params["smoothing_level"]

    def _predict(self, batch):
        rows = self._patient_rows(batch)
        alpha = np.clip(self.alpha_[rows], 1e-3, 1.0)
        y = fill_past(batch.cgm)
        level = y[:, 0].copy()
        for t in range(1, y.shape[1]):
            level = alpha * y[:, t] + (1 - alpha) * level
        w = min(self.trend_window, y.shape[1])
        x = np.arange(w) - (w - 1) / 2
        slope = (y[:, -w:] * x).sum(axis=1) / (x ** 2).sum()
        h = self.steps_[None, :]
        return ForecastArrays(level[:, None] + slope[:, None] / 2 * (h - 1 + 1 / alpha[:, None]))


@register
class ARX(_Statistical):
    """Linear AR with exogenous inputs: per patient and horizon, least squares of the change
    ``cgm[t+h] - cgm[t]`` on the last `lags` readings, insulin and carbs on board (ridge `l2`)."""

    name = "arx"
    _defaults = {"lags": 6, "l2": 1.0}
    _grid = {"lags": [3, 6, 12], "l2": [0.1, 1.0, 10.0]}
    _tags = {"covariates": ("insulin", "carbs"), "min_history_steps": 72, "min_train_steps": 288}

    def _design(self, batch):
        y = fill_past(batch.cgm)
        lags = y[:, -self.lags:] - y[:, -1:]
        return np.column_stack([np.ones(len(y)), lags, on_board_at_origin(batch.insulin, insulin_remaining),
                                on_board_at_origin(batch.carbs, carbs_remaining) / 10.0])

    def _fit(self, train):
        batch, targets = training_examples(train, self.steps_, 72, stride_steps=3)
        X = self._design(batch)
        change = targets - batch.cgm[:, -1:]
        self.patients_ = sorted(set(batch.patient_id))
        self.coef_ = np.zeros((len(self.patients_), X.shape[1], len(self.steps_)))
        penalty = self.l2 * np.eye(X.shape[1])
        penalty[0, 0] = 0.0
        for i, pid in enumerate(self.patients_):
            mine = batch.patient_id == pid
            for j in range(len(self.steps_)):
                ok = mine & np.isfinite(change[:, j])
                A = X[ok]
                self.coef_[i, :, j] = np.linalg.solve(A.T @ A + penalty, A.T @ change[ok, j])

    def _predict(self, batch):
        rows = self._patient_rows(batch)
        X = self._design(batch)
        return ForecastArrays(fill_past(batch.cgm)[:, -1:] + np.einsum("nf,nfh->nh", X, self.coef_[rows]))
