import numpy as np
import pytest

from bgcore.data.splits import temporal_split
from bgcore.models.search import configurations, cv_folds, grid_search
from bgcore.models.statistical import Drift
from tests.conftest import make_frame


@pytest.fixture(scope="module")
def train():
    return temporal_split(make_frame(("p1", "p2"), days=8, seed=2))["train"]


def test_configurations_cover_the_grid():
    configs = configurations({"b": [1, 2], "a": ["x", "y", "z"]})
    assert len(configs) == 6 and configs[0] == {"a": "x", "b": 1} and configs[-1] == {"a": "z", "b": 2}


def test_folds_fit_only_on_the_past_inside_train(train):
    folds = list(cv_folds(train, folds=3, fold_days=1.0))
    assert len(folds) == 3
    for fit_frame, rows in folds:
        origins = train.iloc[rows]
        for pid, g in origins.groupby("patient_id", observed=True):
            assert fit_frame.loc[fit_frame["patient_id"] == pid, "time"].max() < g["time"].min()
        assert (origins["time"].dt.minute % 30 == 0).all() and len(rows) > 0
    assert folds[0][0]["time"].max() < folds[2][0]["time"].max()  # rolling origin: the fit window grows


def test_grid_search_records_every_configuration_and_picks_the_best(train):
    calls = []
    result = grid_search(Drift, train, {"window": [2, 6, 24]}, progress=lambda f, m: calls.append(f))
    assert len(result.table) == 3 and {"fold0", "fold1", "fold2", "score", "seconds"} <= set(result.table.columns)
    assert result.table["score"].is_monotonic_increasing and not result.cancelled
    best_window = int(result.table["params"].iloc[0].split(":")[1].strip(" }"))
    assert result.best_params == {"window": best_window}
    assert calls == pytest.approx([1 / 3, 2 / 3, 1.0])
    fold_mean = result.table[["fold0", "fold1", "fold2"]].mean(axis=1)
    np.testing.assert_allclose(result.table["score"], fold_mean)


def test_grid_search_can_be_cut_short_and_survives_a_failing_configuration(train):
    done = []

    def cancel():
        return len(done) >= 2

    result = grid_search(Drift, train, {"window": [2, 3, 6, 12]}, progress=lambda f, m: done.append(f), cancel=cancel)
    assert result.cancelled and len(result.table) == 2

    class Fragile(Drift):
        name = "fragile"

        def _fit(self, train):
            if self.window == 3:
                raise ValueError("bad window")

    result = grid_search(Fragile, train, {"window": [2, 3]})
    assert result.table["error"].notna().sum() == 1 and "bad window" in result.table["error"].dropna().iloc[0]
    assert result.best_params == {"window": 2}
