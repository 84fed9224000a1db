"""Moirai (Salesforce uni2ts, sktime's bundled copy): zero-shot from local weights, CGM only.

Published Moirai folders hold ``config.json`` (with the output distribution as a
``_target_`` tree) and ``model.safetensors``. The distribution is rebuilt here from a
fixed list of known classes (nothing named in a file is imported or instantiated), so
hydra is not needed and a file cannot run code. Forecasts are sampled (``num_samples``,
seeded) from the mixture distribution; the point forecast is the sample median.
Training is not offered: uni2ts's trainer is not part of the pinned stack.
"""

from __future__ import annotations

import json

import numpy as np

from ...data.schema import DataError
from ..base import Forecaster
from ..features import observed_past
from ..registry import register
from . import weights as weights_mod
from .chronos import _torch, sample_forecast

DISTRIBUTIONS = ("MixtureOutput", "StudentTOutput", "NormalFixedScaleOutput", "NormalOutput",
                 "NegativeBinomialOutput", "LogNormalOutput")


def _distribution(spec: dict, file):
    """Rebuild a uni2ts distribution output from its config entry (known classes only)."""
    from sktime.libs.uni2ts.distribution import log_normal, mixture, negative_binomial, normal, student_t
    classes = {"MixtureOutput": mixture.MixtureOutput, "StudentTOutput": student_t.StudentTOutput,
               "NormalFixedScaleOutput": normal.NormalFixedScaleOutput, "NormalOutput": normal.NormalOutput,
               "NegativeBinomialOutput": negative_binomial.NegativeBinomialOutput,
               "LogNormalOutput": log_normal.LogNormalOutput}
    name = str(spec.get("_target_", "")).rsplit(".", 1)[-1]
    if name not in classes:
        raise DataError(f"unknown Moirai output distribution {spec.get('_target_')!r}", file=file,
                        column="distr_output", expected=", ".join(DISTRIBUTIONS))
    if name == "MixtureOutput":
        return classes[name]([_distribution(c, file) for c in spec["components"]])
    return classes[name](**{k: v for k, v in spec.items() if k != "_target_"})


def load_moirai(spec: str):
    """A MoiraiModule from a local weights folder, and where it came from."""
    from safetensors.torch import load_file
    from sktime.libs.uni2ts.moirai_module import MoiraiModule
    _torch()
    source = weights_mod.resolve(spec)
    config = json.loads((source.folder / "config.json").read_text())
    if "patch_sizes" not in config or "distr_output" not in config:
        raise DataError("the weights are not a Moirai model", file=source.folder / "config.json",
                        expected="patch_sizes and distr_output in config.json")
    distr = _distribution(config.pop("distr_output"), source.folder / "config.json")
    module = MoiraiModule(distr_output=distr, **{**config, "patch_sizes": tuple(config["patch_sizes"])})
    module.load_state_dict(load_file(str(source.folder / "model.safetensors")))
    return module.eval(), source


def tiny_moirai(folder, seed: int = 0):
    """Save a tiny randomly initialised Moirai (tests, demos) in the published folder layout."""
    torch = _torch()
    from sktime.libs.uni2ts.distribution import log_normal, mixture, negative_binomial, normal, student_t
    from sktime.libs.uni2ts.moirai_module import MoiraiModule
    torch.manual_seed(seed)
    distr = mixture.MixtureOutput([student_t.StudentTOutput(), normal.NormalFixedScaleOutput(),
                                   negative_binomial.NegativeBinomialOutput(), log_normal.LogNormalOutput()])
    MoiraiModule(distr_output=distr, d_model=64, num_layers=1, patch_sizes=(8, 16, 32, 64, 128), max_seq_len=512,
                 attn_dropout_p=0.0, dropout_p=0.0).save_pretrained(str(folder))
    return folder


@register
class Moirai(Forecaster):
    """Moirai (Salesforce) zero-shot from weights you have (local folder or HF cache); sampled, CGM only."""

    name = "moirai"
    _tags = {"family": "foundation", "scope": "global", "covariates": (), "probabilistic": True, "zero_shot": True,
             "needs_user_weights": True, "needs_torch": True, "requires": ("torch", "sktime", "safetensors"),
             "min_history_steps": 2, "min_train_steps": 0}
    _defaults = {"weights": "Salesforce/moirai-1.0-R-small", "patch_size": 32, "context_steps": 288,
                 "num_samples": 50, "seed": 0}

    @classmethod
    def get_test_params(cls):
        from ...paths import cache_root
        folder = cache_root() / "weights" / "tiny-moirai"
        if not (folder / "config.json").is_file():
            tiny_moirai(folder)
        return {"weights": str(folder), "num_samples": 10}

    def _fit(self, train):
        self.module_, source = load_moirai(self.weights)
        if self.patch_size not in self.module_.patch_sizes:
            raise DataError(f"patch_size {self.patch_size} is not one of the model's {self.module_.patch_sizes}",
                            column="patch_size")
        self.base_ = weights_mod.reference(source)

    def _predict(self, batch):
        torch = _torch()
        from sktime.libs.uni2ts.forecast import MoiraiForecast
        H = int(self.steps_.max())
        cgm = batch.cgm[:, -self.context_steps:]
        L = cgm.shape[1]
        past, observed = observed_past(cgm)
        forecaster = MoiraiForecast(prediction_length=H, target_dim=1, feat_dynamic_real_dim=0,
                                    past_feat_dynamic_real_dim=0, context_length=L, module=self.module_,
                                    patch_size=self.patch_size, num_samples=self.num_samples)
        torch.manual_seed(self.seed)  # sampled forecasts: seeded so a run can be repeated
        samples = []
        with torch.no_grad():
            for start in range(0, len(past), 256):
                sl = slice(start, start + 256)
                samples.append(forecaster(
                    past_target=torch.tensor(past[sl, :, None], dtype=torch.float32),
                    past_observed_target=torch.from_numpy(observed[sl, :, None]),
                    past_is_pad=torch.from_numpy(~observed[sl] & (np.cumsum(observed[sl], axis=1) == 0))).numpy())
        return sample_forecast(np.concatenate(samples)[:, :, self.steps_ - 1])  # (n, samples, H)

    def weights_info(self) -> dict:
        self._require_fitted()
        return {**self.base_, "delta": "none", "lineage": [f"weights {self.base_['description']}"],
                "parameters": int(sum(p.numel() for p in self.module_.parameters()))}

    def _save_state(self, folder):
        (folder / "state.json").write_text(json.dumps({"base": self.base_}, indent=2))

    def _load_state(self, folder):
        self.base_ = json.loads((folder / "state.json").read_text())["base"]
        self.module_, source = load_moirai(self.base_["spec"])
        weights_mod.check_unchanged(source, self.base_)
