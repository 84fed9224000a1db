"""Where foundation-model weights come from: shipped checkpoints, local folders, the local HF cache.

Nothing is ever downloaded (``HF_HUB_OFFLINE=1`` is set before transformers loads). A
weights *spec* is one of

- the name of a checkpoint shipped with bgcore (``"dfm-small"``, under
  ``bgcore/models/foundation/weights/``),
- the name of a folder under ``cache/weights/`` (where the dashboard puts user weights),
- a path to a local folder holding ``config.json`` and ``*.safetensors``,
- a Hugging Face repo id (``"amazon/chronos-2"``) already in the local HF cache.

Only safetensors weights are accepted: a folder with only ``pytorch_model.bin`` (a pickle)
is refused, wherever it is.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ...data.schema import DataError
from ...paths import cache_root, sha256_file

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a missing hub id then fails at once instead of after ~30 s
SHIPPED = Path(__file__).parent / "weights"
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Weights:
    """A resolved weights folder.

    Attributes
    ----------
    spec : str
        What the user asked for.
    folder : Path
        The local folder.
    source : str
        ``shipped``, ``cache``, ``folder`` or ``hf-cache``.
    pipeline : str
        The Chronos pipeline class named in ``config.json`` (``Chronos2Pipeline`` ...).
    sha256 : str
        Of the weights file, recorded with every model built on it.
    """

    spec: str
    folder: Path
    source: str
    pipeline: str
    sha256: str

    def describe(self) -> str:
        where = {"shipped": "checkpoint shipped with bgcore", "cache": "user weights in the cache",
                 "folder": "local folder", "hf-cache": "local Hugging Face cache"}[self.source]
        return f"{self.spec} ({where}: {self.folder}, sha256 {self.sha256[:12]})"


def _hf_cache_folder(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - not in the cache (or no hub library): the caller reports it
        return None


def find(spec: str) -> tuple[Path, str] | None:
    """The folder a spec points to and its source, or None."""
    spec = str(spec)
    if NAME.match(spec):
        for root, source in ((SHIPPED, "shipped"), (cache_root() / "weights", "cache")):
            if (root / spec / "config.json").is_file():
                return root / spec, source
    path = Path(spec).expanduser()
    if path.is_dir():
        return path.resolve(), "folder"
    if HUB_ID.match(spec) and not path.exists():
        folder = _hf_cache_folder(spec)
        if folder is not None:
            return folder, "hf-cache"
    return None


def resolve(spec: str, pipelines: tuple[str, ...] | None = None, model_types: tuple[str, ...] | None = None) -> Weights:
    """Resolve a weights spec to a checked local folder.

    Parameters
    ----------
    pipelines : tuple of str, optional
        Accepted ``chronos_pipeline_class`` values (e.g. ``("Chronos2Pipeline",)``).
    model_types : tuple of str, optional
        Accepted ``model_type`` values of ``config.json`` (e.g. ``("timesfm",)``).

    Raises
    ------
    DataError
        Not found, no ``config.json``, pickled weights only, or the wrong kind of model.
    """
    found = find(spec)
    if found is None:
        raise DataError(f"no local weights for {spec!r}", file=spec,
                        expected="a shipped checkpoint name, a folder under cache/weights, a local folder, "
                                 "or a Hugging Face id already in the local HF cache (nothing is downloaded)")
    folder, source = found
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise DataError("the weights folder has no config.json", file=folder, expected="a saved Chronos model")
    safetensors = sorted(folder.glob("*.safetensors"))
    if not safetensors:
        has_pickle = any(folder.glob("*.bin")) or any(folder.glob("*.pt"))
        raise DataError("only safetensors weights are loaded" if has_pickle else "no weights file in the folder",
                        file=folder, expected="model.safetensors")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"config.json is not valid JSON: {exc}", file=config_file) from exc
    pipeline = config.get("chronos_pipeline_class") or ("Chronos2Pipeline" if "Chronos2Model" in
                                                        config.get("architectures", []) else "")
    if pipelines is not None and pipeline not in pipelines:
        raise DataError(f"the weights are a {pipeline or 'non-Chronos'} model", file=config_file,
                        column="chronos_pipeline_class", expected=" or ".join(pipelines), found=pipeline)
    if model_types is not None and config.get("model_type") not in model_types:
        raise DataError(f"the weights are a {config.get('model_type') or 'unknown'} model", file=config_file,
                        column="model_type", expected=" or ".join(model_types), found=config.get("model_type"))
    return Weights(str(spec), folder, source, pipeline or str(config.get("model_type", "")),
                   sha256_file(safetensors[0]))


def shipped() -> list[str]:
    """Names of the checkpoints shipped with bgcore."""
    return sorted(p.name for p in SHIPPED.iterdir() if (p / "config.json").is_file()) if SHIPPED.is_dir() else []


def reference(source: Weights) -> dict:
    """What a model stores about the weights it is built on (spec, sha256, where from)."""
    return {"spec": source.spec, "sha256": source.sha256, "source": source.source, "description": source.describe()}


def check_unchanged(source: Weights, stored: dict) -> None:
    """Refuse to rebuild a saved model on weights that are no longer the ones it was built on."""
    if source.sha256 != stored["sha256"]:
        raise DataError("the weights this model was built on have changed", file=source.folder,
                        expected=f"sha256 {stored['sha256'][:12]}", found=source.sha256[:12])
