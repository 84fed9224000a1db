"""Machine-learning family: gradient boosting (LightGBM, scikit-learn), random/extra trees, ridge.

All share one recipe: features of the past at each origin (`bgcore.models.features`), the
target is the change ``cgm[t + h] - cgm[t]``, and the horizon is a feature of one model
("stacked" direct multi-horizon), trained on `horizons_per_row` randomly drawn horizons
per origin. One model for all horizons shares strength across them and keeps the fit
time of 24 separate models away; the benchmark in bench/bench_models.py reports it.
"""

from __future__ import annotations

import numpy as np

from ..evaluation.reference import ForecastArrays
from .base import Forecaster, compute_threads, require_cache_path
from .features import batch_features, training_examples
from .registry import register

CONTEXT_STEPS = 72


class _Tabular(Forecaster):
    _tags = {"family": "ml", "scope": "global", "covariates": ("insulin", "carbs"), "min_history_steps": CONTEXT_STEPS,
             "min_train_steps": 288}
    _common = {"stride_min": 15, "horizons_per_row": 6, "use_covariates": True, "seed": 0}

    def _examples(self, train):
        batch, targets = training_examples(train, self.steps_, CONTEXT_STEPS, stride_steps=self.stride_min // 5)
        X, self.feature_names_ = batch_features(batch, covariates=self.use_covariates)
        change = targets - batch.cgm[:, -1:]
        rng = np.random.default_rng(self.seed)
        H = len(self.steps_)
        k = min(self.horizons_per_row, H)
        pick = np.argsort(rng.random((len(X), H)), axis=1)[:, :k]  # k distinct horizons per origin
        rows = np.repeat(np.arange(len(X)), k)
        cols = pick.ravel()
        y = change[rows, cols]
        ok = np.isfinite(y)
        return self._stack(X[rows[ok]], self.horizons_[cols[ok]]), y[ok], batch

    @staticmethod
    def _stack(X, horizon_min):
        return np.column_stack([X, horizon_min.astype(float)])

    def _all_horizons(self, batch):
        X, _ = batch_features(batch, covariates=self.use_covariates)
        H = len(self.horizons_)
        return self._stack(np.repeat(X, H, axis=0), np.tile(self.horizons_, len(X)))

    def _predict(self, batch):
        Z = self._all_horizons(batch)
        last = np.nan_to_num(batch.cgm[:, -1])[:, None]
        point = last + self._predict_change(Z).reshape(len(batch), -1)
        quantiles = None
        if getattr(self, "quantile_models_", None):
            qs = [last + self._predict_change(Z, level).reshape(len(batch), -1) for level in self.quantile_levels_]
            quantiles = np.sort(np.stack(qs, axis=-1), axis=-1)
            return ForecastArrays(point, quantiles, tuple(self.quantile_levels_))
        return ForecastArrays(point)


@register
class LightGBM(_Tabular):
    """LightGBM gradient boosting on past CGM, IOB/COB and time of day, with quantile models for intervals."""

    name = "lightgbm"
    _defaults = {**_Tabular._common, "n_estimators": 400, "learning_rate": 0.05, "num_leaves": 31,
                 "min_child_samples": 50, "quantiles": (0.1, 0.9), "finetune_rounds": 100, "finetune_lr": 0.02,
                 "strategy": "stacked"}
    _grid = {"num_leaves": [15, 31, 63], "learning_rate": [0.03, 0.1], "n_estimators": [200, 400]}
    _tags = {"probabilistic": True, "fine_tune": True, "openmp": True, "requires": ("lightgbm",)}

    @classmethod
    def get_test_params(cls):
        return {"n_estimators": 20, "num_leaves": 7, "min_child_samples": 5, "quantiles": (0.1, 0.9),
                "finetune_rounds": 5}

    def _params(self, objective="regression", alpha=None, learning_rate=None):
        params = {"objective": objective, "learning_rate": learning_rate or self.learning_rate,
                  "num_leaves": self.num_leaves, "min_child_samples": self.min_child_samples, "seed": self.seed,
                  "deterministic": True, "force_row_wise": True, "num_threads": compute_threads(), "verbose": -1}
        if alpha is not None:
            params["alpha"] = alpha
        return params

    def _train(self, Z, y, params, rounds, init_model=None):
        import lightgbm as lgb
        return lgb.train(params, lgb.Dataset(Z, y, free_raw_data=True), num_boost_round=rounds, init_model=init_model,
                         keep_training_booster=True)

    def _fit(self, train):
        if self.strategy not in ("stacked", "per_horizon"):
            raise ValueError(f"strategy must be 'stacked' or 'per_horizon', got {self.strategy!r}")
        self.quantile_levels_ = tuple(float(q) for q in self.quantiles)
        if self.strategy == "per_horizon":
            return self._fit_per_horizon(train)
        Z, y, _ = self._examples(train)
        self.booster_ = self._train(Z, y, self._params(), self.n_estimators)
        self._report(1 / (1 + len(self.quantiles)), "point model")
        self.quantile_models_ = {}
        for i, level in enumerate(self.quantile_levels_):
            if self._cancelled():
                raise InterruptedError("fit cancelled")
            self.quantile_models_[level] = self._train(Z, y, self._params("quantile", level), self.n_estimators // 2)
            self._report((i + 2) / (1 + len(self.quantiles)), f"quantile {level}")

    def _fit_per_horizon(self, train):
        """One booster per horizon (and per quantile level): the alternative to the stacked model."""
        batch, targets = training_examples(train, self.steps_, CONTEXT_STEPS, stride_steps=self.stride_min // 5)
        X, self.feature_names_ = batch_features(batch, covariates=self.use_covariates)
        change = targets - batch.cgm[:, -1:]
        self.boosters_, self.quantile_models_ = [], {level: [] for level in self.quantile_levels_}
        for j in range(len(self.steps_)):
            if self._cancelled():
                raise InterruptedError("fit cancelled")
            ok = np.isfinite(change[:, j])
            self.boosters_.append(self._train(X[ok], change[ok, j], self._params(), self.n_estimators))
            for level in self.quantile_levels_:
                self.quantile_models_[level].append(
                    self._train(X[ok], change[ok, j], self._params("quantile", level), self.n_estimators // 2))
            self._report((j + 1) / len(self.steps_), f"horizon {self.horizons_[j]} min")

    def _predict(self, batch):
        if self.strategy == "stacked":
            return super()._predict(batch)
        X, _ = batch_features(batch, covariates=self.use_covariates)
        last = np.nan_to_num(batch.cgm[:, -1])[:, None]
        point = last + np.column_stack([b.predict(X, num_threads=compute_threads()) for b in self.boosters_])
        qs = [last + np.column_stack([m.predict(X, num_threads=compute_threads()) for m in self.quantile_models_[level]])
              for level in self.quantile_levels_]
        if not qs:
            return ForecastArrays(point)
        return ForecastArrays(point, np.sort(np.stack(qs, axis=-1), axis=-1), self.quantile_levels_)

    def _predict_change(self, Z, level=None):
        model = self.booster_ if level is None else self.quantile_models_[level]
        return model.predict(Z, num_threads=compute_threads())

    def _fine_tune(self, train):
        """Continue boosting the population model on `train` with a lower learning rate."""
        if self.strategy != "stacked":
            raise NotImplementedError("fine-tuning is implemented for the stacked strategy")
        Z, y, _ = self._examples(train)
        self.booster_ = self._train(Z, y, self._params(learning_rate=self.finetune_lr), self.finetune_rounds,
                                    init_model=self.booster_)
        self.quantile_models_ = {
            level: self._train(Z, y, self._params("quantile", level, self.finetune_lr), self.finetune_rounds // 2,
                               init_model=model) for level, model in self.quantile_models_.items()}

    def _models(self):
        """(file stem, booster) of every stored booster."""
        if self.strategy == "stacked":
            yield "model", self.booster_
            for level, model in self.quantile_models_.items():
                yield f"quantile_{level:g}", model
        else:
            for j, booster in enumerate(self.boosters_):
                yield f"model_h{j}", booster
            for level, models in self.quantile_models_.items():
                for j, model in enumerate(models):
                    yield f"quantile_{level:g}_h{j}", model

    def _save_state(self, folder):
        for stem, model in self._models():
            model.save_model(str(folder / f"{stem}.txt"))
        (folder / "features.txt").write_text("\n".join(self.feature_names_))

    def _load_state(self, folder):
        import lightgbm as lgb
        load = lambda stem: lgb.Booster(model_file=str(folder / f"{stem}.txt"))  # noqa: E731
        self.quantile_levels_ = tuple(float(q) for q in self.quantiles)
        if self.strategy == "stacked":
            self.booster_ = load("model")
            self.quantile_models_ = {q: load(f"quantile_{q:g}") for q in self.quantile_levels_}
        else:
            H = len(self.steps_)
            self.boosters_ = [load(f"model_h{j}") for j in range(H)]
            self.quantile_models_ = {q: [load(f"quantile_{q:g}_h{j}") for j in range(H)] for q in self.quantile_levels_}
        self.feature_names_ = (folder / "features.txt").read_text().splitlines()


@register
class Ridge(_Tabular):
    """Ridge regression on standardised features (closed form; weights stored as JSON)."""

    name = "ridge"
    _defaults = {**_Tabular._common, "alpha": 1.0}
    _grid = {"alpha": [0.1, 1.0, 10.0, 100.0]}

    def _fit(self, train):
        Z, y, _ = self._examples(train)
        # horizon interactions let one linear model give each horizon its own slope
        Z = self._expand(Z)
        self.center_, self.scale_ = Z.mean(axis=0), Z.std(axis=0) + 1e-9
        A = (Z - self.center_) / self.scale_
        self.coef_ = np.linalg.solve(A.T @ A + self.alpha * np.eye(A.shape[1]), A.T @ (y - y.mean()))
        self.intercept_ = float(y.mean())

    @staticmethod
    def _expand(Z):
        return np.column_stack([Z, Z[:, :-1] * Z[:, -1:] / 60.0])

    def _predict_change(self, Z, level=None):
        return ((self._expand(Z) - self.center_) / self.scale_) @ self.coef_ + self.intercept_


class _Sklearn(_Tabular):
    """scikit-learn estimators, stored with joblib and only ever loaded from the cache folder."""

    _tags = {"requires": ("sklearn",)}

    def _make(self):
        raise NotImplementedError

    def _fit(self, train):
        Z, y, _ = self._examples(train)
        self.model_ = self._make().fit(Z, y)

    def _predict_change(self, Z, level=None):
        if "n_jobs" in self.model_.get_params():
            self.model_.set_params(n_jobs=1)  # threads would sum the trees in varying order
        return self.model_.predict(Z)

    def _save_state(self, folder):
        import joblib
        joblib.dump(self.model_, folder / "model.joblib")

    def _load_state(self, folder):
        import joblib
        self.model_ = joblib.load(require_cache_path(folder) / "model.joblib")


@register
class HistGradientBoosting(_Sklearn):
    """scikit-learn histogram gradient boosting."""

    name = "hist_gbm"
    _tags = {"openmp": True}
    _defaults = {**_Tabular._common, "max_iter": 300, "learning_rate": 0.05, "max_leaf_nodes": 31}
    _grid = {"max_leaf_nodes": [15, 31, 63], "learning_rate": [0.03, 0.1]}

    @classmethod
    def get_test_params(cls):
        return {"max_iter": 20, "max_leaf_nodes": 7}

    def _make(self):
        from sklearn.ensemble import HistGradientBoostingRegressor
        return HistGradientBoostingRegressor(max_iter=self.max_iter, learning_rate=self.learning_rate,
                                             max_leaf_nodes=self.max_leaf_nodes, random_state=self.seed)


class _Forest(_Sklearn):
    """Bagged trees, depth-limited and subsampled for CPU time."""

    _defaults = {**_Tabular._common, "n_estimators": 100, "max_depth": 12, "max_samples": 0.3}
    _grid = {"max_depth": [8, 12, 16], "n_estimators": [50, 100]}
    estimator = None  # name of the scikit-learn class in sklearn.ensemble

    @classmethod
    def get_test_params(cls):
        return {"n_estimators": 5, "max_depth": 4}

    def _make(self):
        import sklearn.ensemble
        return getattr(sklearn.ensemble, self.estimator)(
            n_estimators=self.n_estimators, max_depth=self.max_depth, bootstrap=True, max_samples=self.max_samples,
            n_jobs=compute_threads(), random_state=self.seed)


@register
class RandomForest(_Forest):
    """scikit-learn random forest."""

    name = "random_forest"
    estimator = "RandomForestRegressor"


@register
class ExtraTrees(_Forest):
    """scikit-learn extremely randomised trees."""

    name = "extra_trees"
    estimator = "ExtraTreesRegressor"
