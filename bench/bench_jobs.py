"""Job-system benchmarks: the overhead per sub-task, and a sweep on a 2-worker local Dask cluster.

    python bench/bench_jobs.py

* Overhead: a sweep of many tiny sub-tasks (naive forecaster, one patient each, every
  sub-task trains, backtests and stores a run) through the job manager, against the same
  calls made directly in a loop; the difference per sub-task is the job system's cost
  (database writes, indexing the per-patient metrics, thread hand-off). The same for a few
  single-patient LightGBM sub-tasks (OpenMP code, first run in the main thread).
* Scale-out: a sweep of heavier sub-tasks (auto-ARIMA per patient) on one local thread
  versus a `LocalCluster` of 2 single-threaded worker processes.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import job_manager, markdown_table, save_csv, timed_sweep  # noqa: E402


def fresh_cache():
    os.environ["BGCORE_CACHE"] = tempfile.mkdtemp(prefix="bgbench-")


def overhead(family: str, groups: list, label: str) -> dict:
    """Seconds per sub-task: `train` called in a loop in this thread, then the same sweep through the job manager."""
    from bgcore.training.goals import train
    fresh_cache()
    t0 = time.perf_counter()
    for group in groups:
        train("single", family, patients=group)
    bare = (time.perf_counter() - t0) / len(groups)
    fresh_cache()
    with job_manager() as manager:
        managed = timed_sweep(manager, family, groups)[0] / len(groups)
    return {"benchmark": label, "direct_s": bare, "job_manager_s": managed, "overhead_s": managed - bare}


def main() -> int:
    fresh_cache()
    from bgcore.data.cohort import load_cohort
    from bgcore.training.goals import train

    patients = load_cohort().patient_ids
    rows = []

    tiny = [[p] for p in patients[:20]]
    train("single", "naive", patients=tiny[0])  # warm up imports and the cohort cache
    rows.append(overhead("naive", tiny, f"{len(tiny)} tiny sub-tasks, per sub-task"))
    # a real family whose native code is OpenMP, run in the main thread first: the job's thread
    # must not pay for a second OpenMP team (bgcore.models.base.on_openmp_thread)
    boosted = [[p] for p in patients[:4]]
    rows.append(overhead("lightgbm", boosted, f"{len(boosted)} LightGBM sub-tasks (one patient each), per sub-task"))

    heavy = [[p] for p in patients[:16]]
    fresh_cache()
    with job_manager() as manager:
        one_thread = timed_sweep(manager, "auto_arima", heavy)[0]
    fresh_cache()
    with job_manager(warm_up=tiny[:4]) as manager:
        on_cluster = timed_sweep(manager, "auto_arima", heavy)[0]
    rows.append({"benchmark": f"{len(heavy)} auto-ARIMA sub-tasks, whole sweep", "direct_s": one_thread,
                 "job_manager_s": on_cluster, "overhead_s": None})
    save_csv(rows, "jobs")
    table = pd.DataFrame(rows).rename(columns={"direct_s": "direct / 1 thread (s)",
                                               "job_manager_s": "job manager / 2-worker Dask (s)"})
    print(f"bgcore job benchmarks ({os.cpu_count()} CPUs)\n")
    print(markdown_table(table.round(3)))
    print(f"speed-up of the 2-worker Dask cluster over one thread: {one_thread / on_cluster:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
