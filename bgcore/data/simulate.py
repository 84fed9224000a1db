"""Virtual patients from the UVA/Padova T1D simulator (simglucose), with realistic behaviour.

Each simulated patient lives a few weeks of ordinary life: three meals and random snacks
a day (later at weekends), carb counting with errors, some missed or late boluses,
unannounced snacks, correction boluses for highs and carbs for hypos, all under a
basal-bolus therapy derived from the subject's own parameters and tuned per age group.
CGM is a GuardianRT-like sensor (simglucose's Johnson-noise model) every 5 minutes,
rounded to whole mg/dL and clipped to the 40-400 mg/dL sensor range, with the gaps real
sensors have (a 2-hour warm-up at each 10-day sensor change, random signal losses of
10 minutes to 4 hours); the true plasma glucose is kept as ``bg`` without gaps.

The ``carbs`` column holds what the patient *logged* (their estimate, at the time they
entered it), not what they ate: unannounced snacks and half the hypo treatments are not
logged, as in real pump data. ``insulin`` is every unit delivered (basal + bolus).

Speed: simglucose reads patient parameters through pandas inside its ODE right-hand side;
passing them as plain floats (a SimpleNamespace) with an explicit initial state gives
identical output about 6-10x faster. Patients run in parallel processes.
"""

from __future__ import annotations

import importlib.metadata
import math
import time as _time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace
from typing import Callable

import numpy as np
import pandas as pd

from .schema import SENSOR_MAX_MGDL, SENSOR_MIN_MGDL, STEP, STEP_MINUTES

GROUPS = ("child", "adolescent", "adult")
SUBJECTS = tuple(f"{g}#{i:03d}" for g in GROUPS for i in range(1, 11))
SENSOR = "GuardianRT"
DEFAULT_START = pd.Timestamp("2026-01-05 00:00")  # a Monday


@dataclass(frozen=True)
class Behaviour:
    """Eating and therapy habits of one age group (amounts relative to an adult's meals).

    Attributes
    ----------
    meal_scale : float
        Carbohydrate amounts relative to the adult plan.
    basal_scale, bolus_scale : float
        Multipliers on the steady-state basal rate and on the carb/correction bolus.
    target : float
        Correction target, mg/dL.
    rescue_g : float
        Carbs eaten for a hypo (CGM < 70 mg/dL).
    """

    meal_scale: float
    basal_scale: float
    bolus_scale: float
    target: float
    rescue_g: float


# Tuned so that every group spends most time in range and children are not driven into
# severe hypoglycaemia by their (aggressive) default carb ratios; see tests/data/test_simulate.py.
BEHAVIOUR = {
    "child": Behaviour(meal_scale=0.6, basal_scale=0.85, bolus_scale=0.75, target=140, rescue_g=10),
    "adolescent": Behaviour(meal_scale=0.9, basal_scale=0.95, bolus_scale=0.9, target=130, rescue_g=15),
    "adult": Behaviour(meal_scale=1.0, basal_scale=1.0, bolus_scale=1.0, target=120, rescue_g=15),
}

# (name, mean minute of day, sd minutes, mean g, sd g, probability, announced probability)
MEAL_PLAN = (
    ("breakfast", 7 * 60 + 30, 30, 45, 10, 0.95, 1.0),
    ("snack_am", 10 * 60 + 30, 30, 15, 5, 0.5, 0.3),
    ("lunch", 12 * 60 + 45, 40, 70, 15, 1.0, 1.0),
    ("snack_pm", 16 * 60, 45, 20, 6, 0.6, 0.3),
    ("dinner", 19 * 60, 45, 80, 15, 1.0, 1.0),
    ("snack_eve", 21 * 60 + 30, 30, 15, 5, 0.3, 0.3),
)
WEEKEND_DELAY_MIN = 60
P_MISSED_BOLUS = 0.1
P_LATE_BOLUS = 0.2
LATE_BOLUS_MIN = (15, 60)
CARB_ESTIMATE = (math.log(0.9), 0.3)  # log-normal: under-estimate by 10 %, ~30 % error
SENSITIVITY_SD = 0.15  # day-to-day log-sd of insulin sensitivity (Vmx)
P_LOG_RESCUE = 0.5
P_CORRECTION_CHECK = 0.1  # chance per 5-min step that a high (> 250) is noticed
CORRECTION_ABOVE = 250.0
CORRECTION_GAP_MIN = 180
SENSOR_DAYS = 10  # a sensor change every 10 days, with a warm-up without readings
WARMUP_MIN = 120
DROPOUTS_PER_DAY = 0.3  # signal losses (compression lows, out of range of the receiver)
DROPOUT_MEDIAN_MIN = 30


