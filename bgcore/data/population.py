"""The pretraining population: many virtual patients that are none of the embedded cohort's.

The diabetes foundation model (DFM) must never see the test part of a patient it is
scored on. Its corpus is therefore a separate population: each virtual patient takes one
of the 30 UVA/Padova parameter sets, multiplies its insulin sensitivity, liver insulin
action, meal absorption, insulin absorption and sensor kinetics by random factors
(log-normal, clipped to +/-35 %), scales its meals, and lives its own days (its own seed
stream: master seed 2026, variants from 1000), so neither the physiology nor the meals,
behaviour or sensor noise of any cohort patient recur. The first simulated day (the
patient settling into its perturbed steady state) is dropped.

The train parts of imported real datasets can be added (`corpus`), never their
validation or test parts. Corpora are cached under ``cache/corpus`` by their settings.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
import pandas as pd

from ..paths import cache_root
from .schema import STEP
from .simulate import DEFAULT_START, SUBJECTS, simulate_patient
from .splits import SplitConfig, temporal_split

POPULATION_SEED = 2026
FIRST_VARIANT = 1000
PERTURBED = ("Vmx", "kp3", "kabs", "kmax", "kmin", "ka1", "ka2", "ksc")
LOG_SD = 0.15
MAX_CHANGE = 0.35
MEAL_LOG_SD = 0.2
SETTLE_DAYS = 1


def population_specs(n_patients: int, seed: int = POPULATION_SEED) -> list[dict]:
    """The virtual patients of a population: subject, variant, parameter factors, meal factor."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    specs = []
    for i in range(n_patients):
        factors = np.clip(np.exp(rng.normal(0.0, LOG_SD, len(PERTURBED))), 1 - MAX_CHANGE, 1 + MAX_CHANGE)
        specs.append({"patient_id": f"pop{i:04d}", "subject": SUBJECTS[i % len(SUBJECTS)],
                      "variant": FIRST_VARIANT + i, "physiology": dict(zip(PERTURBED, np.round(factors, 4))),
                      "meal_factor": float(np.round(np.clip(np.exp(rng.normal(0, MEAL_LOG_SD)), 0.6, 1.5), 4))})
    return specs


def _simulate(args):
    spec, days, seed = args
    frame = simulate_patient(spec["subject"], days + SETTLE_DAYS, seed=seed, variant=spec["variant"],
                             physiology=spec["physiology"], meal_factor=spec["meal_factor"],
                             patient_id=spec["patient_id"])
    settled = frame["time"] >= DEFAULT_START + SETTLE_DAYS * 288 * STEP
    return frame[settled].reset_index(drop=True)


def simulate_population(n_patients: int = 100, days: int = 14, seed: int = POPULATION_SEED, workers: int = 2,
                        progress=None, cancel=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate the pretraining population.

    Returns
    -------
    frame, patients
        Canonical long frame (``patient_id, time, cgm, carbs, insulin, bg``) and one row per
        patient with its subject and parameter factors.
    """
    specs = population_specs(n_patients, seed)
    tasks = [(spec, days, seed) for spec in specs]
    parts = {}

    def record(frame):
        parts[frame["patient_id"].iloc[0]] = frame
        if progress is not None:
            progress(len(parts) / len(tasks), f"simulated {len(parts)}/{len(tasks)} patients")
        if cancel is not None and cancel():
            raise InterruptedError("simulation cancelled")

    if workers <= 1:
        for task in tasks:
            record(_simulate(task))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_simulate, t) for t in tasks]
            try:
                for fut in as_completed(futures):
                    record(fut.result())
            except InterruptedError:
                for fut in futures:
                    fut.cancel()
                raise
    ids = [s["patient_id"] for s in specs]
    frame = pd.concat([parts[i] for i in ids], ignore_index=True)
    frame["patient_id"] = pd.Categorical(frame["patient_id"], categories=ids)
    patients = pd.DataFrame([{"patient_id": s["patient_id"], "subject": s["subject"], "meal_factor": s["meal_factor"],
                              **{f"factor_{k}": v for k, v in s["physiology"].items()}} for s in specs])
    return frame, patients


def corpus(n_patients: int = 100, days: int = 14, seed: int = POPULATION_SEED, datasets=(), workers: int = 2,
           progress=None, cancel=None) -> tuple[pd.DataFrame, dict]:
    """The DFM pretraining corpus (cached): the virtual population plus train parts of `datasets`.

    Returns
    -------
    frame, card
        ``patient_id, time, cgm, carbs, insulin`` and a description of what is in it.
    """
    from .datasets import load_dataset
    settings = {"n_patients": n_patients, "days": days, "seed": seed, "datasets": sorted(datasets),
                "perturbed": list(PERTURBED), "log_sd": LOG_SD, "version": 1}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    folder = cache_root() / "corpus"
    path, card_path = folder / f"corpus-{key}.parquet", folder / f"corpus-{key}.json"
    if path.is_file() and card_path.is_file():
        return pd.read_parquet(path), json.loads(card_path.read_text())
    frame, _ = simulate_population(n_patients, days, seed, workers, progress, cancel)
    frames = [frame[["patient_id", "time", "cgm", "carbs", "insulin"]].astype({"patient_id": str})]
    sources = [f"{n_patients} perturbed UVA/Padova virtual patients x {days} days (seed {seed})"]
    for name in sorted(datasets):
        data = load_dataset(name)
        train = temporal_split(data.frame, SplitConfig())["train"]
        part = train.reindex(columns=["patient_id", "time", "cgm", "carbs", "insulin"])
        part["patient_id"] = f"{name}." + part["patient_id"].astype(str)
        frames.append(part.fillna({"carbs": 0.0, "insulin": 0.0}))
        sources.append(f"dataset {name}: train parts of {part['patient_id'].nunique()} patients")
    frame = pd.concat(frames, ignore_index=True)
    card = {"key": key, "settings": settings, "sources": sources, "patients": int(frame["patient_id"].nunique()),
            "readings": int(frame["cgm"].notna().sum())}
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.rename(path)
    card_path.write_text(json.dumps(card, indent=2))
    return frame, card
