"""Chronos foundation models: the diabetes foundation model (DFM), Chronos-2, Chronos-Bolt, Chronos (T5).

All weights are local (see `weights`). The Chronos-2 families (``dfm``, ``chronos2``) read
CGM with insulin and carbs as *past* covariates (the future of the covariates is never
given: no look-ahead) and forecast quantiles for the 24 horizons at once; the point
forecast is the median. `fit` does what ``mode`` says:

- ``zero_shot``: load the weights, no training (the train frame is only checked);
- ``full``: fine-tune every weight on the train parts (a copy; the source is untouched);
- ``lora``: train a LoRA adapter (``peft``) on the train parts.

`fine_tune` adapts a fitted model to one patient the same way (``finetune_mode``). A
model saves only what it changed: a zero-shot model saves a reference to its weights
(spec + sha256, checked on load), a LoRA model its adapter, a fully tuned model its
weights (safetensors). Training is seeded and single-threaded, reports progress per step
and stops (raising InterruptedError, nothing kept) when cancelled.

``chronos_bolt`` and ``chronos_t5`` are zero-shot only (they have no trainer in
chronos-forecasting) and univariate.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ...evaluation.reference import ForecastArrays
from ...paths import cache_root
from ..base import Forecaster
from ..registry import register
from . import weights as weights_mod

LEVELS = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
CHRONOS2_QUANTILES = [0.01, 0.05] + [round(0.1 * k, 1) for k in range(1, 10)] + [0.95, 0.99]
GLUCOSE_RANGE = (20.0, 600.0)  # mg/dL: forecasts are clipped to what a sensor or meter can report
REQUIRES = ("torch", "chronos", "transformers", "safetensors")

# Chronos-2 architectures small enough to train on CPU (5-minute steps, patches of 40 minutes).
SIZES = {
    "tiny": {"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 1, "num_heads": 4},
    "small": {"d_model": 128, "d_kv": 32, "d_ff": 512, "num_layers": 4, "num_heads": 4},
    "base": {"d_model": 256, "d_kv": 32, "d_ff": 1024, "num_layers": 6, "num_heads": 8},
}
PATCH = 8


def _torch():
    from transformers.utils import logging as hf_logging

    from ..deep import _torch as single_threaded_torch
    hf_logging.disable_progress_bar()  # weight loading/saving bars would flood job logs
    return single_threaded_torch()


def quantile_forecast(q, levels=LEVELS) -> ForecastArrays:
    """Forecast from quantiles ``(n, H, Q)``: clipped to the glucose range, sorted, median as the point."""
    q = np.sort(np.clip(np.asarray(q, dtype=float), *GLUCOSE_RANGE), axis=2)
    return ForecastArrays(q[:, :, list(levels).index(0.5)], q, tuple(levels))


def sample_forecast(draws) -> ForecastArrays:
    """Forecast from sample paths ``(n, samples, H)``: their `LEVELS` quantiles (median as the point)."""
    return quantile_forecast(np.moveaxis(np.quantile(np.asarray(draws, dtype=float), LEVELS, axis=1), 0, -1))


def chronos2_config(size: str = "small", context_steps: int = 288, horizon_steps: int = 24):
    """A Chronos-2 configuration for a model trained from scratch on 5-minute CGM."""
    from chronos.chronos2 import Chronos2CoreConfig
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    return Chronos2CoreConfig(
        **SIZES[size], dropout_rate=0.1,
        chronos_config={"context_length": context_steps, "input_patch_size": PATCH, "input_patch_stride": PATCH,
                        "output_patch_size": PATCH, "quantiles": CHRONOS2_QUANTILES, "use_reg_token": True,
                        "use_arcsinh": True, "max_output_patches": -(-horizon_steps // PATCH),
                        "time_encoding_scale": context_steps},
        chronos_pipeline_class="Chronos2Pipeline", architectures=["Chronos2Model"])


def new_chronos2(size: str = "small", seed: int = 0, context_steps: int = 288):
    """A randomly initialised (seeded) Chronos-2 pipeline."""
    torch = _torch()
    from chronos.chronos2 import Chronos2Model, Chronos2Pipeline
    torch.manual_seed(seed)
    return Chronos2Pipeline(Chronos2Model(chronos2_config(size, context_steps)).eval())


def n_parameters(pipeline) -> int:
    return int(sum(p.numel() for p in pipeline.model.parameters()))


# --- inputs ---------------------------------------------------------------------------
def series_inputs(frame, covariates=("insulin", "carbs")) -> list[dict]:
    """One Chronos-2 input per patient: CGM (NaN gaps kept) with past covariates (missing = 0)."""
    out = []
    for _, part in frame.groupby("patient_id", observed=True, sort=True):
        item = {"target": part["cgm"].to_numpy(dtype=np.float32)}
        if covariates:
            item["past_covariates"] = {c: np.nan_to_num(part[c].to_numpy(dtype=np.float32)) for c in covariates}
        out.append(item)
    return out


def context_inputs(batch, covariates=("insulin", "carbs"), context_steps: int = 288) -> list[dict]:
    """One Chronos-2 input per origin of a `ContextBatch` (leading NaN before the record are dropped)."""
    cgm = batch.cgm[:, -context_steps:].astype(np.float32)
    first = np.argmax(np.isfinite(cgm), axis=1)
    covs = {c: np.nan_to_num(getattr(batch, c)[:, -context_steps:].astype(np.float32)) for c in covariates}
    out = []
    for i, start in enumerate(first):
        item = {"target": cgm[i, start:]}
        if covariates:
            item["past_covariates"] = {c: v[i, start:] for c, v in covs.items()}
        out.append(item)
    return out


# --- training ---------------------------------------------------------------------------
def _callback(progress, cancel, total: int, label: str, history: list | None):
    from transformers import TrainerCallback

    class Report(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if history is not None and logs and "loss" in logs:
                history.append((int(state.global_step), float(logs["loss"])))

        def on_step_end(self, args, state, control, **kwargs):
            if cancel is not None and cancel():
                raise InterruptedError(f"{label} cancelled")
            if progress is not None and (state.global_step % 5 == 0 or state.global_step == total):
                loss = next((h["loss"] for h in reversed(state.log_history) if "loss" in h), None)
                progress(state.global_step / total, f"{label}: step {state.global_step}/{total}"
                         + (f", loss {loss:.3f}" if loss is not None else ""))

    return Report()


def train_chronos2(pipeline, inputs: list[dict], *, mode: str, steps: int, learning_rate: float, batch_size: int,
                   seed: int, context_steps: int, lora_rank: int = 8, progress=None, cancel=None,
                   label: str = "training", history: list | None = None):
    """Train a copy of a Chronos-2 pipeline; returns ``(pipeline, adapter_files)`` in eval mode.

    For ``mode="lora"`` the adapter is merged into the returned weights for inference and
    also returned as its files (``{name: bytes}``), so it can be stored on its own.
    `history`, when given, receives ``(step, training loss)`` every 5 steps.
    """
    import logging
    torch = _torch()
    torch.manual_seed(seed)  # the LoRA matrices are initialised before the trainer seeds itself
    if mode not in ("full", "lora"):
        raise ValueError(f"mode must be 'full' or 'lora', got {mode!r}")
    if mode == "lora":
        import peft  # noqa: F401 - chronos silently falls back to a full fine-tune without it
    logging.getLogger("chronos").setLevel(logging.WARNING)
    lora = {"r": lora_rank, "lora_alpha": 2 * lora_rank,
            "target_modules": ["self_attention.q", "self_attention.k", "self_attention.v", "self_attention.o",
                               "output_patch_embedding.output_layer"]} if mode == "lora" else None
    tmp_root = cache_root() / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        tuned = pipeline.fit(
            inputs, prediction_length=24, finetune_mode=mode, lora_config=lora, context_length=context_steps,
            learning_rate=learning_rate, num_steps=steps, batch_size=batch_size, output_dir=tmp,
            min_past=min(context_steps, 144), callbacks=[_callback(progress, cancel, steps, label, history)],
            remove_printer_callback=True, disable_tqdm=True, seed=seed, data_seed=seed, logging_steps=1 if steps < 10 else 5,
            warmup_steps=max(1, steps // 20), save_strategy="no", optim="adamw_torch")
        adapter = None
        if mode == "lora":
            folder = Path(tmp) / "finetuned-ckpt"
            adapter = {p.name: p.read_bytes() for p in folder.iterdir()
                       if p.name in ("adapter_config.json", "adapter_model.safetensors")}
            tuned.model = tuned.model.merge_and_unload()
    tuned.model.eval()  # the trainer leaves dropout on
    return tuned, adapter


def load_pipeline(folder: Path, pipelines=("Chronos2Pipeline",)):
    """Load a Chronos pipeline from a checked local folder (safetensors only)."""
    _torch()
    from chronos import BaseChronosPipeline
    source = weights_mod.resolve(str(folder), pipelines)
    pipeline = BaseChronosPipeline.from_pretrained(str(source.folder), use_safetensors=True)
    pipeline.model.eval()
    return pipeline, source


def apply_adapter(pipeline, folder: Path):
    """Merge a stored LoRA adapter into a pipeline's model (a copy of it)."""
    import copy

    from peft import PeftModel
    model = PeftModel.from_pretrained(copy.deepcopy(pipeline.model), str(folder), is_trainable=False)
    pipeline = type(pipeline)(model=model.merge_and_unload())
    pipeline.model.eval()
    return pipeline


