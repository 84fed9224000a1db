"""Evaluation benchmarks: scoring a million forecasts, building the cohort leaderboard.

    python bench/bench_eval.py            # prints a table; --json for machine-readable output

Targets (2-core machine): scoring 1 million forecasts with all metrics well under 2 s;
building the cohort leaderboard from stored forecasts well under 1 s.

* Scoring: persistence with quantiles, origins every 5 minutes over the cohort's test part
  (about 1.1 million origin x horizon forecasts): point metrics, Clarke and Parkes zones
  and time lag per patient x horizon, hypo/hyper events (4 events x 3 windows), CRPS,
  interval coverage and the PIT table.
* Leaderboard: five stored runs of the protocol's test origins (persistence, AR2 and
  three noisy variants standing in for models), read back from a temporary cache,
  scored and ranked at 30 minutes (`bgcore.evaluation.leaderboard.build_leaderboard`).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, report  # noqa: E402

from bgcore.data.cohort import load_cohort  # noqa: E402
from bgcore.data.splits import temporal_split  # noqa: E402
from bgcore.evaluation.backtest import backtest, reference_backtests  # noqa: E402
from bgcore.evaluation.protocol import DEFAULT_PROTOCOL, Protocol  # noqa: E402
from bgcore.evaluation.reference import Persistence  # noqa: E402
from bgcore.evaluation.scoring import pit_table, score_events, score_patients, score_probabilistic  # noqa: E402

TARGETS = {"score": 2.0, "leaderboard": 1.0}




def score_all(forecasts):
    return (score_patients(forecasts), score_events(forecasts), score_probabilistic(forecasts), pit_table(forecasts))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ["BGCORE_CACHE"] = tempfile.mkdtemp(prefix="bgbench-")
    from bgcore.evaluation.leaderboard import build_leaderboard
    from bgcore.store import save_run

    cohort = load_cohort()
    dense = Protocol(stride_min=5)
    model = Persistence().fit(temporal_split(cohort.frame)["train"], dense.horizon_steps)
    forecasts, _ = backtest(cohort, model, dense)
    rows = []
    seconds, _ = best_of(lambda: score_all(forecasts), args.repeat)
    rows.append({"benchmark": f"score {len(forecasts):,} forecasts, all metrics", "seconds": seconds,
                 "target_s": TARGETS["score"]})
    seconds, _ = best_of(lambda: score_patients(forecasts), args.repeat)
    rows.append({"benchmark": "  of which point, error grids, time lag", "seconds": seconds, "target_s": None})

    rng = np.random.default_rng(0)
    key = DEFAULT_PROTOCOL.key()
    refs = reference_backtests(cohort)
    for name, (f, card) in refs.items():
        save_run(f, card, model=name, family="reference", goal="reference", protocol_key=key)
    base, card = refs["persistence"]
    for k, (family, goal) in enumerate((("ml", "single"), ("ml", "multi"), ("deep", "single"))):
        noisy = base.assign(pred=base["pred"] + rng.normal(0, 5 + k, len(base)))
        save_run(noisy.drop(columns=[c for c in base.columns if c.startswith("q")]), card,
                 model=f"variant{k}", family=family, goal=goal, protocol_key=key)
    seconds, result = best_of(lambda: build_leaderboard(cohort, horizon=30), args.repeat)
    rows.append({"benchmark": f"cohort leaderboard from {len(result['runs'])} stored runs "
                              f"({len(base):,} forecasts each)", "seconds": seconds, "target_s": TARGETS["leaderboard"]})

    return report(rows, "bgcore evaluation benchmarks", args.json, args.repeat, name="eval")

if __name__ == "__main__":
    raise SystemExit(main())
