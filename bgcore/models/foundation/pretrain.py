"""Pretraining the diabetes foundation model (DFM) from scratch, with a model card.

``python -m bgcore pretrain`` (or `JobManager.submit_pretrain`) simulates the
pretraining population (`bgcore.data.population`, never the embedded cohort's patients),
builds a randomly initialised Chronos-2 of the chosen size with a fixed seed, trains every
weight on CGM with insulin and carbs as past covariates, and writes the checkpoint
(``config.json`` + ``model.safetensors``) with ``MODEL_CARD.md`` and ``card.json`` to
``cache/weights/<name>`` (atomically: a cancelled or failed run leaves nothing), where
the ``dfm`` family finds it as ``weights=<name>``. The shipped ``dfm-small`` checkpoint
was made by this command; its card records the exact command line.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import time
from pathlib import Path

from ...data.population import corpus as build_corpus
from ...paths import atomic_folder, cache_root, sha256_file
from .chronos import SIZES, n_parameters, new_chronos2, series_inputs, train_chronos2
from .weights import NAME

CORPUS_SHARE = 0.25  # of the progress bar: simulation (when not cached), then training


def pretrain_dfm(name: str = "dfm-small", size: str = "small", steps: int = 2000, batch_size: int = 32,
                 learning_rate: float = 1e-3, seed: int = 0, n_patients: int = 100, days: int = 14,
                 datasets=(), out: str | Path | None = None, command: str | None = None,
                 progress=None, cancel=None) -> dict:
    """Pretrain a DFM and write it with its model card; returns the card.

    Parameters
    ----------
    name : str
        Checkpoint name (``cache/weights/<name>`` unless `out` is given).
    size : {"tiny", "small", "base"}
        Architecture (see `chronos.SIZES`).
    steps, batch_size, learning_rate, seed :
        Training settings (batch = series incl. covariates, as Chronos-2 counts them).
    n_patients, days, datasets :
        Corpus: virtual population size and length, plus train parts of imported datasets.
    """
    if not NAME.match(name):
        raise ValueError(f"checkpoint name {name!r} must match {NAME.pattern}")
    report = progress or (lambda fraction, message: None)
    started = time.perf_counter()
    frame, corpus_card = build_corpus(n_patients, days, datasets=tuple(datasets),
                                      progress=lambda f, m: report(CORPUS_SHARE * f, m), cancel=cancel)
    simulated_s = time.perf_counter() - started
    pipeline = new_chronos2(size, seed)
    history: list = []
    t0 = time.perf_counter()
    tuned, _ = train_chronos2(pipeline, series_inputs(frame), mode="full", steps=steps, learning_rate=learning_rate,
                              batch_size=batch_size, seed=seed, context_steps=288, history=history,
                              progress=lambda f, m: report(CORPUS_SHARE + (1 - CORPUS_SHARE) * f, m),
                              cancel=cancel, label="DFM pretraining")
    train_s = time.perf_counter() - t0
    final = Path(out) if out is not None else cache_root() / "weights" / name
    final.parent.mkdir(parents=True, exist_ok=True)
    card = {
        "name": name, "architecture": f"Chronos-2 encoder, size {size}: {SIZES[size]}, patch 8 steps (40 min), "
                                      "context 288 steps (24 h), 24 output steps (120 min), 13 quantiles",
        "parameters": n_parameters(tuned), "seed": seed, "steps": steps, "batch_size": batch_size,
        "learning_rate": learning_rate, "covariates": ["insulin", "carbs"], "corpus": corpus_card,
        "loss_first": history[0][1] if history else None, "loss_last": history[-1][1] if history else None,
        "loss_history": history, "train_seconds": round(train_s, 1), "corpus_seconds": round(simulated_s, 1),
        "command": command or (f"python -m bgcore pretrain --name {name} --size {size} --steps {steps} "
                               f"--batch-size {batch_size} --lr {learning_rate:g} --seed {seed} "
                               f"--patients {n_patients} --days {days}"
                               + "".join(f" --dataset {d}" for d in sorted(datasets))),
        "versions": {pkg: importlib.metadata.version(pkg) for pkg in ("chronos-forecasting", "torch", "transformers")},
        "machine": f"{platform.machine()}, {platform.system()}, CPU, 1 torch thread",
        "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    with atomic_folder(final, replace=True) as tmp:
        tuned.save_pretrained(tmp)
        card["sha256"] = sha256_file(tmp / "model.safetensors")
        (tmp / "card.json").write_text(json.dumps(card, indent=2))
        (tmp / "MODEL_CARD.md").write_text(model_card(card))
    report(1.0, f"DFM {name} written to {final}")
    return {**card, "folder": str(final)}


def model_card(card: dict) -> str:
    """The markdown model card of a pretrained DFM."""
    corpus = card["corpus"]
    return "\n".join([
        f"# Diabetes foundation model `{card['name']}`", "",
        "A Chronos-2 forecaster trained **from scratch** by bgcore on simulated type 1 diabetes data. It forecasts "
        "CGM (mg/dL) 5 to 120 minutes ahead as 13 quantiles, reading the last 24 hours of CGM with insulin "
        "(U per 5 min) and logged carbs (g) as past covariates. Research use only; not a medical device.", "",
        "## Made by", "", f"    {card['command']}", "",
        f"seed {card['seed']}, {card['steps']} steps, batch {card['batch_size']} series, learning rate "
        f"{card['learning_rate']:g} (linear decay, 5 % warm-up), AdamW; {card['train_seconds']} s of training on "
        f"{card['machine']} (corpus ready in {card['corpus_seconds']} s: simulated on first use, read from "
        "cache/corpus after).", "",
        "## Architecture", "", f"{card['architecture']}; {card['parameters']:,} parameters.", "",
        "## Corpus", "", *[f"- {s}" for s in corpus["sources"]],
        f"- {corpus['patients']} series, {corpus['readings']:,} CGM readings", "",
        "The virtual patients are perturbations of the 30 UVA/Padova parameter sets with their own meals, behaviour "
        "and sensor noise (master seed 2026, variants from 1000); none is a patient of the embedded cohort, so the "
        "cohort's test parts are never in the corpus. Imported datasets contribute their train parts only.", "",
        "## Training loss", "",
        f"first logged {card['loss_first']:.4f}, last {card['loss_last']:.4f} (quantile loss on the scaled series)."
        if card["loss_first"] is not None else "not logged", "",
        "## Versions", "", *[f"- {k} {v}" for k, v in card["versions"].items()], "",
        f"weights sha256 `{card.get('sha256', '')}`; created {card['created']}.", ""])
