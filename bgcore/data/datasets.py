"""Imported datasets under ``cache/datasets/``, beside the embedded cohort.

Layout of one dataset: ``cache/datasets/<name>/data.parquet`` (canonical frame),
``patients.parquet`` and ``manifest.json`` (source files with sha256 and size, row
counts, the import report). The folder is written under a temporary name and renamed,
so a failed import leaves every earlier dataset as it was.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ..paths import atomic_folder, cache_root, recover_folders, sha256_file
from .cohort import COHORT_FILE, COHORT_NAME, load_cohort
from .dataset import Dataset
from .ingest import ImportReport, finalise, id_from_name
from .loaders import read_path
from .loaders.nightscout import is_folder as is_nightscout_folder
from .schema import DataError, validate_id

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


def datasets_root() -> Path:
    root = cache_root() / "datasets"
    root.mkdir(parents=True, exist_ok=True)
    return root



def import_path(path, name: str | None = None, format: str = "auto", patient_id: str | None = None,
                replace: bool = False) -> tuple[Dataset, ImportReport]:
    """Read a file or folder, validate it and store it as dataset `name`.

    Raises
    ------
    DataError
        Bad input (nothing is stored), an invalid or reserved name, or an existing
        dataset of that name without `replace`.
    """
    path = Path(path)
    name = validate_id(name or id_from_name(path.name), "dataset name")
    if name == COHORT_NAME:
        raise DataError("the name is reserved for the embedded cohort", column="name", found=name,
                        expected="another dataset name")
    final = datasets_root() / name
    if final.exists() and not replace:
        raise DataError(f"dataset {name!r} already exists", column="name", expected="a new name, or --replace")
    raws = read_path(path, format=format, patient_id=patient_id)
    frame, patients, report = finalise(raws)
    dataset = Dataset(name=name, frame=frame, patients=patients)
    sources = [Path(r.file) for r in raws]
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "name": name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": str(path.resolve()),
        "files": [{"path": str(p.resolve()), "bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in sources],
        "rows": len(frame),
        "patients": len(patients),
        "report": dataclasses.asdict(report),
    }
    with atomic_folder(final, replace=replace) as tmp:
        frame.to_parquet(tmp / "data.parquet", index=False)
        patients.to_parquet(tmp / "patients.parquet", index=False)
        for stored in ("data.parquet", "patients.parquet"):
            manifest[f"{stored}.sha256"] = sha256_file(tmp / stored)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))  # written last: marks the folder complete
    dataset.info = manifest
    return dataset, report


def list_datasets() -> list[dict]:
    """The embedded cohort and every complete stored dataset, as plain dicts."""
    root = datasets_root()
    recover_folders(root)
    out = [{"name": COHORT_NAME, "source": "embedded virtual cohort (UVA/Padova)", "patients": 30,
            "rows": None, "created": None}]
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        manifest = _read_manifest(folder)
        if manifest is None:
            continue
        out.append({"name": manifest["name"], "source": manifest["source"], "patients": manifest["patients"],
                    "rows": manifest["rows"], "created": manifest["created"],
                    "format": manifest["report"]["format"]})
    return out


def dataset_version(name: str) -> str:
    """A stamp that changes when dataset `name` is replaced (its import time and rows; the cohort file's)."""
    if name == COHORT_NAME:
        stat = COHORT_FILE.stat()
        return f"{stat.st_mtime_ns}-{stat.st_size}"
    validate_id(name, "dataset name")
    folder = datasets_root() / name
    manifest = _read_manifest(folder)
    if manifest is None:
        return ""
    return f"{manifest['created']}-{manifest['rows']}-{(folder / MANIFEST).stat().st_mtime_ns}"


def _read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def load_dataset(name: str = COHORT_NAME, verify: bool = False) -> Dataset:
    """Load a dataset by name (``"virtual"`` is the embedded cohort).

    Parameters
    ----------
    verify : bool
        Also check the stored files against the sha256 in the manifest.
    """
    if name == COHORT_NAME:
        return load_cohort()
    validate_id(name, "dataset name")
    folder = datasets_root() / name
    recover_folders(datasets_root())
    manifest = _read_manifest(folder)
    if manifest is None:
        known = ", ".join(d["name"] for d in list_datasets())
        raise DataError(f"no dataset {name!r}", expected=f"one of: {known}")
    if manifest.get("manifest_version", 0) > MANIFEST_VERSION:
        raise DataError(f"dataset {name!r} was written by a newer bgcore", expected=f"manifest version <= "
                        f"{MANIFEST_VERSION}", found=manifest.get("manifest_version"))
    if verify:
        for stored in ("data.parquet", "patients.parquet"):
            if sha256_file(folder / stored) != manifest[f"{stored}.sha256"]:
                raise DataError("stored file does not match its manifest hash", file=folder / stored)
    frame = pd.read_parquet(folder / "data.parquet")
    if len(frame) != manifest["rows"]:
        raise DataError("stored data has the wrong number of rows", file=folder / "data.parquet",
                        expected=str(manifest["rows"]), found=len(frame))
    patients = pd.read_parquet(folder / "patients.parquet")
    return Dataset(name=name, frame=frame, patients=patients, info=manifest)


def _problem(exc: DataError) -> dict:
    row = exc.row if exc.row is None or isinstance(exc.row, str) else int(exc.row)
    return {"file": Path(exc.file).name if exc.file else None, "row": row, "column": exc.column,
            "problem": exc.message, "expected": exc.expected,
            "found": None if exc.found is None else str(exc.found)[:200]}


def preview_path(path, format: str = "auto", patient_id: str | None = None) -> dict:
    """Read and validate a file or folder without storing anything: what an import would store.

    A folder's files are checked one by one, so every file's problem is listed (a file
    stops at its first bad row, the row the message names).

    Returns
    -------
    dict
        ``ok`` (True when the import would succeed), ``report`` (`ImportReport` lines),
        ``patients`` (rows: id, days, readings, CGM present %), ``problems`` (rows: file, row,
        column, problem, expected, found), ``files`` checked.
    """
    path = Path(path)
    problems, raws = [], []
    candidates = ([path] if not path.is_dir() or is_nightscout_folder(path) else
                  sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")))
    for item in candidates:
        try:
            raws += read_path(item, format=format, patient_id=patient_id)
        except DataError as exc:
            problems.append(_problem(exc))
    out = {"ok": False, "report": [], "patients": [], "problems": problems, "files": [p.name for p in candidates]}
    if not raws:
        if not problems:
            problems.append({"file": path.name, "row": None, "column": None, "problem": "no data files",
                             "expected": "a file in a supported format", "found": None})
        return out
    try:
        frame, patients, report = finalise(raws)
    except DataError as exc:
        problems.append(_problem(exc))
        return out
    per_patient = frame.groupby("patient_id", observed=True).agg(
        start=("time", "min"), end=("time", "max"), readings=("cgm", "count"), steps=("cgm", "size"))
    out["patients"] = [{"patient_id": str(pid), "days": round((r.end - r.start).total_seconds() / 86400, 1),
                        "readings": int(r.readings), "cgm_present_pct": round(100 * r.readings / r.steps, 1),
                        "start": str(r.start), "end": str(r.end)} for pid, r in per_patient.iterrows()]
    out["report"] = report.lines()
    out["ok"] = not problems
    return out


@contextmanager
def staged_upload(filename: str, data: bytes):
    """Write uploaded bytes to a private folder under ``cache/uploads`` for the duration of the block.

    The file name is reduced to its last component (a browser may send a path); the folder
    is removed afterwards whatever happens, so an upload never stays in the cache.
    """
    folder = cache_root() / "uploads" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    try:
        name = Path(str(filename).replace("\\", "/")).name or "upload"
        target = folder / name
        target.write_bytes(data)
        yield target
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def format_descriptions() -> dict[str, str]:
    """Supported import formats: name -> description."""
    from .loaders import READERS
    return {name: module.DESCRIPTION for name, module in READERS.items()}
