"""Foundation-model benchmark: the shipped diabetes foundation model (DFM) on the embedded cohort.

    python bench/bench_foundation.py                  # zero-shot, cohort fine-tune, per-patient LoRA
    python bench/bench_foundation.py --patients adult#001,child#004 --finetune-steps 20 --json

Every row is scored with the evaluation protocol on the test parts of the chosen cohort
patients (mean over patients of RMSE against CGM, mg/dL) on the same origins:
persistence, the default multi-patient LightGBM (the best tree model of
`bench_models.py`), and the DFM used zero-shot, fully fine-tuned on the cohort's train
parts (multi-patient goal), and LoRA-adapted to each patient from the zero-shot model
(fine-tune goal). The DFM's pretraining corpus never contains a cohort patient (see its
model card, printed first). Writes ``cache/bench/foundation.csv``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import markdown_table  # noqa: E402
from bgcore.data.cohort import load_cohort  # noqa: E402
from bgcore.data.splits import temporal_split  # noqa: E402
from bgcore.evaluation.backtest import backtest  # noqa: E402
from bgcore.evaluation.scoring import score_patients  # noqa: E402
from bgcore.models import registry  # noqa: E402
from bgcore.models.foundation.weights import resolve  # noqa: E402
from bgcore.paths import cache_root  # noqa: E402


def scored(name: str, forecasts: pd.DataFrame, fit_s: float, predict_s: float) -> dict:
    at = score_patients(forecasts).groupby("horizon")[["rmse", "rmse_persistence"]].mean()
    row = {"model": name, "fit_s": round(fit_s, 1), "predict_s": round(predict_s, 1)}
    for h in (30, 60):
        row[f"rmse{h}"] = round(float(at.loc[h, "rmse"]), 2)
        row[f"persistence{h}"] = round(float(at.loc[h, "rmse_persistence"]), 2)
        row[f"skill{h}_pct"] = round(float(100 * (1 - at.loc[h, "rmse"] / at.loc[h, "rmse_persistence"])), 1)
    return row


def run(name, dataset, fit):
    t0 = time.perf_counter()
    models = fit()
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if isinstance(models, dict):  # one model per patient
        frames = [backtest(dataset, m, patients=[pid])[0] for pid, m in models.items()]
        forecasts = pd.concat(frames, ignore_index=True)
    else:
        forecasts = backtest(dataset, models)[0]
    row = scored(name, forecasts, fit_s, time.perf_counter() - t0)
    print(f"  {name}: RMSE@30 {row['rmse30']} (persistence {row['persistence30']}), RMSE@60 {row['rmse60']} "
          f"(persistence {row['persistence60']}); fit {row['fit_s']} s, predict {row['predict_s']} s", flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="dfm-small")
    parser.add_argument("--patients", default="all", help="comma-separated cohort patients (default: all 30)")
    parser.add_argument("--cohort-steps", type=int, default=300, help="full fine-tune steps on the cohort")
    parser.add_argument("--finetune-steps", type=int, default=50, help="LoRA steps per patient")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    source = resolve(args.weights, ("Chronos2Pipeline",))
    card_file = source.folder / "card.json"
    card = json.loads(card_file.read_text()) if card_file.is_file() else {}
    print(f"DFM {source.describe()}")
    if card:
        print(f"  pretrained by: {card['command']}\n  {card['parameters']:,} parameters, {card['steps']} steps, "
              f"{card['train_seconds']} s training (corpus ready in {card['corpus_seconds']} s); corpus: "
              f"{'; '.join(card['corpus']['sources'])}")
    cohort = load_cohort()
    if args.patients != "all":
        cohort = cohort.subset(args.patients.split(","))
    train = temporal_split(cohort.frame)["train"]
    dfm = registry.get("dfm")
    lgbm = registry.get("lightgbm")
    rows = [run("LightGBM (multi-patient)", cohort, lambda: lgbm().fit(train))]
    zero = dfm(weights=args.weights, mode="zero_shot").fit(train)
    rows.append(run("DFM zero-shot", cohort, lambda: zero))
    rows.append(run(f"DFM full fine-tune on the cohort ({args.cohort_steps} steps)", cohort,
                    lambda: dfm(weights=args.weights, mode="full", steps=args.cohort_steps).fit(train)))
    tuned = zero.set_params(finetune_mode="lora", finetune_steps=args.finetune_steps)
    rows.append(run(f"DFM + per-patient LoRA ({args.finetune_steps} steps each)", cohort, lambda: {
        pid: tuned.fine_tune(train[train["patient_id"] == pid].reset_index(drop=True))
        for pid in cohort.patient_ids}))
    table = pd.DataFrame(rows)
    out = cache_root() / "bench"
    out.mkdir(parents=True, exist_ok=True)
    table.assign(weights=source.describe(), patients=len(cohort.patient_ids)).to_csv(out / "foundation.csv",
                                                                                     index=False)
    if args.json:
        print(json.dumps({"card": {k: v for k, v in card.items() if k != "loss_history"}, "rows": rows}, indent=2))
    else:
        print(f"\n{len(cohort.patient_ids)} patients, RMSE vs CGM in mg/dL (mean over patients), skill = "
              "reduction against persistence on the same origins\n")
        print(markdown_table(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
