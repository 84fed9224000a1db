"""Deep-learning family (torch, CPU): a GRU sequence encoder and an N-BEATS-style residual MLP.

Both forecast the change ``cgm[t + h] - cgm[t]`` for all horizons at once (direct
multi-output) from the last six hours: the GRU reads the sequence of CGM, insulin, carbs
and a missing-reading mask; both also get the tabular features of `bgcore.models.features`
(IOB, COB, trends, time of day). Training is seeded, single-threaded (faster and steadier
than two threads on a 2-core machine), reports progress per epoch, stops early on a
validation slice (the protocol's validation part when given, else the last 15 % of the
training origins in time) and can be cancelled between epochs. Weights are stored as
safetensors. Fine-tuning continues training at a lower learning rate, optionally with
the encoder frozen.
"""

from __future__ import annotations

import json

import numpy as np

from ..evaluation.reference import ForecastArrays
from .base import Forecaster
from .features import batch_features, fill_past, training_examples
from .registry import register

CONTEXT_STEPS = 72
SCALE = 50.0  # mg/dL: targets and CGM inputs are divided by this


def _torch():
    import torch
    torch.set_num_threads(1)
    return torch


class _TorchForecaster(Forecaster):
    _tags = {"family": "deep", "scope": "global", "covariates": ("insulin", "carbs"), "fine_tune": True,
             "needs_torch": True, "requires": ("torch", "safetensors"), "min_history_steps": CONTEXT_STEPS,
             "min_train_steps": 288}
    _common = {"hidden": 64, "epochs": 30, "batch_size": 256, "learning_rate": 1e-3, "patience": 4,
               "stride_min": 15, "seed": 0, "finetune_epochs": 5, "finetune_lr": 1e-4, "freeze_encoder": False}

    # --- data ---------------------------------------------------------------------
    def _inputs(self, batch):
        cgm = batch.cgm[:, -CONTEXT_STEPS:]
        seq = np.stack([(fill_past(cgm) - 140.0) / SCALE, np.nan_to_num(batch.insulin[:, -CONTEXT_STEPS:]),
                        np.nan_to_num(batch.carbs[:, -CONTEXT_STEPS:]) / 10.0, np.isfinite(cgm).astype(float)],
                       axis=-1)
        tab, _ = batch_features(batch)
        return seq.astype(np.float32), tab

    def _scaled(self, tab):
        return ((tab - self.tab_mean_) / self.tab_std_).astype(np.float32)

    # --- network ------------------------------------------------------------------
    def _network(self, n_tab: int):
        raise NotImplementedError

    def _train(self, net, seq, tab, y, val, epochs, lr, params=None):
        torch = _torch()
        opt = torch.optim.Adam(params if params is not None else net.parameters(), lr=lr)
        rng = np.random.default_rng(self.seed)
        data = [torch.from_numpy(a) for a in (seq, tab, y)]
        mask = torch.from_numpy(np.isfinite(y))
        data[2] = torch.nan_to_num(data[2])
        vseq, vtab, vy = (torch.from_numpy(a) for a in val)
        vmask = torch.from_numpy(np.isfinite(val[2]))
        vy = torch.nan_to_num(vy)
        best, best_state, stale = np.inf, None, 0
        for epoch in range(epochs):
            if self._cancelled():
                raise InterruptedError("fit cancelled")
            net.train()
            order = torch.from_numpy(rng.permutation(len(y)))
            for start in range(0, len(y), self.batch_size):
                idx = order[start:start + self.batch_size]
                pred = net(data[0][idx], data[1][idx])
                loss = (((pred - data[2][idx]) ** 2) * mask[idx]).sum() / mask[idx].sum().clamp(min=1)
                opt.zero_grad()
                loss.backward()
                opt.step()
            net.eval()
            with torch.no_grad():
                vloss = float((((net(vseq, vtab) - vy) ** 2) * vmask).sum() / vmask.sum().clamp(min=1))
            self._report((epoch + 1) / epochs, f"epoch {epoch + 1}: validation loss {vloss:.4f}")
            if vloss < best - 1e-5:
                best, stale = vloss, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                stale += 1
                if stale >= self.patience:
                    break
        net.load_state_dict(best_state)
        self.epochs_run_ = epoch + 1
        self.val_loss_ = best
        return net

    def _examples(self, frame):
        batch, targets = training_examples(frame, self.steps_, CONTEXT_STEPS, stride_steps=self.stride_min // 5)
        seq, tab = self._inputs(batch)
        y = ((targets - batch.cgm[:, -1:]) / SCALE).astype(np.float32)
        return seq, tab, y, batch.origin

    def _split_validation(self, train):
        seq, tab, y, origin = self._examples(train)
        validation = getattr(self, "_validation", None)
        if validation is not None and len(validation):
            vseq, vtab, vy, _ = self._examples(validation)
            return (seq, tab, y), (vseq, vtab, vy)
        cut = np.quantile(origin.astype("int64"), 0.85)
        late = origin.astype("int64") >= cut
        return (seq[~late], tab[~late], y[~late]), (seq[late], tab[late], y[late])

    def _fit(self, train):
        torch = _torch()
        torch.manual_seed(self.seed)
        (seq, tab, y), val = self._split_validation(train)
        self.tab_mean_, self.tab_std_ = tab.mean(axis=0), tab.std(axis=0) + 1e-6
        self.net_ = self._network(tab.shape[1])
        self.net_ = self._train(self.net_, seq, self._scaled(tab), y, (val[0], self._scaled(val[1]), val[2]),
                                self.epochs, self.learning_rate)

    def _fine_tune(self, train):
        torch = _torch()
        torch.manual_seed(self.seed)
        net = self._network(len(self.tab_mean_))
        net.load_state_dict(self.net_.state_dict())
        (seq, tab, y), val = self._split_validation(train)
        params = [p for name, p in net.named_parameters()
                  if not (self.freeze_encoder and name.startswith("encoder"))]
        self.net_ = self._train(net, seq, self._scaled(tab), y, (val[0], self._scaled(val[1]), val[2]),
                                self.finetune_epochs, self.finetune_lr, params)

    def _predict(self, batch):
        torch = _torch()
        seq, tab = self._inputs(batch)
        self.net_.eval()
        with torch.no_grad():
            change = self.net_(torch.from_numpy(seq), torch.from_numpy(self._scaled(tab))).numpy().astype(float)
        return ForecastArrays(fill_past(batch.cgm)[:, -1:] + SCALE * change)

    def _save_state(self, folder):
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in self.net_.state_dict().items()}, str(folder / "weights.safetensors"))
        (folder / "scaler.json").write_text(json.dumps({"mean": self.tab_mean_.tolist(), "std": self.tab_std_.tolist()}))

    def _load_state(self, folder):
        from safetensors.torch import load_file
        scaler = json.loads((folder / "scaler.json").read_text())
        self.tab_mean_, self.tab_std_ = np.asarray(scaler["mean"]), np.asarray(scaler["std"])
        self.net_ = self._network(len(self.tab_mean_))
        self.net_.load_state_dict(load_file(str(folder / "weights.safetensors")))


