import json

import pandas as pd
import pytest

from bgcore.data.dataset import Dataset
from bgcore.data.schema import DataError
from bgcore.evaluation.backtest import reference_backtests
from bgcore.store import list_runs, load_forecasts, new_run_id, runs_root, save_run
from tests.conftest import make_frame, make_patients


@pytest.fixture
def run():
    d = Dataset("t", make_frame(("a",), days=5), make_patients(["a"]))
    forecasts, card = reference_backtests(d)["persistence"]
    return forecasts, card


def test_save_list_load_round_trip(run):
    forecasts, card = run
    record = save_run(forecasts, card, model="persistence", family="reference", goal="reference",
                      params={"levels": 9}, protocol_key="k")
    assert record["patients"] == ["a"] and record["dataset"] == "t"
    listed = list_runs()
    assert [r["run_id"] for r in listed] == [record["run_id"]] and listed[0]["card"]["n_origins"] == card["n_origins"]
    pd.testing.assert_frame_equal(load_forecasts(record["run_id"], verify=True), forecasts)
    manifest = json.loads((runs_root() / record["run_id"] / "manifest.json").read_text())
    assert manifest["rows"] == len(forecasts) and len(manifest["sha256"]["forecasts.parquet"]) == 64


def test_tampering_and_incomplete_runs(run):
    forecasts, card = run
    record = save_run(forecasts, card, model="p", family="reference", goal="reference")
    path = runs_root() / record["run_id"] / "forecasts.parquet"
    forecasts.iloc[:10].to_parquet(path)
    with pytest.raises(DataError, match="manifest hash"):
        load_forecasts(record["run_id"], verify=True)
    with pytest.raises(DataError, match="wrong number of rows"):
        load_forecasts(record["run_id"])
    (runs_root() / "half-written").mkdir()
    assert [r["run_id"] for r in list_runs()] == [record["run_id"]]
    with pytest.raises(DataError, match="no complete run"):
        load_forecasts("half-written")


def test_run_ids_are_validated():
    assert new_run_id("light gbm/../x").count("/") == 0
    with pytest.raises(DataError):
        load_forecasts("../../etc")
