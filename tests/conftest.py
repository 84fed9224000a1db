"""Shared fixtures: every test gets its own cache folder; small canonical frames on demand."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    """Point BGCORE_CACHE at a fresh temporary folder for every test."""
    root = tmp_path / "cache"
    monkeypatch.setenv("BGCORE_CACHE", str(root))
    return root


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


def make_frame(patients=("p1",), days: float = 1.0, seed: int = 0, start="2024-03-01") -> pd.DataFrame:
    """A small canonical frame: a daily sine with noise, meals at 8, 13, 19 h, basal + boluses."""
    rng = np.random.default_rng(seed)
    n = int(days * 288)
    parts = []
    for pid in patients:
        time = pd.Timestamp(start) + pd.to_timedelta(np.arange(n) * 5, unit="m")
        hour = time.hour + time.minute / 60
        cgm = np.round(140 + 40 * np.sin(2 * np.pi * hour / 24) + rng.normal(0, 5, n))
        meal = np.isin(time.strftime("%H:%M"), ["08:00", "13:00", "19:00"])
        parts.append(pd.DataFrame({"patient_id": pid, "time": time, "cgm": cgm.astype(float),
                                   "carbs": np.where(meal, 50.0, 0.0),
                                   "insulin": np.where(meal, 5.0, 0.0) + 0.08}))
    frame = pd.concat(parts, ignore_index=True)
    frame["patient_id"] = pd.Categorical(frame["patient_id"], categories=sorted(patients))
    return frame.sort_values(["patient_id", "time"], ignore_index=True)


def make_patients(ids, group="adult") -> pd.DataFrame:
    return pd.DataFrame({"patient_id": list(ids), "age_group": group, "source": "test"})
