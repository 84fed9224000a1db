"""``python -m bgcore``: the command line over the engine.

Exit status: 0 success, 2 bad input (the `DataError` message is printed, nothing stored),
1 internal error (traceback with ``--debug``).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback

import pandas as pd

from .data.cohort import COHORT_NAME
from .data.datasets import import_path, list_datasets, load_dataset
from .data.loaders import FORMATS
from .data.schema import DataError
from .data.summary import cohort_summary


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, default=str))


def _cmd_cohort(args) -> int:
    summary = cohort_summary(load_dataset(args.dataset))
    if args.json:
        _print_json(summary.assign(start=summary["start"].astype(str), end=summary["end"].astype(str))
                    .to_dict(orient="records"))
        return 0
    shown = summary[["patient_id", "age_group", "days", "cgm_present_pct", "tir_pct", "mean_glucose"]].rename(
        columns={"patient_id": "patient", "age_group": "group", "cgm_present_pct": "cgm %",
                 "tir_pct": "TIR 70-180 %", "mean_glucose": "mean mg/dL"})
    print(f"dataset {args.dataset}: {len(shown)} patients")
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    return 0


def _cmd_import(args) -> int:
    dataset, report = import_path(args.path, name=args.name, format=args.format, patient_id=args.patient,
                                  replace=args.replace)
    if args.json:
        _print_json({"name": dataset.name, "report": dataset.info["report"]})
    else:
        print(f"imported {args.path} as dataset {dataset.name!r}")
        print("\n".join("  " + line for line in report.lines()))
    return 0


def _cmd_datasets(args) -> int:
    rows = list_datasets()
    if args.json:
        _print_json(rows)
    else:
        print(pd.DataFrame(rows).fillna("").to_string(index=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bgcore", description="bgexplorer engine")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("cohort", help="list the patients of a dataset")
    p.add_argument("--dataset", default=COHORT_NAME, help=f"dataset name (default: {COHORT_NAME})")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_cohort)

    p = sub.add_parser("import", help="import a file or folder into cache/")
    p.add_argument("path")
    p.add_argument("--format", default="auto", choices=("auto",) + FORMATS)
    p.add_argument("--name", help="dataset name (default: from the file name)")
    p.add_argument("--patient", help="patient id for single-patient files (default: from the file)")
    p.add_argument("--replace", action="store_true", help="replace a stored dataset of the same name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("datasets", help="list stored datasets")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_datasets)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        if args.debug:
            traceback.print_exc()
        else:
            print(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
                  file=sys.stderr)
        return 1
