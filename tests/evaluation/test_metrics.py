"""Every metric against hand-computed or published values."""

import numpy as np
import pytest

from bgcore.evaluation import metrics
from bgcore.evaluation.glycemia import ambulatory_profile, glucose_summary
from tests.conftest import make_frame


def test_point_metrics_hand_computed():
    truth = np.array([[100.0], [200.0], [np.nan]])
    pred = np.array([[110.0], [180.0], [150.0]])
    m = metrics.point_metrics(truth, pred)
    assert m["n"][0] == 2
    assert m["rmse"][0] == pytest.approx(np.sqrt(250))
    assert m["mae"][0] == pytest.approx(15.0)
    assert m["mard"][0] == pytest.approx(10.0)  # (10/100 + 20/200) / 2
    assert m["bias"][0] == pytest.approx(-5.0)
    assert metrics.skill(15.0, 20.0) == pytest.approx(0.25)


@pytest.mark.parametrize("ref, pred, zone", [
    (100, 100, "A"), (60, 65, "A"), (250, 200, "A"), (100, 125, "B"), (250, 190, "B"), (50, 200, "E"),
    (200, 50, "E"), (100, 220, "C"), (150, 25, "C"), (300, 100, "D"), (60, 100, "D"), (50, 100, "D"),
])
def test_clarke_known_points(ref, pred, zone):
    assert metrics.ZONES[metrics.clarke_zones([ref], [pred])[0]] == zone


@pytest.mark.parametrize("ref, pred, zone", [
    (100, 100, "A"), (40, 10, "A"), (100, 126, "A"), (100, 130, "B"), (100, 20, "B"), (300, 200, "B"),
    (100, 200, "C"), (300, 100, "C"), (100, 400, "D"), (300, 50, "D"), (20, 200, "E"), (30, 160, "E"),
])
def test_parkes_type1_known_points(ref, pred, zone):
    # e.g. (100, 130): the A|B upper line passes (30, 50)-(140, 170), i.e. 126.4 at 100 mg/dL
    assert metrics.ZONES[metrics.parkes_zones([ref], [pred])[0]] == zone


def test_parkes_boundaries_are_the_published_vertices():
    upper = [p for line in metrics.PARKES_TYPE1_UPPER for p in line]
    lower = [p for line in metrics.PARKES_TYPE1_LOWER for p in line]
    assert (280, 380) in upper and (125, 550) in upper and (35, 155) in upper
    assert (385, 300) in lower and (260, 130) in lower and (550, 150) in lower
    # points just inside / outside the A|B upper line at its vertex (140, 170)
    assert metrics.parkes_zones([140, 140], [169.9, 170.1]).tolist() == [0, 1]


def test_missing_values_get_no_zone_and_percentages():
    z = metrics.clarke_zones([100, np.nan, 100, 50], [100, 100, 130, 200])
    assert z.tolist() == [0, -1, 1, 4]
    pct = metrics.zone_percentages(z)
    np.testing.assert_allclose(pct, [100 / 3, 100 / 3, 0, 0, 100 / 3])


