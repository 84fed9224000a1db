"""Every loader on hand-written fixture files (tests/fixtures), good and malformed."""

import json

import numpy as np
import pandas as pd
import pytest

from bgcore.data.ingest import finalise
from bgcore.data.loaders import FORMATS, detect_format, read_path
from bgcore.data.schema import DataError


def load(path, **kw):
    return finalise(read_path(path, **kw))


def at(frame, hhmm, col, pid=None):
    rows = frame if pid is None else frame[frame["patient_id"] == pid]
    return rows.loc[rows["time"].dt.strftime("%Y-%m-%d %H:%M").str.endswith(hhmm), col].iloc[0]


@pytest.mark.parametrize("name, fmt", [
    ("ohio_591.xml", "ohio"), ("bris_small.csv", "bris"), ("dexcom_clarity.csv", "dexcom"),
    ("dexcom_clarity_mmol_preamble.csv", "dexcom"), ("libre_us.csv", "libre"), ("libre_eu_mmol.csv", "libre"),
    ("ns_folder", "nightscout"), ("ns_single.json", "nightscout"), ("generic.csv", "csv"),
    ("generic_multi.csv", "csv")])
def test_detect_format(fixtures, name, fmt):
    assert detect_format(fixtures / name) == fmt
    assert fmt in FORMATS


def test_unknown_format_is_a_clear_error(tmp_path):
    odd = tmp_path / "notes.csv"
    odd.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="unrecognised file format") as exc:
        detect_format(odd)
    assert "Dexcom Clarity CSV" in str(exc.value)


# --- OhioT1DM -------------------------------------------------------------------------

def test_ohio_basal_temp_basal_boluses_meals(fixtures):
    frame, patients, report = load(fixtures / "ohio_591.xml")
    assert patients["patient_id"].tolist() == ["591"] and patients["weight_kg"].iloc[0] == 99
    assert frame["time"].min() == pd.Timestamp("2021-12-07 10:00") and len(frame) == 13
    # 10:02 and 10:05 share the step (10:00, 10:05]
    assert at(frame, "10:05", "cgm") == 115.0
    assert np.isnan(at(frame, "10:35", "cgm")) and np.isnan(at(frame, "10:40", "cgm"))
    expected = {"10:00": 0.0, "10:05": 0.1, "10:10": 3.1, "10:15": 0.1, "10:30": 0.1, "10:35": 0.0,
                "10:40": 0.0, "10:45": 0.5, "11:00": 0.5}  # 1.2 U/h basal, temp 0 from 10:30, square 2 U 10:40-11:00
    for hhmm, units in expected.items():
        assert at(frame, hhmm, "insulin") == pytest.approx(units, abs=1e-9), hhmm
    assert at(frame, "10:10", "carbs") == 45.0 and frame["carbs"].sum() == 45.0
    assert any("finger_stick (1)" in n and "exercise (1)" in n and "basis_heart_rate (2)" in n
               for n in report.notes)


@pytest.mark.parametrize("name, message, row", [
    ("ohio_bad_time.xml", "unparseable timestamp", "<glucose_level> event 5"),
    ("ohio_broken.xml", "malformed XML", None),
    ("ohio_no_glucose.xml", "no <glucose_level> events", None),
])
def test_ohio_bad_files(fixtures, name, message, row):
    with pytest.raises(DataError, match=message) as exc:
        load(fixtures / name)
    assert exc.value.file.endswith(name)
    if row:
        assert exc.value.row == row and exc.value.column == "ts"


def test_ohio_training_and_testing_files_merge(fixtures, tmp_path):
    text = (fixtures / "ohio_591.xml").read_text()
    (tmp_path / "591-ws-training.xml").write_text(text)
    (tmp_path / "591-ws-testing.xml").write_text(text.replace("07-12-2021", "08-12-2021"))
    frame, patients, report = load(tmp_path)
    assert len(patients) == 1 and frame["time"].dt.date.nunique() == 2
    assert "patient 591 combined from 2 files" in report.notes


# --- BrisT1D --------------------------------------------------------------------------

