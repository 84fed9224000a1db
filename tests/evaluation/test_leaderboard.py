import numpy as np
import pandas as pd
import pytest

from bgcore.data.dataset import Dataset
from bgcore.evaluation.backtest import backtest, reference_backtests
from bgcore.evaluation.leaderboard import (best_per_family, bootstrap_ci, build_leaderboard, compare_goals,
                                           leaderboard, run_scores)
from bgcore.evaluation.protocol import DEFAULT_PROTOCOL
from bgcore.evaluation.reference import ForecastArrays
from bgcore.store import list_runs, load_forecasts, save_run
from tests.conftest import make_frame, make_patients


class Offset:
    """Persistence plus a constant offset per patient (a forecaster with known errors)."""

    def __init__(self, offsets):
        self.offsets = offsets

    def predict_arrays(self, batch, steps):
        off = np.array([self.offsets[p] for p in batch.patient_id])
        return ForecastArrays(np.repeat(batch.cgm[:, -1:], len(steps), axis=1) + off[:, None])


def flat_dataset(patients=("a", "b", "c")):
    frame = make_frame(patients, days=10)
    frame["cgm"] = 100.0  # constant truth: the error of an offset forecaster is the offset
    return Dataset("t", frame, make_patients(patients))


def test_bootstrap_interval():
    assert bootstrap_ci([5.0, 5.0, 5.0]) == (5.0, 5.0)
    values = np.random.default_rng(1).normal(10, 2, 400)
    lo, hi = bootstrap_ci(values, n_boot=2000, seed=3)
    assert lo < values.mean() < hi and hi - lo == pytest.approx(2 * 1.96 * 2 / np.sqrt(400), rel=0.15)
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert np.isnan(bootstrap_ci([np.nan])[0])


def test_leaderboard_ranks_runs_by_patient_mean_rmse():
    d = flat_dataset()
    fa, _ = backtest(d, Offset({"a": 2, "b": 4, "c": 6}))
    fb, _ = backtest(d, Offset({"a": 1, "b": 1, "c": 11}))
    runs = [{"run_id": "A", "model": "m1", "family": "ml", "goal": "single", "created": "1"},
            {"run_id": "B", "model": "m2", "family": "ml", "goal": "multi", "created": "2"},
            {"run_id": "C", "model": "m3", "family": "deep", "goal": "single", "created": "3"}]
    fc, _ = backtest(d, Offset({"a": 3, "b": 3, "c": 3}))
    scores = run_scores({"A": fa, "B": fb, "C": fc})
    board = leaderboard(scores, runs, horizon=30)
    assert board["run_id"].tolist() == ["C", "A", "B"] and board["rank"].tolist() == [1, 2, 3]
    row = board.set_index("run_id")
    assert row.loc["A", "rmse"] == pytest.approx(4.0) and row.loc["A", "rmse_median"] == pytest.approx(4.0)
    assert row.loc["B", "rmse"] == pytest.approx(13 / 3) and row.loc["B", "rmse_median"] == pytest.approx(1.0)
    assert row.loc["A", "rmse_lo"] <= 4.0 <= row.loc["A", "rmse_hi"] and row.loc["A", "patients"] == 3
    assert row.loc["C", "bias"] == pytest.approx(3.0) and row.loc["C", "clarke_A"] == 100.0
    assert best_per_family(board)["run_id"].tolist() == ["C", "A"]


def test_compare_goals_is_paired_on_common_origins():
    d = flat_dataset()
    single, _ = backtest(d, Offset({"a": 10, "b": 10, "c": 10}))
    multi, _ = backtest(d, Offset({"a": 8, "b": 8, "c": 8}))
    extra = multi.copy()
    extra = extra[extra["origin"] > extra["origin"].min()]  # multi lacks the first origin
    runs = [{"run_id": "s", "family": "ml", "goal": "single", "created": "1"},
            {"run_id": "m", "family": "ml", "goal": "multi", "created": "2"},
            {"run_id": "x", "family": "deep", "goal": "multi", "created": "3"}]
    out = compare_goals({"s": single, "m": extra, "x": multi}, runs, family="ml", horizon=30)
    assert len(out) == 1
    row = out.iloc[0]
    assert (row["goal_a"], row["goal_b"]) == ("single", "multi")
    assert row["difference"] == pytest.approx(-2.0) and row["difference_lo"] == pytest.approx(-2.0)
    assert row["patients"] == 3 and row["pairs"] == len(extra[extra["horizon"] == 30])


