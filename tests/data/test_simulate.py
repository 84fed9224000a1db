import numpy as np
import pandas as pd
import pytest

from bgcore.data.cohort import COHORT_SPEC, load_cohort
from bgcore.data.simulate import (DEFAULT_START, SUBJECTS, meal_schedule, sensor_gaps, simulate_cohort,
                                  simulate_patient, subject_params)


def test_fast_parameters_give_identical_output_to_simglucose_as_shipped():
    from simglucose.patient.t1dpatient import Action, T1DPatient

    fast_params, init_state, _ = subject_params("adolescent#004")
    slow = T1DPatient.withName("adolescent#004")
    fast = T1DPatient(fast_params, init_state=init_state)
    basal = fast_params.u2ss * fast_params.BW / 6000
    for k in range(120):
        action = Action(CHO=40.0 if k == 10 else 0.0, insulin=basal + (4.0 if k == 10 else 0.0))
        slow.step(action)
        fast.step(action)
    np.testing.assert_array_equal(slow.state, fast.state)


def test_regenerating_a_prefix_matches_the_committed_cohort_bit_for_bit():
    committed = load_cohort().patient("child#003", end=DEFAULT_START + pd.Timedelta(days=1))
    fresh = simulate_patient("child#003", days=1, seed=COHORT_SPEC["seed"])
    for col in ("cgm", "carbs", "insulin", "bg"):  # the file stores float32
        np.testing.assert_array_equal(fresh[col].astype(np.float32).to_numpy(), committed[col].to_numpy(np.float32))


def test_schedules_and_gaps_do_not_depend_on_the_record_length():
    short = meal_schedule("adult#002", 2, seed=5)
    long = meal_schedule("adult#002", 4, seed=5)
    pd.testing.assert_frame_equal(short, long[long["minute"] < 2 * 1440].reset_index(drop=True))
    np.testing.assert_array_equal(sensor_gaps("adult#002", 12, 5)[: 288 * 11], sensor_gaps("adult#002", 11, 5))


def test_committed_cohort_is_realistic():
    cohort = load_cohort()
    frame = cohort.frame.merge(cohort.patients[["patient_id", "age_group"]].astype({"patient_id": "category"}),
                               on="patient_id")
    assert cohort.patients["age_group"].value_counts().to_dict() == {"adolescent": 10, "adult": 10, "child": 10}
    assert frame.groupby("patient_id", observed=True).size().eq(28 * 288).all()
    cgm = frame["cgm"]
    assert cgm.min() >= 40 and cgm.max() <= 400 and (cgm.dropna() % 1 == 0).all()
    assert 0.005 < cgm.isna().mean() < 0.05 and frame["bg"].notna().all()  # sensor gaps, truth complete
    per = frame.groupby("patient_id", observed=True).agg(
        group=("age_group", "first"), tbr54=("cgm", lambda c: (c < 54).mean()),
        tir=("cgm", lambda c: c.between(70, 180).mean()), cv=("cgm", lambda c: c.std() / c.mean()))
    by_group = per.groupby("group")
    assert by_group["tbr54"].mean()["child"] < 0.02  # children are not kept in severe hypoglycaemia
    assert (per["tbr54"] < 0.05).all()
    assert 0.55 < per["tir"].mean() < 0.9 and per["cv"].mean() > 0.2  # variable, not flat
    daily_carbs = frame.groupby(["patient_id", frame["time"].dt.date], observed=True)["carbs"].sum()
    assert daily_carbs.std() > 10  # meals vary from day to day


def test_simulate_cohort_in_parallel_with_progress():
    calls = []
    frame, patients = simulate_cohort(("child#001", "adult#001"), days=1, seed=3, variants=(0, 1), workers=2,
                                      progress=lambda done, total, pid, s: calls.append((done, total, pid)))
    assert sorted(c[0] for c in calls) == [1, 2, 3, 4] and {c[1] for c in calls} == {4}
    assert patients["patient_id"].tolist() == ["adult#001", "adult#001.v1", "child#001", "child#001.v1"]
    assert patients.set_index("patient_id").loc["child#001.v1", "age_group"] == "child"
    one = simulate_patient("adult#001", days=1, seed=3)
    got = frame[frame["patient_id"] == "adult#001"].reset_index(drop=True)
    np.testing.assert_array_equal(got["cgm"].to_numpy(), one["cgm"].to_numpy())
    other = frame[frame["patient_id"] == "adult#001.v1"]["cgm"].to_numpy()
    assert not np.array_equal(np.nan_to_num(other), np.nan_to_num(one["cgm"].to_numpy()))


def test_unknown_subject():
    with pytest.raises(ValueError, match="unknown simglucose subject"):
        simulate_patient("adult#099", days=1)
    assert len(SUBJECTS) == 30
