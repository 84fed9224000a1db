import json
import subprocess
import sys

import pytest

from bgcore import cli
from bgcore.data.datasets import datasets_root
from tests.conftest import FIXTURES


def run(capsys, *args):
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cohort_json(capsys):
    code, out, _ = run(capsys, "cohort", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 30
    assert {"patient_id", "age_group", "days", "cgm_present_pct", "tir_pct"} <= set(rows[0])
    assert all(r["days"] == 28 for r in rows)


def test_cohort_table(capsys):
    code, out, _ = run(capsys, "cohort")
    assert code == 0 and "dataset virtual: 30 patients" in out and "child#010" in out


def test_import_prints_what_was_detected(capsys):
    code, out, _ = run(capsys, "import", str(FIXTURES / "libre_eu_mmol.csv"), "--name", "eu")
    assert code == 0
    assert "format: libre" in out and "units: mmol/L" in out and "converted mmol/L to mg/dL" in out
    code, out, _ = run(capsys, "datasets", "--json")
    assert [d["name"] for d in json.loads(out)] == ["virtual", "eu"]
    code, out, _ = run(capsys, "cohort", "--dataset", "eu", "--json")
    assert json.loads(out)[0]["patient_id"] == "libre_eu_mmol"


def test_bad_input_exits_2_and_stores_nothing(capsys):
    code, out, err = run(capsys, "import", str(FIXTURES / "dexcom_bad_value.csv"))
    assert code == 2 and "row 8" in err and "Glucose Value (mg/dL)" in err and "not a number" in err
    assert list(datasets_root().iterdir()) == []


def test_internal_error_exits_1_with_traceback_only_under_debug(capsys, monkeypatch):
    monkeypatch.setattr(cli, "load_dataset", lambda name: (_ for _ in ()).throw(RuntimeError("boom")))
    code, _, err = run(capsys, "cohort")
    assert code == 1 and "internal error: RuntimeError: boom" in err and "Traceback" not in err
    code, _, err = run(capsys, "--debug", "cohort")
    assert code == 1 and "Traceback" in err


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["import"])
    assert exc.value.code == 2


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "bgcore", "datasets", "--json"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and json.loads(result.stdout)[0]["name"] == "virtual"


def test_baseline_then_leaderboard(capsys):
    code, out, _ = run(capsys, "leaderboard", "--json")
    board = json.loads(out)["board"]
    assert code == 0 and [r["model"] for r in board] == ["nightscout_ar2", "persistence"]
    code, out, _ = run(capsys, "baseline")
    assert code == 0 and "stored persistence as run" in out and "RMSE@30" in out
    code, out, _ = run(capsys, "baseline")
    assert "already stored" in out
    code, out, _ = run(capsys, "leaderboard", "--horizon", "60", "--target", "bg")
    assert code == 0 and "horizon 60 min, against bg" in out and "computed now" not in out
    lines = [line for line in out.splitlines() if "persistence" in line]
    assert lines and "0.000" in lines[0]  # persistence has skill 0 by definition
    code, out, _ = run(capsys, "leaderboard", "--json")
    result = json.loads(out)
    persistence = next(r for r in result["board"] if r["model"] == "persistence")
    ar2 = next(r for r in result["board"] if r["model"] == "nightscout_ar2")
    assert ar2["rmse"] < persistence["rmse"] and result["card"]["stride_min"] == 30
    code, _, err = run(capsys, "leaderboard", "--horizon", "7")
    assert code == 2 and "horizon must be one of" in err


def test_families_lists_tags_and_availability(capsys, monkeypatch):
    code, out, _ = run(capsys, "families", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and rows["lightgbm"]["family"] == "ml" and rows["lightgbm"]["covariates"] == "insulin+carbs"
    assert rows["arima"]["scope"] == "local" and rows["naive"]["probabilistic"] and rows["lightgbm"]["fine_tune"]
    # everything runs here except families that need weights or an API key the user has not supplied
    unavailable = {n for n, r in rows.items() if not r["available"]}
    assert unavailable == {"chronos2", "chronos_bolt", "chronos_t5", "moirai", "timegpt", "timegpt_long"}
    assert all(rows[n]["needs_user_weights"] or rows[n]["remote"] for n in unavailable)
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "lightgbm" else real(name))
    code, out, _ = run(capsys, "families")
    line = next(x for x in out.splitlines() if x.strip().startswith("lightgbm"))
    assert "missing packages: lightgbm" in line


def test_train_runs_show_and_the_leaderboard(capsys):
    code, out, err = run(capsys, "train", "--goal", "single", "--family", "arx", "--patients", "child#001,adult#002")
    assert code == 0 and "run " in out and "(finished)" in out and "RMSE@30" in out and "%" in err
    run_id = out.split()[1]
    code, out, _ = run(capsys, "runs", "--json")
    assert [r["run_id"] for r in json.loads(out)] == [run_id]
    code, out, _ = run(capsys, "show", run_id)
    assert code == 0 and "single" in out and "child#001, adult#002" in out.replace("adult#002, child#001", "child#001, adult#002")
    code, out, _ = run(capsys, "leaderboard", "--json")
    models = [r["model"] for r in json.loads(out)["board"]]
    assert "arx" in models and "persistence" in models
    code, _, err = run(capsys, "train", "--goal", "finetune", "--family", "lightgbm")
    assert code == 2 and "parent" in err
    code, _, err = run(capsys, "show", "nope")
    assert code == 2 and "no complete run" in err


def test_train_with_a_grid_runs_a_resumable_sweep(capsys):
    args = ["train", "--goal", "single", "--family", "drift", "--patients", "adult#003", "--params",
            '{"window": [3, 6]}', "--json"]
    code, out, _ = run(capsys, *args)
    result = json.loads(out)
    assert code == 0 and result["status"] == "finished" and len(result["tasks"]) == 2
    assert all(t["status"] == "finished" and t["rmse30"] > 0 for t in result["tasks"])
    code, out, _ = run(capsys, *args)  # the same sweep again: nothing is retrained
    assert {t["run_id"] for t in json.loads(out)["tasks"]} == {t["run_id"] for t in result["tasks"]}
    code, _, err = run(capsys, "train", "--goal", "single", "--family", "drift", "--params",
                       '{"window": [3, 6], "x": 1}')
    assert code == 2 and "either fixed parameters or a grid" in err


def test_pretrain_commands_write_weights(capsys, cache_dir):
    code, out, _ = run(capsys, "pretrain", "--name", "dfm-cli", "--size", "tiny", "--steps", "2", "--batch-size", "8",
                       "--patients", "2", "--days", "1", "--json")
    card = json.loads(out)
    assert code == 0 and card["command"].endswith("--steps 2 --batch-size 8 --patients 2 --days 1 --json")
    assert (cache_dir / "weights" / "dfm-cli" / "model.safetensors").is_file()
    code, out, _ = run(capsys, "pretrain", "--family", "ttm", "--name", "ttm-cli", "--size", "tiny", "--steps", "2",
                       "--patients", "2", "--days", "2")  # TTM needs a day of readings per series
    assert code == 0 and "wrote" in out and (cache_dir / "weights" / "ttm-cli" / "model.safetensors").is_file()
    code, _, err = run(capsys, "pretrain", "--name", "../x", "--size", "tiny", "--steps", "2")
    assert code == 2 and "checkpoint name" in err
