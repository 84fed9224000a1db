import numpy as np
import pytest

from bgcore.data.dataset import Dataset
from bgcore.evaluation.backtest import backtest, reference_backtests
from bgcore.evaluation.reference import ForecastArrays
from bgcore.evaluation.scoring import as_paths, pit_table, score_events, score_patients, score_probabilistic
from tests.conftest import make_frame, make_patients


class Oracle:
    """Peeks at the true future through a side channel, to have a perfect forecaster to score."""

    def __init__(self, frame, shift_steps=0):
        self.cgm = frame.set_index(["patient_id", "time"])["cgm"]
        self.shift = shift_steps

    def predict_arrays(self, batch, steps):
        times = batch.origin[:, None] + (steps[None, :] - self.shift) * np.timedelta64(5, "m")
        keys = list(zip(np.repeat(batch.patient_id, len(steps)), times.ravel()))
        return ForecastArrays(self.cgm.reindex(keys).to_numpy().reshape(len(batch), len(steps)))


def data(days=10):
    frame = make_frame(("a", "b"), days=days)
    return Dataset("t", frame, make_patients(["a", "b"]))


def test_perfect_forecast_scores():
    d = data()
    forecasts, _ = backtest(d, Oracle(d.frame))
    s = score_patients(forecasts)
    assert len(s) == 2 * 24 and (s["rmse"] == 0).all() and (s["clarke_A"] == 100).all() and (s["parkes_A"] == 100).all()
    assert (s["skill"] == 1).all() and (s["time_lag_min"] == 0).all()


def test_persistence_and_lagged_forecasts():
    d = data()
    refs = reference_backtests(d)
    s = score_patients(refs["persistence"][0])
    assert (s["skill"] == 0).all()
    np.testing.assert_array_equal(s["time_lag_min"], s["horizon"])  # persistence lags by its horizon
    lagged = score_patients(backtest(d, Oracle(d.frame, shift_steps=3))[0])
    at60 = lagged[lagged["horizon"] == 60]
    assert (at60["time_lag_min"] == 15).all()
    # RMSE by hand for one patient and horizon
    f = refs["persistence"][0]
    one = f[(f["patient_id"] == "a") & (f["horizon"] == 30)]
    expected = np.sqrt(np.nanmean((one["pred"] - one["cgm"]) ** 2))
    assert s.set_index(["patient_id", "horizon"]).loc[("a", 30), "rmse"] == pytest.approx(expected)


def test_paths_require_complete_sorted_frames():
    forecasts, _ = backtest(data(), Oracle(data().frame))
    with pytest.raises(ValueError, match="sorted"):
        as_paths(forecasts.iloc[1:])
    with pytest.raises(ValueError, match="sorted"):
        as_paths(forecasts.sample(frac=1, random_state=0))


def test_event_scores_on_a_crafted_dip():
    frame = make_frame(("a",), days=10)
    frame["cgm"] = 120.0
    dip = frame["time"].dt.strftime("%H:%M").between("03:10", "03:40")
    frame.loc[dip, "cgm"] = 60.0  # a nightly hypo, 40 min after the 02:30 origin
    d = Dataset("t", frame, make_patients(["a"]))
    forecasts, _ = backtest(d, Oracle(frame))
    e = score_events(forecasts).set_index(["event", "window_min"])
    hypo60 = e.loc[("hypo<70", 60)]
    assert hypo60["sensitivity"] == 1.0 and hypo60["precision"] == 1.0 and hypo60["false_alarms_per_day"] == 0
    assert hypo60["tp"] == 2 * 2  # origins 02:30 and 03:00 on each of the two test days
    assert hypo60["median_lead_min"] == 25.0  # (40 + 10) / 2
    assert np.isnan(e.loc[("hyper>180", 60), "sensitivity"])  # no hyper event at all
    ref = score_events(reference_backtests(d)["persistence"][0]).set_index(["event", "window_min"])
    assert ref.loc[("hypo<70", 60), "sensitivity"] == 0.0 and ref.loc[("hypo<70", 60), "fn"] == 4


def test_probabilistic_scores_of_persistence_intervals():
    d = data()
    forecasts = reference_backtests(d)["persistence"][0]
    p = score_probabilistic(forecasts)
    assert {"crps", "coverage_50", "width_50", "coverage_80", "coverage_95", "width_95"} <= set(p.columns)
    assert (p["width_95"] >= p["width_80"]).all() and (p["width_80"] >= p["width_50"]).all()
    assert p["coverage_95"].mean() > 0.8 and (p["crps"] > 0).all()
    pit = pit_table(forecasts)
    assert list(pit.index)[:2] == [5, 10] and pit.loc[30].sum() == forecasts[forecasts.horizon == 30]["cgm"].notna().sum()
    assert score_probabilistic(reference_backtests(d)["nightscout_ar2"][0]).empty


def test_grouped_scores_equal_the_reference_metric_functions():
    from bgcore.evaluation import metrics
    d = data()
    forecasts = reference_backtests(d)["nightscout_ar2"][0]
    s = score_patients(forecasts).set_index(["patient_id", "horizon"])
    one = forecasts[forecasts["patient_id"] == "b"]
    truth = one["cgm"].to_numpy().reshape(-1, 24)
    pred = one["pred"].to_numpy().reshape(-1, 24)
    ref = metrics.point_metrics(truth, pred)
    for name in ("rmse", "mae", "mard", "bias"):
        np.testing.assert_allclose(s.loc["b", name].to_numpy(), ref[name])
    j = 5  # 30 minutes
    path = np.column_stack([one["cgm_origin"].to_numpy()[::24], truth[:, : j + 1]])
    assert s.loc[("b", 30), "time_lag_min"] == metrics.time_lag(pred[:, j], path, j + 1)
    zones = metrics.zone_percentages(metrics.parkes_zones(truth[:, j], pred[:, j]))
    np.testing.assert_allclose(s.loc[("b", 30), [f"parkes_{z}" for z in "ABCDE"]].to_numpy(dtype=float), zones)
