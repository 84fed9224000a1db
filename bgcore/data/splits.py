"""The split part of the evaluation protocol, defined once and reused everywhere.

Per patient, the observed record (first to last CGM reading) is cut by time: the earliest
`SplitConfig.train` fraction trains, the next `validation` fraction validates and the last
`test` fraction tests. Boundaries fall on the 5-minute grid. Multi-patient models train on
the train parts of all training patients; the patient-holdout variant keeps a
`holdout_fraction` of patients (stratified by age group, seeded) out of training altogether.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .schema import STEP

PARTS = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of each patient's record and the patient-holdout settings."""

    train: float = 0.7
    validation: float = 0.1
    test: float = 0.2
    holdout_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self):
        parts = (self.train, self.validation, self.test)
        if min(parts) < 0 or abs(sum(parts) - 1) > 1e-9 or self.train == 0 or self.test == 0:
            raise ValueError(f"split fractions must be >= 0, sum to 1, with train and test > 0; got {parts}")
        if not 0 <= self.holdout_fraction < 1:
            raise ValueError(f"holdout_fraction must be in [0, 1), got {self.holdout_fraction}")


DEFAULT_SPLIT = SplitConfig()


def split_bounds(frame: pd.DataFrame, config: SplitConfig = DEFAULT_SPLIT) -> pd.DataFrame:
    """Per patient: ``start``, ``validation_start``, ``test_start``, ``end`` of the observed record."""
    observed = frame.loc[frame["cgm"].notna(), ["patient_id", "time"]]
    span = observed.groupby("patient_id", observed=True)["time"].agg(start="min", end="max")
    length = span["end"] - span["start"]
    span["validation_start"] = (span["start"] + length * config.train).dt.floor(STEP)
    span["test_start"] = (span["start"] + length * (config.train + config.validation)).dt.floor(STEP)
    span.index = span.index.astype(str)
    return span[["start", "validation_start", "test_start", "end"]]


def assign_parts(frame: pd.DataFrame, config: SplitConfig = DEFAULT_SPLIT) -> pd.Series:
    """The part (``train``/``validation``/``test``) of every row of `frame`."""
    bounds = split_bounds(frame, config).reindex(frame["patient_id"].astype(str))
    time = frame["time"].to_numpy()
    part = np.where(time >= bounds["test_start"].to_numpy(), 2,
                    np.where(time >= bounds["validation_start"].to_numpy(), 1, 0))
    return pd.Series(pd.Categorical.from_codes(part, PARTS), index=frame.index, name="part")


def temporal_split(frame: pd.DataFrame, config: SplitConfig = DEFAULT_SPLIT) -> dict[str, pd.DataFrame]:
    """Frames of the train, validation and test parts (each still sorted by patient, time)."""
    part = assign_parts(frame, config)
    return {name: frame[part == name].reset_index(drop=True) for name in PARTS}


def holdout_patients(patients: pd.DataFrame, config: SplitConfig = DEFAULT_SPLIT) -> tuple[list[str], list[str]]:
    """Split patient ids into (training, holdout), stratified by ``age_group``, seeded.

    Each group keeps at least one training patient; a group gives up
    ``round(holdout_fraction * size)`` patients.
    """
    rng = np.random.default_rng(config.seed)
    train, holdout = [], []
    table = patients.astype({"patient_id": str}).sort_values("patient_id")
    for _, group in table.groupby("age_group", sort=True):
        ids = group["patient_id"].to_numpy()
        n_out = min(int(round(config.holdout_fraction * len(ids))), len(ids) - 1)
        chosen = set(rng.choice(ids, size=n_out, replace=False)) if n_out > 0 else set()
        holdout += [p for p in ids if p in chosen]
        train += [p for p in ids if p not in chosen]
    return sorted(train), sorted(holdout)
