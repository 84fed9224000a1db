"""The job manager: training in the background, shared by every browser session of a server.

Jobs run on a small thread pool (one worker by default: training already uses both
cores), the rest wait in its queue. A job's state is plain data in the runs database
(`RunDB`), so pages only poll `status`; progress and messages arrive through the
training callbacks; `cancel` sets a flag that training checks between patients, epochs
and grid points. A sweep (patients x families x parameter grid) is one job whose
sub-tasks are recorded one by one: a failing sub-task is marked failed with its error
and the others run; submitting the same sweep again resumes it, skipping finished
sub-tasks. Workers never import Streamlit.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor

from ..evaluation.scoring import score_patients
from ..paths import cache_root
from ..models.search import configurations
from ..store import load_forecasts
from .goals import remote_task, store_result, task_dataset, train
from .rundb import RunDB

PROGRESS_EVERY_S = 0.5


def _key(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=list).encode()).hexdigest()[:16]


class JobManager:
    """Runs training jobs in worker threads and records their state in the runs database."""

    def __init__(self, workers: int = 1, db: RunDB | None = None, scheduler: str | None = None):
        """
        Parameters
        ----------
        workers : int
            Local worker threads.
        scheduler : str, optional
            Address of a Dask distributed scheduler (default ``$BGCORE_DASK_SCHEDULER``): sweep
            sub-tasks then run on that cluster; results come back and are stored here.
        """
        self.scheduler = scheduler or os.environ.get("BGCORE_DASK_SCHEDULER") or None
        self._client = None
        self.db = db or RunDB()
        self.db.mark_interrupted()  # whatever was running when the last process died
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bgcore-job")
        self._cancel: dict[str, threading.Event] = {}
        self._futures = {}

    # --- public ---------------------------------------------------------------------
    def submit_train(self, goal: str, family: str, params: dict | None = None, patients=None,
                     dataset: str = "virtual", parent: str | None = None) -> str:
        """Queue one training run; returns the job id."""
        spec = {"goal": goal, "family": family, "params": params or {}, "patients": patients, "dataset": dataset,
                "parent": parent}
        return self._submit("train", spec, self._run_train)

    def submit_sweep(self, goal: str, families, grid: dict | None = None, patient_groups=None,
                     dataset: str = "virtual") -> str:
        """Queue a sweep over ``patient_groups x families x grid``; resubmitting the same sweep resumes it.

        Parameters
        ----------
        grid : dict, optional
            Parameter grid applied to every family (default: each family's defaults only).
        patient_groups : list of list of str, optional
            Patient sets (default: one set with every patient).
        """
        spec = {"goal": goal, "families": list(families), "grid": grid or {}, "dataset": dataset,
                "patient_groups": patient_groups or [None]}
        job_id = f"sweep-{_key(spec)}"
        tasks = {}
        for patients in spec["patient_groups"]:
            for family in spec["families"]:
                for params in configurations(spec["grid"]) or [{}]:
                    task = {"goal": goal, "family": family, "params": params, "patients": patients,
                            "dataset": dataset}
                    tasks[_key(task)] = task
        if self.db.job(job_id) is None:
            self.db.add_job(job_id, "sweep", spec)
        else:
            self.db.update_job(job_id, status="queued", error=None, finished=None)
        self.db.add_tasks(job_id, tasks)
        return self._submit("sweep", spec, self._run_sweep, job_id=job_id, exists=True)

    def submit_pretrain(self, name: str = "dfm-small", **settings) -> str:
        """Queue the pretraining of a diabetes foundation model (see `pretrain_dfm` for `settings`)."""
        from ..models.foundation.weights import NAME
        if not NAME.match(str(name)):
            raise ValueError(f"checkpoint name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
        spec = {"name": name, **settings, "goal": "pretrain", "family": "dfm", "dataset": None}
        return self._submit("pretrain", spec, self._run_pretrain)

    def cancel(self, job_id: str) -> None:
        """Ask a job to stop at its next check (between patients, epochs or grid points)."""
        if job_id in self._cancel:
            self._cancel[job_id].set()

    def status(self, job_id: str) -> dict | None:
        """Plain-data state of a job (status, progress, message, error, run ids, timing, and tasks for sweeps)."""
        job = self.db.job(job_id)
        if job is not None:
            job = _with_timing(job)
            if job["kind"] == "sweep":
                job["tasks"] = self.db.tasks(job_id)
        return job

    def jobs(self) -> list[dict]:
        """Every job, oldest first, with ``elapsed_s`` and ``eta_s`` (None when unknown)."""
        return [_with_timing(j) for j in self.db.jobs()]

    def wait(self, job_id: str, timeout: float | None = None) -> dict:
        """Block until a job ends (tests, CLI); returns its status."""
        future = self._futures.get(job_id)
        if future is not None:
            future.result(timeout=timeout)
        return self.status(job_id)

    def shutdown(self) -> None:
        for event in self._cancel.values():
            event.set()
        self._pool.shutdown(wait=True)
        if self._client is not None:
            self._client.close()

    def client(self):
        """The Dask client of the configured scheduler (connected on first use)."""
        if self._client is None:
            from distributed import Client
            self._client = Client(self.scheduler, set_as_default=False)
        return self._client

    # --- workers --------------------------------------------------------------------
    def _submit(self, kind, spec, target, job_id=None, exists=False) -> str:
        job_id = job_id or f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        if not exists:
            self.db.add_job(job_id, kind, spec)
        self._cancel[job_id] = threading.Event()
        self._futures[job_id] = self._pool.submit(self._guard, job_id, target, spec)
        return job_id

    def _guard(self, job_id, target, spec) -> None:
        """Run a job and record how it ended; never lets an exception escape the worker."""
        self.db.update_job(job_id, status="running", started=time.time(), message="started")
        try:
            status, message, run_ids = target(job_id, spec)
            self.db.update_job(job_id, status=status, progress=1.0, message=message, run_ids=run_ids,
                               finished=time.time())
        except InterruptedError:
            self.db.update_job(job_id, status="cancelled", message="cancelled", finished=time.time())
        except Exception as exc:  # noqa: BLE001 - a failing job is recorded, the manager lives on
            self.db.update_job(job_id, status="failed", error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}",
                               message=str(exc)[:200], finished=time.time())

    def _progress(self, job_id, offset=0.0, share=1.0):
        last = [0.0]

        def report(fraction, message):
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY_S or fraction >= 1:
                last[0] = now
                self.db.update_job(job_id, progress=offset + share * float(fraction), message=message[:200])
        return report

    def _index(self, record, job_id) -> None:
        scores = score_patients(load_forecasts(record["run_id"]))
        self.db.add_run(record, scores.to_dict(orient="records"), job_id)

    def _run_train(self, job_id, spec):
        cancel = self._cancel[job_id].is_set
        record = train(spec["goal"], spec["family"], spec["params"], spec["patients"], spec["dataset"],
                       parent=spec["parent"], progress=self._progress(job_id), cancel=cancel)
        self._index(record, job_id)
        message = f"run {record['run_id']} {record['status']}"
        return ("partial" if record["status"] == "partial" else "finished"), message, [record["run_id"]]

    def _run_pretrain(self, job_id, spec):
        from ..models.foundation.pretrain import pretrain_dfm
        settings = {k: v for k, v in spec.items() if k not in ("goal", "family", "dataset")}
        card = pretrain_dfm(**settings, progress=self._progress(job_id), cancel=self._cancel[job_id].is_set)
        return "finished", (f"weights {card['name']} written: {card['parameters']:,} parameters, {card['steps']} "
                            f"steps, loss {card['loss_first']:.3f} -> {card['loss_last']:.3f}"), []

    def _run_sweep(self, job_id, spec):
        cancel = self._cancel[job_id].is_set
        tasks = self.db.tasks(job_id)
        todo = [t for t in tasks if t["status"] != "finished"]
        run_ids = [t["run_id"] for t in tasks if t["status"] == "finished"]
        failed = 0

        def finished(key, record):
            self._index(record, job_id)
            self.db.update_task(job_id, key, status="finished", run_id=record["run_id"], finished=time.time())
            run_ids.append(record["run_id"])

        def failure(key, exc):
            nonlocal failed
            failed += 1
            self.db.update_task(job_id, key, status="failed", error=f"{type(exc).__name__}: {exc}", finished=time.time())

        if self.scheduler:
            self._sweep_on_cluster(job_id, todo, cancel, finished, failure)
        else:
            for i, task in enumerate(todo):
                if cancel():
                    raise InterruptedError("sweep cancelled")
                key, t = task["task_key"], task["spec"]
                self.db.update_task(job_id, key, status="running", started=time.time())
                try:
                    finished(key, train(t["goal"], t["family"], t["params"], t["patients"], task_dataset(t["dataset"]),
                                        cancel=cancel, progress=self._progress(job_id, i / len(todo), 1 / len(todo))))
                except InterruptedError:
                    self.db.update_task(job_id, key, status="cancelled", finished=time.time())
                    raise
                except Exception as exc:  # noqa: BLE001 - isolate the failing sub-task
                    failure(key, exc)
        done = len(tasks) - len(todo)
        message = f"{len(todo)} sub-task(s) run ({failed} failed), {done} already finished"
        return ("partial" if failed else "finished"), message, run_ids

    def _sweep_on_cluster(self, job_id, todo, cancel, finished, failure) -> None:
        """Sub-tasks on the Dask cluster; each result is stored here as it arrives."""
        from distributed import as_completed

        client = self.client()
        futures = {}
        for task in todo:
            self.db.update_task(job_id, task["task_key"], status="running", started=time.time())
            futures[client.submit(remote_task, task["spec"], pure=False)] = task["task_key"]
        done = 0
        for future in as_completed(list(futures), loop=client.loop):
            key = futures[future]
            if cancel():
                client.cancel(list(futures))
                raise InterruptedError("sweep cancelled")
            try:
                out = future.result()
                finished(key, store_result(out["result"], model_files=out["model_files"]))
            except Exception as exc:  # noqa: BLE001 - isolate the failing sub-task
                failure(key, exc)
            done += 1
            self.db.update_job(job_id, progress=done / len(todo), message=f"{done}/{len(todo)} sub-tasks on the cluster")


def _with_timing(job: dict) -> dict:
    """Add elapsed seconds and a linear estimate of the seconds left from the progress."""
    started = job["started"]
    elapsed = ((job["finished"] or time.time()) - started) if started else 0.0
    running = job["status"] == "running" and 0 < job["progress"] < 1
    return {**job, "elapsed_s": elapsed, "eta_s": elapsed / job["progress"] - elapsed if running else None}


_MANAGERS: dict[str, JobManager] = {}
_LOCK = threading.Lock()


def get_manager() -> JobManager:
    """The process-wide job manager of the current cache (created on first use, shared by all sessions)."""
    root = str(cache_root())
    with _LOCK:
        if root not in _MANAGERS:
            _MANAGERS[root] = JobManager()
        return _MANAGERS[root]
