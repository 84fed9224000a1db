"""TinyTimeMixer and TimesFM: from scratch, pretrained on the DFM corpus, fine-tuned, or on local weights.

Both are Hugging Face-style torch models (TinyTimeMixer from sktime's bundled copy of
granite-tsfm, TimesFM from transformers). One training loop serves both: windows of the
train frame (the same `training_examples` as the other families: past only, targets from
the train part), masked loss on the 24 horizons (missing targets and missing context
readings are masked, never imputed into the loss), seeded, single-threaded, progress per
10 % of the steps, cancel between steps.

``weights`` empty means a new model of ``size`` trained on the train frame (*from
scratch*); `pretrain` trains one on the DFM corpus and writes it to ``cache/weights`` so
that later runs start from it (``weights=<name>``, *pretrained*); ``mode="zero_shot"``
with weights forecasts without training; ``mode="full"`` fine-tunes them. `fine_tune`
continues training on one patient. Both families read CGM only (their covariate
handling needs the future of the covariates, which the protocol never gives).
Saved models are safetensors (``save_pretrained``), loaded with ``use_safetensors``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...data.schema import DataError
from ...evaluation.reference import ForecastArrays
from ...paths import atomic_folder, cache_root
from ..base import Forecaster
from ..features import observed_past, training_examples
from ..registry import register
from . import weights as weights_mod
from .chronos import GLUCOSE_RANGE, _torch, quantile_forecast

SCALE = 50.0  # mg/dL: the loss is computed on (forecast - target) / SCALE
HORIZON = 24  # steps (120 min): every model forecasts all of them; fit/predict select the asked ones


class _HFForecaster(Forecaster):
    _tags = {"family": "foundation", "scope": "global", "covariates": (), "fine_tune": True, "zero_shot": True,
             "from_scratch": True, "needs_torch": True, "min_history_steps": 2, "min_train_steps": 288}
    _defaults = {"weights": "", "mode": "full", "size": "small", "steps": 300, "batch_size": 64,
                 "learning_rate": 1e-3, "finetune_steps": 100, "finetune_lr": 1e-4, "stride_min": 15,
                 "context_steps": 288, "seed": 0}
    _sizes: dict = {}
    _model_type = ""

    @classmethod
    def get_test_params(cls):
        return {"size": "tiny", "steps": 3, "batch_size": 16, "finetune_steps": 2, "stride_min": 60}

    # --- model hooks ------------------------------------------------------------------
    def _model_class(self):
        raise NotImplementedError

    def _new_model(self):
        raise NotImplementedError

    def _forward(self, model, past, mask):
        """Forecasts ``(B, HORIZON)`` in mg/dL, and quantiles ``(B, HORIZON, Q)`` or None."""
        raise NotImplementedError

    # --- fit / fine-tune --------------------------------------------------------------
    def _fit(self, train):
        torch = _torch()
        torch.manual_seed(self.seed)
        if self.weights:
            source = weights_mod.resolve(self.weights, model_types=(self._model_type,))
            self.net_ = self._model_class().from_pretrained(str(source.folder), use_safetensors=True)
            self.base_ = weights_mod.reference(source)
            self.lineage_ = [f"weights {source.describe()}"]
            self.delta_ = None
            if self.mode == "zero_shot":
                self.net_.eval()
                return
            if self.mode != "full":
                raise ValueError(f"mode must be zero_shot or full for {self.name}, got {self.mode!r}")
        else:
            self.net_ = self._new_model()
            self.base_ = {"spec": "", "source": "from scratch", "description": f"new {self.size} {self.name}"}
            self.lineage_ = [f"new {self.size} {self.name} (seed {self.seed})"]
            self.delta_ = None
        self._train(train, self.steps, self.learning_rate, "fit")

    def _fine_tune(self, train):
        import copy
        self.net_ = copy.deepcopy(self.net_)  # the parent model is left as it was
        self._train(train, self.finetune_steps, self.finetune_lr, "fine-tune")

    def _context(self):
        return int(getattr(self.net_.config, "context_length", self.context_steps))

    def _arrays(self, cgm):
        """Past values (filled) and observed mask, left-padded to the model's context length."""
        L = self._context()
        cgm = cgm[:, -L:]
        past, mask = observed_past(cgm)  # gaps forward-filled (TimesFM has no mask), and masked for TTM
        if cgm.shape[1] < L:
            pad = L - cgm.shape[1]
            past = np.pad(past, ((0, 0), (pad, 0)), mode="edge")
            mask = np.pad(mask, ((0, 0), (pad, 0)))
        return past.astype(np.float32), mask

    def _train(self, frame, steps, lr, label):
        torch = _torch()
        batch, targets = training_examples(frame, np.arange(1, HORIZON + 1), self._context(),
                                           stride_steps=max(1, self.stride_min // 5))
        past, mask = self._arrays(batch.cgm)
        y = torch.from_numpy(np.nan_to_num(targets).astype(np.float32))
        ok = torch.from_numpy(np.isfinite(targets))
        past_t, mask_t = torch.from_numpy(past), torch.from_numpy(mask)
        rng = np.random.default_rng(self.seed)
        net = self.net_
        net.train()
        opt = torch.optim.AdamW(net.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, steps // 20)) *
                                                  max(0.0, 1 - s / steps))
        history = []
        for step in range(steps):
            if self._cancelled():
                raise InterruptedError(f"{self.name} {label} cancelled")
            idx = torch.from_numpy(rng.integers(0, len(y), min(self.batch_size, len(y))))
            loss = self._loss(net, past_t[idx], mask_t[idx], y[idx], ok[idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            history.append(float(loss.detach()))
            if (step + 1) % max(1, steps // 10) == 0 or step + 1 == steps:
                self._report((step + 1) / steps, f"{self.name} {label}: step {step + 1}/{steps}, "
                             f"loss {np.mean(history[-10:]):.4f}")
        net.eval()
        self.delta_ = "full"
        self.lineage_ = [*self.lineage_, f"{label}: {steps} steps, lr {lr:g}, "
                                         f"{frame['patient_id'].nunique()} patient(s), {len(y)} windows"]
        self.loss_ = history[-1] if history else None

    def _levels(self):
        return None

    def _loss(self, net, past, mask, y, ok):
        """Training loss of one batch: masked squared error (+ pinball loss for quantile heads)."""
        point, quantiles = self._forward(net, past, mask)
        return _masked_loss(_torch(), point, quantiles, y, ok, self._levels())

    # --- predict ------------------------------------------------------------------------
    def _predict(self, batch):
        torch = _torch()
        past, mask = self._arrays(batch.cgm)
        points, quants = [], []
        with torch.no_grad():
            for start in range(0, len(past), 512):
                p, q = self._forward(self.net_, torch.from_numpy(past[start:start + 512]),
                                     torch.from_numpy(mask[start:start + 512]))
                points.append(p.numpy())
                if q is not None:
                    quants.append(q.numpy())
        point = np.clip(np.concatenate(points).astype(float)[:, self.steps_ - 1], *GLUCOSE_RANGE)
        if not quants:
            return ForecastArrays(point)
        q = quantile_forecast(np.concatenate(quants)[:, self.steps_ - 1, :], (*self._levels(),)).quantiles
        return ForecastArrays(point, q, tuple(self._levels()))

    def weights_info(self) -> dict:
        self._require_fitted()
        return {**self.base_, "delta": self.delta_ or "none",
                "lineage": list(self.lineage_), "parameters": int(sum(p.numel() for p in self.net_.parameters()))}

    # --- persistence ------------------------------------------------------------------
    def _save_state(self, folder):
        self.net_.save_pretrained(folder / "model", safe_serialization=True)
        (folder / "state.json").write_text(json.dumps({"base": self.base_, "lineage": self.lineage_,
                                                          "delta": self.delta_}, indent=2))

    def _load_state(self, folder):
        state = json.loads((folder / "state.json").read_text())
        self.base_, self.lineage_, self.delta_ = state["base"], state["lineage"], state["delta"]
        self.net_ = self._model_class().from_pretrained(str(folder / "model"), use_safetensors=True).eval()

    def pretrain(self, frame, name: str, progress=None, cancel=None) -> Path:
        """Train a new model on `frame` (e.g. the DFM corpus) and store it as ``cache/weights/<name>``."""
        if not weights_mod.NAME.match(name):
            raise DataError(f"weights name {name!r} is not allowed", expected=weights_mod.NAME.pattern)
        model = self.clone(weights="", mode="full").fit(frame, progress=progress, cancel=cancel)
        final = cache_root() / "weights" / name
        final.parent.mkdir(parents=True, exist_ok=True)
        with atomic_folder(final, replace=True) as tmp:
            model.net_.save_pretrained(tmp, safe_serialization=True)
            (tmp / "card.json").write_text(json.dumps({"family": self.name, "params": model.get_params(),
                                                       "lineage": model.lineage_, "loss_last": model.loss_},
                                                      indent=2, default=str))
        return final


def _masked_loss(torch, point, quantiles, y, ok, levels):
    err = (point - y) / SCALE
    okf = ok.float()
    loss = (err ** 2 * okf).sum() / okf.sum().clamp(min=1)
    if quantiles is not None:
        lv = torch.tensor(levels, dtype=point.dtype)
        diff = (y.unsqueeze(-1) - quantiles) / SCALE
        pinball = torch.maximum(lv * diff, (lv - 1) * diff).mean(-1)
        loss = loss + (pinball * okf).sum() / okf.sum().clamp(min=1)
    return loss


@register
class TinyTimeMixer(_HFForecaster):
    """TinyTimeMixer (IBM granite-tsfm, sktime's copy): an MLP-mixer over CGM patches; from scratch or weights."""

    name = "ttm"
    _tags = {"requires": ("torch", "sktime", "transformers", "safetensors")}
    _model_type = "tinytimemixer"
    _sizes = {"tiny": {"d_model": 16, "num_layers": 1, "decoder_num_layers": 1, "decoder_d_model": 8},
              "small": {"d_model": 64, "num_layers": 3, "decoder_num_layers": 2, "decoder_d_model": 32}}

    def _model_class(self):
        from sktime.libs.granite_ttm import TinyTimeMixerForPrediction
        return TinyTimeMixerForPrediction

    def _new_model(self):
        from sktime.libs.granite_ttm import TinyTimeMixerConfig
        config = TinyTimeMixerConfig(context_length=self.context_steps, patch_length=8, patch_stride=8,
                                     prediction_length=HORIZON, num_input_channels=1, scaling="std",
                                     **self._sizes[self.size])
        return self._model_class()(config)

    def _forward(self, model, past, mask):
        out = model(past_values=past.unsqueeze(-1), past_observed_mask=mask.unsqueeze(-1), return_loss=False)
        pred = out.prediction_outputs[..., 0]
        if pred.shape[1] < HORIZON:
            raise DataError(f"the TinyTimeMixer weights forecast {pred.shape[1]} steps, fewer than {HORIZON}",
                            expected=f"prediction_length >= {HORIZON}")
        return pred[:, :HORIZON], None


@register
class TimesFM(_HFForecaster):
    """TimesFM (Google, transformers): decoder-only patched transformer with quantile head; from scratch or weights."""

    name = "timesfm"
    _tags = {"probabilistic": True, "requires": ("torch", "transformers", "safetensors")}
    _model_type = "timesfm"
    _sizes = {"tiny": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "head_dim": 16},
              "small": {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 3,
                        "num_attention_heads": 4, "head_dim": 32}}

    def _model_class(self):
        from transformers import TimesFmModelForPrediction
        return TimesFmModelForPrediction

    def _new_model(self):
        from transformers import TimesFmConfig
        config = TimesFmConfig(patch_length=32, context_length=self.context_steps, horizon_length=32,
                               **self._sizes[self.size])
        return self._model_class()(config)

    def _levels(self):
        return tuple(float(q) for q in self.net_.config.quantiles)

    def _forward(self, model, past, mask):
        # TimesFM has no missing-value mask: gaps are forward-filled (as they are at forecast time)
        out = model(past_values=list(past), freq=[0] * len(past), return_dict=True)
        full = out.full_predictions[:, :HORIZON, :]
        return out.mean_predictions[:, :HORIZON], full[:, :, 1:]
