"""Training goals: single-patient, multi-patient (with a patient-holdout variant) and fine-tune.

`train` is the one call that pages, the CLI and tests use: it fits a family under a goal,
backtests it on the protocol's test origins and stores the run (forecasts, protocol card,
fitted models) in `bgcore.store`. A failing patient does not stop the others: the run is
stored as ``partial`` with that patient's error. Cancelling (``cancel()`` returning True,
checked between patients and inside fits) stores nothing.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass

import pandas as pd

from ..data.dataset import Dataset, select_patients
from ..data.datasets import load_dataset
from ..data.schema import DataError
from ..data.splits import holdout_patients, temporal_split
from ..evaluation.backtest import backtest
from ..evaluation.protocol import DEFAULT_PROTOCOL, Protocol
from ..models import registry
from ..store import load_model, run_record, save_run

GOALS = ("single", "multi", "multi_holdout", "finetune")



@dataclass
class TrainResult:
    """What a training produced, before it is stored (so a remote worker can return it)."""

    goal: str
    family: str
    params: dict
    parent: str | None
    forecasts: pd.DataFrame
    card: dict
    models: dict
    errors: dict
    seconds: float
    weights: dict | None = None  # foundation models: which weights each model runs on (`weights_info`)


def train(goal: str, family: str, params: dict | None = None, patients=None, dataset: str | Dataset = "virtual",
          parent: str | None = None, protocol: Protocol = DEFAULT_PROTOCOL, progress=None, cancel=None) -> dict:
    """Fit `family` under `goal` on `patients` of `dataset`, backtest it and store the run.

    `fit_and_backtest` followed by `store_result`; the parameters are those of `fit_and_backtest`.

    Returns
    -------
    dict
        The stored run record (``run_id``, ``status``, ``errors``, ...).
    """
    result = fit_and_backtest(goal, family, params, patients, dataset, parent, protocol, progress, cancel)
    return store_result(result, protocol)


def store_result(result: "TrainResult", protocol: Protocol = DEFAULT_PROTOCOL, model_files: dict | None = None) -> dict:
    """Store a training result as a run (models as objects, or as files returned by a remote worker)."""
    return save_run(result.forecasts, result.card, model=result.family, family=registry.get(result.family).get_tags()[
        "family"], goal=result.goal, params=result.params, parent_run=result.parent, protocol_key=protocol.key(),
        models=result.models, model_files=model_files, errors=result.errors, seconds=result.seconds,
        weights=result.weights)


_LAST_DATASET: dict = {}


def task_dataset(name: str) -> Dataset:
    """Dataset `name` for a sweep's sub-task: the last one loaded in this process, while it is unchanged.

    A sweep of per-patient sub-tasks would otherwise read (and fingerprint) the whole dataset
    in each of them, a cost that grows with the dataset: quadratic over a sweep of its patients.
    """
    from ..data.datasets import dataset_version
    from ..paths import cache_root
    key = (str(cache_root()), name, dataset_version(name))
    cached = _LAST_DATASET.get("entry")
    if cached is None or cached[0] != key:
        cached = (key, load_dataset(name))
        _LAST_DATASET["entry"] = cached  # one assignment: a reader sees a whole (key, dataset) pair
    return cached[1]


def remote_task(spec: dict) -> dict:
    """Run one training sub-task on a (Dask) worker: everything but storing; models come back as files."""
    import tempfile
    from pathlib import Path

    result = fit_and_backtest(spec["goal"], spec["family"], spec["params"], spec["patients"],
                              task_dataset(spec["dataset"]), spec.get("parent"))
    files = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, model in result.models.items():
            folder = model.save(Path(tmp) / key)
            files[key] = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    result.models = {}
    return {"result": result, "model_files": files}


def fit_and_backtest(goal: str, family: str, params: dict | None = None, patients=None,
                     dataset: str | Dataset = "virtual", parent: str | None = None,
                     protocol: Protocol = DEFAULT_PROTOCOL, progress=None, cancel=None) -> "TrainResult":
    """Fit `family` under `goal` on `patients` of `dataset` and backtest it (nothing is stored).

    Parameters
    ----------
    goal : {"single", "multi", "multi_holdout", "finetune"}
        ``single``: one model per patient on its train part. ``multi``: one model on the
        train parts of all patients, scored on all. ``multi_holdout``: one model on the
        train parts of the protocol's training patients, scored only on the held-out
        patients among `patients`. ``finetune``: the `parent` multi-patient run's model
        adapted to each patient's train part.
    params : dict, optional
        Hyper-parameters of the family.
    patients : list of str, optional
        Patients (default: all of the dataset).
    progress : callable, optional
        ``progress(fraction, message)``.
    cancel : callable, optional
        Returns True to stop (raises InterruptedError, nothing stored).
    """
    if goal not in GOALS:
        raise ValueError(f"goal must be one of {GOALS}, got {goal!r}")
    data = load_dataset(dataset) if isinstance(dataset, str) else dataset
    patients = sorted(str(p) for p in (patients or data.patient_ids))
    unknown = sorted(set(patients) - set(data.patient_ids))
    if unknown:
        raise DataError(f"unknown patients in dataset {data.name!r}: {unknown[:5]}", column="patient_id")
    cls = registry.get(family)
    params = dict(params or {})
    fingerprint = data.fingerprint  # of the whole dataset: the card names the data the run is on
    # the split is per patient, so only the chosen patients' rows need splitting (a sweep of
    # per-patient sub-tasks would otherwise split the whole dataset in each)
    work = data if len(patients) == len(data.patient_ids) else data.subset(patients)
    parts = temporal_split(work.frame, protocol.split)
    started = time.perf_counter()
    report = progress or (lambda fraction, message: None)
    stop = cancel or (lambda: False)
    models, forecasts, errors, card = {}, [], {}, None

    def evaluate(model, pids):
        nonlocal card
        frame, card = backtest(work, model, protocol, patients=pids, fingerprint=fingerprint)
        forecasts.append(frame)

    def per_patient(make_model):
        for i, pid in enumerate(patients):
            if stop():
                raise InterruptedError("training cancelled")
            part = lambda f, m, i=i, pid=pid: report((i + f) / len(patients), f"{pid}: {m}")  # noqa: E731
            try:
                model = make_model(pid, part)
                evaluate(model, [pid])
                models[pid] = model
            except InterruptedError:
                raise
            except Exception as exc:  # noqa: BLE001 - isolate the failing patient, keep the others
                errors[pid] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
            report((i + 1) / len(patients), f"{family} {goal}: {pid} done")

    if goal == "single":
        per_patient(lambda pid, part: cls(**params).fit(select_patients(parts["train"], [pid]), protocol.horizons_min,
                                                        progress=part, cancel=stop,
                                                        validation=select_patients(parts["validation"], [pid])))
    elif goal in ("multi", "multi_holdout"):
        fit_on, score_on = patients, patients
        if goal == "multi_holdout":
            if cls.get_tags()["scope"] != "global":
                raise DataError(f"{family} is a per-patient model: it cannot forecast held-out patients",
                                column="family", expected="a global family for the patient-holdout goal")
            train_ids, held = holdout_patients(data.patients, protocol.split)
            fit_on = [p for p in patients if p in train_ids]
            score_on = [p for p in patients if p in held]
            if not fit_on or not score_on:
                raise DataError("patient holdout needs training and held-out patients among those selected",
                                expected=f"some of the held-out patients {held}", found=patients)
        model = cls(**params).fit(select_patients(parts["train"], fit_on), protocol.horizons_min, progress=report,
                                  cancel=stop, validation=select_patients(parts["validation"], fit_on))
        models["all"] = model
        evaluate(model, score_on)
        report(1.0, f"{family} {goal}: scored {len(score_on)} patients")
    else:
        if parent is None:
            raise ValueError("goal 'finetune' needs the parent multi-patient run (parent=RUN_ID)")
        record = run_record(parent)
        if record["goal"] != "multi" or record["model"] != family:
            raise DataError(f"run {parent!r} is not a multi-patient {family} run", column="parent",
                            found=f"{record['goal']} {record['model']}")
        if not cls.get_tags()["fine_tune"]:
            raise DataError(f"{family} does not support fine-tuning", column="family")
        base = load_model(parent, "all").set_params(**params)  # e.g. another finetune_mode than the parent's
        params = base.get_params()
        per_patient(lambda pid, part: base.fine_tune(select_patients(parts["train"], [pid]), progress=part, cancel=stop))

    if not forecasts:
        raise DataError(f"every patient failed to train: {next(iter(errors.values())).splitlines()[0]}",
                        expected="at least one patient that trains")
    table = pd.concat(forecasts, ignore_index=True)
    table["patient_id"] = pd.Categorical(table["patient_id"].astype(str), categories=sorted(
        set(table["patient_id"].astype(str))))
    table = table.sort_values(["patient_id", "origin", "horizon"], ignore_index=True)
    card = {**card, "n_origins": int(len(table) // len(protocol.horizons_min))}
    weights = {key: info for key, model in models.items() if (info := model.weights_info()) is not None}
    return TrainResult(goal, family, params, parent, table, card, models, errors, time.perf_counter() - started,
                       weights or None)
