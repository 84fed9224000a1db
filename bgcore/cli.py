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
from .evaluation.backtest import reference_backtests
from .evaluation.glycemia import cohort_summary
from .evaluation.leaderboard import build_leaderboard
from .evaluation.protocol import DEFAULT_PROTOCOL
from .evaluation.reference import REFERENCES
from .evaluation.scoring import score_patients
from .store import list_runs, load_forecasts, run_record, save_run, weights_lines


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


def _cmd_baseline(args) -> int:
    dataset = load_dataset(args.dataset)
    protocol = DEFAULT_PROTOCOL
    fingerprint = dataset.fingerprint
    stored = {r["model"]: r for r in list_runs(dataset.name) if r["family"] == "reference"
              and r["data_fingerprint"] == fingerprint and r["protocol_key"] == protocol.key()}
    results = []
    todo = [name for name in REFERENCES if args.force or name not in stored]
    for name, (forecasts, card) in (reference_backtests(dataset, protocol).items() if todo else []):
        if name not in todo:
            continue
        record = save_run(forecasts, card, model=name, family="reference", goal="reference",
                          protocol_key=protocol.key())
        scores = score_patients(forecasts)
        head = scores[scores["horizon"].isin(protocol.headline_min)].groupby("horizon")["rmse"].mean()
        results.append({"model": name, "run_id": record["run_id"], "origins": card["n_origins"],
                        **{f"rmse_{h}": float(v) for h, v in head.items()}})
    skipped = [name for name in REFERENCES if name not in todo]
    if args.json:
        _print_json({"stored": results, "already_stored": skipped})
        return 0
    for r in results:
        print(f"stored {r['model']} as run {r['run_id']} ({r['origins']} origins): "
              + ", ".join(f"RMSE@{k[5:]} {v:.1f} mg/dL" for k, v in r.items() if k.startswith("rmse_")))
    for name in skipped:
        print(f"{name}: already stored for this data and protocol (run {stored[name]['run_id']}; --force to redo)")
    return 0


def _cmd_leaderboard(args) -> int:
    dataset = load_dataset(args.dataset)
    result = build_leaderboard(dataset, horizon=args.horizon, target=args.target)
    board = result["board"]
    if args.json:
        _print_json({"board": board.to_dict(orient="records"), "excluded_runs": result["excluded"],
                     "card": result["card"]})
        return 0
    print(f"leaderboard: dataset {dataset.name}, horizon {args.horizon} min, against {args.target} "
          f"(mg/dL; mean over patients [95% CI])")
    shown = pd.DataFrame({
        "#": board["rank"], "model": board["model"], "family": board["family"], "goal": board["goal"],
        "patients": board["patients"],
        "RMSE [95% CI]": [f"{r:.1f} [{lo:.1f}, {hi:.1f}]" for r, lo, hi in zip(board["rmse"], board["rmse_lo"],
                                                                                board["rmse_hi"])],
        "median": board["rmse_median"].round(1), "MAE": board["mae"].round(1), "MARD %": board["mard"].round(1),
        "skill": board["skill"].round(3), "Clarke A %": board["clarke_A"].round(1),
        "Parkes A+B %": board["parkes_AB"].round(1), "lag min": board["time_lag_min"].round(1),
    })
    print(shown.to_string(index=False))
    if result["excluded"]:
        print(f"({result['excluded']} stored run(s) left out: other data or protocol)")
    if any(r["run_id"].startswith("unsaved-") for r in result["runs"]):
        print("(reference rows computed now; store them with: python -m bgcore baseline)")
    return 0


def _cmd_families(args) -> int:
    from .models.registry import describe
    rows = describe()
    if args.json:
        _print_json(rows)
        return 0
    table = pd.DataFrame(rows)[["name", "family", "scope", "covariates", "probabilistic", "fine_tune", "zero_shot",
                                "from_scratch", "needs_user_weights", "remote", "min_history_min", "available",
                                "reason", "summary"]]
    print(table.to_string(index=False, max_colwidth=70))
    return 0


def _progress_bar(fraction: float, message: str) -> None:
    done = int(30 * fraction)
    print(f"\r[{'#' * done}{' ' * (30 - done)}] {100 * fraction:5.1f}% {message[:60]:<60}", end="", file=sys.stderr,
          flush=True)


def _headline(run_id: str) -> dict:
    scores = score_patients(load_forecasts(run_id))
    at = scores.groupby("horizon")[["rmse", "skill"]].mean()
    return {f"{k}{h}": float(at.loc[h, k]) for h in DEFAULT_PROTOCOL.headline_min for k in ("rmse", "skill")}


