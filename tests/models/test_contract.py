"""One contract suite over every registered forecaster family."""

import threading

import numpy as np
import pandas as pd
import pytest

from bgcore.data.schema import DataError
from bgcore.data.splits import temporal_split
from bgcore.evaluation.protocol import context_batch, make_origins
from bgcore.models import registry
from bgcore.models.base import Forecaster, NotFittedError
from tests.conftest import make_frame

# Foundation families get tiny project-built weights from get_test_params; hosted (remote) families are
# tested against a local test server in tests/models/test_timegpt.py.
FAMILIES = [cls for cls in registry.list(installed_only=True) if not cls.get_tags()["remote"]]
IDS = [cls.name for cls in FAMILIES]


@pytest.fixture(scope="module")
def frame():
    return make_frame(("p1", "p2"), days=6, seed=4)


@pytest.fixture(scope="module")
def split(frame):
    parts = temporal_split(frame)
    rows = make_origins(frame)["row"].to_numpy()[::4]
    return parts["train"], rows


def fitted(cls, train):
    return cls(**cls.get_test_params()).fit(train)


def batch_of(frame, rows):
    return context_batch(frame, rows, 288)


def test_registry_lists_every_family_with_tags():
    names = {cls.name for cls in registry.list()}
    assert {"naive", "mean", "drift", "seasonal_naive", "nightscout_ar2", "arima", "auto_arima", "ets", "theta",
            "arx", "lightgbm", "ridge", "hist_gbm", "random_forest", "extra_trees"} <= names
    assert {c.name for c in registry.list(family="ml")} >= {"lightgbm", "ridge"}
    assert all(c.get_tags()["family"] == "statistical" for c in registry.list(family="statistical"))
    assert "lightgbm" in {c.name for c in registry.list(covariates="insulin")}
    with pytest.raises(KeyError, match="unknown forecaster"):
        registry.get("nope")


@pytest.mark.parametrize("cls", FAMILIES, ids=IDS)
def test_fit_predict_shapes_and_index(cls, frame, split):
    train, rows = split
    batch = batch_of(frame, rows)
    out = fitted(cls, train).predict(batch)
    H = 24
    assert list(out.columns[:4]) == ["patient_id", "origin", "horizon", "pred"]
    assert len(out) == len(rows) * H
    assert out["horizon"].tolist()[:H] == list(range(5, 121, 5))
    np.testing.assert_array_equal(out["origin"].to_numpy()[::H], batch.origin)
    np.testing.assert_array_equal(out["patient_id"].to_numpy()[::H], batch.patient_id)
    assert np.isfinite(out["pred"]).all() and out["pred"].between(0, 700).all()
    if cls.get_tags()["probabilistic"]:
        qcols = [c for c in out.columns if c.startswith("q")]
        assert qcols and (out[qcols].diff(axis=1).iloc[:, 1:] >= 0).all().all()


@pytest.mark.parametrize("cls", FAMILIES, ids=IDS)
def test_no_look_ahead(cls, frame, split):
    train, rows = split
    model = fitted(cls, train)
    k = len(rows) // 2
    before = model.predict_arrays(batch_of(frame, rows[: k + 1])).point
    changed = frame.copy()
    changed.loc[rows[k] + 1:, ["cgm", "insulin", "carbs"]] = [400.0, 9.0, 90.0]  # the future after origin k
    after = model.predict_arrays(batch_of(changed, rows[: k + 1])).point
    np.testing.assert_array_equal(after, before)


@pytest.mark.parametrize("cls", FAMILIES, ids=IDS)
def test_inputs_are_not_mutated(cls, frame, split):
    train, rows = split
    train_copy = train.copy()
    model = fitted(cls, train)
    pd.testing.assert_frame_equal(train, train_copy)
    batch = batch_of(frame, rows)
    cgm, insulin = batch.cgm.copy(), batch.insulin.copy()
    model.predict(batch)
    np.testing.assert_array_equal(batch.cgm, cgm)
    np.testing.assert_array_equal(batch.insulin, insulin)


@pytest.mark.parametrize("cls", FAMILIES, ids=IDS)
def test_predict_before_fit_and_unknown_parameters(cls, frame, split):
    with pytest.raises(NotFittedError):
        cls().predict(batch_of(frame, split[1]))
    with pytest.raises(TypeError, match="unknown parameters"):
        cls(not_a_parameter=1)


@pytest.mark.parametrize("cls", FAMILIES, ids=IDS)
def test_save_load_round_trip(cls, frame, split, cache_dir):
    train, rows = split
    model = fitted(cls, train)
    batch = batch_of(frame, rows)
    folder = model.save(cache_dir / "models" / cls.name)
    loaded = Forecaster.load(folder)
    assert type(loaded) is cls and loaded.get_params() == model.get_params()
    a, b = model.predict_arrays(batch), loaded.predict_arrays(batch)
    np.testing.assert_array_equal(a.point, b.point)
    if a.quantiles is not None:
        np.testing.assert_array_equal(a.quantiles, b.quantiles)


@pytest.mark.parametrize("cls", FAMILIES, ids=IDS)
def test_seeded_determinism(cls, frame, split):
    train, rows = split
    batch = batch_of(frame, rows)
    np.testing.assert_array_equal(fitted(cls, train).predict_arrays(batch).point,
                                  fitted(cls, train).predict_arrays(batch).point)


