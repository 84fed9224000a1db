"""The registry of forecaster families: pages build their pickers from it, tests iterate over it.

Adding a family = one module that decorates its classes with `register`, listed in
`MODULES`, plus its `get_test_params`.
"""

from __future__ import annotations

import importlib
import importlib.util

_REGISTRY: dict[str, type] = {}
MODULES = ("bgcore.models.statistical", "bgcore.models.ml", "bgcore.models.deep", "bgcore.models.sktime_ltsf",
           "bgcore.models.ptf")


def register(cls):
    """Class decorator: add a forecaster class under its ``name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"forecaster name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load() -> None:
    for module in MODULES:
        importlib.import_module(module)


def availability(cls) -> tuple[bool, str]:
    """Whether the modules a family needs are importable, and if not, why."""
    missing = [m for m in cls.get_tags()["requires"] if importlib.util.find_spec(m) is None]
    return (not missing, "" if not missing else f"missing packages: {', '.join(missing)}")


def list(available_only: bool = False, **tags) -> list[type]:  # noqa: A001 - the registry's verb
    """Registered forecaster classes whose tags match `tags` (e.g. ``family="ml"``), by name."""
    _load()
    out = []
    for name in sorted(_REGISTRY):
        cls = _REGISTRY[name]
        cls_tags = cls.get_tags()
        if all(cls_tags.get(k) == v or (isinstance(cls_tags.get(k), tuple) and v in cls_tags.get(k))
               for k, v in tags.items()):
            if not available_only or availability(cls)[0]:
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
                     "min_history_min": tags["min_history_steps"] * 5, "needs_torch": tags["needs_torch"],
                     "available": ok, "reason": reason, "summary": (cls.__doc__ or "").strip().split("\n")[0]})
    return rows