def test_bris_rebuilds_series_across_midnight_and_gaps(fixtures):
    frame, patients, report = load(fixtures / "bris_small.csv")
    assert patients["patient_id"].tolist() == ["p01", "p02"]
    p1 = frame[frame["patient_id"] == "p01"]
    assert p1["time"].min() == pd.Timestamp("2020-01-01 23:35") and p1["time"].max() == pd.Timestamp("2020-01-02 00:15")
    assert p1["cgm"].notna().all()  # the 15-minute jump is filled from the lag columns
    mmol = {"23:35": 5.0, "23:50": 5.3, "23:55": 5.4, "00:00": 5.5, "00:05": 5.6, "00:10": 5.7, "00:15": 5.8}
    for hhmm, value in mmol.items():
        assert at(p1, hhmm, "cgm") == pytest.approx(value * 18.018), hhmm
    # each value is read once although it appears in several overlapping windows
    assert at(p1, "23:50", "insulin") == pytest.approx(2.0) and at(p1, "23:50", "carbs") == 30.0
    assert p1["carbs"].sum() == 30.0
    p2 = frame[frame["patient_id"] == "p02"]
    assert p2["time"].min() == pd.Timestamp("2020-01-01 07:50") and at(p2, "08:00", "cgm") == pytest.approx(8.0 * 18.018)
    assert any("time of day only" in n for n in report.notes)
    assert any("converted mmol/L" in n for n in report.notes)


def test_bris_bad_value_and_missing_column(fixtures):
    with pytest.raises(DataError) as exc:
        load(fixtures / "bris_bad_value.csv")
    assert exc.value.row == 4 and exc.value.column == "bg-0:15" and exc.value.found == "abc"
    with pytest.raises(DataError, match="missing columns: 'p_num'"):
        load(fixtures / "bris_missing_column.csv", format="bris")


# --- Dexcom Clarity -------------------------------------------------------------------

def test_dexcom_egv_low_high_insulin_carbs(fixtures):
    frame, patients, report = load(fixtures / "dexcom_clarity.csv")
    assert patients["patient_id"].tolist() == ["dexcom_clarity"]
    assert frame["cgm"].tolist() == [110.0, 40.0, 120.0, 400.0, 130.0]  # Low/High -> sensor limits
    assert frame["time"].iloc[0] == pd.Timestamp("2024-03-14 08:05")  # 08:01:33 -> (08:00, 08:05]
    assert at(frame, "08:15", "carbs") == 40.0
    # 4.5 U fast-acting at 08:12; 24 U long-acting from 08:00 spread over 24 h = 1/12 U per step
    assert at(frame, "08:15", "insulin") == pytest.approx(4.5 + 24 / 288)
    assert at(frame, "08:10", "insulin") == pytest.approx(24 / 288)
    assert any("2 Low/High" in n for n in report.notes)
    assert any("long-acting" in n for n in report.notes)


def test_dexcom_mmol_with_preamble(fixtures):
    frame, _, report = load(fixtures / "dexcom_clarity_mmol_preamble.csv")
    assert frame["cgm"].round(1).tolist() == [109.9, 39.6, 120.7, 400.0, 129.7]
    assert report.units == "mmol/L"


@pytest.mark.parametrize("name, message, row, column", [
    ("dexcom_bad_value.csv", "not a number", 8, "Glucose Value (mg/dL)"),
    ("dexcom_bad_time.csv", "unparseable timestamp", 9, "Timestamp (YYYY-MM-DDThh:mm:ss)"),
    ("dexcom_no_egv.csv", "no EGV", None, "Event Type"),
])
def test_dexcom_bad_files(fixtures, name, message, row, column):
    with pytest.raises(DataError, match=message) as exc:
        load(fixtures / name)
    assert exc.value.row == row and exc.value.column == column and exc.value.file.endswith(name)


# --- LibreView ------------------------------------------------------------------------

def test_libre_unsorted_us_dates_scan_insulin_food(fixtures):
    frame, _, report = load(fixtures / "libre_us.csv")
    assert frame["time"].min() == pd.Timestamp("2024-03-14 08:00") and frame["time"].max() == pd.Timestamp("2024-03-14 12:45")
    assert at(frame, "08:00", "cgm") == 100.0 and at(frame, "08:10", "cgm") == 112.0  # scan at 08:07
    assert at(frame, "08:15", "cgm") == 40.0 and at(frame, "12:45", "cgm") == 500.0  # LO / HI
    assert at(frame, "08:10", "insulin") == 5.0 and at(frame, "08:10", "carbs") == 50.0
    assert any("HI/LO" in n for n in report.notes)


def test_libre_day_first_mmol_semicolons_long_acting(fixtures):
    frame, _, report = load(fixtures / "libre_eu_mmol.csv")
    assert frame["time"].min() == pd.Timestamp("2024-03-14 13:00")
    assert at(frame, "13:30", "cgm") == pytest.approx(7.8 * 18.018)
    assert at(frame, "13:10", "insulin") == pytest.approx(12 / 288)  # long-acting spread over 24 h
    assert frame["carbs"].isna().all()  # no food records: unknown, not zero


def test_libre_without_header(fixtures):
    with pytest.raises(DataError, match="Device Timestamp"):
        read_path(fixtures / "libre_no_header.csv", format="libre")


