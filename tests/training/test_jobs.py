"""Job manager and runs database: background runs, cancel, failures, resumable sweeps, restarts."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from bgcore.data.schema import DataError
from bgcore.store import list_runs, load_forecasts, runs_root
from bgcore.training.jobs import JobManager
from bgcore.training.rundb import SCHEMA_VERSION, RunDB

ROOT = Path(__file__).resolve().parents[2]
TWO = ["adult#001", "child#002"]


@pytest.fixture
def manager():
    m = JobManager(workers=1)
    yield m
    m.shutdown()


def wait_for(predicate, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    raise TimeoutError


def test_a_training_job_runs_in_the_background_and_is_indexed(manager):
    job = manager.submit_train("single", "naive", patients=TWO)
    state = manager.wait(job, timeout=120)
    assert state["status"] == "finished" and state["progress"] == 1.0 and len(state["run_ids"]) == 1
    run_id = state["run_ids"][0]
    indexed = manager.db.runs("virtual")
    assert [r["run_id"] for r in indexed] == [run_id] and indexed[0]["patients"] == sorted(TWO)
    metrics = manager.db.execute("SELECT COUNT(*) AS n FROM patient_metrics WHERE run_id = ?", (run_id,))
    assert metrics[0]["n"] == 2 * 24
    assert [r["run_id"] for r in list_runs("virtual")] == [run_id]


def test_cancel_stops_a_running_job_and_stores_nothing(manager):
    job = manager.submit_train("single", "gru", params={"hidden": 8, "epochs": 10000, "patience": 10000,
                                                        "batch_size": 512}, patients=["adult#001"])
    wait_for(lambda: manager.status(job)["status"] == "running")
    time.sleep(1.0)
    manager.cancel(job)
    state = manager.wait(job, timeout=120)
    assert state["status"] == "cancelled" and list_runs() == []


def test_failing_job_is_recorded_with_its_traceback(manager):
    job = manager.submit_train("finetune", "lightgbm", patients=TWO)  # no parent: a clear error
    state = manager.wait(job, timeout=60)
    assert state["status"] == "failed" and "parent" in state["error"] and "Traceback" in state["error"]


def test_sweep_isolates_failures_and_resumes(manager):
    job = manager.submit_sweep("single", ["naive", "drift", "no_such_family"], grid={},
                               patient_groups=[["adult#001"]])
    state = manager.wait(job, timeout=120)
    statuses = sorted(t["status"] for t in state["tasks"])
    assert statuses == ["failed", "finished", "finished"] and state["status"] == "partial"
    assert "unknown forecaster" in next(t["error"] for t in state["tasks"] if t["status"] == "failed")
    runs_before = {r["run_id"] for r in list_runs()}
    again = manager.submit_sweep("single", ["naive", "drift", "no_such_family"], grid={},
                                 patient_groups=[["adult#001"]])
    assert again == job
    state = manager.wait(again, timeout=120)
    assert state["message"] == "1 sub-task(s) run (1 failed), 2 already finished"
    assert {r["run_id"] for r in list_runs()} == runs_before  # finished sub-tasks were not run again


def test_readers_see_consistent_state_while_a_job_writes(manager):
    job = manager.submit_train("single", "gru", params={"hidden": 8, "epochs": 6, "patience": 10},
                               patients=["adult#001"])
    errors, seen = [], []

    def read():
        reader = RunDB()  # its own connection, as another session's thread would have
        while True:
            try:
                state = reader.job(job)
                seen.append(state["progress"])
                if state["status"] not in ("queued", "running"):
                    return
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
                return

    threads = [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    manager.wait(job, timeout=300)
    for t in threads:
        t.join(timeout=60)
    assert not errors and seen and max(seen) == 1.0


def test_schema_version_is_checked(cache_dir):
    db = RunDB()
    assert db.execute("SELECT version FROM schema_version")[0]["version"] == SCHEMA_VERSION
    RunDB()  # reopening an existing database works
    db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(DataError, match="newer bgcore"):
        RunDB()


def test_restart_after_a_killed_worker_process(cache_dir):
    script = textwrap.dedent("""
        import sys, time
        from bgcore.training.jobs import JobManager
        m = JobManager(workers=1)
        done = m.submit_train("single", "naive", patients=["adult#001"])
        m.wait(done)
        slow = m.submit_train("single", "gru", params={"hidden": 8, "epochs": 100000, "patience": 100000},
                              patients=["adult#001"])
        while m.status(slow)["status"] != "running" or m.status(slow)["progress"] == 0:
            time.sleep(0.05)
        print("RUNNING", flush=True)
        time.sleep(600)
    """)
    env = dict(os.environ, BGCORE_CACHE=str(cache_dir), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    watchdog = threading.Timer(240, proc.kill)  # never let a stuck child hang the suite
    watchdog.start()
    try:
        line = proc.stdout.readline()
        assert line.strip() == "RUNNING"
    finally:
        watchdog.cancel()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    manager = JobManager(workers=1)  # a restart: running jobs become interrupted
    try:
        states = sorted((j["kind"], j["status"]) for j in manager.jobs())
        assert states == [("train", "finished"), ("train", "interrupted")]
        finished = [r["run_id"] for r in list_runs()]
        assert len(finished) == 1
        load_forecasts(finished[0], verify=True)  # intact
        half = [p.name for p in runs_root().iterdir() if p.name.startswith(".tmp-")]
        assert all(not name.startswith(finished[0]) for name in half)  # nothing half-written is listed
    finally:
        manager.shutdown()


def test_sweep_on_a_local_dask_cluster(cache_dir):
    # In a fresh interpreter: worker processes are spawned, and spawn re-imports the parent's
    # __main__, which other tests in this process (Streamlit's AppTest) may have replaced.
    script = textwrap.dedent("""
        import json
        from distributed import LocalCluster
        from bgcore.training.jobs import JobManager
        if __name__ == "__main__":
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
                manager = JobManager(workers=1, scheduler=cluster.scheduler_address)
                job = manager.submit_sweep("single", ["naive", "drift", "no_such_family"], grid={},
                                           patient_groups=[["adult#001"], ["child#003"]])
                state = manager.wait(job, timeout=300)
                manager.shutdown()
            print("RESULT", json.dumps(sorted(t["status"] for t in state["tasks"])))
    """)
    env = dict(os.environ, BGCORE_CACHE=str(cache_dir), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=ROOT,
                         timeout=600)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT")), None)
    assert line is not None, out.stderr[-3000:]
    assert json.loads(line[len("RESULT "):]) == ["failed", "failed"] + ["finished"] * 4
    runs = list_runs("virtual")
    assert len(runs) == 4 and {r["model"] for r in runs} == {"naive", "drift"}
    naive = next(r for r in runs if r["model"] == "naive")
    from bgcore.store import load_model
    assert load_model(naive["run_id"], naive["patients"][0]).is_fitted_  # model files written by the app process
    assert len(RunDB().runs("virtual")) == 4


def test_pretraining_runs_as_a_background_job(manager, cache_dir):
    job = manager.submit_pretrain("dfm-job", size="tiny", steps=3, batch_size=8, n_patients=2, days=1)
    state = manager.wait(job, timeout=300)
    assert state["status"] == "finished" and "weights dfm-job written" in state["message"]
    assert (cache_dir / "weights" / "dfm-job" / "model.safetensors").is_file()
    with pytest.raises(ValueError, match="checkpoint name"):
        manager.submit_pretrain("../outside")
