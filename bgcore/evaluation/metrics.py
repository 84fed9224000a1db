"""Forecast metrics, vectorised over origins (and horizons), glucose in mg/dL.

Arrays are ``(n_origins, n_horizons)`` unless stated; NaN in the truth or the forecast
excludes that pair. Every metric here is unit-tested against hand-computed or
published values (tests/evaluation/test_metrics.py).
"""

from __future__ import annotations

import numpy as np

ZONES = ("A", "B", "C", "D", "E")
HYPO_THRESHOLDS = (70.0, 54.0)
HYPER_THRESHOLDS = (180.0, 250.0)


def _pairs(truth, pred):
    truth = np.asarray(truth, dtype=float)
    pred = np.asarray(pred, dtype=float)
    valid = np.isfinite(truth) & np.isfinite(pred)
    return truth, pred, valid


def _masked_mean(values, valid, axis=0):
    count = valid.sum(axis=axis)
    total = np.where(valid, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def point_metrics(truth, pred, axis=0) -> dict[str, np.ndarray]:
    """RMSE, MAE, MARD (%), bias (forecast - truth) and count along `axis` (default: per horizon)."""
    truth, pred, valid = _pairs(truth, pred)
    err = pred - truth
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.abs(err) / truth
    return {
        "n": valid.sum(axis=axis),
        "rmse": np.sqrt(_masked_mean(err ** 2, valid, axis)),
        "mae": _masked_mean(np.abs(err), valid, axis),
        "mard": 100 * _masked_mean(rel, valid, axis),
        "bias": _masked_mean(err, valid, axis),
    }


def skill(rmse, rmse_reference):
    """Skill score ``1 - RMSE / RMSE_reference`` (0 = as good as the reference, 1 = perfect)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 - np.asarray(rmse, dtype=float) / np.asarray(rmse_reference, dtype=float)


# --- error grids ----------------------------------------------------------------------

def clarke_zones(reference, predicted) -> np.ndarray:
    """Clarke error grid zone (0..4 for A..E, -1 where a value is missing) of each pair.

    Boundaries of Clarke et al., Diabetes Care 10:622-628 (1987), in the usual order
    A, E, C, D, B: A within 20 % or both below 70; E opposite hypo/hyper; C over-correction;
    D failure to detect; B the rest.
    """
    ref, pred, valid = _pairs(reference, predicted)
    zone = np.full(ref.shape, 1, dtype=np.int8)  # B
    d = (((ref >= 240) & (pred >= 70) & (pred <= 180)) | ((ref <= 175 / 3) & (pred >= 70) & (pred <= 180))
         | ((ref >= 175 / 3) & (ref <= 70) & (pred >= 6 / 5 * ref)))
    c = (((ref >= 70) & (ref <= 290) & (pred >= ref + 110))
         | ((ref >= 130) & (ref <= 180) & (pred <= 7 / 5 * ref - 182)))
    e = ((ref >= 180) & (pred <= 70)) | ((ref <= 70) & (pred >= 180))
    a = ((ref <= 70) & (pred <= 70)) | ((pred <= 1.2 * ref) & (pred >= 0.8 * ref))
    zone[d] = 3
    zone[c] = 2
    zone[e] = 4
    zone[a] = 0
    zone[~valid] = -1
    return zone


def _polyline(points, far=5000.0):
    """x, y of a boundary polyline, extended past its last vertex along its last slope."""
    x, y = (np.array(v, dtype=float) for v in zip(*points))
    slope = (y[-1] - y[-2]) / (x[-1] - x[-2])
    return np.r_[x, far], np.r_[y, y[-1] + slope * (far - x[-1])]


# Parkes (consensus) error grid for type 1 diabetes: the zone boundaries of Parkes et al.,
# Diabetes Care 23:1143-1148 (2000), with the vertex coordinates published in Pfutzner et al.,
# J Diabetes Sci Technol 7:1275-1281 (2013), Table 1 (reference on x, test on y, mg/dL).
PARKES_TYPE1_UPPER = (  # boundary above zone A|B, B|C, C|D, D|E
    ((0, 50), (30, 50), (140, 170), (280, 380), (430, 550)),
    ((0, 60), (30, 60), (50, 80), (70, 110), (260, 550)),
    ((0, 100), (25, 100), (50, 125), (80, 215), (125, 550)),
    ((0, 150), (35, 155), (50, 550)),
)
PARKES_TYPE1_LOWER = (  # boundary below zone A|B, B|C, C|D; each starts with a vertical segment
    ((50, 0), (50, 30), (170, 145), (385, 300), (550, 450)),
    ((120, 0), (120, 30), (260, 130), (550, 250)),
    ((250, 0), (250, 40), (550, 150)),
)


def parkes_zones(reference, predicted) -> np.ndarray:
    """Parkes (consensus) error grid zone for type 1 diabetes (0..4 for A..E, -1 if missing).

    A pair is in the outermost zone whose boundary it lies beyond: above an upper line
    (``test > f(ref)``) or below a lower line (``test < g(ref)``, only right of the line's
    vertical first segment). Points on a line count to the inner zone.
    """
    ref, pred, valid = _pairs(reference, predicted)
    zone = np.zeros(ref.shape, dtype=np.int8)
    for level, points in enumerate(PARKES_TYPE1_UPPER, start=1):
        x, y = _polyline(points)
        zone = np.where(pred > np.interp(ref, x, y), np.maximum(zone, level), zone)
    for level, points in enumerate(PARKES_TYPE1_LOWER, start=1):
        x, y = _polyline(points[1:])
        below = (ref > points[0][0]) & (pred < np.interp(ref, x, y))
        zone = np.where(below, np.maximum(zone, level), zone)
    zone[~valid] = -1
    return zone


def zone_percentages(zones, axis=0) -> np.ndarray:
    """Percent of pairs in each zone A..E along `axis` (last dimension of the result is the zone)."""
    zones = np.asarray(zones)
    counts = np.stack([(zones == k).sum(axis=axis) for k in range(5)], axis=-1).astype(float)
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 100 * counts / total, np.nan)


# --- time lag -------------------------------------------------------------------------

def time_lag(forecast, truth_path, horizon_steps: int, step_minutes: int = 5) -> float:
    """Delay (minutes) that best aligns forecasts with the truth, by maximal cross-correlation.

    Parameters
    ----------
    forecast : array (n,)
        Forecasts made at n origins for ``origin + horizon``.
    truth_path : array (n, horizon_steps + 1)
        Truth at ``origin + k`` steps, ``k = 0 .. horizon_steps``.

    Returns
    -------
    float
        The shift ``s`` (0 .. horizon) maximising corr(forecast, truth at origin + horizon - s):
        0 for a perfect forecast, the horizon for persistence.
    """
    forecast = np.asarray(forecast, dtype=float)
    truth_path = np.asarray(truth_path, dtype=float)
    shifted = truth_path[:, ::-1]  # column s = truth at origin + horizon - s
    valid = np.isfinite(forecast)[:, None] & np.isfinite(shifted)
    f = np.where(valid, forecast[:, None], 0.0)
    t = np.where(valid, shifted, 0.0)
    n = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        fm, tm = f.sum(0) / n, t.sum(0) / n
        cov = (f * t).sum(0) / n - fm * tm
        sd = np.sqrt(np.maximum((f ** 2).sum(0) / n - fm ** 2, 0) * np.maximum((t ** 2).sum(0) / n - tm ** 2, 0))
        corr = np.where((n > 2) & (sd > 0), cov / sd, -np.inf)
    if not np.isfinite(corr).any():
        return float("nan")
    return float(np.argmax(corr) * step_minutes)


# --- events ---------------------------------------------------------------------------

def event_metrics(truth_path, pred_path, threshold: float, below: bool, days: float,
                  step_minutes: int = 5, current=None) -> dict[str, float]:
    """Detection of an event (glucose below or above `threshold`) within the forecast horizon.

    Parameters
    ----------
    truth_path, pred_path : array (n, H)
        Truth and forecast at ``origin + 1 .. H`` steps.
    threshold : float
        mg/dL; ``below=True`` for hypoglycaemia (< threshold), False for hyperglycaemia (> threshold).
    days : float
        Days covered by the origins (for false alarms per day).
    current : array (n,), optional
        Reading at the origin; origins already in the event are left out (nothing to predict).

    Returns
    -------
    dict
        tp, fp, fn, tn, sensitivity, precision, f1, mcc, false_alarms_per_day and
        median_lead_min (origin to the first true crossing, over true positives).
    """
    truth_path = np.asarray(truth_path, dtype=float)
    pred_path = np.asarray(pred_path, dtype=float)
    hit = (lambda v: v < threshold) if below else (lambda v: v > threshold)
    keep = np.isfinite(truth_path).any(axis=1)
    if current is not None:
        current = np.asarray(current, dtype=float)
        keep &= ~hit(current)
    truth_event = hit(truth_path) & np.isfinite(truth_path)
    actual = truth_event.any(axis=1)[keep]
    predicted = (hit(pred_path) & np.isfinite(pred_path)).any(axis=1)[keep]
    tp = float(np.sum(actual & predicted))
    fp = float(np.sum(~actual & predicted))
    fn = float(np.sum(actual & ~predicted))
    tn = float(np.sum(~actual & ~predicted))
    with np.errstate(invalid="ignore", divide="ignore"):
        sensitivity = tp / (tp + fn) if tp + fn else np.nan
        precision = tp / (tp + fp) if tp + fp else np.nan
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else np.nan
        denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        mcc = (tp * tn - fp * fn) / denom if denom else np.nan
    first = np.argmax(truth_event[keep], axis=1)
    leads = (first[actual & predicted] + 1) * step_minutes
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "sensitivity": sensitivity, "precision": precision, "f1": f1,
            "mcc": mcc, "false_alarms_per_day": fp / days if days > 0 else np.nan,
            "median_lead_min": float(np.median(leads)) if leads.size else np.nan}


# --- probabilistic --------------------------------------------------------------------

def pinball_elements(truth, quantiles, levels) -> np.ndarray:
    """Pinball loss of every forecast quantile: ``truth`` (...), ``quantiles`` (..., Q) -> (..., Q)."""
    truth = np.asarray(truth, dtype=float)[..., None]
    diff = truth - np.asarray(quantiles, dtype=float)
    levels = np.asarray(levels, dtype=float)
    return np.maximum(levels * diff, (levels - 1) * diff)


def pinball_loss(truth, quantiles, levels) -> np.ndarray:
    """Mean pinball loss per quantile level (truth ``(n,)``, quantiles ``(n, Q)``)."""
    loss = pinball_elements(truth, quantiles, levels)
    return _masked_mean(loss, np.isfinite(loss), axis=0)


def crps_from_quantiles(truth, quantiles, levels) -> float:
    """CRPS approximated as twice the mean pinball loss over (evenly spread) quantile levels."""
    return float(2 * np.nanmean(pinball_loss(truth, quantiles, levels)))


def interval_scores(truth, quantiles, levels, coverages=(0.5, 0.8, 0.95)) -> dict[float, dict[str, float]]:
    """Empirical coverage and mean width of central intervals whose quantiles are available."""
    truth = np.asarray(truth, dtype=float)
    quantiles = np.asarray(quantiles, dtype=float)
    levels = np.round(np.asarray(levels, dtype=float), 6)
    out = {}
    for c in coverages:
        lo, hi = round((1 - c) / 2, 6), round(1 - (1 - c) / 2, 6)
        if lo in levels and hi in levels:
            low = quantiles[:, list(levels).index(lo)]
            high = quantiles[:, list(levels).index(hi)]
            ok = np.isfinite(truth) & np.isfinite(low) & np.isfinite(high)
            out[c] = {"coverage": float(np.mean((truth[ok] >= low[ok]) & (truth[ok] <= high[ok]))) if ok.any() else np.nan,
                      "width": float(np.mean(high[ok] - low[ok])) if ok.any() else np.nan}
    return out


def pit_values(truth, quantiles, levels) -> np.ndarray:
    """Probability integral transform of each truth under the forecast (quantiles interpolated).

    Truth below the lowest or above the highest quantile maps to 0 or 1.
    """
    truth = np.asarray(truth, dtype=float)
    q = np.sort(np.asarray(quantiles, dtype=float), axis=1)
    levels = np.asarray(levels, dtype=float)
    below = (q <= truth[:, None]).sum(axis=1)  # how many quantiles lie at or below the truth
    idx = np.clip(below, 1, len(levels) - 1)
    rows = np.arange(len(truth))
    q0, q1 = q[rows, idx - 1], q[rows, idx]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.clip(np.where(q1 > q0, (truth - q0) / (q1 - q0), 0.5), 0, 1)
    pit = levels[idx - 1] + frac * (levels[idx] - levels[idx - 1])
    pit = np.where(below == 0, 0.0, np.where(below == len(levels), 1.0, pit))
    return np.where(np.isfinite(truth) & np.isfinite(q).all(axis=1), pit, np.nan)


def pit_histogram(pit, bins: int = 10) -> np.ndarray:
    """Counts of PIT values in `bins` equal bins on [0, 1] (flat for a calibrated forecast)."""
    pit = np.asarray(pit, dtype=float)
    return np.histogram(pit[np.isfinite(pit)], bins=bins, range=(0, 1))[0]
