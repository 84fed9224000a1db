import numpy as np
import pandas as pd
import pytest

from bgcore.data.features import (add_features, carbs_remaining, history_features, insulin_activity,
                                  insulin_remaining, on_board, time_features)
from tests.conftest import make_frame


def test_insulin_curve_hand_computed_values():
    # peak 75 min, duration 360 min: tau = 101.786, a = 0.56548, S = 2.0829 (LoopKit exponential model)
    assert insulin_remaining(0) == pytest.approx(1.0)
    assert insulin_remaining(60) == pytest.approx(0.7793, abs=5e-4)
    assert insulin_remaining(360) == 0.0 and insulin_remaining(500) == 0.0
    assert insulin_remaining(-5) == 1.0
    t = np.arange(0, 361)
    assert np.all(np.diff(insulin_remaining(t)) <= 0)
    assert int(np.argmax(insulin_activity(t))) == 75  # activity peaks at the stated peak


def test_insulin_remaining_is_one_minus_integrated_activity():
    t = np.linspace(0, 360, 36001)
    activity = insulin_activity(t)
    absorbed = np.concatenate([[0], np.cumsum((activity[1:] + activity[:-1]) / 2 * np.diff(t))])
    np.testing.assert_allclose(insulin_remaining(t), 1 - absorbed, atol=1e-6)


def test_carb_curve_hovorka():
    assert carbs_remaining(0) == 1.0
    assert carbs_remaining(40) == pytest.approx(2 * np.exp(-1))  # (1 + t/tmax) e^(-t/tmax)
    assert carbs_remaining(120) == pytest.approx(4 * np.exp(-3))
    assert carbs_remaining(360) == 0.0


def _doses(values, pid="a"):
    n = len(values)
    return pd.DataFrame({"patient_id": pid, "time": pd.date_range("2024-01-01", periods=n, freq="5min"),
                         "cgm": 100.0, "carbs": 0.0, "insulin": np.asarray(values, dtype=float)})


def test_iob_of_one_bolus_follows_the_curve_and_is_causal():
    values = np.zeros(100)
    values[10] = 2.0
    iob = on_board(_doses(values), "insulin", insulin_remaining)
    assert np.all(iob[:10] == 0)
    np.testing.assert_allclose(iob[10:], 2 * insulin_remaining(np.arange(90) * 5), atol=1e-9)
    later = values.copy()
    later[50:] = 7.0  # changing the future never changes the past
    np.testing.assert_allclose(on_board(_doses(later), "insulin", insulin_remaining)[:50], iob[:50], atol=1e-9)


def test_iob_superposes_and_reaches_basal_steady_state():
    rate = 0.1  # U per 5-minute step
    iob = on_board(_doses(np.full(200, rate)), "insulin", insulin_remaining)
    steady = rate * insulin_remaining(np.arange(72) * 5).sum()
    assert iob[-1] == pytest.approx(steady)
    assert iob[150] == pytest.approx(steady)


def test_on_board_does_not_leak_between_patients_and_unknown_is_nan():
    a = _doses(np.r_[5.0, np.zeros(9)], "a")
    b = _doses(np.zeros(10), "b")
    c = _doses(np.full(10, np.nan), "c")
    frame = pd.concat([a, b, c], ignore_index=True)
    iob = on_board(frame, "insulin", insulin_remaining)
    assert iob[0] == 5.0 and np.all(iob[10:20] == 0) and np.isnan(iob[20:]).all()


def test_time_and_history_features_use_the_past_only():
    frame = make_frame(("a", "b"), days=1)
    tf = time_features(frame["time"])
    assert tf.loc[0, "tod_sin"] == pytest.approx(0.0) and tf.loc[0, "tod_cos"] == pytest.approx(1.0)
    assert tf.loc[72, "hour"] == 6.0
    hist = history_features(frame)
    b_first = frame.index[frame["patient_id"] == "b"][0]
    assert np.isnan(hist.loc[b_first, "cgm_lag5"])  # no leakage from patient a
    assert hist.loc[b_first + 1, "cgm_lag5"] == frame.loc[b_first, "cgm"]
    assert hist.loc[10, "roc15"] == pytest.approx((frame.loc[10, "cgm"] - frame.loc[7, "cgm"]) / 15)
    assert hist.loc[30, "cgm_mean30"] == pytest.approx(frame.loc[25:30, "cgm"].mean())
    changed = frame.copy()
    changed.loc[31:, "cgm"] = 300.0
    pd.testing.assert_frame_equal(history_features(changed).loc[:30], hist.loc[:30])


def test_add_features_keeps_input_untouched():
    frame = make_frame(("a",), days=1)
    before = frame.copy()
    out = add_features(frame)
    pd.testing.assert_frame_equal(frame, before)
    assert {"iob", "cob", "tod_sin", "cgm_lag30", "roc5", "cgm_sd120"} <= set(out.columns)
    assert out.loc[out["time"].dt.strftime("%H:%M") == "08:00", "cob"].iloc[0] == pytest.approx(50.0)