# --- forecasters -----------------------------------------------------------------------
class _Chronos2Family(Forecaster):
    _tags = {"family": "foundation", "scope": "global", "covariates": ("insulin", "carbs"), "probabilistic": True,
             "fine_tune": True, "zero_shot": True, "needs_torch": True, "requires": (*REQUIRES, "peft"),
             "min_history_steps": 2, "min_train_steps": 288}
    _defaults = {"weights": "dfm-small", "mode": "zero_shot", "steps": 200, "learning_rate": 1e-4,
                 "batch_size": 32, "finetune_mode": "lora", "finetune_steps": 100, "finetune_lr": 1e-3,
                 "lora_rank": 8, "context_steps": 288, "use_covariates": True, "seed": 0}
    _grid = {"mode": ["zero_shot", "lora", "full"]}

    @classmethod
    def get_test_params(cls):
        return {"weights": str(tiny_checkpoint()), "mode": "lora", "steps": 2, "batch_size": 8,
                "finetune_steps": 2}

    def _fit(self, train):
        if self.mode not in ("zero_shot", "full", "lora"):
            raise ValueError(f"mode must be zero_shot, full or lora, got {self.mode!r}")
        self.pipe_, source = load_pipeline(self.weights)
        self.base_ = weights_mod.reference(source)
        self.delta_, self.adapter_ = None, None
        self.lineage_ = [f"weights {source.describe()}"]
        if self.mode != "zero_shot":
            self._train(train, self.mode, self.steps, self.learning_rate, "fit")

    def _fine_tune(self, train):
        self._train(train, self.finetune_mode, self.finetune_steps, self.finetune_lr, "fine-tune")

    def _train(self, train, mode, steps, lr, label):
        n = train["patient_id"].nunique()
        self.pipe_, adapter = train_chronos2(
            self.pipe_, series_inputs(train, self.covariates()), mode=mode, steps=steps, learning_rate=lr,
            batch_size=self.batch_size, seed=self.seed, context_steps=self.context_steps, lora_rank=self.lora_rank,
            progress=self._progress, cancel=self._cancel, label=f"{self.name} {label}")
        # An adapter can be stored alone only on top of the unchanged source weights.
        self.delta_, self.adapter_ = (("lora", adapter) if mode == "lora" and self.delta_ is None
                                      else ("full", None))
        self.lineage_ = [*self.lineage_, f"{label}: {mode}, {steps} steps, lr {lr:g}, {n} patient(s)"]

    def _predict(self, batch):
        torch = _torch()
        horizon = int(self.steps_.max())
        with torch.no_grad():
            quantiles, _ = self.pipe_.predict_quantiles(
                context_inputs(batch, self.covariates(), self.context_steps), prediction_length=horizon,
                quantile_levels=list(LEVELS), batch_size=256)
        return quantile_forecast(np.stack([t[0].numpy() for t in quantiles])[:, self.steps_ - 1, :])

    def weights_info(self) -> dict:
        """Which weights this model runs on, where they came from and what was trained on top."""
        self._require_fitted()
        return {**self.base_, "delta": self.delta_ or "none", "lineage": list(self.lineage_),
                "parameters": n_parameters(self.pipe_)}

    def _save_state(self, folder):
        state = {"base": self.base_, "delta": self.delta_, "lineage": self.lineage_}
        if self.delta_ == "full":
            self.pipe_.save_pretrained(folder / "model")
        elif self.delta_ == "lora":
            (folder / "adapter").mkdir()
            for name, data in self.adapter_.items():
                (folder / "adapter" / name).write_bytes(data)
        (folder / "state.json").write_text(json.dumps(state, indent=2))

    def _load_state(self, folder):
        state = json.loads((folder / "state.json").read_text())
        self.base_, self.delta_, self.lineage_, self.adapter_ = state["base"], state["delta"], state["lineage"], None
        if self.delta_ == "full":
            self.pipe_, _ = load_pipeline(folder / "model")
            return
        self.pipe_, source = load_pipeline(self.base_["spec"])
        weights_mod.check_unchanged(source, self.base_)
        if self.delta_ == "lora":
            self.adapter_ = {p.name: p.read_bytes() for p in (folder / "adapter").iterdir()}
            self.pipe_ = apply_adapter(self.pipe_, folder / "adapter")


