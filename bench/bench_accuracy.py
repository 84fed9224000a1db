"""Accuracy: every family under every training goal on the embedded cohort, with the evaluation protocol.

    python bench/bench_accuracy.py --quick          # four families (a few minutes on 2 cores)
    python bench/bench_accuracy.py                  # every family that runs here (about an hour)
    python bench/bench_accuracy.py --families lightgbm,arx --goals single,multi --json

For each family and goal (single-patient, multi-patient for global families, fine-tune of
that multi-patient model where the family supports it) the models are trained on the train
parts and scored on the test origins of all 30 patients, against the CGM reading and against
the true glucose: RMSE, MAE and MARD at 30 and 60 minutes (mean over patients, RMSE with a
patient-bootstrap 95 % interval), skill over persistence on the same origins, Clarke A+B %
and detection of lows (< 70 mg/dL within the next hour: sensitivity and precision, pooled
over patients). Persistence and Nightscout AR2 are reference rows; published figures from
other data and protocols are listed separately and labelled as such. Writes
``cache/bench/accuracy.csv``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from _common import markdown_table  # noqa: E402

QUICK = ("arx", "ridge", "lightgbm", "nbeats_mlp")  # the DFM has its own benchmark (bench_foundation.py)
# Published results on other data and protocols: context only, never comparable rows.
PUBLISHED = [
    {"source": "OhioT1DM, BGLP challenge 2020: best 30-minute RMSE (6 real patients, CGM, its own protocol)",
     "rmse30": 18.2, "rmse60": None},
    {"source": "OhioT1DM, BGLP challenge 2020: best 60-minute RMSE (6 real patients, CGM, its own protocol)",
     "rmse30": None, "rmse60": 31.7},
]


def summarise(forecasts: pd.DataFrame, label: dict) -> list[dict]:
    """Rows (one per target) of the metrics the README reports, from one run's forecasts."""
    from bgcore.evaluation.leaderboard import bootstrap_ci
    from bgcore.evaluation.scoring import score_events, score_patients
    rows = []
    for target in ("cgm", "bg"):
        scores = score_patients(forecasts, target)
        row = {**label, "target": target, "patients": int(scores["patient_id"].nunique())}
        for h in (30, 60):
            at = scores[(scores["horizon"] == h) & (scores["n"] > 0)]
            lo, hi = bootstrap_ci(at["rmse"])
            row.update({f"rmse{h}": at["rmse"].mean(), f"rmse{h}_ci": f"{lo:.1f}-{hi:.1f}", f"mae{h}": at["mae"].mean(),
                        f"mard{h}": at["mard"].mean(), f"skill{h}_pct": 100 * at["skill"].mean(),
                        f"clarke_ab{h}": (at["clarke_A"] + at["clarke_B"]).mean()})
        events = score_events(forecasts, target)
        lows = events[(events["event"] == "hypo<70") & (events["window_min"] == 60)]
        tp, fp, fn = (lows[c].sum() for c in ("tp", "fp", "fn"))
        row["hypo_sensitivity_pct"] = 100 * tp / (tp + fn) if tp + fn else np.nan
        row["hypo_precision_pct"] = 100 * tp / (tp + fp) if tp + fp else np.nan
        rows.append(row)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    parser.add_argument("--families", default="", help="comma-separated names (default: every available family)")
    parser.add_argument("--goals", default="single,multi,finetune")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from bgcore.paths import cache_root
    out = cache_root() / "bench"
    os.environ["BGCORE_CACHE"] = tempfile.mkdtemp(prefix="bgacc-")  # runs stay out of the user's cache
    from bgcore.data.cohort import load_cohort
    from bgcore.evaluation.backtest import reference_backtests
    from bgcore.models import registry
    from bgcore.store import load_forecasts
    from bgcore.training.goals import train

    cohort = load_cohort()
    wanted = args.families.split(",") if args.families else (QUICK if args.quick else None)
    families = [c for c in registry.list(available_only=True)
                if not c.get_tags()["remote"] and (wanted is None or c.name in wanted)]
    goals = args.goals.split(",")
    rows = []
    for name, (frame, _) in reference_backtests(cohort).items():
        rows += summarise(frame, {"model": name, "group": "reference", "goal": "reference", "train_s": 0.0})
    for cls in families:
        tags = cls.get_tags()
        multi = None
        for goal in goals:
            if goal == "multi" and tags["scope"] != "global":
                continue
            if goal == "finetune" and (multi is None or not tags["fine_tune"]):
                continue
            t0 = time.perf_counter()
            record = train(goal, cls.name, parent=multi if goal == "finetune" else None)
            seconds = time.perf_counter() - t0
            if goal == "multi":
                multi = record["run_id"]
            rows += summarise(load_forecasts(record["run_id"]),
                              {"model": cls.name, "group": tags["family"], "goal": goal, "train_s": seconds})
            if not args.json:
                print(f"  {cls.name} {goal}: RMSE@30 {rows[-2]['rmse30']:.1f} mg/dL vs CGM ({seconds:.0f} s)",
                      flush=True)
    table = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "accuracy.csv", index=False)
    if args.json:
        print(json.dumps({"rows": rows, "published": PUBLISHED}, indent=2, default=float))
        return 0
    shown = table[table["target"] == "cgm"].sort_values("rmse30")
    cols = ["model", "group", "goal", "rmse30", "rmse30_ci", "mae30", "mard30", "skill30_pct", "clarke_ab30",
            "rmse60", "rmse60_ci", "skill60_pct", "hypo_sensitivity_pct", "hypo_precision_pct", "train_s"]
    print(f"\nAgainst the CGM reading: 30 patients, test origins, mg/dL, mean over patients (RMSE 95 % interval by "
          f"patient bootstrap); lows: < 70 mg/dL within 60 min, pooled ({os.cpu_count()} CPUs)\n")
    print(markdown_table(shown[cols].round(1)))
    bg = table[table["target"] == "bg"].sort_values("rmse30")
    print("\nAgainst the true (simulated) glucose\n")
    print(markdown_table(bg[["model", "goal", "rmse30", "rmse30_ci", "skill30_pct", "rmse60", "rmse60_ci",
                             "skill60_pct", "hypo_sensitivity_pct", "hypo_precision_pct"]].round(1)))
    print("\nPublished figures on other data and protocols (context, not comparable rows)\n")
    print(markdown_table(pd.DataFrame(PUBLISHED).fillna("")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