@lru_cache(maxsize=None)
def _tables():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # simglucose imports the deprecated pkg_resources
        from simglucose.controller.basal_bolus_ctrller import CONTROL_QUEST, PATIENT_PARA_FILE
        from simglucose.sensor.cgm import SENSOR_PARA_FILE
    return (pd.read_csv(PATIENT_PARA_FILE), pd.read_csv(CONTROL_QUEST), pd.read_csv(SENSOR_PARA_FILE))


def _import_simglucose():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from simglucose.patient.t1dpatient import Action, T1DPatient
        from simglucose.sensor.noise_gen import CGMNoise
    return Action, T1DPatient, CGMNoise


def subject_params(subject: str) -> tuple[SimpleNamespace, np.ndarray, pd.Series]:
    """Plain-float parameters, initial state and therapy (Quest) row of a simglucose subject."""
    params, quest, _ = _tables()
    row = params.loc[params["Name"] == subject]
    if row.empty:
        raise ValueError(f"unknown simglucose subject {subject!r}; expected one of {SUBJECTS}")
    row = row.iloc[0]
    fast = SimpleNamespace(**{k: (v if isinstance(v, str) else float(v)) for k, v in row.items()})
    init_state = row.iloc[2:15].to_numpy(dtype=float)
    return fast, init_state, quest.loc[quest["Name"] == subject].iloc[0]


def _seed(seed: int, subject: str, variant: int, *extra: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, SUBJECTS.index(subject), variant, *extra])


def meal_schedule(subject: str, days: int, seed: int, variant: int = 0, meal_factor: float = 1.0) -> pd.DataFrame:
    """Planned meals: minute from start, true carbs, announcement, bolus delay and carb estimate.

    Each day has its own random stream, so the first N days do not depend on how many days
    are simulated.
    """
    group = subject.split("#")[0]
    scale = BEHAVIOUR[group].meal_scale * meal_factor
    rows = []
    for day in range(days):
        rng = np.random.default_rng(_seed(seed, subject, variant, 1, day))
        weekend = (DEFAULT_START + pd.Timedelta(days=day)).dayofweek >= 5
        for name, mean_min, sd_min, mean_g, sd_g, p_eat, p_announce in MEAL_PLAN:
            draws = rng.random(4)
            minute = rng.normal(mean_min + (WEEKEND_DELAY_MIN if weekend and name == "breakfast" else 0), sd_min)
            grams = max(5.0, rng.normal(mean_g, sd_g)) * scale
            estimate = float(np.exp(rng.normal(*CARB_ESTIMATE)))
            delay = rng.integers(LATE_BOLUS_MIN[0], LATE_BOLUS_MIN[1] + 1)
            if draws[0] > p_eat:
                continue
            announced = draws[1] < p_announce
            missed = announced and draws[2] < P_MISSED_BOLUS
            late = announced and not missed and draws[3] < P_LATE_BOLUS
            rows.append((day * 1440 + int(np.clip(round(minute), 0, 1439)), name, round(grams, 1), announced,
                         missed, int(delay) if late else 0, estimate))
    return pd.DataFrame(rows, columns=["minute", "meal", "carbs", "announced", "missed", "bolus_delay",
                                       "estimate_factor"])


