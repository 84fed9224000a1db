import numpy as np
import pandas as pd
import pytest

from bgcore.data.ingest import (RawData, check_file, detect_units, finalise, parse_numbers, parse_times,
                                resolve_units, spread_segments)
from bgcore.data.schema import DataError


def raw(times, values, units="mg/dL", carbs=None, insulin=None, segments=None, pid="p1"):
    times = pd.to_datetime(pd.Series(times))
    glucose = pd.DataFrame({"patient_id": pid, "time": times, "value": values, "row": np.arange(2, len(times) + 2)})
    return RawData(file="test.csv", format="csv", glucose=glucose, units=units,
                   patients=pd.DataFrame([{"patient_id": pid, "age_group": "adult", "source": "test"}]),
                   carbs=carbs, insulin=insulin, insulin_segments=segments)


def test_readings_are_labelled_by_rounding_up_to_the_grid():
    frame, _, report = finalise([raw(["2024-01-01 08:00:00", "2024-01-01 08:00:01", "2024-01-01 08:04:59",
                                      "2024-01-01 08:05:00", "2024-01-01 08:20:00"], [100.0, 110.0, 120.0, 130.0, 200.0])])
    assert frame["time"].dt.strftime("%H:%M").tolist() == ["08:00", "08:05", "08:10", "08:15", "08:20"]
    # 08:00:01, 08:04:59 and 08:05:00 all belong to (08:00, 08:05]: never labelled earlier than observed
    np.testing.assert_allclose(frame["cgm"], [100, 120, np.nan, np.nan, 200])
    assert report.gaps_over_30min == 0 and report.grid_rows == 5


def test_one_minute_sampling_is_aggregated_not_looped():
    times = pd.date_range("2024-01-01 08:00:30", periods=60, freq="1min")
    frame, _, report = finalise([raw(times, np.arange(60.0) + 100)])
    assert len(frame) == 12 and frame["time"].iloc[0] == pd.Timestamp("2024-01-01 08:05")
    # step 08:05 holds readings 08:00:30 .. 08:04:30 -> values 100..104
    assert frame.loc[0, "cgm"] == pytest.approx(102.0)
    assert any("averaged into their 5-minute step" in n for n in report.notes)
    assert report.median_interval_min == 1.0


def test_fifteen_minute_sampling_leaves_nan_steps():
    times = pd.date_range("2024-01-01 08:00", periods=5, freq="15min")
    frame, _, report = finalise([raw(times, [100.0] * 5)])
    assert len(frame) == 13 and frame["cgm"].notna().sum() == 5
    assert any("sampling every 15 min" in n for n in report.notes)


def test_duplicates_dropped_or_averaged_and_reported():
    frame, _, report = finalise([raw(["2024-01-01 08:00"] * 3 + ["2024-01-01 08:05"], [100.0, 100.0, 110.0, 120.0])])
    assert frame["cgm"].tolist() == [105.0, 120.0]
    assert "1 duplicated glucose rows (same time and value) dropped" in report.notes
    assert any("share a timestamp with a different value" in n for n in report.notes)


def test_units_detected_converted_and_reported():
    mgdl, units, note = resolve_units(np.array([5.5, 7.0, 12.0]), "mg/dL")
    assert units == "mmol/L" and "converted" in note and "says mg/dL" in note
    np.testing.assert_allclose(mgdl, [99.099, 126.126, 216.216])
    same, units, note = resolve_units(np.array([99.0, 250.0]), "mg/dL")
    assert units == "mg/dL" and note is None
    assert detect_units(np.array([40.0, 400.0])) == "mg/dL"
    assert detect_units(np.array([2.2, 22.2])) == "mmol/L"


def test_out_of_range_glucose_names_row():
    with pytest.raises(DataError) as exc:
        finalise([raw(["2024-01-01 08:00", "2024-01-01 08:05", "2024-01-01 08:10"], [100.0, 700.0, 10.0])])
    assert exc.value.row == 3 and exc.value.file == "test.csv" and "20-600 mg/dL" in str(exc.value)
    assert "2 value(s)" in str(exc.value)


def test_no_readings_is_an_error():
    with pytest.raises(DataError, match="no glucose readings"):
        finalise([raw([], [])])


