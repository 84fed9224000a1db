"""Leaderboards from stored per-origin forecasts: per patient, per run, per family, per goal.

`run_scores`, `leaderboard`, `best_per_family` and `compare_goals` are pure functions over
frames; `build_leaderboard` gathers the stored runs of a dataset (adding the reference
rows when none are stored) and is what the CLI and the dashboard call.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.dataset import Dataset
from ..data.schema import convert_glucose
from .protocol import DEFAULT_PROTOCOL, Protocol
from .reference import REFERENCES
from .scoring import score_patients

N_BOOT = 1000
GOALS = ("single", "multi", "finetune")
GLUCOSE_COLUMNS = ("rmse", "rmse_lo", "rmse_hi", "rmse_median", "mae", "bias")
"""Board columns in mg/dL (differences of glucose: they convert like glucose)."""


def in_units(board: pd.DataFrame, units: str, columns=None) -> pd.DataFrame:
    """A copy of `board` with its glucose columns (default `GLUCOSE_COLUMNS`) in `units` (mg/dL or mmol/L)."""
    out = board.copy()
    for col in (GLUCOSE_COLUMNS if columns is None else columns):
        if col in out:
            out[col] = convert_glucose(out[col], units)
    return out


def bootstrap_ci(values, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (NaN ignored), vectorised."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    if values.size == 1:
        return float(values[0]), float(values[0])
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def run_scores(forecasts_by_run: dict[str, pd.DataFrame], target: str = "cgm") -> pd.DataFrame:
    """`score_patients` of every run, stacked with a ``run_id`` column."""
    parts = [score_patients(f, target).assign(run_id=run_id) for run_id, f in forecasts_by_run.items()]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def leaderboard(scores: pd.DataFrame, runs: list[dict], horizon: int = 30, n_boot: int = N_BOOT,
                seed: int = 0) -> pd.DataFrame:
    """One row per run at `horizon`: patient-level means (bootstrap 95 % CI), medians, zones, skill.

    Rows are sorted by mean RMSE; ``rank`` starts at 1.
    """
    meta = pd.DataFrame(runs)[["run_id", "model", "family", "goal", "created"]] if runs else pd.DataFrame()
    at = scores[(scores["horizon"] == horizon) & (scores["n"] > 0)]
    rows = []
    for run_id, g in at.groupby("run_id", sort=False):
        lo, hi = bootstrap_ci(g["rmse"], n_boot, seed)
        slo, shi = bootstrap_ci(g["skill"], n_boot, seed)
        rows.append({"run_id": run_id, "patients": len(g), "pairs": int(g["n"].sum()),
                     "rmse": g["rmse"].mean(), "rmse_lo": lo, "rmse_hi": hi, "rmse_median": g["rmse"].median(),
                     "mae": g["mae"].mean(), "mard": g["mard"].mean(), "bias": g["bias"].mean(),
                     "skill": g["skill"].mean(), "skill_lo": slo, "skill_hi": shi,
                     "clarke_A": g["clarke_A"].mean(), "clarke_AB": (g["clarke_A"] + g["clarke_B"]).mean(),
                     "parkes_A": g["parkes_A"].mean(), "parkes_AB": (g["parkes_A"] + g["parkes_B"]).mean(),
                     "time_lag_min": g["time_lag_min"].mean()})
    board = pd.DataFrame(rows)
    if board.empty:
        return board
    board = meta.merge(board, on="run_id", how="right").sort_values("rmse", ignore_index=True)
    board.insert(0, "rank", np.arange(1, len(board) + 1))
    board.insert(board.columns.get_loc("patients"), "horizon", horizon)
    return board


def best_per_family(board: pd.DataFrame) -> pd.DataFrame:
    """The best run (lowest mean RMSE) of each family."""
    if board.empty:
        return board
    return board.sort_values("rmse").groupby("family", sort=False).head(1).reset_index(drop=True)


def _per_patient_rmse(joined: pd.DataFrame, pred: str, target: str) -> pd.Series:
    err2 = (joined[pred] - joined[target]) ** 2
    return np.sqrt(err2.groupby(joined["patient_id"], observed=True).mean())


def compare_goals(forecasts_by_run: dict[str, pd.DataFrame], runs: list[dict], family: str, horizon: int = 30,
                  target: str = "cgm", n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Paired comparison of training goals of one family on the same patients and origins.

    For each pair of goals (the latest run of each), forecasts are joined on patient,
    origin and horizon where both are scored; the per-patient RMSE difference (second
    minus first goal; negative means the second is better) is averaged over patients with
    a bootstrap 95 % interval.
    """
    latest = {}
    for r in sorted((r for r in runs if r["family"] == family and r["goal"] in GOALS), key=lambda r: r["created"]):
        latest[r["goal"]] = r["run_id"]
    rows = []
    goals = [g for g in GOALS if g in latest]
    for i, a in enumerate(goals):
        for b in goals[i + 1:]:
            fa = forecasts_by_run[latest[a]]
            fb = forecasts_by_run[latest[b]]
            fa, fb = fa[fa["horizon"] == horizon], fb[fb["horizon"] == horizon]
            keys = ["patient_id", "origin", "horizon"]
            joined = fa[keys + ["pred", target]].merge(fb[keys + ["pred"]], on=keys, suffixes=("_a", "_b"))
            joined = joined[joined[["pred_a", "pred_b", target]].notna().all(axis=1)]
            ra = _per_patient_rmse(joined, "pred_a", target)
            rb = _per_patient_rmse(joined, "pred_b", target)
            diff = (rb - ra).dropna()
            lo, hi = bootstrap_ci(diff, n_boot, seed)
            rows.append({"family": family, "horizon": horizon, "goal_a": a, "goal_b": b, "run_a": latest[a],
                         "run_b": latest[b], "patients": len(diff), "pairs": len(joined),
                         "rmse_a": ra.mean(), "rmse_b": rb.mean(), "difference": diff.mean(),
                         "difference_lo": lo, "difference_hi": hi})
    return pd.DataFrame(rows)


