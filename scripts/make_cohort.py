"""Regenerate the embedded virtual cohort (bgcore/data/virtual_cohort.parquet).

    python scripts/make_cohort.py            # the committed file (30 patients x 28 days)
    python scripts/make_cohort.py --check    # regenerate to a temp file and compare bytes

The output is bit-identical for the same seed and package versions (requirements.txt).
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bgcore.data.cohort import COHORT_FILE, COHORT_SPEC, write_cohort  # noqa: E402
from bgcore.data.simulate import SUBJECTS, simulate_cohort  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare a fresh regeneration with the committed file")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write here instead of the package file")
    args = parser.parse_args(argv)

    started = time.perf_counter()

    def progress(done, total, pid, seconds):
        print(f"[{done:2d}/{total}] {pid:<16} {seconds:5.1f} s   ({time.perf_counter() - started:5.0f} s elapsed)",
              flush=True)

    frame, patients = simulate_cohort(SUBJECTS, days=COHORT_SPEC["days"], seed=COHORT_SPEC["seed"],
                                      variants=tuple(COHORT_SPEC["variants"]), workers=args.workers,
                                      progress=progress)
    if args.check:
        out = Path(tempfile.mkdtemp()) / "virtual_cohort.parquet"
    else:
        out = args.out or COHORT_FILE
    write_cohort(frame, patients, COHORT_SPEC, out)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()[:16]
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, sha256 {digest}) in {time.perf_counter() - started:.0f} s")
    if args.check:
        same = filecmp.cmp(out, COHORT_FILE, shallow=False)
        print("identical to the committed file" if same else "DIFFERS from the committed file")
        return 0 if same else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