def test_time_lag_of_shifted_perfect_and_persistence_forecasts():
    t0 = np.arange(0, 3000, 30)  # origins every 30 min
    y = lambda t: 140 + 50 * np.sin(2 * np.pi * t / 170)  # noqa: E731
    h = 30
    truth_path = y(t0[:, None] + 5 * np.arange(0, h // 5 + 1)[None, :])
    assert metrics.time_lag(y(t0 + h), truth_path, h // 5) == 0
    assert metrics.time_lag(y(t0 + h - 15), truth_path, h // 5) == 15
    assert metrics.time_lag(y(t0), truth_path, h // 5) == 30


def _crafted_hypo():
    normal = np.full(6, 100.0)
    truth = np.array([[100, 90, 60, 60, 80, 90], normal, [100, 95, 90, 80, 68, 75], normal, normal], float)
    pred = np.array([[100, 65, 80, 90, 95, 100], [100, 90, 65, 90, 100, 100], normal, normal, normal], float)
    current = np.array([100, 100, 100, 100, 60.0])  # the last origin is already hypo: left out
    return truth, pred, current


def test_event_metrics_on_crafted_series():
    truth, pred, current = _crafted_hypo()
    m = metrics.event_metrics(truth, pred, 70, below=True, days=1.0, current=current)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (1, 1, 1, 1)
    assert m["sensitivity"] == 0.5 and m["precision"] == 0.5 and m["f1"] == 0.5 and m["mcc"] == 0.0
    assert m["false_alarms_per_day"] == 1.0
    assert m["median_lead_min"] == 15.0  # truth first below 70 at the third step
    hyper = metrics.event_metrics(400 - truth, 400 - pred, 330, below=False, days=2.0, current=400 - current)
    assert hyper["tp"] == 1 and hyper["false_alarms_per_day"] == 0.5


def test_pinball_and_crps_of_a_normal_forecast():
    assert metrics.pinball_elements(10.0, [8.0, 12.0], [0.9, 0.9]).tolist() == pytest.approx([1.8, 0.2])
    from scipy.stats import norm
    levels = np.arange(1, 100) / 100
    q = norm.ppf(levels)[None, :]
    # CRPS of N(0, 1) at its mean is 2 phi(0) - 1/sqrt(pi) = 0.2337 (Gneiting & Raftery 2007)
    assert metrics.crps_from_quantiles(np.array([0.0]), q, levels) == pytest.approx(0.2337, rel=0.03)


def test_interval_coverage_width_and_pit():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 1, 20000)
    levels = np.array([0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975])
    q = np.tile(levels, (truth.size, 1))  # the exact quantiles of U(0, 1)
    scores = metrics.interval_scores(truth, q, levels)
    for c in (0.5, 0.8, 0.95):
        assert scores[c]["coverage"] == pytest.approx(c, abs=0.01)
        assert scores[c]["width"] == pytest.approx(c)
    pit = metrics.pit_values(truth, q, levels)
    hist = metrics.pit_histogram(pit, bins=10)
    assert hist.sum() == truth.size and hist.min() > 1800 and hist.max() < 2200  # flat when calibrated
    edge = metrics.pit_values(np.array([0.5, -1.0, 2.0]), q[:3], levels)
    assert edge.tolist() == [0.5, 0.0, 1.0]


def test_glucose_summary_consensus_metrics():
    frame = make_frame(("a",), days=1)
    frame["cgm"] = np.nan
    frame.loc[:5, "cgm"] = [50, 60, 100, 150, 200, 300]
    s = glucose_summary(frame).iloc[0]
    assert s["readings"] == 6
    assert s["tbr70_pct"] == pytest.approx(100 * 2 / 6) and s["tbr54_pct"] == pytest.approx(100 / 6)
    assert s["tir_pct"] == pytest.approx(100 * 2 / 6)
    assert s["tar180_pct"] == pytest.approx(100 * 2 / 6) and s["tar250_pct"] == pytest.approx(100 / 6)
    mean = np.mean([50, 60, 100, 150, 200, 300])
    assert s["mean_mgdl"] == pytest.approx(mean) and s["gmi_pct"] == pytest.approx(3.31 + 0.02392 * mean)
    assert s["cv_pct"] == pytest.approx(100 * np.std([50, 60, 100, 150, 200, 300], ddof=1) / mean)


def test_ambulatory_profile_percentiles_by_time_of_day():
    frame = make_frame(("a",), days=5)
    minute = frame["time"].dt.hour * 60 + frame["time"].dt.minute
    day = frame["time"].dt.day - frame["time"].dt.day.min()
    frame["cgm"] = 100.0 + 10 * day + (minute >= 720) * 50  # afternoons are 50 mg/dL higher
    agp = ambulatory_profile(frame, bin_minutes=60)
    assert len(agp) == 24 and set(agp.columns) >= {"p5", "p25", "p50", "p75", "p95", "n"}
    morning, afternoon = agp.set_index("minute").loc[0], agp.set_index("minute").loc[780]
    assert morning["p50"] == pytest.approx(120.0) and afternoon["p50"] == pytest.approx(170.0)
    assert morning["p5"] == 100.0 and morning["p25"] == 110.0 and morning["p95"] == 140.0 and morning["n"] == 60