@register
class GRUForecaster(_TorchForecaster):
    """GRU encoder over six hours of CGM, insulin and carbs, with tabular features, direct 24-horizon head."""

    name = "gru"
    _defaults = {**_TorchForecaster._common, "layers": 1}
    _grid = {"hidden": [32, 64], "learning_rate": [1e-3, 3e-3]}

    @classmethod
    def get_test_params(cls):
        return {"hidden": 8, "epochs": 2, "batch_size": 64, "finetune_epochs": 1}

    def _network(self, n_tab):
        torch = _torch()
        nn = torch.nn
        hidden, layers, H = self.hidden, self.layers, len(self.steps_)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.encoder = nn.GRU(4, hidden, num_layers=layers, batch_first=True)
                self.head = nn.Sequential(nn.Linear(hidden + n_tab, hidden), nn.ReLU(), nn.Linear(hidden, H))

            def forward(self, seq, tab):
                _, h = self.encoder(seq)
                return self.head(torch.cat([h[-1], tab], dim=1))

        return Net()


@register
class NBeatsMLP(_TorchForecaster):
    """N-BEATS-style stack of residual fully connected blocks over the last six hours and the features."""

    name = "nbeats_mlp"
    _defaults = {**_TorchForecaster._common, "hidden": 128, "blocks": 3}
    _grid = {"hidden": [64, 128], "blocks": [2, 3]}

    @classmethod
    def get_test_params(cls):
        return {"hidden": 16, "blocks": 1, "epochs": 2, "batch_size": 64, "finetune_epochs": 1}

    def _network(self, n_tab):
        torch = _torch()
        nn = torch.nn
        hidden, blocks, H = self.hidden, self.blocks, len(self.steps_)
        n_in = CONTEXT_STEPS * 4 + n_tab

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
                self.backcast = nn.Linear(hidden, n_in)
                self.forecast = nn.Linear(hidden, H)

            def forward(self, x):
                z = self.body(x)
                return x - self.backcast(z), self.forecast(z)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.encoder = nn.ModuleList([Block() for _ in range(blocks)])

            def forward(self, seq, tab):
                x = torch.cat([seq.flatten(1), tab], dim=1)
                total = 0
                for block in self.encoder:
                    x, f = block(x)
                    total = total + f
                return total

        return Net()
