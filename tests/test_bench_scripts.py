"""The benchmark scripts compute the README's numbers: their summaries, plans and growth factors are checked here."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bgcore.evaluation.protocol import HORIZONS_MIN
from bgcore.models import registry

ROOT = Path(__file__).resolve().parents[1]


def load_bench(name: str):
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def forecasts_with_known_errors(with_bg=True, with_quantiles=True) -> pd.DataFrame:
    """3 patients x 40 origins: forecasts off by 10, 20, 30 mg/dL; persistence off by 40; some lows.

    Patient p1 (off by +10) has 10 origins whose truth is 55 mg/dL: forecast 65, a detected low.
    Patient p3 (off by +30) has 5 such origins: forecast 85, a missed low. No false alarms.
    """
    rows = []
    for pid, offset, lows in (("p1", 10.0, 10), ("p2", 20.0, 0), ("p3", 30.0, 5)):
        for k in range(40):
            truth = 55.0 if k < lows else 150.0
            origin = pd.Timestamp("2026-01-01") + pd.Timedelta(minutes=30 * k)
            for h in HORIZONS_MIN:
                rows.append({"patient_id": pid, "origin": origin, "horizon": h, "pred": truth + offset, "cgm": truth,
                             "cgm_origin": truth + 40.0})
    frame = pd.DataFrame(rows)
    if with_bg:
        frame["bg"], frame["bg_origin"] = frame["cgm"], frame["cgm_origin"]
    if with_quantiles:
        frame["q0.1"], frame["q0.9"] = frame["pred"] - 15.0, frame["pred"] + 15.0
    frame["patient_id"] = pd.Categorical(frame["patient_id"])
    return frame


def test_accuracy_summary_has_the_numbers_of_known_errors():
    bench = load_bench("bench_accuracy")
    rows = bench.summarise(forecasts_with_known_errors(), {"model": "m", "goal": "single"})
    assert [r["target"] for r in rows] == ["cgm", "bg"]
    row = rows[0]
    assert row["patients"] == 3 and row["model"] == "m"
    for h in (30, 60):
        assert row[f"rmse{h}"] == pytest.approx(20.0) and row[f"mae{h}"] == pytest.approx(20.0)
        assert row[f"skill{h}_pct"] == pytest.approx(50.0)  # mean of 1 - 10/40, 1 - 20/40, 1 - 30/40
        lo, hi = (float(v) for v in row[f"rmse{h}_ci"].split("-"))
        assert 10.0 <= lo < 20.0 < hi <= 30.0  # a patient-bootstrap interval around the mean
        assert row[f"coverage80_{h}_pct"] == pytest.approx(100 / 3)  # only p1's truth is inside +/-15
        assert row[f"crps{h}"] > 0 and 0 <= row[f"clarke_ab{h}"] <= 100
    assert row["hypo_sensitivity_pct"] == pytest.approx(100 * 10 / 15)
    assert row["hypo_precision_pct"] == pytest.approx(100.0)
    plain = bench.summarise(forecasts_with_known_errors(with_bg=False, with_quantiles=False), {"model": "m"})
    assert [r["target"] for r in plain] == ["cgm"] and "crps30" not in plain[0]


def test_accuracy_plan_runs_each_goal_a_family_supports():
    bench = load_bench("bench_accuracy")
    families = [registry.get(n) for n in ("arx", "ridge", "lightgbm")]
    assert bench.plan(families, ["single", "multi", "finetune"]) == [
        ("arx", "single"), ("ridge", "single"), ("ridge", "multi"),
        ("lightgbm", "single"), ("lightgbm", "multi"), ("lightgbm", "finetune")]
    assert bench.plan(families, ["single", "finetune"]) == [("arx", "single"), ("ridge", "single"),
                                                            ("lightgbm", "single")]  # nothing to fine-tune from


def test_accuracy_bench_resumes_and_reports(cache_dir, capsys):
    bench = load_bench("bench_accuracy")
    assert bench.main(["--families", "naive", "--goals", "single"]) == 0
    first = capsys.readouterr().out
    table = pd.read_csv(cache_dir / "bench" / "accuracy.csv")
    assert set(table["model"]) == {"persistence", "nightscout_ar2", "naive"} and set(table["target"]) == {"cgm", "bg"}
    naive = table[(table["model"] == "naive") & (table["target"] == "cgm")].iloc[0]
    persistence = table[(table["model"] == "persistence") & (table["target"] == "cgm")].iloc[0]
    assert naive["rmse30"] == pytest.approx(persistence["rmse30"])  # the naive family is persistence
    assert "Published figures on other data" in first and "| naive | statistical | single |" in first
    assert "1 family x goal runs" in first and naive["threads"] >= 1
    assert f"on {int(naive['threads'])} thread(s) per family" in first
    journal = cache_dir / "bench" / "accuracy-work" / "rows.jsonl"
    run_id = [json.loads(line) for line in journal.read_text().splitlines() if '"naive"' in line][0]["run_id"]
    assert bench.main(["--families", "naive", "--goals", "single,multi", "--resume"]) == 0
    rows = [json.loads(line) for line in journal.read_text().splitlines()]
    naive_rows = [(r["goal"], r["run_id"], r["target"]) for r in rows if r["model"] == "naive"]
    assert [g for g, _, t in naive_rows if t == "cgm"] == ["single", "multi"]  # single kept, multi added
    assert naive_rows[0][1] == run_id
    assert sum(r["model"] == "persistence" for r in rows) == 2  # references not scored twice
    assert bench.main(["--families", "naive", "--goals", "single,multi", "--redo", "naive:single"]) == 0
    again = [json.loads(line) for line in journal.read_text().splitlines()]
    redone = {(r["goal"], r["run_id"]) for r in again if r["model"] == "naive"}
    assert len(again) == len(rows) and ("single", run_id) not in redone  # single run again, multi kept
    assert {g for g, _ in redone} == {"single", "multi"}
    assert {r for r in redone if r[0] == "multi"} == {(g, i) for g, i, _ in naive_rows if g == "multi"}


def test_scale_cohorts_and_growth_factors():
    bench = load_bench("bench_scale")
    big = bench.cohort_of(45)
    base = bench.cohort_of(30)
    ids = big.patient_ids
    assert len(ids) == len(set(ids)) == 45 and sum(i.endswith(".c1") for i in ids) == 15
    assert len(big.frame) == 45 * len(base.frame) // 30
    copy = big.frame[big.frame["patient_id"] == "adult#001.c1"]["cgm"].to_numpy()
    original = base.frame[base.frame["patient_id"] == "adult#001"]["cgm"].to_numpy()
    both = np.isfinite(copy) & np.isfinite(original)
    assert 0 < np.abs(copy - original)[both].max() <= 2  # jittered, not a new patient
    table = pd.DataFrame({"patients": [1, 10, 100], "linear_s": [5.0, 1.0, 10.0], "quadratic_s": [1.0, 1.0, 100.0]})
    first, last, growth = bench.growth_per_10x(table, ["linear_s", "quadratic_s", "absent_s"])
    assert (first, last) == (10, 100)  # the 1-patient size (fixed costs) is left out
    assert growth == pytest.approx({"linear_s": 10.0, "quadratic_s": 100.0})
