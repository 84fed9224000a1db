"""The runs database: jobs, sweep sub-tasks, runs and per-patient metrics in ``cache/runs.db``.

SQLite in WAL mode (readers never block the writer), one connection per thread, short
transactions. Run folders (`bgcore.store`) stay the source of truth for what a run holds;
this database records lifecycle (queued, running, finished, failed, cancelled,
interrupted), progress, errors with tracebacks and timings, and indexes finished runs and
their per-patient scores. The schema is versioned: an older database is migrated in
place, a newer one is refused with a clear message.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from ..data.schema import DataError
from ..paths import cache_root

SCHEMA_VERSION = 1
MIGRATIONS = {
    1: """
    CREATE TABLE jobs (
        job_id TEXT PRIMARY KEY, created REAL NOT NULL, kind TEXT NOT NULL, spec TEXT NOT NULL,
        status TEXT NOT NULL, progress REAL NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '',
        error TEXT, started REAL, finished REAL, run_ids TEXT NOT NULL DEFAULT '[]');
    CREATE TABLE tasks (
        job_id TEXT NOT NULL, task_key TEXT NOT NULL, spec TEXT NOT NULL, status TEXT NOT NULL,
        run_id TEXT, error TEXT, started REAL, finished REAL, PRIMARY KEY (job_id, task_key));
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY, created TEXT NOT NULL, dataset TEXT NOT NULL, goal TEXT NOT NULL,
        family TEXT NOT NULL, model TEXT NOT NULL, params TEXT NOT NULL, patients TEXT NOT NULL,
        parent_run TEXT, data_fingerprint TEXT NOT NULL, code_fingerprint TEXT, status TEXT NOT NULL,
        seconds REAL, job_id TEXT);
    CREATE TABLE patient_metrics (
        run_id TEXT NOT NULL, patient_id TEXT NOT NULL, horizon INTEGER NOT NULL, n INTEGER NOT NULL,
        rmse REAL, mae REAL, mard REAL, PRIMARY KEY (run_id, patient_id, horizon));
    """,
}
ACTIVE = ("queued", "running")


class RunDB:
    """Thread-safe access to ``runs.db`` (one SQLite connection per thread)."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path or cache_root() / "runs.db")
        self._local = threading.local()
        self._migrate()

    def connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=True)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def _migrate(self) -> None:
        conn = self.connect()
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        version = row["version"] if row else 0
        if version > SCHEMA_VERSION:
            raise DataError(f"{self.path} was written by a newer bgcore (schema {version})",
                            expected=f"schema <= {SCHEMA_VERSION}; upgrade bgcore or point BGCORE_CACHE elsewhere")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[target].split(";"):  # executescript would commit early
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version VALUES (?)", (target,))
                conn.execute("COMMIT")
            except Exception:
                conn.execute("ROLLBACK")
                raise

    def execute(self, sql: str, args=()) -> list[sqlite3.Row]:
        """One short transaction."""
        conn = self.connect()
        with conn:
            return conn.execute(sql, args).fetchall()

    # --- jobs ---------------------------------------------------------------------
    def add_job(self, job_id: str, kind: str, spec: dict) -> None:
        self.execute("INSERT INTO jobs (job_id, created, kind, spec, status) VALUES (?, ?, ?, ?, 'queued')",
                     (job_id, time.time(), kind, json.dumps(spec, sort_keys=True)))

    def update_job(self, job_id: str, **fields) -> None:
        if "run_ids" in fields:
            fields["run_ids"] = json.dumps(fields["run_ids"])
        cols = ", ".join(f"{k} = ?" for k in fields)
        self.execute(f"UPDATE jobs SET {cols} WHERE job_id = ?", (*fields.values(), job_id))

    def job(self, job_id: str) -> dict | None:
        rows = self.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def jobs(self) -> list[dict]:
        return [_job(r) for r in self.execute("SELECT * FROM jobs ORDER BY created")]

    def mark_interrupted(self) -> int:
        """After a crash or restart: jobs and tasks that were running are interrupted; returns the count."""
        conn = self.connect()
        with conn:
            n = conn.execute("UPDATE jobs SET status = 'interrupted', finished = ? WHERE status IN ('queued', "
                             "'running')", (time.time(),)).rowcount
            conn.execute("UPDATE tasks SET status = 'interrupted' WHERE status = 'running'")
        return n

    # --- sweep tasks --------------------------------------------------------------
    def add_tasks(self, job_id: str, tasks: dict[str, dict]) -> None:
        conn = self.connect()
        with conn:
            conn.executemany("INSERT OR IGNORE INTO tasks (job_id, task_key, spec, status) VALUES (?, ?, ?, 'queued')",
                             [(job_id, k, json.dumps(v, sort_keys=True)) for k, v in tasks.items()])

    def update_task(self, job_id: str, task_key: str, **fields) -> None:
        cols = ", ".join(f"{k} = ?" for k in fields)
        self.execute(f"UPDATE tasks SET {cols} WHERE job_id = ? AND task_key = ?", (*fields.values(), job_id, task_key))

    def tasks(self, job_id: str) -> list[dict]:
        return [dict(r) | {"spec": json.loads(r["spec"])}
                for r in self.execute("SELECT * FROM tasks WHERE job_id = ? ORDER BY task_key", (job_id,))]

    # --- runs ---------------------------------------------------------------------
    def add_run(self, record: dict, metrics, job_id: str | None = None) -> None:
        """Index a stored run and its per-patient metrics (``metrics``: rows of score_patients)."""
        conn = self.connect()
        with conn:
            conn.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (record["run_id"], record["created"], record["dataset"], record["goal"], record["family"],
                          record["model"], json.dumps(record["params"], default=str), json.dumps(record["patients"]),
                          record.get("parent_run"), record["data_fingerprint"], record.get("code_fingerprint"),
                          record["status"], record.get("seconds"), job_id))
            conn.executemany("INSERT OR REPLACE INTO patient_metrics VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [(record["run_id"], m["patient_id"], int(m["horizon"]), int(m["n"]), m["rmse"], m["mae"],
                               m["mard"]) for m in metrics])

    def runs(self, dataset: str | None = None) -> list[dict]:
        sql, args = "SELECT * FROM runs", ()
        if dataset is not None:
            sql, args = sql + " WHERE dataset = ?", (dataset,)
        return [dict(r) | {"params": json.loads(r["params"]), "patients": json.loads(r["patients"])}
                for r in self.execute(sql + " ORDER BY created", args)]


def _job(row) -> dict:
    out = dict(row)
    out["spec"] = json.loads(out["spec"])
    out["run_ids"] = json.loads(out["run_ids"])
    return out