def sensor_gaps(subject: str, days: int, seed: int, variant: int = 0) -> np.ndarray:
    """Boolean mask of the 5-minute steps without a CGM reading (warm-ups and signal losses)."""
    steps_per_day = 1440 // STEP_MINUTES
    lost = np.zeros(days * steps_per_day, dtype=bool)
    for day in range(days):
        rng = np.random.default_rng(_seed(seed, subject, variant, 5, day))
        start = day * steps_per_day
        if day % SENSOR_DAYS == 0 and day > 0:
            at = start + int(rng.integers(0, steps_per_day))
            lost[at: at + WARMUP_MIN // STEP_MINUTES] = True
        for _ in range(rng.poisson(DROPOUTS_PER_DAY)):
            at = start + int(rng.integers(0, steps_per_day))
            length = int(np.clip(rng.lognormal(np.log(DROPOUT_MEDIAN_MIN), 0.8), 10, 240)) // STEP_MINUTES
            lost[at: at + length] = True
    return lost


def simulate_patient(subject: str, days: int, seed: int = 0, variant: int = 0,
                     start: pd.Timestamp = DEFAULT_START, physiology: dict | None = None,
                     meal_factor: float = 1.0, patient_id: str | None = None) -> pd.DataFrame:
    """Simulate one virtual patient on the 5-minute grid.

    Parameters
    ----------
    subject : str
        simglucose subject, e.g. ``"adult#001"``.
    days : int
        Length of the record.
    seed : int
        Master seed; the same (seed, subject, variant, days) gives bit-identical output.
    variant : int
        Another life of the same physiology (different meals, behaviour and sensor noise);
        variant 0 is the embedded cohort's.
    physiology : dict, optional
        Multiplicative factors on simglucose parameters (e.g. ``{"Vmx": 1.2, "kabs": 0.8}``):
        a new virtual patient near the subject (the pretraining population).
    meal_factor : float
        Scales every meal.
    patient_id : str, optional
        Id of the result (default ``subject`` or ``subject.v<variant>``).

    Returns
    -------
    DataFrame
        Canonical columns ``patient_id, time, cgm, carbs, insulin, bg``.
    """
    Action, T1DPatient, CGMNoise = _import_simglucose()
    params, init_state, quest = subject_params(subject)
    for key, factor in (physiology or {}).items():
        setattr(params, key, getattr(params, key) * float(factor))
    group = subject.split("#")[0]
    habit = BEHAVIOUR[group]
    sensor = _tables()[2].set_index("Name").loc[SENSOR]
    n_steps = days * 1440 // STEP_MINUTES
    online = np.random.default_rng(_seed(seed, subject, variant, 2))
    noise = CGMNoise(sensor, seed=int(_seed(seed, subject, variant, 3).generate_state(1)[0]))
    patient = T1DPatient(params, init_state=init_state.copy())

    lost = sensor_gaps(subject, days, seed, variant)
    meals = meal_schedule(subject, days, seed, variant, meal_factor)
    eat_at = dict(zip(meals["minute"], meals["carbs"]))
    due_boluses: dict[int, float] = {}  # control step -> carbs estimate to bolus for
    for m in meals.itertuples():
        if m.announced and not m.missed:
            step = -(-(m.minute + m.bolus_delay) // STEP_MINUTES)
            due_boluses[step] = due_boluses.get(step, 0.0) + m.carbs * m.estimate_factor

    basal = params.u2ss * params.BW / 6000 * habit.basal_scale  # U/min
    cr, cf = float(quest["CR"]), float(quest["CF"])
    minutes = n_steps * STEP_MINUTES
    insulin_per_min = np.empty(minutes)
    logged_carbs = np.zeros(n_steps)
    cgm = np.empty(n_steps)
    bg = np.empty(n_steps)
    last_bolus, last_rescue = -10**9, -10**9
    # The ODE is sequential by nature: one Python step per simulated minute is unavoidable.
    base_vmx = params.Vmx
    for k in range(minutes):
        if k % 1440 == 0:  # a new day: insulin sensitivity varies from day to day
            day_rng = np.random.default_rng(_seed(seed, subject, variant, 4, k // 1440))
            params.Vmx = base_vmx * float(np.exp(day_rng.normal(0.0, SENSITIVITY_SD)))
        carbs_now = eat_at.get(k, 0.0)
        dose = basal
        if k % STEP_MINUTES == 0:
            i = k // STEP_MINUTES
            reading = float(np.clip(round(patient.observation.Gsub + next(noise)), SENSOR_MIN_MGDL, SENSOR_MAX_MGDL))
            if lost[i]:
                reading = np.nan  # the controller (the patient) sees no reading either
            cgm[i] = reading
            bg[i] = patient.state[3] / params.Vg
            bolus = 0.0
            if i in due_boluses:
                grams = due_boluses[i]
                logged_carbs[i] += round(grams)
                correction = max(0.0, reading - habit.target) / cf if reading > 150 else 0.0
                bolus = grams / cr + correction
            elif (reading > CORRECTION_ABOVE and k - last_bolus >= CORRECTION_GAP_MIN
                  and online.random() < P_CORRECTION_CHECK):
                bolus = (reading - habit.target) / cf
            if bolus > 0:
                dose += bolus * habit.bolus_scale
                last_bolus = k
            if reading < 70 and k - last_rescue >= 20:
                carbs_now += habit.rescue_g
                last_rescue = k
                if online.random() < P_LOG_RESCUE:
                    logged_carbs[i] += habit.rescue_g
        insulin_per_min[k] = dose
        patient.step(Action(CHO=carbs_now, insulin=dose))

    # Minute k's dose is an instant event at k, so it belongs to step ceil(k / 5).
    label = -(-np.arange(minutes) // STEP_MINUTES)
    keep = label < n_steps
    insulin = np.bincount(label[keep], weights=insulin_per_min[keep], minlength=n_steps)
    pid = patient_id or (subject if variant == 0 else f"{subject}.v{variant}")
    return pd.DataFrame({
        "patient_id": pid,
        "time": start + np.arange(n_steps) * STEP,
        "cgm": cgm,
        "carbs": logged_carbs,
        "insulin": insulin,
        "bg": bg,
    })


def patient_table(patient_ids, subjects) -> pd.DataFrame:
    """Metadata of simulated patients: age group, age, weight, source."""
    _, quest, _ = _tables()
    params = _tables()[0].set_index("Name")
    q = quest.set_index("Name")
    version = importlib.metadata.version("simglucose")
    return pd.DataFrame({
        "patient_id": list(patient_ids),
        "age_group": [s.split("#")[0] for s in subjects],
        "source": f"UVA/Padova simulator (simglucose {version}), {SENSOR} CGM",
        "age_years": [float(q.loc[s, "Age"]) for s in subjects],
        "weight_kg": [float(params.loc[s, "BW"]) for s in subjects],
        "subject": list(subjects),
    })


def _simulate_task(args):
    subject, days, seed, variant, start = args
    t0 = _time.perf_counter()
    frame = simulate_patient(subject, days, seed, variant, start)
    return subject, variant, frame, _time.perf_counter() - t0


def simulate_cohort(subjects=SUBJECTS, days: int = 28, seed: int = 0, variants=(0,),
                    workers: int = 2, start: pd.Timestamp = DEFAULT_START,
                    progress: Callable[[int, int, str, float], None] | None = None
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate several patients in parallel processes.

    Parameters
    ----------
    subjects : sequence of str
        simglucose subjects (default: all 30).
    days, seed : int
        Record length and master seed.
    variants : sequence of int
        Lives per subject; ``(0, 1, 2)`` gives three patients per subject, for a bigger cohort.
    workers : int
        Processes (1 runs in this process).
    progress : callable, optional
        Called as ``progress(done, total, patient_id, seconds)`` after each patient.

    Returns
    -------
    frame, patients
        Canonical long frame (sorted by patient, time) and the patient table.
    """
    tasks = [(s, days, seed, v, start) for v in variants for s in subjects]
    results = {}

    def record(result):
        subject, variant, frame, seconds = result
        results[(subject, variant)] = frame
        if progress is not None:
            progress(len(results), len(tasks), frame["patient_id"].iloc[0], seconds)

    if workers <= 1 or len(tasks) == 1:
        for task in tasks:
            record(_simulate_task(task))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for fut in as_completed([pool.submit(_simulate_task, t) for t in tasks]):
                record(fut.result())
    ordered = [results[(s, v)] for s, _, _, v, _ in tasks]
    frame = pd.concat(ordered, ignore_index=True)
    ids = [f["patient_id"].iloc[0] for f in ordered]
    frame["patient_id"] = pd.Categorical(frame["patient_id"], categories=sorted(ids))
    frame = frame.sort_values(["patient_id", "time"], ignore_index=True)
    patients = patient_table(ids, [s for s, _, _, _, _ in tasks]).sort_values("patient_id", ignore_index=True)
    return frame, patients
