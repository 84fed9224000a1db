"""Lag-Llama (sktime's bundled copy): a decoder-only transformer over lagged CGM, sampled autoregressively.

Trained here from scratch (or pretrained on the DFM corpus with `pretrain`, then fine-tuned),
with the model's own Student-t negative log-likelihood on the next step, masked where CGM is
missing. Lags are chosen for 5-minute CGM (up to 16 hours back) so that a context of 8 hours
plus its lags fits in the protocol's 24-hour window. Forecasts are ``num_samples`` sample
paths (seeded); the point forecast is their median.

Cost: sampling is autoregressive, one forward pass of every sample path per 5-minute step,
so prediction grows with ``num_samples`` x origins x 24 steps; ``num_samples`` is capped at
``MAX_SAMPLES``. The published Lag-Llama checkpoint is not loaded: it is a pickled Lightning
file (never loaded from outside the cache) whose lags reach 1092 steps, beyond the
protocol's 288-step context.
"""

from __future__ import annotations

import json

import numpy as np

from ...data.schema import DataError
from ..registry import register
from .chronos import _torch, sample_forecast
from .hf_models import HORIZON, _HFForecaster

LAGS = tuple(range(12)) + (17, 23, 35, 47, 71, 95, 143, 191)  # 0-based steps back (5 min each)
MAX_SAMPLES = 100
SIZES = {"tiny": {"n_layer": 1, "n_embd_per_head": 8, "n_head": 2},
         "small": {"n_layer": 4, "n_embd_per_head": 16, "n_head": 4}}


@register
class LagLlama(_HFForecaster):
    """Lag-Llama (sktime's copy): probabilistic decoder over lagged CGM, trained here; sampled, so slow to predict."""

    name = "lag_llama"
    _tags = {"probabilistic": True, "zero_shot": False, "requires": ("torch", "sktime", "gluonts", "safetensors"),
             "cost": "prediction samples every path step by step: about 20x slower than a point model"}
    _defaults = {**_HFForecaster._defaults, "context_steps": 96, "num_samples": 20, "steps": 300}

    @classmethod
    def get_test_params(cls):
        return {**super().get_test_params(), "num_samples": 4}

    def _model_class(self):
        from sktime.libs.lag_llama.model.module import LagLlamaModel
        return LagLlamaModel

    def _config(self) -> dict:
        return {"context_length": self.context_steps, "max_context_length": 2048, "scaling": "robust",
                "input_size": 1, "lags_seq": list(LAGS), **SIZES[self.size], "time_feat": False}

    def _new_model(self):
        from gluonts.torch.distributions import StudentTOutput
        if self.context_steps + max(LAGS) > 288:
            raise DataError(f"context_steps {self.context_steps} + lags {max(LAGS)} exceed the protocol's 288 steps",
                            column="context_steps", expected=f"at most {288 - max(LAGS)}")
        if self.num_samples > MAX_SAMPLES:
            raise DataError(f"num_samples is limited to {MAX_SAMPLES} (prediction cost grows with it)",
                            column="num_samples", found=self.num_samples)
        model = self._model_class()(**self._config(), distr_output=StudentTOutput())
        model.config_ = self._config()
        return model

    def _fit(self, train):
        if self.weights:
            raise DataError("Lag-Llama runs on weights trained here only (the published checkpoint is a pickle)",
                            column="weights", expected="weights='' (from scratch) or a pretrained bgcore model")
        super()._fit(train)

    def _context(self):
        return self.context_steps + max(LAGS)

    def _loss(self, net, past, mask, y, ok):
        torch = _torch()
        from gluonts.torch.util import take_last
        future = torch.nan_to_num(y)
        params, loc, scale = net(past_target=past, past_observed_values=mask.float(), future_target=future)
        distr = net.distr_output.distribution(params, loc=loc, scale=scale)
        target = torch.cat((take_last(past, dim=-1, num=self.context_steps - 1), future), dim=1)
        observed = torch.cat((take_last(mask.float(), dim=-1, num=self.context_steps - 1), ok.float()), dim=1)
        return (-distr.log_prob(target) * observed).sum() / observed.sum().clamp_min(1.0)

    def _predict(self, batch):
        torch = _torch()
        past, mask = self._arrays(batch.cgm)
        torch.manual_seed(self.seed)
        S, paths = int(self.num_samples), []
        with torch.no_grad():
            for start in range(0, len(past), max(1, 4096 // S)):
                p = torch.from_numpy(past[start:start + 4096 // S]).repeat_interleave(S, 0)
                m = torch.from_numpy(mask[start:start + 4096 // S]).float().repeat_interleave(S, 0)
                steps = []
                for _ in range(HORIZON):
                    params, loc, scale = self.net_(past_target=p, past_observed_values=m, use_kv_cache=False)
                    distr = self.net_.distr_output.distribution([q[:, -1:] for q in params], loc, scale)
                    draw = distr.sample()
                    steps.append(draw)
                    p, m = torch.cat((p, draw), 1), torch.cat((m, torch.ones_like(draw)), 1)
                paths.append(torch.cat(steps, 1).reshape(-1, S, HORIZON).numpy())
        return sample_forecast(np.concatenate(paths)[:, :, self.steps_ - 1])

    def _save_state(self, folder):
        from safetensors.torch import save_file
        (folder / "model").mkdir()
        save_file({k: v.contiguous() for k, v in self.net_.state_dict().items()}, str(folder / "model" /
                                                                                      "model.safetensors"))
        (folder / "model" / "lag_llama.json").write_text(json.dumps(self._config()))
        (folder / "state.json").write_text(json.dumps({"base": self.base_, "lineage": self.lineage_,
                                                       "delta": self.delta_}, indent=2))

    def _load_state(self, folder):
        from safetensors.torch import load_file
        state = json.loads((folder / "state.json").read_text())
        self.base_, self.lineage_, self.delta_ = state["base"], state["lineage"], state["delta"]
        self.net_ = self._new_model()
        self.net_.load_state_dict(load_file(str(folder / "model" / "model.safetensors")))
        self.net_.eval()

    def pretrain(self, frame, name, progress=None, cancel=None):
        raise NotImplementedError("Lag-Llama pretraining to cache/weights is not offered yet; train it on a "
                                  "corpus with fit and keep the run")
