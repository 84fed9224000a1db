"""The forecaster contract every family implements (template-method style, after sktime).

Public methods validate inputs, handle horizons and fitted state, then call the family's
private hooks:

=================== ==================================================================
public              family hook
=================== ==================================================================
``fit(train)``      ``_fit(train)``: learn from a canonical frame (train part only)
``predict_arrays``  ``_predict(batch)``: ForecastArrays for a `ContextBatch`
``predict(batch)``  (tidy frame keyed by patient, origin, horizon; built on the above)
``fine_tune``       ``_fine_tune(train)``: adapt a fitted global model to new data
``save`` / ``load`` ``_save_state(dir)`` / ``_load_state(dir)``: native weights
=================== ==================================================================

The constructor only stores hyper-parameters (``get_params``); fitted state ends with
``_``. Inputs are never mutated. A model sees the past only: `fit` gets the train frame,
`predict` a `ContextBatch` of windows ending at each origin.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.schema import STEP_MINUTES, DataError, validate_frame
from ..evaluation.protocol import HORIZONS_MIN, ContextBatch
from ..evaluation.reference import ForecastArrays
from ..paths import cache_root

CONFIG = "config.json"
COVARIATES = ("insulin", "carbs")


class NotFittedError(RuntimeError):
    """predict / save / fine_tune called before fit."""


class Forecaster:
    """Base class of all forecasters. Subclasses set `name`, `_tags` and the hooks."""

    name = "base"
    _tags = {
        "family": None,            # statistical / ml / deep / foundation
        "scope": "local",          # local: one model per patient; global: one model for all
        "covariates": (),          # subset of ("insulin", "carbs"); IOB/COB and time of day derive from them
        "probabilistic": False,    # returns quantiles
        "fine_tune": False,
        "zero_shot": False,
        "from_scratch": False,     # can be (pre)trained from random weights by bgcore
        "needs_user_weights": False,  # runs only on published weights the user has locally
        "remote": False,           # sends data to a hosted service (needs the user's API key)
        "cost": "",                # a note on unusual compute cost, shown where the family is picked
        "min_history_steps": 2,    # context steps the forecaster needs at each origin
        "min_train_steps": 288,    # training steps it needs (per patient for local models)
        "needs_torch": False,
        "openmp": False,           # native OpenMP code: fit/predict run on the process's one OpenMP thread
        "requires": (),            # importable modules it needs
    }

    _defaults: dict = {}
    """Hyper-parameters and their defaults (each family documents its own)."""

    # --- parameters and tags ------------------------------------------------------
    def __init__(self, **params):
        unknown = set(params) - set(self._defaults)
        if unknown:
            raise TypeError(f"{self.name}: unknown parameters {sorted(unknown)}; expected {sorted(self._defaults)}")
        for key, value in self._defaults.items():
            setattr(self, key, params.get(key, value))

    @classmethod
    def _param_names(cls) -> list[str]:
        return list(cls._defaults)

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in self._param_names()}

    @classmethod
    def get_tags(cls) -> dict:
        tags = {}
        for klass in reversed(cls.__mro__):
            tags.update(getattr(klass, "_tags", {}))
        return tags

    @classmethod
    def get_test_params(cls) -> dict:
        """Tiny settings for the contract suite (fast on a few days of data)."""
        return {}

    def set_params(self, **params) -> "Forecaster":
        """Change hyper-parameters in place (fitted state is kept: e.g. fine-tune settings of a loaded model)."""
        unknown = set(params) - set(self._defaults)
        if unknown:
            raise TypeError(f"{self.name}: unknown parameters {sorted(unknown)}; expected {sorted(self._defaults)}")
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def weights_info(self) -> dict | None:
        """Which pretrained weights a fitted model runs on (foundation families), else None."""
        return None

    def clone(self, **changes) -> "Forecaster":
        return type(self)(**{**self.get_params(), **changes})

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # --- fit ----------------------------------------------------------------------
    def fit(self, train: pd.DataFrame, horizons_min=HORIZONS_MIN, progress=None, cancel=None,
            validation: pd.DataFrame | None = None) -> "Forecaster":
        """Learn from `train` (a canonical frame: the train part of one or more patients).

        Parameters
        ----------
        horizons_min : sequence of int
            Minutes ahead to forecast (multiples of 5).
        progress : callable, optional
            ``progress(fraction, message)`` during long fits.
        cancel : callable, optional
            Returns True when the caller wants the fit to stop (checked between steps).
        validation : DataFrame, optional
            The protocol's validation part, for families that stop early on it.
        """
        validate_frame(train)
        horizons = np.asarray(horizons_min, dtype=int)
        if (horizons % STEP_MINUTES).any() or (horizons <= 0).any():
            raise ValueError(f"horizons must be positive multiples of {STEP_MINUTES} minutes")
        self._check_covariates(train)
        need = self.get_tags()["min_train_steps"]
        counts = train.groupby("patient_id", observed=True)["cgm"].count()
        short = counts[counts < need]
        if len(short) == len(counts) or (self.get_tags()["scope"] == "local" and len(short)):
            raise DataError(f"{self.name} needs at least {need} CGM readings per patient to train",
                            column="cgm", found=dict(short.astype(int).head(3)))
        self.horizons_ = horizons
        self.steps_ = horizons // STEP_MINUTES
        self._progress, self._cancel, self._validation = progress, cancel, validation
        self._native(self._fit, train)
        self.is_fitted_ = True
        return self

    def covariates(self) -> tuple[str, ...]:
        """Covariates this instance uses (a family may switch them off with ``use_covariates=False``)."""
        return tuple(self.get_tags()["covariates"]) if getattr(self, "use_covariates", True) else ()

    def _check_covariates(self, frame: pd.DataFrame) -> None:
        for name in self.covariates():
            if name not in frame or frame[name].isna().all():
                raise DataError(f"{self.name} uses {name}, but the data has no {name} records", column=name,
                                expected=f"{name} data, or a forecaster without {name}")

    def _native(self, hook, *args):
        """Call a private hook, on the OpenMP thread for families tagged ``openmp``."""
        return on_openmp_thread(hook, *args) if self.get_tags()["openmp"] else hook(*args)

    def _report(self, fraction: float, message: str = "") -> None:
        if self._progress is not None:
            self._progress(float(fraction), message)

    def _cancelled(self) -> bool:
        return bool(self._cancel is not None and self._cancel())

    # --- predict ------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if not getattr(self, "is_fitted_", False):
            raise NotFittedError(f"{self.name} is not fitted; call fit first")

    def predict_arrays(self, batch: ContextBatch, steps=None) -> ForecastArrays:
        """Forecast arrays ``(n, H)`` (and quantiles) for every origin of `batch`."""
        self._require_fitted()
        if steps is not None and not np.array_equal(np.asarray(steps), self.steps_):
            raise ValueError(f"{self.name} was fitted for horizons {self.horizons_.tolist()} min")
        need = self.get_tags()["min_history_steps"]
        if batch.cgm.shape[1] < need:
            raise DataError(f"{self.name} needs {need} steps of context, got {batch.cgm.shape[1]}")
        out = self._native(self._predict, batch)
        point = np.asarray(out.point, dtype=float)
        if point.shape != (len(batch), len(self.steps_)):
            raise RuntimeError(f"{self.name}: _predict returned shape {point.shape}")
        return out

    def predict(self, batch: ContextBatch) -> pd.DataFrame:
        """Tidy forecasts: ``patient_id, origin, horizon, pred`` (+ ``q<level>`` columns)."""
        out = self.predict_arrays(batch)
        n, H = len(batch), len(self.horizons_)
        table = {"patient_id": np.repeat(batch.patient_id, H), "origin": np.repeat(batch.origin, H),
                 "horizon": np.tile(self.horizons_, n), "pred": np.asarray(out.point, dtype=float).ravel()}
        if out.quantiles is not None:
            for j, level in enumerate(out.levels):
                table[f"q{level:g}"] = np.asarray(out.quantiles)[:, :, j].ravel()
        return pd.DataFrame(table)

    # --- fine-tune ----------------------------------------------------------------
    def fine_tune(self, train: pd.DataFrame, progress=None, cancel=None) -> "Forecaster":
        """Adapt this fitted (multi-patient) model to `train` (typically one patient); returns a new model."""
        if not self.get_tags()["fine_tune"]:
            raise NotImplementedError(f"{self.name} does not support fine-tuning")
        self._require_fitted()
        validate_frame(train)
        self._check_covariates(train)
        model = self.clone()
        model.__dict__.update({k: v for k, v in self.__dict__.items() if k.endswith("_")})
        model._progress, model._cancel, model._validation = progress, cancel, None
        model._native(model._fine_tune, train)
        return model

    # --- persistence --------------------------------------------------------------
    def save(self, folder) -> Path:
        """Write ``config.json`` (family name, parameters, horizons) and native weights to `folder`."""
        self._require_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._native(self._save_state, folder)
        config = {"name": self.name, "params": self.get_params(), "horizons_min": self.horizons_.tolist()}
        (folder / CONFIG).write_text(json.dumps(config, indent=2, default=_json_default))
        return folder

    @classmethod
    def load(cls, folder) -> "Forecaster":
        """Rebuild a saved model (through the registry when called on the base class)."""
        folder = Path(folder)
        config = json.loads((folder / CONFIG).read_text())
        if cls is Forecaster:
            from .registry import get
            klass = get(config["name"])
        else:
            klass = cls
        model = klass(**_restore(config["params"]))
        model.horizons_ = np.asarray(config["horizons_min"], dtype=int)
        model.steps_ = model.horizons_ // STEP_MINUTES
        model._progress = model._cancel = None
        model._native(model._load_state, folder)
        model.is_fitted_ = True
        return model

    # --- hooks ----------------------------------------------------------------------
    def _fit(self, train: pd.DataFrame) -> None:
        raise NotImplementedError

    def _predict(self, batch: ContextBatch) -> ForecastArrays:
        raise NotImplementedError

    def _fine_tune(self, train: pd.DataFrame) -> None:
        raise NotImplementedError

    def _save_state(self, folder: Path) -> None:
        """Write fitted state; the default keeps numeric arrays and scalars in ``state.json``."""
        state = {k: v for k, v in self.__dict__.items() if k.endswith("_") and k not in ("horizons_", "steps_",
                                                                                        "is_fitted_")}
        (folder / "state.json").write_text(json.dumps(state, default=_json_default))

    def _load_state(self, folder: Path) -> None:
        for key, value in json.loads((folder / "state.json").read_text()).items():
            setattr(self, key, _restore(value))


def compute_threads(default: int = 2) -> int:
    """Threads for a family's native code: ``$OMP_NUM_THREADS`` when set, else `default`.

    Dask sets ``OMP_NUM_THREADS=1`` in each worker process, so two single-threaded workers
    share the cores instead of each starting a team of `default` threads on them.
    """
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS") or default))
    except ValueError:
        return default


_OPENMP_THREAD = "bgcore-openmp"
_openmp = {"pool": None, "pid": None}
_openmp_lock = threading.Lock()


def on_openmp_thread(fn, *args):
    """Run ``fn(*args)`` on this process's one thread for OpenMP code (LightGBM, scikit-learn's HGB).

    libgomp keeps a team of threads per calling thread. Once teams exist in two threads of a
    process (the CLI's main thread and a job thread, a page's script thread and a job), there
    are more OpenMP threads than cores, libgomp stops spinning between parallel regions and
    each of the thousands of small regions of a boosting fit waits on the kernel: 6-9x slower
    on 2 cores (measured). With one calling thread there is one team. Jobs that fit OpenMP
    models at the same time therefore take turns.
    """
    if threading.current_thread().name.startswith(_OPENMP_THREAD):
        return fn(*args)
    with _openmp_lock:
        if _openmp["pid"] != os.getpid():  # a forked child has the pool object but not its thread
            _openmp["pool"] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=_OPENMP_THREAD)
            _openmp["pid"] = os.getpid()
        pool = _openmp["pool"]
    return pool.submit(fn, *args).result()


def require_cache_path(folder: Path) -> Path:
    """Refuse to read pickled weights from anywhere but the project's cache."""
    folder = Path(folder).resolve()
    root = cache_root().resolve()
    if root not in folder.parents and folder != root:
        raise DataError("pickled model files are only loaded from the cache folder", file=folder,
                        expected=f"a folder under {root}")
    return folder


def _json_default(value):
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


def _restore(value):
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.asarray(value["__ndarray__"], dtype=value["dtype"])
        return {k: _restore(v) for k, v in value.items()}
    if isinstance(value, list):  # JSON turns tuples into lists; parameters are tuples again
        return tuple(_restore(v) for v in value)
    return value
