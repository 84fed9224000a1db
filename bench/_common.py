"""Helpers shared by the benchmark scripts: timing, job sweeps and the printed table."""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager

import pandas as pd


def best_of(fn, repeat: int):
    """Fastest of `repeat` runs of `fn()` in seconds, and its last result."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


@contextmanager
def job_manager(warm_up=None, dataset: str = "virtual"):
    """A `JobManager` running sub-tasks on one local thread, or, with `warm_up` patient groups, on a
    fresh local Dask cluster of 2 single-threaded worker processes (warmed up by a naive sweep of them)."""
    from bgcore.training.jobs import JobManager
    if warm_up is None:
        manager = JobManager(workers=1)
        try:
            yield manager
        finally:
            manager.shutdown()
        return
    from distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        manager = JobManager(workers=1, scheduler=cluster.scheduler_address)
        try:
            manager.wait(manager.submit_sweep("single", ["naive"], patient_groups=warm_up, dataset=dataset))
            yield manager
        finally:
            manager.shutdown()


def timed_sweep(manager, family: str, groups: list, dataset: str = "virtual") -> tuple[float, dict]:
    """Seconds for a single-patient sweep of `family` over patient `groups`, and the finished job's status."""
    t0 = time.perf_counter()
    job = manager.wait(manager.submit_sweep("single", [family], patient_groups=groups, dataset=dataset))
    return time.perf_counter() - t0, job


def _results_dir():
    from bgcore.paths import cache_root
    return cache_root() / "bench"


RESULTS_DIR = _results_dir()
"""Taken when a benchmark starts: several point BGCORE_CACHE at scratch folders while they run."""


def save_csv(rows, name: str) -> None:
    """Write a benchmark's rows to ``cache/bench/<name>.csv``."""
    folder = RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / f"{name}.csv", index=False)


def report(rows: list[dict], title: str, as_json: bool, repeat: int, name: str | None = None) -> int:
    """Mark each row ok against its target, print a table (or JSON), write ``cache/bench/<name>.csv``.

    Returns exit status 1 if a target is missed.
    """
    for r in rows:
        r["ok"] = None if r.get("target_s") is None else bool(r["seconds"] < r["target_s"])
    if name:
        save_csv(rows, name)
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        table = pd.DataFrame(rows)
        table["seconds"] = table["seconds"].map(lambda s: f"{s:.3f}")
        table["target_s"] = table["target_s"].map(lambda t: "" if t is None or pd.isna(t) else f"< {t:g}")
        table["ok"] = table["ok"].map({True: "yes", False: "NO", None: ""})
        print(f"{title} ({os.cpu_count()} CPUs, best of {repeat})\n")
        print(markdown_table(table))
    return 0 if all(r["ok"] is not False for r in rows) else 1


def markdown_table(table: pd.DataFrame) -> str:
    """A DataFrame as a GitHub markdown table (no tabulate dependency)."""
    cols = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |")
    return "\n".join(lines)
