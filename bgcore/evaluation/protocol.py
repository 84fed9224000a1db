"""The backtest protocol, defined once: origins, gap rules, horizons, past-only context.

Per patient the record is split by `bgcore.data.splits`. Forecast origins fall every
`Protocol.stride_min` minutes (on the clock: :00 and :30) inside the evaluated part, but
only where

* the last `GapRule.last_observed` readings up to the origin are present (the current
  value and its 5-minute predecessor, so every forecaster has a level and a trend);
* at least `GapRule.min_context_fraction` of the readings in the last
  `GapRule.context_minutes` are present;
* at least `GapRule.min_target_fraction` of the targets at horizons 5..120 min are present
  (missing targets are simply not scored).

Models receive a `ContextBatch`: fixed-length windows of the past up to and including the
origin (nothing after it), built for all origins at once by index arithmetic.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import __version__
from ..data.dataset import data_fingerprint  # noqa: F401 - part of the protocol's interface (run cards)
from ..data.schema import STEP_MINUTES
from ..data.splits import DEFAULT_SPLIT, SplitConfig, assign_parts

HORIZONS_MIN = tuple(range(5, 121, 5))
HEADLINE_MIN = (30, 60)


@dataclass(frozen=True)
class GapRule:
    """Which origins are evaluated (see the module docstring)."""

    last_observed: int = 2
    context_minutes: int = 60
    min_context_fraction: float = 0.75
    min_target_fraction: float = 0.75

    def describe(self) -> str:
        return (f"origin needs the last {self.last_observed} readings, >= {self.min_context_fraction:.0%} of the "
                f"last {self.context_minutes} min and >= {self.min_target_fraction:.0%} of the horizon targets "
                "present; missing targets are not scored")


@dataclass(frozen=True)
class Protocol:
    """Everything that makes two numbers on a leaderboard comparable."""

    split: SplitConfig = DEFAULT_SPLIT
    part: str = "test"
    stride_min: int = 30
    horizons_min: tuple[int, ...] = HORIZONS_MIN
    headline_min: tuple[int, ...] = HEADLINE_MIN
    context_steps: int = 288
    gap: GapRule = field(default_factory=GapRule)
    pooling: str = ("pooled over all origins of a patient, then averaged over patients "
                    "(mean with a patient-bootstrap 95% interval, and median)")

    def __post_init__(self):
        if any(h % STEP_MINUTES for h in self.horizons_min) or self.stride_min % STEP_MINUTES:
            raise ValueError("horizons and stride must be multiples of 5 minutes")

    @property
    def horizon_steps(self) -> np.ndarray:
        return np.asarray(self.horizons_min) // STEP_MINUTES

    def card(self, dataset_name: str, fingerprint: str, n_origins: int | None = None) -> dict:
        """The protocol card that travels with every result."""
        return {
            "dataset": dataset_name,
            "data_fingerprint": fingerprint,
            "split": dataclasses.asdict(self.split),
            "part": self.part,
            "stride_min": self.stride_min,
            "horizons_min": list(self.horizons_min),
            "headline_min": list(self.headline_min),
            "context_steps": self.context_steps,
            "gap_rule": {**dataclasses.asdict(self.gap), "text": self.gap.describe()},
            "pooling": self.pooling,
            "targets": ["cgm", "bg"],
            "n_origins": n_origins,
            "bgcore_version": __version__,
        }

    def key(self) -> str:
        """Short hash of the settings (without data): equal keys mean the same protocol."""
        settings = {k: v for k, v in self.card("", "").items() if k not in ("dataset", "data_fingerprint",
                                                                           "n_origins", "bgcore_version")}
        return hashlib.sha256(repr(sorted(settings.items())).encode()).hexdigest()[:12]


DEFAULT_PROTOCOL = Protocol()


@dataclass
class ContextBatch:
    """Past data for many origins at once; column ``-1`` is the origin itself.

    Attributes
    ----------
    patient_id, origin : array (n,)
    cgm, insulin, carbs : array (n, L)
        Values at ``origin - (L - 1 - k) * 5 min`` for ``k = 0 .. L-1``; NaN before a
        patient's record starts or where missing.
    """

    patient_id: np.ndarray
    origin: np.ndarray
    cgm: np.ndarray
    insulin: np.ndarray
    carbs: np.ndarray

    def __len__(self) -> int:
        return len(self.origin)

    def take(self, index) -> "ContextBatch":
        return ContextBatch(*(getattr(self, f.name)[index] for f in dataclasses.fields(self)))


def _patient_bounds(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """First and last row position of each row's patient."""
    codes = pd.factorize(frame["patient_id"])[0]
    starts = np.r_[0, np.flatnonzero(np.diff(codes)) + 1]
    ends = np.r_[starts[1:] - 1, len(codes) - 1]
    patient_index = np.cumsum(np.r_[0, np.diff(codes) != 0])
    return starts[patient_index], ends[patient_index]


