import pandas as pd
import pytest

from bgcore.data.cohort import load_cohort
from bgcore.data.splits import (DEFAULT_SPLIT, SplitConfig, assign_parts, holdout_patients, split_bounds,
                                temporal_split)
from tests.conftest import make_frame, make_patients


def test_temporal_split_is_ordered_disjoint_and_complete():
    frame = make_frame(("a", "b"), days=10)
    parts = temporal_split(frame)
    assert sum(len(p) for p in parts.values()) == len(frame)
    for pid in ("a", "b"):
        t = {k: v.loc[v["patient_id"] == pid, "time"] for k, v in parts.items()}
        assert t["train"].max() < t["validation"].min() <= t["validation"].max() < t["test"].min()
    share = {k: len(v) / len(frame) for k, v in parts.items()}
    assert share["train"] == pytest.approx(0.7, abs=0.01) and share["test"] == pytest.approx(0.2, abs=0.01)


def test_bounds_follow_the_observed_record():
    frame = make_frame(("a",), days=10)
    frame.loc[: 287, "cgm"] = float("nan")  # first day without readings
    bounds = split_bounds(frame).loc["a"]
    assert bounds["start"] == pd.Timestamp("2024-03-02")
    assert bounds["test_start"] == (pd.Timestamp("2024-03-02") + (bounds["end"] - bounds["start"]) * 0.8).floor("5min")
    assert (bounds["validation_start"].minute % 5) == 0


def test_custom_config_and_validation():
    frame = make_frame(("a",), days=10)
    part = assign_parts(frame, SplitConfig(train=0.5, validation=0.0, test=0.5))
    assert (part == "validation").sum() == 0 and abs((part == "test").mean() - 0.5) < 0.01
    with pytest.raises(ValueError):
        SplitConfig(train=0.8, validation=0.1, test=0.2)
    with pytest.raises(ValueError):
        SplitConfig(holdout_fraction=1.0)


def test_holdout_is_stratified_deterministic_and_disjoint():
    cohort = load_cohort()
    train, holdout = holdout_patients(cohort.patients)
    assert not set(train) & set(holdout) and len(train) + len(holdout) == 30
    groups = cohort.patients.set_index("patient_id").loc[holdout, "age_group"].value_counts()
    assert groups.to_dict() == {"adolescent": 2, "adult": 2, "child": 2}
    assert holdout_patients(cohort.patients) == (train, holdout)
    assert holdout_patients(cohort.patients, SplitConfig(seed=1))[1] != holdout
    single = make_patients(["only"])
    assert holdout_patients(single, DEFAULT_SPLIT) == (["only"], [])
