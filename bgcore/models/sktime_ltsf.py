"""Deep family, sktime wrappers: the LTSF linear networks (DLinear, NLinear) of sktime.

Training goes through sktime's own panel pre-training (`pretrain` on all patients'
training series), one epoch per call so that progress is reported and the fit can be
cancelled between epochs; the epoch with the lowest loss on a validation slice (the last
15 % of each training series) is kept, and training stops after `patience` epochs
without improvement. Forecasting many origins runs sktime's fitted torch network
directly on the batch of context windows (one call, no per-origin loop). Series are
scaled as ``(cgm - 140) / 50`` and missing readings forward-filled. CGM only (the LTSF
networks take no exogenous inputs). Weights are stored as safetensors.
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
    _defaults = {"num_epochs": 8, "patience": 2, "batch_size": 256, "lr": 1e-3, "seed": 0}
    estimator = None  # name of the sktime class in sktime.forecasting.ltsf

    @classmethod
    def get_test_params(cls):
        return {"num_epochs": 1, "batch_size": 64}

    def _make(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sktime's notices about upcoming defaults
            import sktime.forecasting.ltsf as ltsf
            return getattr(ltsf, self.estimator)(seq_len=SEQ_LEN, pred_len=int(self.steps_.max()),
                                                 num_epochs=1, batch_size=self.batch_size, lr=self.lr)

    def _fit(self, train):
        import torch
        torch.set_num_threads(1)
        torch.manual_seed(self.seed)
        parts, windows, targets = [], [], []
        H = int(self.steps_.max())
        for pid, g in train.groupby("patient_id", observed=True, sort=True):
            values = (fill_past(g["cgm"].to_numpy(dtype=float)[None, :])[0] - CENTER) / SCALE
            cut = int(len(values) * 0.85)
            parts.append(pd.DataFrame({"y": values[:cut]},
                                      index=pd.MultiIndex.from_product([[str(pid)], pd.RangeIndex(cut)])))
            starts = np.arange(max(cut - SEQ_LEN, 0), len(values) - SEQ_LEN - H + 1, 3)
            windows += [values[s:s + SEQ_LEN] for s in starts]
            targets += [values[s + SEQ_LEN:s + SEQ_LEN + H] for s in starts]
        panel = pd.concat(parts)
        val_x = torch.from_numpy(np.asarray(windows, dtype=np.float32)[:, :, None])
        val_y = torch.from_numpy(np.asarray(targets, dtype=np.float32))
        est = self._make()
        best, best_state, stale = np.inf, None, 0
        for epoch in range(self.num_epochs):
            if self._cancelled():
                raise InterruptedError("fit cancelled")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.pretrain(panel)  # the first call builds the network, later calls continue training it
            est.network.eval()
            with torch.no_grad():
                loss = float(((est.network(val_x)[:, :, 0] - val_y) ** 2).mean()) if len(val_y) else 0.0
            self._report((epoch + 1) / self.num_epochs, f"epoch {epoch + 1}: validation loss {loss:.4f}")
            if loss < best - 1e-6:
                best, stale = loss, 0
                best_state = {k: v.detach().clone() for k, v in est.network.state_dict().items()}
            else:
                stale += 1
                if stale >= self.patience:
                    break
        est.network.load_state_dict(best_state)
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