def _cmd_train(args) -> int:
    """Train through the job manager (so the run is in runs.db too) and follow its progress."""
    import time

    from .training.jobs import JobManager
    params = json.loads(args.params) if args.params else {}
    patients = None if args.patients in (None, "all") else args.patients.split(",")
    grid = {k: v for k, v in params.items() if isinstance(v, list)}  # list values make a grid: a sweep
    fixed = {k: v for k, v in params.items() if k not in grid}
    manager = JobManager(workers=1, scheduler=args.scheduler)
    try:
        if grid:
            if fixed:
                raise DataError("give either fixed parameters or a grid of lists, not both", column="--params")
            job = manager.submit_sweep(args.goal, [args.family], grid=grid, patient_groups=[patients],
                                       dataset=args.dataset)
        else:
            job = manager.submit_train(args.goal, args.family, params=fixed, patients=patients,
                                       dataset=args.dataset, parent=args.parent)
        state = manager.status(job)
        while state["status"] in ("queued", "running"):
            if not args.json:
                _progress_bar(state["progress"], state["message"])
            time.sleep(0.3)
            state = manager.status(job)
    except KeyboardInterrupt:
        manager.cancel(job)
        manager.wait(job)
        print("\ncancelled", file=sys.stderr)
        return 1
    finally:
        manager.shutdown()
    if grid:
        return _print_sweep(state, args)
    if state["status"] == "failed":
        message = state["error"].splitlines()[0]
        raise (DataError(message.split(": ", 1)[-1]) if message.startswith(("DataError", "ValueError"))
               else RuntimeError(message))
    record = run_record(state["run_ids"][0])
    head = _headline(record["run_id"])
    if args.json:
        _print_json({k: record[k] for k in ("run_id", "status", "goal", "model", "patients", "errors")} | {"scores": head})
        return 0
    _progress_bar(1.0, "done")
    print(file=sys.stderr)
    print(f"run {record['run_id']} ({record['status']}): {args.family} {args.goal} on {len(record['patients'])} "
          f"patient(s); " + ", ".join(f"RMSE@{h} {head[f'rmse{h}']:.1f} mg/dL (skill {head[f'skill{h}']:.3f})"
                                       for h in DEFAULT_PROTOCOL.headline_min))
    for pid, error in record["errors"].items():
        print(f"  {pid} failed: {error.splitlines()[0]}")
    return 0


def _print_sweep(state: dict, args) -> int:
    rows = []
    for task in state["tasks"]:
        row = {"params": json.dumps(task["spec"]["params"]), "status": task["status"], "run_id": task["run_id"]}
        if task["run_id"]:
            row.update(_headline(task["run_id"]))
        else:
            row["error"] = (task["error"] or "").splitlines()[0] if task["error"] else ""
        rows.append(row)
    if args.json:
        _print_json({"job_id": state["job_id"], "status": state["status"], "tasks": rows})
        return 0
    print(file=sys.stderr)
    print(f"sweep {state['job_id']} ({state['status']}): {state['message']}")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def _cmd_runs(args) -> int:
    rows = [{k: r[k] for k in ("run_id", "dataset", "goal", "model", "family", "status", "created")}
            | {"patients": len(r["patients"] or [])} for r in list_runs(args.dataset)]
    if args.json:
        _print_json(rows)
    elif rows:
        print(pd.DataFrame(rows).to_string(index=False))
    else:
        print("no stored runs")
    return 0


def _cmd_show(args) -> int:
    record = run_record(args.run)
    head = _headline(args.run)
    if args.json:
        _print_json({**record, "scores": head})
        return 0
    for key in ("run_id", "dataset", "goal", "model", "family", "status", "created", "parent_run", "seconds"):
        print(f"{key:>12}: {record.get(key)}")
    print(f"{'params':>12}: {json.dumps(record['params'])}")
    print(f"{'patients':>12}: {', '.join(record['patients'])}")
    print(f"{'protocol':>12}: {record['card']['gap_rule']['text']}; {record['card']['n_origins']} origins")
    for h in DEFAULT_PROTOCOL.headline_min:
        print(f"{'RMSE@' + str(h):>12}: {head[f'rmse{h}']:.2f} mg/dL (skill {head[f'skill{h}']:.3f})")
    for line in weights_lines(record)[:10]:
        print(f"{'weights':>12}: {line}")
    for pid, error in record.get("errors", {}).items():
        print(f"{'failed':>12}: {pid}: {error.splitlines()[0]}")
    return 0


