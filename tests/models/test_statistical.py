"""Fixed-parameter filtering reproduces statsmodels' forecasts."""

import warnings

import numpy as np
import pytest

from bgcore.models.statistical import arima_filter_forecast, holt_filter_forecast


def ar2_series(n=1200, seed=0):
    rng = np.random.default_rng(seed)
    y = np.zeros(n)
    for t in range(2, n):
        y[t] = 0.6 * y[t - 1] + 0.25 * y[t - 2] + rng.normal(0, 3)
    return 140 + y


def test_ar_filter_equals_statsmodels_forecast():
    from statsmodels.tsa.arima.model import ARIMA
    y = ar2_series()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ARIMA(y, order=(2, 0, 0), trend="c").fit()
    ar = np.array([[res.params[1], res.params[2]]])
    ours = arima_filter_forecast(y[None, -288:], ar, np.zeros((1, 0)), 0, np.array([res.params[0]]), np.arange(1, 25))
    np.testing.assert_allclose(ours[0], res.forecast(24), rtol=1e-9)


def test_arima_with_differencing_and_ma_matches_closely():
    from statsmodels.tsa.arima.model import ARIMA
    y = np.cumsum(ar2_series(seed=1) - 140) / 10 + 140
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ARIMA(y, order=(1, 1, 1)).fit()
    ar, ma = np.array([[res.params[0]]]), np.array([[res.params[1]]])
    ours = arima_filter_forecast(y[None, -288:], ar, ma, 1, np.zeros(1), np.array([1, 6, 24]))
    np.testing.assert_allclose(ours[0], res.forecast(24)[[0, 5, 23]], rtol=1e-4)


def test_holt_filter_matches_statsmodels_after_burn_in():
    from statsmodels.tsa.holtwinters import ExponentialSmoothing
    y = ar2_series(seed=2) + np.linspace(0, 30, 1200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ExponentialSmoothing(y, trend="add", damped_trend=True).fit()
    p = res.params
    ours = holt_filter_forecast(y[None, :], np.array([p["smoothing_level"]]), np.array([p["smoothing_trend"]]),
                                np.array([p["damping_trend"]]), np.array([1, 12, 24]))
    np.testing.assert_allclose(ours[0], res.forecast(24)[[0, 11, 23]], rtol=1e-3)


def test_nan_in_context_is_forward_filled():
    y = ar2_series()[None, -288:].copy()
    gappy = y.copy()
    gappy[0, 100:110] = np.nan
    out = arima_filter_forecast(gappy, np.array([[0.6, 0.25]]), np.zeros((1, 0)), 0, np.array([140.0]), np.arange(1, 4))
    assert np.isfinite(out).all()
    assert out[0, 0] == pytest.approx(140 + 0.6 * (y[0, -1] - 140) + 0.25 * (y[0, -2] - 140))
