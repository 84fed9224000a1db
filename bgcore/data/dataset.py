"""`Dataset`: the canonical frame of a cohort together with its patient table."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd

from .schema import validate_frame


def data_fingerprint(frame: pd.DataFrame) -> str:
    """sha256 (16 hex digits) of the canonical frame's content."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def select_patients(frame: pd.DataFrame, patient_ids) -> pd.DataFrame:
    """Rows of `patient_ids` (a copy, index reset, unused patient categories dropped)."""
    rows = frame[frame["patient_id"].isin([str(p) for p in patient_ids])].copy()
    rows["patient_id"] = rows["patient_id"].cat.remove_unused_categories()
    return rows.reset_index(drop=True)


@dataclass
class Dataset:
    """A cohort in the canonical form.

    Attributes
    ----------
    name : str
        Dataset name (``"virtual"`` for the embedded cohort, else the import name).
    frame : DataFrame
        Canonical long frame (see `bgcore.data.schema`).
    patients : DataFrame
        One row per patient: ``patient_id``, ``age_group``, ``source`` and extra metadata.
    info : dict
        Provenance: source files, import report, generation spec.
    """

    name: str
    frame: pd.DataFrame
    patients: pd.DataFrame
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        validate_frame(self.frame, self.patients)

    @cached_property
    def fingerprint(self) -> str:
        """`data_fingerprint` of the frame, computed once (a dataset's frame is never changed in place)."""
        return data_fingerprint(self.frame)

    @property
    def patient_ids(self) -> list[str]:
        return self.patients["patient_id"].astype(str).tolist()

    def patient(self, patient_id: str, start=None, end=None) -> pd.DataFrame:
        """Rows of one patient (a copy), optionally only times in ``[start, end)``."""
        rows = self.frame[self.frame["patient_id"] == patient_id]
        if rows.empty:
            raise KeyError(f"no patient {patient_id!r} in dataset {self.name!r}")
        if start is not None:
            rows = rows[rows["time"] >= pd.Timestamp(start)]
        if end is not None:
            rows = rows[rows["time"] < pd.Timestamp(end)]
        return rows.reset_index(drop=True)

    def subset(self, patient_ids) -> "Dataset":
        """The same dataset restricted to `patient_ids`."""
        ids = [str(p) for p in patient_ids]
        unknown = sorted(set(ids) - set(self.patient_ids))
        if unknown:
            raise KeyError(f"unknown patients in dataset {self.name!r}: {unknown[:5]}")
        patients = self.patients[self.patients["patient_id"].isin(ids)].reset_index(drop=True)
        return Dataset(self.name, select_patients(self.frame, ids), patients, dict(self.info))
