import numpy as np
import pytest

from bgcore.data.dataset import Dataset
from bgcore.data.schema import DataError
from bgcore.data.splits import holdout_patients
from bgcore.store import list_runs, load_forecasts, load_model, run_record
from bgcore.training.goals import train
from tests.conftest import make_frame, make_patients

IDS = ("a1", "a2", "a3", "a4", "b1", "b2", "b3", "b4", "c1", "c2")
GROUPS = ["adult"] * 4 + ["child"] * 4 + ["adolescent"] * 2  # the holdout keeps one adult and one child out


@pytest.fixture(scope="module")
def data():
    frame = make_frame(IDS, days=6, seed=7)
    patients = make_patients(IDS).assign(age_group=GROUPS)
    return Dataset("t", frame, patients)


def test_single_trains_one_model_per_patient_on_its_own_data(data):
    record = train("single", "arx", patients=["a1", "b1"], dataset=data)
    assert record["status"] == "finished" and record["goal"] == "single" and record["patients"] == ["a1", "b1"]
    assert run_record(record["run_id"])["models"] == ["a1", "b1"]
    assert load_model(record["run_id"], "a1").patients_ == ("a1",)  # a per-patient model saw only its patient
    forecasts = load_forecasts(record["run_id"], verify=True)
    assert sorted(forecasts["patient_id"].unique()) == ["a1", "b1"]
    assert [r["run_id"] for r in list_runs("t")] == [record["run_id"]]


def test_a_run_on_some_patients_equals_their_part_of_a_whole_dataset_run(data):
    from bgcore.evaluation.protocol import data_fingerprint
    some = train("single", "arx", patients=["c2", "a2"], dataset=data)
    every = train("single", "arx", dataset=data)
    assert run_record(some["run_id"])["data_fingerprint"] == data_fingerprint(data.frame)  # same board as `every`
    assert run_record(every["run_id"])["data_fingerprint"] == data_fingerprint(data.frame)
    mine = load_forecasts(some["run_id"])
    theirs = load_forecasts(every["run_id"])
    theirs = theirs[theirs["patient_id"].isin(["a2", "c2"])]
    assert len(mine) == len(theirs) > 0
    np.testing.assert_allclose(mine["pred"].to_numpy(), theirs["pred"].to_numpy())  # same split, same origins
    np.testing.assert_array_equal(mine["origin"].to_numpy(), theirs["origin"].to_numpy())


def test_multi_and_patient_holdout(data):
    multi = train("multi", "arx", dataset=data)
    assert load_model(multi["run_id"]).patients_ == tuple(sorted(IDS))
    train_ids, held = holdout_patients(data.patients)
    assert len(held) == 2
    with pytest.raises(DataError, match="per-patient model"):
        train("multi_holdout", "arx", dataset=data)
    record = train("multi_holdout", "naive", dataset=data)
    model = load_model(record["run_id"])  # naive keeps the patients it was fitted on
    assert set(model.patients_) == set(train_ids) and not set(model.patients_) & set(held)  # never saw held-out
    assert sorted(load_forecasts(record["run_id"])["patient_id"].unique()) == sorted(held)


def test_holdout_needs_both_kinds_of_patients(data):
    _, held = holdout_patients(data.patients)
    with pytest.raises(DataError, match="patient holdout"):
        train("multi_holdout", "naive", patients=held, dataset=data)


def test_finetune_starts_from_the_parent_weights(data):
    params = {"n_estimators": 20, "num_leaves": 7, "min_child_samples": 5, "quantiles": (0.1, 0.9),
              "finetune_rounds": 6}
    parent = train("multi", "lightgbm", params=params, dataset=data)
    record = train("finetune", "lightgbm", patients=["b2"], dataset=data, parent=parent["run_id"])
    assert record["parent_run"] == parent["run_id"] and record["goal"] == "finetune"
    base, tuned = load_model(parent["run_id"]), load_model(record["run_id"], "b2")
    assert tuned.booster_.num_trees() == base.booster_.num_trees() + 6
    first = lambda m: m.booster_.dump_model()["tree_info"][0]  # noqa: E731
    assert first(tuned) == first(base)  # the parent's trees are kept, new ones added
    with pytest.raises(DataError, match="not a multi-patient"):
        train("finetune", "lightgbm", dataset=data, parent=record["run_id"])
    with pytest.raises(ValueError, match="parent"):
        train("finetune", "lightgbm", dataset=data)


def test_a_failing_patient_does_not_stop_the_others(data):
    frame = data.frame.copy()
    frame.loc[frame["patient_id"] == "c1", "cgm"] = np.nan  # c1 has no readings at all
    frame.loc[(frame["patient_id"] == "c1") & (frame.index % 97 == 0), "cgm"] = 120.0
    broken = Dataset("t", frame, data.patients)
    record = train("single", "ets", patients=["a2", "c1"], dataset=broken)
    assert record["status"] == "partial" and list(record["errors"]) == ["c1"]
    assert "needs at least" in record["errors"]["c1"]
    assert sorted(load_forecasts(record["run_id"])["patient_id"].unique()) == ["a2"]


def test_cancel_stores_nothing_and_progress_is_reported(data):
    seen = []
    with pytest.raises(InterruptedError):
        train("single", "naive", dataset=data, cancel=lambda: len(seen) >= 2, progress=lambda f, m: seen.append(f))
    assert list_runs("t") == [] and len(seen) == 2
    with pytest.raises(ValueError, match="goal must be"):
        train("both", "naive", dataset=data)
    with pytest.raises(DataError, match="unknown patients"):
        train("single", "naive", patients=["zz"], dataset=data)


def test_sweep_sub_tasks_share_a_loaded_dataset_until_it_changes(cache_dir, fixtures):
    from bgcore.data.datasets import import_path
    from bgcore.evaluation.protocol import data_fingerprint
    from bgcore.training.goals import task_dataset
    import_path(fixtures / "generic_multi.csv", name="shared")
    first = task_dataset("shared")
    assert task_dataset("shared") is first  # no re-read for the next sub-task
    assert first.fingerprint == data_fingerprint(first.frame)
    part = first.subset(first.patient_ids[:1])
    assert part.fingerprint == data_fingerprint(part.frame) != first.fingerprint
    import_path(fixtures / "generic_multi.csv", name="shared", replace=True)
    again = task_dataset("shared")
    assert again is not first and again.fingerprint == first.fingerprint  # re-read after the re-import
    assert task_dataset("virtual").name == "virtual" and task_dataset("virtual") is task_dataset("virtual")