def test_build_leaderboard_from_the_store_with_reference_rows():
    d = flat_dataset()
    d.frame["cgm"] = make_frame(("a", "b", "c"), days=10)["cgm"]  # realistic variation again
    empty = build_leaderboard(d)
    assert sorted(empty["board"]["model"]) == ["nightscout_ar2", "persistence"]
    assert all(r["run_id"].startswith("unsaved-") for r in empty["runs"])
    forecasts, card = backtest(d, Offset({"a": 1, "b": 1, "c": 1}))
    record = save_run(forecasts, card, model="offset", family="ml", goal="single",
                      protocol_key=DEFAULT_PROTOCOL.key())
    for name, (f, c) in reference_backtests(d).items():
        save_run(f, c, model=name, family="reference", goal="reference", protocol_key=DEFAULT_PROTOCOL.key())
    stale = card | {"data_fingerprint": "0" * 16}
    save_run(forecasts, stale, model="old", family="ml", goal="single", protocol_key=DEFAULT_PROTOCOL.key())
    result = build_leaderboard(d, horizon=60)
    assert sorted(result["board"]["model"]) == ["nightscout_ar2", "offset", "persistence"]
    assert result["excluded"] == 1 and not any(r["run_id"].startswith("unsaved-") for r in result["runs"])
    assert result["card"]["data_fingerprint"] == card["data_fingerprint"]
    pd.testing.assert_frame_equal(load_forecasts(record["run_id"], verify=True), forecasts)
    assert len(list_runs("t")) == 4 and list_runs("other") == []
    with pytest.raises(ValueError, match="horizon"):
        build_leaderboard(d, horizon=7)
    with pytest.raises(ValueError, match="true glucose"):
        build_leaderboard(d, target="bg")


def test_board_view_rescores_a_patient_group_and_filters_goals():
    from bgcore.evaluation.leaderboard import board_view, horizon_curves, patient_scores
    d = flat_dataset()
    patients = make_patients(("a", "b", "c")).assign(age_group=["adult", "adult", "child"])
    fa, _ = backtest(d, Offset({"a": 2, "b": 4, "c": 12}))
    fb, _ = backtest(d, Offset({"a": 5, "b": 5, "c": 1}))
    runs = [{"run_id": "A", "model": "m1", "family": "ml", "goal": "single", "created": "1"},
            {"run_id": "B", "model": "m2", "family": "deep", "goal": "multi", "created": "2"}]
    result = {"scores": run_scores({"A": fa, "B": fb}), "runs": runs}
    everyone = board_view(result, patients, 30)
    assert everyone["run_id"].tolist() == ["B", "A"]  # 11/3 < 18/3
    adults = board_view(result, patients, 30, group="adult").set_index("run_id")
    assert adults.loc["A", "rmse"] == pytest.approx(3.0) and adults.loc["B", "rmse"] == pytest.approx(5.0)
    assert adults.loc["A", "patients"] == 2 and adults.loc["A", "rank"] == 1
    assert board_view(result, patients, 30, goals=["single"])["run_id"].tolist() == ["A"]
    assert board_view(result, patients, 30, families=["deep"])["run_id"].tolist() == ["B"]
    curves = horizon_curves(result, ["A"])
    assert curves["horizon"].tolist() == list(range(5, 121, 5)) and np.allclose(curves["rmse"], 6.0)
    worst = patient_scores(result, "A", 30)
    assert worst["patient_id"].tolist() == ["c", "b", "a"] and worst["rmse"].tolist() == pytest.approx([12, 4, 2])