@pytest.mark.parametrize("cls", FAMILIES, ids=IDS)
def test_clear_errors_for_missing_covariates_and_short_history(cls, frame, split):
    train, rows = split
    no_insulin = train.assign(insulin=np.nan)
    if "insulin" in cls.get_tags()["covariates"]:
        with pytest.raises(DataError, match="uses insulin"):
            cls(**cls.get_test_params()).fit(no_insulin)
    else:
        cls(**cls.get_test_params()).fit(no_insulin)
    one_row = train.groupby("patient_id", observed=True).head(1).reset_index(drop=True)
    if cls.get_tags()["min_train_steps"] > 1:
        with pytest.raises(DataError, match="needs at least"):
            cls(**cls.get_test_params()).fit(one_row)
    else:  # zero-shot only: nothing to learn, any train frame will do
        cls(**cls.get_test_params()).fit(one_row)
    model = fitted(cls, train)
    with pytest.raises(DataError, match="steps of context"):
        model.predict_arrays(context_batch(frame, rows, 1))


@pytest.mark.parametrize("cls", FAMILIES, ids=IDS)
def test_local_models_refuse_unseen_patients(cls, frame, split):
    train, rows = split
    model = fitted(cls, train[train["patient_id"] == "p1"].reset_index(drop=True))
    other = batch_of(frame, rows)
    if cls.get_tags()["scope"] == "local" and hasattr(model, "patients_"):
        with pytest.raises(DataError, match="not fitted for"):
            model.predict_arrays(other)
    else:
        assert np.isfinite(model.predict_arrays(other).point).all()


@pytest.mark.parametrize("cls", FAMILIES, ids=IDS)
def test_fine_tune(cls, frame, split):
    train, rows = split
    model = fitted(cls, train)
    one = train[train["patient_id"] == "p2"].reset_index(drop=True)
    if not cls.get_tags()["fine_tune"]:
        with pytest.raises(NotImplementedError):
            model.fine_tune(one)
        return
    batch = batch_of(frame, rows)
    before = model.predict_arrays(batch).point.copy()
    tuned = model.fine_tune(one)
    np.testing.assert_array_equal(model.predict_arrays(batch).point, before)  # the parent is untouched
    assert not np.array_equal(tuned.predict_arrays(batch).point, before)


def test_lightgbm_per_horizon_strategy_round_trip(frame, split, cache_dir):
    cls = registry.get("lightgbm")
    train, rows = split
    model = cls(**{**cls.get_test_params(), "strategy": "per_horizon", "quantiles": (0.1,)}).fit(train, horizons_min=(30, 60))
    batch = batch_of(frame, rows)
    out = model.predict_arrays(batch)
    assert out.point.shape == (len(rows), 2) and out.quantiles.shape == (len(rows), 2, 1)
    loaded = Forecaster.load(model.save(cache_dir / "models" / "per_horizon"))
    np.testing.assert_array_equal(loaded.predict_arrays(batch).point, out.point)
    with pytest.raises(ValueError, match="strategy"):
        cls(strategy="other").fit(train)


@pytest.mark.parametrize("name", ["hist_gbm", "random_forest", "extra_trees"])
def test_pickled_weights_load_only_from_the_cache(name, split, tmp_path):
    cls = registry.get(name)
    folder = fitted(cls, split[0]).save(tmp_path / "outside" / name)  # tmp_path is not the cache
    with pytest.raises(DataError, match="only loaded from the cache"):
        Forecaster.load(folder)


@pytest.mark.parametrize("name", ["gru", "nbeats_mlp", "sktime_dlinear", "ptf_nbeats", "lightgbm", "arima"])
def test_training_reports_progress_and_can_be_cancelled(name, split):
    cls = registry.get(name)
    seen = []
    cls(**cls.get_test_params()).fit(split[0], progress=lambda f, m: seen.append(f))
    assert seen and seen[-1] <= 1.0 and all(0 < f <= 1 for f in seen)
    with pytest.raises(InterruptedError):
        cls(**{**cls.get_test_params(), **({"epochs": 3} if "epochs" in cls._defaults else {})}).fit(
            split[0], cancel=lambda: True)


OPENMP = [cls for cls in FAMILIES if cls.get_tags()["openmp"]]


@pytest.mark.parametrize("cls", OPENMP + [registry.get("ridge")], ids=[c.name for c in OPENMP] + ["ridge"])
def test_openmp_code_runs_on_one_thread_whoever_calls(cls, frame, split, cache_dir, monkeypatch):
    """OpenMP families (one libgomp team per calling thread) run fit/predict/save/load on one thread."""
    assert {"lightgbm", "hist_gbm"} <= {c.name for c in OPENMP}
    seen = []
    for hook in ("_fit", "_predict", "_save_state", "_load_state"):
        def spy(self, *args, _original=getattr(cls, hook)):
            seen.append(threading.current_thread().name)
            return _original(self, *args)
        monkeypatch.setattr(cls, hook, spy)
    train, rows = split

    def work(tag):
        model = fitted(cls, train)
        Forecaster.load(model.save(cache_dir / tag)).predict_arrays(batch_of(frame, rows))

    work("main")
    other = threading.Thread(target=work, args=("other",), name="a-job-thread")
    other.start()
    other.join()
    assert len(seen) == 8
    if cls.get_tags()["openmp"]:
        assert len(set(seen)) == 1 and seen[0].startswith("bgcore-openmp")
    else:  # everything else stays on the caller's thread
        assert seen == ["MainThread"] * 4 + ["a-job-thread"] * 4
