"""Accuracy: every family under every training goal on the embedded cohort, with the evaluation protocol.

    python bench/bench_accuracy.py --quick          # four families (a few minutes on 2 cores)
    python bench/bench_accuracy.py                  # every family that runs here (hours: see the README)
    python bench/bench_accuracy.py --resume         # go on after an interruption, keeping finished rows
    python bench/bench_accuracy.py --redo gru,dfm:finetune   # ... and run these family x goals again
    python bench/bench_accuracy.py --families lightgbm,arx --goals single,multi --json
    OMP_NUM_THREADS=1 python bench/bench_accuracy.py --resume --families gru,ttm   # a share of a split run

For each family and goal (single-patient, multi-patient for global families, fine-tune of
that multi-patient model where the family supports it) the models are trained with their
default parameters on the train parts and scored on the test origins of all 30 patients,
against the CGM reading and against the true glucose: RMSE, MAE and MARD at 30 and 60
minutes (mean over patients with a patient-bootstrap 95 % interval), skill over persistence
on the same origins (with its interval), Clarke A+B % and detection of lows (< 70 mg/dL
within the next hour: sensitivity and precision, pooled over patients); probabilistic
families add CRPS and the coverage of their 80 % interval. Persistence and Nightscout AR2 are
reference rows; published figures from other data and protocols are listed separately and
labelled as such. A family x goal that fails is reported and the others go on.

Rows are appended to ``cache/bench/accuracy-work/rows.jsonl`` as they finish (the runs under
``accuracy-work/cache``), so ``--resume`` skips what is done; the table is written to
``cache/bench/accuracy.csv``. A long run can be split over processes that share the journal
(start the first, then the others with ``--resume`` and disjoint ``--families``, one thread
each; a last ``--resume`` prints the whole table): each row records the threads it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from _common import markdown_table  # noqa: E402

QUICK = ("arx", "ridge", "lightgbm", "nbeats_mlp")
HORIZONS = (30, 60)
# Published results on other data and protocols: context only, never comparable rows.
PUBLISHED = [
    {"source": "OhioT1DM, BGLP challenge 2020: best 30-minute RMSE (6 real patients, CGM, its own protocol)",
     "rmse30": 18.2, "rmse60": None},
    {"source": "OhioT1DM, BGLP challenge 2020: best 60-minute RMSE (6 real patients, CGM, its own protocol)",
     "rmse30": None, "rmse60": 31.7},
]


def summarise(forecasts: pd.DataFrame, label: dict) -> list[dict]:
    """Rows (one per target: ``cgm``, and ``bg`` where the data has it) of the reported metrics of one run.

    Means over patients with patient-bootstrap 95 % intervals (``<metric><h>_ci``); Clarke
    A+B in % of pairs (mean over patients); lows (< 70 mg/dL within 60 minutes) pooled over
    patients; CRPS and 80 % interval coverage where the run has quantiles.
    """
    from bgcore.evaluation.leaderboard import bootstrap_ci
    from bgcore.evaluation.scoring import score_events, score_patients, score_probabilistic
    rows = []
    for target in ("cgm", "bg"):
        if target not in forecasts or not forecasts[target].notna().any():
            continue
        scores = score_patients(forecasts, target)
        scores["skill_pct"] = 100 * scores["skill"]
        scores["clarke_ab"] = scores["clarke_A"] + scores["clarke_B"]
        probabilistic = score_probabilistic(forecasts, target)
        row = {**label, "target": target, "patients": int(scores.loc[scores["n"] > 0, "patient_id"].nunique())}
        for h in HORIZONS:
            at = scores[(scores["horizon"] == h) & (scores["n"] > 0)]
            for metric in ("rmse", "mae", "mard", "skill_pct"):
                name = f"{metric[:-4]}{h}_pct" if metric.endswith("_pct") else f"{metric}{h}"
                lo, hi = bootstrap_ci(at[metric])
                row[name] = float(at[metric].mean())
                row[f"{name}_ci"] = f"{lo:.1f}-{hi:.1f}"
            row[f"clarke_ab{h}"] = float(at["clarke_ab"].mean())
            if not probabilistic.empty:
                pat = probabilistic[(probabilistic["horizon"] == h) & (probabilistic["n"] > 0)]
                row[f"crps{h}"] = float(pat["crps"].mean())
                if "coverage_80" in pat:
                    row[f"coverage80_{h}_pct"] = float(100 * pat["coverage_80"].mean())
        events = score_events(forecasts, target)
        lows = events[(events["event"] == "hypo<70") & (events["window_min"] == 60)]
        tp, fp, fn = (float(lows[c].sum()) for c in ("tp", "fp", "fn"))
        row["hypo_sensitivity_pct"] = 100 * tp / (tp + fn) if tp + fn else np.nan
        row["hypo_precision_pct"] = 100 * tp / (tp + fp) if tp + fp else np.nan
        rows.append(row)
    return rows


def plan(families, goals) -> list[tuple[str, str]]:
    """The (family, goal) pairs to run, in order: fine-tune only after its family's multi-patient run."""
    pairs = []
    for cls in families:
        tags = cls.get_tags()
        for goal in goals:
            if goal == "multi" and tags["scope"] != "global":
                continue
            if goal == "finetune" and not (tags["fine_tune"] and "multi" in goals and tags["scope"] == "global"):
                continue
            pairs.append((cls.name, goal))
    return pairs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    parser.add_argument("--families", default="", help="comma-separated names (default: every available family)")
    parser.add_argument("--goals", default="single,multi,finetune")
    parser.add_argument("--resume", action="store_true", help="keep the rows (and runs) of an interrupted run")
    parser.add_argument("--redo", default="", help="resume, but run these again: family or family:goal, "
                        "comma-separated (a redone multi-patient run takes its fine-tune with it)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    args.resume = args.resume or bool(args.redo)
    from bgcore.paths import cache_root
    out = cache_root() / "bench"
    work = out / ("accuracy-work.quick" if args.quick else "accuracy-work")
    if not args.resume and work.exists():
        shutil.rmtree(work)
    (work / "cache").mkdir(parents=True, exist_ok=True)
    user_cache = os.environ.get("BGCORE_CACHE")
    os.environ["BGCORE_CACHE"] = str(work / "cache")  # runs stay out of the user's cache
    try:
        return run_plan(args, work, out)
    finally:
        if user_cache is None:
            os.environ.pop("BGCORE_CACHE", None)
        else:
            os.environ["BGCORE_CACHE"] = user_cache


def run_plan(args, work: Path, out: Path) -> int:
    """Train and score what is not in the journal yet, then print (or dump) the report."""
    from bgcore.data.cohort import load_cohort
    from bgcore.evaluation.backtest import reference_backtests
    from bgcore.models import registry
    from bgcore.models.base import compute_threads
    from bgcore.store import load_forecasts
    from bgcore.training.goals import train

    journal = work / "rows.jsonl"
    done = [json.loads(line) for line in journal.read_text().splitlines()] if journal.exists() else []
    redo = set()
    for item in filter(None, args.redo.split(",")):
        family, _, goal = item.partition(":")
        redo |= {(family, g) for g in ([goal] if goal else ("single", "multi", "finetune"))}
    redo |= {(family, "finetune") for family, goal in list(redo) if goal == "multi"}
    if redo:
        done = [r for r in done if (r["model"], r["goal"]) not in redo]
        journal.write_text("".join(json.dumps(r, default=float) + "\n" for r in done))
    finished = {(r["model"], r["goal"]): r for r in done}

    def record(rows: list[dict]) -> None:
        with journal.open("a") as f:
            f.writelines(json.dumps(r, default=float) + "\n" for r in rows)
        done.extend(rows)

    if ("persistence", "reference") not in finished:
        for name, (frame, _) in reference_backtests(load_cohort()).items():
            record(summarise(frame, {"model": name, "group": "reference", "goal": "reference", "train_s": 0.0,
                                     "run_id": None}))
    wanted = args.families.split(",") if args.families else (QUICK if args.quick else None)
    families = [c for c in registry.list(available_only=True)
                if not c.get_tags()["remote"] and (wanted is None or c.name in wanted)]
    # what cannot run here, and why (no local weights, no API key, a hosted service)
    failures = [{"model": cls.name, "goal": "all", "error": "sends data to a hosted service: not benchmarked"
                 if cls.get_tags()["remote"] else registry.availability(cls)[1].split(" (")[0]}
                for cls in registry.list() if wanted is None and cls not in families]
    for name, goal in plan(families, args.goals.split(",")):
        if (name, goal) in finished:
            continue
        parent = next((r["run_id"] for r in done if r["model"] == name and r["goal"] == "multi"), None)
        if goal == "finetune" and parent is None:
            failures.append({"model": name, "goal": goal, "error": "no multi-patient run to fine-tune"})
            continue
        t0 = time.perf_counter()
        try:
            run = train(goal, name, parent=parent if goal == "finetune" else None)
            rows = summarise(load_forecasts(run["run_id"]),
                             {"model": name, "group": registry.get(name).get_tags()["family"], "goal": goal,
                              "train_s": time.perf_counter() - t0, "threads": compute_threads(),
                              "run_id": run["run_id"]})
        except Exception as exc:  # noqa: BLE001 - one failing family x goal is reported, the others go on
            failures.append({"model": name, "goal": goal, "error": f"{type(exc).__name__}: {exc}"})
            print(f"  {name} {goal}: FAILED {type(exc).__name__}: {exc}", flush=True)
            traceback.print_exc(limit=3)
            continue
        record(rows)
        finished[(name, goal)] = rows[0]
        if not args.json:
            print(f"  {name} {goal}: RMSE@30 {rows[0]['rmse30']:.1f} mg/dL vs CGM ({rows[0]['train_s']:.0f} s)",
                  flush=True)
    failed = any(f["goal"] != "all" for f in failures)  # a family x goal that should have run and did not
    table = pd.DataFrame(done)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"accuracy{'.quick' if args.quick else ''}.csv", index=False)
    if args.json:
        print(json.dumps({"rows": done, "failures": failures, "published": PUBLISHED}, indent=2, default=float))
        return 1 if failed else 0
    print(render(table, failures))
    return 1 if failed else 0


