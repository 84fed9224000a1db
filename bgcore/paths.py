"""Where runtime state lives: the cache root and safe writes inside it."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
STALE_SECONDS = 3600


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_root() -> Path:
    """The cache folder: ``$BGCORE_CACHE`` if set, else ``cache/`` in the project."""
    root = Path(os.environ.get("BGCORE_CACHE") or PROJECT_ROOT / "cache")
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextmanager
def atomic_folder(final: Path, replace: bool = False):
    """Build a folder under a temporary name and rename it to `final` only on success.

    Yields the temporary folder. On an exception it is removed and `final` is untouched.
    With `replace`, an existing `final` is swapped out (renamed aside, then deleted), so
    a crash at any point leaves either the old or the new folder complete.
    """
    final = Path(final)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if final.exists():
            if not replace:
                raise FileExistsError(final)
            old = final.parent / f".old-{final.name}-{uuid.uuid4().hex[:8]}"
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def recover_folders(parent: Path) -> None:
    """Finish or undo interrupted `atomic_folder` swaps under `parent`.

    A ``.old-NAME-*`` folder without ``NAME`` means a crash between the two renames: it is
    put back. Leftover ``.tmp-*`` folders are incomplete writes and are removed.
    """
    if not parent.exists():
        return
    for item in parent.iterdir():
        if item.name.startswith(".old-"):
            name = item.name[len(".old-"):].rsplit("-", 1)[0]
            target = parent / name
            if target.exists():
                shutil.rmtree(item, ignore_errors=True)
            else:
                item.rename(target)
        elif item.name.startswith(".tmp-") and time.time() - item.stat().st_mtime > STALE_SECONDS:
            shutil.rmtree(item, ignore_errors=True)
