"""Lag-Llama (sktime's bundled copy): a decoder-only transformer over lagged CGM, sampled autoregressively.

Trained here from scratch (or pretrained on the DFM corpus with `pretrain`, then fine-tuned),
with the model's own Student-t negative log-likelihood on the next step, masked where CGM is
missing. Lags are chosen for 5-minute CGM (up to 16 hours back) so that a context of 8 hours
plus its lags fits in the protocol's 24-hour window. Forecasts are ``num_samples`` sample
paths (seeded); the point forecast is their median.

Cost: sampling is autoregressive, one step of every sample path per 5 minutes ahead, so
prediction grows with ``num_samples`` x origins x 24 steps; ``num_samples`` is capped at
``MAX_SAMPLES``. `sample_paths` decodes incrementally: the context is encoded once per origin
(shared by its sample paths) and each step runs only the new token against cached keys and
values, with the scaling of the observed past as in training; it equals the model's full
teacher-forced forward pass on the same path (tested). The published Lag-Llama checkpoint is not loaded: it is a pickled Lightning
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
ROWS_PER_CHUNK = 4096  # origins x sample paths decoded together (bounds the key/value cache)
SIZES = {"tiny": {"n_layer": 1, "n_embd_per_head": 8, "n_head": 2},
         "small": {"n_layer": 4, "n_embd_per_head": 16, "n_head": 4}}


@register
class LagLlama(_HFForecaster):
    """Lag-Llama (sktime's copy): probabilistic decoder over lagged CGM, trained here; sampled, so slow to predict."""

    name = "lag_llama"
    _tags = {"probabilistic": True, "zero_shot": False, "requires": ("torch", "sktime", "gluonts", "safetensors"),
             "cost": "trained from scratch here (minutes per model on CPU); forecasts sample every path step by "
                     "step, so prediction time grows with num_samples"}
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
        per_chunk = max(1, ROWS_PER_CHUNK // S)
        with torch.no_grad():
            for start in range(0, len(past), per_chunk):
                paths.append(sample_paths(self.net_, torch.from_numpy(past[start:start + per_chunk]),
                                          torch.from_numpy(mask[start:start + per_chunk]).float(), S).numpy())
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


def sample_paths(net, past, mask, num_samples: int, horizon: int = HORIZON, draw=None):
    """Sample paths ``(n, num_samples, horizon)`` from a Lag-Llama network, decoded incrementally.

    Parameters
    ----------
    net : LagLlamaModel
        In eval mode, called under ``torch.no_grad()``.
    past, mask : torch.Tensor
        ``(n, context + max lag)`` CGM (gaps filled) and its observed mask (float).
    draw : callable, optional
        ``draw(distribution) -> values``; default a random sample (tests pass the mean).

    Notes
    -----
    The context tokens run once per origin (causal attention, rotary positions 0..T-1); each
    new token (its lags over past and drawn values, scaled by the past's loc/scale) runs alone
    at position T + k, attending to the context's keys/values (shared by the sample paths) and
    to those of the path's earlier draws. That is the computation of the model's forward pass
    with ``future_target`` = the drawn path, one position at a time.
    """
    import math

    torch = _torch()
    from sktime.libs.lag_llama.model.module import rotate_half
    draw = draw or (lambda distribution: distribution.sample())
    lags = net.lags_seq
    n, S = past.shape[0], num_samples
    tokens, loc, scale = net.prepare_input(past_target=past, past_observed_values=mask)  # (n, T, F), (n, 1)
    T = tokens.shape[1]
    blocks = list(net.transformer.h)
    heads, width = blocks[0].attn.n_head, blocks[0].attn.n_embd_per_head
    cos_all = blocks[0].attn.rotary_emb.cos_cached[0, 0]  # (positions, width)
    sin_all = blocks[0].attn.rotary_emb.sin_cached[0, 0]

    def rotate(x, at):
        return x * cos_all[at] + rotate_half(x) * sin_all[at]

    # context: every position at once, keeping each layer's rotated keys and values
    x = net.transformer.wte(tokens)
    context_kv = []
    for block in blocks:
        attn = block.attn
        h = block.rms_1(x)
        q = attn.q_proj(h).view(n, T, heads, width).transpose(1, 2)
        k, v = attn.kv_proj(h).split(heads * width, dim=2)
        k, v = k.view(n, T, heads, width).transpose(1, 2), v.view(n, T, heads, width).transpose(1, 2)
        q, k = rotate(q, slice(0, T)), rotate(k, slice(0, T))
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + attn.c_proj(y.transpose(1, 2).reshape(n, T, heads * width))
        x = x + block.mlp(block.rms_2(x))
        context_kv.append((k, v))  # (n, heads, T, width)
    out = net.transformer.ln_f(x[:, -1:])  # (n, 1, C): the last context token predicts step 1
    params = [p.expand(n, S) for p in net.param_proj(out)]

    scaled_past = (past - loc) / scale  # (n, L): the lags' history, scaled as in training
    static = torch.cat((loc.abs().log1p(), scale.log()), dim=-1)  # (n, 2)
    path_kv = [([], []) for _ in blocks]
    drawn, scaled = [], []
    for step in range(horizon):
        value = draw(net.distr_output.distribution(params, loc, scale))  # (n, S)
        drawn.append(value)
        if step + 1 == horizon:
            break
        scaled.append((value - loc) / scale)
        full = torch.cat((scaled_past.unsqueeze(1).expand(n, S, -1), torch.stack(scaled, dim=-1)), dim=-1)
        features = torch.cat((full[..., [full.shape[-1] - 1 - lag for lag in lags]],
                              static.unsqueeze(1).expand(n, S, 2)), dim=-1)  # (n, S, F)
        x = net.transformer.wte(features)  # (n, S, C)
        at = T + step
        for block, (k_ctx, v_ctx), (k_path, v_path) in zip(blocks, context_kv, path_kv):
            attn = block.attn
            h = block.rms_1(x)
            q = rotate(attn.q_proj(h).view(n, S, heads, width), at)
            k, v = attn.kv_proj(h).split(heads * width, dim=-1)
            k_path.append(rotate(k.view(n, S, heads, width), at))
            v_path.append(v.view(n, S, heads, width))
            kp, vp = torch.stack(k_path, dim=3), torch.stack(v_path, dim=3)  # (n, S, heads, steps, width)
            scores = torch.cat((torch.einsum("nshw,nhtw->nsht", q, k_ctx), torch.einsum("nshw,nshtw->nsht", q, kp)),
                               dim=-1) / math.sqrt(width)
            weights = scores.softmax(dim=-1)
            y = (torch.einsum("nsht,nhtw->nshw", weights[..., :T], v_ctx)
                 + torch.einsum("nsht,nshtw->nshw", weights[..., T:], vp))
            x = x + attn.c_proj(y.reshape(n, S, heads * width))
            x = x + block.mlp(block.rms_2(x))
        params = list(net.param_proj(net.transformer.ln_f(x)))  # (n, S) each
    return torch.stack(drawn, dim=-1)