def test_insulin_and_carbs_on_grid_and_unknown_stays_nan():
    ins = pd.DataFrame({"patient_id": "p1", "time": pd.to_datetime(["2024-01-01 08:02", "2024-01-01 08:04"]),
                        "insulin": [1.0, 2.0], "row": [5, 6]})
    frame, _, report = finalise([raw(["2024-01-01 08:00", "2024-01-01 08:10"], [100.0, 110.0], insulin=ins)])
    assert frame["insulin"].tolist() == [0.0, 3.0, 0.0]
    assert frame["carbs"].isna().all()
    assert any("no carbs records" in n for n in report.notes)


def test_negative_dose_is_an_error():
    ins = pd.DataFrame({"patient_id": "p1", "time": pd.to_datetime(["2024-01-01 08:02"]), "insulin": [-1.0],
                        "row": [9]})
    with pytest.raises(DataError, match="negative") as exc:
        finalise([raw(["2024-01-01 08:00"], [100.0], insulin=ins)])
    assert exc.value.row == 9


def test_spread_segments_exact_overlaps():
    seg = pd.DataFrame({"patient_id": ["p"], "start": [pd.Timestamp("2024-01-01 08:02")],
                        "end": [pd.Timestamp("2024-01-01 08:12")], "insulin": [1.0]})
    out = spread_segments(seg)
    assert out["time"].dt.strftime("%H:%M").tolist() == ["08:05", "08:10", "08:15"]
    np.testing.assert_allclose(out["insulin"], [0.3, 0.5, 0.2])
    on_grid = pd.DataFrame({"patient_id": ["p"], "start": [pd.Timestamp("2024-01-01 08:00")],
                            "end": [pd.Timestamp("2024-01-01 08:10")], "insulin": [2.0]})
    out = spread_segments(on_grid)
    assert out["time"].dt.strftime("%H:%M").tolist() == ["08:05", "08:10"]
    np.testing.assert_allclose(out["insulin"], [1.0, 1.0])


def test_same_patient_from_two_files_is_merged():
    a = raw(["2024-01-01 08:00", "2024-01-01 08:05"], [100.0, 105.0])
    b = raw(["2024-01-01 08:05", "2024-01-01 08:10"], [105.0, 110.0])
    frame, patients, report = finalise([a, b])
    assert frame["cgm"].tolist() == [100.0, 105.0, 110.0] and len(patients) == 1


def test_parse_times_reports_first_bad_row_and_resolves_date_order():
    rows = pd.Series([2, 3, 4])
    with pytest.raises(DataError) as exc:
        parse_times(pd.Series(["2024-01-01 08:00", "nope", ""]), rows, file="f.csv", column="time",
                    formats=("%Y-%m-%d %H:%M",))
    assert exc.value.row == 3 and exc.value.found == "nope"
    # 03/04 and 04/04 parse either way; day-first gives a one-day record, month-first a month
    values = pd.Series(["03/04/2024 10:00", "04/04/2024 10:00"])
    parsed = parse_times(values, pd.Series([2, 3]), file="f", column="t",
                         formats=("%m/%d/%Y %H:%M", "%d/%m/%Y %H:%M"), choose="shortest")
    assert parsed.tolist() == [pd.Timestamp("2024-04-03 10:00"), pd.Timestamp("2024-04-04 10:00")]


def test_parse_numbers_named_values_and_errors():
    rows = pd.Series([2, 3, 4, 5])
    out = parse_numbers(pd.Series(["1.5", "Low", "", "HIGH"]), rows, file="f", column="g",
                        named={"low": 40, "high": 400})
    assert out.iloc[0] == 1.5 and out.iloc[1] == 40 and np.isnan(out.iloc[2]) and out.iloc[3] == 400
    with pytest.raises(DataError) as exc:
        parse_numbers(pd.Series(["1", "x1"]), rows[:2], file="f", column="g")
    assert exc.value.row == 3 and exc.value.column == "g"


def test_check_file_empty_missing_and_too_large(tmp_path, monkeypatch):
    empty = tmp_path / "e.csv"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        check_file(empty)
    with pytest.raises(DataError, match="no such file"):
        check_file(tmp_path / "missing.csv")
    big = tmp_path / "big.csv"
    big.write_bytes(b"x" * 2048)
    monkeypatch.setenv("BGCORE_MAX_FILE_MB", "0.001")
    with pytest.raises(DataError, match="too large") as exc:
        check_file(big)
    assert "BGCORE_MAX_FILE_MB" in str(exc.value)
