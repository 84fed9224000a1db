"""Deep family, sktime wrappers: the LTSF linear networks (DLinear, NLinear) of sktime.

Training goes through sktime's own panel pre-training (`pretrain` on all patients'
training series); forecasting many origins runs sktime's fitted torch network directly
on the batch of context windows (one call, no per-origin loop). Series are scaled as
``(cgm - 140) / 50`` and missing readings forward-filled. CGM only (the LTSF networks
take no exogenous inputs). Weights are stored as safetensors.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..evaluation.reference import ForecastArrays
from .base import Forecaster
from .features import fill_past
from .registry import register

SEQ_LEN = 72
CENTER, SCALE = 140.0, 50.0


class _SktimeLTSF(Forecaster):
    _tags = {"family": "deep", "scope": "global", "needs_torch": True, "min_history_steps": SEQ_LEN,
             "min_train_steps": 288, "requires": ("sktime", "torch", "safetensors")}
    _defaults = {"num_epochs": 5, "batch_size": 256, "lr": 1e-3, "seed": 0}
    estimator = None  # name of the sktime class in sktime.forecasting.ltsf

    @classmethod
    def get_test_params(cls):
        return {"num_epochs": 1, "batch_size": 64}

    def _make(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sktime's notices about upcoming defaults
            import sktime.forecasting.ltsf as ltsf
            return getattr(ltsf, self.estimator)(seq_len=SEQ_LEN, pred_len=int(self.steps_.max()),
                                                 num_epochs=self.num_epochs, batch_size=self.batch_size, lr=self.lr)

    def _fit(self, train):
        import torch
        torch.set_num_threads(1)
        torch.manual_seed(self.seed)
        parts = []
        for pid, g in train.groupby("patient_id", observed=True, sort=True):
            values = fill_past(g["cgm"].to_numpy(dtype=float)[None, :])[0]
            parts.append(pd.DataFrame({"y": (values - CENTER) / SCALE},
                                      index=pd.MultiIndex.from_product([[str(pid)], pd.RangeIndex(len(values))])))
        panel = pd.concat(parts)
        est = self._make()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.pretrain(panel)
        self.net_ = est.network

    def _predict(self, batch):
        import torch
        x = (fill_past(batch.cgm[:, -SEQ_LEN:]) - CENTER) / SCALE
        self.net_.eval()
        with torch.no_grad():
            out = self.net_(torch.from_numpy(x[:, :, None].astype(np.float32)))[:, :, 0].numpy().astype(float)
        return ForecastArrays(CENTER + SCALE * out[:, self.steps_ - 1])

    def _save_state(self, folder):
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in self.net_.state_dict().items()}, str(folder / "weights.safetensors"))

    def _load_state(self, folder):
        from safetensors.torch import load_file
        est = self._make()
        self.net_ = est._init_network(int(self.steps_.max()))
        self.net_.load_state_dict(load_file(str(folder / "weights.safetensors")))


@register
class SktimeDLinear(_SktimeLTSF):
    """sktime's LTSF DLinear (trend/seasonal decomposition, one linear layer each) on six hours of CGM."""

    name = "sktime_dlinear"
    estimator = "LTSFDLinearForecaster"


@register
class SktimeNLinear(_SktimeLTSF):
    """sktime's LTSF NLinear (linear layer on the window minus its last value) on six hours of CGM."""

    name = "sktime_nlinear"
    estimator = "LTSFNLinearForecaster"