@register
class DiabetesFoundationModel(_Chronos2Family):
    """Diabetes foundation model: Chronos-2 pretrained from scratch on simulated CGM, insulin and carbs."""

    name = "dfm"
    _tags = {"from_scratch": True}


@register
class Chronos2Forecaster(_Chronos2Family):
    """Chronos-2 from weights you have (local folder or HF cache): zero-shot, full or LoRA fine-tune."""

    name = "chronos2"
    _tags = {"needs_user_weights": True}
    _defaults = {**_Chronos2Family._defaults, "weights": "amazon/chronos-2", "learning_rate": 1e-5}


class _ChronosZeroShot(Forecaster):
    _tags = {"family": "foundation", "scope": "global", "covariates": (), "probabilistic": True,
             "zero_shot": True, "needs_user_weights": True, "needs_torch": True, "requires": REQUIRES,
             "min_history_steps": 2, "min_train_steps": 0}
    _pipelines: tuple = ()
    _defaults = {"weights": "", "context_steps": 288}

    def _fit(self, train):
        self.pipe_, source = load_pipeline(self.weights, self._pipelines)
        self.base_ = weights_mod.reference(source)

    def weights_info(self) -> dict:
        self._require_fitted()
        return {**self.base_, "delta": "none", "lineage": [f"weights {self.base_['description']}"],
                "parameters": n_parameters(self.pipe_)}

    def _contexts(self, batch):
        torch = _torch()
        return [torch.from_numpy(item["target"]) for item in context_inputs(batch, (), self.context_steps)]

    def _predict(self, batch):
        torch = _torch()
        with torch.no_grad():
            q, _ = self.pipe_.predict_quantiles(self._contexts(batch), prediction_length=int(self.steps_.max()),
                                                quantile_levels=list(LEVELS), **self._predict_kwargs())
        return quantile_forecast(q.numpy()[:, self.steps_ - 1, :])

    def _predict_kwargs(self) -> dict:
        return {}

    def _save_state(self, folder):
        (folder / "state.json").write_text(json.dumps({"base": self.base_}, indent=2))

    def _load_state(self, folder):
        self.base_ = json.loads((folder / "state.json").read_text())["base"]
        self.pipe_, source = load_pipeline(self.base_["spec"], self._pipelines)
        weights_mod.check_unchanged(source, self.base_)


