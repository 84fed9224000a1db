"""Deep family, pytorch-forecasting wrapper: N-BEATS trained through its TimeSeriesDataSet and Lightning.

Training uses pytorch-forecasting as its users do (a `TimeSeriesDataSet` over every
patient's training series, a Lightning `Trainer` on the CPU, a fixed number of epochs of
`batches_per_epoch` batches, progress and cancel through a callback); forecasting many origins
calls the trained network once on the batch of context windows. Series are scaled as
``(cgm - 140) / 50`` and forward-filled. Weights are stored as safetensors; the network
is rebuilt from the same settings on load.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

from ..evaluation.reference import ForecastArrays
from .base import Forecaster
from .features import fill_past
from .registry import register

ENCODER_STEPS = 72
CENTER, SCALE = 140.0, 50.0


def _quiet():
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", module="pytorch_forecasting")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)


@register
class PTFNBeats(Forecaster):
    """pytorch-forecasting's N-BEATS (generic stacks) on six hours of CGM, trained with Lightning."""

    name = "ptf_nbeats"
    _tags = {"family": "deep", "scope": "global", "needs_torch": True, "min_history_steps": ENCODER_STEPS,
             "min_train_steps": 288, "requires": ("pytorch_forecasting", "lightning", "safetensors")}
    _defaults = {"widths": (128, 128), "epochs": 3, "batch_size": 256, "learning_rate": 1e-3,
                 "batches_per_epoch": 300, "seed": 0}

    @classmethod
    def get_test_params(cls):
        return {"widths": (16, 16), "epochs": 1, "batch_size": 64, "batches_per_epoch": 5}

    def _dataset(self, frame: pd.DataFrame):
        from pytorch_forecasting import TimeSeriesDataSet
        return TimeSeriesDataSet(frame, time_idx="t", target="y", group_ids=["series"],
                                 max_encoder_length=ENCODER_STEPS, max_prediction_length=int(self.steps_.max()),
                                 time_varying_unknown_reals=["y"], target_normalizer=None,
                                 add_relative_time_idx=False, add_target_scales=False)

    def _model(self, dataset):
        from pytorch_forecasting import NBeats
        return NBeats.from_dataset(dataset, learning_rate=self.learning_rate, widths=list(self.widths),
                                   backcast_loss_ratio=0.0)

    def _fit(self, train):
        import lightning.pytorch as pl
        import torch
        _quiet()
        torch.set_num_threads(1)
        pl.seed_everything(self.seed, verbose=False)
        parts = []
        for pid, g in train.groupby("patient_id", observed=True, sort=True):
            y = fill_past(g["cgm"].to_numpy(dtype=float)[None, :])[0]
            parts.append(pd.DataFrame({"series": str(pid), "t": np.arange(len(y)),
                                       "y": ((y - CENTER) / SCALE).astype(np.float32)}))
        dataset = self._dataset(pd.concat(parts, ignore_index=True))
        self.net_ = self._model(dataset)
        owner = self

        class Report(pl.Callback):
            """Progress per epoch and cooperative cancel between epochs."""

            def on_train_epoch_end(self, trainer, module):
                owner._report((trainer.current_epoch + 1) / owner.epochs, f"epoch {trainer.current_epoch + 1}")
                if owner._cancelled():
                    trainer.should_stop = True
                    owner._stopped = True

        self._stopped = False
        trainer = pl.Trainer(max_epochs=self.epochs, limit_train_batches=self.batches_per_epoch, accelerator="cpu",
                             enable_progress_bar=False, logger=False, enable_checkpointing=False,
                             enable_model_summary=False, deterministic=True, callbacks=[Report()])
        trainer.fit(self.net_, dataset.to_dataloader(train=True, batch_size=self.batch_size, num_workers=0))
        if self._stopped:
            raise InterruptedError("fit cancelled")

    def _predict(self, batch):
        import torch
        x = torch.from_numpy(((fill_past(batch.cgm[:, -ENCODER_STEPS:]) - CENTER) / SCALE).astype(np.float32))
        n, H = len(x), int(self.steps_.max())
        inputs = {"encoder_cont": x[:, :, None], "encoder_target": x, "encoder_lengths": torch.full((n,), ENCODER_STEPS),
                  "decoder_lengths": torch.full((n,), H), "decoder_cont": torch.zeros(n, H, 1),
                  "decoder_target": torch.zeros(n, H), "target_scale": torch.tensor([[0.0, 1.0]]).repeat(n, 1),
                  "encoder_cat": torch.zeros(n, ENCODER_STEPS, 0, dtype=torch.long),
                  "decoder_cat": torch.zeros(n, H, 0, dtype=torch.long)}
        self.net_.eval()
        with torch.no_grad():
            out = self.net_(inputs)["prediction"].reshape(n, H).numpy().astype(float)
        return ForecastArrays(CENTER + SCALE * out[:, self.steps_ - 1])

    def _save_state(self, folder):
        from safetensors.torch import save_model
        save_model(self.net_, str(folder / "weights.safetensors"))  # N-BEATS blocks share weights

    def _load_state(self, folder):
        from safetensors.torch import load_model
        _quiet()
        H = int(self.steps_.max())
        length = ENCODER_STEPS + H + 1  # the smallest series that defines the same network
        stub = pd.DataFrame({"series": "stub", "t": np.arange(length), "y": np.zeros(length, dtype=np.float32)})
        self.net_ = self._model(self._dataset(stub))
        load_model(self.net_, str(folder / "weights.safetensors"))