def render(table: pd.DataFrame, failures: list[dict]) -> str:
    """The markdown report: CGM table, true-glucose table, probabilistic scores, published figures, failures."""
    lines = []
    shown = table[table["target"] == "cgm"].sort_values("rmse30")
    # a long run may be split over processes (OMP_NUM_THREADS=1 each): say what train_s was measured on
    threads = sorted({int(t) for t in table.get("threads", pd.Series(dtype=float)).dropna()})
    on = f" on {' or '.join(map(str, threads))} thread(s) per family" if threads else ""
    cols = ["model", "group", "goal", "rmse30", "rmse30_ci", "mae30", "mard30", "skill30_pct", "skill30_pct_ci",
            "clarke_ab30", "rmse60", "rmse60_ci", "mae60", "mard60", "skill60_pct", "hypo_sensitivity_pct",
            "hypo_precision_pct", "train_s"]
    lines += [f"\nAgainst the CGM reading: {int(shown['patients'].max())} patients, test origins, mg/dL, mean over "
              f"patients (95 % intervals by patient bootstrap; MAE, MARD intervals in the CSV); lows: < 70 mg/dL within "
              f"60 min, pooled ({os.cpu_count()} CPUs; train_s: fit + backtest of all patients{on})\n",
              markdown_table(shown[cols].round(1))]
    trained = shown[shown["goal"] != "reference"]
    lines.append(f"\n{len(trained)} family x goal runs, {trained['train_s'].sum() / 3600:.1f} h of fit + backtest in "
                 "all (a resumed or split run's header time is its last part only)")
    bg = table[table["target"] == "bg"].sort_values("rmse30")
    if not bg.empty:
        lines += ["\nAgainst the true (simulated) glucose\n",
                  markdown_table(bg[["model", "goal", "rmse30", "rmse30_ci", "skill30_pct", "rmse60", "rmse60_ci",
                                     "skill60_pct", "clarke_ab30", "hypo_sensitivity_pct",
                                     "hypo_precision_pct"]].round(1))]
    if "crps30" in shown:
        prob = shown[shown["crps30"].notna()].sort_values("crps30")
        prob_cols = [c for c in ("model", "goal", "crps30", "coverage80_30_pct", "crps60", "coverage80_60_pct")
                     if c in prob]
        lines += ["\nProbabilistic forecasts against CGM: CRPS (mg/dL, lower is better) and how often the 80 % "
                  "interval holds the reading (%)\n", markdown_table(prob[prob_cols].round(1))]
    lines += ["\nPublished figures on other data and protocols (context, not comparable rows)\n",
              markdown_table(pd.DataFrame(PUBLISHED).fillna(""))]
    if failures:
        lines += ["\nNot in the tables: families that cannot run here, and failures\n",
                  markdown_table(pd.DataFrame(failures).rename(columns={"error": "why"}))]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
