"""Data-layer benchmarks: cohort load, one-year imports per format, IOB/COB features.

    python bench/bench_data.py            # prints a table; --json for machine-readable output

Targets (2-core machine): cohort load < 1 s, one-year import < 3 s per CSV format,
features for the whole cohort < 2 s. One year is one virtual patient's 28-day record
repeated 13 times and shifted in time (105,120 five-minute rows), written in each format
by `bgcore.data.writers`; writing is not timed, importing (read, validate, regularise,
store under a temporary cache) is.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, report  # noqa: E402

from bgcore.data import writers  # noqa: E402
from bgcore.data.cohort import load_cohort  # noqa: E402
from bgcore.data.features import add_features, carbs_remaining, insulin_remaining, on_board  # noqa: E402

TARGETS = {"load": 1.0, "import": 3.0, "features": 2.0}




def one_year(cohort, patient: str = "adult#001") -> pd.DataFrame:
    base = cohort.patient(patient).drop(columns=["bg"])
    blocks = [base.assign(time=base["time"] + pd.Timedelta(days=28 * k)) for k in range(13)]
    year = pd.concat(blocks, ignore_index=True)
    year["patient_id"] = "year"
    return year.iloc[: 365 * 288].reset_index(drop=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--formats", default="csv,dexcom,libre,bris,nightscout,ohio")
    args = parser.parse_args(argv)
    rows = []

    seconds, cohort = best_of(load_cohort, args.repeat)
    rows.append({"benchmark": "load embedded cohort", "rows": len(cohort.frame), "seconds": seconds,
                 "target_s": TARGETS["load"]})

    year = one_year(cohort)
    work = Path(tempfile.mkdtemp(prefix="bgbench-"))
    os.environ["BGCORE_CACHE"] = str(work / "cache")
    from bgcore.data.datasets import import_path  # after BGCORE_CACHE is set

    files = {
        "csv": lambda: writers.write_csv(year, work / "year.csv"),
        "dexcom": lambda: writers.write_dexcom(year, work / "clarity.csv"),
        "libre": lambda: writers.write_libre(year, work / "libre.csv"),
        "bris": lambda: writers.write_bris(year, work / "bris.csv"),
        "nightscout": lambda: writers.write_nightscout(year, work / "nightscout"),
        "ohio": lambda: writers.write_ohio(year, work / "ohio.xml"),
    }
    for fmt in args.formats.split(","):
        path = files[fmt]()
        size = sum(p.stat().st_size for p in ([path] if path.is_file() else path.iterdir())) / 1e6
        counter = iter(range(10**6))
        seconds, (dataset, import_report) = best_of(
            lambda: import_path(path, name=f"{fmt}{next(counter)}", format=fmt), args.repeat)
        is_csv = fmt in ("csv", "dexcom", "libre", "bris")
        rows.append({"benchmark": f"import one year: {fmt} ({size:.0f} MB, {import_report.readings} readings)",
                     "rows": import_report.grid_rows, "seconds": seconds, "target_s": TARGETS["import"] if is_csv else None})

    frame = cohort.frame
    seconds, _ = best_of(lambda: (on_board(frame, "insulin", insulin_remaining),
                                  on_board(frame, "carbs", carbs_remaining)), args.repeat)
    rows.append({"benchmark": "IOB + COB, whole cohort", "rows": len(frame), "seconds": seconds,
                 "target_s": TARGETS["features"]})
    seconds, feats = best_of(lambda: add_features(frame), args.repeat)
    rows.append({"benchmark": f"all features ({feats.shape[1] - frame.shape[1]} columns), whole cohort",
                 "rows": len(frame), "seconds": seconds, "target_s": TARGETS["features"]})

    return report(rows, "bgcore data benchmarks", args.json, args.repeat, name="data")

if __name__ == "__main__":
    raise SystemExit(main())