def window(values: np.ndarray, rows: np.ndarray, offsets: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``values[rows + offset]`` for every row and offset, NaN outside ``[lo, hi]`` of the row's patient."""
    idx = rows[:, None] + offsets[None, :]
    inside = (idx >= lo[rows][:, None]) & (idx <= hi[rows][:, None])
    return np.where(inside, values[np.clip(idx, 0, len(values) - 1)], np.nan)


def make_origins(frame: pd.DataFrame, protocol: Protocol = DEFAULT_PROTOCOL) -> pd.DataFrame:
    """Evaluated origins: ``patient_id``, ``origin``, ``row`` (position in `frame`).

    `frame` is a canonical frame (sorted by patient, time, on the 5-minute grid).
    """
    part = assign_parts(frame, protocol.split).to_numpy()
    time = frame["time"]
    on_clock = ((time.dt.hour * 60 + time.dt.minute) % protocol.stride_min == 0).to_numpy()
    candidates = np.flatnonzero((part == protocol.part) & on_clock)
    cgm = frame["cgm"].to_numpy(dtype=float)
    lo, hi = _patient_bounds(frame)
    gap = protocol.gap
    recent = window(cgm, candidates, np.arange(-gap.last_observed + 1, 1), lo, hi)
    ctx_steps = gap.context_minutes // STEP_MINUTES
    context = window(cgm, candidates, np.arange(-ctx_steps + 1, 1), lo, hi)
    targets = window(cgm, candidates, protocol.horizon_steps, lo, hi)
    keep = (np.isfinite(recent).all(axis=1)
            & (np.isfinite(context).mean(axis=1) >= gap.min_context_fraction)
            & (np.isfinite(targets).mean(axis=1) >= gap.min_target_fraction))
    rows = candidates[keep]
    return pd.DataFrame({"patient_id": frame["patient_id"].to_numpy()[rows], "origin": time.to_numpy()[rows],
                         "row": rows})


def context_batch(frame: pd.DataFrame, rows: np.ndarray, length: int) -> ContextBatch:
    """Past windows of `length` steps ending at each origin row (never after it)."""
    lo, hi = _patient_bounds(frame)
    offsets = np.arange(-length + 1, 1)
    get = lambda col: window(frame[col].to_numpy(dtype=float), rows, offsets, lo, hi)  # noqa: E731
    return ContextBatch(patient_id=frame["patient_id"].astype(str).to_numpy()[rows],
                        origin=frame["time"].to_numpy()[rows], cgm=get("cgm"), insulin=get("insulin"),
                        carbs=get("carbs"))


def target_paths(frame: pd.DataFrame, rows: np.ndarray, steps: np.ndarray, column: str = "cgm") -> np.ndarray:
    """Truth at ``origin + steps`` (array ``(n, len(steps))``), NaN past the patient's record."""
    lo, hi = _patient_bounds(frame)
    return window(frame[column].to_numpy(dtype=float), rows, np.asarray(steps), lo, hi)
