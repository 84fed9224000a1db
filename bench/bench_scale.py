"""Scale: how the cost of import, features, LightGBM training and the leaderboard grows with the cohort.

    python bench/bench_scale.py                     # 1, 10, 30, 100 and 300 patients
    python bench/bench_scale.py --sizes 1,10,30 --json

Cohorts larger than the embedded 30 patients are copies of it with new ids and CGM jittered
by up to +/-2 mg/dL (a measure of compute, not of accuracy: simulating 300 new patients would
take an hour). Every size runs in a fresh process so its peak memory (max RSS) is its own.
Steps: write the cohort as one generic CSV and import it (validation, 5-minute grid, store);
insulin and carbs on board for every row; fit the default LightGBM on all train parts
(multi-patient goal) and backtest it on every test origin (then store the run); build the
leaderboard (with the persistence and AR2 references); then the single-patient LightGBM of
every patient as a sweep of one sub-task per patient, once through the job manager on
one local thread and once on a local Dask cluster of 2 single-threaded worker processes
(started and warmed up before the clock starts; their peak memory is reported apart).
Prints seconds per step and the growth factor per 10x patients (10 = linear). Writes
``cache/bench/scale.csv``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from _common import job_manager, markdown_table, timed_sweep  # noqa: E402


def cohort_of(n: int):
    """The embedded cohort cut or copied to `n` patients (copies get new ids and jittered CGM)."""
    import numpy as np

    from bgcore.data.cohort import load_cohort
    from bgcore.data.dataset import Dataset
    base = load_cohort()
    ids = base.patient_ids
    if n <= len(ids):
        return base.subset(ids[:n])
    rng = np.random.default_rng(0)
    frames, tables = [], []
    for k in range(-(-n // len(ids))):
        take = ids[: min(len(ids), n - k * len(ids))]
        part = base.subset(take)
        frame = part.frame.copy()
        frame["patient_id"] = frame["patient_id"].astype(str) + (f".c{k}" if k else "")
        if k:
            frame["cgm"] = (frame["cgm"] + rng.integers(-2, 3, len(frame))).clip(40, 400)
        table = part.patients.copy()
        table["patient_id"] = table["patient_id"].astype(str) + (f".c{k}" if k else "")
        frames.append(frame)
        tables.append(table)
    frame = pd.concat(frames, ignore_index=True)
    patients = pd.concat(tables, ignore_index=True).sort_values("patient_id", ignore_index=True)
    frame["patient_id"] = pd.Categorical(frame["patient_id"], categories=patients["patient_id"].tolist())
    frame = frame.sort_values(["patient_id", "time"], ignore_index=True)
    return Dataset(f"scale{n}", frame, patients)


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB): VmHWM, which starts afresh with the process image.

    ``getrusage``'s ``ru_maxrss`` survives ``execve`` on Linux, so a worker started from a
    large process would report its parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_size(n: int) -> dict:
    """All steps for one cohort size (run in a child process)."""
    os.environ["BGCORE_CACHE"] = tempfile.mkdtemp(prefix="bgscale-")
    from bgcore.data.datasets import import_path
    from bgcore.data.features import carbs_remaining, insulin_remaining, on_board
    from bgcore.data.writers import write_csv
    from bgcore.evaluation.leaderboard import build_leaderboard
    from bgcore.training.goals import train
    data = cohort_of(n)
    row = {"patients": n, "rows": len(data.frame)}
    csv = Path(os.environ["BGCORE_CACHE"]) / f"scale{n}.csv"
    write_csv(data.frame, csv)
    t0 = time.perf_counter()
    imported, _ = import_path(csv, name=f"scale{n}")
    row["import_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    on_board(imported.frame, "insulin", insulin_remaining)
    on_board(imported.frame, "carbs", carbs_remaining)
    row["features_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    record = train("multi", "lightgbm", dataset=imported)
    row["lightgbm_fit_backtest_s"] = record["seconds"]  # fit on all train parts + forecast every test origin
    row["lightgbm_with_store_s"] = time.perf_counter() - t0  # ... + writing the run (forecasts, model)
    t0 = time.perf_counter()
    build_leaderboard(imported, horizon=30)
    row["leaderboard_s"] = time.perf_counter() - t0
    row.update(per_patient_sweeps(imported.name, imported.patient_ids))
    row["peak_rss_mb"] = peak_rss_mb()
    return row


def per_patient_sweeps(dataset: str, patient_ids: list[str], group_size: int = 1) -> dict:
    """Single-patient LightGBM of every patient as one sweep: on one local thread, then on a 2-worker Dask cluster."""
    import shutil

    from bgcore.paths import cache_root
    groups = [patient_ids[i:i + group_size] for i in range(0, len(patient_ids), group_size)]
    out = {}
    with job_manager() as manager:
        out["single_sweep_1thread_s"], job = timed_sweep(manager, "lightgbm", groups, dataset)
    assert job["status"] == "finished", job["message"]
    # a second cache holding the same dataset: the same sweep in the first one would resume (nothing to do)
    second = Path(tempfile.mkdtemp(prefix="bgscale-dask-"))
    shutil.copytree(cache_root() / "datasets", second / "datasets")
    os.environ["BGCORE_CACHE"] = str(second)  # before the workers start: they inherit it
    with job_manager(warm_up=[patient_ids[:1]], dataset=dataset) as manager:
        out["single_sweep_dask_s"], job = timed_sweep(manager, "lightgbm", groups, dataset)
        out["dask_worker_peak_mb"] = max(manager.client().run(peak_rss_mb).values())
    assert job["status"] == "finished", job["message"]
    return out


def growth_per_10x(table: pd.DataFrame, steps: list[str]) -> tuple[int, int, dict]:
    """Factor by which each step's time grows per 10x patients (10 = linear), from 10 patients up.

    Below 10 patients fixed costs dominate, so the smallest size used is the first one with
    at least 10 patients (or the smallest, when fewer than two sizes reach 10). The factor is
    ``(t_last / t_first) ** (1 / log10(n_last / n_first))``.
    """
    big = table[table["patients"] >= 10]
    first, last = (big.iloc[0], big.iloc[-1]) if len(big) >= 2 else (table.iloc[0], table.iloc[-1])
    decades = math.log10(last["patients"] / first["patients"])
    growth = {s: (last[s] / first[s]) ** (1 / decades) if decades > 0 else None for s in steps if s in table}
    return int(first["patients"]), int(last["patients"]), growth


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,10,30,100,300")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(one_size(args.child)))
        return 0
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        proc = subprocess.run([sys.executable, __file__, "--child", str(n)], capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 2
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        if not args.json:
            print(f"  {n} patients done: " + ", ".join(f"{k} {v:.1f}" for k, v in rows[-1].items()
                                                      if k.endswith("_s")), flush=True)
    table = pd.DataFrame(rows)
    steps = ["import_s", "features_s", "lightgbm_fit_backtest_s", "lightgbm_with_store_s", "leaderboard_s",
             "single_sweep_1thread_s", "single_sweep_dask_s"]
    first, last, growth = growth_per_10x(table, steps)
    from bgcore.paths import cache_root
    out = cache_root() / "bench"
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "scale.csv", index=False)
    if args.json:
        print(json.dumps({"rows": rows, "growth_per_10x": growth}, indent=2))
        return 0
    shown = table.copy()
    for s in steps:
        shown[s] = shown[s].round(2)
    for memory in ("peak_rss_mb", "dask_worker_peak_mb"):
        shown[memory] = shown[memory].round(0)
    print(f"\nScale ({os.cpu_count()} CPUs; seconds per step, peak memory of the process)\n")
    print(markdown_table(shown))
    print(f"\nGrowth of each step per 10x patients, from {first} to {last} patients (10x = linear): "
          + ", ".join(f"{s[:-2]} {g:.1f}x" for s, g in growth.items() if g is not None))
    print("\nSpeed-up of the 2-worker Dask cluster over one local thread on the per-patient sweep: "
          + ", ".join(f"{r.patients} patients {r.single_sweep_1thread_s / r.single_sweep_dask_s:.2f}x"
                      for r in table.itertuples()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
