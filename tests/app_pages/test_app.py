"""The dashboard through Streamlit's AppTest: it renders on the embedded cohort and on imports.

AppTest reruns only the page script after the first run of an ``st.navigation`` app, so
states of the shared sidebar are set through session state on a fresh run; the served
app in a real browser (tests/test_browser.py) covers interaction across reruns.
"""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from bgcore.data.datasets import import_path
from tests.conftest import FIXTURES

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def start(**state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def test_landing_page_shows_cohort_table_and_cgm_plot():
    at = start()
    assert at.title[0].value == "Cohort"
    table = at.dataframe[0].value
    assert len(table) == 30 and "tir_pct" in table.columns
    assert at.selectbox(key="cohort_patient").value == "adolescent#001"
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    assert '"name":"CGM"' in charts[0].proto.spec.replace(" ", "")
    assert "Ambulatory glucose profile" in charts[1].proto.spec and '"name":"5-95 %"' in charts[1].proto.spec.replace(": ", ":")


def test_units_switch_changes_displayed_means():
    at = start()
    assert at.radio(key="units").value == "mmol/L"
    mmol = at.dataframe[0].value["mean_glucose"].iloc[0]
    at = start(units="mg/dL")
    assert at.radio(key="units").value == "mg/dL"
    mgdl = at.dataframe[0].value["mean_glucose"].iloc[0]
    assert mgdl == pytest.approx(mmol * 18.018)
    assert 100 < mgdl < 200


def test_choose_patient_and_imported_dataset():
    import_path(FIXTURES / "ohio_591.xml", name="ohio")
    at = start()
    at.selectbox(key="cohort_patient").set_value("child#004").run()
    assert not at.exception and "child#004" in at.get("plotly_chart")[0].proto.spec
    at = start(dataset="ohio")
    assert at.sidebar.selectbox(key="dataset").options == ["virtual", "ohio"]
    assert at.dataframe[0].value["patient_id"].tolist() == ["591"]
    assert "591" in at.get("plotly_chart")[0].proto.spec


def test_leaderboard_page_shows_reference_rows_in_display_units():
    at = AppTest.from_file(str(Path(APP).parent / "app_pages" / "leaderboard.py"), default_timeout=120)
    at.session_state["units"] = "mg/dL"
    at.run()
    assert not at.exception, at.exception
    board = at.dataframe[0].value
    assert board["model"].tolist() == ["nightscout_ar2", "persistence"]
    assert 15 < board["rmse"].iloc[0] < 30  # mg/dL at 30 minutes
    assert at.radio(key="board_target").options == ["CGM reading", "true glucose (simulated)"]
    mgdl = board["rmse"].iloc[0]
    at = AppTest.from_file(str(Path(APP).parent / "app_pages" / "leaderboard.py"), default_timeout=120)
    at.session_state["units"] = "mmol/L"
    at.run()
    assert at.dataframe[0].value["rmse"].iloc[0] == pytest.approx(mgdl / 18.018)
    assert any("baseline" in i.value for i in at.info)


def test_train_page_launches_a_job_that_reaches_the_leaderboard():
    from bgcore.training.jobs import get_manager
    page = str(Path(APP).parent / "app_pages" / "train.py")
    at = AppTest.from_file(page, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    assert "lightgbm" in at.selectbox(key="train_family").options
    at.selectbox(key="train_family").set_value("naive")
    at.multiselect(key="train_patients").set_value(["adult#001"])
    at.button[0].click().run()
    assert not at.exception, at.exception
    job = at.session_state["last_job"]
    state = get_manager().wait(job, timeout=120)
    assert state["status"] == "finished"
    at.run()
    assert any("finished" in m.value for m in at.markdown)
    board = AppTest.from_file(str(Path(APP).parent / "app_pages" / "leaderboard.py"), default_timeout=120)
    board.run()
    assert "naive" in board.dataframe[0].value["model"].tolist()


def test_forecasts_page_overlays_stored_runs():
    page = str(Path(APP).parent / "app_pages" / "forecasts.py")
    empty = AppTest.from_file(page, default_timeout=120)
    empty.run()
    assert not empty.exception and "No stored runs" in empty.info[0].value
    from bgcore.cli import main
    assert main(["baseline"]) == 0
    at = AppTest.from_file(page, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    assert len(at.multiselect(key="fc_runs").value) == 2
    spec = at.get("plotly_chart")[0].proto.spec.replace(": ", ":")
    assert '"name":"CGM"' in spec and '"name":"true glucose"' in spec
    assert "persistence" in spec and "nightscout_ar2" in spec and "0.025-0.975" in spec  # band of persistence


def test_train_page_says_where_foundation_weights_come_from_and_checks_pretrain_names():
    page = str(Path(APP).parent / "app_pages" / "train.py")
    at = AppTest.from_file(page, default_timeout=120)
    at.run()
    options = at.selectbox(key="train_family").options
    assert "dfm" in options and "ttm" in options and "chronos2" not in options  # no Chronos-2 weights here
    at.selectbox(key="train_family").set_value("dfm").run()
    assert not at.exception, at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "Weights: loads dfm-small (checkpoint shipped with bgcore" in captions
    assert "chronos2: weights 'amazon/chronos-2' not found locally" in captions
    assert "timegpt: no Nixtla API key" in captions
    assert "families cannot run here yet" in at.expander[0].label
    at.text_input(key="pre_name").set_value("../evil")
    at.button(key="pre_launch").click().run()
    assert not at.exception and "checkpoint name" in at.error[0].value


def import_page() -> AppTest:
    at = AppTest.from_file(str(Path(APP).parent / "app_pages" / "import_data.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def at_path(at: AppTest, path) -> AppTest:
    at.radio(key="imp_source").set_value("A file or folder on this computer").run()
    at.text_input(key="imp_path").set_value(str(path)).run()
    assert not at.exception, at.exception
    return at


def test_import_page_shows_problems_and_stores_nothing(cache_dir):
    from bgcore.data.datasets import list_datasets
    at = import_page()
    assert "Choose a file" in at.info[0].value
    at = at_path(at, FIXTURES / "dexcom_bad_value.csv")
    assert "1 problem(s): nothing will be stored" in at.error[0].value
    problems = at.dataframe[-1].value
    assert problems.loc[0, "row"] == 8 and problems.loc[0, "column"] == "Glucose Value (mg/dL)"
    assert problems.loc[0, "found"] == "12a"
    assert not [b for b in at.button if b.key == "imp_store"]
    at = at_path(import_page(), FIXTURES)  # a folder: every bad file is listed, each with its row
    listed = at.dataframe[-1].value
    assert len(listed) >= 10 and {"dexcom_bad_value.csv", "ohio_broken.xml", "generic_bad_time.csv"} <= set(listed["file"])
    assert [d["name"] for d in list_datasets()] == ["virtual"]


def test_import_page_previews_then_stores_a_dataset(cache_dir):
    from bgcore.data.datasets import list_datasets
    at = at_path(import_page(), FIXTURES / "libre_eu_mmol.csv")
    report = at.code[0].value
    assert "format: libre" in report and "units: mmol/L" in report
    assert at.dataframe[0].value["readings"].iloc[0] > 0
    assert [d["name"] for d in list_datasets()] == ["virtual"]  # the preview stored nothing
    at.text_input(key="imp_name").set_value("libre1").run()
    at.button(key="imp_store").click().run()
    assert not at.exception, at.exception
    assert "Stored dataset 'libre1'" in at.success[0].value and at.session_state["dataset_pending"] == "libre1"
    assert [d["name"] for d in list_datasets()] == ["virtual", "libre1"]
    at.button(key="imp_store").click().run()  # the same name again, without replace
    assert "already exists" in at.error[0].value


def test_uploads_are_staged_and_removed(cache_dir):
    from bgcore.data.datasets import preview_path, staged_upload
    data = (FIXTURES / "generic.csv").read_bytes()
    with staged_upload("../../etc/generic.csv", data) as staged:
        assert staged.name == "generic.csv" and staged.parent.parent == cache_dir / "uploads"
        assert preview_path(staged)["ok"]
    assert not any((cache_dir / "uploads").iterdir())


def test_patient_report_page_empty_then_with_runs_and_downloads(cache_dir):
    page = str(Path(APP).parent / "app_pages" / "patient.py")
    at = AppTest.from_file(page, default_timeout=120)
    at.session_state["selected_patient"] = "child#004"  # chosen on another page
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="report_patient").value == "child#004"
    assert any("No forecasting model has been run" in m.value for m in at.markdown)
    from bgcore.cli import main
    assert main(["baseline"]) == 0
    at = AppTest.from_file(page, default_timeout=120)
    at.session_state["selected_patient"] = "child#004"
    at.session_state["units"] = "mg/dL"
    at.run()
    assert not at.exception, at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "Best model for this patient: nightscout_ar2 (a reference forecaster)" in text
    assert "30-minute forecast is typically within" in text and "mg/dL" in text and "Clarke error grid" in text
    assert at.dataframe[0].value["model"].tolist() == ["nightscout_ar2", "persistence"]
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    assert "Ambulatory glucose profile" in specs[0] and '"zone A"' in specs[1].replace(": ", ":").replace('":"', '":"')
    assert len(at.get("download_button")) == 2


def test_patient_report_numbers_and_files(cache_dir):
    import numpy as np
    from bgcore.cli import main
    from bgcore.data.cohort import load_cohort
    from bgcore.evaluation.metrics import clarke_zones
    from bgcore.evaluation.report import patient_report, report_csv, report_html
    from bgcore.plots import agp_figure
    assert main(["baseline"]) == 0
    report = patient_report(load_cohort(), "adult#002", 30, "mg/dL")
    best = report.best
    at30 = report.forecasts[report.forecasts["horizon"] == 30]
    error = (at30["pred"] - at30["cgm"]).abs().dropna()
    assert best["median_abs_error"] == np.median(error) and best["n_forecasts"] == len(error)
    zones = clarke_zones(at30["cgm"].to_numpy(), at30["pred"].to_numpy())
    assert best["zones_pct"]["A"] == round(100 * np.mean(zones[zones >= 0] == 0), 1)
    assert report.ranking["rmse"].is_monotonic_increasing and report.ranking.iloc[0]["run_id"] == best["run_id"]
    csv = report_csv(report).decode()
    assert csv.splitlines()[0].startswith("patient_id,origin,horizon,pred") and len(csv.splitlines()) == len(
        report.forecasts) + 1
    page = report_html(report, [agp_figure(report.profile, units="mg/dL")], "mg/dL")
    assert page.startswith("<!DOCTYPE html>") and "Patient report: adult#002" in page and "plotly" in page
    evil = patient_report(load_cohort(), "adult#002", 30, "mg/dL")
    evil.patient_id = "<script>alert(1)</script>"
    assert "<script>alert(1)</script>" not in report_html(evil, [], "mg/dL")


def test_forecasts_page_trail_and_runs_chosen_elsewhere(cache_dir):
    from bgcore.cli import main
    from bgcore.store import list_runs
    assert main(["baseline"]) == 0
    ar2 = next(r["run_id"] for r in list_runs("virtual") if r["model"] == "nightscout_ar2")
    at = AppTest.from_file(str(Path(APP).parent / "app_pages" / "forecasts.py"), default_timeout=120)
    at.session_state["selected_runs"] = [ar2]  # e.g. opened from the leaderboard
    at.run()
    assert not at.exception, at.exception
    assert len(at.multiselect(key="fc_runs").value) == 1 and "nightscout_ar2" in at.multiselect(key="fc_runs").value[0]
    trail = at.get("plotly_chart")[1].proto.spec.replace(": ", ":")
    assert "30 min ahead" in trail and '"name":"CGM"' in trail
    at.select_slider(key="fc_trail_h").set_value(60).run()
    assert not at.exception and "60 min ahead" in at.get("plotly_chart")[1].proto.spec
    before = at.select_slider(key="fc_origin").value
    at.button(key="fc_next").click().run()
    assert not at.exception, at.exception
    after = at.select_slider(key="fc_origin").value
    assert after > before and (after - before) == __import__("pandas").Timedelta(minutes=30)


def test_leaderboard_filters_charts_and_run_details(cache_dir):
    from bgcore.cli import main
    from bgcore.training.goals import train
    assert main(["baseline"]) == 0
    train("multi", "naive", patients=["adult#001", "child#004"])
    train("single", "naive", patients=["adult#001", "child#004"])
    page = str(Path(APP).parent / "app_pages" / "leaderboard.py")
    at = AppTest.from_file(page, default_timeout=120)
    at.session_state["units"] = "mg/dL"
    at.run()
    assert not at.exception, at.exception
    board = at.dataframe[0].value
    assert set(board["model"]) == {"persistence", "nightscout_ar2", "naive"} and len(board) == 4
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    assert "RMSE at 30 min" in specs[0] and "RMSE by horizon" in specs[1]
    paired = at.dataframe[1].value
    assert paired.loc[0, "goal_a"] == "single" and paired.loc[0, "goal_b"] == "multi"
    at.multiselect(key="board_goals").set_value(["multi"]).run()
    assert not at.exception and at.dataframe[0].value["goal"].tolist().count("single") == 0
    at.selectbox(key="board_group").set_value("child").run()
    assert not at.exception and (at.dataframe[0].value["patients"] <= 10).all()
    assert (at.dataframe[0].value.loc[at.dataframe[0].value["model"] == "naive", "patients"] == 1).all()


def test_leaderboard_selected_run_shows_its_error_grid_and_patients(cache_dir):
    from bgcore.cli import main
    assert main(["baseline"]) == 0
    at = AppTest.from_file(str(Path(APP).parent / "app_pages" / "leaderboard.py"), default_timeout=120)
    at.run()
    best = at.dataframe[0].value.iloc[0]
    at.session_state["board_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}  # a click on row 1
    at.run()
    assert not at.exception, at.exception
    assert f"{best['model']} · reference" in [s.value for s in at.subheader]
    grid = at.get("plotly_chart")[2].proto.spec
    assert "Clarke error grid at 30 min" in grid and '"zone A"' in grid.replace(": ", ":").replace(' "', '"')
    patients = at.dataframe[-1].value
    assert len(patients) == 30 and patients["rmse"].is_monotonic_decreasing
    at.radio(key="board_grid").set_value("parkes").run()
    assert not at.exception and "Parkes error grid" in at.get("plotly_chart")[2].proto.spec