def _cmd_pretrain(args) -> int:
    from .models.foundation.pretrain import pretrain_dfm
    command = "python -m bgcore pretrain " + " ".join(args.argv)
    last = [-1.0]

    def show(fraction, message):
        if fraction - last[0] >= 0.05 or fraction >= 1:
            last[0] = fraction
            print(f"{100 * fraction:5.1f} %  {message}", flush=True)

    if args.family != "dfm":  # TinyTimeMixer / TimesFM: the same corpus, the family's own training loop
        from .data.population import corpus
        from .models import registry
        frame, corpus_card = corpus(args.patients, args.days, datasets=tuple(args.dataset))
        model = registry.get(args.family)(size=args.size if args.size != "base" else "small", steps=args.steps,
                                          batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed)
        folder = model.pretrain(frame, args.name, progress=None if args.json else show)
        print(json.dumps({"folder": str(folder), "corpus": corpus_card}, indent=2) if args.json else
              f"wrote {folder} ({args.family}, {args.steps} steps on {corpus_card['patients']} series)")
        return 0
    card = pretrain_dfm(args.name, args.size, args.steps, args.batch_size, args.lr, args.seed, args.patients,
                        args.days, args.dataset, out=args.out, command=command, progress=None if args.json else show)
    if args.json:
        _print_json({k: v for k, v in card.items() if k != "loss_history"})
    else:
        print(f"wrote {card['folder']}: {card['parameters']:,} parameters, {card['steps']} steps in "
              f"{card['train_seconds']} s, loss {card['loss_first']:.3f} -> {card['loss_last']:.3f}")
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

    p = sub.add_parser("baseline", help="score and store the reference forecasters (persistence, AR2)")
    p.add_argument("--dataset", default=COHORT_NAME)
    p.add_argument("--force", action="store_true", help="recompute even if already stored")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_baseline)

    p = sub.add_parser("leaderboard", help="the leaderboard of a dataset from stored runs")
    p.add_argument("--dataset", default=COHORT_NAME)
    p.add_argument("--horizon", type=int, default=30, help="minutes ahead (5..120, default 30)")
    p.add_argument("--target", default="cgm", choices=("cgm", "bg"), help="score against CGM or true glucose")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_leaderboard)

    p = sub.add_parser("train", help="train a family under a goal, backtest it and store the run")
    p.add_argument("--goal", required=True, choices=("single", "multi", "multi_holdout", "finetune"))
    p.add_argument("--family", required=True, help="a name from `python -m bgcore families`")
    p.add_argument("--params", help='hyper-parameters as JSON, e.g. \'{"n_estimators": 200}\'; lists make a '
                   'grid, run as a resumable sweep, e.g. \'{"window": [3, 6, 12]}\'')
    p.add_argument("--patients", default="all", help="comma-separated patient ids, or all")
    p.add_argument("--dataset", default=COHORT_NAME)
    p.add_argument("--parent", help="the multi-patient run to fine-tune (goal finetune)")
    p.add_argument("--scheduler", help="Dask scheduler address for sweep sub-tasks (default $BGCORE_DASK_SCHEDULER)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("runs", help="list stored runs")
    p.add_argument("--dataset", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_runs)

    p = sub.add_parser("show", help="describe one stored run")
    p.add_argument("run")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_show)

    p = sub.add_parser("families", help="list the forecaster families and their capability tags")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_families)

    p = sub.add_parser("pretrain", help="pretrain a diabetes foundation model (DFM) from scratch")
    p.add_argument("--family", default="dfm", choices=("dfm", "ttm", "timesfm"),
                   help="dfm (Chronos-2, default), or TinyTimeMixer / TimesFM on the same corpus")
    p.add_argument("--name", default="dfm-small", help="checkpoint name, stored in cache/weights/NAME")
    p.add_argument("--size", default="small", choices=("tiny", "small", "base"))
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--patients", type=int, default=100, help="virtual patients in the corpus")
    p.add_argument("--days", type=int, default=14, help="days per virtual patient")
    p.add_argument("--dataset", action="append", default=[], help="add the train parts of an imported dataset")
    p.add_argument("--out", help="write the checkpoint here instead of cache/weights/NAME")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_pretrain)

    p = sub.add_parser("datasets", help="list stored datasets")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_datasets)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv[argv.index(args.command) + 1:] if args.command in argv else []
    try:
        return args.func(args)
    except (DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        if args.debug:
            traceback.print_exc()
        else:
            print(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
                  file=sys.stderr)
        return 1
