import numpy as np
import pandas as pd
import pytest

from bgcore.data.schema import (MGDL_PER_MMOLL, DataError, convert_glucose, to_mgdl, to_mmol, validate_frame,
                                validate_id)
from tests.conftest import make_frame, make_patients


def test_one_conversion_constant():
    assert MGDL_PER_MMOLL == 18.018
    assert to_mmol(180.18) == pytest.approx(10.0)
    assert to_mgdl(3.9) == pytest.approx(70.27, abs=0.01)
    np.testing.assert_allclose(to_mmol(to_mgdl(np.array([2.2, 5.5, 22.2]))), [2.2, 5.5, 22.2])
    assert convert_glucose(100.0, "mg/dL") == 100.0
    with pytest.raises(ValueError):
        convert_glucose(100.0, "g/L")


def test_data_error_names_file_row_column_expectation():
    err = DataError("not a number", file="a.csv", row=12, column="glucose", expected="a number", found="abc")
    assert str(err) == "a.csv, row 12, column 'glucose': not a number; expected a number, found 'abc'"
    assert str(DataError("empty", file="b.csv")) == "b.csv: empty"


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", "x" * 65, "..", "a b", "é"])
def test_validate_id_rejects_unsafe(bad):
    with pytest.raises(DataError):
        validate_id(bad)


def test_validate_id_accepts_cohort_ids():
    assert validate_id("adolescent#001") == "adolescent#001"
    assert validate_id("559") == "559"


def test_validate_frame_accepts_generated_frame():
    frame = make_frame(("a", "b"))
    validate_frame(frame, make_patients(["a", "b"]))


@pytest.mark.parametrize("breakage, message", [
    (lambda f: f.drop(columns=["insulin"]), "lacks columns"),
    (lambda f: f.assign(time=f["time"] + pd.Timedelta(minutes=1)), "5-minute grid"),
    (lambda f: f.drop(index=5).reset_index(drop=True), "consecutive"),
    (lambda f: pd.concat([f.iloc[:3], f.iloc[2:]], ignore_index=True), "consecutive"),
    (lambda f: f.assign(cgm=f["cgm"].where(f.index != 7, 700.0)), "plausible range"),
    (lambda f: f.assign(carbs=f["carbs"].where(f.index != 7, -1.0)), "negative"),
    (lambda f: f.assign(cgm=f["cgm"].astype(int)), "not float"),
])
def test_validate_frame_rejects(breakage, message):
    with pytest.raises(DataError, match=message):
        validate_frame(breakage(make_frame(("a",))))


def test_validate_frame_rejects_interleaved_patients_and_missing_metadata():
    frame = make_frame(("a", "b"))
    interleaved = pd.concat([frame.iloc[:10], frame[frame.patient_id == "b"], frame.iloc[10:288]],
                            ignore_index=True)
    with pytest.raises(DataError, match="contiguous"):
        validate_frame(interleaved)
    with pytest.raises(DataError, match="without metadata"):
        validate_frame(frame, make_patients(["a"]))