# --- Nightscout -----------------------------------------------------------------------

def test_nightscout_folder_local_time_boluses_temp_basals(fixtures):
    frame, patients, report = load(fixtures / "ns_folder")
    assert patients["patient_id"].tolist() == ["ns_folder"]
    # epoch 08:01:33 UTC with utcOffset +60 -> 09:01:33 local -> step 09:05; the mbg entry is ignored
    assert frame["time"].dt.strftime("%H:%M").tolist() == ["09:05", "09:10", "09:15"]
    assert frame["cgm"].tolist() == [150.0, 155.0, 160.0]
    # bolus 3.5 U at 09:04 local + temp 1.2 U/h (cancelled at 09:10 by a 0.6 U/h temp)
    np.testing.assert_allclose(frame["insulin"], [3.5 + 0.1, 0.1, 0.05])
    assert frame["carbs"].tolist() == [40.0, 0.0, 0.0]
    assert any("basal profile is not in the treatments" in n for n in report.notes)


def test_nightscout_single_object_offset_from_date_string(fixtures):
    frame, _, _ = load(fixtures / "ns_single.json")
    assert frame["time"].tolist() == [pd.Timestamp("2024-03-14 10:00"), pd.Timestamp("2024-03-14 10:05")]


def test_nightscout_broken_and_wrong_shape(fixtures, tmp_path):
    with pytest.raises(DataError, match="malformed JSON") as exc:
        load(fixtures / "ns_broken.json", format="nightscout")
    assert exc.value.row == "line 2, column 17"
    odd = tmp_path / "entries.json"
    odd.write_text(json.dumps({"entries": {"sgv": 1}}))
    with pytest.raises(DataError, match="not a list of records"):
        load(odd, format="nightscout")
    no_sgv = tmp_path / "x.json"
    no_sgv.write_text(json.dumps([{"date": 1710403293000, "glucose": 100}]))
    with pytest.raises(DataError, match="'sgv'"):
        load(no_sgv, format="nightscout")


# --- generic CSV ----------------------------------------------------------------------

def test_generic_csv_irregular_sampling_duplicates(fixtures):
    frame, patients, report = load(fixtures / "generic.csv")
    assert at(frame, "08:00", "cgm") == 100.0
    assert at(frame, "08:05", "cgm") == pytest.approx(106.0)  # 08:01..08:05, exact duplicate dropped
    assert at(frame, "08:10", "cgm") == pytest.approx((112 + 120 + 124) / 3)
    assert frame["cgm"].isna().sum() == 3  # 08:15 .. 08:25
    assert at(frame, "08:05", "carbs") == 30.0 and at(frame, "08:05", "insulin") == 2.5
    assert report.gaps_over_30min == 0 and report.median_interval_min == 1.0
    assert any("duplicated glucose rows" in n for n in report.notes)
    assert any("columns not used: Comment" in n for n in report.notes)


def test_generic_mmol_labelled_mgdl_is_converted_and_said(fixtures):
    frame, _, report = load(fixtures / "generic_mmol_as_mgdl.csv")
    assert frame["cgm"].iloc[0] == pytest.approx(5.5 * 18.018)
    assert any("says mg/dL but the values look like mmol/L" in n for n in report.notes)


def test_generic_multi_patient_day_first(fixtures):
    frame, patients, _ = load(fixtures / "generic_multi.csv")
    assert patients["patient_id"].tolist() == ["a1", "b2"]
    assert frame.loc[frame.patient_id == "b2", "time"].min() == pd.Timestamp("2024-03-13 23:55")


@pytest.mark.parametrize("name, message, row", [
    ("generic_out_of_range.csv", "outside the plausible range", 3),
    ("generic_bad_time.csv", "unparseable timestamp", 3),
    ("empty.csv", "file is empty", None),
    ("header_only.csv", "no data rows", None),
])
def test_generic_bad_files(fixtures, name, message, row):
    with pytest.raises(DataError, match=message) as exc:
        load(fixtures / name, format="csv")
    assert exc.value.row == row and exc.value.file.endswith(name)


def test_folder_of_mixed_formats_skips_unknown_files(fixtures, tmp_path):
    for name in ("dexcom_clarity.csv", "libre_us.csv", "ohio_591.xml"):
        (tmp_path / name).write_bytes((fixtures / name).read_bytes())
    (tmp_path / "README.txt").write_text("notes")
    frame, patients, report = load(tmp_path)
    assert sorted(patients["patient_id"]) == ["591", "dexcom_clarity", "libre_us"]
    assert any("skipped files of unknown format: README.txt" in n for n in report.notes)
    assert report.format == "dexcom, libre, ohio"


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no readable data files"):
        read_path(tmp_path)
