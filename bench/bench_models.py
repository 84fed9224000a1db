"""Model benchmarks: fit and predict time and accuracy of every family, one patient and the cohort.

    python bench/bench_models.py                       # all available families
    python bench/bench_models.py --families lightgbm,naive --scope cohort --json

For one representative patient (single-patient goal: trained on that patient's train part)
and for the whole embedded cohort (one model for all patients for global families; one
per patient for local ones), every family is fitted with its default parameters on the
train parts and backtested on the protocol's test origins (`bgcore.evaluation`). Prints
fit and predict seconds, RMSE at 30 and 60 minutes against CGM (mg/dL, mean over
patients) and the reduction against persistence on the same origins.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import markdown_table, save_csv  # noqa: E402

from bgcore.data.cohort import load_cohort  # noqa: E402
from bgcore.data.splits import temporal_split  # noqa: E402
from bgcore.evaluation.backtest import backtest  # noqa: E402
from bgcore.evaluation.scoring import score_patients  # noqa: E402
from bgcore.models import registry  # noqa: E402

PATIENT = "adult#001"
FINETUNE_PATIENTS = ("child#004", "adolescent#007", "adult#006")


def rmse_at(model, dataset) -> dict:
    scores = score_patients(backtest(dataset, model)[0])
    at = scores.groupby("horizon")["rmse"].mean()
    return {"rmse30": float(at.loc[30]), "rmse60": float(at.loc[60])}


def experiments(cohort) -> list[dict]:
    """LightGBM strategies (stacked vs one model per horizon) and goals (single, multi, fine-tune)."""
    from bgcore.models.ml import LightGBM
    train = temporal_split(cohort.frame)["train"]
    rows = []
    for strategy in ("stacked", "per_horizon"):
        t0 = time.perf_counter()
        model = LightGBM(strategy=strategy).fit(train)
        rows.append({"experiment": f"lightgbm {strategy}, cohort", "fit_s": time.perf_counter() - t0,
                     **rmse_at(model, cohort)})
        if strategy == "stacked":
            multi = model
    for pid in FINETUNE_PATIENTS:
        one = cohort.subset([pid])
        own = temporal_split(one.frame)["train"]
        t0 = time.perf_counter()
        single = LightGBM().fit(own)
        single_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        tuned = multi.fine_tune(own)
        tune_s = time.perf_counter() - t0
        rows.append({"experiment": f"{pid}: single-patient", "fit_s": single_s, **rmse_at(single, one)})
        rows.append({"experiment": f"{pid}: multi-patient", "fit_s": 0.0, **rmse_at(multi, one)})
        rows.append({"experiment": f"{pid}: multi + fine-tune", "fit_s": tune_s, **rmse_at(tuned, one)})
    return rows


def evaluate(cls, dataset) -> dict:
    train = temporal_split(dataset.frame)["train"]
    model = cls()
    t0 = time.perf_counter()
    model.fit(train)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    forecasts, card = backtest(dataset, model)
    predict_s = time.perf_counter() - t0
    scores = score_patients(forecasts)
    at = scores.groupby("horizon")[["rmse", "rmse_persistence"]].mean()
    row = {"family": cls.name, "group": cls.get_tags()["family"], "fit_s": fit_s, "predict_s": predict_s,
           "origins": card["n_origins"]}
    for h in (30, 60):
        row[f"rmse{h}"] = float(at.loc[h, "rmse"])
        row[f"vs_persistence{h}_pct"] = float(100 * (1 - at.loc[h, "rmse"] / at.loc[h, "rmse_persistence"]))
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default="", help="comma-separated names (default: all available)")
    parser.add_argument("--scope", choices=("patient", "cohort", "both"), default="both")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--experiments", action="store_true",
                        help="instead: LightGBM stacked vs per-horizon, and single vs multi vs fine-tune")
    args = parser.parse_args(argv)
    if args.experiments:
        rows = experiments(load_cohort())
        save_csv(rows, "experiments")
        print(json.dumps(rows, indent=2) if args.json else markdown_table(pd.DataFrame(rows).round(2)))
        return 0
    cohort = load_cohort()
    chosen = [c for c in registry.list(available_only=True)
              if not args.families or c.name in args.families.split(",")]
    scopes = {"patient": [("one patient", cohort.subset([PATIENT]))], "cohort": [("cohort", cohort)],
              "both": [("one patient", cohort.subset([PATIENT])), ("cohort", cohort)]}[args.scope]
    rows = []
    for label, dataset in scopes:
        for cls in chosen:
            row = {"data": label, **evaluate(cls, dataset)}
            rows.append(row)
            if not args.json:
                print(f"  {label:11s} {row['family']:15s} fit {row['fit_s']:7.1f} s  predict {row['predict_s']:5.2f} s  "
                      f"RMSE@30 {row['rmse30']:5.1f} ({row['vs_persistence30_pct']:+5.1f} %)  "
                      f"RMSE@60 {row['rmse60']:5.1f} ({row['vs_persistence60_pct']:+5.1f} %)", flush=True)
    save_csv(rows, "models")
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        table = pd.DataFrame(rows).round(2)
        print(f"\nbgcore model benchmarks ({os.cpu_count()} CPUs); reduction of RMSE against persistence in %\n")
        print(markdown_table(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
