import numpy as np
import pandas as pd
import pytest

from bgcore.data.dataset import Dataset
from bgcore.evaluation.backtest import backtest, quantile_columns, reference_backtests
from bgcore.evaluation.protocol import context_batch
from bgcore.evaluation.reference import ForecastArrays, NightscoutAR2, Persistence
from tests.conftest import make_frame, make_patients


def dataset(patients=("a", "b"), days=10, bg=False):
    frame = make_frame(patients, days=days)
    if bg:
        frame["bg"] = frame["cgm"] + 3.0
    return Dataset("t", frame, make_patients(patients))


def test_persistence_quantiles_learn_the_change_from_train_only():
    frame = make_frame(("a",), days=2)
    frame["cgm"] = 100.0 + np.arange(len(frame)) * 0.1  # a steady rise of 0.1 mg/dL per step
    model = Persistence(levels=(0.1, 0.5, 0.9)).fit(frame, np.array([1, 6]))
    batch = context_batch(frame, np.array([100]), 12)
    out = model.predict_arrays(batch, np.array([1, 6]))
    assert out.point.tolist() == [[frame["cgm"][100]] * 2]
    np.testing.assert_allclose(out.quantiles[0, 1], frame["cgm"][100] + 0.6)
    unseen = context_batch(frame.assign(patient_id="z"), np.array([100]), 12)
    np.testing.assert_allclose(model.predict_arrays(unseen, np.array([1, 6])).quantiles, out.quantiles)  # pooled


def test_nightscout_ar2_hand_computed():
    frame = make_frame(("a",), days=1)
    frame.loc[10, "cgm"], frame.loc[11, "cgm"] = 100.0, 110.0
    batch = context_batch(frame, np.array([11]), 12)
    y0, y1 = np.log(100 / 140), np.log(110 / 140)
    y2 = -0.723 * y0 + 1.716 * y1
    y3 = -0.723 * y1 + 1.716 * y2
    out = NightscoutAR2().predict_arrays(batch, np.array([1, 2]))
    np.testing.assert_allclose(out.point[0], [140 * np.exp(y2), 140 * np.exp(y3)])
    flat = context_batch(frame.assign(cgm=140.0), np.array([11]), 12)
    np.testing.assert_allclose(NightscoutAR2().predict_arrays(flat, np.arange(1, 25)).point, 140.0)
    steep = frame.copy()
    steep.loc[10, "cgm"], steep.loc[11, "cgm"] = 300.0, 390.0
    path = NightscoutAR2().predict_arrays(context_batch(steep, np.array([11]), 12), np.arange(1, 25)).point[0]
    assert path.max() == 400.0 and path[0] == 400.0  # clipped to the 36-400 mg/dL range


def test_backtest_frame_is_tidy_complete_and_carries_truth():
    data = dataset(bg=True)
    forecasts, card = backtest(data, Persistence())
    H = 24
    assert len(forecasts) == card["n_origins"] * H
    assert forecasts["horizon"].tolist()[:H] == list(range(5, 121, 5))
    assert forecasts.equals(forecasts.sort_values(["patient_id", "origin", "horizon"]))
    np.testing.assert_array_equal(forecasts["pred"], forecasts["cgm_origin"])
    cgm = data.frame.set_index(["patient_id", "time"])["cgm"]
    sample = forecasts.iloc[[0, 7, 500]]
    expected = cgm.reindex(list(zip(sample["patient_id"], sample["origin"] + pd.to_timedelta(sample["horizon"], "m"))))
    np.testing.assert_array_equal(sample["cgm"].to_numpy(), expected.to_numpy())
    observed = forecasts["cgm"].notna()
    np.testing.assert_allclose((forecasts["bg"] - forecasts["cgm"])[observed], 3.0)
    np.testing.assert_allclose(forecasts["bg_origin"] - forecasts["cgm_origin"], 3.0)
    assert card["dataset"] == "t" and card["n_origins"] == len(forecasts[["patient_id", "origin"]].drop_duplicates())


def test_reference_backtests_share_origins_and_quantiles_are_stored():
    refs = reference_backtests(dataset())
    (fp, _), (fa, _) = refs["persistence"], refs["nightscout_ar2"]
    pd.testing.assert_frame_equal(fp[["patient_id", "origin", "horizon"]], fa[["patient_id", "origin", "horizon"]])
    cols, levels = quantile_columns(fp)
    assert levels.tolist() == [0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975] and quantile_columns(fa)[0] == []
    assert (fp[cols].diff(axis=1).iloc[:, 1:] >= 0).all().all()  # quantiles are ordered


def test_wrong_shape_from_a_forecaster_is_an_error():
    class Broken:
        def predict_arrays(self, batch, steps):
            return ForecastArrays(np.zeros((len(batch), 3)))

    with pytest.raises(ValueError, match="shape"):
        backtest(dataset(), Broken())
