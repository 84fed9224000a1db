import numpy as np
import pandas as pd
import pytest

from bgcore.data.splits import split_bounds
from bgcore.evaluation.protocol import (DEFAULT_PROTOCOL, GapRule, Protocol, context_batch, data_fingerprint,
                                        make_origins, target_paths)
from tests.conftest import make_frame


def test_origins_are_in_the_test_part_on_the_clock_with_observed_context():
    frame = make_frame(("a", "b"), days=10)
    origins = make_origins(frame)
    bounds = split_bounds(frame)
    for pid, g in origins.groupby("patient_id"):
        assert (g["origin"] >= bounds.loc[pid, "test_start"]).all()
    assert (origins["origin"].dt.minute % 30 == 0).all()
    # every 30 min over the 2-day test part, except the last 3, whose targets are < 75 % inside the record
    assert len(origins) == 2 * (2 * 48 - 3)
    np.testing.assert_array_equal(frame["time"].to_numpy()[origins["row"]], origins["origin"].to_numpy())


def test_gap_rules_exclude_origins_and_are_configurable():
    frame = make_frame(("a",), days=10)
    origins = make_origins(frame)
    t = origins["origin"].iloc[10]
    gapped = frame.copy()
    gapped.loc[gapped["time"] == t - pd.Timedelta(minutes=5), "cgm"] = np.nan  # previous reading missing
    gapped.loc[(gapped["time"] > t + pd.Timedelta(hours=3)) & (gapped["time"] <= t + pd.Timedelta(hours=4)), "cgm"] = np.nan
    kept = make_origins(gapped)["origin"]
    assert t not in set(kept)
    lost = sorted(set(origins["origin"]) - set(kept))
    # t: its previous reading is missing; 7:00-8:00: over 25 % of the targets fall in the hole;
    # 8:30, 9:00: no current reading; 9:30: half of the last hour is missing
    hours = [0, 2, 2.5, 3, 3.5, 4, 4.5]
    assert lost == [t + pd.Timedelta(hours=h) for h in hours]
    lenient = Protocol(gap=GapRule(last_observed=1, min_target_fraction=0.0))
    assert t in set(make_origins(gapped, lenient)["origin"])


def test_context_is_past_only_and_stops_at_patient_start():
    frame = make_frame(("a", "b"), days=10)
    origins = make_origins(frame)
    rows = origins["row"].to_numpy()
    batch = context_batch(frame, rows, 288)
    assert batch.cgm.shape == (len(rows), 288)
    np.testing.assert_array_equal(batch.cgm[:, -1], frame["cgm"].to_numpy()[rows])
    np.testing.assert_array_equal(batch.cgm[:, -13], frame["cgm"].to_numpy()[rows - 12])
    changed = frame.copy()
    row = rows[5]
    changed.loc[row + 1:, ["cgm", "insulin", "carbs"]] = 999.0  # the future after origin 5
    again = context_batch(changed, rows[:6], 288)
    np.testing.assert_array_equal(again.cgm, batch.cgm[:6])
    np.testing.assert_array_equal(again.insulin, batch.insulin[:6])
    b_start = int(np.flatnonzero(frame["patient_id"] == "b")[0])
    early = context_batch(frame, np.array([b_start + 3]), 10)
    assert np.isnan(early.cgm[0, :6]).all() and np.isfinite(early.cgm[0, 6:]).all()  # nothing from patient a


def test_target_paths_and_the_end_of_a_record():
    frame = make_frame(("a",), days=2)
    last = len(frame) - 3
    paths = target_paths(frame, np.array([0, last]), np.array([1, 2, 3, 6]))
    np.testing.assert_array_equal(paths[0], frame["cgm"].to_numpy()[[1, 2, 3, 6]])
    assert np.isfinite(paths[1, :2]).all() and np.isnan(paths[1, 2:]).all()


def test_card_key_and_fingerprint():
    frame = make_frame(("a",), days=2)
    card = DEFAULT_PROTOCOL.card("d", data_fingerprint(frame), n_origins=5)
    assert {"split", "stride_min", "horizons_min", "gap_rule", "pooling", "data_fingerprint", "n_origins"} <= set(card)
    assert card["horizons_min"][0] == 5 and card["horizons_min"][-1] == 120 and card["headline_min"] == [30, 60]
    assert "missing targets are not scored" in card["gap_rule"]["text"]
    assert Protocol().key() == DEFAULT_PROTOCOL.key() != Protocol(stride_min=60).key()
    changed = frame.copy()
    changed.loc[3, "cgm"] += 1
    assert data_fingerprint(changed) != data_fingerprint(frame) == data_fingerprint(frame.copy())
    with pytest.raises(ValueError):
        Protocol(horizons_min=(7,))