@register
class ChronosBoltForecaster(_ChronosZeroShot):
    """Chronos-Bolt zero-shot from weights you have (local folder or HF cache), CGM only."""

    name = "chronos_bolt"
    _pipelines = ("ChronosBoltPipeline",)
    _defaults = {**_ChronosZeroShot._defaults, "weights": "amazon/chronos-bolt-small"}

    @classmethod
    def get_test_params(cls):
        return {"weights": str(tiny_checkpoint("bolt"))}


@register
class ChronosT5Forecaster(_ChronosZeroShot):
    """Chronos (T5) zero-shot from weights you have, CGM only; sampled, so slow on CPU."""

    name = "chronos_t5"
    _pipelines = ("ChronosPipeline",)
    _defaults = {**_ChronosZeroShot._defaults, "weights": "amazon/chronos-t5-small", "num_samples": 20,
                 "seed": 0}

    @classmethod
    def get_test_params(cls):
        return {"weights": str(tiny_checkpoint("t5")), "num_samples": 4, "context_steps": 64}

    def _predict(self, batch):
        _torch().manual_seed(self.seed)  # sampled forecasts: seeded so a run can be repeated
        return super()._predict(batch)

    def _predict_kwargs(self):
        return {"num_samples": self.num_samples}


# --- tiny checkpoints the project builds (tests, demos) --------------------------------
def tiny_checkpoint(kind: str = "chronos2", seed: int = 0) -> Path:
    """A tiny randomly initialised Chronos checkpoint under ``cache/weights`` (built once per cache)."""
    folder = cache_root() / "weights" / f"tiny-{kind}"
    if (folder / "config.json").is_file():
        return folder
    torch = _torch()
    torch.manual_seed(seed)
    tmp = folder.parent / f".tmp-{folder.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    if kind == "chronos2":
        new_chronos2("tiny", seed).save_pretrained(tmp)
    elif kind == "bolt":
        from chronos.chronos_bolt import ChronosBoltModelForForecasting
        from transformers import T5Config
        config = T5Config(d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=4,
                          pad_token_id=0, decoder_start_token_id=0, chronos_pipeline_class="ChronosBoltPipeline",
                          architectures=["ChronosBoltModelForForecasting"],
                          chronos_config={"context_length": 288, "prediction_length": 24, "input_patch_size": 8,
                                          "input_patch_stride": 8, "quantiles": CHRONOS2_QUANTILES[1:-1],
                                          "use_reg_token": True})
        ChronosBoltModelForForecasting(config).save_pretrained(tmp)
    elif kind == "t5":
        from transformers import T5Config, T5ForConditionalGeneration
        n_tokens = 256
        config = T5Config(d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=4,
                          vocab_size=n_tokens, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
                          chronos_pipeline_class="ChronosPipeline", architectures=["T5ForConditionalGeneration"],
                          chronos_config={"tokenizer_class": "MeanScaleUniformBins",
                                          "tokenizer_kwargs": {"low_limit": -15.0, "high_limit": 15.0},
                                          "context_length": 64, "prediction_length": 24, "n_tokens": n_tokens,
                                          "n_special_tokens": 2, "pad_token_id": 0, "eos_token_id": 1,
                                          "use_eos_token": True, "model_type": "seq2seq", "num_samples": 4,
                                          "temperature": 1.0, "top_k": 50, "top_p": 1.0})
        T5ForConditionalGeneration(config).save_pretrained(tmp)
    else:
        raise ValueError(f"unknown tiny checkpoint kind {kind!r}")
    tmp.rename(folder)
    return folder
