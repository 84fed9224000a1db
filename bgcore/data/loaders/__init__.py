"""Readers for the real CGM formats people have, one module per format.

Each module has ``FORMAT`` (its name), ``DESCRIPTION``, ``sniff(path, head) -> bool`` and
``read(path, patient_id=None) -> RawData``. `read_path` picks the reader (or uses the one
asked for), reads a file or a folder, and returns what `bgcore.data.ingest.finalise` turns
into the canonical frame.
"""

from __future__ import annotations

from pathlib import Path

from ..ingest import RawData, check_file
from ..schema import DataError
from . import bris, csv, dexcom, libre, nightscout, ohio

# Sniffing order matters: the generic CSV reader accepts almost anything, so it is last.
READERS = {m.FORMAT: m for m in (ohio, nightscout, dexcom, libre, bris, csv)}
FORMATS = tuple(READERS)
_HEAD_BYTES = 16384


def head_text(path: Path) -> str:
    """The first bytes of a file as text (for sniffing)."""
    with open(path, "rb") as fh:
        return fh.read(_HEAD_BYTES).decode("utf-8-sig", errors="replace")


def detect_format(path: Path) -> str:
    """Name of the format of a file or folder; `DataError` if none fits."""
    path = Path(path)
    if path.is_dir():
        if nightscout.is_folder(path):
            return nightscout.FORMAT
        raise DataError("a folder is read file by file; call read_path", file=path)
    check_file(path)
    head = head_text(path)
    for name, module in READERS.items():
        if module.sniff(path, head):
            return name
    raise DataError("unrecognised file format", file=path,
                    expected="one of: " + ", ".join(f"{m.DESCRIPTION} ({n})" for n, m in READERS.items()))


def read_path(path, format: str = "auto", patient_id: str | None = None) -> list[RawData]:
    """Read a file, or every data file in a folder, into `RawData` parts.

    Parameters
    ----------
    path : path-like
        A file, or a folder (of files of one or several formats, or a Nightscout export
        with ``entries.json`` and ``treatments.json``).
    format : str
        ``"auto"`` or one of `FORMATS`.
    patient_id : str, optional
        Id for single-patient files (default: from the file, else its name).
    """
    path = Path(path)
    if format != "auto" and format not in READERS:
        raise DataError("unknown format", expected="auto or one of " + ", ".join(FORMATS), found=format)
    if not path.exists():
        raise DataError("no such file or folder", file=path)
    if path.is_dir() and not nightscout.is_folder(path):
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        raws, skipped = [], []
        for file in files:
            try:
                fmt = detect_format(file) if format == "auto" else format
            except DataError:
                skipped.append(file.name)
                continue
            raws.append(READERS[fmt].read(file, patient_id=patient_id))
        if not raws:
            raise DataError("no readable data files in the folder", file=path,
                            expected="files in one of: " + ", ".join(FORMATS))
        if skipped:
            raws[0].notes.append(f"skipped files of unknown format: {', '.join(skipped[:10])}")
        return raws
    fmt = detect_format(path) if format == "auto" else format
    if path.is_file():
        check_file(path)
    return [READERS[fmt].read(path, patient_id=patient_id)]

