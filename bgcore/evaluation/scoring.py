"""Scores per patient (and horizon) from a tidy forecasts frame, vectorised.

Sums over origins are taken with `numpy.bincount` on a (patient, horizon) key, so scoring
a million forecasts costs a few array passes, not a Python loop per forecast. The grouped
formulas are those of the per-array functions in `metrics`, and a test checks they agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import metrics
from .backtest import quantile_columns

EVENTS = (("hypo<70", 70.0, True), ("hypo<54", 54.0, True), ("hyper>180", 180.0, False), ("hyper>250", 250.0, False))
EVENT_WINDOWS_MIN = (30, 60, 120)
ZONE_NAMES = metrics.ZONES


@dataclass
class Paths:
    """A forecasts frame reshaped to ``(n_origins, n_horizons)`` arrays."""

    patients: list[str]
    codes: np.ndarray          # (n,) patient index of each origin
    origin: np.ndarray         # (n,)
    horizons: np.ndarray       # (H,) minutes
    frame: pd.DataFrame

    def __getitem__(self, column: str) -> np.ndarray:
        return self.frame[column].to_numpy(dtype=float).reshape(len(self.origin), len(self.horizons))

    def origin_value(self, target: str) -> np.ndarray:
        """Truth at the origin itself (``cgm_origin`` / ``bg_origin``), shape (n,)."""
        return self[f"{target}_origin"][:, 0]


def as_paths(forecasts: pd.DataFrame) -> Paths:
    """Check the frame is complete and sorted (patient, origin, horizon) and view it as arrays."""
    horizons = np.sort(forecasts["horizon"].unique())
    H = len(horizons)
    if len(forecasts) % H or not (forecasts["horizon"].to_numpy().reshape(-1, H) == horizons).all():
        raise ValueError("forecasts must be sorted by patient, origin, horizon with every horizon for every origin")
    first = forecasts.iloc[::H]
    codes, patients = pd.factorize(first["patient_id"].astype(str), sort=True)
    return Paths(list(patients), codes, first["origin"].to_numpy(), horizons, forecasts)


def _key(paths: Paths) -> np.ndarray:
    H = len(paths.horizons)
    return paths.codes[:, None] * H + np.arange(H)[None, :]


def _group_sums(key, valid, size, **values) -> dict[str, np.ndarray]:
    k = key[valid]
    out = {"n": np.bincount(k, minlength=size).astype(float)}
    for name, v in values.items():
        out[name] = np.bincount(k, weights=v[valid], minlength=size)
    return out


def _ratio(a, b):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def score_patients(forecasts: pd.DataFrame, target: str = "cgm") -> pd.DataFrame:
    """Point, error-grid and lag scores per patient and horizon.

    Columns: ``patient_id, horizon, n, rmse, mae, mard, bias, rmse_persistence, skill,
    clarke_A..E, parkes_A..E`` (percent of pairs) and ``time_lag_min``. Persistence (the
    CGM reading at the origin, what a forecaster sees) is scored on exactly the same pairs.
    """
    p = as_paths(forecasts)
    truth, pred = p[target], p["pred"]
    last = p["cgm_origin"][:, :1]
    H, P = len(p.horizons), len(p.patients)
    key, size = _key(p), P * H
    valid = np.isfinite(truth) & np.isfinite(pred) & np.isfinite(last)
    err, base = pred - truth, last - truth
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.abs(err) / truth
    s = _group_sums(key, valid, size, se=err ** 2, ae=np.abs(err), re=rel, e=err, be=base ** 2)
    out = pd.DataFrame({
        "patient_id": np.repeat(p.patients, H), "horizon": np.tile(p.horizons, P), "n": s["n"].astype(int),
        "rmse": np.sqrt(_ratio(s["se"], s["n"])), "mae": _ratio(s["ae"], s["n"]),
        "mard": 100 * _ratio(s["re"], s["n"]), "bias": _ratio(s["e"], s["n"]),
        "rmse_persistence": np.sqrt(_ratio(s["be"], s["n"])),
    })
    out["skill"] = metrics.skill(out["rmse"], out["rmse_persistence"])
    for grid, zones_fn in (("clarke", metrics.clarke_zones), ("parkes", metrics.parkes_zones)):
        zones = zones_fn(truth, pred)
        ok = valid & (zones >= 0)
        counts = np.bincount((key * 5 + zones)[ok], minlength=size * 5).reshape(size, 5)
        pct = 100 * counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        for z, name in enumerate(ZONE_NAMES):
            out[f"{grid}_{name}"] = np.where(s["n"] > 0, pct[:, z], np.nan)
    out["time_lag_min"] = _time_lags(p, truth, pred, p.origin_value(target))
    return out


def _time_lags(p: Paths, truth, pred, last) -> np.ndarray:
    """Per patient and horizon: the shift maximising corr(forecast, truth shifted back).

    Origins are sorted by patient, so per-patient sums are `numpy.add.reduceat` over
    contiguous blocks, for all shifts of a horizon at once.
    """
    H, P = len(p.horizons), len(p.patients)
    step = int(np.diff(p.horizons).min()) if H > 1 else int(p.horizons[0])
    offsets = np.arange(0, int(p.horizons.max()) + 1, step)
    truth_at = np.full((len(last), len(offsets)), np.nan)  # column k: truth at origin + k steps
    truth_at[:, 0] = last
    truth_at[:, (p.horizons // step).astype(int)] = truth
    starts = np.r_[0, np.flatnonzero(np.diff(p.codes)) + 1]
    present = p.codes[starts]
    lags = np.full((P, H), np.nan)
    for j, h in enumerate(p.horizons):
        k = int(h) // step
        t = truth_at[:, k::-1]  # column s: truth at origin + h - s steps
        shifts = np.arange(k + 1) * step
        f = pred[:, j][:, None]
        ok = np.isfinite(f) & np.isfinite(t)
        f0, t0 = np.where(ok, f, 0.0), np.where(ok, t, 0.0)
        n, sf, st, sff, stt, sft = (np.add.reduceat(v, starts, axis=0)
                                    for v in (ok.astype(float), f0, t0, f0 * f0, t0 * t0, f0 * t0))
        with np.errstate(invalid="ignore", divide="ignore"):
            cov = sft / n - sf * st / n ** 2
            var = (sff / n - (sf / n) ** 2) * (stt / n - (st / n) ** 2)
            corr = np.where((n > 2) & (var > 0), cov / np.sqrt(np.maximum(var, 1e-300)), -np.inf)
        best = np.argmax(corr, axis=1)
        found = np.isfinite(corr[np.arange(len(starts)), best])
        lags[present, j] = np.where(found, shifts[best], np.nan)
    return lags.ravel()


def score_events(forecasts: pd.DataFrame, target: str = "cgm", stride_min: int = 30,
                 windows=EVENT_WINDOWS_MIN) -> pd.DataFrame:
    """Hypo/hyper detection within the next `windows` minutes, per patient (see `metrics.event_metrics`)."""
    p = as_paths(forecasts)
    truth, pred, last = p[target], p["pred"], p.origin_value(target)
    rows = []
    for code, pid in enumerate(p.patients):
        mine = p.codes == code
        days = mine.sum() * stride_min / 1440
        for window in windows:
            cols = p.horizons <= window
            for name, threshold, below in EVENTS:
                m = metrics.event_metrics(truth[mine][:, cols], pred[mine][:, cols], threshold, below, days,
                                          step_minutes=int(p.horizons[0]), current=last[mine])
                rows.append({"patient_id": pid, "event": name, "window_min": window, **m})
    return pd.DataFrame(rows)


def score_probabilistic(forecasts: pd.DataFrame, target: str = "cgm",
                        coverages=(0.5, 0.8, 0.95)) -> pd.DataFrame:
    """CRPS (from quantiles), interval coverage and width per patient and horizon; empty without quantiles."""
    cols, levels = quantile_columns(forecasts)
    if not cols:
        return pd.DataFrame()
    p = as_paths(forecasts)
    truth = p[target]
    q = np.stack([p[c] for c in cols], axis=-1)
    H, P = len(p.horizons), len(p.patients)
    key, size = _key(p), P * H
    valid = np.isfinite(truth) & np.isfinite(q).all(axis=-1)
    loss = metrics.pinball_elements(truth, q, levels).mean(axis=-1)
    s = _group_sums(key, valid, size, loss=loss)
    out = pd.DataFrame({"patient_id": np.repeat(p.patients, H), "horizon": np.tile(p.horizons, P),
                        "n": s["n"].astype(int), "crps": 2 * _ratio(s["loss"], s["n"])})
    rounded = list(np.round(levels, 6))
    for c in coverages:
        lo, hi = round((1 - c) / 2, 6), round(1 - (1 - c) / 2, 6)
        if lo in rounded and hi in rounded:
            low, high = q[..., rounded.index(lo)], q[..., rounded.index(hi)]
            g = _group_sums(key, valid, size, inside=((truth >= low) & (truth <= high)).astype(float),
                            width=high - low)
            out[f"coverage_{int(c * 100)}"] = _ratio(g["inside"], g["n"])
            out[f"width_{int(c * 100)}"] = _ratio(g["width"], g["n"])
    return out


def pit_table(forecasts: pd.DataFrame, target: str = "cgm", bins: int = 10) -> pd.DataFrame:
    """PIT histogram counts per horizon (rows) and bin (columns ``bin0`` ...), all patients pooled."""
    cols, levels = quantile_columns(forecasts)
    if not cols:
        return pd.DataFrame()
    p = as_paths(forecasts)
    H = len(p.horizons)
    truth, q = p[target], np.stack([p[c] for c in cols], axis=-1)
    pit = metrics.pit_values(truth.ravel(), q.reshape(-1, len(cols)), levels).reshape(truth.shape)
    ok = np.isfinite(pit)
    which = np.minimum((pit[ok] * bins).astype(int), bins - 1)
    horizon = np.broadcast_to(np.arange(H), pit.shape)[ok]
    counts = np.bincount(horizon * bins + which, minlength=H * bins).reshape(H, bins)
    return pd.DataFrame(counts, index=pd.Index(p.horizons.astype(int), name="horizon"),
                        columns=[f"bin{b}" for b in range(bins)])
