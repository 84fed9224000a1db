"""Stored runs under ``cache/runs/``: per-origin forecasts and what produced them.

One folder per run: ``forecasts.parquet`` (the tidy frame of
`bgcore.evaluation.backtest`) and ``manifest.json`` (run metadata, the protocol card and
the file's sha256), written last inside a temporary folder that is then renamed, so a
run is either complete or absent. Run ids are validated before they touch a path.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from .data.schema import DataError, validate_id
from .paths import atomic_folder, cache_root, recover_folders, sha256_file

MANIFEST = "manifest.json"
FORECASTS = "forecasts.parquet"
RUN_FIELDS = ("run_id", "created", "dataset", "model", "family", "goal", "params", "patients", "parent_run",
              "protocol_key", "data_fingerprint", "code_fingerprint", "status", "errors", "seconds", "models",
              "weights")


def runs_root() -> Path:
    root = cache_root() / "runs"
    root.mkdir(parents=True, exist_ok=True)
    return root


def new_run_id(model: str) -> str:
    """A sortable, unique, path-safe run id: ``YYYYmmdd-HHMMSS-<model>-<6 hex>``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", model)[:32]
    return validate_id(f"{stamp}-{slug}-{uuid.uuid4().hex[:6]}", "run id")


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 (16 hex digits) of the bgcore source files: which code produced a run."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]



def save_run(forecasts: pd.DataFrame, card: dict, *, model: str, family: str, goal: str,
             params: dict | None = None, parent_run: str | None = None, run_id: str | None = None,
             protocol_key: str | None = None, models: dict | None = None, errors: dict | None = None,
             seconds: float | None = None, model_files: dict | None = None, weights: dict | None = None) -> dict:
    """Store a run's forecasts with its protocol card (and fitted models); return the run record.

    Parameters
    ----------
    models : dict, optional
        Fitted forecasters by key (``"all"`` for one model, else patient ids), saved
        natively under ``models/<key>/``.
    errors : dict, optional
        Patients (or parts) that failed, with their error; the run's status is then ``partial``.
    model_files : dict, optional
        Saved models as ``{key: {relative path: bytes}}`` (what a remote worker returns).
    weights : dict, optional
        Foundation models: the weights each model runs on and what was trained on top.
    """
    run_id = validate_id(run_id or new_run_id(model), "run id")
    record = {
        "run_id": run_id,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "dataset": card["dataset"],
        "model": model,
        "family": family,
        "goal": goal,
        "params": params or {},
        "patients": sorted(forecasts["patient_id"].astype(str).unique().tolist()),
        "parent_run": parent_run,
        "protocol_key": protocol_key,
        "data_fingerprint": card["data_fingerprint"],
        "code_fingerprint": code_fingerprint(),
        "status": "partial" if errors else "finished",
        "errors": errors or {},
        "seconds": seconds,
        "weights": weights or {},
    }
    with atomic_folder(runs_root() / run_id) as tmp:
        forecasts.to_parquet(tmp / FORECASTS, index=False)
        for key, fitted in (models or {}).items():
            fitted.save(tmp / "models" / validate_id(str(key), "model key"))
        for key, files in (model_files or {}).items():
            for rel, data in files.items():
                target = (tmp / "models" / validate_id(str(key), "model key") / rel).resolve()
                if tmp.resolve() not in target.parents:
                    raise DataError("model file outside the run folder", file=rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        model_keys = sorted({*(models or {}), *(model_files or {})})
        hashes = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = {**record, "card": card, "rows": len(forecasts), "models": model_keys, "sha256": hashes}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
    return record


def list_runs(dataset: str | None = None) -> list[dict]:
    """Records of all complete runs (optionally of one dataset), oldest first."""
    root = runs_root()
    recover_folders(root)
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except (OSError, json.JSONDecodeError):
            continue  # incomplete or foreign folder
        if dataset is None or manifest["dataset"] == dataset:
            out.append({k: manifest.get(k) for k in RUN_FIELDS} | {"card": manifest["card"]})
    return out


def load_forecasts(run_id: str, verify: bool = False) -> pd.DataFrame:
    """The stored forecasts of a run (optionally checked against the manifest hash)."""
    folder = runs_root() / validate_id(run_id, "run id")
    manifest = run_record(run_id)
    path = folder / FORECASTS
    if verify and sha256_file(path) != manifest["sha256"][FORECASTS]:
        raise DataError("stored forecasts do not match their manifest hash", file=path)
    frame = pd.read_parquet(path)
    if len(frame) != manifest["rows"]:
        raise DataError("stored forecasts have the wrong number of rows", file=path, expected=str(manifest["rows"]),
                        found=len(frame))
    return frame


def run_record(run_id: str) -> dict:
    """The manifest of a complete run (`DataError` if there is none)."""
    folder = runs_root() / validate_id(run_id, "run id")
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        raise DataError(f"no complete run {run_id!r}") from None


def load_model(run_id: str, key: str = "all"):
    """A fitted forecaster stored with a run (``"all"`` or a patient id)."""
    from .models.base import Forecaster
    record = run_record(run_id)
    if key not in record.get("models", []):
        raise DataError(f"run {run_id!r} stores no model {key!r}", expected=", ".join(record.get("models", [])) or
                        "a run with stored models")
    return Forecaster.load(runs_root() / run_id / "models" / validate_id(key, "model key"))


def weights_lines(record: dict) -> list[str]:
    """One line per model of a run that runs on pretrained weights: where they come from, what was trained."""
    lines = []
    for key, info in sorted((record.get("weights") or {}).items()):
        trained = "; ".join(info.get("lineage", [])[1:]) or "used as they are (zero-shot)"
        lines.append(f"{key}: {info.get('description', info.get('spec'))} — {trained}")
    return lines