def build_leaderboard(dataset: Dataset, horizon: int = 30, target: str = "cgm",
                      protocol: Protocol = DEFAULT_PROTOCOL) -> dict:
    """The leaderboard of a dataset from its stored runs, always with the reference rows.

    Runs scored on other data (fingerprint) or another protocol are left out and counted.
    Reference forecasters not stored yet (``python -m bgcore baseline``) are computed on
    the fly, not stored.

    Returns
    -------
    dict
        ``board`` (DataFrame), ``families`` (best per family), ``runs`` (records used),
        ``scores`` (per patient x run x horizon), ``excluded`` (count) and ``card``.
    """
    from ..store import list_runs, load_forecasts
    from .backtest import reference_backtests

    if horizon not in protocol.horizons_min:
        raise ValueError(f"horizon must be one of {protocol.horizons_min}, got {horizon}")
    if target == "bg" and "bg" not in dataset.frame:
        raise ValueError(f"dataset {dataset.name!r} has no true glucose; use target 'cgm'")
    fingerprint = dataset.fingerprint
    stored = list_runs(dataset.name)
    runs = [r for r in stored if r["data_fingerprint"] == fingerprint and r["protocol_key"] == protocol.key()]
    forecasts = {r["run_id"]: load_forecasts(r["run_id"]) for r in runs}
    present = {r["model"] for r in runs if r["family"] == "reference"}
    card = runs[0]["card"] if runs else None
    missing = [name for name in REFERENCES if name not in present]
    for name, (frame, ref_card) in (reference_backtests(dataset, protocol).items() if missing else []):
        if name not in missing:
            continue
        run_id = f"unsaved-{name}"
        runs.append({"run_id": run_id, "model": name, "family": "reference", "goal": "reference", "created": "",
                     "card": ref_card})
        forecasts[run_id] = frame
        card = card or ref_card
    scores = run_scores(forecasts, target)
    board = leaderboard(scores, runs, horizon)
    return {"board": board, "families": best_per_family(board), "runs": runs, "scores": scores,
            "excluded": len(stored) - sum(not r["run_id"].startswith("unsaved-") for r in runs), "card": card}


def board_view(result: dict, patients: pd.DataFrame, horizon: int = 30, goals=(), families=(),
               group: str | None = None) -> pd.DataFrame:
    """The leaderboard of `build_leaderboard` narrowed to goals, families and one patient group.

    Narrowing by patient group re-scores every run on that group's patients only (means and
    bootstrap intervals over those patients), so rows stay comparable.
    """
    scores = result["scores"]
    if scores.empty:
        return pd.DataFrame()
    if group:
        ids = set(patients.loc[patients["age_group"] == group, "patient_id"].astype(str))
        scores = scores[scores["patient_id"].astype(str).isin(ids)]
    runs = [r for r in result["runs"] if (not goals or r["goal"] in goals or r["family"] == "reference")
            and (not families or r["family"] in families or r["family"] == "reference")]
    keep = {r["run_id"] for r in runs}
    board = leaderboard(scores[scores["run_id"].isin(keep)], runs, horizon)
    if not board.empty:
        board["rank"] = np.arange(1, len(board) + 1)
    return board


def horizon_curves(result: dict, run_ids) -> pd.DataFrame:
    """Mean RMSE over patients at every horizon for the chosen runs: ``run_id, model, goal, horizon, rmse``."""
    scores = result["scores"]
    meta = {r["run_id"]: r for r in result["runs"]}
    chosen = scores[scores["run_id"].isin(list(run_ids)) & (scores["n"] > 0)]
    curves = chosen.groupby(["run_id", "horizon"], as_index=False)["rmse"].mean()
    curves["model"] = curves["run_id"].map(lambda r: meta[r]["model"])
    curves["goal"] = curves["run_id"].map(lambda r: meta[r]["goal"])
    return curves[["run_id", "model", "goal", "horizon", "rmse"]]


def goal_comparisons(result: dict, horizon: int = 30, target: str = "cgm") -> pd.DataFrame:
    """`compare_goals` for every family that has runs under two or more training goals."""
    from ..store import load_forecasts
    by_family: dict[str, set] = {}
    for r in result["runs"]:
        if r["goal"] in GOALS:
            by_family.setdefault(r["family"], set()).add(r["goal"])
    tables = []
    for family, goals in sorted(by_family.items()):
        if len(goals) < 2:
            continue
        runs = [r for r in result["runs"] if r["family"] == family]
        forecasts = {r["run_id"]: load_forecasts(r["run_id"]) for r in runs if r["goal"] in GOALS}
        tables.append(compare_goals(forecasts, runs, family, horizon, target))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def patient_scores(result: dict, run_id: str, horizon: int = 30) -> pd.DataFrame:
    """One run's per-patient scores at `horizon` (patient_id, rmse, mae, skill, clarke_A, n), worst first."""
    scores = result["scores"]
    mine = scores[(scores["run_id"] == run_id) & (scores["horizon"] == horizon)]
    return mine[["patient_id", "rmse", "mae", "skill", "clarke_A", "n"]].sort_values("rmse", ascending=False,
                                                                                      ignore_index=True)
