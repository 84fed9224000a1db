"""TimeGPT and TimeGPT-Long: Nixtla's hosted foundation models, through Nixtla's own client.

These send data off the machine: every forecast origin's CGM context (the last 24 hours,
gaps forward-filled because the API takes no missing values) goes to the configured
Nixtla endpoint, and forecasts with 80 % and 90 % intervals come back. Nothing is faked
without a key: the families are listed as unavailable until an API key is configured,
either as ``NIXTLA_API_KEY`` (and optionally ``NIXTLA_BASE_URL``) in the environment or
in ``cache/settings.json`` as ``{"nixtla": {"api_key": "...", "base_url": "..."}}``.
``fit`` only checks the key (the hosted model is not trained here); ``finetune_steps``
asks the API to fine-tune on each request's context, as Nixtla's client offers.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd

from ...data.schema import STEP_MINUTES, DataError
from ...evaluation.reference import ForecastArrays
from ...paths import cache_root
from ..base import Forecaster
from ..features import fill_past
from ..registry import register
from .chronos import GLUCOSE_RANGE

LEVELS_PCT = (80, 90)
LEVELS = (0.05, 0.1, 0.9, 0.95)


def nixtla_settings() -> dict:
    """API key and endpoint: environment first, then ``cache/settings.json``."""
    stored = {}
    path = cache_root() / "settings.json"
    if path.is_file():
        try:
            stored = json.loads(path.read_text()).get("nixtla", {})
        except json.JSONDecodeError as exc:
            raise DataError(f"settings.json is not valid JSON: {exc}", file=path) from exc
    return {"api_key": os.environ.get("NIXTLA_API_KEY") or stored.get("api_key"),
            "base_url": os.environ.get("NIXTLA_BASE_URL") or stored.get("base_url") or "https://api.nixtla.io"}


class _TimeGPT(Forecaster):
    _tags = {"family": "foundation", "scope": "global", "covariates": (), "probabilistic": True, "zero_shot": True,
             "remote": True, "requires": ("nixtla",), "min_history_steps": 2, "min_train_steps": 0}
    _defaults = {"model": "timegpt-1", "context_steps": 288, "finetune_steps": 0, "timeout_s": 60,
                 "max_retries": 2}

    @classmethod
    def available(cls) -> tuple[bool, str]:
        if not nixtla_settings()["api_key"]:
            return False, ("no Nixtla API key: set NIXTLA_API_KEY or add {\"nixtla\": {\"api_key\": ...}} to "
                           "cache/settings.json (forecasts are then computed on Nixtla's servers)")
        return True, ""

    def _client(self):
        from nixtla import NixtlaClient
        settings = nixtla_settings()
        if not settings["api_key"]:
            raise DataError(f"{self.name} needs a Nixtla API key", column="api_key",
                            expected="NIXTLA_API_KEY or cache/settings.json")
        return NixtlaClient(api_key=settings["api_key"], base_url=settings["base_url"], timeout=self.timeout_s,
                            max_retries=self.max_retries, retry_interval=1, max_wait_time=4 * self.timeout_s)

    def _fit(self, train):
        self._client()  # fails now, with the reason, rather than at the first forecast
        self.endpoint_ = nixtla_settings()["base_url"]

    def request_frame(self, batch) -> pd.DataFrame:
        """The long frame sent to the API: one series per origin (``unique_id = row number``)."""
        cgm = fill_past(batch.cgm[:, -self.context_steps:])
        n, L = cgm.shape
        offsets = (np.arange(L) - (L - 1)) * np.timedelta64(STEP_MINUTES, "m")
        times = np.asarray(batch.origin, dtype="datetime64[ns]")[:, None] + offsets[None, :]
        keep = np.isfinite(cgm)
        return pd.DataFrame({"unique_id": np.repeat(np.arange(n), L)[keep.ravel()],
                             "ds": times.ravel()[keep.ravel()], "y": cgm.ravel()[keep.ravel()]})

    def _predict(self, batch):
        H = int(self.steps_.max())
        out = self._client().forecast(self.request_frame(batch), h=H, freq="5min", level=list(LEVELS_PCT),
                                      model=self.model, finetune_steps=self.finetune_steps)
        out = out.sort_values(["unique_id", "ds"])
        def grid(column):
            return out[column].to_numpy(dtype=float).reshape(len(batch), H)[:, self.steps_ - 1]
        point = np.clip(grid("TimeGPT"), *GLUCOSE_RANGE)
        q = np.stack([grid("TimeGPT-lo-90"), grid("TimeGPT-lo-80"), grid("TimeGPT-hi-80"), grid("TimeGPT-hi-90")],
                     axis=-1)
        return ForecastArrays(point, np.sort(np.clip(q, *GLUCOSE_RANGE), axis=2), LEVELS)

    def weights_info(self) -> dict:
        self._require_fitted()
        return {"spec": self.model, "source": "remote", "description": f"{self.model} on {self.endpoint_} (hosted)",
                "delta": "none", "lineage": [f"hosted model {self.model} at {self.endpoint_}"]}

    def _save_state(self, folder):
        (folder / "state.json").write_text(json.dumps({"endpoint": self.endpoint_}))

    def _load_state(self, folder):
        self.endpoint_ = json.loads((folder / "state.json").read_text())["endpoint"]


@register
class TimeGPT(_TimeGPT):
    """TimeGPT (Nixtla, hosted): zero-shot forecasts from Nixtla's API with your key; sends CGM off the machine."""

    name = "timegpt"


@register
class TimeGPTLong(_TimeGPT):
    """TimeGPT-Long (Nixtla's long-horizon model, hosted) with your key; sends CGM off the machine."""

    name = "timegpt_long"
    _defaults = {**_TimeGPT._defaults, "model": "timegpt-1-long-horizon"}
