"""The registry of forecaster families: pages build their pickers from it, tests iterate over it.

Adding a family = one module that decorates its classes with `register`, listed in
`MODULES`, plus its `get_test_params`.
"""

from __future__ import annotations

import importlib
import importlib.util

_REGISTRY: dict[str, type] = {}
MODULES = ("bgcore.models.statistical", "bgcore.models.ml", "bgcore.models.deep", "bgcore.models.sktime_ltsf",
           "bgcore.models.ptf", "bgcore.models.foundation.chronos",
           "bgcore.models.foundation.hf_models", "bgcore.models.foundation.lag_llama",
           "bgcore.models.foundation.moirai",
           "bgcore.models.foundation.timegpt")


def register(cls):
    """Class decorator: add a forecaster class under its ``name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"forecaster name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load() -> None:
    for module in MODULES:
        importlib.import_module(module)


def installed(cls) -> tuple[bool, str]:
    """Whether the modules a family needs are importable, and if not, why."""
    missing = [m for m in cls.get_tags()["requires"] if importlib.util.find_spec(m) is None]
    return (not missing, "" if not missing else f"missing packages: {', '.join(missing)}")


def availability(cls) -> tuple[bool, str]:
    """Whether a family can run with its defaults here: packages installed and, if it needs them, weights found."""
    ok, reason = installed(cls)
    if ok and hasattr(cls, "available"):  # e.g. a hosted model without an API key
        return cls.available()
    if ok and "weights" in cls._defaults:
        from .foundation.weights import find
        spec = cls._defaults["weights"]
        if spec and find(spec) is None:  # an empty spec means new weights, trained here
            hint = ("run `python -m bgcore pretrain` to build it" if cls.get_tags()["from_scratch"] else
                    "put them in the local Hugging Face cache or in a folder under cache/weights, "
                    "or pass weights=PATH")
            return False, f"weights {spec!r} not found locally ({hint})"
    return ok, reason


def list(available_only: bool = False, installed_only: bool = False, **tags) -> list[type]:  # noqa: A001
    """Registered forecaster classes whose tags match `tags` (e.g. ``family="ml"``), by name.

    `available_only` keeps families that run with their defaults here (`availability`);
    `installed_only` those whose packages are installed (weights may still be missing).
    """
    _load()
    out = []
    for name in sorted(_REGISTRY):
        cls = _REGISTRY[name]
        cls_tags = cls.get_tags()
        if all(cls_tags.get(k) == v or (isinstance(cls_tags.get(k), tuple) and v in cls_tags.get(k))
               for k, v in tags.items()):
            if (not available_only or availability(cls)[0]) and (not installed_only or installed(cls)[0]):
                out.append(cls)
    return out


def get(name: str) -> type:
    """The forecaster class registered as `name`."""
    _load()
    if name not in _REGISTRY:
        raise KeyError(f"unknown forecaster {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def describe() -> list[dict]:
    """Every family with its tags and availability, as plain data (CLI, pages)."""
    rows = []
    for cls in list():
        ok, reason = availability(cls)
        tags = cls.get_tags()
        rows.append({"name": cls.name, "family": tags["family"], "scope": tags["scope"],
                     "covariates": "+".join(tags["covariates"]), "probabilistic": tags["probabilistic"],
                     "fine_tune": tags["fine_tune"], "zero_shot": tags["zero_shot"],
                     "from_scratch": tags["from_scratch"], "needs_user_weights": tags["needs_user_weights"],
                     "weights": cls._defaults.get("weights"), "remote": tags["remote"],
                     "min_history_min": tags["min_history_steps"] * 5, "needs_torch": tags["needs_torch"],
                     "available": ok, "reason": reason, "summary": (cls.__doc__ or "").strip().split("\n")[0]})
    return rows


def family_details(name: str) -> dict:
    """What the Train page shows for one family: defaults, grid, and where its weights come from.

    ``weights`` is a sentence: the resolved default weights (or why they are missing), "trained
    from scratch here", or the hosted endpoint data is sent to; None for families without weights.
    """
    cls = get(name)
    tags = cls.get_tags()
    ok, reason = availability(cls)
    weights = None
    if tags["remote"]:
        from .foundation.timegpt import nixtla_settings
        weights = (f"hosted by Nixtla at {nixtla_settings()['base_url']}: CGM contexts are sent there"
                   if ok else reason)
    elif "weights" in cls._defaults:
        from .foundation.weights import find, resolve
        spec = cls._defaults["weights"]
        if not spec:
            weights = "new weights trained here (from scratch); set weights=NAME to start from pretrained ones"
        elif find(spec) is not None:
            weights = f"loads {resolve(spec).describe()}"
        else:
            weights = reason
    return {"name": name, "defaults": dict(cls._defaults), "grid": dict(getattr(cls, "_grid", {}) or {}),
            "weights": weights, "available": ok, "reason": reason, "tags": tags,
            "summary": (cls.__doc__ or "").strip().split("\n")[0]}
